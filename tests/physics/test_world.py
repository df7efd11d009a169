"""The pybullet world: shapes, clearance against exact geometry, rays, cameras, bad input."""

from __future__ import annotations

import math

import numpy as np
import pytest
import trimesh

from tests.physics.scenes import OHT, loop_scene
from twin.errors import InputError, NotFoundError
from twin.physics.palette import family_colour, state_colour
from twin.physics.world import PhysicsWorld
from twin.scene.assets import Asset
from twin.scene.graph import Node, SceneGraph, translation

pytest.importorskip("pybullet")


def tool_scene(
    boxes: list[tuple[float, float, float, float, float]], family: str = "Litho"
) -> SceneGraph:
    """Tools as boxes (x, y, sx, sy, sz) standing on the floor, plus a short rail and a vehicle."""
    scene = SceneGraph("tools")
    scene.vehicle_types["OHT"] = dict(OHT)
    for k, (x, y, sx, sy, sz) in enumerate(boxes):
        scene.add(
            Node(
                id=f"T{k}",
                kind="tool",
                family=family,
                transform=translation(x, y),
                size=(sx, sy, sz),
            )
        )
    scene.add_rail_node("r0", -50.0, -50.0, 3.9)
    scene.add_rail_node("r1", -40.0, -50.0, 3.9)
    scene.add_segment("rail", "r0", "r1", max_speed=1.5)
    scene.add(
        Node(
            id="V", kind="vehicle", attrs={"vehicle_type": "OHT", "segment": "rail", "offset": 1.0}
        )
    )
    return scene


def aabb_distance(lo_a, hi_a, lo_b, hi_b) -> float:
    """Exact distance between two axis-aligned boxes (0 when they touch or overlap)."""
    gaps = np.maximum(0.0, np.maximum(np.asarray(lo_b) - hi_a, np.asarray(lo_a) - hi_b))
    return float(np.linalg.norm(gaps))


def test_clearance_agrees_with_exact_box_distances():
    """can_place's distance to the nearest tool equals the exact box–box distance; ok ⇔ > margin."""
    rng = np.random.default_rng(11)
    boxes = []
    for k in range(12):
        boxes.append((k % 4 * 6.0, k // 4 * 6.0, *rng.uniform(0.5, 3.0, 2), rng.uniform(1.0, 3.0)))
    world = PhysicsWorld(tool_scene(boxes))
    try:
        checked = 0
        for _ in range(80):
            size = rng.uniform(0.3, 2.0, 3)
            pos = np.array([rng.uniform(-2, 20), rng.uniform(-2, 14), 0.0])
            margin = float(rng.uniform(0.0, 1.0))
            got = world.can_place(tuple(size), pos, margin, search=3.0)
            lo_p, hi_p = (
                pos - [size[0] / 2, size[1] / 2, 0],
                pos + [size[0] / 2, size[1] / 2, size[2]],
            )
            exact = []
            for k, (x, y, sx, sy, sz) in enumerate(boxes):
                lo, hi = (
                    np.array([x - sx / 2, y - sy / 2, 0]),
                    np.array([x + sx / 2, y + sy / 2, sz]),
                )
                exact.append((aabb_distance(lo_p, hi_p, lo, hi), f"T{k}"))
            exact.sort()
            d, nearest = exact[0]
            if d > 3.0:
                assert got.nearest is None and got.ok
                continue
            if d > 2e-3:  # separated: the distance agrees to a millimetre (GJK tolerance)
                assert got.distance == pytest.approx(d, abs=1e-3)
                assert got.nearest == nearest
                checked += 1
            for dist, name in exact:
                if dist < margin - 2e-3:
                    assert name in got.blocking
                elif dist > margin + 2e-3:
                    assert name not in got.blocking
            if abs(d - margin) > 2e-3:
                assert got.ok == (d > margin)
        assert checked > 20
    finally:
        world.close()


def test_clearance_counts_rails_and_a_rotated_pose():
    """A box just under the rail is blocked by it; yawed 90° a long box reaches a tool it would miss."""
    scene = tool_scene([(0.0, 0.0, 1.0, 1.0, 1.0)])
    with PhysicsWorld(scene) as world:
        under_rail = world.can_place((1.0, 1.0, 3.7), (-45.0, -50.0, 0.0), 0.05)
        assert not under_rail.ok and under_rail.blocking == ("__rails__",)
        assert world.can_place((1.0, 1.0, 3.0), (-45.0, -50.0, 0.0), 0.05).ok
        long_box = (0.4, 4.0, 1.0)
        assert world.can_place(long_box, (2.5, 0.0, 0.0, 0.0), 0.1).ok
        assert not world.can_place(long_box, (2.5, 0.0, 0.0, math.pi / 2), 0.1).ok


def l_shape() -> trimesh.Trimesh:
    """An L-shaped (concave) block: 4 × 4 × 2 m with a 3 × 3 m notch out of one corner."""
    a = trimesh.creation.box(extents=(4.0, 1.0, 2.0))
    a.apply_translation((2.0, 0.5, 1.0))
    b = trimesh.creation.box(extents=(1.0, 3.0, 2.0))
    b.apply_translation((0.5, 2.5, 1.0))
    return trimesh.util.concatenate([a, b])


def test_concave_assets_use_exact_meshes_when_asked():
    """A probe inside the notch of an L-shaped tool collides with its convex hull, not its mesh."""
    scene = SceneGraph("concave")
    scene.assets["L"] = Asset.from_mesh("L", l_shape())
    scene.add(Node(id="L1", kind="tool", family="X", asset="L"))
    scene.add(Node(id="L2", kind="tool", family="X", asset="L", transform=translation(10, 0)))
    probe = ((1.0, 1.0, 1.0), (2.5, 2.5, 0.0))
    with PhysicsWorld(scene) as hull_world:
        assert not hull_world.can_place(*probe, 0.0).ok
        assert len([k for k in hull_world._shapes if k[0] == "asset"]) == 1  # shared by both tools
    with PhysicsWorld(scene, concave_static=True) as exact_world:
        res = exact_world.can_place(*probe, 0.0)
        assert res.ok and res.distance == pytest.approx(1.0, abs=2e-3)  # 1 m to either arm


def test_one_collision_shape_per_distinct_size():
    """Tools of equal size share a collision shape; bodies exist for every tool and vehicle."""
    boxes = [(k * 5.0, 0.0, 2.0, 1.0, 2.0) for k in range(10)] + [(0.0, 9.0, 3.0, 1.0, 2.0)]
    with PhysicsWorld(tool_scene(boxes)) as world:
        box_shapes = [k for k in world._shapes if k[0] == "box"]
        # two tool sizes, the floor and the vehicle
        assert len(box_shapes) == 4
        assert all(f"T{k}" in world.body for k in range(11)) and "V" in world.body


def test_several_worlds_live_in_one_process():
    """Two worlds keep separate clients and state; closing one leaves the other working."""
    scene = loop_scene(vehicles=4)
    a, b = PhysicsWorld(scene), PhysicsWorld(scene)
    try:
        assert a.client != b.client
        a.set_vehicle_pose("v0", "s7", 1.0)
        _, pos_a, _ = a.vehicle_poses()
        _, pos_b, _ = b.vehicle_poses()
        assert np.allclose(pos_a[0], scene.point_on_segment("s7", 1.0))
        assert np.allclose(pos_b[0], scene.point_on_segment("s0", 0.0))
        a.close()
        hits = b.ray_cast(np.array([[0.0, 0.0, 10.0]]), np.array([[0.0, 0.0, -1.0]]))
        assert hits.ids[0] in ("__rails__", "v0", "__floor__")
    finally:
        a.close()
        b.close()


def test_batched_rays_hit_tool_tops_at_their_heights():
    """Vertical rays hit each tool's top at its height and the floor elsewhere."""
    boxes = [(k * 4.0, 0.0, 2.0, 2.0, 1.0 + k * 0.5) for k in range(5)]
    with PhysicsWorld(tool_scene(boxes)) as world:
        xs = np.array([b[0] for b in boxes] + [2.0])
        origins = np.stack([xs, np.zeros_like(xs), np.full_like(xs, 10.0)], axis=1)
        ends = origins - [0.0, 0.0, 20.0]
        hits = world.ray_cast(origins, ends)
        assert hits.ids == [f"T{k}" for k in range(5)] + ["__floor__"]
        assert np.allclose(hits.position[:5, 2], [b[4] for b in boxes], atol=1e-4)
        assert hits.position[5, 2] == pytest.approx(0.0, abs=1e-4)
        assert np.allclose(hits.normal[:, 2], 1.0)


def test_vehicle_poses_follow_an_oht_simulation():
    """sync_oht puts each vehicle body at its simulated rail point."""
    from twin.physics.oht import OhtSim

    scene = loop_scene(vehicles=6)
    sim = OhtSim(scene, seed=4, random_transfers=True)
    sim.advance(42.0)
    with PhysicsWorld(scene) as world:
        world.sync_oht(sim)
        ids, pos, quat = world.vehicle_poses()
        expect, yaw = sim.positions()
        order = [sim.index[v] for v in ids]
        assert np.allclose(pos, expect[order])
        assert np.allclose(2 * np.arctan2(quat[:, 2], quat[:, 3]), yaw[order])


def test_bad_poses_and_states_raise_and_change_nothing():
    """NaN offsets, unknown ids and unknown E10 states raise; the world stays as it was."""
    scene = tool_scene([(0.0, 0.0, 1.0, 1.0, 1.0)])
    with PhysicsWorld(scene) as world:
        _, before, _ = world.vehicle_poses()
        with pytest.raises(InputError) as err:
            world.set_vehicle_poses(["V", "ghost"], ["rail", "rail"], [math.nan, 1.0])
        assert len(err.value.problems) == 2
        with pytest.raises(InputError):
            world.set_vehicle_pose("V", "rail", 99.0)
        with pytest.raises(InputError):
            world.set_vehicle_pose("V", "no_rail", 1.0)
        _, after, _ = world.vehicle_poses()
        assert np.array_equal(before, after)
        with pytest.raises(InputError, match="productive"):
            world.set_equipment_state("T0", "broken")
        with pytest.raises(NotFoundError):
            world.set_equipment_state("T9", "productive")
        assert world.states == {}
        with pytest.raises(InputError):
            world.can_place((1.0, math.nan, 1.0), (0, 0, 0), 0.1)
        with pytest.raises(InputError):
            world.ray_cast(np.zeros((2, 3)), np.zeros((3, 3)))
        world.set_equipment_state("T0", "unscheduled_down")
        assert world.states == {"T0": "unscheduled_down"}


def dominant_colour(image: np.ndarray) -> np.ndarray:
    """Median colour of the pixels that are not the floor or background grey/white."""
    px = image.reshape(-1, 3).astype(float)
    saturated = px.max(axis=1) - px.min(axis=1) > 40
    return np.median(px[saturated], axis=0)


def test_camera_shows_family_and_state_colours():
    """From above, a tool shows its family colour; with a state, the E10 state colour."""
    scene = tool_scene([(0.0, 0.0, 6.0, 6.0, 1.0)], family="Litho_FE_92")
    with PhysicsWorld(scene) as world:
        image = world.camera_image((0.0, 0.0, 12.0), (0.0, 0.0, 0.0), width=160, height=120)
        assert image.shape == (120, 160, 3) and image.dtype == np.uint8
        want = np.array(family_colour("Litho_FE_92")[:3]) * 255
        got = dominant_colour(image)
        assert np.argmax(got) == np.argmax(want)
        world.set_equipment_state("T0", "unscheduled_down")
        red = dominant_colour(
            world.camera_image((0.0, 0.0, 12.0), (0, 0, 0), width=160, height=120)
        )
        want = np.array(state_colour("unscheduled_down")[:3]) * 255
        assert np.argmax(red) == 0 and np.argmax(want) == 0 and red[0] > 2 * red[1]


def test_many_rays_in_one_call():
    """Tens of thousands of rays (several pybullet batches) all come back, in order."""
    with PhysicsWorld(tool_scene([(0.0, 0.0, 4.0, 4.0, 2.0)])) as world:
        n = 40_000
        xs = np.linspace(-6.0, 6.0, n)
        origins = np.column_stack([xs, np.zeros(n), np.full(n, 10.0)])
        hits = world.ray_cast(origins, origins - [0.0, 0.0, 20.0])
        inside = np.abs(xs) < 2.0 - 1e-6
        outside = np.abs(xs) > 2.0 + 1e-6
        assert len(hits.ids) == n
        assert np.allclose(hits.position[inside, 2], 2.0, atol=1e-4)
        assert np.allclose(hits.position[outside, 2], 0.0, atol=1e-4)


def test_missing_assets_are_listed():
    """Tools naming assets the scene lacks are all reported; no world is left behind."""
    scene = tool_scene([(0.0, 0.0, 1.0, 1.0, 1.0)])
    scene.add(Node(id="A1", kind="tool", family="X", asset="ghost"))
    scene.add(Node(id="A2", kind="stocker", asset="phantom"))
    with pytest.raises(InputError) as err:
        PhysicsWorld(scene)
    assert len(err.value.problems) == 2 and "ghost" in str(err.value)
