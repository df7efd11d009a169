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
- release rate per product: lots released per day (Poisson, Garwood's exact interval).

Each estimate carries its sample count ``n`` and 95 % interval; below its threshold (``MIN_N``)
the design value is kept and the parameter is flagged thin, with the reason.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

from twin.errors import TwinError
from twin.live.events import UP_STATES, Event
from twin.process.model import PER_PIECE, FabModel, Step, uniform_bounds

from . import stats

# The least sample count for an estimate to replace the design value, per kind of parameter.
MIN_N = {"processing_time": 30, "ttr": 10, "ttf": 10, "release_rate": 30}
KINDS = tuple(MIN_N)
TYPES = ("lot.released", "lot.track_in", "lot.track_out", "equipment.state")


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
    interval: str  # which interval: "t", "chi-square", "poisson"
    thin: str = ""  # why the design value is kept ("" when the estimate is used)
    effect: float = 0.0  # proxy of the effect on cycle time (report order; docs/forecast.md)

    @property
    def drift(self) -> bool:
        """The interval excludes the design value, on enough data."""
        lo, hi = self.ci
        return not self.thin and not (lo <= self.design <= hi)

    @property
    def factor(self) -> float:
        """The estimate over the design value (1.0 when thin or undefined)."""
        if self.thin or not (self.design > 0 and math.isfinite(self.estimate)):
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
) -> Calibration:
    """Estimate the model's parameters from ``events`` (time order) between since and until.

    ``equipment``: tool id -> family (the store's catalog or the scene's); ``products``: lot ->
    product for lots released before the window (lot.released events in the window add to it).
    """
    if not (since < until):
        raise CalibrationError(f"the window is empty: since {since} is not before until {until}")
    lot_product = {w.id: w.product for w in model.wip}  # the model's initial WIP, if it ran
    lot_product.update(products or {})
    open_in: dict[str, tuple[float, str, int]] = {}
    runs: dict[tuple[str, float, float], list[tuple[str, int]]] = defaultdict(list)
    spells: dict[str, list[tuple[float, str]]] = defaultdict(list)
    released: dict[str, int] = defaultdict(int)
    unknown: dict[str, int] = defaultdict(int)
    skipped: dict[str, int] = defaultdict(int)
    for ev in events:
        t = ev.time
        if t < since or t > until:
            continue
        typ, data = ev.type, ev.data
        if not _well_formed(typ, data):
            if typ in TYPES:
                skipped[f"{typ} events whose data lack the fields calibration reads"] += 1
            continue
        if typ == "lot.track_in":
            open_in[ev.subject] = (t, data["equipment"], data["step"])
        elif typ == "lot.track_out":
            got = open_in.pop(ev.subject, None)
            eq = data["equipment"]
            if got is not None and got[1] == eq:
                runs[(eq, got[0], t)].append((ev.subject, got[2]))
        elif typ == "equipment.state":
            spells[ev.subject].append((t, data["state"]))
        else:
            lot_product[ev.subject] = data["product"]
            released[data["product"]] += 1
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
    down = {eq: _DownClock(s, until) for eq, s in spells.items()}
    cal.parameters += _processing(runs, model, equipment, lot_product, down, cal.skipped)
    cal.parameters += _failures(spells, model, equipment, since, until)
    cal.parameters += _releases(released, model, (until - since) / 86400.0)
    _effects(cal.parameters, model)
    return cal


_FIELDS = {
    "lot.track_in": {"equipment": str, "step": int},
    "lot.track_out": {"equipment": str},
    "equipment.state": {"state": str},
    "lot.released": {"product": str},
}


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
    """Time a tool spent in a state that is not up (down, setup, PM) before any instant."""

    def __init__(self, changes: list[tuple[float, str]], until: float) -> None:
        self.times = [t for t, _ in changes]
        self.down = [s not in UP_STATES for _, s in changes]
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


def _processing(runs, model, equipment, lot_product, down, skipped) -> list[Parameter]:
    wafers_of = {}
    for rel in model.releases:
        wafers_of.setdefault(rel.product, rel.wafers)
    default_wafers = model.releases[0].wafers if model.releases else 25
    steps: dict[tuple[str, int], Step] = {}
    for prod in model.products.values():
        for s in model.routes[prod.route].steps:
            steps[(prod.name, s.number)] = s
    ratios: dict[str, list[float]] = defaultdict(list)
    design: dict[str, list[float]] = defaultdict(list)
    for (eq, t_in, t_out), lots in runs.items():
        fam = model.families[equipment[eq]]  # type: ignore[index]
        lot, number = lots[0]
        step = steps.get((lot_product.get(lot, ""), number))
        if step is None:
            skipped["runs of lots whose product or step is unknown"] = (
                skipped.get("runs of lots whose product or step is unknown", 0) + 1
            )
            continue
        if step.is_cascading or fam.capacity > 1:
            # a cascading run's occupancy is mostly its interval, and its tool's states
            # overlap two runs: no processing time to read from it
            skipped["runs on cascading tools"] = skipped.get("runs on cascading tools", 0) + 1
            continue
        mean = _expected(step, model.ptime_spread_mode)
        if step.per == PER_PIECE:
            mean *= sum(wafers_of.get(lot_product.get(lt, ""), default_wafers) for lt, _ in lots)
        if not mean > 0:
            continue
        lost = down[eq].between(t_in, t_out) if eq in down else 0.0
        work = (t_out - t_in) - lost - fam.load_time - fam.unload_time
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
        for i, (t, state) in enumerate(changes):
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
    if p.n < need:
        p.thin = f"{p.n} {what} in the window; at least {need} needed: design value kept"
    return p


def _effects(params: list[Parameter], model: FabModel) -> None:
    """Proxy of each parameter's effect on cycle time (docs/forecast.md): |relative change| x
    the family's share of the fab's processing work (processing time), x that share times the
    family's design unavailability MTTR / (MTTF + MTTR) (TTR, TTF); release rates weigh 1."""
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
        if p.thin or not (p.design > 0 and math.isfinite(p.estimate)):
            continue  # thin: the design value is kept, nothing changes
        rel = abs(p.estimate / p.design - 1.0)
        if p.kind == "processing_time":
            p.effect = rel * share.get(p.target, 0.0)
        elif p.kind in ("ttr", "ttf"):
            p.effect = rel * share.get(p.target, 0.0) * unavail.get(p.target, 0.0)
        else:
            p.effect = rel
