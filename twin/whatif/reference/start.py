"""Lots entering the reference engine: releases, the initial WIP and warm starts (a mixin)."""

from __future__ import annotations

from collections.abc import Container

from twin.errors import InputError
from twin.process.model import FabModel
from twin.whatif.reference.config import LotState, StartState
from twin.whatif.reference.entities import ARRIVE, DOWN_END, JOB_END, READY, RELEASE_EV, Job, Lot
from twin.whatif.reference.streams import RELEASE, Stream

STATUSES = ("queued", "transport", "processing")  # a start-state lot's status


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
        for ts_id, ts in start.tools.items():
            problem = start_tool_problem(ts_id, self.tools)
            if problem:
                problems.append(problem)
                continue
            tool = self.tools[ts_id]
            tool.setup = ts.setup
            if ts.busy_until > self.t0:
                tool.ready = ts.busy_until
                self._push(ts.busy_until, READY, tool)
            if ts.down_until > self.t0:
                tool.down_until = ts.down_until
                self._push(ts.down_until, DOWN_END, tool)
        for ls in start.lots:
            idx, problem = start_lot_check(m, ls, self.tools)
            if problem:
                problems.append(problem)
                continue
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
                self._push(max(ls.until, self.t0), ARRIVE, lot)
            else:  # processing (start_lot_check accepts no other status)
                tool = self.tools[ls.tool]
                self._enter_fab(lot, self.t0)
                lot.arrived = self.t0
                end = max(ls.until, self.t0)
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
