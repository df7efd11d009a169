"""Physics benchmark: world build, rendering and OHT speed on the SMAT2022 layout and the demo fab.

    .venv/bin/python bench/bench_physics.py [--seconds 600] [--smat PATH] [--skip-smat]
                                            [--oht-only]

Prints a table of measured figures. The realtime factor is given against wall-clock time and
against this process's CPU time (one core; on a shared machine the CPU figure is the one that
depends least on what else runs), with the CPU time per decision tick and the load average
around the run (a loaded machine inflates both). Targets: SMAT2022 world build <= 5 s, 500
vehicles doing random transfers >= 100x real time. ``--oht-only`` skips the world, ray-cast and
render figures.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from twin.datasets import smat2022_workbook  # noqa: E402


def timed(fn):
    wall, cpu = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - wall, time.process_time() - cpu


def bench_scene(
    name: str, scene, seconds: float, rows: list[tuple[str, str, str]], oht_only: bool = False
) -> None:
    if not oht_only:
        bench_world(name, scene, rows)
    bench_oht(name, scene, seconds, rows)


def bench_world(name: str, scene, rows: list[tuple[str, str, str]]) -> None:
    from twin.physics.render import render_scene
    from twin.physics.world import PhysicsWorld

    world, wall, _ = timed(lambda: PhysicsWorld(scene))
    rows.append((name, "world build (tools, rails, vehicles)", f"{wall:.2f} s"))
    rows.append((name, "bodies / collision shapes", f"{len(world.body)} / {len(world._shapes)}"))
    tools = [n.id for n in scene.tools()]
    if tools:
        import numpy as np

        res, wall, _ = timed(
            lambda: [
                world.can_place((2.0, 2.0, 2.0), scene.world_position(t) + [0, 0, 0], 0.5)
                for t in tools[:200]
            ]
        )
        rows.append((name, "can_place queries", f"{wall / min(200, len(tools)) * 1e3:.2f} ms each"))
        box = scene.scene_bbox()
        n = 100_000
        rng = np.random.default_rng(0)
        origins = np.column_stack(
            [
                rng.uniform(box[0][0], box[1][0], n),
                rng.uniform(box[0][1], box[1][1], n),
                np.full(n, 10.0),
            ]
        )
        _, wall, _ = timed(lambda: world.ray_cast(origins, origins - [0, 0, 20]))
        rows.append((name, "ray casts (rayTestBatch)", f"{n / wall:,.0f} rays/s"))
    world.close()
    _, wall, _ = timed(
        lambda: render_scene(scene, Path(tempfile.gettempdir()) / "bench_physics.png")
    )
    rows.append((name, "render 1280x720 PNG (incl. world build)", f"{wall:.2f} s"))


def bench_oht(name: str, scene, seconds: float, rows: list[tuple[str, str, str]]) -> None:
    from twin.physics.oht import OhtConfig, OhtSim

    sim, wall, _ = timed(lambda: OhtSim(scene, OhtConfig(), seed=1, random_transfers=True))
    rows.append((name, f"OHT set-up ({sim.n} vehicles)", f"{wall:.2f} s"))
    load_before = os.getloadavg()[0]
    sim.advance(seconds)
    load_after = os.getloadavg()[0]
    out = sim.summary()
    ticks = seconds / sim.config.tick
    rows.append(
        (name, f"OHT {seconds:.0f} s random transfers", f"{out['transfers_completed']} transfers")
    )
    rows.append((name, "  realtime factor (wall)", f"{out['realtime_factor']}x"))
    rows.append((name, "  realtime factor (CPU, one core)", f"{out['realtime_factor_cpu']}x"))
    cpu_tick = out["cpu_seconds"] / ticks
    rows.append(
        (
            name,
            f"  CPU per {sim.config.tick:g} s tick / per vehicle",
            f"{cpu_tick * 1e3:.2f} ms / {cpu_tick / sim.n * 1e6:.1f} us",
        )
    )
    rows.append((name, "  load average before / after", f"{load_before:.1f} / {load_after:.1f}"))
    rows.append(
        (
            name,
            "  min headway / allowed",
            f"{out['min_headway_m']} / {out['min_allowed_headway_m']} m",
        )
    )
    rows.append(
        (name, "  deadlocks / emergency brakes", f"{out['deadlocks']} / {out['emergency_brakes']}")
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=600.0, help="simulated seconds of OHT")
    parser.add_argument("--smat", default=str(smat2022_workbook()), help="SMAT2022 workbook")
    parser.add_argument("--skip-smat", action="store_true")
    parser.add_argument("--oht-only", action="store_true", help="only the OHT figures")
    args = parser.parse_args()
    from twin.scene.load import load_scene

    rows: list[tuple[str, str, str]] = []
    demo = load_scene(ROOT / "scenes" / "demo-fab")
    bench_scene("demo-fab", demo, args.seconds, rows, args.oht_only)
    if not args.skip_smat and Path(args.smat).exists():
        scene, wall, _ = timed(lambda: load_scene(args.smat))
        rows.append(("SMAT2022", "workbook import (scene helper)", f"{wall:.1f} s"))
        bench_scene("SMAT2022", scene, args.seconds, rows, args.oht_only)
    width = max(len(r[1]) for r in rows)
    print(f"{'scene':<10} {'measure':<{width}} value")
    for scene_name, what, value in rows:
        print(f"{scene_name:<10} {what:<{width}} {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
