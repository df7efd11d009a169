"""What the OHT simulator keeps between decisions: look-ahead rows, leaders, off-route tables."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tests.physics.scenes import loop_scene
from twin.physics.lookahead import speed_stops
from twin.physics.oht import OhtConfig, OhtSim
from twin.physics.routing import RailIndex

ROW_ARRAYS = ("seg", "seg_s0", "nxt", "nxt_s0", "cap0", "caps", "p_speed", "ps_min")
ROW_ARRAYS += ("m_ok", "m_first")


def running_sims():
    """Loops with a shortcut (a diverge and a merge) at moments of random transfers."""
    for seed, vehicles, tick in ((1, 12, 0.5), (2, 30, 0.2), (3, 45, 1.0)):
        sim = OhtSim(
            loop_scene(vehicles=vehicles, shortcut=True),
            OhtConfig(tick=tick, load_time=3.0, unload_time=3.0),
            seed=seed,
            random_transfers=True,
        )
        for _ in range(12):
            sim.advance(7.3)
            yield sim


def test_cached_lookahead_rows_equal_rows_rebuilt_from_the_routes():
    """The rows refreshed in batches (segment changes, new routes) equal a full rebuild."""
    for sim in running_sims():
        kept = {name: getattr(sim, name).copy() for name in ROW_ARRAYS}
        ahead = {f: getattr(sim.ahead, f).copy() for f in sim.ahead.__slots__}
        sim._refresh(np.arange(sim.n))
        for name in ROW_ARRAYS:
            np.testing.assert_array_equal(kept[name], getattr(sim, name), err_msg=name)
        for f, arr in ahead.items():
            np.testing.assert_array_equal(arr, getattr(sim.ahead, f), err_msg=f)


def walk_leaders(sim: OhtSim):
    """Reference: walk each vehicle's route (current segment, then the look-ahead segments)
    and the other branches at the nodes it reaches within the look-ahead, vehicle by vehicle,
    from where the vehicles stand at the start of the current decision. On each segment only
    its first vehicle counts (the one a follower coming from behind meets)."""
    seg, s = sim.seg, sim.s
    off = s - sim.seg_s0
    rail, n = sim.rail, sim.n
    on: dict[int, list[tuple[float, int]]] = {}
    for i in range(n):
        on.setdefault(int(seg[i]), []).append((float(off[i]), i))
    lead, dist = np.full(n, -1), np.full(n, math.inf)
    blead, bdist = np.full(n, -1), np.full(n, math.inf)
    for i in range(n):
        ahead = [(o, j) for o, j in on[int(seg[i])] if j != i and o > off[i]]
        if ahead:
            o, j = min(ahead)
            lead[i], dist[i] = j, o - off[i]
        route = [(int(seg[i]), float(s[i] - off[i]))]
        route += [(int(a), float(b)) for a, b in zip(sim.nxt[i], sim.nxt_s0[i]) if a >= 0]
        for c, (x, start) in enumerate(route):
            if c and lead[i] < 0 and x in on:
                o, j = min(on[x])
                if j != i:
                    lead[i], dist[i] = j, start - s[i] + o
            if start - s[i] >= sim.config.lookahead:
                continue
            node_d = start + rail.seg_len[x] - s[i]
            nxt = route[c + 1][0] if c + 1 < len(route) else -1
            for y in rail.out_segs[rail.seg_end[x]]:
                if y < 0 or y == nxt or y not in on:
                    continue
                o, j = min(on[y])
                if j != i and o < sim.gap[i] and node_d + o < bdist[i]:
                    blead[i], bdist[i] = j, node_d + o
    return lead, dist, blead, bdist


def test_leaders_equal_a_walk_along_each_route():
    """The vectorised leader search finds the vehicles a plain walk along each route finds."""
    checked = 0
    for sim in running_sims():
        got = sim._leaders(sim.s, sim.seg, sim.seg_s0, sim.nxt_s0, sim.ahead)
        want = walk_leaders(sim)
        for g, w, name in zip(got, want, ("lead", "dist", "blead", "bdist")):
            np.testing.assert_allclose(g, w, rtol=0, atol=1e-9, err_msg=name)
        checked += int(np.sum(got[2] >= 0))
    assert checked > 0  # some vehicle saw one on another branch


def test_speed_stops_fast_path_equals_the_masked_row_minimum():
    """Speed-cap stop points: the per-row minimum kept with the rows, and the masked minimum
    for vehicles at or past a look-ahead segment start, equal the plain masked minimum."""
    rng = np.random.default_rng(0)
    n, k = 300, 6
    starts = np.cumsum(rng.uniform(0.0, 2.0, (n, k)), axis=1)
    starts[rng.uniform(size=(n, k)) < 0.2] = np.inf
    starts = np.sort(starts, axis=1)  # rows grow, inf padding last
    p_speed = starts + rng.uniform(0.0, 0.5, (n, k))
    s = starts[:, 0] - rng.uniform(0.0, 1.0, n)
    lagging = rng.uniform(size=n) < 0.3
    s[lagging] = starts[lagging, 0] + rng.choice([0.0, 0.5, 3.0], lagging.sum())
    before = starts > s[:, None] + 1e-12
    want_ps = np.where(before, p_speed, np.inf).min(axis=1)
    want_jj = k - before.sum(axis=1)
    ps, jj = speed_stops(starts, p_speed, p_speed.min(axis=1), s)
    np.testing.assert_array_equal(ps, want_ps)
    np.testing.assert_array_equal(jj, want_jj)
    # everybody at or past a start (vehicles that just entered a segment)
    s_all = starts[:, 0] + rng.uniform(0.0, 1.0, n)
    before = starts > s_all[:, None] + 1e-12
    ps, jj = speed_stops(starts, p_speed, p_speed.min(axis=1), s_all)
    np.testing.assert_array_equal(ps, np.where(before, p_speed, np.inf).min(axis=1))
    np.testing.assert_array_equal(jj, k - before.sum(axis=1))
    # nobody at or past a start: the row minimum as it is, and no counts
    ps, jj = speed_stops(starts, p_speed, p_speed.min(axis=1), starts[:, 0] - 1.0)
    assert jj is None
    np.testing.assert_array_equal(ps, p_speed.min(axis=1))


@pytest.mark.parametrize("shortcut", [False, True])
def test_off_route_tables_follow_the_rail_graph(shortcut):
    """Sibling / after rows and the vectorised (start, end) look-up agree with the scene."""
    scene = loop_scene(vehicles=0, shortcut=shortcut)
    rail = RailIndex(scene)
    nseg = len(rail.seg_ids)
    leaving: dict[str, list[int]] = {}
    for i, sid in enumerate(rail.seg_ids):
        leaving.setdefault(scene.segments[sid].start, []).append(i)
    for i, sid in enumerate(rail.seg_ids):
        seg = scene.segments[sid]
        siblings = [int(x) for x in rail.off_route[i] if x != nseg]
        after = [int(x) for x in rail.off_route[nseg + i] if x != nseg]
        assert siblings == [x for x in leaving[seg.start] if x != i]
        assert after == leaving.get(seg.end, [])
    a, b = rail.seg_start, rail.seg_end
    np.testing.assert_array_equal(rail.segments_between(a, b), np.arange(nseg))
    assert rail.segments_between(np.array([b[0]]), np.array([a[0]]))[0] == (
        rail.by_ends.get((int(b[0]), int(a[0])), -1)
    )
