"""``forecast(store, model, at, horizon, reps, engine)``: the fab from the twin's state at T,
R replications forward, summarised as prediction intervals (docs/forecast.md, "Forecast").

The state at T becomes an engine start (``twin.whatif.start.build_start``, the one tool-id
map); the engine's clock 0 is the store's first event (the model's release plan is taken to
start there, as the emulator starts it), so a start at T is at ``T - first`` on the model
clock and every engine time t is the epoch ``T + (t - start)``. Each replication reports its
completed lots (``RunConfig.lot_records``) and its fab WIP once a day.

Intervals are empirical quantiles across the replications (type 7, numpy's default):
``p10``/``p50``/``p90`` (the 80 % interval is [p10, p90]) and ``p05``/``p95`` (the 90 %
interval). They are prediction intervals of one future (what the fab will do), not confidence
intervals of a mean.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from twin.errors import InputError

from .source import (
    DAY,
    HOUR,
    check_replications,
    load_calibrated,
    load_models,
    open_store,
    parse_at,
    parse_horizon,
    safe,
    snapshot,
)

QUANTILES = {"p05": 5, "p10": 10, "p50": 50, "p90": 90, "p95": 95}
TAIL = 1.0 / 24  # days simulated past the horizon, so the WIP sample at its end is taken


def quantiles(row: Any, qs: list[float]) -> list[float]:
    """Percentiles of times where inf means "not within the horizon": inf sorts last, and a
    percentile that reaches an inf is inf (numpy would interpolate inf - inf to NaN)."""
    x = np.where(np.isfinite(row), row, 1e300)
    return [math.inf if v >= 1e299 else float(v) for v in np.percentile(x, qs)]


def band(values: Any) -> dict[str, float | None]:
    """p05 .. p95 and the mean of finite values (None where there are none)."""
    xs = np.asarray([v for v in values if v is not None and math.isfinite(v)], dtype=float)
    if not len(xs):
        return {**{k: None for k in QUANTILES}, "mean": None, "n": 0}
    qs = np.percentile(xs, list(QUANTILES.values()))
    return {
        **{k: float(q) for k, q in zip(QUANTILES, qs, strict=True)},
        "mean": float(xs.mean()),
        "n": int(len(xs)),
    }


@dataclass
class LotEta:
    """Completion time of one lot in WIP at T across replications (epoch s; None when fewer
    than that share of the replications finished it within the horizon: "> horizon")."""

    id: str
    product: str
    step: int
    status: str
    finished_share: float  # replications that finished it within the horizon
    p05: float | None
    p10: float | None
    p50: float | None
    p90: float | None
    p95: float | None


@dataclass
class ForecastResult:
    """Per day (``days[k]`` covers [T + k d, T + (k+1) d)) and per lot in WIP at T (soonest
    p50 first; lots with a p50 past the horizon last)."""

    model: str
    engine: str
    at: float  # epoch s of the state the forecast starts from
    horizon_days: float
    replications: int
    seed: int
    rules: str
    start_wip: int
    days: list[dict[str, Any]] = field(default_factory=list)
    lots: list[LotEta] = field(default_factory=list)
    bottleneck: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    wall_seconds: float = 0.0
    # per replication, for the backtest's coverage: outs[r][k], wip[r][k], eta[lot][r]
    samples: dict[str, Any] = field(default_factory=dict, repr=False)

    def eta(self, lot_id: str) -> LotEta | None:
        for e in self.lots:
            if e.id == lot_id:
                return e
        return None

    def to_json(self) -> dict[str, Any]:
        from twin.live.events import format_time

        def iso(t: float | None) -> str | None:
            return None if t is None else format_time(t)

        lots = []
        for e in self.lots:
            row: dict[str, Any] = {
                "id": e.id, "product": e.product, "step": e.step, "status": e.status,
                "finished_share": e.finished_share,
            }  # fmt: skip
            for k in QUANTILES:
                v = getattr(e, k)
                row[k] = iso(v) if v is not None else "> horizon"
            row["p50_hours"] = None if e.p50 is None else (e.p50 - self.at) / HOUR
            lots.append(row)
        return {
            "model": self.model,
            "engine": self.engine,
            "at": iso(self.at),
            "horizon_days": self.horizon_days,
            "replications": self.replications,
            "seed": self.seed,
            "rules": self.rules,
            "intervals": "empirical quantiles across replications: 80 % = [p10, p90], "
            "90 % = [p05, p95]",
            "start_wip": self.start_wip,
            "days": self.days,
            "bottleneck": self.bottleneck,
            "lots": lots,
            "notes": self.notes,
            "wall_seconds": self.wall_seconds,
        }


def forecast(
    store: str | Path,
    model: str | Path,
    at: Any = None,
    horizon: Any = 7.0,
    reps: int = 100,
    engine: str = "reference",
    calibrated: str | Path | None = None,
    rules: str | None = None,
    seed: int = 0,
    *,
    executor: Any = None,
    progress: bool = False,
    design: Any = None,
    scene: Any = None,
    times_left: str = "draw",
) -> ForecastResult:
    """Forecast the fab in ``store`` from its state at ``at`` (epoch s or ISO 8601; None: the
    last event) over ``horizon`` (days, or "7d"/"36h") with ``reps`` replications of
    ``model`` (a scene or SMT2020 folder; ``calibrated``: a ``twin calibrate --out`` folder
    whose model is simulated instead). ``times_left``: "draw" (each replication draws the
    time left of the downs and runs in progress at T, given the time already spent) or "mean"
    (one mean time for every replication: ``twin.whatif.start``). Every argument is checked
    before anything runs."""
    from twin.whatif import presets
    from twin.whatif.runner import get_engine

    days = parse_horizon(horizon)
    t_at = parse_at(at)
    check_replications(reps)
    problems = []
    if rules is not None and (p := presets.preset_problem(rules)) is not None:
        problems.append(p)
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**63:
        problems.append(f"seed {safe(seed)}: an integer from 0 to 2**63 - 1")
    if (p := times_left_problem(times_left)) is not None:
        problems.append(p)
    if problems:
        raise InputError("forecast", problems)
    eng = get_engine(engine)
    if design is None:
        design, scene = load_models(model)
    sim_model = load_calibrated(calibrated, design) if calibrated is not None else design
    where = f"--store {safe(store)}"
    with open_store(store) as st:
        snap = snapshot(st, t_at, design, scene, where)
    return run_forecast(
        snap, sim_model, days, reps, eng, rules=rules, seed=seed, executor=executor,
        progress=progress, times_left=times_left,
    )  # fmt: skip


def run_forecast(
    snap: Any,
    model: Any,
    days: float,
    reps: int,
    engine: Any,
    *,
    rules: str | None = None,
    seed: int = 0,
    executor: Any = None,
    progress: bool = False,
    start: Any = None,
    times_left: str = "draw",
) -> ForecastResult:
    """The forecast of a checked snapshot (``source.snapshot``) with one model."""
    import time

    from twin.whatif.runner import LocalProcessPool, RunConfig, Serial, run_whatif
    from twin.whatif.start import build_start

    t0 = time.perf_counter()
    t_start = snap.at - snap.first  # the model clock of the state
    if start is None:
        live = build_start(snap.state, model, snap.tool_map, time=t_start,
                           down_left=times_left, work_left=times_left,
                           transport_left=times_left, now=snap.at)  # fmt: skip
        start, notes = live.start, list(live.notes)
        queue_order(start, snap.state)
    else:
        notes = []
    if not start.lots:
        from twin.live.events import format_time

        raise InputError(
            "forecast",
            [f"no lot is in WIP at {format_time(snap.at)}: nothing to forecast; choose a later "
             "--at (the store's history is too short) or a store of a running fab"],
        )  # fmt: skip
    config = RunConfig(
        days=days + TAIL,
        replications=reps,
        seed=seed,
        rules=rules,
        lot_records=True,
        options={"wip_sample_days": 1.0, "busy_by_interval": True},
    )
    if executor is None:
        executor = Serial() if reps <= 2 else LocalProcessPool()
    res = run_whatif(
        model, None, config, engine=batched(engine, reps, executor), executor=executor,
        start=start, progress=progress,
    )  # fmt: skip
    out = summarise(res.replications[res.baseline], start, snap.at, t_start, days)
    out.model, out.engine, out.replications, out.seed = model.name, res.engine, reps, seed
    out.rules = res.rule_set.describe()
    out.notes = notes + out.notes
    out.wall_seconds = time.perf_counter() - t0
    return out


def widen(res: ForecastResult, residuals: dict[str, Any]) -> ForecastResult:
    """Widen (never narrow) the bands of a forecast by a backtest's residual quantiles
    (``twin backtest --json``'s ``residuals`` of one model): outs and WIP by the day's mean
    forecast x the quantile (relative residuals), lot ETAs by the p50's lead time (h, at least
    1) x the quantile; a bound past the horizon becomes "> horizon". Bands per product and of
    cycle time and utilisation are left as simulated."""
    problems = []
    for kind in ("outs", "wip", "eta"):
        r = residuals.get(kind) if isinstance(residuals, dict) else None
        ok = isinstance(r, dict) and all(
            isinstance(r.get(q), int | float) and math.isfinite(r[q]) and abs(r[q]) < 1e6
            for q in ("p05", "p10", "p90", "p95")
        )
        if not ok:
            problems.append(f"residuals.{kind}: {{p05, p10, p90, p95}} as numbers (from "
                            "`twin backtest --json`)")  # fmt: skip
    if problems:
        raise InputError("--widen", problems)
    pairs = (("p05", "p95"), ("p10", "p90"))
    for d in res.days:
        for kind in ("outs", "wip"):
            b, q = d[kind], residuals[kind]
            if b.get("mean") is None:
                continue
            scale = max(b["mean"], 1.0)
            for lo, hi in pairs:
                b[lo] = min(b[lo], b["mean"] + q[lo] * scale)
                b[hi] = max(b[hi], b["mean"] + q[hi] * scale)
    q = residuals["eta"]
    end = res.at + res.horizon_days * DAY
    for e in res.lots:
        if e.p50 is None:
            continue
        lead = max((e.p50 - res.at) / HOUR, 1.0) * HOUR
        for lo, hi in pairs:
            low = e.p50 + q[lo] * lead
            setattr(e, lo, max(res.at, min(getattr(e, lo), low)))
            cur = getattr(e, hi)
            if cur is not None:
                high = max(cur, e.p50 + q[hi] * lead)
                setattr(e, hi, high if high <= end else None)
    res.notes.append("bands widened by a backtest's residuals (outs, WIP, lot ETAs)")
    return res


class Batched:
    """An engine run ``batch_size`` replications per work item. The kernel on the CPU takes one
    per item (so a pool keeps every core busy on a long run) and compiles the model for each:
    ~0.26 s of ~1 s per 7-day HVLM replication. A forecast's replications are short, so a
    few items per worker keep the cores busy and compile once per item."""

    def __init__(self, engine: Any, batch_size: int) -> None:
        self.engine, self.batch_size = engine, batch_size
        self.name = engine.name

    def run(self, *args: Any, **kwargs: Any) -> Any:
        return self.engine.run(*args, **kwargs)


def batched(engine: Any, reps: int, executor: Any) -> Any:
    """``engine`` itself, or for the kernel on the CPU, ``Batched``: about four work items per
    worker of ``executor`` (its ``workers``, else the CPUs)."""
    import os

    if engine.name != "kernel" or engine.batch_size != 1:
        return engine
    workers = getattr(executor, "workers", None) or os.cpu_count() or 1
    return Batched(engine, max(1, math.ceil(reps / (4 * workers))))


def times_left_problem(value: Any) -> str | None:
    """What is wrong with a ``times_left`` (None: "draw" or "mean")."""
    from twin.whatif.start import DOWN_LEFT

    if isinstance(value, str) and value in DOWN_LEFT:
        return None
    return (f"times left {safe(value)}: 'draw' (drawn per replication given the time already "
            "spent) or 'mean' (one mean time for every replication)")  # fmt: skip


def queue_order(start: Any, state: Any) -> None:
    """Order the start's lots by the time each entered its current state (the twin's
    ``updated``: its track-out or release for a queued lot): the engines queue the start's
    lots in list order at the start time, so first-in-first-out then follows the fab's order
    of arrival, not the order of release (which differs across routes and steps). Ties go by
    tool, so the lots of a batch in progress stay together (and take one drawn time left)."""
    lots = state.lots
    start.lots.sort(key=lambda ls: (getattr(lots.get(ls.id), "updated", 0.0) or 0.0, ls.tool or ""))


def summarise(replications: list[Any], start: Any, at: float, t_start: float, days: float):
    """Per-day bands and lot ETAs from the replications (``Replication.lots``/``series``)."""
    n_days = max(1, math.ceil(days - 1e-9))
    end = t_start + days * DAY
    outs = np.zeros((len(replications), n_days))
    outs_p = {  # every product in WIP gets a row, zero where none finishes
        p: np.zeros((len(replications), n_days)) for p in sorted({x.product for x in start.lots})
    }
    wip = np.full((len(replications), n_days), np.nan)
    ct = np.full((len(replications), n_days), np.nan)
    start_ids = {lot.id: i for i, lot in enumerate(start.lots)}
    eta = np.full((len(start.lots), len(replications)), np.inf)
    util: dict[str, list[float]] = {}
    util_day: dict[str, np.ndarray] = {}  # family -> [replication, day] utilisation
    for r, rep in enumerate(replications):
        cols = rep.lots
        comp = np.asarray(cols.get("completion", []), dtype=float)
        rel = np.asarray(cols.get("release", []), dtype=float)
        prod = cols.get("product", [])
        keep = comp <= end
        day = np.minimum(((comp - t_start) // DAY).astype(int), n_days - 1)
        for i in np.nonzero(keep)[0]:
            k = day[i]
            outs[r, k] += 1
            p = prod[i]
            if p not in outs_p:
                outs_p[p] = np.zeros((len(replications), n_days))
            outs_p[p][r, k] += 1
        for k in range(n_days):
            sel = keep & (day == k)
            if sel.any():
                ct[r, k] = float(((comp[sel] - rel[sel]) / DAY).mean())
        for lot_id, c, rl in zip(cols.get("id", []), comp, rel, strict=False):
            j = start_ids.get(lot_id)
            if j is not None and c <= end and rl <= t_start:  # not a new lot of that id
                eta[j, r] = at + (c - t_start)
        times = rep.series.get("wip.times_days", [])
        lots = rep.series.get("wip.lots", [])
        for tday, n in zip(times, lots, strict=False):
            k = round(tday - t_start / DAY) - 1  # the sample at the end of day k
            if 0 <= k < n_days and abs(tday * DAY - (t_start + (k + 1) * DAY)) < 1.0:
                wip[r, k] = n
        for key, v in rep.kpis.items():
            if key.startswith("families.") and key.endswith(".utilisation"):
                util.setdefault(key.split(".")[1], []).append(v)
        for key, vs in rep.series.items():  # SimConfig.busy_by_interval: one a day
            if key.startswith("families.") and key.endswith(".utilisation_by_interval"):
                fam = key[len("families.") : -len(".utilisation_by_interval")]
                if fam not in util_day:
                    util_day[fam] = np.full((len(replications), n_days), np.nan)
                k = min(n_days, len(vs))
                util_day[fam][r, :k] = vs[:k]
    notes = []
    if np.isnan(wip).any():
        notes.append("the WIP at the end of some days was not sampled (no event after it)")
    ranked = sorted(util, key=lambda f: -float(np.median(util[f])))
    top = ranked[0] if ranked else None
    per_day = util_day.get(top) if top is not None else None
    out_days = []
    for k in range(n_days):
        out_days.append(
            {
                "day": k,
                "from_hours": 24.0 * k,
                "to_hours": 24.0 * min(k + 1, days),
                "outs": band(outs[:, k]),
                "outs_by_product": {p: band(outs_p[p][:, k]) for p in sorted(outs_p)},
                "wip": band(wip[:, k]),
                "cycle_time_days": band(ct[:, k]),
                # the horizon's bottleneck (below) on this day
                "bottleneck_utilisation": band(per_day[:, k] if per_day is not None else []),
            }
        )
    bottleneck = {
        "family": top,
        "over": "the whole horizon; per day: days[k].bottleneck_utilisation",
        "utilisation": band(util[top]) if ranked else band([]),
        "top": [
            {
                "family": f,
                "utilisation": band(util[f]),
                "by_day": [band(util_day[f][:, k]) if f in util_day else band([])
                           for k in range(n_days)],
            }
            for f in ranked[:3]
        ],
    }  # fmt: skip
    etas = []
    # every lot's quantiles at once (as ``quantiles``: inf sorts last and stays inf)
    big = np.percentile(np.where(np.isfinite(eta), eta, 1e300), list(QUANTILES.values()), axis=1)
    shares = np.isfinite(eta).mean(axis=1)
    for lot, j in start_ids.items():
        ls = start.lots[j]
        qs = {
            k: (None if big[i, j] >= 1e299 else float(big[i, j])) for i, k in enumerate(QUANTILES)
        }
        etas.append(LotEta(lot, ls.product, ls.step, ls.status, float(shares[j]), **qs))
    etas.sort(key=lambda e: (e.p50 is None, e.p50 or 0.0, -e.finished_share, e.id))
    res = ForecastResult(
        model="", engine="", at=at, horizon_days=days, replications=len(replications), seed=0,
        rules="", start_wip=len(start.lots), days=out_days, lots=etas, bottleneck=bottleneck,
        notes=notes,
    )  # fmt: skip
    res.samples = {"outs": outs, "wip": wip, "eta": eta, "eta_ids": list(start_ids)}
    return res
