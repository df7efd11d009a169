"""OpenUSD export benchmark: the SMAT2022 fab as .usdc/.usda/.usdz, and an animated hour.

Run: .venv/bin/python bench/bench_usd.py [--repeat N] [--no-animation]
Target (issue 17): SMAT2022 USD export <= 10 s (the scene already loaded; the load is shown apart).
The animated case: 500 vehicles reporting a position every 30 s for one hour (60,000 events)
plus 1,068 tool state changes, from an in-memory store, then written as .usdc.
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from twin.datasets import smat2022_workbook  # noqa: E402
from twin.live.events import E10_STATES, make_event  # noqa: E402
from twin.live.store import MemoryStore  # noqa: E402
from twin.scene.load import load_scene  # noqa: E402
from twin.scene.usd import animation_from_store, export_usd  # noqa: E402


def timed(fn, repeat: int) -> tuple[float, float, float, object]:
    """(median wall s, min wall s, median CPU s, last result) over ``repeat`` runs (CPU time
    too: on a shared machine the wall time includes waiting for a core)."""
    walls, cpus, result = [], [], None
    for _ in range(repeat):
        t, c = time.perf_counter(), time.process_time()
        result = fn()
        walls.append(time.perf_counter() - t)
        cpus.append(time.process_time() - c)
    return statistics.median(walls), min(walls), statistics.median(cpus), result


def hour_of_events(scene, period: float = 30.0, start: float = 1_767_225_600.0) -> MemoryStore:
    """Every vehicle moving along the rail one segment per ``period`` s for an hour; every tool
    changes E10 state once."""
    store = MemoryStore()
    segs = list(scene.segments.values())
    events, seq = [], 0
    vehicles = scene.nodes("vehicle")
    for k in range(int(3600 / period)):
        for i, v in enumerate(vehicles):
            seq += 1
            seg = segs[(i * 7 + k) % len(segs)]
            events.append(
                make_event(
                    "amhs",
                    seq,
                    start + k * period + i * 1e-3,
                    "vehicle.position",
                    v.id,
                    segment=seg.id,
                    offset=seg.length / 2,
                    speed=1.0,
                )
            )
    for j, tool in enumerate(scene.tools()):
        t = start + (j % 3600)
        events.append(
            make_event(
                "mes", j + 1, t, "equipment.state", tool.id, state=E10_STATES[j % 6], reason=""
            )
        )
    events.sort(key=lambda e: e.time)
    store.write(events)
    return store


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--no-animation", action="store_true", help="skip the animated case")
    args = ap.parse_args()
    src = smat2022_workbook()
    if not src.exists():
        print(f"SMAT2022 workbook not found at {src} (set TWIN_DATASETS)")
        return 1
    wall, _, cpu, scene = timed(lambda: load_scene(src), 1)
    print(f"SMAT2022 load: {wall:.2f} s wall, {cpu:.2f} s CPU ({len(scene):,} nodes)")
    with tempfile.TemporaryDirectory() as tmp:
        for suffix in (".usdc", ".usda", ".usdz"):
            out = Path(tmp) / f"smat{suffix}"
            wall, best, cpu, _ = timed(lambda out=out: export_usd(scene, out), args.repeat)
            size = out.stat().st_size / 1e6
            print(
                f"SMAT2022 USD export {suffix}: median {wall:.2f} s wall (min {best:.2f}), "
                f"{cpu:.2f} s CPU, {size:.1f} MB  (target <= 10 s)"
            )
        if not args.no_animation:
            store = hour_of_events(scene)
            wall, _, cpu, anim = timed(lambda: animation_from_store(scene, store), 1)
            samples = anim.samples()
            print(
                f"animation from {store.count():,} events: {wall:.2f} s wall, {cpu:.2f} s CPU, "
                f"{samples:,} time samples"
            )
            out = Path(tmp) / "anim.usdc"
            wall, _, cpu, _ = timed(lambda: export_usd(scene, out, animation=anim), 1)
            print(
                f"animated SMAT2022 export .usdc: {wall:.2f} s wall, {cpu:.2f} s CPU, "
                f"{out.stat().st_size / 1e6:.1f} MB"
            )
    print(f"command: python bench/bench_usd.py --repeat {args.repeat}")
    return 0 if math.isfinite(wall) else 1


if __name__ == "__main__":
    sys.exit(main())
