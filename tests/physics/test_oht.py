"""OHT transport: headway, merges, routes, re-routing, deadlocks and bad input."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.physics.scenes import GAP, line_scene, loop_scene
from twin.errors import ConfigError, InputError, NotFoundError
from twin.physics.deadlock import DeadlockError
from twin.physics.oht import OhtConfig, OhtSim
from twin.physics.routing import RailIndex, Router
from twin.scene.graph import Node, translation


def pairwise_gaps(sim: OhtSim) -> float:
    """Smallest along-rail distance between two vehicles, computed from the scene alone: pairs on
    one segment, and pairs on two consecutive segments (through their shared node)."""
    seg, off, _, _ = sim.state()
    segs = [sim.rail.seg_ids[s] for s in seg]
    scene = sim.scene
    best = math.inf
    for i in range(sim.n):
        for j in range(sim.n):
            if i == j:
                continue
            a, b = scene.segments[segs[i]], scene.segments[segs[j]]
            if a.id == b.id and off[j] >= off[i]:
                best = min(best, off[j] - off[i])
            elif a.end == b.start:
                best = min(best, a.length - off[i] + off[j])
    return best


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 10_000),
    vehicles=st.integers(2, 60),
    tick=st.sampled_from([0.2, 0.5, 1.0]),
    shortcut=st.booleans(),
    steps=st.lists(st.floats(0.05, 7.0), min_size=5, max_size=10),
)
def test_headway_never_violated_under_random_transfers(seed, vehicles, tick, shortcut, steps):
    """No two vehicles ever come closer along the rail than length + min distance."""
    sim = OhtSim(
        loop_scene(vehicles=vehicles, shortcut=shortcut),
        OhtConfig(tick=tick, load_time=4.0, unload_time=4.0),
        seed=seed,
        random_transfers=True,
    )
    for k in range(40):
        sim.advance(steps[k % len(steps)])
        assert pairwise_gaps(sim) >= GAP - 1e-6
    assert sim.stats.emergencies == 0
    assert (sim.summary()["min_headway_m"] or math.inf) >= GAP - 1e-6  # None: never had a leader


def test_vehicles_keep_moving_and_complete_transfers():
    """Random transfers on a loop with a merge complete steadily, without deadlock."""
    sim = OhtSim(loop_scene(vehicles=30), OhtConfig(), seed=1, random_transfers=True)
    sim.advance(600)
    out = sim.summary()
    assert out["transfers_completed"] > 30
    assert out["deadlocks"] == 0
    assert out["min_headway_m"] >= GAP - 1e-9
    for job in sim.stats.completed:  # every transfer: assigned ≤ picked ≤ completed, with hoists
        assert job.assigned <= job.picked - sim.config.load_time + 1e-9
        assert job.picked <= job.completed - sim.config.unload_time + 1e-9


def test_merge_is_granted_first_come_first_served():
    """Two vehicles heading for one merge: the one that asks first goes through first."""
    scene = loop_scene(vehicles=0, shortcut=True)
    # v_near on the loop 1.5 m before the merge node n12; v_far on the shortcut 3 m before it
    for vid, seg, off in (
        ("v_near", "s11", 2.5),
        ("v_far", "cut", scene.segments["cut"].length - 3.0),
    ):
        scene.add(
            Node(
                id=vid, kind="vehicle", attrs={"vehicle_type": "OHT", "segment": seg, "offset": off}
            )
        )
    sim = OhtSim(scene, OhtConfig(load_time=1.0, unload_time=1.0))
    sim.submit("v_near", "port_s11", "port_s13")
    sim.submit("v_far", "port_cut", "port_s14")
    order = []
    for _ in range(200):
        sim.advance(0.1)
        seg, _, _, _ = sim.state()
        for vid in ("v_near", "v_far"):
            if sim.rail.seg_ids[seg[sim.index[vid]]] == "s12" and vid not in order:
                order.append(vid)
    assert order == ["v_near", "v_far"]


@pytest.mark.parametrize("shortcut", [True, False])
def test_routes_agree_with_scene_rail_path(shortcut):
    """The fast router's route lengths equal networkx's shortest rail paths (SceneGraph.rail_path)."""
    scene = loop_scene(side=30, per_side=7, vehicles=1, shortcut=shortcut)
    index = RailIndex(scene)
    router = Router(index)
    rng = np.random.default_rng(3)
    ports = sorted(scene.ports)
    for _ in range(60):
        a, b = rng.choice(ports, size=2, replace=False)
        la, lb = scene.ports[a], scene.ports[b]
        segs, length = router.route(
            index.seg_index[la.segment], la.offset, index.seg_index[lb.segment], lb.offset
        )
        ref = scene.rail_path(a, b)
        assert length == pytest.approx(ref.length, abs=1e-9)
        assert tuple(index.seg_ids[s] for s in segs) == ref.segments


def test_closing_a_segment_reroutes_the_vehicles_that_use_it():
    """A closed shortcut is avoided: the vehicle takes the long way and arrives."""
    scene = loop_scene(vehicles=1, shortcut=True)
    sim = OhtSim(scene, OhtConfig(load_time=1.0, unload_time=1.0))
    sim.submit("v0", "port_s0", "port_s13")
    while sim.stage_of("v0") != "to_dest":
        sim.advance(0.5)
    assert "cut" in [sim.rail.seg_ids[s] for s in sim.r_segs[0, : sim.r_n[0]]]
    sim.close_segment("cut")
    ref = scene.rail_path("port_s0", "port_s13", closed=["cut"])
    route = [sim.rail.seg_ids[s] for s in sim.r_segs[0, : sim.r_n[0]]]
    assert "cut" not in route
    seen = set()
    while not sim.stats.completed:
        sim.advance(0.25)
        seen.add(sim.rail.seg_ids[sim.state()[0][0]])
        assert sim.t < 300
    assert "cut" not in seen
    assert set(ref.segments) <= seen


def test_closing_the_only_way_is_refused_and_changes_nothing():
    """Closing a segment that a route cannot avoid raises and leaves routes and closures as they were."""
    scene = loop_scene(vehicles=1, shortcut=False)
    sim = OhtSim(scene, OhtConfig())
    sim.submit("v0", "port_s0", "port_s10")
    before = sim.r_segs.copy(), set(sim.router.closed)
    with pytest.raises(InputError, match="no rail path"):
        sim.close_segment("s5")
    assert np.array_equal(sim.r_segs, before[0]) and sim.router.closed == before[1]
    sim.advance(60)
    assert sim.stats.completed


def test_packed_loop_is_reported_as_deadlock():
    """Vehicles bumper to bumper round a loop wait on each other in a cycle: reported once, with
    every vehicle, and they indeed never move again."""
    n = 8
    scene = loop_scene(side=n * GAP / 4, per_side=2, vehicles=n, shortcut=False)
    sim = OhtSim(scene, OhtConfig(load_time=1.0, unload_time=1.0))
    for k in range(n):
        sim.submit(f"v{k}", f"port_s{(k + 3) % n}", f"port_s{(k + 5) % n}")
    sim.advance(20)
    _, _, _, odo = sim.state()
    sim.advance(60)
    assert len(sim.deadlocks) == 1
    assert sorted(sim.deadlocks[0].vehicles) == sorted(f"v{k}" for k in range(n))
    assert np.array_equal(sim.state()[3], odo)
    assert sim.summary()["deadlocks"] == 1
    # asked to stop: the same situation raises, naming the vehicles, at the time it is found
    strict = OhtSim(scene, OhtConfig(load_time=1.0, unload_time=1.0, stop_on_deadlock=True))
    for k in range(n):
        strict.submit(f"v{k}", f"port_s{(k + 3) % n}", f"port_s{(k + 5) % n}")
    with pytest.raises(DeadlockError, match="v0") as err:
        strict.advance(80)
    assert strict.t == pytest.approx(err.value.deadlock.time) and strict.t < 80


def test_bad_vehicles_are_all_listed():
    """Unknown vehicle type, unknown segment and a NaN offset are reported together."""
    scene = line_scene([5.0])
    scene.add(
        Node(
            id="bad_type",
            kind="vehicle",
            attrs={"vehicle_type": "X", "segment": "s0", "offset": 2.0},
        )
    )
    scene.add(
        Node(
            id="bad_seg",
            kind="vehicle",
            attrs={"vehicle_type": "OHT", "segment": "nope", "offset": 1.0},
        )
    )
    scene.add(
        Node(
            id="bad_off",
            kind="vehicle",
            attrs={"vehicle_type": "OHT", "segment": "s0", "offset": math.nan},
        )
    )
    with pytest.raises(InputError) as err:
        OhtSim(scene)
    text = str(err.value)
    assert "unknown vehicle type 'X'" in text and "'nope'" in text and "nan" in text
    assert len(err.value.problems) == 3


def test_vehicles_starting_too_close_are_refused():
    """Two vehicles closer than length + min distance at the start are an input error."""
    scene = line_scene([5.0])
    scene.add(
        Node(id="v1", kind="vehicle", attrs={"vehicle_type": "OHT", "segment": "s0", "offset": 0.5})
    )
    with pytest.raises(InputError, match="closer than"):
        OhtSim(scene)


def test_bad_transfers_change_nothing():
    """Unknown ids, an off-rail port and an unreachable destination raise; the vehicle stays idle."""
    scene = line_scene([3.0, 4.0])
    scene.add(Node(id="floating", kind="port", transform=translation(1, 1, 1)))
    scene.link_port("floating", tool=None, segment=None)
    sim = OhtSim(scene)
    with pytest.raises(NotFoundError):
        sim.submit("ghost", "p_start", "p_end")
    with pytest.raises(NotFoundError):
        sim.submit("v0", "p_start", "nowhere")
    with pytest.raises(InputError, match="not on the rail network"):
        sim.submit("v0", "floating", "p_end")
    with pytest.raises(InputError, match="no rail path"):
        sim.submit("v0", "p_end", "p_start")  # the line is one way
    assert sim.stage_of("v0") == "idle" and sim.queue[0] == []
    with pytest.raises(InputError):
        sim.advance(math.nan)
    sim.submit("v0", "p_start", "p_end")
    sim.advance(30)
    assert len(sim.stats.completed) == 1


def test_bad_config_lists_every_problem():
    """An invalid config names each bad field and what is accepted."""
    with pytest.raises(ConfigError) as err:
        OhtSim(line_scene([5.0]), OhtConfig(tick=-1, load_time=math.nan, curve_speed=0))
    assert len(err.value.problems) == 3
    with pytest.raises(ConfigError, match="lookahead"):
        OhtSim(line_scene([5.0]), OhtConfig(lookahead=0.5))


def test_vehicle_positions_lie_on_their_segments():
    """World positions are the rail points at each vehicle's segment offset."""
    scene = loop_scene(vehicles=10)
    sim = OhtSim(scene, seed=2, random_transfers=True)
    sim.advance(33.3)
    pos, yaw = sim.positions()
    seg, off, _, _ = sim.state()
    for i in range(sim.n):
        expect = scene.point_on_segment(sim.rail.seg_ids[seg[i]], off[i])
        assert np.allclose(pos[i], expect)
    assert np.all(np.isfinite(yaw))


def test_wait_cycles_match_networkx():
    """The one-pass cycle search finds exactly the cycles networkx finds in random wait-for graphs."""
    import networkx as nx

    from twin.physics.deadlock import wait_cycles

    rng = np.random.default_rng(5)
    for _ in range(200):
        n = int(rng.integers(1, 30))
        blocker = np.where(rng.random(n) < 0.7, rng.integers(0, n, n), -1)
        graph = nx.DiGraph([(i, int(b)) for i, b in enumerate(blocker) if b >= 0])
        expect = {frozenset(c) for c in nx.simple_cycles(graph)}
        got = wait_cycles(blocker)
        assert {frozenset(c) for c in got} == expect
        for cycle in got:  # in wait order: each waits on the next
            assert all(blocker[a] == b for a, b in zip(cycle, cycle[1:] + cycle[:1]))


def test_reopened_segment_is_used_again():
    """After open_segment, new routes take the shortcut again (shortest path on the full graph)."""
    scene = loop_scene(vehicles=1, shortcut=True)
    sim = OhtSim(scene, OhtConfig(load_time=1.0, unload_time=1.0))
    sim.close_segment("cut")
    sim.open_segment("cut")
    sim.submit("v0", "port_s0", "port_s13")
    while sim.stage_of("v0") != "to_dest":
        sim.advance(0.5)
    assert "cut" in [sim.rail.seg_ids[s] for s in sim.r_segs[0, : sim.r_n[0]]]
    with pytest.raises(NotFoundError):
        sim.close_segment("no_such_segment")


@pytest.mark.parametrize("seed", [1, 2])
def test_mixed_vehicle_types_keep_each_followers_gap(seed):
    """With two vehicle types (one slower, braking softer, longer) every follower keeps its own
    length + min distance to the vehicle ahead, without emergency braking."""
    scene = loop_scene(vehicles=24, shortcut=True)
    scene.vehicle_types["SLOW"] = {
        "length": 1.0,
        "max_speed": 1.0,
        "acceleration": 1.0,
        "deceleration": 1.5,
        "min_distance": 0.2,
    }
    for k in range(0, 24, 3):
        scene.node(f"v{k}").attrs["vehicle_type"] = "SLOW"
    sim = OhtSim(scene, OhtConfig(tick=0.5), seed=seed, random_transfers=True)
    gap = {vid: (1.2 if int(vid[1:]) % 3 == 0 else GAP) for vid in sim.ids}
    for _ in range(150):
        sim.advance(1.3)
        seg, off, _, _ = sim.state()
        for i in range(sim.n):
            for j in range(sim.n):
                a, b = (
                    scene.segments[sim.rail.seg_ids[seg[i]]],
                    scene.segments[sim.rail.seg_ids[seg[j]]],
                )
                if i != j and a.id == b.id and off[j] >= off[i]:
                    assert off[j] - off[i] >= gap[sim.ids[i]] - 1e-6
                elif i != j and a.end == b.start:
                    assert a.length - off[i] + off[j] >= gap[sim.ids[i]] - 1e-6
    assert sim.stats.emergencies == 0
    assert sim.stats.completed
