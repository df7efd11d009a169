"""Lots entering the reference engine: releases, the initial WIP and warm starts (a mixin)."""

from __future__ import annotations

import math
from collections.abc import Container

from twin.errors import InputError
from twin.process.model import DISTRIBUTIONS, FabModel
from twin.whatif.reference.config import DAY, MAX_DAYS, LotState, StartState, TimeLeft
from twin.whatif.reference.entities import ARRIVE, DOWN_END, JOB_END, READY, RELEASE_EV, Job, Lot
from twin.whatif.reference.streams import KIND_CODES, RELEASE, START, Stream, draw

STATUSES = ("queued", "transport", "processing")  # a start-state lot's status
MAX_LEFT = 2 * MAX_DAYS * DAY  # s: the longest time a down in progress may have left
MAX_COMPONENTS = 64  # components of one drawn time left


def time_left_problem(where: str, comps) -> str | None:
    """What is wrong with a drawn time left (``ToolState.down_left``, ``LotState.until_left``;
    None: nothing); both engines: a tuple of at most MAX_COMPONENTS ``TimeLeft``, weights
    finite and >= 0 with a positive sum, a kind of DISTRIBUTIONS, times finite in
    [0, MAX_LEFT], low <= high."""
    if not isinstance(comps, tuple | list) or len(comps) > MAX_COMPONENTS:
        return f"{where} must be a tuple of at most {MAX_COMPONENTS} TimeLeft"
    total = 0.0
    for i, c in enumerate(comps):
        if not isinstance(c, TimeLeft):
            return f"{where}[{i}] is {type(c).__name__}: a TimeLeft"
        p = c.p
        if isinstance(p, bool) or not isinstance(p, int | float) or not 0 <= p <= 1e300:
            return f"{where}[{i}].p = {p!r}: a finite weight >= 0"
        total += p
        if c.kind not in DISTRIBUTIONS:
            return f"{where}[{i}].kind = {c.kind!r}: one of {', '.join(DISTRIBUTIONS)}"
        for name in ("low", "high", "mean", "offset"):
            v = getattr(c, name)
            if isinstance(v, bool) or not isinstance(v, int | float) or not 0 <= v <= MAX_LEFT:
                return f"{where}[{i}].{name} = {v!r}: s from 0 to {MAX_LEFT:g}"
        if c.kind == "uniform" and c.low > c.high:
            return f"{where}[{i}]: low {c.low!r} > high {c.high!r}"
    if comps and not (0 < total < math.inf):
        return f"{where}: the weights sum to {total!r}; at least one must be > 0"
    return None


Row = tuple[float, int, float, float, float, float]


def time_left_table(comps) -> list[Row]:
    """A checked time left as the engines draw it: (cumulative share of the weights, kind
    code, low, high, mean, offset) per component (the kernel's tables hold these numbers)."""
    total = sum(float(c.p) for c in comps)
    out, acc = [], 0.0
    for c in comps:
        acc += float(c.p)
        out.append((acc / total, KIND_CODES[c.kind], float(c.low), float(c.high), float(c.mean),
                    float(c.offset)))  # fmt: skip
    return out


def draw_left(stream: Stream, table: list[Row]) -> float:
    """A time left (s): with several components, one uniform u picks the first whose
    cumulative share exceeds u (the last if none does); then the offset + that component's
    draw (``streams.draw``: none for a constant, one uniform otherwise)."""
    k = 0
    if len(table) > 1:
        u = stream.u()
        k = len(table) - 1
        for i, row in enumerate(table):
            if u < row[0]:
                k = i
                break
    _, kind, lo, hi, mean, offset = table[k]
    return offset + draw(stream, kind, lo, hi, mean)


def shares_draw(prev: LotState | None, ls: LotState) -> bool:
    """Does start lot ``ls`` take the drawn time left of ``prev``, the lot before it in the
    start's list: both processing on one tool with equal, non-empty ``until_left`` (the lots
    of a batch in progress end together)."""
    return (
        prev is not None
        and bool(ls.until_left)
        and ls.status == prev.status == "processing"
        and ls.tool == prev.tool
        and tuple(ls.until_left) == tuple(prev.until_left)
    )


def start_tool_problem(tool_id, tools: Container[str]) -> str | None:
    """What is wrong with a start state's tool id (None: a tool of ``tools``); both engines."""
    if tool_id in tools:
        return None
    return f"tool {tool_id!r} is not a tool of the model (ids look like 'Litho_FE_92#1')"


def start_lot_check(model: FabModel, ls: LotState, tools: Container[str]) -> tuple[int, str | None]:
    """A start state's lot against the model, for both engines: (its step's index in its
    product's route, None), or (-1, the problem): an unknown product, a step not in the route,
    an unknown status, a processing lot on a tool not in ``tools``."""
    if ls.product not in model.products:
        return -1, f"lot {ls.id}: unknown product {ls.product!r}"
    route = model.route_of(ls.product)
    try:
        idx = route.index_of(ls.step)
    except KeyError:
        return -1, f"lot {ls.id}: step {ls.step} not in route {route.name}"
    if ls.status not in STATUSES:
        return -1, f"lot {ls.id}: status {ls.status!r}; use queued, processing or transport"
    if ls.status == "processing" and (ls.tool or "") not in tools:
        return -1, f"lot {ls.id}: processing on unknown tool {ls.tool!r}"
    if ls.until_left:
        if ls.status == "queued":
            return -1, f"lot {ls.id}: until_left is for processing or transport lots, not queued"
        problem = time_left_problem(f"lot {ls.id}: until_left", ls.until_left)
        if problem:
            return -1, problem
    return idx, None


class StartMixin:
    """Create lots (releases, initial WIP, an explicit StartState) and put them on their way."""

    def _new_lot(self, lot_id, lot_type, product, priority, wafers, release, due) -> Lot:
        route = self.routes[self.model.products[product].route]
        lot = Lot(lot_id, lot_type, product, route, priority, wafers, release, due)
        if self.cfg.record_steps:
            lot.rec = []
        self.product_of_type.setdefault(lot_type, product)
        return lot

    def _initial_lots(self, start: StartState | None) -> None:
        m = self.model
        if start is None:
            if not self.cfg.initial_wip:
                return
            for w in m.wip:
                lot = self._new_lot(
                    w.id, w.lot_type, w.product, w.priority, w.wafers, w.release, w.due
                )
                lot.idx = m.route_of(w.product).index_of(w.step)
                lot.step = lot.route[lot.idx]
                lot.left = self.t0
                self._enter_fab(lot, self.t0)
                self._push(self.t0, ARRIVE, lot)
            return
        problems = []
        stream = None  # the start's own stream: downs in progress, in the tools' order
        for ts_id, ts in start.tools.items():
            problem = start_tool_problem(ts_id, self.tools) or time_left_problem(
                f"tool {ts_id!r}: down_left", ts.down_left
            )
            if problem:
                problems.append(problem)
                continue
            tool = self.tools[ts_id]
            tool.setup = ts.setup
            if ts.busy_until > self.t0:
                tool.ready = ts.busy_until
                self._push(ts.busy_until, READY, tool)
            down_until = ts.down_until
            if ts.down_left:
                if stream is None:
                    stream = Stream(self.cfg.seed, self.cfg.replication, START)
                down_until = self.t0 + draw_left(stream, time_left_table(ts.down_left))
            if down_until > self.t0:
                tool.down_until = down_until
                self._push(down_until, DOWN_END, tool)
        prev, left = None, 0.0  # the lot before and its drawn time left
        for ls in start.lots:
            idx, problem = start_lot_check(m, ls, self.tools)
            if problem:
                problems.append(problem)
                prev = ls
                continue
            until = ls.until
            if ls.until_left:  # a processing or transport lot (start_lot_check)
                if not shares_draw(prev, ls):
                    if stream is None:
                        stream = Stream(self.cfg.seed, self.cfg.replication, START)
                    left = draw_left(stream, time_left_table(ls.until_left))
                until = self.t0 + left
            prev = ls
            lot = self._new_lot(
                ls.id,
                ls.lot_type or ls.product,
                ls.product,
                ls.priority,
                ls.wafers,
                ls.release,
                ls.due,
            )
            lot.idx, lot.step = idx, lot.route[idx]
            lot.left = self.t0
            if ls.status == "queued":
                self._enter_fab(lot, self.t0)
                self._push(self.t0, ARRIVE, lot)
            elif ls.status == "transport":
                self._enter_fab(lot, self.t0)
                self._push(max(until, self.t0), ARRIVE, lot)
            else:  # processing (start_lot_check accepts no other status)
                tool = self.tools[ls.tool]
                self._enter_fab(lot, self.t0)
                lot.arrived = self.t0
                end = max(until, self.t0)
                job = Job(
                    tool, [lot], lot.step, self.t0, end + max(0.0, tool.down_until - self.t0), 0.0
                )
                tool.jobs.append(job)
                tool.inflight += 1
                tool.ready = max(tool.ready, job.end)
                tool.fam.n += 1
                self._push(job.end, JOB_END, job)
        if problems:
            raise InputError("start state", problems)

    def _releases(self) -> None:
        for i, rel in enumerate(self.model.releases):
            if rel.count <= 0 or rel.product not in self.model.products:
                continue
            stream = Stream(self.cfg.seed, self.cfg.replication, RELEASE, i)
            t, k = rel.start, 0
            if t < self.t0 and rel.dist == "constant" and rel.interval > 0:
                k = int(-(-(self.t0 - t) // rel.interval))  # releases already made before t0
                t += k * rel.interval
            elif t < self.t0:
                t = self.t0 + stream.exponential(rel.interval)
            if k < rel.count:
                self._push(t, RELEASE_EV, [rel, k, stream])

    def _enter_fab(self, lot: Lot, t: float) -> None:
        self.fab_area += self.fab_n * (t - self.fab_last)
        self.fab_last = t
        self.fab_n += 1

    def _release(self, item, t: float) -> None:
        rel, k, stream = item
        for j in range(rel.lots_per_release):
            n = k * rel.lots_per_release + j + 1
            lot = self._new_lot(
                f"{rel.lot_type}_{n}",
                rel.lot_type,
                rel.product,
                rel.priority,
                rel.wafers,
                t,
                t + rel.due_offset,
            )
            if t >= self.warm:
                self.released[rel.lot_type] = self.released.get(rel.lot_type, 0) + 1
            self._enter_fab(lot, t)
            if self.obs is not None:
                self.obs(
                    "lot_released",
                    t,
                    lot=lot.id,
                    lot_type=lot.lot_type,
                    product=lot.product,
                    priority=lot.priority,
                )
            lot.idx = -1
            self._next_step(lot, t, transport=False)
        k += 1
        if k < rel.count:
            dt = rel.interval if rel.dist == "constant" else stream.exponential(rel.interval)
            self._push(t + dt, RELEASE_EV, [rel, k, stream])
