"""The catalog built from the demo fab scene and its process model, used by the validator."""

from __future__ import annotations

from pathlib import Path

import pytest

from twin.live.catalog import Catalog
from twin.live.events import make_event
from twin.live.state import TwinState, apply
from twin.live.validate import validate

DEMO = Path(__file__).resolve().parents[2] / "scenes" / "demo-fab"


@pytest.fixture(scope="module")
def demo():
    if not (DEMO / "scene.yaml").exists():
        pytest.skip("scenes/demo-fab is not in this checkout")
    from twin.process import load_model
    from twin.scene.load import load_scene

    scene = load_scene(DEMO)
    model = load_model(scene.metadata["process_dir"])
    return scene, model, Catalog.from_scene(scene, model)


def test_catalog_matches_scene_and_model(demo):
    """Every tool/stocker, port, vehicle, segment and route step of the demo fab is in the catalog."""
    scene, model, cat = demo
    assert set(cat.equipment) == {n.id for n in scene.nodes(("tool", "stocker", "station"))}
    assert {t: f for t, f in cat.equipment.items() if f} == {n.id: n.family for n in scene.tools()}
    assert set(cat.ports) == set(scene.ports) | {n.id for n in scene.nodes("port")}
    assert cat.vehicles == {n.id for n in scene.nodes("vehicle")}
    assert cat.segments == {s: seg.length for s, seg in scene.segments.items()}
    for name, product in model.products.items():
        steps = model.routes[product.route].steps
        assert [s.number for s in cat.products[name]] == [s.number for s in steps]
        assert [s.is_delay for s in cat.products[name]] == [s.is_delay for s in steps]
    assert Catalog.from_dict(cat.to_dict()) == cat


def test_demo_lot_walks_its_route(demo):
    """A lot of the demo fab is accepted at tools of its steps' families and refused elsewhere."""
    scene, model, cat = demo
    product = sorted(cat.products)[0]
    route = [s for s in cat.products[product] if not s.is_delay][:3]
    s = TwinState(cat)
    seq = 0

    def send(type, subject, **data):
        nonlocal seq
        seq += 1
        e = make_event("mes", seq, 1000.0 + seq, type, subject, **data)
        reason = validate(e, s)
        if reason is None:
            apply(s, e)
        return reason

    assert send("lot.released", "LOT1", product=product) is None
    for step in route:
        right = sorted(n.id for n in scene.tools(step.family))[0]
        wrong = sorted(n.id for n in scene.tools() if n.family != step.family)[0]
        reason = send("lot.track_in", "LOT1", equipment=wrong, step=step.number)
        assert reason is not None and f"needs family {step.family}" in reason
        assert send("lot.track_in", "LOT1", equipment=right, step=step.number) is None
        assert send("lot.track_out", "LOT1", equipment=right, step=step.number) is None
    assert s.lots["LOT1"].moves == len(route)
    seg = sorted(cat.segments)[0]
    vid = sorted(cat.vehicles)[0]
    pos = make_event("amhs", 1, 2000.0, "vehicle.position", vid, segment=seg, offset=0.0, speed=1.0)
    assert validate(pos, s) is None


def test_synchroniser_moves_the_demo_physics_world(demo):
    """Vehicle positions and E10 states ingested for the demo fab move/colour the pybullet world:
    each vehicle ends where the scene puts that segment offset; a refused id is reported."""
    pytest.importorskip("pybullet")
    from twin.live.sources import Message
    from twin.live.store import MemoryStore
    from twin.live.sync import Synchroniser
    from twin.physics.world import PhysicsWorld

    scene, _, cat = demo
    vehicles = sorted(cat.vehicles)[:3]
    segs = sorted(cat.segments)[:3]
    tool = sorted(n.id for n in scene.tools())[0]
    events = [
        make_event(
            "amhs",
            i + 1,
            1000.0 + i,
            "vehicle.position",
            v,
            segment=seg,
            offset=cat.segments[seg] / 2,
            speed=1.0,
        )  # fmt: skip
        for i, (v, seg) in enumerate(zip(vehicles, segs))
    ]
    events.append(make_event("mes", 1, 1000.0, "equipment.state", tool, state="unscheduled_down",
                             reason="breakdown"))  # fmt: skip
    with PhysicsWorld(scene) as world:
        sync = Synchroniser(MemoryStore(), cat, world=world)
        sync.process([Message(e) for e in events])
        ids, pos, _ = world.vehicle_poses()
        for v, seg in zip(vehicles, segs):
            want = scene.point_on_segment(seg, cat.segments[seg] / 2)
            assert pos[ids.index(v)][:2] == pytest.approx(want[:2], abs=1e-6)
        assert world.states[tool] == "unscheduled_down"
        assert sync.stats.world_errors == 0
        # a catalog-less twin accepts a vehicle the world does not know: reported, not fatal
        blind = Synchroniser(MemoryStore(), None, world=world)
        ghost = make_event("amhs", 1, 1.0, "vehicle.position", "GHOST", segment=segs[0],
                           offset=0.0, speed=0.0)  # fmt: skip
        blind.process([Message(ghost)])
        assert blind.stats.world_errors == 1 and "GHOST" in blind.stats.last_world_error
        assert blind.state.vehicles["GHOST"].segment == segs[0]
