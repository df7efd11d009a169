"""Kernel (CPU) against the reference engine on SMT2020 HVLM, option by option.

Run:  nice .venv/bin/python bench/bench_agreement.py [--days 60] [--seed 1] [--reps 1]
      [--only NAME ...]

For the engine's defaults, every ``SimConfig`` option alone, the half spread and PySCFabSim's
rule set (``twin.whatif.kernel.agreement.option_cases``) it runs both engines over the horizon
and prints per case: lots finished by each engine, events of each, and the first completion
(days) where the per-lot records differ, or "identical". The tests run the same cases over a
short horizon (tests/whatif/kernel/test_kernel_agreement.py, test_hvlm_options_agree_exactly).
Exit status 1 when any case differs.
"""

from __future__ import annotations

import argparse
import time

from twin.datasets import hvlm_dir
from twin.process import load_model
from twin.whatif.kernel import simulate_batch
from twin.whatif.kernel.agreement import compare, option_cases
from twin.whatif.reference import simulate


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--days", type=float, default=60.0)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--reps", type=int, default=1, help="replications 0..reps-1 per case")
    ap.add_argument("--only", nargs="*", help="case names (default: all)")
    args = ap.parse_args(argv)
    cases = [c for c in option_cases() if not args.only or c.name in args.only]
    models = {}
    print(f"SMT2020 HVLM, {args.days:g} days, seed {args.seed}, kernel on the CPU")
    print(f"{'case':<28}{'rep':>4}{'ref lots':>10}{'kernel lots':>13}{'ref events':>12}"
          f"{'kernel events':>15}  first difference{'ref s':>9}{'kernel s':>10}")  # fmt: skip
    bad = 0
    for case in cases:
        if case.spread not in models:
            models[case.spread] = load_model(hvlm_dir(), ptime_spread_mode=case.spread)
        model = models[case.spread]
        cfg = case.config(args.days, seed=args.seed)
        t0 = time.perf_counter()
        runs = simulate_batch([model], cfg, list(range(args.reps)), device="cpu")[0]
        t_ker = time.perf_counter() - t0
        for kr in runs:
            t0 = time.perf_counter()
            ref = simulate(model, case.config(args.days, args.seed, kr.replication))
            t_ref = time.perf_counter() - t0
            c = compare(ref, kr.result())
            diff = "identical" if c["first_diff"] is None else f"at {c['first_diff']:.3f} d"
            bad += c["first_diff"] is not None
            print(f"{case.name:<28}{kr.replication:>4}{c['ref_lots']:>10}{c['kernel_lots']:>13}"
                  f"{c['ref_events']:>12}{c['kernel_events']:>15}  {diff:<16}{t_ref:>9.1f}"
                  f"{t_ker / len(runs):>10.1f}", flush=True)  # fmt: skip
    print(f"{bad} of {len(cases) * args.reps} runs differ")
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
