"""The fast OHT model: kinematics, queueing sanity and bad input."""

from __future__ import annotations

import math

import numpy as np
import pytest

from twin.amhs.model import AmhsConfig, AmhsModel, profile_time
from twin.errors import ConfigError, InputError, NotFoundError
from twin.physics.motion import trapezoid_time
from twin.physics.oht import OhtSim
from twin.scene.load import load_scene


@pytest.fixture(scope="module")
def scene():
    return load_scene("demo-fab")


def _tool_ports(scene):
    return sorted(p for p, link in scene.ports.items() if link.tool and link.segment)


@pytest.mark.parametrize("dist", [0.1, 0.5, 1.3, 5.0, 80.0])
def test_profile_one_cap_is_the_trapezoid(dist):
    """With one speed cap the route time is the physics world's closed-form trapezoid."""
    got = profile_time(np.array([dist * 0.3, dist * 0.7]), np.array([1.5, 1.5]), 2.0, 3.0)
    assert got == pytest.approx(trapezoid_time(dist, 1.5, 2.0, 3.0), rel=1e-12)


def test_profile_slow_piece_costs_time():
    """A slower piece in the middle lengthens the trip, and no more than crawling it would."""
    free = profile_time(np.array([10.0, 2.0, 10.0]), np.array([1.5, 1.5, 1.5]), 2.0, 3.0)
    slow = profile_time(np.array([10.0, 2.0, 10.0]), np.array([1.5, 1.0, 1.5]), 2.0, 3.0)
    assert free < slow < free + 2.0 / 1.0


@pytest.mark.parametrize("pair", [(3, -5), (10, 2), (0, 20)])
def test_lone_vehicle_matches_physics_world(scene, pair):
    """One vehicle, one move: the drop-off ends when the physics world's OhtSim says (1 µs)."""
    ports = _tool_ports(scene)
    a, b = ports[pair[0]], ports[pair[1]]
    vid = scene.nodes("vehicle")[0].id
    sim = OhtSim(scene, vehicles=[vid])
    sim.submit(vid, a, b)
    while not sim.stats.completed:
        sim.advance(5.0)
    m = AmhsModel(scene, AmhsConfig(vehicles=1))
    fast = m.move(0.0, m.stop_of_port(a), m.stop_of_port(b))
    assert fast == pytest.approx(sim.stats.completed[0].completed, abs=1e-6)


def test_one_vehicle_far_apart_is_kinematic_time_exactly(scene):
    """One vehicle, moves far apart in time: delivery = empty + hoist + loaded + hoist travel."""
    m = AmhsModel(scene, AmhsConfig(vehicles=1))
    ports = _tool_ports(scene)
    rng = np.random.default_rng(1)
    t = 0.0
    for _ in range(30):
        a, b = (m.stop_of_port(ports[k]) for k in rng.choice(len(ports), 2, replace=False))
        here = int(m.pos[0])
        done = m.move(t, a, b)
        want = m.trip(here, a)[0] + 12.0 + m.trip(a, b)[0] + 12.0
        assert done - t == pytest.approx(want, abs=1e-9)  # no congestion with one vehicle
        t += 10_000.0
    assert max(m.stats.wait) == 0.0 and max(m.stats.blocked) == 0.0


def test_many_vehicles_tend_to_free_flow(scene):
    """More vehicles: less waiting, and with plenty (no congestion terms) the free-flow trip."""
    ports = _tool_ports(scene)
    rng = np.random.default_rng(2)
    reqs = [(t, *rng.choice(len(ports), 2, replace=False)) for t in np.arange(0, 3600, 8.0)]
    means = []
    for n in (2, 8, 400):
        m = AmhsModel(scene, AmhsConfig(vehicles=n, congestion=0.0, merge_headway=0.0))
        for t, a, b in reqs:
            m.move(float(t), m.stop_of_port(ports[a]), m.stop_of_port(ports[b]))
        means.append(np.mean(m.stats.delivery))
        if n == 400:
            assert max(m.stats.wait) == 0.0
            free = [
                m.trip(m.stop_of_port(ports[a]), m.stop_of_port(ports[b]))[0] + 24.0
                for _, a, b in reqs
            ]
            excess = np.array(m.stats.delivery) - np.array(free)
            assert np.all(excess >= -1e-9)
            assert np.mean(excess) < 0.25 * np.mean(free)  # only the short empty run is left
    assert means[0] > means[1] > means[2]


def test_congestion_slows_a_busy_fleet(scene):
    """The congestion term only adds time, and grows with the traffic on the route."""
    ports = _tool_ports(scene)
    rng = np.random.default_rng(3)
    reqs = [(t, *rng.choice(len(ports), 2, replace=False)) for t in np.arange(0, 3600, 5.0)]
    out = {}
    for c in (0.0, 1.0):
        m = AmhsModel(scene, AmhsConfig(congestion=c, merge_headway=None if c else 0.0))
        for t, a, b in reqs:
            m.move(float(t), m.stop_of_port(ports[a]), m.stop_of_port(ports[b]))
        out[c] = m
    assert np.mean(out[1.0].stats.blocked) > 0 == np.mean(out[0.0].stats.blocked)
    k = out[1.0].kpis(3600.0)
    assert 0 < k["utilisation"] <= 1 and len(k["congested_segments"]) == 10
    assert k["delivery_p99_s"] >= k["delivery_p95_s"] >= 0


@pytest.mark.parametrize(
    "field,value",
    [
        ("vehicles", 0),
        ("vehicles", -3),
        ("vehicles", True),
        ("vehicles", 2.5),
        ("vehicles", 10**12),
        ("vehicle_speed", 0.0),
        ("vehicle_speed", math.nan),
        ("vehicle_speed", math.inf),
        ("load_time", -1.0),
        ("congestion", "\ud800"),
        ("dispatch_rule", "\ud800"),
        ("dispatch_rule", None),
        ("u_max", 1.5),
        ("merge_headway", -1.0),
        ("merge_headway", math.nan),
        ("merge_headway", 31.0),
        ("merge_headway", "\ud800"),
        ("merge_slot", 0.0),
        ("merge_slot", math.inf),
        ("merge_slot", 1e9),
        ("merge_slot", True),
    ],
)
def test_bad_config(scene, field, value):
    """Garbage in the config is refused with the field named, before anything runs."""
    with pytest.raises(ConfigError, match=field):
        AmhsModel(scene, AmhsConfig(**{field: value}))


@pytest.mark.parametrize("t", [math.nan, math.inf, -math.inf, "soon", None])
def test_bad_request_time(scene, t):
    """A request time that is no finite number is refused."""
    m = AmhsModel(scene)
    with pytest.raises(InputError, match="finite"):
        m.move(t, 0, 1)


def test_requests_out_of_order(scene):
    """Requests must come in non-decreasing time; an earlier one is refused."""
    m = AmhsModel(scene)
    m.move(100.0, 0, 1)
    with pytest.raises(InputError, match="before the previous one"):
        m.move(50.0, 1, 0)


def test_unknown_port(scene):
    """An unknown port name (even a lone surrogate) is a NotFoundError."""
    m = AmhsModel(scene)
    for bad in ("nope", "\ud800", "x" * 100_000):
        with pytest.raises(NotFoundError):
            m.stop_of_port(bad)


def test_extreme_times(scene):
    """Huge but finite request times work and keep their order."""
    m = AmhsModel(scene)
    a = m.move(1e15, 0, 1)
    b = m.move(1e15 + 1, 1, 2)
    c = m.move(1e301, 2, 0)
    assert a > 1e15 and b > 1e15 + 1 and c >= 1e301


def test_rail_speed_slows_a_bay(scene):
    """rail_speed (bay, factor) lowers the caps of that bay's segments only."""
    ports = _tool_ports(scene)
    base = AmhsModel(scene, AmhsConfig(vehicles=1))
    slow = AmhsModel(scene, AmhsConfig(vehicles=1, rail_speed=(("BAY1", 0.5),)))
    bay1 = np.array([scene.segments[s].bay == "BAY1" for s in base.rail.seg_ids])
    assert np.allclose(slow.seg_cap[bay1], 0.5 * base.seg_cap[bay1])
    assert np.array_equal(slow.seg_cap[~bay1], base.seg_cap[~bay1])
    a, b = base.stop_of_port(ports[0]), base.stop_of_port(ports[-1])
    assert (
        slow.trip(slow.stop_of_port(ports[0]), slow.stop_of_port(ports[-1]))[0]
        >= base.trip(a, b)[0]
    )


@pytest.mark.parametrize(
    "value", [(("BAY1", 0.0),), (("BAY1", math.nan),), (("BAY1", "fast"),), ("BAY1",), [1]]
)
def test_bad_rail_speed(scene, value):
    """A rail_speed that is not (bay, factor in (0, 100]) pairs is refused."""
    with pytest.raises(ConfigError, match="rail_speed"):
        AmhsModel(scene, AmhsConfig(rail_speed=value))


def test_merge_headway_from_kinematics(scene):
    """The default merge headway is 2 gaps from rest plus 1.5 ticks (2.098 s for OHTV0)."""
    m = AmhsModel(scene)
    want = math.sqrt(4 * m.gap / m.acc) + 1.5 * 0.5
    assert m.merge_headway == pytest.approx(want, rel=1e-12)
    with pytest.raises(ConfigError, match="merge_slot"):
        AmhsModel(scene, AmhsConfig(merge_slot=1.0))  # the derived headway does not fit


def test_merge_calendar_queues_a_burst(scene):
    """A merge passes one vehicle per headway: a burst of n waits 0, h, 2h, ... in total."""
    m = AmhsModel(scene, AmhsConfig(merge_headway=3.0, merge_slot=30.0))
    node = int(np.flatnonzero(np.bincount(m.rail.seg_end) > 1)[0])
    nodes = np.array([node])
    waits = [float(m._merge_queue(nodes, np.array([60.0]), 3.0)[0]) for _ in range(25)]
    # 10 fit in the slot [60, 90): they leave 3 s apart; the 11th waits for the next slot
    assert waits[:10] == pytest.approx([3.0 * k for k in range(10)])
    assert waits[10] == pytest.approx(30.0) and waits[20] == pytest.approx(60.0)
    # an earlier arrival booked later still finds room in its own, earlier slot
    assert float(m._merge_queue(nodes, np.array([0.0]), 3.0)[0]) == 0.0


def test_merge_calendar_far_future_and_overflow(scene):
    """Bookings hours apart reuse the ring; a full ring does not loop forever."""
    m = AmhsModel(scene, AmhsConfig(merge_headway=30.0, merge_slot=30.0))
    node = np.array([int(np.flatnonzero(np.bincount(m.rail.seg_end) > 1)[0])])
    assert float(m._merge_queue(node, np.array([1e12]), 30.0)[0]) == 0.0
    for _ in range(300):  # more than the ring holds
        w = float(m._merge_queue(node, np.array([5.0]), 30.0)[0])
        assert math.isfinite(w) and w >= 0.0
