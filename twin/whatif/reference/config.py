"""Run configuration and warm-start state of the reference engine (plain dataclasses)."""

from __future__ import annotations

import math
import operator
from dataclasses import dataclass, field

from twin.errors import ConfigError

DAY = 86400.0  # s
BATCH_WAITS = ("min", "max")  # SimConfig.batch_wait: wafers a batch tool waits for
PM_FIRSTS = ("staggered", "same")  # SimConfig.pm_first: a constant first occurrence per tool
PM_INTERVALS_FROM = ("start", "end")  # SimConfig.pm_interval_from: next calendar PM after
IDLE_DOWNS = ("apply", "skip")  # SimConfig.idle_downs: does a down take an idle tool down
BATCH_BYS = ("step", "operation")  # SimConfig.batch_by: which waiting lots may share a batch
WAKES = ("recent", "first")  # SimConfig.wake: which idle tool new work goes to
MIN_RUNS = ("rank", "hold")  # SimConfig.min_runs: how a tool keeps a minimum run
MINRUN_REFUSALS = 5  # min_runs="hold": other setups a tool refuses in a row (PySCFabSim's 5)
MAX_DAYS = 36_500.0  # a century: the horizon of a what-if run
MAX_SAMPLES = 1_000_000  # WIP samples per run (days / wip_sample_days)
# the kernel keys its streams with a 64-bit seed and a 32-bit replication (the reference's
# numpy streams take any size): one range for both engines, so a run moves between them
MAX_SEED = 2**64 - 1
MAX_REPLICATION = 2**31 - 1


@dataclass(kw_only=True)
class SimConfig:
    """One replication of one scenario. Variants are copies: ``dataclasses.replace(cfg, ...)``."""

    days: float  # simulated days after the start time
    warmup_days: float = 0.0  # days at the start whose completions the KPIs ignore
    seed: int = 0  # base seed; streams are keyed by (seed, replication, purpose, index)
    replication: int = 0  # replication number (common random numbers across scenarios)
    breakdowns: bool = True  # unscheduled downs from the down calendars
    pms: bool = True  # preventive maintenance (calendar and wafer-count based)
    transport: bool = True  # transport delays between steps
    # transport into and out of delay steps (a Delay family such as HVLM's Delay_32): False
    # moves a lot into a delay step and on from it at once, as PySCFabSim, whose transport
    # only runs between the locations fromto.txt lists (HVLM: Fab to Fab; Delay_32 is at
    # location Delay)
    delay_transport: bool = True
    load_unload: bool = True  # add LTIME/ULTIME of the family to every run
    dedication: bool = True  # SVESTN/FORSTEP: a later step runs on the tool of an earlier one
    initial_wip: bool = True  # start with the model's WIP lots (ignored with a StartState)
    # when a batch tool starts a batch of one route step: "min" as soon as BATCHMN wafers wait
    # (the format's minimum batch); "max" waits until BATCHMX wafers wait (a full batch, as
    # PySCFabSim does; it can hold the lots of a low-volume step indefinitely)
    batch_wait: str = "min"
    # which lots of a batch family may share a batch: "step", lots at the same step of the same
    # route; "operation", lots at steps of any route with the same description (DESC) and the
    # same processing (distribution, mean time, batch limits): the same recipe, as PySCFabSim
    # batches by DESC (in HVLM 9 of route 4's 11 batch steps are route 3 operations); a batch
    # runs with the processing (and setup) of the step of its highest-priority lot, the first
    # after sorting by (-priority, arrival): the same rule in the kernel
    batch_by: str = "step"
    # maintenance rules the SMT2020 format leaves open (docs/whatif.md, "Model semantics"):
    # a constant first occurrence F of a calendar on a family of n tools: "staggered", tool k
    # at F·k/n (a family never goes to PM all at once), or "same", every tool at F (the format
    # read literally, as PySCFabSim does)
    pm_first: str = "staggered"
    # the next calendar PM: MTBPM after the start of the last ("start": MTBPM includes the PM,
    # as AutoSched documents it) or after its end ("end", as PySCFabSim)
    pm_interval_from: str = "start"
    # a breakdown or PM that falls due while a tool is idle: "apply" takes the tool down;
    # "skip" leaves it up and schedules the next one (PySCFabSim only delays running work)
    idle_downs: str = "apply"
    # which idle tool of a family takes arriving work (families without wake_LeastSetupTime,
    # and ties among those): "recent", the one idle most recently (work spreads evenly over
    # time, so wafer counts stay in step); "first", the first in the family's tool order
    # (PySCFabSim's set of free machines iterates by index: low tools work more, their
    # wafer-count PMs come first and a family's PMs spread out)
    wake: str = "recent"
    # minimum runs (setupgrp.txt MINRUN): "rank", a change into a setup with a minimum run
    # makes the tool owe that many lots of it, and while it owes, lots of its setup rank first
    # (it never idles for them); "hold", PySCFabSim's rule: every run of such a setup renews
    # the debt (MINRUN less the run's lots), and a tool that owes refuses the best lot when it
    # needs another setup, idling, up to 5 times in a row (each try: when it frees or is woken
    # by an arrival; the count restarts when it starts a run). Batch families rank only.
    min_runs: str = "rank"
    # PySCFabSim's "critical queue time first" flag as it evaluates on SMT2020 files: every lot
    # that has started a step in this run counts as in a window, so the lots that have not (new
    # releases at their first step, the initial WIP at its current step) go after all others
    # (a rank after the minimum-run flag, before the family's ranks; not for registered rules)
    unstarted_last: bool = False
    # lots equal on every rank (and on the minimum-run flag) go in due-date order, earliest
    # first, before the sequence number: PySCFabSim's FIFO key ends with the due date, so lots
    # that reach a queue at the same instant (the initial WIP, lots released together) go
    # earliest due first (not for registered rules)
    due_ties: bool = False
    # the tools' first look for work comes after every other event of the start instant:
    # PySCFabSim handles every event of an instant before it decides, so at the start the
    # initial WIP and the releases of the start instant are all queued before a tool chooses
    # (with False a lot arriving at the start takes an idle tool before later ones are queued)
    start_together: bool = False
    record_steps: bool = False  # keep every lot's per-step queue/process/transport times
    # per family, the busy time of every WIP sample interval (the KPIs' per-family
    # "utilisation_by_interval"; a forecast's utilisation per day): fams x samples numbers
    busy_by_interval: bool = False
    wip_sample_days: float = 1.0  # days between samples of the fab WIP

    def __post_init__(self) -> None:
        problems = []
        days_ok = 0 < self.days <= MAX_DAYS  # False for NaN
        if not days_ok:
            problems.append(f"days = {self.days}: must be > 0 and at most {MAX_DAYS:g}")
        if not 0 <= self.warmup_days < (self.days if days_ok else math.inf):
            problems.append(f"warmup_days = {self.warmup_days}: must be >= 0 and < days")
        if not self.wip_sample_days > 0:
            problems.append(f"wip_sample_days = {self.wip_sample_days}: must be > 0")
        elif days_ok and not self.days / self.wip_sample_days <= MAX_SAMPLES:
            problems.append(
                f"wip_sample_days = {self.wip_sample_days}: at most {MAX_SAMPLES:,} WIP samples"
                f" per run, so at least {self.days / MAX_SAMPLES:g} for {self.days:g} days"
            )
        if self.batch_wait not in BATCH_WAITS:
            problems.append(f"batch_wait = {self.batch_wait!r}: accepted {', '.join(BATCH_WAITS)}")
        for name, accepted in (
            ("pm_first", PM_FIRSTS),
            ("pm_interval_from", PM_INTERVALS_FROM),
            ("idle_downs", IDLE_DOWNS),
            ("batch_by", BATCH_BYS),
            ("wake", WAKES),
            ("min_runs", MIN_RUNS),
        ):
            if getattr(self, name) not in accepted:
                problems.append(f"{name} = {getattr(self, name)!r}: accepted {', '.join(accepted)}")
        for name, top in (("seed", MAX_SEED), ("replication", MAX_REPLICATION)):
            v = getattr(self, name)
            try:
                iv = None if isinstance(v, bool) else operator.index(v)  # numpy ints too
            except TypeError:
                iv = None
            if iv is None or not 0 <= iv <= top:
                problems.append(f"{name} = {v!r}: must be an integer from 0 to {top}")
        if problems:
            raise ConfigError("SimConfig", problems)


@dataclass(frozen=True, kw_only=True)
class TimeLeft:
    """One component of a time left drawn per replication (``ToolState.down_left``,
    ``LotState.until_left``): with weight ``p`` (the weights of one mixture need not sum to
    1), the time left is ``offset`` + a draw of ``kind`` (``constant``: ``mean``;
    ``uniform``: [``low``, ``high``); ``exponential``: ``mean``). Times in s."""

    p: float = 1.0
    kind: str = "exponential"
    low: float = 0.0  # s; uniform only
    high: float = 0.0  # s; uniform only
    mean: float = 0.0  # s; constant and exponential
    offset: float = 0.0  # s, added to the draw


@dataclass(kw_only=True)
class LotState:
    """A lot in a warm start: where it is and since when (times in s on the engine clock)."""

    id: str
    product: str
    step: int  # step number (in the product's route) the lot is at
    status: str = "queued"  # "queued" (waiting for step), "processing" (on ``tool`` until
    # ``until``), "transport" (arrives at ``step`` at ``until``)
    lot_type: str = ""  # defaults to the product name
    priority: int = 10
    wafers: int = 25
    release: float = 0.0  # s
    due: float = 0.0  # s
    tool: str | None = None  # tool id when processing
    until: float = 0.0  # s: end of processing or of transport
    # a processing or transport lot's time left, drawn per replication from the start's
    # stream (after the tools' downs, in the lots' order) instead of ``until - time``
    # (``ToolState.down_left``'s rule; a transport lot that draws 0 joins its queue at once);
    # a lot right after one processing on the same tool with an equal ``until_left`` takes
    # that lot's draw (the lots of a batch in progress end together)
    until_left: tuple[TimeLeft, ...] = ()


@dataclass(kw_only=True)
class ToolState:
    """A tool in a warm start. Tool ids are ``"<family>#<n>"`` (n from 1)."""

    busy_until: float = 0.0  # s; lots on it are given by LotState(status="processing")
    down_until: float = 0.0  # s; down (unscheduled) until then
    down_kind: str = "down"  # "down" or "pm"
    setup: str | None = None
    # the time left of a down in progress, drawn per replication from its own random stream
    # (twin.whatif.reference.start.draw_left) instead of ``down_until``: one component
    # chosen by weight, its time drawn; empty: ``down_until`` holds for every replication
    down_left: tuple[TimeLeft, ...] = ()


@dataclass(kw_only=True)
class StartState:
    """An explicit start: the clock, the lots in the fab and the tools' states."""

    time: float = 0.0  # s on the model clock; releases before it are not made again
    lots: list[LotState] = field(default_factory=list)
    tools: dict[str, ToolState] = field(default_factory=dict)
