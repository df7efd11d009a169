"""Emulator benchmark: events/s generated at --speed max for the demo fab.

    .venv/bin/python bench/bench_emulator.py [--hours 24] [--seed 0] [--jsonl]

Prints a table of measured figures: events generated, wall and CPU time (one core; on a shared
machine the CPU figure is the one that does not depend on what else runs), events/s and the
fab-time speed-up, with the share of CPU time spent in the OHT simulator. With ``--jsonl`` the
events are also serialised to JSON lines (what ``twin emulate --out`` does).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from twin.emulator.emulator import load_emulator  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hours", type=float, default=24.0, help="fab hours to emulate")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--jsonl", action="store_true", help="also serialise every event to JSON")
    args = ap.parse_args()

    emu = load_emulator(str(ROOT / "scenes" / "demo-fab"), seed=args.seed, hours=args.hours)
    kinds: Counter[str] = Counter()
    chars = 0
    wall, cpu = time.perf_counter(), time.process_time()
    for ev in emu.events():
        kinds[ev.type] += 1
        if args.jsonl:
            chars += len(ev.to_json()) + 1
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    n = sum(kinds.values())
    k = emu.kpis()
    oht_cpu = emu.sim.stats.cpu
    rows = [
        ("fab hours emulated", f"{args.hours:g} h (seed {args.seed})"),
        ("events generated", f"{n:,}"),
        ("  of which vehicle.position", f"{kinds['vehicle.position']:,}"),
        ("  lot track-in / track-out", f"{kinds['lot.track_in']:,} / {kinds['lot.track_out']:,}"),
        ("  carrier transfers delivered", f"{kinds['carrier.delivered']:,}"),
        (
            "lots placed / released / completed / WIP",
            f"{k['lots_placed']} / {k['lots_released']} / {k['lots_completed']} / {k['wip']}",
        ),
        ("wall time", f"{wall:.2f} s"),
        ("CPU time (this process)", f"{cpu:.2f} s"),
        ("  in the OHT simulator", f"{oht_cpu:.2f} s ({oht_cpu / cpu:.0%})"),
        ("events/s (wall)", f"{n / wall:,.0f}"),
        ("events/s (CPU)", f"{n / cpu:,.0f}"),
        ("fab time / wall time", f"{args.hours * 3600 / wall:,.0f}x"),
        ("fab time / CPU time", f"{args.hours * 3600 / cpu:,.0f}x"),
    ]
    if args.jsonl:
        rows.append(("JSONL written (in memory)", f"{chars / 1e6:.1f} MB"))
    width = max(len(r[0]) for r in rows)
    print(f"{'measure':<{width}}  value")
    print(f"{'-' * width}  {'-' * 24}")
    for name, value in rows:
        print(f"{name:<{width}}  {value}")


if __name__ == "__main__":
    main()
