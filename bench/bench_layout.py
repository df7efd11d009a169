"""CPU cost per replication-year of the Warp kernel with 1, 16 and 64 replications per launch.

    TWIN_DATASETS=... .venv/bin/python bench/bench_layout.py --days 20 --reps 1 16 64
    .venv/bin/python bench/bench_layout.py --layout interleaved   # the GPU's layout on the CPU

Runs SMT2020 HVLM (or ``--model``) with PySCFabSim's rules for ``--days`` on the CPU (Warp's
CPU backend runs a launch's threads one after the other on one core) and prints, per
replications-per-launch count, the CPU seconds (``time.process_time``) per simulated
replication-year (whole call, and the launches alone: simulation only) and the
replication-years per CPU-hour. The kernel is compiled and warmed
before any timing; ``--repeat`` runs every count that many times to show the spread.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from twin.datasets import hvlm_dir  # noqa: E402
from twin.process import load_model  # noqa: E402
from twin.whatif.kernel import simulate_batch  # noqa: E402
from twin.whatif.presets import sim_options  # noqa: E402
from twin.whatif.reference import SimConfig  # noqa: E402

YEAR = 365.0


def run(model, cfg: SimConfig, n: int, layout: str | None) -> tuple[float, float, int]:
    """CPU seconds of the whole call, of the launches alone, and the events, for n reps."""
    kw = {} if layout is None else {"layout": layout}
    c0 = time.process_time()
    runs = simulate_batch([model], cfg, list(range(n)), device="cpu", records=False, **kw)[0]
    cpu = time.process_time() - c0
    launch = sum({r.extra.get("launch_cpu_seconds", 0.0) for r in runs})  # one per launch
    return cpu, launch, sum(r.events for r in runs)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", type=Path, default=None, help="SMT2020 folder (default HVLM)")
    p.add_argument("--days", type=float, default=20.0, help="simulated days (default 20)")
    p.add_argument("--reps", type=int, nargs="+", default=[1, 16, 64], help="per launch")
    p.add_argument("--repeat", type=int, default=2, help="runs of every count (default 2)")
    p.add_argument("--layout", default=None, help="blocked or interleaved (default: device's)")
    p.add_argument("--defaults", action="store_true", help="engine defaults, not PySCFabSim's")
    a = p.parse_args()
    spread = "full" if a.defaults else "half"  # PySCFabSim's rules read PTIME2 as ± half
    model = load_model(a.model or hvlm_dir(), ptime_spread_mode=spread)
    opts = {} if a.defaults else sim_options("pyscfabsim")
    cfg = SimConfig(days=a.days, seed=1, **opts)
    simulate_batch([model], SimConfig(days=0.01, seed=1, **opts), [0], device="cpu")  # warm
    print(f"{model.name}, {a.days:g} d, layout {a.layout or 'default'}, seed 1")
    print("| reps/launch | run | CPU s | CPU s per rep-year | same, launches only "
          "| rep-years per CPU-hour | events")  # fmt: skip
    print("|---:|---:|---:|---:|---:|---:|---:")
    for n in a.reps:
        for k in range(a.repeat):
            cpu, launch, ev = run(model, cfg, n, a.layout)
            years = n * a.days / YEAR
            per = cpu / years
            print(f"| {n} | {k + 1} | {cpu:.2f} | {per:.2f} | {launch / years:.2f} "
                  f"| {3600 / per:.0f} | {ev:,}", flush=True)  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
