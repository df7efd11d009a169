"""`twin forecast` and `twin backtest` (docs/forecast.md, "Forecast" and "Backtest")."""

from __future__ import annotations

import argparse
import json
import math
import sys
from typing import Any

from .source import MAX_HORIZON_DAYS, MAX_REPLICATIONS

# the engines' names, spelled out: building the parser must not import an engine (the
# runner checks the name, and whether that engine is installed, before anything runs)
ENGINES = ("reference", "kernel")


def register(sub: Any) -> None:
    f = sub.add_parser(
        "forecast",
        help="forecast the fab from the twin's state: daily outs, WIP, cycle time, lot ETAs",
        description="Run the model forward from the twin's state in an event store (now, or "
        "as of --at) and report per day outs per product, WIP, the cycle time of lots "
        "finishing and the bottleneck's utilisation, each with 80 %% and 90 %% prediction "
        "intervals (quantiles across replications), and each lot's completion time "
        "p10/p50/p90. See docs/forecast.md.",
    )
    _common(f, list(ENGINES))
    f.add_argument("--calibrated", help="a `twin calibrate --out DIR` folder: simulate its model")
    f.add_argument(
        "--at", help="the state as of this time: ISO 8601 UTC or epoch s (default: last event)"
    )
    f.add_argument(
        "--widen",
        metavar="BACKTEST.json",
        help="widen the bands by the residuals of a `twin backtest --json` of this fab "
        "(its --widen-model's; docs/forecast.md, 'Backtest')",
    )
    f.add_argument(
        "--widen-model", default="calibrated", choices=("design", "calibrated", "oracle"),
        help="whose residuals --widen takes (default calibrated)",
    )  # fmt: skip
    f.add_argument("--lots", type=int, default=20, help="lots in the ETA table (default 20)")
    f.set_defaults(func=_forecast)
    b = sub.add_parser(
        "backtest",
        help="forecasts at rolling origins of the log against what happened next",
        description="At N rolling origins of the event log: calibrate on the log before the "
        "origin, forecast from the state at it with the design, calibrated and (--truth) true "
        "models, and compare with the log after it: MAPE of daily outs and WIP, median "
        "absolute error of lot ETAs (h), coverage of the 80 %% and 90 %% intervals. See "
        "docs/forecast.md.",
    )
    _common(b, list(ENGINES))
    b.add_argument("--origins", type=int, default=20, help="rolling origins (default 20)")
    b.add_argument("--truth", help="scenario file of the fab's hidden truth: adds the oracle")
    b.set_defaults(func=_backtest, replications=50)


def _common(p: argparse.ArgumentParser, engines: list[str]) -> None:
    p.add_argument("--store", required=True, help="SQLite event store (read only)")
    p.add_argument(
        "--model",
        required=True,
        help="scene folder (its tools map the events) or SMT2020 folder (the store's catalog)",
    )
    p.add_argument(
        "--horizon",
        default="7d",
        help=f"how far: 7d, 36h, 90m or days (default 7d; at most {MAX_HORIZON_DAYS:g} days)",
    )
    p.add_argument(
        "-r", "--replications", type=int, default=100,
        help=f"replications (default 100; 1 to {MAX_REPLICATIONS:,})",
    )  # fmt: skip
    p.add_argument(
        "--engine",
        choices=engines,
        default="reference",
        help="what-if engine: reference (readable) or kernel (batched Warp; default reference)",
    )
    p.add_argument("--rules", help="rule preset (twin.whatif.presets; default: twin)")
    p.add_argument(
        "--seed", type=int, default=0, help="random seed of the replications (default 0)"
    )
    p.add_argument("--workers", type=int, help="worker processes (default: one per core)")
    p.add_argument(
        "--times-left", choices=("draw", "mean"), default="draw",
        help="downs, runs and transports in progress at T: each replication draws its time "
        "left given the time already spent (draw, default), or all take the mean (mean)",
    )  # fmt: skip
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress")


def _executor(args: argparse.Namespace, default_serial: bool = False) -> Any:
    from twin.errors import InputError
    from twin.whatif.runner import LocalProcessPool, Serial

    w = args.workers
    if w is not None and not 1 <= w <= 1024:
        raise InputError("--workers", [f"--workers {w}: from 1 to 1024"])
    if w == 1 or (w is None and default_serial):
        return Serial()
    return LocalProcessPool(workers=w)


def _forecast(args: argparse.Namespace) -> int:
    from twin.errors import InputError

    from .core import forecast

    if not 1 <= args.lots <= 100_000:
        raise InputError("--lots", [f"--lots {args.lots}: from 1 to 100000"])
    residuals = _residuals(args.widen, args.widen_model) if args.widen else None
    res = forecast(
        args.store, args.model, at=args.at, horizon=args.horizon, reps=args.replications,
        engine=args.engine, calibrated=args.calibrated, rules=args.rules, seed=args.seed,
        executor=_executor(args), progress=not args.quiet, times_left=args.times_left,
    )  # fmt: skip
    if residuals is not None:
        from .core import widen

        widen(res, residuals)
    if args.json:
        json.dump(finite(res.to_json()), sys.stdout, indent=1)
        sys.stdout.write("\n")
    else:
        sys.stdout.write(format_forecast(res, args.lots))
    return 0


def _residuals(path: str, model: str) -> dict[str, Any]:
    """The residual quantiles of one model in a `twin backtest --json` file, checked."""
    from pathlib import Path

    from twin.errors import InputError

    from .core import widen
    from .source import safe

    where = f"--widen {safe(path)}"
    try:
        text = Path(path).read_text(encoding="utf-8")
        if len(text) > 50_000_000:
            raise ValueError("over 50 MB")
        doc = json.loads(text)
    except (OSError, ValueError, RecursionError) as exc:
        raise InputError(
            "--widen", [f"{where}: not a readable backtest JSON ({safe(exc)})"]
        ) from None
    entry = doc.get(model) if isinstance(doc, dict) else None
    res = entry.get("residuals") if isinstance(entry, dict) else None
    if not isinstance(res, dict):
        raise InputError(
            "--widen", [f"{where}: no '{model}.residuals' (write it with `twin backtest --json`)"]
        )
    from .core import ForecastResult

    widen(ForecastResult("", "", 0.0, 1.0, 1, 0, "", 0), res)  # checks every number first
    return res


def _backtest(args: argparse.Namespace) -> int:
    from .backtest import backtest

    def tick(i: int, n: int) -> None:
        if not args.quiet:
            sys.stderr.write(f"\rbacktest: origin {i}/{n}")
            if i == n:
                sys.stderr.write("\n")

    doc = backtest(
        args.store, args.model, origins=args.origins, horizon=args.horizon,
        reps=args.replications, engine=args.engine, truth=args.truth, rules=args.rules,
        seed=args.seed, executor=_executor(args, default_serial=True), progress=tick,
        times_left=args.times_left,
    )  # fmt: skip
    if args.json:
        json.dump(finite(doc), sys.stdout, indent=1)
        sys.stdout.write("\n")
    else:
        sys.stdout.write(format_backtest(doc))
    return 0


def finite(x: Any) -> Any:
    """NaN/inf -> None, so the output is strict JSON."""
    if isinstance(x, dict):
        return {k: finite(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [finite(v) for v in x]
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x


def _b(b: dict[str, Any], digits: int = 1) -> str:
    if b.get("p50") is None:
        return "-"
    return f"{b['p50']:.{digits}f} [{b['p10']:.{digits}f}, {b['p90']:.{digits}f}]"


def format_forecast(res: Any, n_lots: int = 20) -> str:
    from twin.live.events import format_time

    doc = res.to_json()
    lines = [
        f"forecast of {doc['model']} from {doc['at']} over {doc['horizon_days']:g} days: "
        f"{doc['replications']} replications on {doc['engine']}, rules {doc['rules']}, "
        f"{doc['start_wip']} lots in WIP",
        "p50 [p10, p90] across replications (the 80 % prediction interval; --json: p05/p95)",
        "",
        f"{'day':>4}  {'outs':>18}  {'WIP at end':>18}  {'cycle time (d)':>20}"
        f"  {'bottleneck util.':>22}",
    ]
    for d in doc["days"]:
        lines.append(
            f"{d['day']:>4}  {_b(d['outs']):>18}  {_b(d['wip']):>18}  "
            f"{_b(d['cycle_time_days'], 2):>20}  {_b(d['bottleneck_utilisation'], 3):>22}"
        )
    bn = doc["bottleneck"]
    if bn.get("family"):
        lines.append(
            f"bottleneck {bn['family']}: utilisation {_b(bn['utilisation'], 3)} over the horizon"
        )
    lines += ["", f"lot ETAs (first {min(n_lots, len(res.lots))} of {len(res.lots)}):"]
    for e in res.lots[:n_lots]:
        if e.p50 is None:
            eta = f"> horizon ({e.finished_share:.0%} of replications finish it)"
        else:
            hi = "> horizon" if e.p90 is None else format_time(e.p90)
            eta = f"p50 {format_time(e.p50)}  [p10 {format_time(e.p10)}, p90 {hi}]"
        lines.append(f"  {e.id:<20} {e.status:<10} step {e.step:<4} {eta}")
    lines += [f"note: {n}" for n in doc["notes"]]
    return "\n".join(lines) + "\n"


def format_backtest(doc: dict[str, Any]) -> str:
    def pct(x: Any) -> str:
        return "-" if x is None else f"{100 * x:.1f} %"

    def hours(x: Any) -> str:
        return "-" if x is None else f"{x:.2f} h"

    models = [m for m in ("design", "calibrated", "oracle") if doc.get(m)]
    rows = [
        ("outs MAPE", "outs_mape", pct),
        ("WIP MAPE", "wip_mape", pct),
        ("ETA p50 abs error", "eta_p50_abs_error_h", hours),
        ("80 % PI coverage", "pi80_coverage", pct),
        ("90 % PI coverage", "pi90_coverage", pct),
    ]
    lines = [
        f"backtest: {doc['origins']} origins, horizon {doc['horizon_days']:g} days, "
        f"{doc['replications']} replications on {doc['engine']}",
        f"{'':<20}" + "".join(f"{m:>14}" for m in models),
    ]
    for label, key, fmt in rows:
        lines.append(f"{label:<20}" + "".join(f"{fmt(doc[m][key]):>14}" for m in models))
    return "\n".join(lines) + "\n"
