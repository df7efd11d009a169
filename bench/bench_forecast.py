"""Forecast benchmark: seconds for a 7-day HVLM forecast with 100 replications, and (with
--backtest N) the HVLM backtest's 7-day outs MAPE of the calibrated model.

    .venv/bin/python bench/bench_forecast.py [--history-days 10] [--horizon 7] [-r 100]
        [--engine kernel] [--workers 2] [--backtest N] [--truth-factor 1.1]

The history is the MES part of a fab's stream (twin.forecast.history: the reference engine
as the "real" fab, from the model's initial WIP, announced by lot.released at the start)
written to an SQLite store with the tool -> family catalog, as `twin ingest` leaves it; tools are named ``<family>-<n>``. The forecast starts from the state at the last
event (``forecast(store, HVLM, at=None, ...)``): reading the state, building the start, and
the replications on the engine, all timed together. Target: <= 60 s for 7 days x 100
replications on the kernel on the CPU (2 cores). --backtest N: N origins over the history
(which then needs 2 + 7 days more than the origins span; a truth slows one family by
--truth-factor), the calibrated model's outs MAPE (target <= 5 %).
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def cpu() -> float:
    """CPU s of this process (the pool's workers are the forkserver's children: not counted)."""
    self_ = resource.getrusage(resource.RUSAGE_SELF)
    return self_.ru_utime + self_.ru_stime


def main() -> None:
    from twin.datasets import hvlm_dir
    from twin.forecast import forecast
    from twin.forecast.history import write_history
    from twin.process import load_model
    from twin.process.toolmap import ToolIdMap
    from twin.whatif.runner import LocalProcessPool, Serial

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--history-days", type=float, default=10.0)
    ap.add_argument("--horizon", type=float, default=7.0)
    ap.add_argument("-r", "--replications", type=int, default=100)
    ap.add_argument("--engine", default="kernel")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--backtest", type=int, metavar="N", help="also a backtest of N origins")
    ap.add_argument("--truth-factor", type=float, default=1.1)
    args = ap.parse_args()
    path = hvlm_dir()
    model = load_model(path)
    tools = {f"{name}-{n:03d}": name for name, fam in model.families.items()
             for n in range(1, fam.count + 1) if not fam.is_delay}  # fmt: skip
    tool_map = ToolIdMap.from_families(tools, model)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "hvlm.db"
        real = model
        if args.backtest:
            from twin.whatif.scenarios import parse_scenarios

            load = model.offered_load()  # the busiest family: a truth that bites
            fam = max(load, key=lambda f: load[f])
            truth = Path(tmp) / "truth.yaml"
            truth.write_text(
                "scenarios:\n  - name: truth\n    changes:\n      - processing_time: "
                f"{{family: {fam}, factor: {args.truth_factor}}}\n"
            )
            real = parse_scenarios(truth.read_text(), model=model)[1].apply(model)
        t0 = time.perf_counter()
        n = write_history(db, real, tool_map, days=args.history_days, seed=args.seed + 1,
                          initial_wip=True)  # fmt: skip
        rows.append(("history (MES events, reference engine)",
                     f"{args.history_days:g} d, {n:,} events, {time.perf_counter() - t0:.1f} s"))  # fmt: skip
        ex = Serial() if args.workers == 1 else LocalProcessPool(workers=args.workers)
        if args.engine == "kernel":  # compile (or load the cached module) outside the timing
            forecast(db, path, horizon=0.25, reps=1, engine="kernel", executor=Serial())
        c0, t0 = cpu(), time.perf_counter()
        res = forecast(db, path, horizon=args.horizon, reps=args.replications,
                       engine=args.engine, seed=args.seed, executor=ex)  # fmt: skip
        wall, used = time.perf_counter() - t0, cpu() - c0
        rows += [
            ("forecast", f"{args.horizon:g} d x {args.replications} replications on "
                         f"{args.engine}, {args.workers} worker(s)"),  # fmt: skip
            ("  lots in WIP at T", f"{res.start_wip:,}"),
            ("  wall", f"{wall:.1f} s (target <= 60 s)"),
            ("    of which state at T (replay)", f"{wall - res.wall_seconds:.1f} s"),
            ("    start + replications", f"{res.wall_seconds:.1f} s"),
            ("  CPU of this process", f"{used:.1f} s"),
            ("  day 1 outs p50 [p10, p90]", "{p50:g} [{p10:g}, {p90:g}]".format(**res.days[0]["outs"])),
            ("  bottleneck", f"{res.bottleneck['family']}"),
        ]  # fmt: skip
        if args.backtest:
            from twin.forecast.backtest import backtest

            t0 = time.perf_counter()
            doc = backtest(db, path, origins=args.backtest, horizon=args.horizon,
                           reps=args.replications, engine=args.engine, truth=truth,
                           seed=args.seed, executor=ex)  # fmt: skip
            rows.append((f"backtest, {args.backtest} origins", f"{time.perf_counter() - t0:.0f} s"))
            for m in ("design", "calibrated", "oracle"):
                d = doc[m]
                rows.append((f"  {m}: outs daily / {args.horizon:g}-day / WIP MAPE, ETA err, "
                             "PI90 (widened)",
                             f"{100 * d['outs_mape']:.1f} % / {100 * d['horizon_outs_mape']:.1f} %"
                             f" / {100 * d['wip_mape']:.1f} %, "
                             f"{d['eta_p50_abs_error_h']:.1f} h, {100 * d['pi90_coverage']:.0f} % "
                             f"({100 * (d['pi90_coverage_widened'] or 0):.0f} %)"))  # fmt: skip
    width = max(len(r[0]) for r in rows)
    for k, v in rows:
        print(f"{k:<{width}}  {v}")
    print("command: " + " ".join(["bench/bench_forecast.py", *sys.argv[1:]]))


if __name__ == "__main__":
    main()
