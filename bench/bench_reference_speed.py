"""Speed of the reference engine on SMT2020 HVLM: CPU seconds per simulated year.

Run:  nice .venv/bin/python bench/bench_reference_speed.py [--days 120] [--seed 0]

One short warm-up run (imports, caches), then one timed run of ``--days`` from the model's
initial WIP with its own rules. Prints CPU time (time.process_time: what this process used,
less inflated than wall time on a shared machine) and wall time, both scaled to a simulated year,
the events per CPU second, and the load average at the start and the end (a loaded machine
inflates even CPU time). Issue target: <= 180 CPU s per simulated HVLM year.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from twin.datasets import hvlm_dir  # noqa: E402
from twin.process import load_model  # noqa: E402
from twin.whatif.reference import SimConfig, simulate  # noqa: E402

YEAR = 365.0
TARGET = 180.0  # CPU s per simulated year


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--days", type=float, default=120.0, help="simulated days of the timed run")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--warmup-run-days", type=float, default=2.0, help="untimed run first")
    args = ap.parse_args(argv)
    model = load_model(hvlm_dir())
    simulate(model, SimConfig(days=args.warmup_run_days, seed=args.seed))
    load0 = os.getloadavg()[0]
    t0, c0 = time.perf_counter(), time.process_time()
    res = simulate(model, SimConfig(days=args.days, seed=args.seed))
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    load1 = os.getloadavg()[0]
    per_year = YEAR / args.days
    print(f"reference engine, SMT2020 HVLM, {args.days:g} simulated days, seed {args.seed}")
    print(f"  events                 {res.events:,} ({res.events / args.days:,.0f} per day)")
    print(f"  CPU                    {cpu:.1f} s = {cpu * per_year:.0f} CPU s per simulated year "
          f"(target <= {TARGET:.0f})")  # fmt: skip
    print(f"  wall                   {wall:.1f} s = {wall * per_year:.0f} s per simulated year")
    print(f"  events per CPU second  {res.events / cpu:,.0f}")
    print(f"  load average           {load0:.2f} at start, {load1:.2f} at end "
          f"({os.cpu_count()} CPUs)")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
