"""Benchmark: as-built check of a 1-million-point scan of the demo fab (target <= 10 s).

Synthesises a scan of ``scenes/demo-fab`` (noise, occlusion from a grid of scan positions, three
moved tools, the scanner's frame shifted and turned against the fab's), writes it as a binary
PLY, then times ``align_scan`` on the file, stage by stage, and checks what it recovered.

    .venv/bin/python bench/bench_scan.py [--points 1000000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from twin.scan.align import AlignConfig, align_scan  # noqa: E402
from twin.scan.synth import Move, ScanConfig, synthesize  # noqa: E402
from twin.scene.load import load_scene  # noqa: E402

MOVES = [
    Move("LITH01", 0.25, -0.10, 2.0),
    Move("ETCH02", -0.10, 0.15, -3.0),
    Move("CMP03", 0.0, 0.4, 0.0),
]
FRAME = (3.0, -2.0, 0.1, 20.0)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--scene", type=Path, default=ROOT / "scenes" / "demo-fab")
    args = parser.parse_args()

    scene = load_scene(args.scene)
    t0 = time.perf_counter()
    scan = synthesize(
        scene, ScanConfig(points=args.points, noise_mm=3.0, frame=FRAME, seed=1), MOVES
    )
    synth_s = time.perf_counter() - t0
    with tempfile.TemporaryDirectory() as tmp:
        path, _ = scan.write(Path(tmp) / "scan.ply")
        runs = []
        for _ in range(args.repeat):
            c0 = time.process_time()
            result = align_scan(path, scene, AlignConfig())
            result.timings["cpu"] = time.process_time() - c0
            runs.append(result)
    stages = list(runs[0].timings)
    print(f"scene {scene.name}: {len(scene.tools())} tools, {len(scene.nodes('stocker'))} stockers")
    print(f"scan: {len(scan.points):,} points from {len(scan.positions)} positions "
          f"(synthesised in {synth_s:.1f} s), frame offset {FRAME}")  # fmt: skip
    print()
    print("seconds per stage: wall clock; 'cpu' is the process CPU time, all threads together")
    print(
        f"{'stage':<12} "
        + " ".join(f"{'run ' + str(i + 1):>8}" for i in range(len(runs)))
        + f" {'median':>8}"
    )
    for s in stages:
        vals = [r.timings.get(s, 0.0) for r in runs]
        print(
            f"{s:<12} " + " ".join(f"{v:8.2f}" for v in vals) + f" {statistics.median(vals):8.2f}"
        )
    print()

    r = runs[-1]
    truth = scan.scan_to_scene
    reg_err = float(np.linalg.norm(r.scan_to_scene[:3, 3] - truth[:3, 3]))
    cosang = (np.trace(r.scan_to_scene[:3, :3].T @ truth[:3, :3]) - 1) / 2
    reg_turn = math.degrees(math.acos(float(np.clip(cosang, -1, 1))))
    by_id = {t.id: t for t in r.tools}
    move_err = max(math.hypot(by_id[m.tool].dx - m.dx, by_id[m.tool].dy - m.dy) for m in MOVES)
    yaw_err = max(abs(by_id[m.tool].dyaw_deg - m.dyaw) for m in MOVES)
    rest = [t for t in r.tools if t.id not in {m.tool for m in MOVES} and t.status != "unobserved"]
    print(f"{'figure':<44} {'value':>10}")
    print(
        f"{'align total, median (s) [target <= 10]':<44} {statistics.median(x.timings['total'] for x in runs):>10.2f}"
    )
    print(f"{'registration start chosen':<44} {r.init:>10}")
    print(f"{'registration error (mm)':<44} {reg_err * 1000:>10.1f}")
    print(f"{'registration error (deg)':<44} {reg_turn:>10.3f}")
    print(
        f"{'moved tools flagged':<44} {sum(by_id[m.tool].status == 'moved' for m in MOVES):>7}/{len(MOVES)}"
    )
    print(f"{'max error on known moves (mm)':<44} {move_err * 1000:>10.1f}")
    print(f"{'max yaw error on known moves (deg)':<44} {yaw_err:>10.3f}")
    print(f"{'unmoved tools flagged':<44} {sum(t.status == 'moved' for t in rest):>10}")
    print(
        f"{'max deviation of unmoved tools (mm)':<44} {max(t.distance for t in rest) * 1000:>10.1f}"
    )
    print(f"{'tools unobserved':<44} {sum(t.status == 'unobserved' for t in r.tools):>10}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
