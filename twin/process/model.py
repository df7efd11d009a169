"""The fab process model: what the fab DOES, as plain dataclasses.

Products follow re-entrant routes of steps; each step runs on a tool family (a group of
identical tools in an area). Lots are released on a schedule (plus an initial WIP), tools
change setups, batch, cascade, break down and go to preventive maintenance.

Every time in this module is in SECONDS and every quantity of material in WAFERS, whatever the
source format used; loaders convert. Nothing here reads files or runs a simulation: a what-if
scenario is a copy of a model (``dataclasses.replace``) with a few fields changed.

Ambiguity chosen once, here: a ``uniform`` distribution with mean ``m`` and spread ``s`` has the
support ``m ± s`` when ``FabModel.ptime_spread_mode == "full"`` (the default, which reads
SMT2020's ``fromto.txt`` as the documented "7.5 ± 2.5 min") and ``m ± s/2`` when it is
``"half"``. It applies to processing, transport, setup and PM durations alike.
"""

from __future__ import annotations

import math
import reprlib
from dataclasses import dataclass, field

# Dispatching rules the reference engine knows (a family's ``rule``); engines may register more.
# Each is a list of RANKS (below: RULE_RANKS, dispatch_ranks); without family ranks:
#   hot_first      priority (super-hot, hot, regular) first, then lots needing no setup, then FIFO
#                  (SMT2020 rule_HotLotFIRST with rank_HP;rank_RSETUP;rank_FIFO); with ranks:
#                  the family's ranks (FWLRANK) in their order
#   least_setup    least setup time first, then priority, then FIFO (SMT2020 rule_LSSU); with
#                  ranks: setup, then the family's other ranks
#   fifo           earliest arrival in the queue first, nothing else
#   critical_ratio priority first, then smallest (due - now) / remaining processing time, FIFO
DISPATCH_RULES = ("hot_first", "least_setup", "fifo", "critical_ratio")

# Ranks (SMT2020 FWLRANK, a family's ``ranks``), applied lexicographically in the order
# listed after the minimum-run flag; the lot's arrival sequence number breaks the last tie.
#   hp     higher priority first (rank_HP)
#   setup  least setup time this tool needs for the lot first (rank_RSETUP)
#   fifo   earliest arrival in the queue first (rank_FIFO)
#   cr     smallest critical ratio first (rank_CR): (due - now) / remaining mean processing
#          time of the lot's route from its current step (0 where none remains)
RANKS = ("hp", "setup", "fifo", "cr")
# Each built-in rule as ranks: the order it dispatches in when the family lists no ranks.
# hot_first follows the family's ranks when it has any (rule_HotLotFIRST takes the first
# lot of FWLRANK's order); least_setup puts setup first, then the family's other ranks;
# fifo and critical_ratio are whole orders of their own.
RULE_RANKS = {
    "hot_first": ("hp", "setup", "fifo"),
    "least_setup": ("setup", "hp", "fifo"),
    "fifo": ("fifo",),
    "critical_ratio": ("hp", "cr", "fifo"),
}


def dispatch_ranks(rule: str, ranks: tuple[str, ...] = ()) -> tuple[str, ...] | None:
    """The ranks a family with this rule and these ``ranks`` dispatches by (None for a
    rule registered with the reference engine, which has its own key function)."""
    own = RULE_RANKS.get(rule)
    if own is None or not ranks or rule in ("fifo", "critical_ratio"):
        return own
    if rule == "least_setup":
        return ("setup", *(r for r in ranks if r != "setup"))
    return tuple(ranks)


def rank_problems(ranks) -> list[str]:
    """What is wrong with a family's ``ranks`` (unknown or repeated names); empty if none."""
    if not isinstance(ranks, tuple):
        return [f"ranks {reprlib.repr(ranks)}: must be a tuple of {', '.join(RANKS)}"]
    if len(ranks) > len(RANKS):
        return [f"{len(ranks)} ranks: at most {len(RANKS)}, each once, of {', '.join(RANKS)}"]
    out = []
    for i, r in enumerate(ranks):
        if r not in RANKS:
            out.append(f"rank {reprlib.repr(r)}: unknown; accepted: {', '.join(RANKS)}")
        elif r in ranks[:i]:
            out.append(f"rank {r!r} listed twice")
    return out


# Distributions a sampled time may have.
DISTRIBUTIONS = ("constant", "uniform", "exponential")

PER_PIECE, PER_LOT, PER_BATCH = "piece", "lot", "batch"

SPREAD_MODES = ("full", "half")

DELAY_FAMILY = "Delay_32"  # the SMT2020 pseudo family: a pure delay, not a tool

PRIORITY_REGULAR, PRIORITY_HOT, PRIORITY_SUPER_HOT = 10, 20, 30


@dataclass(kw_only=True)
class Dist:
    """A sampled duration: ``kind`` in DISTRIBUTIONS, ``mean`` and ``spread`` in seconds."""

    kind: str = "constant"
    mean: float = 0.0  # s
    spread: float = 0.0  # s; uniform only (see the module docstring for the support)

    def bounds(self, spread_mode: str = "full") -> tuple[float, float]:
        """Support of a uniform draw, (low, high) in seconds, never below zero."""
        return uniform_bounds(self.mean, self.spread, spread_mode)


def uniform_bounds(mean: float, spread: float, spread_mode: str = "full") -> tuple[float, float]:
    """(low, high) of a uniform with this mean and spread under the given spread mode."""
    half = spread if spread_mode == "full" else spread / 2.0
    return max(0.0, mean - half), mean + half


@dataclass(kw_only=True)
class Step:
    """One step of a route. Times in seconds, batch sizes in wafers."""

    number: int  # STEP, 1-based, unique in its route
    family: str  # STNFAM: the tool family that runs it
    is_delay: bool = False  # a pure delay (Delay_32): no tool, no queue
    description: str = ""
    dist: str = "uniform"  # one of DISTRIBUTIONS
    mean: float = 0.0  # s, PTIME (per piece, lot or batch, see ``per``)
    spread: float = 0.0  # s, PTIME2
    per: str = PER_LOT  # PER_PIECE | PER_LOT | PER_BATCH
    batch_min: int = 0  # wafers; per-batch steps only
    batch_max: int = 0  # wafers; per-batch steps only
    setup: str | None = None  # setup the tool must be in to run the step
    setup_time: float = 0.0  # s; used when the setup table has no entry for the change
    batch_interval: float | None = None  # s; cascading: next batch may start this long after
    part_interval: float | None = None  # s per wafer; cascading: next lot after wafers × this
    rework_step: int | None = None  # step a reworked lot goes back to
    rework_prob: float = 0.0  # probability (0..1) that a lot is reworked after this step
    sampling_percent: float = 100.0  # share (%) of lots that execute the step; others skip it
    cqt_step: int | None = None  # critical queue time: from the end of this step to the
    cqt_limit: float | None = None  # s; ... start of step ``cqt_step``, at most this long
    same_tool_step: int | None = None  # SVESTN/FORSTEP: that later step wants the same tool

    @property
    def is_batch(self) -> bool:
        """Whether the step forms batches of several lots."""
        return self.per == PER_BATCH

    @property
    def is_cascading(self) -> bool:
        """Whether a next lot/batch may start before this one ends (interval given)."""
        return self.batch_interval is not None or self.part_interval is not None

    def mean_time(self, wafers: int = 25) -> float:
        """Expected processing time (s) of one lot of ``wafers`` (a batch counts as one run)."""
        return self.mean * wafers if self.per == PER_PIECE else self.mean


@dataclass(kw_only=True)
class Route:
    """A product's sequence of steps (re-entrant: families recur)."""

    name: str
    steps: list[Step] = field(default_factory=list)
    _index: dict[int, int] = field(default_factory=dict, init=False, repr=False, compare=False)

    def index_of(self, number: int) -> int:
        """Position in ``steps`` of the step with this number; KeyError when absent."""
        if len(self._index) != len(self.steps):  # built lazily, rebuilt if steps change
            self._index = {s.number: i for i, s in enumerate(self.steps)}
        i = self._index.get(number)
        if i is None or self.steps[i].number != number:
            self._index = {s.number: i for i, s in enumerate(self.steps)}
            i = self._index.get(number)
        if i is None:
            raise KeyError(number)
        return i


@dataclass(kw_only=True)
class Product:
    """A product (SMT2020 part) and the name of its route."""

    name: str
    route: str  # key of FabModel.routes
    family: str = ""  # PARTFAM, informative
    group: str = ""  # PARTGRP, informative


@dataclass(kw_only=True)
class ToolFamily:
    """A group of identical tools (SMT2020 STNFAM); ``count`` tools of it (STNQTY)."""

    name: str
    count: int  # STNQTY: tools in the family
    area: str  # STNGRP (Litho, Dry_Etch, ...)
    rule: str = "hot_first"  # dispatching rule, one of DISPATCH_RULES or a registered one
    ranks: tuple[str, ...] = ()  # FWLRANK as RANKS names, first decides (see dispatch_ranks)
    wake_least_setup: bool = False  # WAKERESRANK wake_LeastSetupTime: idle tool needing least
    batch_criterion: str = ""  # BATCHCRITF (crit_sameroutestep: one step per batch)
    capacity: int = 1  # STNCAP: lots in a tool at once (2 = cascading tool)
    load_time: float = 0.0  # s, LTIME, added to each run's tool occupancy
    unload_time: float = 0.0  # s, ULTIME
    setup_group: str | None = None  # SETUPGRP (minimum runs apply)
    is_delay: bool = False  # the pseudo family of pure delays


@dataclass(kw_only=True)
class Release:
    """A release stream of one lot type (SMT2020 order.txt line)."""

    lot_type: str  # LOT, e.g. "Lot_3", "HotLot_4", "SuperHotLot_3"
    product: str  # key of FabModel.products
    priority: int = PRIORITY_REGULAR  # 10 regular, 20 hot, 30 super hot
    wafers: int = 25  # PIECES per lot
    start: float = 0.0  # s after the model epoch, first release
    dist: str = "constant"  # inter-release distribution: constant | exponential
    interval: float = 0.0  # s between releases (mean when exponential)
    count: int = 0  # RPT#: number of releases
    lots_per_release: int = 1  # LOTSPERRPT
    due_offset: float = 0.0  # s, due date minus release time
    hot: bool = False  # priority >= PRIORITY_HOT (or HOTLOT yes)

    @property
    def rate_per_day(self) -> float:
        """Lots released per day (while releases last)."""
        return 86400.0 * self.lots_per_release / self.interval if self.interval > 0 else 0.0


@dataclass(kw_only=True)
class WipLot:
    """A lot already in the fab at time 0 (SMT2020 WIP.txt line)."""

    id: str
    lot_type: str  # "Lot_3" from "Init_Lot_3_17"
    product: str
    step: int  # CURSTEP: step number it waits for
    priority: int = PRIORITY_REGULAR
    wafers: int = 25
    release: float = 0.0  # s after the epoch (<= 0: released before the run starts)
    due: float = 0.0  # s after the epoch


@dataclass(kw_only=True)
class DownCalendar:
    """Unscheduled downs: time between failures and time to repair (downcal.txt)."""

    name: str
    mttf: Dist  # s, calendar time between failures
    mttr: Dist  # s, repair time


@dataclass(kw_only=True)
class PMCalendar:
    """Preventive maintenance (pmcal.txt): every ``interval`` seconds or wafers."""

    name: str
    by: str  # "time" (interval in s) or "wafers" (interval in processed wafers)
    interval: float  # s or wafers
    duration: Dist  # s


@dataclass(kw_only=True)
class Attachment:
    """Attaches a calendar to an area or a family (attach.txt), with its first occurrence."""

    calendar: str  # key of FabModel.downs or FabModel.pms
    kind: str  # "down" | "pm"
    target_kind: str  # "area" | "family"
    target: str
    first: Dist  # first occurrence: s (time) or wafers (wafer-count PMs)


@dataclass(kw_only=True)
class FabModel:
    """A whole fab process model. Times in seconds, material in wafers."""

    name: str = "fab"
    families: dict[str, ToolFamily] = field(default_factory=dict)
    products: dict[str, Product] = field(default_factory=dict)
    routes: dict[str, Route] = field(default_factory=dict)
    releases: list[Release] = field(default_factory=list)
    wip: list[WipLot] = field(default_factory=list)
    # sequence-dependent setup times (s): (from setup or None = any, to setup) -> time
    setup_times: dict[tuple[str | None, str], float] = field(default_factory=dict)
    min_runs: dict[str, int] = field(default_factory=dict)  # setup -> lots before a change
    setup_groups: dict[str, list[str]] = field(default_factory=dict)  # group -> its setups
    downs: dict[str, DownCalendar] = field(default_factory=dict)
    pms: dict[str, PMCalendar] = field(default_factory=dict)
    attachments: list[Attachment] = field(default_factory=list)
    transport: Dist = field(default_factory=Dist)  # s, between any two steps
    ptime_spread_mode: str = "full"  # "full": mean ± spread, "half": mean ± spread/2
    epoch: str = ""  # the source's time zero, informative (ISO 8601)

    @property
    def areas(self) -> list[str]:
        """Sorted names of the areas (STNGRP) of the real (non-delay) tool families."""
        return sorted({f.area for f in self.families.values() if not f.is_delay})

    def route_of(self, product: str) -> Route:
        """The route of a product."""
        return self.routes[self.products[product].route]

    def setup_time(self, current: str | None, new: str | None, step: Step | None = None) -> float:
        """Seconds to change a tool from setup ``current`` to ``new`` (0 when no change)."""
        if new is None or new == current:
            return 0.0
        t = self.setup_times.get((current, new))
        if t is None:
            t = self.setup_times.get((None, new))
        if t is None:
            t = step.setup_time if step is not None else 0.0
        return t

    def calendars_of(self, family: str) -> list[Attachment]:
        """Attachments that apply to the tools of a family (by family or by its area)."""
        fam = self.families[family]
        return [
            a
            for a in self.attachments
            if (a.target_kind == "family" and a.target == family)
            or (a.target_kind == "area" and a.target == fam.area)
        ]

    def offered_load(self) -> dict[str, float]:
        """Expected busy fraction per family from releases alone (no downs, sampling counted).

        Uses mean processing times plus load/unload, batch steps at their maximum batch size;
        a rough capacity check, not a simulation result.
        """
        work: dict[str, float] = {}
        for rel in self.releases:
            if rel.interval <= 0:
                continue
            per_s = rel.lots_per_release / rel.interval
            for st in self.route_of(rel.product).steps:
                if st.is_delay:
                    continue
                fam = self.families[st.family]
                t = st.mean_time(rel.wafers) + fam.load_time + fam.unload_time
                if st.is_batch and st.batch_max > 0:
                    t *= rel.wafers / st.batch_max
                work[st.family] = work.get(st.family, 0.0) + per_s * t * st.sampling_percent / 100
        return {f: w / max(1, self.families[f].count) for f, w in work.items()}

    def validate(self) -> list[str]:
        """Every inconsistency between the parts of the model, one line each (empty if none)."""
        problems: list[str] = []
        if self.ptime_spread_mode not in SPREAD_MODES:
            problems.append(
                f"ptime_spread_mode {self.ptime_spread_mode!r}: use one of {SPREAD_MODES}"
            )
        for f in self.families.values():
            if f.count < 1 and not f.is_delay:
                problems.append(f"family {f.name}: count {f.count} must be >= 1")
            if f.capacity < 1:
                problems.append(f"family {f.name}: capacity {f.capacity} must be >= 1")
            problems.extend(f"family {f.name}: {r}" for r in rank_problems(f.ranks))
        for p in self.products.values():
            if p.route not in self.routes:
                problems.append(f"product {p.name}: route {p.route!r} is not defined")
        for r in self.routes.values():
            numbers = {s.number for s in r.steps}
            if len(numbers) != len(r.steps):
                problems.append(f"route {r.name}: step numbers are not unique")
            for s in r.steps:
                where = f"route {r.name} step {s.number}"
                if s.family not in self.families:
                    problems.append(f"{where}: family {s.family!r} is not defined")
                if s.dist not in DISTRIBUTIONS:
                    problems.append(f"{where}: distribution {s.dist!r}, use one of {DISTRIBUTIONS}")
                if s.per not in (PER_PIECE, PER_LOT, PER_BATCH):
                    problems.append(f"{where}: per {s.per!r}, use piece, lot or batch")
                if not (s.mean >= 0 and math.isfinite(s.mean)):
                    problems.append(f"{where}: mean time {s.mean} must be finite and >= 0")
                if s.is_batch and not (0 < s.batch_min <= s.batch_max):
                    problems.append(
                        f"{where}: batch sizes {s.batch_min}..{s.batch_max} need 0 < min <= max"
                    )
                if not 0 <= s.sampling_percent <= 100:
                    problems.append(f"{where}: sampling {s.sampling_percent}% outside 0..100")
                if not 0 <= s.rework_prob <= 1:
                    problems.append(f"{where}: rework probability {s.rework_prob} outside 0..1")
                for ref in (s.rework_step, s.cqt_step, s.same_tool_step):
                    if ref is not None and ref not in numbers:
                        problems.append(f"{where}: refers to step {ref}, not in the route")
        for rel in self.releases:
            if rel.product not in self.products:
                problems.append(f"release {rel.lot_type}: product {rel.product!r} is not defined")
            if rel.interval <= 0 and rel.count > 1:
                problems.append(f"release {rel.lot_type}: interval must be > 0 s")
        numbers_of = {name: {s.number for s in r.steps} for name, r in self.routes.items()}
        for lot in self.wip:
            if lot.product not in self.products:
                problems.append(f"WIP lot {lot.id}: product {lot.product!r} is not defined")
            elif self.products[lot.product].route in self.routes:
                route = self.route_of(lot.product)
                if lot.step not in numbers_of[route.name]:
                    problems.append(f"WIP lot {lot.id}: step {lot.step} not in route {route.name}")
        for a in self.attachments:
            table = self.downs if a.kind == "down" else self.pms
            if a.calendar not in table:
                problems.append(f"attachment {a.calendar}: no {a.kind} calendar of that name")
            if a.target_kind == "family" and a.target not in self.families:
                problems.append(f"attachment {a.calendar}: family {a.target!r} is not defined")
            if a.target_kind == "area" and a.target not in {f.area for f in self.families.values()}:
                problems.append(f"attachment {a.calendar}: area {a.target!r} is not defined")
        return problems
