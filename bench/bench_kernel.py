"""Benchmark of the Warp what-if kernel on SMT2020 HVLM (or another SMT2020-format model).

    .venv/bin/python bench/bench_kernel.py                      # CPU figures (about 3 min)
    .venv/bin/python bench/bench_kernel.py --device cuda        # GPU batch (1,024 × 365 d)

CPU: one replication of ``--days`` on one core (events/s), the reference engine side by side
on ``--ref-days`` (both engines on the same horizon, so the speed-up is like for like; the
reference's time for ``--days`` is scaled from it), replication-years per hour on
``--workers`` cores (one process per core), and bytes per replication.
CUDA: ``--replications`` replications of ``--days`` in one launch, memory per replication,
and the speed-up over ``--workers`` CPU cores on the same batch (the CPU rate is measured here
on one replication of ``--cpu-days`` and scaled by the number of cores).
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from twin.datasets import hvlm_dir  # noqa: E402
from twin.process import load_model  # noqa: E402
from twin.whatif.kernel import bytes_per_replication, simulate_batch  # noqa: E402
from twin.whatif.kernel.compile import compile_model, stack  # noqa: E402
from twin.whatif.reference import SimConfig, simulate  # noqa: E402

YEAR = 365.0


def row(name: str, value: str, note: str = "") -> None:
    print(f"| {name:<46} | {value:>18} | {note}", flush=True)


def kernel_run(model, days: float, reps: list[int], device: str, records: bool = False):
    t0, c0 = time.perf_counter(), time.process_time()
    runs = simulate_batch([model], SimConfig(days=days, seed=1), reps, device=device,
                          records=records)[0]  # fmt: skip
    wall = time.perf_counter() - t0
    runs[0].extra["cpu_seconds"] = time.process_time() - c0
    return runs, wall, runs[0].extra["launch_seconds"]


def _worker(args) -> tuple[int, float]:
    path, days, rep = args
    model = load_model(path)
    runs, wall, launch = kernel_run(model, days, [rep], "cpu")
    return runs[0].events, launch


def sizes_of(model, days: float) -> dict:
    tables, sizes = stack([compile_model(model, SimConfig(days=days))])
    sizes["n_pmw"] = max(1, tables["w_first"].shape[1])
    return sizes


def memory_rows(model, days: float) -> None:
    s = sizes_of(model, days)
    with_rec, without = bytes_per_replication(s, True), bytes_per_replication(s, False)
    row("bytes per replication (device statistics)", f"{without / 1e6:.2f} MB", f"{days:g} d")
    row("bytes per replication (+ per-lot records)", f"{with_rec / 1e6:.2f} MB", f"{days:g} d")
    row("10,000 replications", f"{10_000 * without / 1e9:.1f} GB",
        f"with records {10_000 * with_rec / 1e9:.1f} GB; must fit in 100 GB")  # fmt: skip


def bench_cpu(a, model, path) -> None:
    print(f"kernel benchmark on the CPU: {model.name}, seed 1\n")
    t0 = time.perf_counter()
    kernel_run(model, 0.01, [0], "cpu")
    row("compile/load of the kernel (cpu)", f"{time.perf_counter() - t0:.1f} s", "cached after")
    runs, wall, launch = kernel_run(model, a.days, [0], "cpu")
    ev = runs[0].events
    cpu = runs[0].extra["cpu_seconds"]
    row(f"1 replication × {a.days:g} d, one core", f"{launch:.1f} s",
        f"{ev:,} events; {wall:.1f} s with set-up/read-back; target <= 20 s for 365 d")  # fmt: skip
    row(
        "  same, CPU time of this process",
        f"{cpu:.1f} s",
        "what one dedicated core needs; wall time above includes waiting for a shared core",
    )
    row("kernel events per second (one core)", f"{ev / launch:,.0f}",
        f"{ev / cpu:,.0f} per CPU second")  # fmt: skip
    if a.ref_days > 0:
        cfg = SimConfig(days=a.ref_days, seed=1)
        t0, c0 = time.perf_counter(), time.process_time()
        ref = simulate(model, cfg)
        ref_wall = time.perf_counter() - t0
        ref_cpu = time.process_time() - c0
        kr, _, k_launch = kernel_run(model, a.ref_days, [0], "cpu", records=True)
        k_cpu = kr[0].extra["cpu_seconds"]
        same = kr[0].result().lots.completion == ref.lots.completion
        row(f"reference, 1 replication × {a.ref_days:g} d", f"{ref_wall:.1f} s",
            f"{ref.events:,} events, CPU {ref_cpu:.1f} s, {ref.events / ref_cpu:,.0f} "
            "events per CPU second")  # fmt: skip
        row(f"kernel, same {a.ref_days:g} d", f"{k_launch:.2f} s",
            f"CPU {k_cpu:.2f} s (incl. model compile and read-back); identical "
            f"completions: {same}")  # fmt: skip
        row("speed-up over the reference (same horizon)", f"{ref_wall / k_launch:.1f} x",
            f"CPU time: {ref_cpu / k_cpu:.1f} x")  # fmt: skip
        scaled = ref_wall * ev / max(ref.events, 1)
        row(f"reference for {a.days:g} d (scaled by events)", f"{scaled:.0f} s",
            f"scaled from {a.ref_days:g} d, not measured")  # fmt: skip
    if a.workers > 0:
        ctx = mp.get_context("spawn")
        t0 = time.perf_counter()
        with ctx.Pool(a.workers) as pool:
            out = pool.map(_worker, [(str(path), a.core_days, r) for r in range(a.workers)])
        wall = time.perf_counter() - t0
        years = a.workers * a.core_days / YEAR
        row(f"{a.workers} cores, {a.workers} × {a.core_days:g} d", f"{wall:.1f} s",
            f"{sum(e for e, _ in out):,} events (incl. start-up of {a.workers} processes)")  # fmt: skip
        row("replication-years per hour (all cores)", f"{years / wall * 3600:.1f}")
    memory_rows(model, a.days)


def bench_cuda(a, model) -> None:
    import warp as wp

    wp.init()
    dev = "cuda:0"
    name = wp.get_device(dev).name
    print(f"kernel benchmark on {name}: {model.name}, seed 1\n")
    t0 = time.perf_counter()
    kernel_run(model, 0.01, [0], dev)
    row("compile/load of the kernel (cuda)", f"{time.perf_counter() - t0:.1f} s")
    s = sizes_of(model, a.days)
    per = bytes_per_replication(s, False)
    row("memory per replication", f"{per / 1e6:.2f} MB", f"{a.replications} reps: "
        f"{a.replications * per / 1e9:.2f} GB")  # fmt: skip
    reps = list(range(a.replications))
    runs, wall, launch = kernel_run(model, a.days, reps, dev)
    ev = sum(r.events for r in runs)
    row(
        f"{a.replications} replications × {a.days:g} d",
        f"{launch:.1f} s",
        f"{ev:,} events, {wall:.1f} s with set-up/read-back; target <= 300 s for 1,024 × 365 d",
    )
    row("events per second (GPU)", f"{ev / launch:,.0f}")
    years = a.replications * a.days / YEAR
    row("replication-years per hour (GPU)", f"{years / launch * 3600:,.0f}")
    if a.cpu_days > 0:
        kernel_run(model, 0.01, [0], "cpu")
        cr, _, c_launch = kernel_run(model, a.cpu_days, [0], "cpu")
        cpu_rate = a.workers * (a.cpu_days / YEAR) / c_launch * 3600  # rep-years per hour
        row(
            f"CPU: 1 replication × {a.cpu_days:g} d, one core",
            f"{c_launch:.1f} s",
            f"scaled to {a.workers} cores: {cpu_rate:.1f} replication-years per hour",
        )
        cpu_time = years / cpu_rate * 3600
        row(f"speed-up over {a.workers} CPU cores, same batch", f"{cpu_time / launch:.1f} x",
            f"CPU time for the batch scaled: {cpu_time:,.0f} s")  # fmt: skip
    memory_rows(model, a.days)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", type=Path, default=None, help="SMT2020 folder (default HVLM)")
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--days", type=float, default=YEAR, help="simulated days (default 365)")
    p.add_argument("--replications", type=int, default=1024, help="GPU batch (default 1024)")
    p.add_argument("--ref-days", type=float, default=10.0, help="reference horizon (CPU)")
    p.add_argument("--workers", type=int, default=2, help="CPU cores for the throughput row")
    p.add_argument("--core-days", type=float, default=60.0, help="days per core, throughput")
    p.add_argument("--cpu-days", type=float, default=0.0,
                   help="CUDA: measure one CPU replication of this many days (0: skip)")  # fmt: skip
    a = p.parse_args()
    path = a.model or hvlm_dir()
    model = load_model(path)
    print("| figure | value | note")
    print("|---|---:|---")
    if a.device.startswith("cuda"):
        bench_cuda(a, model)
    else:
        bench_cpu(a, model, path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
