"""AMHS vehicle-count sweep: HVLM on SMAT2022, cycle time against the size of the OHT fleet.

Run:  nice .venv/bin/python bench/bench_amhs_sweep.py --out sweep.jsonl [--jobs 2]
      .venv/bin/python bench/bench_amhs_sweep.py --out sweep.jsonl --report [--plot x.png]

Each point is one replication of the reference engine on SMT2020 HVLM from its initial WIP,
``--days`` simulated days of which the first ``--warmup`` are not measured, with the AMHS on the
SMAT2022 layout and ``vehicles: {count: n}``; ``--reps`` replications per count (replication r
uses the same random streams for every count: common random numbers), plus one table-transport
run per replication as the baseline (``vehicles`` = 0 in the file). Every finished run is
appended to ``--out`` as one JSON line (a sweep that is stopped keeps what it has; a rerun
skips the runs already there). ``--report`` prints the markdown table (means and 95 %
confidence half-widths over replications, Student t) and, with ``--plot``, draws the figure.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

COUNTS = (200, 300, 400, 500, 600, 700)
TYPES = ("Lot_3", "Lot_4", "HotLot_3", "HotLot_4")
_MODEL = None


def _one(job: tuple[int, int, float, float, int]) -> dict:
    """One replication: (vehicles (0: table transport), replication, days, warm-up, seed)."""
    global _MODEL
    from twin.amhs.transport import AmhsSpec, attach
    from twin.datasets import hvlm_dir, smat2022_workbook
    from twin.process import load_model
    from twin.whatif.reference import SimConfig
    from twin.whatif.reference.engine import Engine

    n, rep, days, warmup, seed = job
    if _MODEL is None:
        _MODEL = load_model(hvlm_dir())
    model = _MODEL
    attach(model, AmhsSpec(layout=str(smat2022_workbook()), vehicles=n) if n > 0 else None)
    cpu = time.process_time()
    k = Engine(model, SimConfig(days=days, warmup_days=warmup, seed=seed, replication=rep))
    kpis = k.run().kpis()
    cpu = time.process_time() - cpu
    out = {
        "vehicles": n,
        "rep": rep,
        "days": days,
        "warmup": warmup,
        "seed": seed,
        "cpu_s": round(cpu, 1),
        "fab_ct_days": kpis["fab"]["cycle_time_days"],
        "throughput_per_day": kpis["fab"]["throughput_per_day"],
        "ct_days": {t: kpis["lot_types"][t]["cycle_time_days"]["mean"] for t in TYPES},
    }
    a = kpis.get("amhs")
    if a:
        out["amhs"] = {k: v for k, v in a.items() if k != "congested_segments"}
    return out


def _done(path: Path) -> set[tuple[int, int]]:
    if not path.exists():
        return set()
    return {(r["vehicles"], r["rep"]) for r in map(json.loads, path.read_text().splitlines())}


def _ci(xs: list[float]) -> tuple[float, float]:
    """Mean and 95 % half-width (Student t) of replications."""
    from scipy.stats import t

    n = len(xs)
    m = sum(xs) / n
    if n < 2:
        return m, float("nan")
    sd = math.sqrt(sum((x - m) ** 2 for x in xs) / (n - 1))
    return m, float(t.ppf(0.975, n - 1)) * sd / math.sqrt(n)


def report(path: Path, plot: Path | None) -> str:
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    by: dict[int, list[dict]] = {}
    for r in rows:
        by.setdefault(r["vehicles"], []).append(r)
    head = (
        "| vehicles | reps | Lot_3 CT (d) | Lot_4 CT (d) | delivery mean (s) | p95 (s) "
        "| wait for a vehicle (s) | utilisation | transport share of CT | CPU/run (s) |"
    )
    lines = [head, "|" + "---:|" * 10]
    pts = []
    for n in sorted(by, key=lambda v: (v == 0, v)):
        rs = by[n]
        l3, h3 = _ci([r["ct_days"]["Lot_3"] for r in rs])
        l4, h4 = _ci([r["ct_days"]["Lot_4"] for r in rs])
        cpu = sum(r["cpu_s"] for r in rs) / len(rs)
        if n == 0:
            cells = ["table", len(rs), f"{l3:.2f} ± {h3:.2f}", f"{l4:.2f} ± {h4:.2f}"]
            cells += ["-"] * 5 + [f"{cpu:.0f}"]
        else:
            a = [r["amhs"] for r in rs]
            dm = _ci([x["delivery_mean_s"] for x in a])
            dp = _ci([x["delivery_p95_s"] for x in a])
            w = _ci([x["wait_mean_s"] for x in a])
            u = _ci([100 * x["utilisation"] for x in a])
            ts = _ci([100 * x.get("transport_share", float("nan")) for x in a])
            cells = [n, len(rs), f"{l3:.2f} ± {h3:.2f}", f"{l4:.2f} ± {h4:.2f}"]
            cells += [f"{dm[0]:.0f} ± {dm[1]:.0f}", f"{dp[0]:.0f} ± {dp[1]:.0f}"]
            cells += [f"{w[0]:.1f} ± {w[1]:.1f}", f"{u[0]:.1f} %", f"{ts[0]:.2f} %", f"{cpu:.0f}"]
            pts.append((n, l3, h3, l4, h4, dm[0], dm[1], u[0]))
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    text = "\n".join(lines)
    if plot is not None and pts:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        n = [p[0] for p in pts]
        fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(9, 3.4), dpi=90)
        for i, (lt, col) in enumerate((("Lot_3", "C0"), ("Lot_4", "C1"))):
            ax1.errorbar(n, [p[1 + 2 * i] for p in pts], [p[2 + 2 * i] for p in pts],
                         marker="o", color=col, capsize=3, label=f"{lt} (AMHS)")  # fmt: skip
            if 0 in by:
                base = _ci([r["ct_days"][lt] for r in by[0]])[0]
                ax1.axhline(base, color=col, ls=":", lw=1, label=f"{lt} (table)")
        ax1.set_xlabel("vehicles")
        ax1.set_ylabel("mean cycle time (days)")
        ax1.legend(fontsize=7)
        ax2.errorbar(n, [p[5] for p in pts], [p[6] for p in pts], marker="o", capsize=3)
        ax2.set_xlabel("vehicles")
        ax2.set_ylabel("delivery time mean (s)")
        if max(p[5] for p in pts) > 20 * min(p[5] for p in pts):
            ax2.set_yscale("log")
        ax3 = ax2.twinx()
        ax3.plot(n, [p[7] for p in pts], "s--", color="C2")
        ax3.set_ylabel("vehicle utilisation (%)", color="C2")
        r0 = rows[0]
        fig.suptitle(
            f"HVLM on SMAT2022: {r0['days'] - r0['warmup']:g} d after {r0['warmup']:g} d warm-up, "
            f"{max(len(v) for v in by.values())} replications (95 % CI)",
            fontsize=9,
        )
        fig.tight_layout()
        fig.savefig(plot)
    return text


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True, help="JSON lines, appended to")
    ap.add_argument("--counts", default=",".join(map(str, COUNTS)))
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--days", type=float, default=90.0)
    ap.add_argument("--warmup", type=float, default=30.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--jobs", type=int, default=1)
    ap.add_argument("--no-table", action="store_true", help="skip the table baseline")
    ap.add_argument("--report", action="store_true")
    ap.add_argument("--plot", type=Path)
    args = ap.parse_args(argv)
    if args.report:
        print(report(args.out, args.plot))
        return 0
    counts = [int(c) for c in args.counts.split(",")]
    if not args.no_table:
        counts = [0, *counts]
    done = _done(args.out)
    jobs = [
        (n, r, args.days, args.warmup, args.seed)
        for r in range(args.reps)
        for n in counts
        if (n, r) not in done
    ]
    print(f"{len(jobs)} runs, load {os.getloadavg()[0]:.1f}", flush=True)
    with ProcessPoolExecutor(args.jobs) as pool, args.out.open("a") as fh:
        for res in pool.map(_one, jobs):
            fh.write(json.dumps(res) + "\n")
            fh.flush()
            print(res["vehicles"], res["rep"], res["cpu_s"], res["fab_ct_days"], flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
