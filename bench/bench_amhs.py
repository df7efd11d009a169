"""AMHS in the what-if: HVLM on SMAT2022 with 500 vehicles, and the fast model vs the physics.

Run:  nice .venv/bin/python bench/bench_amhs.py [--days 10] [--validate-seconds 7200]

1. Speed: the reference engine on SMT2020 HVLM for ``--days`` from the initial WIP, once with
   ``fromto.txt`` transport and once with the AMHS (SMAT2022 layout, its 500 vehicles). Prints
   CPU s (time.process_time) of each, scaled to a simulated year (a linear extrapolation when
   ``--days`` < 365, labelled so), moves, CPU µs per move, engine events per move, cycle time
   per lot type next to the table run, and the AMHS KPIs. First bar: <= 600 CPU s per year.
2. Validation (``--validate-seconds`` > 0): OhtSim with the 500 vehicles saturated by random
   transfers for that long, then the fast model on the same transfers (``twin.amhs.validate``):
   mean and p95 transfer time and utilisation after ``--warmup`` s. Targets: 5 %, 10 %, 5 points.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from twin.amhs.transport import AmhsSpec, attach  # noqa: E402
from twin.amhs.validate import compare  # noqa: E402
from twin.datasets import hvlm_dir, smat2022_workbook  # noqa: E402
from twin.process import load_model  # noqa: E402
from twin.scene.load import load_scene  # noqa: E402
from twin.whatif.reference import SimConfig  # noqa: E402
from twin.whatif.reference.engine import Engine  # noqa: E402

YEAR = 365.0
TARGET = 600.0  # CPU s per simulated year, first bar


def _run(model, days: float, seed: int):
    c0 = time.process_time()
    eng = Engine(model, SimConfig(days=days, seed=seed))
    res = eng.run()
    return eng, res.kpis(), time.process_time() - c0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--days", type=float, default=10.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--validate-seconds", type=float, default=0.0)
    ap.add_argument("--warmup", type=float, default=600.0, help="s, validation warm-up")
    args = ap.parse_args(argv)
    out: dict = {"days": args.days, "load_start": os.getloadavg()[0]}
    model = load_model(hvlm_dir())
    _, table, cpu_table = _run(model, args.days, args.seed)
    attach(model, AmhsSpec(layout=str(smat2022_workbook())))
    eng, amhs, cpu_amhs = _run(model, args.days, args.seed)
    moves = eng.amhs.model.moves
    scale = YEAR / args.days
    out["speed"] = {
        "cpu_s_table": round(cpu_table, 2),
        "cpu_s_amhs": round(cpu_amhs, 2),
        "cpu_s_per_year_amhs" + ("" if args.days >= YEAR else "_extrapolated"): round(
            cpu_amhs * scale, 1
        ),
        "first_bar_s": TARGET,
        "moves": moves,
        "cpu_us_per_move_amhs_part": round((cpu_amhs - cpu_table) / max(moves, 1) * 1e6, 1),
        "engine_events_per_move": round(amhs["events"] / max(moves, 1), 2),
    }
    out["cycle_time_days"] = {
        lt: {
            "table": round(table["lot_types"][lt]["cycle_time_days"]["mean"], 3),
            "amhs": round(v["cycle_time_days"]["mean"], 3),
            "completed_table": table["lot_types"][lt]["lots_completed"],
            "completed_amhs": v["lots_completed"],
        }
        for lt, v in amhs["lot_types"].items()
    }
    out["amhs"] = {k: v for k, v in amhs["amhs"].items() if k != "congested_segments"}
    out["amhs"]["congested_segments"] = amhs["amhs"]["congested_segments"]
    print(json.dumps(out, indent=1), flush=True)
    if args.validate_seconds > 0:
        scene = load_scene(smat2022_workbook())
        r = compare(scene, vehicles=500, seconds=args.validate_seconds, warmup=args.warmup)
        print(json.dumps({"validation": r}, indent=1), flush=True)
    print(json.dumps({"load_end": os.getloadavg()[0]}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
