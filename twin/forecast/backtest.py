"""``backtest``: forecasts at rolling origins of the log, compared with what happened next
(docs/forecast.md, "Backtest").

At each origin T: calibrate on the log before T (``twin.calibrate``), forecast from the state
at T with the design model, the calibrated one and (given the truth) the true one, with the
same seed (common random numbers), and compare with the log after T:

- ``outs_mape``: mean over origins and days of |forecast - actual| / actual of the fab's
  daily outs (forecast: the mean over replications; days with no actual out are left out);
- ``horizon_outs_mape``: the same of the outs over the whole horizon (one per origin);
- ``wip_mape``: the same for the WIP at each day's end;
- ``eta_p50_abs_error_h``: median over origins and lots (in WIP at T and completed within
  the horizon) of |p50 ETA - actual completion|, hours (a p50 past the horizon counts as the
  horizon's end: a lower bound of its error);
- ``pi80_coverage``/``pi90_coverage``: the share of all those observations (daily outs, daily
  WIP, lot completions; a lot not completed within the horizon is covered when the interval
  reaches past the horizon) inside [p10, p90] and [p05, p95]; ``coverage_by_kind`` splits it.
"""

from __future__ import annotations

import math
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from twin.errors import InputError

from .core import QUANTILES, quantiles, run_forecast, times_left_problem
from .source import (
    DAY,
    HOUR,
    Snapshot,
    actuals,
    check_replications,
    load_models,
    lot_events,
    open_store,
    parse_horizon,
    safe,
    span,
    tool_map_for,
)

MIN_TRAIN_DAYS = 2.0  # days of log before the first origin (calibration's sample)
MAX_ORIGINS = 1000
MODELS = ("design", "calibrated", "oracle")
MIN_RESIDUALS = 20  # residuals of earlier origins before the bands are widened by them


@dataclass
class Obs:
    """One forecast compared with the log: ``actual`` and the point forecast in ``unit``
    (outs and WIP: lots; ETA: hours after the origin, inf when not within the horizon); the
    model's 80 % and 90 % bands; ``scale`` divides residuals so origins compare (the point for
    outs and WIP, the lead time for ETAs)."""

    kind: str
    actual: float
    point: float
    lo80: float
    hi80: float
    lo90: float
    hi90: float
    scale: float
    ready: float  # epoch s when the actual is known (the origin + the horizon)


@dataclass
class Score:
    """Observations of one model over every origin."""

    outs_ape: list[float] = field(default_factory=list)
    total_ape: list[float] = field(default_factory=list)  # outs over the whole horizon
    wip_ape: list[float] = field(default_factory=list)
    eta_err_h: list[float] = field(default_factory=list)
    cover: dict[str, list[tuple[bool, bool]]] = field(
        default_factory=lambda: {"outs": [], "wip": [], "eta": []}
    )
    # the same with the bands widened by the residuals of earlier origins (conformal)
    cover_w: dict[str, list[tuple[bool, bool]]] = field(
        default_factory=lambda: {"outs": [], "wip": [], "eta": []}
    )
    past: list[Obs] = field(default_factory=list)

    def add(self, obs: list[Obs], at: float) -> None:
        """Score one origin's observations; the widened bands use the residuals of the
        observations known by ``at`` (earlier origins whose horizon has ended)."""
        known = [o for o in self.past if o.ready <= at and math.isfinite(o.actual)]
        resid = {
            k: np.asarray([(o.actual - o.point) / o.scale for o in known if o.kind == k])
            for k in ("outs", "wip", "eta")
        }
        for o in obs:
            inside = (_inside(o.actual, o.lo80, o.hi80), _inside(o.actual, o.lo90, o.hi90))
            self.cover[o.kind].append(inside)
            r = resid[o.kind]
            if len(r) >= MIN_RESIDUALS and math.isfinite(o.point):
                q = np.percentile(r, [10, 90, 5, 95]) * o.scale + o.point
                bands = (min(o.lo80, q[0]), max(o.hi80, q[1]), min(o.lo90, q[2]), max(o.hi90, q[3]))
                inside = (_inside(o.actual, *bands[:2]), _inside(o.actual, *bands[2:]))
            self.cover_w[o.kind].append(inside)
        self.past += obs

    def to_json(self) -> dict[str, Any]:
        def mean(xs: list[float]) -> float | None:
            return float(np.mean(xs)) if xs else None

        def share(cs: list[tuple[bool, bool]], i: int) -> float | None:
            return float(np.mean([c[i] for c in cs])) if cs else None

        every = [c for v in self.cover.values() for c in v]
        widened = [c for v in self.cover_w.values() for c in v]
        residuals = {}
        for k in ("outs", "wip", "eta"):
            r = [(o.actual - o.point) / o.scale for o in self.past
                 if o.kind == k and math.isfinite(o.actual) and math.isfinite(o.point)]  # fmt: skip
            qs = np.percentile(r, [5, 10, 90, 95]) if r else [None] * 4
            residuals[k] = {
                **{n: (None if v is None else float(v))
                   for n, v in zip(("p05", "p10", "p90", "p95"), qs, strict=True)},
                "n": len(r),
            }  # fmt: skip
        return {
            "outs_mape": mean(self.outs_ape),
            "horizon_outs_mape": mean(self.total_ape),
            "wip_mape": mean(self.wip_ape),
            "eta_p50_abs_error_h": float(np.median(self.eta_err_h)) if self.eta_err_h else None,
            "pi80_coverage": share(every, 0),
            "pi90_coverage": share(every, 1),
            "pi80_coverage_widened": share(widened, 0),
            "pi90_coverage_widened": share(widened, 1),
            "coverage_by_kind": {
                k: {
                    "n": len(v),
                    "pi80": share(v, 0),
                    "pi90": share(v, 1),
                    "pi80_widened": share(self.cover_w[k], 0),
                    "pi90_widened": share(self.cover_w[k], 1),
                }
                for k, v in self.cover.items()
            },  # fmt: skip
            # quantiles of (actual - point) / scale over every origin: what `twin forecast
            # --widen` widens a forecast's bands by
            "residuals": residuals,
            "n": {
                "outs_days": len(self.outs_ape),
                "wip_days": len(self.wip_ape),
                "eta_lots": len(self.eta_err_h),
            },
        }


def _inside(x: float, lo: float, hi: float) -> bool:
    """x in [lo, hi], where inf (not within the horizon) is inside a band reaching past it."""
    if math.isinf(x):
        return math.isinf(hi)
    return lo <= x <= hi


def origins_of(first: float, last: float, n: int, days: float, where: str) -> list[float]:
    """``n`` origins evenly from ``first + MIN_TRAIN_DAYS`` to ``last - days``."""
    lo, hi = first + MIN_TRAIN_DAYS * DAY, last - days * DAY
    if hi < lo:
        have = (last - first) / DAY
        raise InputError(
            "backtest",
            [f"{where}: too little history: origins need {MIN_TRAIN_DAYS:g} days of log before "
             f"them (calibration) and the horizon ({days:g} days) after them, "
             f"{MIN_TRAIN_DAYS + days:g} days in all; the store spans {have:.2f} days"],
        )  # fmt: skip
    if n == 1:
        return [hi]
    step = (hi - lo) / (n - 1)
    return [lo + i * step for i in range(n)]


def backtest(
    store: str | Path,
    model: str | Path,
    origins: int = 20,
    horizon: Any = 7.0,
    reps: int = 50,
    engine: str = "reference",
    truth: str | Path | None = None,
    rules: str | None = None,
    seed: int = 0,
    *,
    executor: Any = None,
    progress: Any = None,
    times_left: str = "draw",
) -> dict[str, Any]:
    """The backtest's JSON (see the module docstring); ``oracle`` is None without a truth.
    ``times_left``: as ``forecast``'s."""
    from twin.calibrate import CalibrationError, calibrate_store
    from twin.calibrate.write import write_calibrated
    from twin.process import load_model
    from twin.whatif.runner import get_engine

    days = parse_horizon(horizon)
    check_replications(reps)
    if (p := times_left_problem(times_left)) is not None:
        raise InputError("backtest", [p])
    if isinstance(origins, bool) or not isinstance(origins, int) or not 1 <= origins <= MAX_ORIGINS:
        raise InputError(
            "backtest", [f"--origins {safe(origins)}: an integer from 1 to {MAX_ORIGINS}"]
        )
    from twin.whatif.runner import Serial

    eng = get_engine(engine)
    executor = executor or Serial()  # one process: a pool per forecast costs its start-up
    design, scene = load_models(model)
    true_model = None
    if truth is not None:
        from .history import truth_model
        from .source import check_same_families

        try:
            ok = Path(truth).is_file()
        except (OSError, ValueError):
            ok = False
        if not ok:
            raise InputError("backtest", [f"--truth {safe(truth)}: no such scenario file"])
        true_model = truth_model(load_models(model)[0], truth)
        check_same_families(design, true_model, f"--truth {safe(truth)}")
    where = f"--store {safe(store)}"
    with open_store(store) as st:
        first, last = span(st, where)
        times = origins_of(first, last, origins, days, where)
        tool_map = tool_map_for(design, scene, st, where)
        events = lot_events(st)
        states = [st.state_at(t) for t in times]
    n_days = max(1, math.ceil(days - 1e-9))
    scores = {m: Score() for m in MODELS if m != "oracle" or true_model is not None}
    per_origin = []
    for i, (t, state) in enumerate(zip(times, states, strict=True)):
        snap = Snapshot(state=state, tool_map=tool_map, first=first, last=last, at=t)
        act = actuals(events, t, n_days)
        models = {"design": design}
        note = ""
        try:
            cal, _ = calibrate_store(store, model, since=first, until=t)
            with tempfile.TemporaryDirectory() as tmp:
                path = write_calibrated(design, cal, model, tmp)
                cm = load_model(str(path))
            cm.name = f"{design.name} (calibrated)"
            models["calibrated"] = cm
        except CalibrationError as exc:
            note = f"calibration failed, design used: {exc}"
            models["calibrated"] = design
        if true_model is not None:
            models["oracle"] = true_model
        row: dict[str, Any] = {"origin": t, "note": note, "actual_outs": [], "actual_wip": act.wip}
        row["actual_outs"] = [sum(d.values()) for d in act.outs]
        for name, m in models.items():
            res = run_forecast(snap, m, days, reps, eng, rules=rules, seed=seed,
                               executor=executor, times_left=times_left)  # fmt: skip
            _score(scores[name], res, act, t, days)
            row[name] = {
                "outs_mean": [float(x) for x in res.samples["outs"].mean(axis=0)],
                "wip_mean": [float(x) for x in np.nanmean(res.samples["wip"], axis=0)],
            }
        per_origin.append(row)
        if progress is not None:
            progress(i + 1, len(times))
    from twin.live.events import format_time

    for row in per_origin:
        row["origin"] = format_time(row["origin"])
    out: dict[str, Any] = {
        "origins": len(times),
        "horizon_days": days,
        "replications": reps,
        "engine": eng.name,
        "seed": seed,
        "times_left": times_left,
        "store_span": [format_time(first), format_time(last)],
        "min_train_days": MIN_TRAIN_DAYS,
    }
    for m in MODELS:
        out[m] = scores[m].to_json() if m in scores else None
    out["per_origin"] = per_origin
    return out


def _score(score: Score, res: Any, act: Any, at: float, days: float) -> None:
    s = res.samples
    outs, wip = s["outs"], s["wip"]
    q = [QUANTILES[k] for k in ("p10", "p90", "p05", "p95")]
    ready = at + days * DAY
    obs: list[Obs] = []
    total = sum(sum(d.values()) for d in act.outs)
    if total > 0:
        score.total_ape.append(abs(float(outs.sum(axis=1).mean()) - total) / total)
    for k in range(outs.shape[1]):
        actual_outs = sum(act.outs[k].values())
        point = float(outs[:, k].mean())
        if actual_outs > 0:
            score.outs_ape.append(abs(point - actual_outs) / actual_outs)
        b = np.percentile(outs[:, k], q)
        obs.append(Obs("outs", actual_outs, point, *b, max(point, 1.0), ready))
        col = wip[:, k][np.isfinite(wip[:, k])]
        if len(col):
            a, point = act.wip[k], float(col.mean())
            if a > 0:
                score.wip_ape.append(abs(point - a) / a)
            b = np.percentile(col, q)
            obs.append(Obs("wip", a, point, *b, max(point, 1.0), ready))
    end = days * 24.0  # h after the origin
    for j, lot in enumerate(s["eta_ids"]):
        row = (s["eta"][j] - at) / HOUR  # h after the origin, inf: not within the horizon
        lo80, hi80, lo90, hi90, p50 = quantiles(row, [*q, 50])
        done = act.completion.get(lot)
        actual = math.inf if done is None else (done - at) / HOUR
        if done is not None:
            # a p50 past the horizon counts as the horizon's end: a lower bound of its error
            score.eta_err_h.append(abs(min(p50, end) - actual))
        obs.append(Obs("eta", actual, p50, lo80, hi80, lo90, hi90, max(p50, 1.0), ready))
    score.add(obs, at)
