"""GPU check of the what-if kernel where Warp is not installed: a prebuilt CUBIN on the driver.

    python3 bench/gpu_aot.py --cubin bench/aot/wp_twin.whatif.kernel.kernel.sm90.cubin

(build the CUBIN on any machine with Warp, no GPU needed: ``python bench/build_aot.py``).
1. agreement with the reference engine on the GPU: demo fab and the every-feature toy fab,
   constant times (must be identical) and stochastic (identical unless CUDA's ``log`` differs
   in the last bit); 2. the HVLM batch: ``--replications`` × ``--days`` days, with the
   replication 0 of a run of up to 30 days checked against the reference (on the CPU
   meanwhile); the one-year batch runs only if that timing says it fits in ``--budget``
   seconds, otherwise its time is scaled from the shorter run and printed as such.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "whatif" / "kernel"))

from models import constant_times, toy_fab  # noqa: E402

from twin.datasets import hvlm_dir  # noqa: E402
from twin.process import load_model  # noqa: E402
from twin.whatif.kernel.aot import Cuda, simulate_batch_aot  # noqa: E402
from twin.whatif.kernel.compile import compile_model, stack  # noqa: E402
from twin.whatif.kernel.engine import bytes_per_replication  # noqa: E402
from twin.whatif.reference import SimConfig, simulate  # noqa: E402

T0 = time.perf_counter()


def say(*a) -> None:
    print(f"[{time.perf_counter() - T0:6.1f} s]", *a, flush=True)


def same(ref, ker) -> str:
    a, b = ref.lots, ker.lots
    if a.id == b.id and a.completion == b.completion and ref.events == ker.events:
        return "IDENTICAL"
    n = min(len(a), len(b))
    d = max((abs(x - y) for x, y in zip(a.completion[:n], b.completion[:n], strict=True)),
            default=0.0)  # fmt: skip
    return (
        f"differs: lots {len(a)} vs {len(b)}, events {ref.events} vs {ker.events}, max |dt| {d:g}"
    )


def _ref_hvlm(days: float) -> tuple:
    r = simulate(load_model(hvlm_dir()), SimConfig(days=days, seed=1))
    return r.lots.id, r.lots.completion, r.events


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--cubin", required=True)
    p.add_argument("--replications", type=int, default=1024)
    p.add_argument("--days", type=float, default=365.0)
    p.add_argument("--budget", type=float, default=400.0, help="seconds this script may use")
    p.add_argument("--block", type=int, default=0, help="threads per block (0: try 8/32/64)")
    p.add_argument("--emulate-cpu", action="store_true",
                   help="dry run of this script on the CPU build (no GPU; for checking it)")  # fmt: skip
    a = p.parse_args()
    if a.emulate_cpu:
        from test_kernel_aot import HostDriver

        cu = HostDriver()
        cu.name = "cpu (emulated driver, dry run)"
    else:
        cu = Cuda()
    say("device", cu.name, "free memory", f"{cu.free_memory() / 1e9:.1f} GB")

    # 1. agreement on small models
    demo = load_model(ROOT / "scenes" / "demo-fab")
    for name, model, days in (("demo fab", demo, 10), ("toy fab", toy_fab(), 12)):
        for label, mdl in (("constant", constant_times(model)), ("stochastic", model)):
            cfg = SimConfig(days=days, warmup_days=1, seed=7)
            t = time.perf_counter()
            kr = simulate_batch_aot([mdl], cfg, [0, 1], a.cubin, cuda=cu)[0]
            gpu = time.perf_counter() - t
            verdicts = [
                same(
                    simulate(mdl, SimConfig(days=days, warmup_days=1, seed=7, replication=r)),
                    kr[r].result(),
                )  # fmt: skip
                for r in (0, 1)
            ]
            say(f"agreement {name} {label} {days} d (2 reps, GPU {gpu:.1f} s):", verdicts)

    # 2. HVLM batches
    hv = hvlm_dir()
    if not (hv / "route_3.txt").exists():
        say(f"HVLM not found at {hv}: run `twin datasets fetch smt2020-hvlm`; stopping")
        return 0
    model = load_model(hv)
    block = a.block
    if not block:
        best = None
        for b in (8, 32, 64):
            t = time.perf_counter()
            simulate_batch_aot([model], SimConfig(days=1, seed=1), range(a.replications),
                               a.cubin, records=False, block=b, cuda=cu)  # fmt: skip
            dt = time.perf_counter() - t
            say(f"block {b}: {a.replications} × 1 d in {dt:.1f} s (incl. set-up)")
            if best is None or dt < best[1]:
                best = (b, dt)
        block = best[0]
    # one launch of the block-size trial took t1 for 1 day: size the checked run to the budget
    t1 = best[1] if not a.block else 1.0
    left = a.budget - (time.perf_counter() - T0)
    days = 30.0 if 30 * t1 < 0.35 * left else max(1.0, float(int(0.35 * left / t1)))
    ctx = mp.get_context("spawn")
    pool = ctx.Pool(1)
    ref_async = pool.apply_async(_ref_hvlm, (days,))
    t = time.perf_counter()
    runs = simulate_batch_aot([model], SimConfig(days=days, seed=1), range(a.replications),
                              a.cubin, records=True, block=block, cuda=cu)[0]  # fmt: skip
    t30 = time.perf_counter() - t
    ev = sum(r.events for r in runs)
    launch = runs[0].extra["launch_seconds"]
    say(f"HVLM {a.replications} × {days:g} d (block {block}): {launch:.1f} s kernel, {t30:.1f} s "
        f"total, {ev:,} events, {ev / launch:,.0f} events/s")  # fmt: skip
    try:
        ids, comp, events = ref_async.get(timeout=max(5.0, 0.2 * a.budget))
        k0 = runs[0].result()
        ok = ids == k0.lots.id and comp == k0.lots.completion and events == k0.events
        say(
            f"HVLM {days:g} d replication 0 vs reference:",
            "IDENTICAL"
            if ok
            else f"differs ({len(ids)} vs {len(k0.lots)} lots, {events} vs {k0.events} events)",
        )
    except mp.TimeoutError:
        say("HVLM reference did not finish in time; agreement not checked")
    pool.terminate()
    tables, s = stack([compile_model(model, SimConfig(days=a.days))])
    s["n_pmw"] = max(1, tables["w_first"].shape[1])
    per = bytes_per_replication(s, False)
    say(
        f"memory per replication ({a.days:g} d, device statistics): {per / 1e6:.2f} MB; "
        f"10,000 replications: {10_000 * per / 1e9:.1f} GB"
    )
    est = t30 * a.days / days
    left = a.budget - (time.perf_counter() - T0)
    if est < 0.9 * left:
        t = time.perf_counter()
        runs = simulate_batch_aot([model], SimConfig(days=a.days, seed=1), range(a.replications),
                                  a.cubin, records=False, block=block, cuda=cu)[0]  # fmt: skip
        dt = time.perf_counter() - t
        ev = sum(r.events for r in runs)
        say(f"HVLM {a.replications} × {a.days:g} d: {runs[0].extra['launch_seconds']:.1f} s "
            f"kernel, {dt:.1f} s total, {ev:,} events (target <= 300 s)")  # fmt: skip
        years = a.replications * a.days / 365
        say(f"replication-years per hour (GPU): {years / dt * 3600:,.0f}")
    else:
        say(
            f"HVLM {a.replications} × {a.days:g} d NOT RUN: scaled from {days:g} d it needs about "
            f"{est:.0f} s, more than the {left:.0f} s left (estimate, not a measurement)"
        )
        years = a.replications * days / 365
        say(f"replication-years per hour (GPU, {days:g}-day batch): {years / t30 * 3600:,.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
