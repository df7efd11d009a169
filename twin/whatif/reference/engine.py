"""The reference discrete-event engine: one event at a time, readable, deterministic for a seed.

Semantics (this module DEFINES them for every other engine of the project):

- The event heap is keyed (time, kind, sequence): at equal times tools finish before downs,
  downs before arrivals, arrivals before releases; the sequence number breaks the remaining ties
  in the order events were scheduled.
- A lot waits in the queue of the family of its current step; a tool takes the lot first in
  its family's dispatching ranks (SMT2020 FWLRANK: ``dispatch_ranks``, ``dispatch.rank_key``),
  the minimum-run flag before them and the sequence number after. A tool is available when it is
  up, its cascade interval since the last start has passed and it holds fewer jobs than its
  capacity (STNCAP); an available tool takes work at once (see ``dispatch``), otherwise it
  idles. An arriving lot wakes an idle tool (the one needing least setup for families marked
  wake_LeastSetupTime, else the one idle most recently, or with ``SimConfig.wake="first"``
  the first of the family's tools).
- A run: setup (sequence-dependent; a change into a setup with a minimum run makes the tool owe
  that many lots of it), load, processing, unload. Per-piece times are the drawn piece time ×
  wafers; a per-piece step with a PartInterval (cascading) takes one piece time plus the interval
  for each further wafer and frees the tool for the next lot after interval × wafers; a
  BatchInterval frees it that long after the start. Per-batch steps gather lots of the same
  route step (or, with ``SimConfig.batch_by="operation"``, of any step with the same
  description and processing), at most BATCHMX wafers; a tool waits until BATCHMN wafers of one step wait
  (``SimConfig.batch_wait="min"``, the default) or BATCHMX (``"max"``, a full batch, as
  PySCFabSim). A batch takes its lots in the order of the family's hp and fifo ranks
  ((-priority, arrival) usually, arrival order in a family with the fifo rule) and runs with the processing time distribution, setup and
  intervals of the step of its first lot in that order (the head lot); each lot then follows
  its own route (its own next step, rework, CQT window and dedication).
- Downs (breakdowns: exponential time to failure counted from the previous repair; PMs: every
  interval of calendar time, or after the given number of processed wafers, at the end of the
  run that crosses it; a constant first occurrence F is staggered, tool k of n at F·k/n, or
  ``SimConfig.pm_first="same"``: F on every tool; the next calendar PM comes an interval after
  the start of the last, or after its end with ``pm_interval_from="end"``) preempt: work on
  the tool resumes after the repair (its end moves back by the down's length). Downs that hit
  a tool already down start when the first one ends. With ``idle_downs="skip"`` a down that
  falls due while the tool is idle and up has no effect (only the next one is scheduled).
- Minimum runs rank lots, they never idle a tool: a tool that owes lots of its setup takes
  another setup's lot only when none of its own waits.
- Same-tool dedication (SVESTN/FORSTEP, ``SimConfig.dedication``): the later step of a lot
  waits for the tool that ran the earlier one.
- Lots arriving at the same instant are handled one by one: the first finds an idle tool
  before the others are queued (a warm start's WIP included). With
  ``SimConfig.start_together`` the tools' first look for work (event kind LOOK) comes after
  every other event of the start instant, so all its lots are queued before a tool chooses;
  with ``SimConfig.due_ties`` lots equal on every rank go earliest due date first, before the
  sequence number (PySCFabSim's rules).
- After a step: with probability REWORK the lot goes back to RWKSTEP (at most once per step
  and lot); then steps are skipped with probability 1 - StepPercent; transport to the next step
  takes the transport time. Delay steps hold the lot without a tool. Critical queue times are
  tracked (violation when the target step starts later than the limit), not enforced.

Public hooks, for a client that drives the engine event by event (the fab emulator,
``twin.emulator``); an engine without them runs exactly as before, at no cost:

- ``schedule(t, fn)``: call ``fn(t)`` at simulated time ``t`` (at equal times after every
  engine event; among callbacks, in the order they were scheduled).
- ``set_hooks(on_arrive=, on_start=)``, before ``run()`` or ``steps()``:
  ``on_arrive(lot, t)`` is called when a lot reaches the queue of its current step (its first
  step after release, an initial WIP lot, each step after the last, a delay step) and returns
  True when it took the lot: the engine then leaves it alone until ``arrive(lot, t)`` hands it
  back (which calls ``on_arrive`` again). ``on_start(tool, lots, step, t)`` is called after a
  run has started on a tool (``tool.jobs[-1]`` is the run; its ``setup`` s come first).
- ``arrive(lot, t)``: the lot reaches its step's queue at ``t`` (>= now).
- ``steps()``: ``run()``'s loop one event at a time, yielding each event's time (no WIP
  samples, no results: the caller reads the engine's counters).
"""

from __future__ import annotations

import heapq
import itertools
import math
import time as _time
import zlib
from collections.abc import Callable, Iterator
from operator import attrgetter
from typing import Any

from twin.errors import ConfigError, InputError
from twin.process.model import FabModel, dispatch_ranks
from twin.whatif.reference.calendars import CalendarsMixin
from twin.whatif.reference.compiled import CFamily, CStep, compile_families, compile_routes
from twin.whatif.reference.config import DAY, MINRUN_REFUSALS, SimConfig, StartState
from twin.whatif.reference.dispatch import RULES, rank_key
from twin.whatif.reference.entities import (
    ARRIVE,
    DELAY_END,
    DOWN_END,
    FAIL,
    JOB_END,
    LOOK,
    PM_TIME,
    READY,
    RELEASE_EV,
    WARMUP,
    Job,
    Lot,
    Tool,
    tool_ids,
)
from twin.whatif.reference.results import FamilyStats, LotRecords, SimResult, busy_intervals
from twin.whatif.reference.start import StartMixin
from twin.whatif.reference.streams import (
    KIND_CODES,
    PM,
    PROCESS,
    ROUTING,
    TOOL,
    TRANSPORT,
    Stream,
    draw,
)

__all__ = ["CALL", "Engine", "simulate", "tool_ids"]

CALL = LOOK + 1  # heap kind of a callback (Engine.schedule): last at equal times

_position = attrgetter("k")  # a tool's place in its family (SimConfig.wake="first")
_fifo_order = attrgetter("arrived", "seq")  # lots of a batch family with the fifo rule


def _batch_order(lot: Lot) -> tuple:
    """Order of the lots of a batch family (its rule not fifo): priority, then arrival."""
    return (-lot.priority, lot.arrived, lot.seq)


# a family's queue order within a setup class (CFamily.heap): the ranks that depend on
# neither the tool nor the clock (hp, fifo), in the family's order, then the sequence number
HEAP_FIFO, HEAP_HP_FIFO, HEAP_OTHER = range(3)
# how a CLASSES family compares its class heads (CFamily.heads)
HEADS_FIFO, HEADS_SETUP_FIRST, HEADS_HOT, HEADS_OTHER = range(4)
_HEADS = {("fifo",): HEADS_FIFO, ("setup", "hp", "fifo"): HEADS_SETUP_FIRST}
_HEADS[("hp", "setup", "fifo")] = HEADS_HOT


def _static_order(static: tuple[str, ...], due_ties: bool = False) -> Callable[[Lot], tuple]:
    """A batch family's lot order for static ranks other than (fifo) and (hp, fifo), and for
    any ranks with SimConfig.due_ties (the due date before the sequence number)."""
    getters = tuple(
        (lambda lot: -lot.priority) if r == "hp" else _unstarted if r == "started" else _arrived
        for r in static
    )
    if due_ties:
        return lambda lot: (*(g(lot) for g in getters), lot.due, lot.seq)
    return lambda lot: (*(g(lot) for g in getters), lot.seq)


def _unstarted(lot: Lot) -> int:
    """The "started" rank (SimConfig.unstarted_last): 1 for a lot that has not yet started a
    step in this run (it goes after the others), else 0."""
    return 0 if lot.started else 1


# the ranks that depend on neither the tool nor the clock: a setup class's heap order
STATIC_RANKS = ("hp", "fifo", "started")


_arrived = attrgetter("arrived")


_new = object.__new__
heappush, heappop = heapq.heappush, heapq.heappop

# how a family keeps its queue
CLASSES, BATCHING, SCAN = range(3)


class Engine(StartMixin, CalendarsMixin):
    """One replication of a model; ``run()`` returns the SimResult."""

    def __init__(
        self,
        model: FabModel,
        cfg: SimConfig,
        start: StartState | None = None,
        observer: Callable | None = None,
        progress: Callable[[float], None] | None = None,
    ):
        problems = model.validate()
        if problems:
            raise InputError(f"process model {model.name}", problems)
        unknown = sorted({f.rule for f in model.families.values() if f.rule not in RULES})
        if unknown:
            raise ConfigError("dispatching", [f"unknown rule(s) {unknown}; known {sorted(RULES)}"])
        self.model, self.cfg, self.obs, self.progress = model, cfg, observer, progress
        self.heap: list = []
        self.seq = itertools.count()
        self.t0 = start.time if start else 0.0
        self.warm = self.t0 + cfg.warmup_days * DAY
        self.end = self.t0 + cfg.days * DAY
        seed, rep = cfg.seed, cfg.replication
        self.pm_from_end = cfg.pm_interval_from == "end"
        self.skip_idle_downs = cfg.idle_downs == "skip"
        self.wake_first = cfg.wake == "first"
        self.no_delay_transport = not cfg.delay_transport
        self.min_run_hold = cfg.min_runs == "hold"
        self.sample_dt = cfg.wip_sample_days * DAY
        # SimConfig.busy_by_interval: the number of sample intervals (0: off)
        self.busy_by = (
            busy_intervals(self.t0, self.end, self.sample_dt) if cfg.busy_by_interval else 0
        )
        self.routing = Stream(seed, rep, ROUTING)
        self.transport = Stream(seed, rep, TRANSPORT)
        tr = model.transport
        self.tr = (KIND_CODES.get(tr.kind, 0), *tr.bounds(model.ptime_spread_mode), tr.mean)
        if not cfg.transport or (tr.kind == "constant" and tr.mean == 0):
            self.tr = None
        # uniform transport (the usual case) as (low, high - low), drawn inline in _job_end
        self.tr_uniform = (
            (self.tr[1], self.tr[2] - self.tr[1]) if self.tr and self.tr[0] == 1 else None
        )
        self.amhs = None  # transport object (twin.amhs) asked when lots arrive, if any
        if cfg.transport and getattr(getattr(model, "amhs", None), "enabled", False):
            from twin.amhs.transport import AmhsTransport

            self.amhs = AmhsTransport(model, model.amhs, seed, rep)
            self.tr, self.tr_uniform = self.tr or (0, 0.0, 0.0, 0.0), None
        self.families = compile_families(model, cfg)
        self.routes = compile_routes(model, cfg, self.families)
        self.stats = {}
        for fam in self.families.values():
            key = zlib.crc32(fam.name.encode())  # stable across scenario copies
            fam.stream = Stream(seed, rep, PROCESS, key)
            ranks = dispatch_ranks(fam.rule, model.families[fam.name].ranks)
            if cfg.unstarted_last and ranks is not None:
                ranks = ("started", *ranks)  # after the minimum-run flag, before the ranks
            fam.ranks = ranks
            if fam.batching:
                fam.mode = BATCHING
            elif ranks is not None and "cr" not in ranks:
                fam.mode = CLASSES
            else:
                fam.mode = SCAN
            # the ranks that order lots within a setup class (and a batch family's lots: the
            # setup and critical-ratio ranks do not order batches; a registered rule's batches
            # go by priority and arrival, as they always have)
            static = tuple(r for r in ranks or ("hp", "fifo") if r in STATIC_RANKS)
            fam.static = static
            # SimConfig.due_ties: the due date before the sequence number (built-in ranks; the
            # general heap entries and class-head keys carry it)
            fam.due_ties = due_ties = cfg.due_ties and ranks is not None
            fam.fifo = static == ("fifo",) and not due_ties
            fam.heap = {("fifo",): HEAP_FIFO, ("hp", "fifo"): HEAP_HP_FIFO}.get(static, HEAP_OTHER)
            fam.heads = _HEADS.get(ranks, HEADS_OTHER)
            if due_ties:
                fam.heap, fam.heads = HEAP_OTHER, HEADS_OTHER
            # the number of static ranks before setup (where a class head's setup time goes)
            at = ranks.index("setup") if ranks and "setup" in ranks else -1
            fam.setup_at = -1 if at < 0 else sum(r in STATIC_RANKS for r in ranks[:at])
            fam.border = (
                _fifo_order
                if fam.fifo
                else _batch_order
                if fam.heap == HEAP_HP_FIFO
                else _static_order(static, due_ties)
            )
            fam.keyfn = rank_key(ranks, due_ties) if ranks is not None else RULES[fam.rule]
            if model.families[fam.name].is_delay:
                continue
            fam.tools = [
                Tool(f"{fam.name}#{k + 1}", fam, k) for k in range(model.families[fam.name].count)
            ]
            for k, tool in enumerate(fam.tools):  # per tool: downs and PM durations
                tool.stream = Stream(seed, rep, TOOL, key * 4096 + k)
                tool.pm_stream = Stream(seed, rep, PM, key * 4096 + k)
            self.stats[fam.name] = fam.fs = FamilyStats(tools=len(fam.tools), area=fam.area)
            if self.busy_by:
                fam.fs.busy_by = [0.0] * self.busy_by
        self.tools = {t.id: t for f in self.families.values() for t in f.tools}
        self.min_runs = model.min_runs
        self.records = LotRecords()
        self.released: dict[str, int] = {}
        self.product_of_type: dict[str, str] = {}
        self.cqt_checks = self.cqt_violations = 0
        self.fab_n = 0
        self.fab_area = 0.0
        self.fab_last = self.t0
        self.wip_times: list[float] = []
        self.wip_lots: list[int] = []
        self.events = 0
        self._calendars()
        self._initial_lots(start)
        self._releases()
        self._push(self.warm, WARMUP, None)
        # every tool looks for work once at the start (SimConfig.start_together: after every
        # other event of the start instant, so that all its lots are queued first)
        look = LOOK if cfg.start_together else READY
        for tool in self.tools.values():
            if tool.ready <= self.t0:
                tool.ready = self.t0
                self._push(self.t0, look, tool)

    # ---- public hooks (module docstring) ------------------------------------------------
    def schedule(self, t: float, fn: Callable[[float], Any]) -> None:
        """Call ``fn(t)`` at simulated time ``t`` (after every engine event at ``t``)."""
        heappush(self.heap, (t, CALL, next(self.seq), fn))

    def arrive(self, lot: Lot, t: float) -> None:
        """The lot reaches the queue of its current step at ``t`` (through ``on_arrive``)."""
        heappush(self.heap, (t, ARRIVE, next(self.seq), lot))

    def set_hooks(
        self,
        *,
        on_arrive: Callable[[Lot, float], bool] | None = None,
        on_start: Callable[[Tool, list, CStep, float], Any] | None = None,
    ) -> None:
        """Install the hooks (None leaves one as it is). They wrap ``_arrive`` and ``_start``
        on this instance only, so an engine without hooks pays nothing for them."""
        if on_arrive is not None:
            arrive = type(self)._arrive.__get__(self)

            def hooked_arrive(lot: Lot, t: float) -> None:
                if not on_arrive(lot, t):
                    arrive(lot, t)

            self._arrive = hooked_arrive  # type: ignore[method-assign]
        if on_start is not None:
            start = type(self)._start.__get__(self)

            def hooked_start(tool: Tool, lots: list, st: CStep, t: float) -> None:
                start(tool, lots, st, t)
                on_start(tool, lots, st, t)

            self._start = hooked_start  # type: ignore[method-assign]

    def steps(self) -> Iterator[float]:
        """``run()``'s loop, one heap event at a time (the same handling), yielding its time;
        stops after the horizon. No WIP samples or results: see the module docstring."""
        heap, pop, end, handle = self.heap, heapq.heappop, self.end, self._handle
        while heap:
            t, kind, _, obj = heap[0]
            if t > end:
                return
            pop(heap)
            handle(t, kind, obj)
            yield t

    # ---- scheduling helpers ------------------------------------------------------------
    def _push(self, t: float, kind: int, obj) -> None:
        heappush(self.heap, (t, kind, next(self.seq), obj))

    def _window(self, a: float, b: float) -> float:
        """Length of [a, b] inside the measured window [warm-up end, end]."""
        lo = a if a > self.warm else self.warm
        hi = b if b < self.end else self.end
        return hi - lo if hi > lo else 0.0

    def _busy_by(self, acc: list[float], a: float, b: float) -> None:
        """Add [a, b] inside the measured window to the sample intervals it overlaps
        (SimConfig.busy_by_interval; the kernel's tools.busy_by does the same arithmetic)."""
        lo = a if a > self.warm else self.warm
        hi = b if b < self.end else self.end
        if hi <= lo:
            return
        t0, dt = self.t0, self.sample_dt
        i = int(math.floor((lo - t0) / dt))
        while i < len(acc):
            s = t0 + float(i) * dt
            e = s + dt
            ov = (hi if hi < e else e) - (lo if lo > s else s)
            if ov > 0.0:
                acc[i] += ov
            if e >= hi:
                break
            i += 1

    def _state(self, tool: Tool, t: float, state: str, reason: str) -> None:
        if self.obs is not None and tool.state != (state, reason):
            tool.state = (state, reason)
            self.obs(
                "tool_state", t, tool=tool.id, family=tool.fam.name, state=state, reason=reason
            )

    # ---- lots --------------------------------------------------------------------------
    def _arrive(self, lot: Lot, t: float) -> None:
        """The lot reaches the queue of its current step."""
        lot.last_tt = dt = t - lot.left
        lot.tt += dt
        lot.arrived = t
        st = lot.step
        fam = st.fam
        if st.delay:  # no tool: hold the lot for the delay
            d = draw(fam.stream, st.kind, st.lo, st.hi, st.mean)
            heappush(self.heap, (t + d, DELAY_END, next(self.seq), lot))
            return
        fam.area_t += fam.n * (t - fam.last_t)
        fam.last_t = t
        fam.n += 1
        lot.seq = seq = next(self.seq)
        mode = fam.mode
        if lot.dedic is not None and mode != BATCHING and lot.idx in lot.dedic:
            if self._arrive_dedicated(lot, t):
                return
        if mode == CLASSES:
            classes = fam.classes
            if not classes and fam.idle and not fam.wake_least_setup and not self.min_run_hold:
                # nothing waits and a tool is free: start at once
                tool = self._first_idle(fam.idle) if self.wake_first else fam.idle.pop()
                tool.in_idle = False
                self._start(tool, [lot], st, t)
                return
            heap = fam.heap
            if heap == HEAP_HP_FIFO:
                entry = (-lot.priority, t, seq, lot)
            elif heap == HEAP_FIFO:
                entry = (t, seq, lot)
            else:
                entry = self._entry(fam, lot, t, seq)
            h = classes.get(st.setup)
            if h is None:
                classes[st.setup] = [entry]
            else:
                heappush(h, entry)
        elif mode == BATCHING:
            g = fam.groups.get(st.key)
            if g is None:
                fam.groups[st.key] = [lot]
            else:
                g.append(lot)
        else:
            fam.queue.append(lot)
        if fam.idle:
            self._wake(fam, st, t)

    def _arrive_dedicated(self, lot: Lot, t: float) -> bool:
        """A lot whose step must run on the tool of an earlier step waits for that tool only."""
        tool = lot.dedic.pop(lot.idx, None)
        if not lot.dedic:
            lot.dedic = None  # nothing more dedicated: skip this check at the next steps
        if tool is None or tool.fam is not lot.step.fam:
            return False
        lot.only = tool
        if tool.fam.mode == CLASSES:
            heappush(tool.ded, self._entry(tool.fam, lot, t, lot.seq))
        else:
            tool.fam.queue.append(lot)
        if tool.in_idle:
            tool.fam.idle.remove(tool)
            tool.in_idle = False
            if not self._dispatch(tool, t):
                tool.in_idle = True
                tool.fam.idle.append(tool)
        return True

    @staticmethod
    def _entry(fam: CFamily, lot: Lot, t: float, seq: int) -> tuple:
        """A lot's entry in a class heap: its static ranks (CFamily.static), the due date with
        SimConfig.due_ties, seq, the lot."""
        if fam.heap == HEAP_HP_FIFO:
            return (-lot.priority, t, seq, lot)
        vals = tuple(
            -lot.priority if r == "hp" else _unstarted(lot) if r == "started" else t
            for r in fam.static
        )
        if fam.due_ties:
            return (*vals, lot.due, seq, lot)
        return (*vals, seq, lot)

    def _wake(self, fam: CFamily, st: CStep, t: float) -> None:
        """Give the new work to an idle tool (least setup first where the family says so)."""
        idle = fam.idle
        if self.min_run_hold and len(idle) > 1:
            self._wake_each(fam, st, t)
            return
        if fam.wake_least_setup and fam.has_setups and len(idle) > 1:
            if self.wake_first:  # ties: the first tool of the family
                tool = min(idle, key=lambda tl: (self._setup_time(tl.setup, st), tl.k))
            else:  # ties: the first in the idle list
                tool = min(idle, key=lambda tl: self._setup_time(tl.setup, st))
            idle.remove(tool)
        elif self.wake_first:
            tool = self._first_idle(idle)
        else:
            tool = idle.pop()
        tool.in_idle = False
        if not self._dispatch(tool, t):
            tool.in_idle = True
            idle.append(tool)

    def _wake_each(self, fam: CFamily, st: CStep, t: float) -> None:
        """SimConfig.min_runs="hold": every idle tool tries, in the order _wake picks them,
        until one starts work (a tool that owes another setup may refuse); a tool that found
        nothing goes to the end of the idle list, after those not tried yet."""
        idle = fam.idle
        untried = len(idle)
        while untried:
            cands = idle[:untried]
            if fam.wake_least_setup and fam.has_setups and untried > 1:
                if self.wake_first:
                    tool = min(cands, key=lambda tl: (self._setup_time(tl.setup, st), tl.k))
                else:
                    tool = min(cands, key=lambda tl: self._setup_time(tl.setup, st))
            elif self.wake_first:
                tool = min(cands, key=_position)
            else:
                tool = cands[-1]
            idle.remove(tool)
            tool.in_idle = False
            if self._dispatch(tool, t):
                return
            tool.in_idle = True
            idle.append(tool)
            untried -= 1

    @staticmethod
    def _first_idle(idle: list) -> Tool:
        """SimConfig.wake="first": take the idle tool first in its family's order."""
        tool = min(idle, key=_position)
        idle.remove(tool)
        return tool

    def _performed_from(self, route: list, i: int) -> int:
        """The first step from index i the lot executes (each sampled step draws whether it
        is skipped); len(route) when none is left."""
        n = len(route)
        while i < n:
            p = route[i].sample_p
            if p >= 1.0 or self.routing.u() < p:
                return i
            i += 1
        return n

    def _next_step(self, lot: Lot, t: float, transport: bool = True) -> None:
        """Move past skipped (sampled-out) steps; complete the lot or send it on."""
        route = lot.route
        i = self._performed_from(route, lot.idx + 1)
        if i >= len(route):
            self._complete(lot, t)
            return
        if self.no_delay_transport and (lot.step.delay or route[i].delay):
            transport = False  # SimConfig.delay_transport=False: none into or out of a delay
        lot.idx, lot.step, lot.left = i, route[i], t
        if transport and self.amhs is not None:
            t = self.amhs(lot, t)
        elif transport and self.tr is not None:
            k, lo, hi, mean = self.tr
            t += draw(self.transport, k, lo, hi, mean)
        heappush(self.heap, (t, ARRIVE, next(self.seq), lot))

    def _step_done(self, lot: Lot, t: float, queue: float, process: float) -> None:
        """The lot finished its current step at t: rework, CQT window, next step."""
        st = lot.step
        lot.n_steps += 1
        if lot.rec is not None:
            lot.rec.append((st.number, queue, process, lot.last_tt))
        if st.cqt_to >= 0:
            lot.cqt_to, lot.cqt_deadline = st.cqt_to, t + st.cqt_limit
        if st.rework_p > 0.0 and st.rework_to >= 0 and self.routing.u() < st.rework_p:
            if lot.reworked is None:
                lot.reworked = set()
            if lot.idx not in lot.reworked:
                lot.reworked.add(lot.idx)
                lot.idx = st.rework_to - 1  # _next_step moves to the rework step
        self._next_step(lot, t)

    def _complete(self, lot: Lot, t: float) -> None:
        self.fab_area += self.fab_n * (t - self.fab_last)
        self.fab_last = t
        self.fab_n -= 1
        r = self.records
        r.id.append(lot.id)
        r.lot_type.append(lot.lot_type)
        r.product.append(lot.product)
        r.priority.append(lot.priority)
        r.wafers.append(lot.wafers)
        r.release.append(lot.release)
        r.due.append(lot.due)
        r.completion.append(t)
        r.queue_time.append(lot.qt)
        r.process_time.append(lot.pt)
        r.transport_time.append(lot.tt)
        r.steps_done.append(lot.n_steps)
        if lot.rec is not None:
            r.steps.append(lot.rec)
        if self.obs is not None:
            self.obs(
                "lot_completed", t, lot=lot.id, lot_type=lot.lot_type, cycle_time=t - lot.release
            )

    # ---- tools -------------------------------------------------------------------------
    def _setup_time(self, current, st: CStep) -> float:
        new = st.setup
        if new is None or new == current:
            return 0.0
        v = st.setup_from.get(current)
        if v is None:
            v = st.setup_from[current] = self.model.setup_time(current, new, st)
        return v

    def _check(self, tool: Tool, t: float) -> None:
        """Make the tool work if it is available, else leave it; idle if nothing to do."""
        if tool.in_idle or tool.down_until > t or tool.ready > t:
            return
        if tool.inflight >= tool.fam.capacity:
            return
        if not self._dispatch(tool, t):
            tool.in_idle = True
            tool.fam.idle.append(tool)
            if not tool.inflight and self.obs is not None:
                self._state(tool, t, "standby", "idle")

    def _dispatch(self, tool: Tool, t: float) -> bool:
        """Start the best waiting lot (or batch) on the tool; False when nothing can start.

        Built-in rules keep one heap per setup (ordered by priority and arrival, or arrival
        alone for FIFO): within a setup class the minimum-run flag and the setup time are the
        same, so the best lot is the best of the class heads. Other rules scan the queue.
        """
        fam = tool.fam
        mode = fam.mode
        if mode == CLASSES:
            classes = fam.classes
            ded = tool.ded
            if not classes and not ded:
                return False
            if not ded and len(classes) == 1:
                h = next(iter(classes.values()))
            else:
                cands = list(classes.values())
                if ded:  # lots dedicated to this tool compete like one more class
                    cands.append(ded)
                h, best = None, None
                owe = tool.minrun_left > 0
                cur = tool.setup
                for hh in cands:
                    head = hh[0]
                    hst = head[-1].step
                    s = hst.setup
                    if s is None or s == cur:
                        stt = 0.0
                    else:  # _setup_time's cache, read here: one look-up per class head
                        stt = hst.setup_from.get(cur)
                        if stt is None:
                            stt = self._setup_time(cur, hst)
                    mr = 1 if owe and s != tool.minrun_setup else 0
                    heads = fam.heads
                    if heads == HEADS_HOT:
                        k = (mr, head[0], stt, head[1], head[2])
                    elif heads == HEADS_SETUP_FIRST:
                        k = (mr, stt, head[0], head[1], head[2])
                    elif heads == HEADS_FIFO:
                        k = (mr, head[0], head[1])
                    elif fam.setup_at < 0:  # other ranks: the static ranks, setup among them
                        k = (mr, *head[:-1])
                    else:
                        at = fam.setup_at
                        k = (mr, *head[:at], stt, *head[at:-1])
                    if best is None or k < best:
                        best, h = k, hh
            if self.min_run_hold and self._refuse(tool, h[0][-1]):
                return False
            lot = heappop(h)[-1]
            if not h and h is not ded:
                del classes[lot.step.setup]
        elif mode == BATCHING:
            return self._dispatch_batch(tool, t)
        else:
            q = fam.queue
            if not q:
                return False
            key, st_time = fam.keyfn, self._setup_time
            best, bi = None, 0
            for i, cand in enumerate(q):
                if cand.only is not None and cand.only is not tool:
                    continue  # dedicated to another tool
                k = key(cand, tool, t, st_time(tool.setup, cand.step))
                if best is None or k < best:
                    best, bi = k, i
            if best is None:
                return False
            if self.min_run_hold and self._refuse(tool, q[bi]):
                return False
            lot = q.pop(bi)
        self._start(tool, [lot], lot.step, t)
        return True

    @staticmethod
    def _refuse(tool: Tool, lot: Lot) -> bool:
        """SimConfig.min_runs="hold": a tool that owes lots of its setup refuses a lot of
        another setup (and idles) up to MINRUN_REFUSALS times in a row."""
        if tool.minrun_left > 0 and lot.step.setup != tool.minrun_setup:
            if tool.refused < MINRUN_REFUSALS:
                tool.refused += 1
                return True
        return False

    def _dispatch_batch(self, tool: Tool, t: float) -> bool:
        """Batch families: the best group of one batch key (compiled.batch_key) with enough
        wafers. The group's lots are taken in (-priority, arrival, sequence) order (arrival,
        sequence for a fifo family, which ignores priority) and the batch runs with the
        processing time, setup and intervals of the step of the lot that heads it in that
        order (with SimConfig.batch_by="operation" the lots of one key may be at steps whose
        spread or setup differ); each lot then goes on along its own route."""
        fam = tool.fam
        groups = fam.groups
        order = fam.border
        best, best_key = None, None
        for key, lots in groups.items():
            st = lots[0].step
            if st.batch and sum(lt.wafers for lt in lots) < st.bmin:
                continue
            head = min(map(order, lots))
            if best_key is None or head < best_key:
                best, best_key = key, head
        if best is None:
            return False
        lots = groups[best]
        lots.sort(key=order)
        st = lots[0].step  # the head's step (batch_by="operation": steps of one key may differ)
        if st.batch:
            take, w = [], 0
            for lt in lots:
                if w + lt.wafers > st.bmax and take:
                    break
                take.append(lt)
                w += lt.wafers
        else:
            take = lots[:1]
        del lots[: len(take)]
        if not lots:
            del groups[best]
        self._start(tool, take, st, t)
        return True

    def _start(self, tool: Tool, lots: list[Lot], st: CStep, t: float) -> None:
        """Track the lots in: setup, load, process, unload; schedule the end (and readiness)."""
        fam = tool.fam
        setup = 0.0
        if st.setup is not None and st.setup != tool.setup:
            setup = self._setup_time(tool.setup, st)
            if setup > 0.0 and st.setup in self.min_runs:
                tool.minrun_left, tool.minrun_setup = self.min_runs[st.setup], st.setup
            tool.setup = st.setup
        if self.min_run_hold:  # every run of a setup with a minimum run renews the debt
            tool.refused = 0
            if st.setup in self.min_runs:
                tool.minrun_left, tool.minrun_setup = self.min_runs[st.setup], st.setup
        if tool.minrun_left > 0:
            tool.minrun_left -= len(lots)
        stream = fam.stream
        if st.kind == 1:  # uniform, as draw() does it, inlined: one draw per run
            buf = stream.buf
            base = st.lo + st.span * (buf.pop() if buf else stream.u())
        else:
            base = draw(stream, st.kind, st.lo, st.hi, st.mean)
        wafers = lots[0].wafers if len(lots) == 1 else sum(lt.wafers for lt in lots)
        if st.per_piece:
            casc = st.part_interval
            if casc is not None:
                proc = base + casc * (wafers - 1)
                casc *= wafers
            else:
                proc = base * wafers
        else:  # per lot or per batch
            proc = base
            casc = st.batch_interval
        run = fam.load + proc + fam.unload
        begin = t + setup
        end = begin + run
        job = _new(Job)  # without Job.__init__: a run per step, and the call is the dear part
        job.tool = tool
        job.lots = lots
        job.step = st
        job.start = t
        job.end = end
        job.setup = setup
        job.pms = None
        tool.jobs.append(job)
        tool.inflight += 1
        heappush(self.heap, (end, JOB_END, next(self.seq), job))
        if casc is None:
            tool.ready = busy_end = end
        else:
            tool.ready = busy_end = begin + casc
            heappush(self.heap, (busy_end, READY, next(self.seq), tool))
        fs = fam.fs
        warm = self.warm
        if busy_end > warm:
            if t >= warm and busy_end <= self.end:
                fs.busy += busy_end - begin
                if setup:  # adding 0.0 changes nothing
                    fs.setup += setup
            else:
                fs.busy += self._window(begin, busy_end)
                fs.setup += self._window(t, begin)
            if self.busy_by:
                self._busy_by(fs.busy_by, begin, busy_end)
        tool.wafers += wafers
        if tool.wafers >= tool.pm_due:
            job.pms = self._wafer_pms(tool)
        measured = t >= warm
        obs = self.obs
        for lot in lots:
            lot.only = None
            lot.started = True
            ded_to = lot.step.dedicate_to  # the lot's own step (a batch may mix routes)
            if ded_to >= 0:  # SVESTN/FORSTEP: that later step must run on this tool
                if lot.dedic is None:
                    lot.dedic = {}
                lot.dedic[ded_to] = tool
            q = t - lot.arrived
            lot.qt += q
            if measured:
                fs.lots_started += 1
                fs.queue_time += q
            if lot.cqt_to >= 0 and lot.cqt_to == lot.idx:
                if measured:
                    self.cqt_checks += 1
                    if t > lot.cqt_deadline:
                        self.cqt_violations += 1
                lot.cqt_to = -1
            if obs is not None:
                obs("track_in", t, lot=lot.id, tool=tool.id, family=fam.name, step=lot.step.number)
        if obs is not None:
            if setup:
                self._state(tool, t, "scheduled_down", "setup")
            else:
                self._state(tool, t, "productive", "processing")

    def _job_end(self, job: Job, t: float) -> None:
        tool = job.tool
        fam = tool.fam
        jobs = tool.jobs
        if len(jobs) == 1:
            jobs.clear()
        else:
            jobs.remove(job)
        tool.inflight -= 1
        job.tool = None
        lots = job.lots
        fam.area_t += fam.n * (t - fam.last_t)
        fam.last_t = t
        fam.n -= len(lots)
        fs = fam.fs
        measured = t >= self.warm
        obs = self.obs
        start = job.start
        process = t - start
        # the common case (no record, rework or CQT window) inlines _step_done/_next_step;
        # each lot's own step (a batch of one operation holds lots of several routes)
        tr_uniform = self.tr_uniform
        for lot in lots:
            st = lot.step
            lot.pt += process
            if measured:
                fs.departures += 1
                fs.sojourn += t - lot.arrived
            if obs is not None:
                obs("track_out", t, lot=lot.id, tool=tool.id, family=fam.name, step=st.number)
            if not st.plain or lot.rec is not None:
                self._step_done(lot, t, start - lot.arrived, process)
                continue
            lot.n_steps += 1
            nxt = st.next
            if nxt is not None and nxt.sample_p >= 1.0:  # usually: the next step is never skipped
                lot.idx += 1
                lot.step = nxt
            else:
                route = lot.route
                i = self._performed_from(route, lot.idx + 1)
                if i >= len(route):
                    self._complete(lot, t)
                    continue
                lot.idx = i
                lot.step = route[i]
            lot.left = t
            if self.no_delay_transport and lot.step.delay:  # SimConfig.delay_transport
                heappush(self.heap, (t, ARRIVE, next(self.seq), lot))
            elif tr_uniform is not None:
                buf = self.transport.buf
                x = buf.pop() if buf else self.transport.u()
                t_arr = t + tr_uniform[0] + tr_uniform[1] * x
                heappush(self.heap, (t_arr, ARRIVE, next(self.seq), lot))
            elif self.tr is None:
                heappush(self.heap, (t, ARRIVE, next(self.seq), lot))
            elif self.amhs is not None:
                heappush(self.heap, (self.amhs(lot, t), ARRIVE, next(self.seq), lot))
            else:
                t_arr = t + draw(self.transport, *self.tr)
                heappush(self.heap, (t_arr, ARRIVE, next(self.seq), lot))
        if job.pms:
            for dur in job.pms:
                self._down(tool, t, self._draw_dist(tool.pm_stream, dur), "pm")
        # the tool looks for work (as _check, inlined: this is the busiest path; a family
        # whose class heaps are empty has nothing to dispatch)
        if not tool.in_idle and tool.down_until <= t and tool.ready <= t:
            if tool.inflight < fam.capacity and (
                (fam.mode == CLASSES and not fam.classes and not tool.ded)
                or not self._dispatch(tool, t)
            ):
                tool.in_idle = True
                fam.idle.append(tool)
        if obs is not None and not tool.jobs and tool.down_until <= t and tool.in_idle:
            self._state(tool, t, "standby", "idle")

    # ---- the loop ----------------------------------------------------------------------
    def _warmup(self, t: float) -> None:
        """Start of the measured window: reset the time integrals for Little's law."""
        for fam in self.families.values():
            fam.area_t += fam.n * (t - fam.last_t)
            fam.last_t = t
            fam.area_t = 0.0
        self.fab_area += self.fab_n * (t - self.fab_last)
        self.fab_last = t
        self.fab_area = 0.0

    def _handle(self, t: float, kind: int, obj: Any) -> None:
        """What one heap event does, by kind (``run`` and ``steps`` share it).
        Stale events (a job or down that was rescheduled) are recognised and ignored here."""
        if kind == ARRIVE:
            self._arrive(obj, t)
        elif kind == JOB_END:
            if obj.tool is not None and obj.end == t:
                self._job_end(obj, t)
        elif kind == READY or kind == LOOK:
            if obj.ready == t:
                self._check(obj, t)
        elif kind == DELAY_END:
            obj.pt += t - obj.arrived
            self._step_done(obj, t, 0.0, t - obj.arrived)
        elif kind == DOWN_END:
            if obj.down_until == t:
                if self.obs is not None:
                    busy = bool(obj.jobs)
                    self._state(
                        obj,
                        t,
                        "productive" if busy else "standby",
                        "processing" if busy else "idle",
                    )
                self._check(obj, t)
        elif kind == FAIL:
            self._fail(obj, t)
        elif kind == PM_TIME:
            self._pm(obj, t)
        elif kind == RELEASE_EV:
            self._release(obj, t)
        elif kind == WARMUP:
            self._warmup(t)
        elif kind == CALL:
            obj(t)

    def run(self) -> SimResult:
        """Run to the end of the horizon and collect the results."""
        wall = _time.perf_counter()
        heap, end = self.heap, self.end
        sample_dt = self.cfg.wip_sample_days * DAY
        next_sample = self.t0
        n = 0
        progress = self.progress
        span = end - self.t0
        handle = self._handle
        arrive, job_end, check = self._arrive, self._job_end, self._check
        pop = heapq.heappop  # looked up per run: tests trace the loop's pops through heapq
        limit = min(next_sample, end)  # one comparison per event for the end and the samples
        # "while True" and not "while heap": CPython 3.11 specialises a function's bytecode
        # after some calls or unconditional backward jumps, and "while heap" loops back with
        # a conditional jump, which would leave this loop (called once) unspecialised
        while True:
            if not heap:
                break
            t, kind, _, obj = heap[0]
            if t >= limit:
                if t > end:
                    break
                while t >= next_sample:
                    self.wip_times.append(next_sample)
                    self.wip_lots.append(self.fab_n)
                    next_sample += sample_dt
                    if progress is not None:
                        progress(min(1.0, (t - self.t0) / span))
                limit = min(next_sample, end)
            pop(heap)
            n += 1
            # _handle's three busiest kinds (98 % of the events) without its extra call
            if kind == ARRIVE:
                arrive(obj, t)
            elif kind == JOB_END:
                if obj.tool is not None and obj.end == t:
                    job_end(obj, t)
            elif kind == READY:
                if obj.ready == t:
                    check(obj, t)
            else:
                handle(t, kind, obj)
        self.events = n
        result = self._result(_time.perf_counter() - wall)
        if self.amhs is not None:
            result.amhs = self.amhs.kpis(self.warm, self.end, self.records)
        return result

    def _result(self, wall: float) -> SimResult:
        end = self.end
        for fam in self.families.values():
            if fam.name in self.stats:
                fs = self.stats[fam.name]
                fs.wip_area = fam.area_t + fam.n * (end - fam.last_t)
        fab_area = self.fab_area + self.fab_n * (end - self.fab_last)
        rpt = {}
        for name, prod in self.model.products.items():
            steps = self.routes[prod.route]
            rpt[name] = steps[0].rpt if steps else 0.0
        return SimResult(
            lots=self.records,
            families=self.stats,
            released=self.released,
            raw_process_time=rpt,
            wip_times=self.wip_times,
            wip_lots=self.wip_lots,
            fab_wip_area=fab_area,
            cqt_checks=self.cqt_checks,
            cqt_violations=self.cqt_violations,
            start=self.t0,
            warmup_end=self.warm,
            end=end,
            events=self.events,
            wall_seconds=wall,
            wip_end=self.fab_n,
            product_of_type=self.product_of_type,
            sample_dt=self.sample_dt,
        )


def simulate(
    model: FabModel,
    config: SimConfig,
    *,
    start: StartState | None = None,
    observer: Callable | None = None,
    progress: Callable[[float], None] | None = None,
) -> SimResult:
    """Run one replication of ``model`` under ``config``; see the module docstring.

    ``observer(kind, time, **fields)`` is called on lot_released, track_in, track_out,
    lot_completed and tool_state (fields state, reason: E10 productive/standby/scheduled_down/
    unscheduled_down with reason processing/idle/setup/pm/breakdown). ``progress(fraction)``
    is called as simulated time advances.
    """
    return Engine(model, config, start, observer, progress).run()
