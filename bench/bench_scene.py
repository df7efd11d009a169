"""Scene benchmarks: SMAT2022 import (time, peak memory) and a 1,000-tool / 10-asset scene load.

Run: .venv/bin/python bench/bench_scene.py [--repeat N]
Targets (issue 2): SMAT2022 import <= 3 s; 1,000-tool scene <= 1 s with each asset stored once.
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


from twin.datasets import smat2022_workbook  # noqa: E402
from twin.scene.assets import Z_UP_TO_Y_UP  # noqa: E402
from twin.scene.equipment import SHAPES  # noqa: E402
from twin.scene.load import load_scene  # noqa: E402
from twin.scene.smat2022 import build_scene, read_sheets  # noqa: E402
from twin.scene.yamlio import dump_yaml  # noqa: E402


def timed(fn, repeat: int) -> tuple[float, float, float, object]:
    """(median wall s, min wall s, median CPU s, last result) over ``repeat`` runs.

    CPU time is reported too: on a shared machine the wall time includes waiting for a core.
    """
    walls, cpus, result = [], [], None
    for _ in range(repeat):
        t, c = time.perf_counter(), time.process_time()
        result = fn()
        walls.append(time.perf_counter() - t)
        cpus.append(time.process_time() - c)
    return statistics.median(walls), min(walls), statistics.median(cpus), result


def peak_memory(fn) -> float:
    """Peak Python heap (MB) allocated while ``fn`` runs (tracemalloc; numpy buffers included)."""
    tracemalloc.start()
    fn()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return peak / 1e6


def write_big_scene(folder: Path, n_tools: int = 1000, n_assets: int = 10) -> Path:
    """A scene of ``n_tools`` tools in a 40-wide grid using ``n_assets`` GLB files (two ids each)."""
    (folder / "assets").mkdir(parents=True, exist_ok=True)
    makers = list(SHAPES.values())
    files = []
    for k in range(n_assets):
        mesh = makers[k % len(makers)]()
        if k >= len(makers):
            mesh.apply_scale(1.0 + 0.1 * k)  # a distinct mesh, not a copy
        mesh.apply_transform(Z_UP_TO_Y_UP)
        path = folder / "assets" / f"a{k}.glb"
        mesh.export(path, file_type="glb")
        files.append(path.name)
    # two asset ids per file: the library must still hold one mesh per file
    assets = {
        f"{kind}{k}": {"file": f"assets/{name}", "up": "y"}
        for k, name in enumerate(files)
        for kind in ("t", "u")
    }
    ids = list(assets)
    tools = [
        {"id": f"T{i:04d}", "family": f"F{i % 12}", "bay": f"B{i // 100}", "asset": ids[i % len(ids)],
         "at": [float(8 * (i % 100 % 10)), float(8 * (i % 100 // 10))], "yaw": float(90 * (i % 4))}
        for i in range(n_tools)
    ]  # fmt: skip
    bays = [
        {"id": f"B{b}", "at": [100.0 * (b % 5), 100.0 * (b // 5)]} for b in range(n_tools // 100)
    ]
    doc = {"name": "big", "units": "m", "assets": assets, "bays": bays, "tools": tools}
    (folder / "scene.yaml").write_text(dump_yaml(doc), encoding="utf-8")
    return folder


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5, help="runs per figure (median reported)")
    args = parser.parse_args()
    load_before = os.getloadavg()[0]  # wall times stretch with the load; CPU times much less
    rows = []

    xlsx = smat2022_workbook()
    if xlsx.exists():
        load_scene(xlsx)  # warm the imports (openpyxl, networkx, numpy) out of the timing
        med, best, cpu, scene = timed(lambda: load_scene(xlsx), args.repeat)
        peak = peak_memory(lambda: load_scene(xlsx))
        s = scene.summary()
        # the two halves of the import, CPU time: reading the cells, building the scene;
        # the collector paused as the import pauses it
        gc.disable()
        try:
            _, _, read_cpu, sheets = timed(lambda: read_sheets(xlsx), args.repeat)
            _, _, build_cpu, _ = timed(
                lambda: build_scene(sheets, name=xlsx.stem, source=xlsx.name), args.repeat
            )
        finally:
            gc.enable()
        rows += [
            ("SMAT2022 import (median)", f"{med:.2f} s", "<= 3 s"),
            ("SMAT2022 import (best)", f"{best:.2f} s", ""),
            ("SMAT2022 import CPU time (median)", f"{cpu:.2f} s", ""),
            ("  of which reading the cells, CPU", f"{read_cpu:.2f} s", "read_sheets"),
            ("  of which building the scene, CPU", f"{build_cpu:.2f} s", "build_scene"),
            ("SMAT2022 import peak memory", f"{peak:.0f} MB", "(tracemalloc)"),
            (
                "SMAT2022 nodes / segments / ports",
                f"{s['nodes']:,} / {s['rail_segments']:,} / {s['ports']:,}",
                "",
            ),
        ]
    else:
        rows.append(("SMAT2022 import", "skipped", f"no workbook at {xlsx}"))

    with tempfile.TemporaryDirectory() as tmp:
        folder = write_big_scene(Path(tmp) / "big")
        load_scene(folder)  # warm imports (trimesh GLB reader, scipy hull)
        med, best, cpu, scene = timed(lambda: load_scene(folder), args.repeat)
        peak = peak_memory(lambda: load_scene(folder))
        meshes = {id(a.mesh) for a in scene.assets.values()}
        per_tool = {id(scene.assets[t.asset].mesh) for t in scene.tools()}
        mesh_mb = (
            sum(
                a.mesh.vertices.nbytes + a.mesh.faces.nbytes
                for a in {id(a.mesh): a for a in scene.assets.values()}.values()
            )
            / 1e6
        )
        rows += [
            ("1,000-tool scene load (median)", f"{med:.3f} s", "<= 1 s"),
            ("1,000-tool scene load (best)", f"{best:.3f} s", ""),
            ("1,000-tool scene load CPU time (median)", f"{cpu:.3f} s", ""),
            ("1,000-tool scene peak memory", f"{peak:.1f} MB", "(tracemalloc)"),
            (
                "tools / asset ids / distinct meshes",
                f"{len(scene.tools())} / {len(scene.assets)} / {len(meshes)}",
                "10 meshes expected",
            ),
            ("distinct meshes the tools point to", f"{len(per_tool)}", ""),
            ("geometry held (vertices + faces)", f"{mesh_mb:.2f} MB", "once per asset"),
        ]
        assert len(meshes) == 10, "each asset file must be stored once"

    demo = Path(__file__).resolve().parent.parent / "scenes" / "demo-fab"
    if demo.is_dir():
        from twin.scene.export import export_glb

        med, _, cpu, scene = timed(lambda: load_scene(demo), args.repeat)
        rows.append(("demo-fab load (median)", f"{med:.3f} s", f"{len(scene)} nodes"))
        with tempfile.TemporaryDirectory() as tmp:
            med, _, cpu, out = timed(lambda: export_glb(scene, Path(tmp) / "demo.glb"), args.repeat)
            rows.append(
                (
                    "demo-fab GLB export (median)",
                    f"{med:.3f} s",
                    f"{out.stat().st_size / 1e3:.0f} kB",
                )
            )

    width = max(len(r[0]) for r in rows)
    print(
        f"machine load average {load_before:.1f} at the start, {os.getloadavg()[0]:.1f} at the end, on {os.cpu_count()} cores"
    )
    print(f"{'figure':<{width}}  {'value':>22}  note")
    print(f"{'-' * width}  {'-' * 22}  ----")
    for name, value, note in rows:
        print(f"{name:<{width}}  {value:>22}  {note}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
