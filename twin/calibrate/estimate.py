"""Estimators of a fab model's parameters from its event log (docs/forecast.md).

``calibrate(events, model, equipment)`` reads the events of one window once and estimates:

- processing time per tool family: each run (the lots that one tool tracked in together and out
  together) gives ``(track-out - track-in - time the tool spent down or in setup meanwhile -
  load - unload) / design mean of the run``; the family's estimate is the mean of these ratios
  (t-interval) times the design mean time of its runs;
- time to repair per family: the lengths of complete E10 ``unscheduled_down`` spells
  (exponential mean, chi-square interval);
- time to failure per family: time up (not unscheduled down) over the number of failures
  (exponential mean from a time-truncated record, chi-square interval);
- release rate per product: lots released per day (Poisson, Garwood's exact interval);
- PM durations and intervals, setup times per family (``maintenance``); transport times,
  rework, sampling and scrap rates (``flow``).

Each estimate carries its sample count ``n`` and 95 % interval; below its threshold (``MIN_N``)
the design value is kept and the parameter is flagged thin, with the reason.
"""

from __future__ import annotations

import math
from bisect import bisect_left, bisect_right
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

from twin.errors import TwinError
from twin.live.events import UP_STATES, Event
from twin.process.model import PER_PIECE, FabModel, Step, uniform_bounds

from . import maintenance, stats
from .flow import LotFlow, Transfers

# The least sample count for an estimate to replace the design value, per kind of parameter
# (docs/forecast.md says why each). For the rework and sampling rates it is the number of
# events of the rarer outcome that the design rate expects in the trials seen: n x min(p, 1 - p).
MIN_N = {
    "processing_time": 30, "ttr": 10, "ttf": 10, "release_rate": 30, "pm_duration": 10,
    "pm_interval": 10, "setup_time": 10, "transport": 30, "rework_rate": 10,
    "sampling_rate": 10, "scrap_rate": 30,
}  # fmt: skip
KINDS = tuple(MIN_N)
RATES = ("rework_rate", "sampling_rate")
TYPES = (
    "lot.released", "lot.track_in", "lot.track_out", "equipment.state", "lot.rework",
    "lot.scrap", "lot.completed", "carrier.transfer_requested", "carrier.delivered",
    "carrier.transfer_failed",
)  # fmt: skip


class CalibrationError(TwinError):
    """The events and the model cannot be calibrated together; says why and what would do."""


@dataclass(kw_only=True)
class Parameter:
    """One estimated parameter: ``design`` and ``estimate`` in the unit of its kind (processing
    time, TTR, TTF: seconds; release rate: lots per day), ``ci`` its 95 % interval."""

    name: str  # "<kind>:<family or product>"
    kind: str
    target: str
    design: float
    estimate: float  # nan without any sample
    ci: tuple[float, float]
    n: int
    interval: str  # which interval: "t", "chi-square", "poisson", "clopper-pearson"
    thin: str = ""  # why the design value is kept ("" when the estimate is used)
    effect: float = 0.0  # proxy of the effect on cycle time (report order; docs/forecast.md)
    unit: str = ""  # "" : the unit of its kind (report.UNITS); else e.g. "wafers"
    key: tuple[str, ...] = ()  # where the calibrated model writes it beyond its target
    weight: float = 1.0  # the parameter's own factor in the effect proxy (_effects)

    @property
    def drift(self) -> bool:
        """The interval excludes the design value, on enough data (never without a design)."""
        lo, hi = self.ci
        return not self.thin and math.isfinite(self.design) and not (lo <= self.design <= hi)

    @property
    def factor(self) -> float:
        """The estimate over the design value (1.0 when thin or undefined, and when the
        estimate is not > 0: no calibrated time may be 0 or negative)."""
        if self.thin or not (self.design > 0 and math.isfinite(self.estimate)):
            return 1.0
        if not self.estimate > 0:  # e.g. runs shorter than their design load and unload
            return 1.0
        return self.estimate / self.design

    def as_dict(self) -> dict[str, object]:
        def num(x: float) -> float | None:
            return x if math.isfinite(x) else None

        return {
            "name": self.name,
            "design": num(self.design),
            "estimate": num(self.estimate),
            "ci": [num(self.ci[0]), num(self.ci[1])],
            "n": self.n,
            "drift": self.drift,
        }


@dataclass(kw_only=True)
class Calibration:
    """Every parameter estimated from one window of events."""

    since: float  # s, UTC epoch
    until: float
    parameters: list[Parameter] = field(default_factory=list)
    skipped: dict[str, int] = field(default_factory=dict)  # why runs were left out -> count

    def by_name(self) -> dict[str, Parameter]:
        return {p.name: p for p in self.parameters}


def calibrate(
    events: Iterable[Event],
    model: FabModel,
    equipment: dict[str, str | None],
    *,
    since: float,
    until: float,
    products: dict[str, str] | None = None,
    ports: dict[str, str | None] | None = None,
) -> Calibration:
    """Estimate the model's parameters from ``events`` (time order) between since and until.

    ``equipment``: tool id -> family (the store's catalog or the scene's); ``products``: lot ->
    product for lots released before the window (lot.released events in the window add to it);
    ``ports``: load port -> its tool or stocker (the areas of carrier transfers).
    """
    if not (since < until):
        raise CalibrationError(f"the window is empty: since {since} is not before until {until}")
    lot_product = {w.id: w.product for w in model.wip}  # the model's initial WIP, if it ran
    lot_product.update(products or {})
    open_in: dict[str, tuple[float, str, int]] = {}
    runs: dict[tuple[str, float, float], list[tuple[str, int]]] = defaultdict(list)
    spells: dict[str, list[tuple[float, str, str]]] = defaultdict(list)
    released: dict[str, int] = defaultdict(int)
    unknown: dict[str, int] = defaultdict(int)
    skipped: dict[str, int] = defaultdict(int)
    last_in: dict[str, tuple[float, str, int, str | None]] = {}  # tool -> its last track-in
    setup_records: list[tuple[str, float, str, int, str | None]] = []
    flow = LotFlow(model, lot_product, skipped)
    moves = Transfers(model, equipment, ports, skipped)
    for ev in events:
        t = ev.time
        if t < since or t > until:
            continue
        typ, data = ev.type, ev.data
        get = data.get if isinstance(data, dict) else _nothing
        # the three types of nearly every event are checked inline (the rest: _well_formed)
        if typ == "lot.track_in":
            eq, step = get("equipment"), get("step")
            if type(eq) is not str or type(step) is not int:
                skipped[f"{typ} events whose data lack the fields calibration reads"] += 1
                continue
            open_in[ev.subject] = (t, eq, step)
            named = get("setup")
            last_in[eq] = (t, ev.subject, step, named if type(named) is str else None)
            flow.track_in(ev.subject, step)
        elif typ == "lot.track_out":
            eq = get("equipment")
            if type(eq) is not str:
                skipped[f"{typ} events whose data lack the fields calibration reads"] += 1
                continue
            got = open_in.pop(ev.subject, None)
            if got is not None and got[1] == eq:
                runs[(eq, got[0], t)].append((ev.subject, got[2]))
            flow.track_out(ev.subject, get("step"))
        elif typ == "equipment.state":
            state, reason = get("state"), get("reason")
            if type(state) is not str:
                skipped[f"{typ} events whose data lack the fields calibration reads"] += 1
                continue
            reason = reason if type(reason) is str else ""
            spells[ev.subject].append((t, state, reason))
            if reason == "setup" and state == "scheduled_down":
                li = last_in.get(ev.subject)
                if li is not None and li[0] == t:
                    named = data.get("setup")
                    named = named if type(named) is str else li[3]
                    setup_records.append((ev.subject, t, li[1], li[2], named))
        elif not _well_formed(typ, data):
            if typ in TYPES:
                skipped[f"{typ} events whose data lack the fields calibration reads"] += 1
        elif typ == "lot.released":
            lot_product[ev.subject] = data["product"]
            released[data["product"]] += 1
            flow.released.add(ev.subject)
        elif typ == "lot.rework":
            flow.reworked_event(ev.subject)
        elif typ == "lot.scrap" or typ == "lot.completed":
            flow.left(ev.subject, typ == "lot.scrap")
        elif typ == "carrier.transfer_requested":
            moves.requested(t, data["transfer"], data["from"], data["to"])
        elif typ == "carrier.delivered":
            moves.delivered(t, data["transfer"])
        else:
            moves.failed(data["transfer"])
    stray = sum(n for prod, n in released.items() if prod not in model.products)
    if stray:
        skipped["lots released of products the model lacks"] = stray
    for eq, _, _ in runs:
        if equipment.get(eq) is None or equipment[eq] not in model.families:
            unknown[eq] += 1
    if unknown:
        fams = sorted({_show(equipment.get(e)) for e in unknown if equipment.get(e) is not None})
        shown = ", ".join(_show(e) for e in sorted(unknown)[:10])
        shown += " ..." if len(unknown) > 10 else ""
        raise CalibrationError(
            f"the store's equipment does not match the model: {len(unknown)} tools ({shown}) "
            + (
                f"belong to families the model lacks ({', '.join(fams[:10])})"
                if fams
                else "are not in the equipment catalog"
            )
            + f"; the model's families: {', '.join(sorted(model.families))}"
        )
    cal = Calibration(since=since, until=until, skipped=skipped)
    steps = _steps(model)
    starts = {(eq, t_in) for eq, t_in, _ in runs}
    fam_wafers: dict[str, int] = defaultdict(int)  # wafers each family tracked out
    cal.parameters += _processing(runs, model, equipment, lot_product, spells, steps, until,
                                  starts, fam_wafers, cal.skipped)  # fmt: skip
    cal.parameters += _failures(spells, model, equipment, since, until)
    cal.parameters += maintenance.pms(
        spells, model, equipment, fam_wafers, since, until, cal.skipped, _make
    )
    cal.parameters += maintenance.setups(
        spells,
        setup_records,
        starts,
        model,
        equipment,
        lot_product,
        steps,
        until - since,
        cal.skipped,
        _make,
    )
    cal.parameters += moves.parameters(_make)
    cal.parameters += flow.parameters(_make)
    cal.parameters += _releases(released, model, (until - since) / 86400.0)
    _effects(cal.parameters, model)
    return cal


def _make(*, what: str, **kw) -> Parameter:
    """A parameter, flagged thin below its threshold (``what``: its samples, for the reason)."""
    return _thin(Parameter(**kw), what)


def _steps(model: FabModel) -> dict[tuple[str, int], Step]:
    """(product, step number) -> step."""
    steps: dict[tuple[str, int], Step] = {}
    for prod in model.products.values():
        for s in model.routes[prod.route].steps:
            steps[(prod.name, s.number)] = s
    return steps


def _lot_wafers(model: FabModel) -> tuple[dict[str, int], int]:
    wafers_of: dict[str, int] = {}
    for rel in model.releases:
        wafers_of.setdefault(rel.product, rel.wafers)
    return wafers_of, (model.releases[0].wafers if model.releases else 25)


_FIELDS = {
    "lot.track_in": {"equipment": str, "step": int},
    "lot.track_out": {"equipment": str},
    "equipment.state": {"state": str},
    "lot.released": {"product": str},
    "lot.rework": {},
    "lot.scrap": {},
    "lot.completed": {},
    "carrier.transfer_requested": {"transfer": str, "from": str, "to": str},
    "carrier.delivered": {"transfer": str},
    "carrier.transfer_failed": {"transfer": str},
}


def _nothing(key: str) -> None:
    """``dict.get`` of event data that is not a dict: nothing is there."""
    return None


def _show(name: object) -> str:
    """A name from the events, safe to print (a lone surrogate is shown escaped), at most 60."""
    text = str(name)[:60]
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def _well_formed(typ: str, data: object) -> bool:
    """Whether an event of a type calibration reads has the fields it reads, of their types."""
    fields = _FIELDS.get(typ)
    if fields is None or not isinstance(data, dict):
        return False
    return all(type(data.get(k)) is tp for k, tp in fields.items())


class _DownClock:
    """Time a tool spent in a state that is not up (down, setup, PM) before any instant; with
    ``setups=False`` setups count as up (a cascading tool's setup overlaps another run)."""

    def __init__(
        self, changes: list[tuple[float, str, str]], until: float, setups: bool = True
    ) -> None:
        self.changes = changes
        self.times = [t for t, _, _ in changes]
        self.down = [
            s not in UP_STATES and (setups or not (s == "scheduled_down" and r == "setup"))
            for _, s, r in changes
        ]
        self.cum = [0.0]
        for i in range(1, len(changes)):
            dt = self.times[i] - self.times[i - 1]
            self.cum.append(self.cum[-1] + (dt if self.down[i - 1] else 0.0))

    def at(self, t: float) -> float:
        i = bisect_right(self.times, t) - 1
        if i < 0:
            return 0.0
        return self.cum[i] + ((t - self.times[i]) if self.down[i] else 0.0)

    def between(self, a: float, b: float) -> float:
        return self.at(b) - self.at(a)

    def setup_at(self, t: float) -> tuple[float, bool] | None:
        """The setup spell that begins at t: (its length, whether it ended in an up state, not
        in a down that interrupted it); None if no setup begins at t."""
        ch = self.changes
        i = bisect_left(self.times, t)
        while i < len(ch) and ch[i][0] == t:
            if ch[i][1] == "scheduled_down" and ch[i][2] == "setup":
                j = i + 1
                while j < len(ch) and ch[j][1] == ch[i][1] and ch[j][2] == ch[i][2]:
                    j += 1
                if j == len(ch):
                    return None
                return ch[j][0] - t, ch[j][1] in UP_STATES
            i += 1
        return None


def _processing(
    runs, model, equipment, lot_product, spells, steps, until, starts, fam_wafers, skipped
):
    """Processing time per family (module docstring). On a cascading tool (capacity > 1, or a
    step with a batch or part interval) runs overlap: a setup of the next run is reported
    while this one processes, so only breakdowns and PMs during the run and the run's own setup
    (the setup spell begun at its track-in; a run whose setup spell the next run's start ended
    is left out) are taken out, and the design mean is that of its
    first wafer plus the part interval x the other wafers; the ratio, design and estimate are
    of the first part (PTIME, which the calibrated model scales)."""
    wafers_of, default_wafers = _lot_wafers(model)
    down = {eq: _DownClock(s, until) for eq, s in spells.items()}
    casc_down: dict[str, _DownClock] = {}
    setup_starts = {(eq, t) for eq, ch in spells.items() for t, _, r in ch if r == "setup"}
    expected: dict[int, float] = {}  # id(step) -> its expected time
    ratios: dict[str, list[float]] = defaultdict(list)
    design: dict[str, list[float]] = defaultdict(list)
    for (eq, t_in, t_out), lots in runs.items():
        fam = model.families[equipment[eq]]  # type: ignore[index]
        if len(lots) == 1:
            wafers = wafers_of.get(lot_product.get(lots[0][0], ""), default_wafers)
        else:
            wafers = sum(wafers_of.get(lot_product.get(lt, ""), default_wafers) for lt, _ in lots)
        fam_wafers[fam.name] += wafers
        lot, number = lots[0]
        step = steps.get((lot_product.get(lot, ""), number))
        if step is None:
            skipped["runs of lots whose product or step is unknown"] = (
                skipped.get("runs of lots whose product or step is unknown", 0) + 1
            )
            continue
        mean = expected.get(id(step))
        if mean is None:
            mean = expected[id(step)] = _expected(step, model.ptime_spread_mode)
        extra = 0.0  # the part of the run the factor does not scale (a part interval's)
        su = down[eq].setup_at(t_in) if (eq, t_in) in setup_starts else None
        if su is not None and not su[1]:
            # a down in the setup: the rest of the setup is reported as productive after it
            why = "runs whose setup a down interrupted"
            skipped[why] = skipped.get(why, 0) + 1
            continue
        if step.is_cascading or fam.capacity > 1:
            clock = casc_down.get(eq)
            if clock is None and eq in spells:  # built for the tools that need one
                clock = casc_down[eq] = _DownClock(spells[eq], until, setups=False)
            lost = clock.between(t_in, t_out) if clock is not None else 0.0
            own = su[0] if su is not None else 0.0
            if own and (eq, t_in + own) in starts:  # the next run began during the setup
                why = "runs on cascading tools whose setup the next run's start cut short"
                skipped[why] = skipped.get(why, 0) + 1
                continue
            lost += own
            if step.per == PER_PIECE and step.part_interval is not None:
                extra = step.part_interval * (wafers - 1)
            elif step.per == PER_PIECE:
                mean *= wafers
        else:
            if step.per == PER_PIECE:
                mean *= wafers
            lost = down[eq].between(t_in, t_out) if eq in down else 0.0
        if not mean > 0:
            continue
        work = (t_out - t_in) - lost - fam.load_time - fam.unload_time - extra
        ratios[fam.name].append(work / mean)
        design[fam.name].append(mean)
    out = []
    for name in sorted(n for n, f in model.families.items() if not f.is_delay):
        rs = ratios.get(name, [])
        n = len(rs)
        d = math.fsum(design[name]) / n if n else _design_run_mean(model, name)
        m, (lo, hi) = stats.t_interval(rs)
        p = Parameter(
            name=f"processing_time:{name}", kind="processing_time", target=name, design=d,
            estimate=m * d, ci=(lo * d, hi * d), n=n, interval="t",
        )  # fmt: skip
        out.append(_thin(p, "runs"))
    return out


def _expected(step: Step, spread_mode: str) -> float:
    """The expected processing time of one draw: a uniform whose support is cut at 0 (spread
    larger than the mean) has a larger mean than its ``mean``."""
    if step.dist == "uniform":
        lo, hi = uniform_bounds(step.mean, step.spread, spread_mode)
        return (lo + hi) / 2
    return step.mean


def _design_run_mean(model: FabModel, family: str) -> float:
    means = [s.mean_time() for r in model.routes.values() for s in r.steps if s.family == family]
    return math.fsum(means) / len(means) if means else math.nan


def _failures(spells, model, equipment, since, until) -> list[Parameter]:
    """Repairs and failures from E10 spells. A breakdown that falls due while a tool is in a
    scheduled down (a PM) is reported when it falls due but repaired after the PM: its spell
    is not a repair time and is left out (which spells start so does not depend on their
    length). A PM that falls due during a repair is reported when it falls due, cutting the
    spell short: that spell is censored (the repair took at least that long), and the
    exponential mean is then total time / complete repairs (chi-square, 2r and 2r + 2 df)."""
    complete: dict[str, int] = defaultdict(int)
    repair_time: dict[str, float] = defaultdict(float)
    censored: dict[str, int] = defaultdict(int)
    up_time: dict[str, float] = defaultdict(float)
    failures: dict[str, int] = defaultdict(int)
    for eq, changes in spells.items():
        fam = equipment.get(eq)
        if fam is None:
            continue
        began = None  # start of the spell being read (None: not in one, or one left out)
        inside = False
        before = None  # the state before the spell
        for i, (t, state, _) in enumerate(changes):
            nxt = changes[i + 1][0] if i + 1 < len(changes) else until
            if state == "unscheduled_down":
                if not inside:
                    inside = True
                    failures[fam] += 1
                    began = t if before != "scheduled_down" else None
            else:
                up_time[fam] += nxt - t
                if inside and began is not None:
                    repair_time[fam] += t - began
                    if state == "scheduled_down":
                        censored[fam] += 1
                    else:
                        complete[fam] += 1
                inside = False
                began = None
            before = state if not inside else before
    out = []
    for name in sorted(model.families):
        cals = [
            a for a in model.calendars_of(name) if a.kind == "down" and a.calendar in model.downs
        ]
        if not cals or model.families[name].is_delay:
            continue
        cal = model.downs[cals[0].calendar]
        r = complete.get(name, 0)
        mean, ci = stats.exp_mean_interval(
            r, repair_time.get(name, 0.0), complete=not censored.get(name)
        )
        out.append(_thin(Parameter(
            name=f"ttr:{name}", kind="ttr", target=name, design=cal.mttr.mean, estimate=mean,
            ci=ci, n=r, interval="chi-square"), "repairs"))  # fmt: skip
        r = failures.get(name, 0)
        mean, ci = stats.exp_mean_interval(r, up_time.get(name, 0.0))
        out.append(_thin(Parameter(
            name=f"ttf:{name}", kind="ttf", target=name, design=cal.mttf.mean, estimate=mean,
            ci=ci, n=r, interval="chi-square"), "failures"))  # fmt: skip
    return out


def _releases(released, model, days) -> list[Parameter]:
    design: dict[str, float] = defaultdict(float)
    for rel in model.releases:
        if rel.count:
            design[rel.product] += rel.rate_per_day
    out = []
    for product in sorted(design):
        n = released.get(product, 0)
        rate, ci = stats.poisson_rate_interval(n, days)
        p = Parameter(
            name=f"release_rate:{product}", kind="release_rate", target=product,
            design=design.get(product, 0.0), estimate=rate, ci=ci, n=n, interval="poisson",
        )  # fmt: skip
        out.append(_thin(p, "lots released"))
    return out


def _thin(p: Parameter, what: str) -> Parameter:
    need = MIN_N[p.kind]
    if p.kind in RATES:  # the rarer outcome's count that the design rate expects
        expect = p.n * min(p.design, 1.0 - p.design)
        if expect < need:
            p.thin = (
                f"{p.n} {what} in the window expect {expect:.3g} events of the rarer outcome "
                f"at the design rate; at least {need} needed: design value kept"
            )
    elif p.n < need:
        p.thin = f"{p.n} {what} in the window; at least {need} needed: design value kept"
    return p


def _effects(params: list[Parameter], model: FabModel) -> None:
    """Proxy of each parameter's effect on cycle time (docs/forecast.md): |relative change| x
    the family's share of the fab's processing work (processing time), x that share times the
    family's design unavailability MTTR / (MTTF + MTTR) (TTR, TTF), x that share times the
    family's share of time in PM or setup (PM, setup: ``Parameter.weight``); transport:
    |relative change| x its share of a lot's raw cycle time; rework and sampling rates:
    |change of the rate| x the share of the route's work it repeats or skips; scrap:
    |change of the rate|; release rates weigh 1."""
    load = model.offered_load()
    work = {f: u * model.families[f].count for f, u in load.items()}
    total = math.fsum(work.values()) or 1.0
    share = {f: w / total for f, w in work.items()}
    unavail = {}
    for p in params:
        if p.kind in ("ttr", "ttf"):
            cal = next(a for a in model.calendars_of(p.target) if a.kind == "down")
            d = model.downs[cal.calendar]
            unavail[p.target] = d.mttr.mean / (d.mttr.mean + d.mttf.mean)
    for p in params:
        if p.thin or not (math.isfinite(p.design) and math.isfinite(p.estimate)):
            continue  # thin: the design value is kept, nothing changes
        if p.kind in ("rework_rate", "sampling_rate", "scrap_rate"):
            p.effect = abs(p.estimate - p.design) * p.weight
            continue
        if not p.design > 0:
            continue
        rel = abs(p.estimate / p.design - 1.0)
        if p.kind == "processing_time":
            p.effect = rel * share.get(p.target, 0.0)
        elif p.kind in ("ttr", "ttf"):
            p.effect = rel * share.get(p.target, 0.0) * unavail.get(p.target, 0.0)
        elif p.kind in ("pm_duration", "pm_interval", "setup_time"):
            p.effect = rel * share.get(p.target, 0.0) * p.weight
        else:
            p.effect = rel * p.weight
