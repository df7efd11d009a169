"""Overhead-hoist transport: vehicles on the directed rail network, exact and vectorised.

The simulator decides on a fixed clock grid (``OhtConfig.tick``, absolute from t = 0) and moves
vehicles between decisions along closed-form plans (``twin.physics.motion``): each vehicle
follows the time-optimal profile to the nearest point where it must be able to stop (its
destination, the stopping point of the vehicle ahead minus the headway, an ungranted merge, or
a slower segment ahead expressed as a stop point). It re-plans exactly where it enters a segment
with another speed cap. So positions at any time are exact and independent of how the caller
steps time, and a lone vehicle reproduces the closed-form trapezoidal travel time.

Safety: a follower keeps ``s_f + v_f²/2b ≤ s_l + v_l²/2B - gap`` (B the larger deceleration),
which cannot be broken while the leader brakes at most at its deceleration and implies the gap
``length + min_distance`` is never undercut. Merges are granted first come, first served to the
first vehicle in line; the holder keeps the merge until it is a full gap past it.

Each decision is a fixed number of whole-array passes over all vehicles (numpy), so what only
changes at segment ends or new routes is kept between decisions: the look-ahead rows
(``twin.physics.lookahead``) and the rows the leader search uses (``twin.physics.leaders``).
"""

from __future__ import annotations

import math
import time as _time
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np

from twin.errors import ConfigError, InputError, NotFoundError
from twin.physics.deadlock import Deadlock, DeadlockError, wait_cycles
from twin.physics.leaders import RouteAhead, find_leaders
from twin.physics.lookahead import RouteRows, speed_stops
from twin.physics.motion import Plan, evaluate, plan_stop, time_to_reach
from twin.physics.routing import RailIndex, Router
from twin.physics.transfers import (
    IDLE,
    LOADING,
    TO_DEST,
    TO_SOURCE,
    UNLOADING,
    Transfer,
    TransferJobs,
)
from twin.scene.graph import SceneGraph

VEHICLE_TYPE_KEYS = ("length", "max_speed", "acceleration", "deceleration", "min_distance")


@dataclass(kw_only=True)
class OhtConfig:
    """How the OHT simulator runs."""

    tick: float = 0.5  # s, decision period (plans are exact between decisions)
    load_time: float = 12.0  # s, hoist down, grip, hoist up at the source port
    unload_time: float = 12.0  # s, hoist down, release, hoist up at the destination port
    curve_speed: float = 1.0  # m/s, speed cap on curved segments
    lookahead: float = 4.0  # m, how far ahead vehicles look for leaders, merges, speed caps
    deadlock_check: float = 5.0  # s, period of the wait-for cycle search
    stop_on_deadlock: bool = False  # raise DeadlockError when one is found (else: record it)

    def validate(self, need_lookahead: float = 0.0) -> None:
        problems = []
        for name in ("tick", "curve_speed", "lookahead", "deadlock_check"):
            val = getattr(self, name)
            if not (isinstance(val, int | float) and math.isfinite(val) and val > 0):
                problems.append(f"{name} must be a positive finite number, got {val!r}")
        for name in ("load_time", "unload_time"):
            val = getattr(self, name)
            if not (isinstance(val, int | float) and math.isfinite(val) and val >= 0):
                problems.append(f"{name} must be >= 0 s, got {val!r}")
        if not problems and self.lookahead < need_lookahead:
            problems.append(
                f"lookahead {self.lookahead} m is shorter than the {need_lookahead:.3f} m a vehicle "
                "needs to stop safely (gap + braking distance + one tick of travel)"
            )
        if problems:
            raise ConfigError("OHT config", problems)


@dataclass
class _Stats:
    min_headway: float = math.inf  # m, smallest leader distance seen at a decision
    emergencies: int = 0  # decisions where a vehicle could not stop at its deceleration
    wall: float = 0.0  # s of wall-clock time spent in advance()
    cpu: float = 0.0  # s of this process's CPU time spent in advance()
    completed: list[Transfer] = field(default_factory=list)


class OhtSim(RouteRows, TransferJobs):
    """OHT vehicles of a scene moving on its rail network; see the module docstring."""

    def __init__(
        self,
        scene: SceneGraph,
        config: OhtConfig | None = None,
        *,
        vehicles: Iterable[str] | None = None,
        seed: int | None = None,
        random_transfers: bool = False,
    ):
        self.scene = scene
        self.config = config or OhtConfig()
        self.rail = RailIndex(scene)
        self.router = Router(self.rail)
        self.rng = np.random.default_rng(seed)
        self.random_transfers = random_transfers
        self._load_vehicles(vehicles)
        cfg = self.config
        need = float(np.max(self.gap + self.vmax**2 / (2 * self.dec) + self.vmax * cfg.tick))
        cfg.validate(need)
        rail = self.rail
        cap = np.where(rail.seg_curve, np.minimum(rail.seg_speed, cfg.curve_speed), rail.seg_speed)
        self.seg_cap = cap
        shortest = float(rail.seg_len.min()) if len(rail.seg_len) else 1.0
        self.K = int(min(64, math.ceil(cfg.lookahead / max(shortest, 1e-3)) + 2))
        n = self.n
        self._rows = np.arange(n)
        self._zeros = np.zeros(n)
        self._kcols = 1 + np.arange(self.K)[None, :]  # look-ahead columns after the current one
        self.t = 0.0  # s, current time
        self.t_tick = 0.0  # s, start of the current decision period
        self.v = np.zeros(n)
        self.s = np.zeros(n)  # odometer (m) at the tick start
        self.stage = np.full(n, IDLE, dtype=np.int64)
        self.ready = np.zeros(n)  # s, when a hoisting vehicle may move again
        # routes as padded rows: segment indices and the odometer (m) where each one starts
        self.r_segs = np.full((n, 16), -1, dtype=np.int64)
        self.r_s0 = np.full((n, 16), np.inf)
        self.r_n = np.ones(n, dtype=np.int64)
        self.k = np.zeros(n, dtype=np.int64)  # index of the current segment in the route
        self.r_segs[:, 0] = [seg for seg, _ in self._start]
        self.r_s0[:, 0] = [-off for _, off in self._start]
        self.dest_stop: list[tuple[int, float]] = list(self._start)
        self.dest_s = np.zeros(n)  # odometer of the stop
        self._refresh(np.arange(n))
        self.holder = np.full(len(rail.node_ids), -1, dtype=np.int64)
        self.holder_s = np.full(len(rail.node_ids), np.inf)
        self.req_node = np.full(n, -1, dtype=np.int64)
        self.req_seq = np.zeros(n, dtype=np.int64)
        self._seq = 0
        self.jobs: list[Transfer | None] = [None] * n
        self.queue: list[list[tuple[str, str]]] = [[] for _ in range(n)]
        self.deadlocks: list[Deadlock] = []
        self._seen_cycles: set[frozenset[int]] = set()
        self._next_deadlock_check = cfg.deadlock_check
        self.stats = _Stats()
        self._check_start_headway()
        if random_transfers:
            for i in range(n):
                self._next_job(i, 0.0, refresh=False)
            self._refresh(self._rows)
        self._start_ready_legs()
        self._decide()

    # ------------------------------------------------------------ set-up
    def _load_vehicles(self, wanted: Iterable[str] | None) -> None:
        scene = self.scene
        nodes = {n.id: n for n in scene.nodes("vehicle")}
        ids = list(nodes) if wanted is None else list(wanted)
        problems = []
        if not ids:
            problems.append("the scene has no vehicles (nodes of kind 'vehicle')")
        start, params = [], []
        for vid in ids:
            node = nodes.get(vid)
            if node is None:
                problems.append(f"unknown vehicle {vid!r}")
                continue
            vtype, seg, off = (node.attrs.get(k) for k in ("vehicle_type", "segment", "offset"))
            if vtype not in scene.vehicle_types:
                problems.append(
                    f"vehicle {vid!r}: unknown vehicle type {vtype!r} "
                    f"(known: {sorted(scene.vehicle_types)})"
                )
            else:
                spec = scene.vehicle_types[vtype]
                bad = [
                    k
                    for k in VEHICLE_TYPE_KEYS
                    if not (isinstance(spec.get(k), int | float) and math.isfinite(spec[k]))
                    or spec[k] < 0
                    or (k != "min_distance" and spec[k] == 0)
                ]
                if bad:
                    problems.append(
                        f"vehicle type {vtype!r}: {', '.join(bad)} must be finite and > 0 "
                        f"(min_distance >= 0), in SI units"
                    )
                else:
                    params.append([float(spec[k]) for k in VEHICLE_TYPE_KEYS])
            if seg not in self.rail.seg_index:
                problems.append(f"vehicle {vid!r}: unknown rail segment {seg!r}")
                continue
            length = self.rail.seg_len[self.rail.seg_index[seg]]
            if not (isinstance(off, int | float) and math.isfinite(off) and 0 <= off <= length):
                problems.append(
                    f"vehicle {vid!r}: offset {off!r} must be a number in 0..{length:.3f} m"
                )
                continue
            start.append((self.rail.seg_index[seg], float(off)))
        if problems:
            raise InputError("OHT vehicles", problems)
        self.ids = ids
        self.index = {v: i for i, v in enumerate(ids)}
        self.n = len(ids)
        p = np.array(params)
        self.length, self.vmax, self.acc, self.dec, self.min_distance = p.T.copy()
        self.gap = self.length + self.min_distance
        self._start = start

    def _check_start_headway(self) -> None:
        lead, dist, _, _ = self._leaders(self.s, self.seg, self.seg_s0, self.nxt_s0, self.ahead)
        bad = np.nonzero((lead >= 0) & (dist < self.gap - 1e-9))[0]
        if len(bad):
            raise InputError(
                "OHT vehicles",
                [
                    f"vehicle {self.ids[i]!r} starts {dist[i]:.3f} m behind {self.ids[lead[i]]!r}, "
                    f"closer than its length + min distance ({self.gap[i]:.3f} m)"
                    for i in bad
                ],
            )

    # ------------------------------------------------------------ public API
    def close_segment(self, segment: str) -> None:
        """Close a segment: routes that use it ahead are re-planned; refused if one cannot be."""
        self._set_closed(self.router.closed | {self._segment(segment)})

    def open_segment(self, segment: str) -> None:
        """Reopen a closed segment (routes already planned keep their way)."""
        self._set_closed(self.router.closed - {self._segment(segment)})

    def advance(self, seconds: float) -> None:
        """Move the simulation ``seconds`` forward (any step: results do not depend on it)."""
        if not (isinstance(seconds, int | float) and math.isfinite(seconds) and seconds >= 0):
            raise InputError("advance", [f"seconds must be a finite number >= 0, got {seconds!r}"])
        wall, cpu = _time.perf_counter(), _time.process_time()
        target = self.t + seconds
        h = self.config.tick
        while self.t_tick + h <= target + 1e-12:
            found = len(self.deadlocks)
            self._commit()
            self._decide()
            if self.config.stop_on_deadlock and len(self.deadlocks) > found:
                self.t = self.t_tick
                self.stats.wall += _time.perf_counter() - wall
                self.stats.cpu += _time.process_time() - cpu
                raise DeadlockError(self.deadlocks[found])
        self.t = max(target, self.t_tick)
        self.stats.wall += _time.perf_counter() - wall
        self.stats.cpu += _time.process_time() - cpu

    def state(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(segment index, offset m, speed m/s, odometer m) of every vehicle at the current time."""
        s, v = self._eval(self.t - self.t_tick)
        j = np.sum(self.nxt_s0 <= s[:, None] + 1e-12, axis=1)
        seg = np.where(j == 0, self.seg, self.nxt[np.arange(self.n), np.maximum(j - 1, 0)])
        s0 = np.where(j == 0, self.seg_s0, self.nxt_s0[np.arange(self.n), np.maximum(j - 1, 0)])
        return seg, s - s0, v, s

    def positions(self) -> tuple[np.ndarray, np.ndarray]:
        """World positions (N, 3) on the rail and headings (N,) rad of every vehicle, now."""
        seg, off, _, _ = self.state()
        a = self.rail.node_pos[self.rail.seg_start[seg]]
        b = self.rail.node_pos[self.rail.seg_end[seg]]
        frac = np.clip(off / np.maximum(self.rail.seg_len[seg], 1e-12), 0.0, 1.0)
        d = b - a
        return a + d * frac[:, None], np.arctan2(d[:, 1], d[:, 0])

    def headways(self) -> np.ndarray:
        """Distance (m) along the rail from each vehicle to the one ahead (inf: none in sight)."""
        seg, off, _, s = self.state()
        nxt, nxt_s0 = self._nxt_now(s)
        ahead = RouteAhead.of(self.rail, seg, s - off, nxt, nxt_s0)
        _, dist, _, bdist = self._leaders(s, seg, s - off, nxt_s0, ahead)
        return np.minimum(dist, bdist)

    def summary(self) -> dict[str, object]:
        """Figures `twin physics run` prints."""
        done = [
            t for t in self.stats.completed if t.completed is not None and t.completed <= self.t
        ]
        return {
            "vehicles": self.n,
            "sim_seconds": round(self.t, 6),
            "wall_seconds": round(self.stats.wall, 3),
            "realtime_factor": round(self.t / self.stats.wall, 1) if self.stats.wall else None,
            # CPU time is what one core spends: the figure that does not depend on other load
            "cpu_seconds": round(self.stats.cpu, 3),
            "realtime_factor_cpu": round(self.t / self.stats.cpu, 1) if self.stats.cpu else None,
            "transfers_completed": len(done),
            "min_headway_m": round(self.stats.min_headway, 6)
            if math.isfinite(self.stats.min_headway)
            else None,
            "min_allowed_headway_m": round(float(self.gap.min()), 6),
            "emergency_brakes": self.stats.emergencies,
            "deadlocks": len(self.deadlocks),
            "deadlocked_vehicles": [list(d.vehicles) for d in self.deadlocks],
        }

    # ------------------------------------------------------------ jobs
    def _vehicle(self, vehicle: str) -> int:
        if vehicle not in self.index:
            raise NotFoundError("vehicle", vehicle, self.index)
        return self.index[vehicle]

    def _segment(self, segment: str) -> int:
        if segment not in self.rail.seg_index:
            raise NotFoundError("rail segment", segment, self.rail.seg_index)
        return self.rail.seg_index[segment]

    def _leaders(self, s, seg, seg_s0, nxt_s0, ahead):
        return find_leaders(
            self.rail, s, seg, seg_s0, nxt_s0, ahead, self.gap, self.config.lookahead
        )

    # ------------------------------------------------------------ one decision
    def _decide(self) -> None:
        """Plan every vehicle's motion over the tick starting at ``t_tick``."""
        cfg, s = self.config, self.s
        lead, ldist, blead, bdist = self._leaders(s, self.seg, self.seg_s0, self.nxt_s0, self.ahead)
        near = np.minimum(ldist, bdist)
        closest = float(near.min())
        if closest < self.stats.min_headway:
            self.stats.min_headway = closest
        # a vehicle ahead: stop by its stopping point minus the gap (one just past a node on
        # another branch is rare: those few on their own)
        p_lead = self._follow(None, lead, ldist)
        br = np.nonzero(bdist <= cfg.lookahead)[0]
        if len(br):
            p_branch = self._follow(br, blead[br], bdist[br])
            closer = br[p_branch < p_lead[br]]
            lead = lead.copy()
            lead[closer] = blead[closer]
            p_lead[br] = np.minimum(p_lead[br], p_branch)
        self.lead = lead
        self.ldist = near
        p_merge = self._merge_stops(s, ldist)
        # destination (a standing vehicle's destination is where it stands)
        moving = (self.stage == TO_SOURCE) | (self.stage == TO_DEST)
        p_dest = np.where(moving, self.dest_s, s)
        self.p_hard = np.minimum(np.minimum(p_lead, p_merge), p_dest)
        self._p_lead, self._p_dest = p_lead, p_dest  # which one binds: see _find_deadlocks
        self._plan()

    def _merge_stops(self, s: np.ndarray, ldist: np.ndarray) -> np.ndarray:
        """Stop points before merges not granted yet (inf: none); requests the free ones."""
        cfg, K = self.config, self.K
        p_merge = np.full(self.n, np.inf)
        self.m_node = np.full(self.n, -1, dtype=np.int64)  # the merge each one waits for
        # merges on the route ahead (a node where the route continues and two rails join): the
        # first one within the look-ahead that the vehicle does not hold yet (it may hold
        # several in a row); only vehicles with a merge node that near take part
        cand = np.nonzero(self.m_first - s <= cfg.lookahead)[0]
        if len(cand) == 0:
            return p_merge
        ends, m_s = self.ahead.ends[cand, :K], self.nxt_s0[cand]  # nodes, their odometers
        want = self.m_ok[cand] & (m_s - s[cand, None] <= cfg.lookahead)
        want &= self.holder[ends] != cand[:, None]
        first = np.argmax(want, axis=1)
        r = np.arange(len(cand))
        has = want[r, first]
        who = cand[has]  # ascending vehicle order, as the grants' tie-breaks expect
        node, pos = ends[r, first][has], m_s[r, first][has]
        self._request_merges(who, node, pos, ldist[who], s[who])
        waiting = self.holder[node] != who
        p_merge[who[waiting]] = pos[waiting] - self.gap[who[waiting]]
        self.m_node[who[waiting]] = node[waiting]
        return p_merge

    def _plan(self) -> None:
        """Plans over the tick from ``t_tick`` to the stop points (``p_hard``) and the speed
        caps ahead, and where they leave each vehicle at the end of the tick."""
        cfg, K, rows = self.config, self.K, self._rows
        # one plan per vehicle to the nearest stop point, including slower segments ahead as
        # stop points (self.p_speed); re-planned where the plan enters a segment with another
        # cap. The first pass covers every vehicle on the full arrays; later ones only those
        # that cross a segment start this tick.
        h = cfg.tick
        idx, t_start, s_start, v_start = rows, self._zeros, self.s, self.v
        cap, acc, dec, p_hard = self.cap0, self.acc, self.dec, self.p_hard
        nxt_s0, p_speed = self.nxt_s0, self.p_speed
        delay = np.maximum(self.ready - self.t_tick, 0.0)
        self._subplans: list[tuple[np.ndarray, np.ndarray, np.ndarray, Plan]] = []
        ps_min = self.ps_min
        for j in range(K + 1):
            ps, jj = speed_stops(nxt_s0, p_speed, ps_min, s_start)
            plan, emergency = plan_stop(
                v_start, np.minimum(p_hard, ps) - s_start, cap, acc, dec, delay
            )
            if emergency.any():
                self.stats.emergencies += int(np.count_nonzero(emergency))
            self._subplans.append((idx, t_start, s_start, plan))
            # where this plan leaves the vehicles at the end of the tick (what _commit takes)
            x_end, v_end = evaluate(plan, h - t_start)
            if j == 0:
                self._end_s, self._end_v = s_start + x_end, v_end
            else:
                self._end_s[idx] = s_start + x_end
                self._end_v[idx] = v_end
            if j == K:
                break
            # where the plan enters the next segment of its route, re-plan with that cap
            if jj is None:  # no look-ahead segment starts behind: the next one is column 0
                nb = nxt_s0[:, 0]
            else:
                nb = np.where(jj < K, nxt_s0[np.arange(len(idx)), np.minimum(jj, K - 1)], np.inf)
            # only vehicles that get that far by the end of the tick need the exact crossing
            # time (a hair of slack: the two closed forms agree to rounding)
            to_nb = nb - s_start
            near = np.nonzero(x_end >= to_nb - 1e-9)[0]
            if len(near) == 0:
                break
            plan_near = _take(plan, near)
            tc = time_to_reach(plan_near, to_nb[near])
            cross = (t_start[near] + tc < h) & np.isfinite(nb[near])
            if not np.any(cross):
                break
            x, vv = evaluate(plan_near, tc)  # nearly all of them cross: pick afterwards
            sel = near[cross]
            idx = idx[sel]
            t_start = t_start[sel] + tc[cross]
            s_start = np.maximum(s_start[sel] + x[cross], nb[sel])
            v_start = vv[cross]
            cap = self.caps[idx, 0 if jj is None else np.minimum(jj[sel], K - 1)]
            acc, dec, p_hard = self.acc[idx], self.dec[idx], self.p_hard[idx]
            nxt_s0, p_speed, ps_min = self.nxt_s0[idx], self.p_speed[idx], self.ps_min[idx]
            delay = 0.0

    def _follow(self, i: np.ndarray | None, lead: np.ndarray, dist: np.ndarray) -> np.ndarray:
        """Odometer by which followers ``i`` (None: all) must be able to stop, given the
        vehicle ahead."""
        s, gap, dec = (
            (self.s, self.gap, self.dec) if i is None else (self.s[i], self.gap[i], self.dec[i])
        )
        other = np.maximum(lead, 0)
        dec = np.maximum(dec, self.dec[other])
        vl = self.v[other]
        return np.where(
            (lead >= 0) & (dist <= self.config.lookahead),
            s + dist - gap + vl * vl / (2 * dec),
            np.inf,
        )

    def _request_merges(self, who, node, pos, ldist, s) -> None:
        """First-come-first-served grants to vehicles ``who`` (ascending) first in line before
        a free merge ``node`` at odometer ``pos``."""
        first_in_line = ldist > (pos - s)
        new = first_in_line & (self.req_node[who] != node)
        if np.any(new):
            ask = np.nonzero(new)[0]
            ask = ask[np.argsort(pos[ask] - s[ask], kind="stable")]
            self.req_node[who[ask]] = node[ask]
            self.req_seq[who[ask]] = self._seq + np.arange(len(ask))
            self._seq += len(ask)
        asking = np.nonzero(first_in_line & (self.holder[node] == -1))[0]
        if len(asking) == 0:
            return
        asking = asking[np.argsort(self.req_seq[who[asking]], kind="stable")]
        granted: set[int] = set()
        for a in asking.tolist():  # a handful: the earliest request per merge node wins
            m = int(node[a])
            if m not in granted:
                granted.add(m)
                i = int(who[a])
                self.holder[m] = i
                self.holder_s[m] = pos[a]
                self.req_node[i] = -1

    def _eval(self, tau: float) -> tuple[np.ndarray, np.ndarray]:
        """Odometers and speeds ``tau`` s into the current tick (new arrays)."""
        (idx, _, s0, plan), *later = self._subplans  # the first plan covers every vehicle
        x, v = evaluate(plan, tau)
        s = s0 + x
        for idx, t0, s0, plan in later:
            m = tau >= t0
            if m.all():
                x, vv = evaluate(plan, tau - t0)
                s[idx] = s0 + x
                v[idx] = vv
            elif m.any():
                sel = np.nonzero(m)[0]
                x, vv = evaluate(_take(plan, sel), tau - t0[sel])
                s[idx[sel]] = s0[sel] + x
                v[idx[sel]] = vv
        return s, v

    # ------------------------------------------------------------ end of a tick
    def _commit(self) -> None:
        h = self.config.tick
        t0 = self.t_tick
        s_end, v_end = self._end_s, self._end_v  # the same as self._eval(h)
        # arrivals at the stop, with their exact time from the last plan
        moving = (self.stage == TO_SOURCE) | (self.stage == TO_DEST)
        arrived = moving & (v_end == 0) & (np.abs(s_end - self.dest_s) <= 1e-6)
        arrivals = np.nonzero(arrived)[0]
        if len(arrivals):
            last_plan_t = np.full(self.n, np.nan)
            for idx, ts, _, plan in self._subplans:
                last_plan_t[idx] = ts + plan.duration
            s_end[arrivals] = self.dest_s[arrivals]
        self.s, self.v = s_end, v_end
        self.t_tick = t0 + h
        # segment changes: the current segment now (new routes start from it), the look-ahead
        # rows below, in one batch with the vehicles that get a new route
        crossed = np.nonzero(self.s >= self.nxt_s0[:, 0] - 1e-12)[0]
        if len(crossed):
            k = self.k[crossed] + np.sum(self.nxt_s0[crossed] <= self.s[crossed, None] + 1e-12, 1)
            self.k[crossed] = k
            self.seg[crossed] = self.r_segs[crossed, k]
            self.seg_s0[crossed] = self.r_s0[crossed, k]
        # merge releases: the holder is a full gap past the merge
        held = np.nonzero(self.holder >= 0)[0]
        if len(held):
            hv = self.holder[held]
            past = self.s[hv] - self.holder_s[held]
            standing = (self.stage[hv] != TO_SOURCE) & (self.stage[hv] != TO_DEST)
            # a full gap past it, or standing (hoisting, idle) beyond it: followers on any branch
            # then see the holder as the vehicle ahead and keep their distance from it
            passed = (past >= self.gap[hv]) | (standing & (past > 0))
            self.holder[held[passed]] = -1
            self.holder_s[held[passed]] = np.inf
        for i in arrivals:
            t_arr = t0 + min(max(float(last_plan_t[i]), 0.0), h)
            self.v[i] = 0.0
            if self.stage[i] == TO_SOURCE:
                self.stage[i] = LOADING
                self.ready[i] = t_arr + self.config.load_time
            else:
                self.stage[i] = UNLOADING
                self.ready[i] = t_arr + self.config.unload_time
        routed = self._start_ready_legs(refresh=False)
        if len(crossed) or routed:
            stale = np.zeros(self.n, dtype=bool)
            stale[crossed] = True
            stale[routed] = True
            self._refresh(np.nonzero(stale)[0])
        if self.t_tick >= self._next_deadlock_check:
            self._next_deadlock_check += self.config.deadlock_check
            self._find_deadlocks()

    def _find_deadlocks(self) -> None:
        """Cycles in the wait-for graph of standing vehicles blocked by a leader or a merge."""
        if not hasattr(self, "p_hard"):
            return
        # which stop point binds: 0 destination, 1 leader, 2 merge
        kind = np.where(self.p_hard == self._p_dest, 0, np.where(self.p_hard == self._p_lead, 1, 2))
        blocked = (self.v == 0) & (kind > 0) & (self.p_hard - self.s <= 1e-6)
        blocker = np.where(
            kind == 1,
            self.lead,
            np.where(self.m_node >= 0, self.holder[np.maximum(self.m_node, 0)], -1),
        )
        for cycle in wait_cycles(np.where(blocked, blocker, -1)):
            key = frozenset(cycle)
            if key not in self._seen_cycles:  # a standing deadlock is reported once
                self._seen_cycles.add(key)
                self.deadlocks.append(Deadlock(self.t_tick, tuple(self.ids[c] for c in cycle)))


def _take(plan: Plan, sel: np.ndarray) -> Plan:
    p = plan
    return Plan(
        p.v0[sel],
        p.a1[sel],
        p.t1[sel],
        p.vm[sel],
        p.t2[sel],
        p.a3[sel],
        p.t3[sel],
        p.dist[sel],
        p.delay[sel],
    )
