"""A fast, event-driven model of an OHT fleet: one computation per move, not per time step.

A move (a transport request at ``t`` from stop A to stop B) is served by one vehicle:

1. assignment (``AmhsConfig.dispatch_rule``, pluggable: ``DISPATCH_RULES``): ``nearest`` takes
   the idle vehicle with the shortest rail route to A; when none is idle, the vehicle that can
   be at A first (its free time plus its route at cruise speed);
2. wait for the vehicle (from the request until it starts towards A: 0 if it was idle);
3. empty travel to A, pick-up (hoist ``load_time``), loaded travel to B, drop-off (hoist
   ``unload_time``); the delivery time is request to the end of the drop-off.

Travel times are the time-optimal rest-to-rest profile along the shortest route (the route the
physics world's ``Router`` takes, by length) under the vehicle type's speed, acceleration and
deceleration and every segment's cap (curves at ``OhtConfig.curve_speed``): the same closed
forms as ``twin.physics.motion``, so a lone vehicle arrives when the physics world's does.

Congestion (documented approximations, docs/amhs.md):

- merge queues (``merge_headway``): every merge node (two rails joining) keeps a calendar of
  ``merge_slot`` s slots; a slot passes ``merge_slot / merge_headway`` vehicles. A trip books
  each merge on its route at its arrival time there (free flow plus the queueing met so far on
  the trip); a full slot sends it to the first later slot with room, and the wait delays the
  merges after it. This is where the physics world's jams form (standing queues upstream of the
  interbay merges of SMAT2022), and what gives the delivery time its tail. The headway comes
  from the kinematics: from standing at the merge's stop point to a full gap past the node from
  rest, plus 1.5 decision ticks (2.1 s for SMAT2022's OHTV0);
- occupancy (``congestion``): every trip leaves its free-flow vehicle-seconds on the segments
  it crosses, in an exponentially decaying memory of ``window`` s; ``occ[s]`` is then the mean
  number of vehicles on segment ``s`` lately. A trip over ``s`` loses ``congestion · (t_ff(s) ·
  u/(1-u) + hoist_blocking · P(a vehicle hoists on s) · hoist/2)`` with ``u = occ[s]·gap/len(s)``
  (capped at ``u_max``): following slower traffic and vehicles hoisting on the route.

``congestion = 0`` and ``merge_headway = 0`` give free flow. Vehicles are committed at request
time: requests must come in non-decreasing time (they do from an event-driven engine).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import dijkstra

from twin.errors import ConfigError, InputError, NotFoundError
from twin.physics.oht import OhtConfig
from twin.physics.routing import RailIndex, Router, port_stop
from twin.scene.graph import SceneGraph

_PHYS = OhtConfig()
_RING = 256  # time slots per merge calendar (x merge_slot s: how far ahead a booking reaches)


@dataclass(kw_only=True)
class AmhsConfig:
    """How the fast OHT model runs (times in s, speeds as factors)."""

    vehicles: int | None = None  # fleet size; None: the scene's vehicles
    vehicle_speed: float = 1.0  # factor on every speed cap (vehicle type, rail, curves)
    rail_speed: tuple[tuple[str, float], ...] = ()  # (bay, factor on its segments' caps)
    load_time: float = _PHYS.load_time  # s, hoist at the source port
    unload_time: float = _PHYS.unload_time  # s, hoist at the destination port
    curve_speed: float = _PHYS.curve_speed  # m/s, cap on curved segments (as the physics world)
    dispatch_rule: str = "nearest"  # key of DISPATCH_RULES
    congestion: float = 0.5  # factor on the occupancy delay (0: none; see the module docstring)
    hoist_blocking: float = 1.0  # factor on the blocking by hoisting vehicles (inside congestion)
    window: float = 600.0  # s, memory of the segment occupancy
    u_max: float = 0.9  # cap on a segment's occupancy ratio in the delay formula
    # s, a merge passes one vehicle per merge_headway (0: no merge queues; None: from the
    # vehicle type, sqrt(4 gap / acceleration) + 1.5 decision ticks, see _merge_headway)
    merge_headway: float | None = None
    merge_slot: float = 30.0  # s, time slot of the merge calendars
    seed: int = 0

    def validate(self) -> None:
        problems = []
        v = self.vehicles
        if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v <= 0):
            problems.append(f"vehicles must be a whole number > 0, got {v!r}")
        elif v is not None and v > 100_000:
            problems.append(f"vehicles {v} is more than 100000")
        for name, lo, hi in (
            ("vehicle_speed", 0.0, 100.0),
            ("curve_speed", 0.0, 1e3),
            ("window", 0.0, 1e9),
            ("u_max", 0.0, 1.0),
        ):
            val = getattr(self, name)
            ok = isinstance(val, int | float) and not isinstance(val, bool)
            if not (ok and math.isfinite(val) and lo < val <= hi):
                problems.append(f"{name} must be a number in ({lo}, {hi}], got {val!r}")
        h, slot = self.merge_headway, self.merge_slot
        if not (isinstance(slot, int | float) and not isinstance(slot, bool)) or not (
            math.isfinite(slot) and 0 < slot <= 3600
        ):
            problems.append(f"merge_slot must be a number in (0, 3600] s, got {slot!r}")
        elif h is not None and (
            isinstance(h, bool)
            or not isinstance(h, int | float)
            or not (math.isfinite(h) and 0 <= h <= slot)
        ):
            problems.append(f"merge_headway must be None or a number in [0, merge_slot], got {h!r}")
        for name in ("load_time", "unload_time", "congestion", "hoist_blocking"):
            val = getattr(self, name)
            ok = isinstance(val, int | float) and not isinstance(val, bool)
            if not (ok and math.isfinite(val) and 0 <= val <= 1e6):
                problems.append(f"{name} must be a number in [0, 1e6], got {val!r}")
        for item in self.rail_speed if isinstance(self.rail_speed, tuple) else [None]:
            ok = isinstance(item, tuple) and len(item) == 2
            f = item[1] if ok else None
            if not ok or isinstance(f, bool) or not isinstance(f, int | float):
                problems.append(f"rail_speed takes (bay, factor) pairs, got {item!r:.200}")
            elif not (math.isfinite(f) and 0 < f <= 100):
                problems.append(f"rail_speed factor of bay {item[0]!r:.100} must be in (0, 100]")
        if not isinstance(self.dispatch_rule, str) or self.dispatch_rule not in DISPATCH_RULES:
            problems.append(
                f"dispatch_rule {self.dispatch_rule!r}: use one of {', '.join(DISPATCH_RULES)}"
            )
        if problems:
            raise ConfigError("AMHS config", problems)


def profile_time(lengths: np.ndarray, caps: np.ndarray, acc: float, dec: float) -> float:
    """Time-optimal rest-to-rest time (s) over consecutive pieces of ``lengths`` m, each with
    its speed cap (m/s): the closed-form trapezoids of ``twin.physics.motion`` joined at the
    cap changes (at most the lower cap across each change)."""
    keep = lengths > 0
    lengths, caps = np.asarray(lengths, dtype=float)[keep], np.asarray(caps, dtype=float)[keep]
    if not len(lengths):
        return 0.0
    # runs of equal cap, joined
    starts = np.concatenate(([0], np.flatnonzero(caps[1:] != caps[:-1]) + 1))
    runs_l: list[float] = np.add.reduceat(lengths, starts).tolist()
    runs_c: list[float] = caps[starts].tolist()
    r = len(runs_l)
    w = [0.0] * (r + 1)  # speed at each run boundary
    for j in range(1, r):
        w[j] = min(runs_c[j - 1], runs_c[j])
    for j in range(r - 1, 0, -1):  # able to brake down to the next boundary
        w[j] = min(w[j], math.sqrt(w[j + 1] ** 2 + 2 * dec * runs_l[j]))
    for j in range(1, r):  # able to accelerate up to it
        w[j] = min(w[j], math.sqrt(w[j - 1] ** 2 + 2 * acc * runs_l[j - 1]))
    total = 0.0
    for i in range(r):
        length, cap, v0, v1 = runs_l[i], runs_c[i], w[i], w[i + 1]
        peak = math.sqrt(
            max((2 * acc * dec * length + dec * v0 * v0 + acc * v1 * v1), 0.0) / (acc + dec)
        )
        vm = min(cap, peak)
        d_up = (vm * vm - v0 * v0) / (2 * acc)
        d_down = (vm * vm - v1 * v1) / (2 * dec)
        cruise = max(length - d_up - d_down, 0.0)
        total += (vm - v0) / acc + (vm - v1) / dec + (cruise / vm if vm > 0 else 0.0)
    return total


def _merge_headway(gap: float, acc: float, tick: float = _PHYS.tick) -> float:
    """Time a merge needs per vehicle when vehicles queue at it (s): from standing at its stop
    point (one gap before the merge node) to a full gap past it, where the physics world
    releases the merge (2 gap at ``acc`` from rest), plus the decision tick on which the grant
    is seen and half a tick until the next vehicle's request is decided."""
    return math.sqrt(4.0 * gap / acc) + 1.5 * tick


def _nearest(m: AmhsModel, t: float, src: int) -> int:
    dist = m.dist_row(src)[m.pos]
    idle = m.free_at <= t
    if idle.any():
        return int(np.argmin(np.where(idle, dist, np.inf)))
    return int(np.argmin(m.free_at + dist / m.vmax))


def _first_free(m: AmhsModel, t: float, src: int) -> int:
    """The vehicle idle the longest (or free first): FCFS without regard to distance."""
    return int(np.argmin(m.free_at))


DISPATCH_RULES: dict[str, Callable[[AmhsModel, float, int], int]] = {
    "nearest": _nearest,
    "first_free": _first_free,
}


@dataclass
class MoveStats:
    """Per-move figures (s), appended in request order."""

    request: list[float] = field(default_factory=list)
    wait: list[float] = field(default_factory=list)  # request -> vehicle starts towards source
    empty: list[float] = field(default_factory=list)  # empty travel (congestion included)
    loaded: list[float] = field(default_factory=list)  # loaded travel (congestion included)
    delivery: list[float] = field(default_factory=list)  # request -> drop-off done
    blocked: list[float] = field(default_factory=list)  # congestion part of both travels


class AmhsModel:
    """The fleet and the rail of a scene; ``move(t, src_stop, dst_stop)`` returns the drop-off
    time. Stops are indices from ``stop_of_port`` (or the vehicles' start positions)."""

    def __init__(self, scene: SceneGraph, config: AmhsConfig | None = None):
        cfg = self.config = config or AmhsConfig()
        cfg.validate()
        self.scene = scene
        self.rail = rail = RailIndex(scene)
        self.router = Router(rail)
        starts = [
            (n.attrs.get("segment"), n.attrs.get("offset"), n.attrs.get("vehicle_type"))
            for n in scene.nodes("vehicle")
        ]
        if not scene.vehicle_types:
            raise InputError("AMHS fleet", [f"scene {scene.name!r} defines no vehicle type"])
        vtype = next((v for _, _, v in starts if v in scene.vehicle_types), None)
        spec = scene.vehicle_types[vtype or next(iter(scene.vehicle_types))]
        self.vmax = float(spec["max_speed"]) * cfg.vehicle_speed
        self.acc, self.dec = float(spec["acceleration"]), float(spec["deceleration"])
        self.gap = float(spec["length"]) + float(spec["min_distance"])
        self.merge_headway = (
            _merge_headway(self.gap, self.acc) if cfg.merge_headway is None else cfg.merge_headway
        )
        if self.merge_headway > cfg.merge_slot:
            raise ConfigError(
                "AMHS config",
                [
                    f"merge headway {self.merge_headway:.3f} s is longer than merge_slot "
                    f"{cfg.merge_slot} s: raise merge_slot"
                ],
            )
        speed = np.where(
            rail.seg_curve, np.minimum(rail.seg_speed, cfg.curve_speed), rail.seg_speed
        )
        if cfg.rail_speed:
            bays = [scene.segments[sid].bay for sid in rail.seg_ids]
            for bay, factor in cfg.rail_speed:
                speed = np.where([b == bay for b in bays], speed * factor, speed)
        self.seg_cap = np.minimum(speed * cfg.vehicle_speed, self.vmax)
        self.seg_tff = rail.seg_len / self.seg_cap  # s, cruise time over each segment
        self.seg_room = np.maximum(rail.seg_len / self.gap, 1e-9)  # vehicles a segment holds
        n = len(rail.node_ids)
        self._reverse = csr_matrix(
            (np.maximum(rail.seg_len, 1e-9), (rail.seg_end, rail.seg_start)), shape=(n, n)
        )
        self._rows: dict[int, np.ndarray] = {}
        self._stop_arr: tuple[np.ndarray, np.ndarray] = (np.zeros(0, dtype=np.int64), np.zeros(0))
        self.stops: list[tuple[int, float]] = []
        self._stop_index: dict[tuple[int, float], int] = {}
        self._port_stop: dict[str, int] = {}
        pos = []
        for seg, off, _ in starts:
            if seg in rail.seg_index and isinstance(off, int | float) and math.isfinite(off):
                pos.append(self._stop((rail.seg_index[seg], float(off))))
        count = len(pos) if cfg.vehicles is None else cfg.vehicles
        if count > len(pos):  # extra vehicles stand at ports chosen at random (seeded)
            ports = [p for p, link in scene.ports.items() if link.segment in rail.seg_index]
            if not ports:
                raise InputError("AMHS fleet", [f"scene {scene.name!r} has no port on the rail"])
            rng = np.random.default_rng(cfg.seed)
            for k in rng.integers(len(ports), size=count - len(pos)):
                pos.append(self.stop_of_port(ports[int(k)]))
        if count == 0:
            raise InputError("AMHS fleet", [f"scene {scene.name!r} has no vehicles"])
        self.n = count
        self._others = (count - 1) / count
        self.pos = np.array(pos[:count], dtype=np.int64)
        self.free_at = np.full(count, -np.inf)
        self.busy = np.zeros(count)  # s, time spent on moves per vehicle
        self.rule = DISPATCH_RULES[cfg.dispatch_rule]
        self._trips: dict[tuple[int, int], tuple[float, np.ndarray, np.ndarray]] = {}
        self.occ = np.zeros(len(rail.seg_ids))  # decayed vehicle-seconds, scaled at t_ref
        self.hoist_occ = np.zeros(len(rail.seg_ids))  # the same, of vehicles hoisting
        self._hoist = 0.5 * (cfg.load_time + cfg.unload_time)
        self.t_ref = 0.0
        self.seg_delay = np.zeros(len(rail.seg_ids))  # s, congestion delay per segment
        self.merge_delay = 0.0  # s, queueing at merges, all moves
        indeg = np.bincount(rail.seg_end, minlength=len(rail.node_ids))
        self._is_merge = indeg[rail.seg_end] > 1  # per segment: it ends at a merge node
        self._merges: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]] = {}
        # merge calendars: per merge node, a ring of time slots and the service time booked
        self.q_fill = np.zeros(len(rail.node_ids) * _RING)  # node k's ring: [k·_RING, (k+1)·_RING)
        self.q_slot = np.full(len(rail.node_ids) * _RING, -1, dtype=np.int64)
        self.stats = MoveStats()
        self.moves = 0
        self.t_last = -np.inf

    # ---- stops ------------------------------------------------------------------------
    def _stop(self, stop: tuple[int, float]) -> int:
        k = self._stop_index.get(stop)
        if k is None:
            k = self._stop_index[stop] = len(self.stops)
            self.stops.append(stop)
            self._rows.clear()  # rows cover every stop known
        return k

    def stop_of_port(self, port: str) -> int:
        """The stop index of a port on the rail (clear errors for unknown or off-rail ports)."""
        k = self._port_stop.get(port)
        if k is None:
            if port not in self.scene.ports:
                raise NotFoundError("port", port, self.scene.ports)
            k = self._port_stop[port] = self._stop(port_stop(self.scene, self.rail, port))
        return k

    def dist_row(self, dst: int) -> np.ndarray:
        """Route length (m) from every known stop to stop ``dst`` (inf: unreachable)."""
        row = self._rows.get(dst)
        if row is None:
            seg_b, off_b = self.stops[dst]
            rail = self.rail
            to = dijkstra(self._reverse, directed=True, indices=int(rail.seg_start[seg_b]))
            if len(self._stop_arr[0]) != len(self.stops):
                self._stop_arr = (
                    np.array([s for s, _ in self.stops], dtype=np.int64),
                    np.array([o for _, o in self.stops]),
                )
            segs, offs = self._stop_arr
            row = rail.seg_len[segs] - offs + to[rail.seg_end[segs]] + off_b
            same = (segs == seg_b) & (offs <= off_b)
            row = np.where(same, off_b - offs, row)
            self._rows[dst] = row
        return row

    def trip(self, a: int, b: int) -> tuple[float, np.ndarray, np.ndarray, np.ndarray]:
        """Free-flow time (s) from stop a to stop b, the route's segments, the vehicle-seconds
        spent on each and 1 / the vehicles each holds (cached per pair)."""
        key = (a, b)
        got = self._trips.get(key)
        if got is None:
            if a == b:
                got = (0.0, np.zeros(0, dtype=np.int32), np.zeros(0), np.zeros(0))
            else:
                (sa, oa), (sb, ob) = self.stops[a], self.stops[b]
                segs, _ = self.router.route(sa, oa, sb, ob)
                segs = np.asarray(segs, dtype=np.int64)
                lens = self.rail.seg_len[segs].copy()
                if len(segs) == 1:
                    lens[0] = ob - oa
                else:
                    lens[0] -= oa
                    lens[-1] = ob
                caps = self.seg_cap[segs]
                # compact (a year on SMAT2022 meets a few hundred thousand pairs)
                got = (
                    profile_time(lens, caps, self.acc, self.dec),
                    segs.astype(np.int32),
                    lens / caps,
                    (1.0 / self.seg_room[segs]).astype(np.float32),
                )
            if len(self._trips) > 400_000:
                self._trips.clear()
            self._trips[key] = got
        return got

    def _travel(self, a: int, b: int, t: float) -> tuple[float, float, tuple]:
        """(travel time, congestion part, what to record) from a to b starting at t."""
        tff, segs, dt, inv_room = self.trip(a, b)
        if not len(segs):
            return 0.0, 0.0, ()
        cfg = self.config
        delay = 0.0
        x = (t - self.t_ref) / cfg.window
        if x > 100.0:  # renormalise the decaying memory (what is that old has faded anyway)
            self.occ *= math.exp(-min(x, 1000.0))
            self.hoist_occ *= math.exp(-min(x, 1000.0))
            self.t_ref, x = t, 0.0
        scale = math.exp(x)
        if cfg.congestion > 0 and self.n > 1:
            # the others on the segments: a vehicle's own share of the occupancy is 1/n
            f = self._others / (scale * cfg.window)
            u = self.occ[segs] * inv_room
            u *= f
            np.minimum(u, cfg.u_max, out=u)
            d = dt * u
            d /= 1.0 - u
            # a vehicle hoisting on a segment blocks it: the chance to find one there, times
            # half a hoist (the mean rest of it)
            p = self.hoist_occ[segs] * f
            np.minimum(p, 1.0, out=p)
            p *= cfg.hoist_blocking * 0.5 * self._hoist
            d += p
            d *= cfg.congestion
            delay = float(d.sum())
            self.seg_delay[segs] += d
        h = self.merge_headway
        if h > 0 and self.n > 1:
            mq = self._merges.get((a, b))
            if mq is None:
                last = segs[:-1]
                sel = self._is_merge[last]
                mq = (self.rail.seg_end[last][sel], np.cumsum(dt)[:-1][sel], last[sel])
                if len(self._merges) > 400_000:
                    self._merges.clear()
                self._merges[(a, b)] = mq
            nodes, off, into = mq
            if len(nodes):
                waits = self._merge_queue(nodes, t + off, h)
                md = float(waits.sum())
                delay += md
                if md > 0:
                    self.merge_delay += md
                    self.seg_delay[into] += waits
        return tff + delay, delay, (segs, dt * scale)

    def _merge_queue(self, nodes: np.ndarray, arr: np.ndarray, h: float) -> np.ndarray:
        """Book the passage of merge ``nodes`` (free-flow arrival times ``arr``) in their
        calendars; returns each one's queueing delay (s). A merge passes one vehicle per ``h`` s: each
        slot of ``merge_slot`` s holds that much service time; a vehicle leaves at its slot's
        start plus the time already booked in it, or waits for the first slot with room."""
        size = self.config.merge_slot
        if arr[-1] > 1e15:  # s, 30 million years: slot numbers would overflow; no queue there
            return np.zeros(len(nodes))
        k = (arr // size).astype(np.int64)
        flat = nodes * _RING
        flat += k % _RING
        q_fill, q_slot = self.q_fill, self.q_slot
        fill = q_fill[flat]
        fill[q_slot[flat] != k] = 0.0
        if fill.max() + h <= size:  # no merge full on the way: book, waits inside the slots
            q_slot[flat] = k
            q_fill[flat] = fill + h
            waits = k * size + fill - arr
            return np.maximum(waits, 0.0, out=waits)
        shift = 0.0  # a queue: later merges are reached that much later
        waits = np.zeros(len(nodes))
        for j, (nd, a0) in enumerate(zip(nodes.tolist(), arr.tolist())):
            a = a0 + shift
            kk = int(a // size)
            base = nd * _RING
            for _ in range(_RING - 1):
                i = base + kk % _RING
                f = q_fill[i] if q_slot[i] == kk else 0.0
                if f + h <= size:
                    break
                kk += 1
            else:
                f = 0.0
            i = base + kk % _RING
            q_slot[i] = kk
            q_fill[i] = f + h
            waits[j] = max(kk * size + f - a, 0.0)
            shift += waits[j]
        return waits

    def _record(self, trip: tuple) -> None:
        if trip:
            segs, vs = trip
            # a shortest route repeats a segment only when it starts and ends on it (around a
            # loop): that segment then keeps one of its two shares, a negligible loss
            self.occ[segs] += vs

    # ---- moves ------------------------------------------------------------------------
    def move(self, t: float, src: int, dst: int, vehicle: int | None = None) -> float:
        """Serve a transport request made at ``t`` (s) from stop ``src`` to ``dst``; returns
        the time the drop-off ends. Requests must come in non-decreasing time. ``vehicle``
        (an index) bypasses the dispatch rule."""
        if not (isinstance(t, int | float) and math.isfinite(t)):
            raise InputError("AMHS move", [f"time must be a finite number of s, got {t!r}"])
        if t < self.t_last - 1e-9:
            raise InputError(
                "AMHS move", [f"request at {t} s comes before the previous one ({self.t_last} s)"]
            )
        self.t_last = t
        cfg = self.config
        v = self.rule(self, t, src) if vehicle is None else vehicle
        start = max(t, float(self.free_at[v]))
        empty, b1, r1 = self._travel(int(self.pos[v]), src, start)
        picked = start + empty + cfg.load_time
        loaded, b2, r2 = self._travel(src, dst, picked)
        self._record(r1)  # after both legs: a vehicle does not queue behind itself
        self._record(r2)
        if cfg.congestion > 0:
            scale = math.exp(min((picked - self.t_ref) / cfg.window, 700.0))
            self.hoist_occ[self.stops[src][0]] += cfg.load_time * scale
            self.hoist_occ[self.stops[dst][0]] += cfg.unload_time * scale
        done = picked + loaded + cfg.unload_time
        self.free_at[v] = done
        self.pos[v] = dst
        self.busy[v] += done - start
        s = self.stats
        s.request.append(t)
        s.wait.append(start - t)
        s.empty.append(empty)
        s.loaded.append(loaded)
        s.delivery.append(done - t)
        s.blocked.append(b1 + b2)
        self.moves += 1
        return done

    def kpis(self, horizon: float, *, since: float = -np.inf, top: int = 10) -> dict[str, object]:
        """Delivery mean/p95/p99, wait, empty/loaded travel, utilisation over ``horizon`` s,
        blocked time and the ``top`` most congested segments (by congestion delay)."""
        s = self.stats
        req = np.asarray(s.request)
        keep = req >= since
        out: dict[str, object] = {"vehicles": self.n, "moves": int(keep.sum())}

        def arr(x):
            return np.asarray(x)[keep]

        d = arr(s.delivery)
        if len(d):
            out.update(
                delivery_mean_s=float(d.mean()),
                delivery_p95_s=float(np.percentile(d, 95)),
                delivery_p99_s=float(np.percentile(d, 99)),
                wait_mean_s=float(arr(s.wait).mean()),
                empty_travel_mean_s=float(arr(s.empty).mean()),
                loaded_travel_mean_s=float(arr(s.loaded).mean()),
                blocked_mean_s=float(arr(s.blocked).mean()),
            )
        out["utilisation"] = (
            float(min(self.busy.sum() / (self.n * horizon), 1.0)) if horizon > 0 else None
        )
        order = np.argsort(-self.seg_delay)[:top]
        out["congested_segments"] = [
            {
                "segment": self.rail.seg_ids[i],
                "delay_s": round(float(self.seg_delay[i]), 3),
            }
            for i in order
            if self.seg_delay[i] > 0
        ]
        return out
