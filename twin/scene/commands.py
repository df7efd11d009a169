"""`twin scene ...`: inspect, check, export and render scenes (folders or SMAT2022 workbooks)."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any

from twin.errors import InputError


def register(subparsers: argparse._SubParsersAction) -> None:
    group = subparsers.add_parser("scene", help="fab scenes: info, check, export, render, demo")
    sub = group.add_subparsers(dest="scene_command", metavar="SUBCOMMAND", required=True)
    src_help = "scene folder (holding scene.yaml) or SMAT2022 .xlsx workbook"

    info = sub.add_parser("info", help="counts, families and bounding box of a scene")
    info.add_argument("src", type=Path, metavar="SRC", help=src_help)
    info.add_argument("--json", action="store_true", help="print the summary as JSON")
    info.set_defaults(func=cmd_info)

    check = sub.add_parser(
        "check", help="validate a scene and compare it with its process model (exit 1 on errors)"
    )
    check.add_argument("src", type=Path, metavar="SRC", help=src_help)
    check.add_argument(
        "--model", type=Path, help="SMT2020-format process folder (default: the scene's process/)"
    )
    check.add_argument("--all", action="store_true", help="list every family, not only differences")
    check.add_argument("--json", action="store_true", help="print the report as JSON")
    check.set_defaults(func=cmd_check)

    export = sub.add_parser(
        "export", help="write the whole scene as one GLB (glTF viewers) or OpenUSD stage"
    )
    export.add_argument("src", type=Path, metavar="SRC", help=src_help)
    export.add_argument(
        "out",
        type=Path,
        metavar="OUT",
        help="output file: .glb, or .usda/.usdc/.usdz (needs the usd extra)",
    )
    export.add_argument("--no-rail", action="store_true", help="leave the rail beams out")
    export.add_argument("--no-vehicles", action="store_true", help="leave the vehicles out")
    export.add_argument("--no-ports", action="store_true", help="leave the load-port markers out")
    export.add_argument(
        "--animate",
        type=Path,
        metavar="STORE",
        help="USD only: time-sample vehicle poses and tool E10 colours from this event store",
    )
    export.add_argument(
        "--from",
        dest="since",
        metavar="T",
        help="start of the animation (UTC ISO 8601 or epoch s; default: the first event)",
    )
    export.add_argument(
        "--to",
        dest="until",
        metavar="T",
        help="end of the animation (UTC ISO 8601 or epoch s; default: the last event)",
    )
    export.set_defaults(func=cmd_export)

    render = sub.add_parser("render", help="render the scene to a PNG (needs the physics extra)")
    render.add_argument("src", type=Path, metavar="SRC", help=src_help)
    render.add_argument("out", type=Path, metavar="OUT", help="output .png file")
    render.add_argument("--camera", type=_xyz, help="camera position x,y,z in metres")
    render.add_argument("--target", type=_xyz, help="point looked at x,y,z in metres")
    render.add_argument("--width", type=int, default=1280, help="image width in pixels")
    render.add_argument("--height", type=int, default=720, help="image height in pixels")
    render.set_defaults(func=cmd_render)

    demo = sub.add_parser("demo", help="(re)generate the demo fab folder")
    demo.add_argument(
        "folder",
        type=Path,
        nargs="?",
        default=Path("scenes/demo-fab"),
        metavar="FOLDER",
        help="scene folder to write (default scenes/demo-fab)",
    )
    demo.set_defaults(func=cmd_demo)


def _xyz(text: str) -> tuple[float, float, float]:
    try:
        x, y, z = (float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected x,y,z in metres (e.g. 10,-20,15), got {text!r}"
        ) from None
    return x, y, z


def _load(src: Path):
    from twin.scene.load import load_scene

    return load_scene(src)


def cmd_info(args: argparse.Namespace) -> int:
    scene = _load(args.src)
    summary = scene.summary()
    summary["families_tools"] = scene.families()
    if args.json:
        print(json.dumps(summary, indent=2))
        return 0
    box = summary["bbox"]
    print(f"scene {summary['name']}")
    for key in (
        "nodes",
        "bays",
        "tools",
        "families",
        "stockers",
        "rail_nodes",
        "rail_segments",
        "ports",
        "vehicles",
        "assets",
    ):
        print(f"  {key:<14}{summary[key]:>8,}")
    size = [round(hi - lo, 2) for lo, hi in zip(box["min"], box["max"])]
    print(f"  {'bbox (m)':<14}{box['min']} .. {box['max']}  size {size}")
    if scene.segments:
        total = sum(s.length for s in scene.segments.values())
        print(f"  {'rail length':<14}{total:>10,.1f} m")
    fams = summary["families_tools"]
    if fams:
        print("tools per family:")
        width = max(len(f) for f in fams)
        for fam, n in fams.items():
            print(f"  {fam:<{width}}  {n:>4}")
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    from twin.scene.consistency import report

    scene = _load(args.src)
    model_dir = args.model
    if model_dir is None and scene.metadata.get("process_dir"):
        model_dir = Path(scene.metadata["process_dir"])
    model = None
    if model_dir is not None:
        from twin.process import load_model

        if not model_dir.exists():
            raise InputError("scene check", [f"--model {model_dir}: no such folder"])
        model = load_model(model_dir)
    data = report(scene, model)
    if args.json:
        print(json.dumps(data, indent=2))
        return 1 if data["errors"] else 0
    print(f"scene {scene.name}: {data['errors']} errors, {data['warnings']} warnings")
    if model is None:
        print("  (no process model: give --model DIR to compare tool counts with STNQTY)")
    else:
        _print_families(data, show_all=args.all, model_dir=model_dir)
    for f in data["findings"]:
        print(f"  {f['severity']:<7} [{f['code']}] {f['message']}")
    return 1 if data["errors"] else 0


def _print_families(data: dict[str, Any], *, show_all: bool, model_dir: Path) -> None:
    rows = data["families"]
    differ = [r for r in rows if r["difference"] != 0 or r["model"] is None]
    shown = rows if show_all else differ
    util = data.get("utilisation", {})
    print(
        f"tool counts per family: layout vs STNQTY of {model_dir.name} ({len(differ)} of {len(rows)} differ)"
    )
    if not shown:
        return
    width = max(len(r["family"]) for r in shown)
    print(f"  {'family':<{width}}  {'area':<11}{'layout':>7}{'model':>7}{'diff':>6}{'util':>7}")
    for r in shown:
        model = "-" if r["model"] is None else str(r["model"])
        load = f"{util[r['family']]:.0%}" if r["family"] in util else ""
        print(
            f"  {r['family']:<{width}}  {(r['area'] or '-'):<11}{r['layout']:>7}{model:>7}{r['difference']:>+6}{load:>7}"
        )


EXPORT_FORMATS = ("glb", "usda", "usdc", "usdz")


def cmd_export(args: argparse.Namespace) -> int:
    from twin.errors import UnsupportedFormatError

    fmt = args.out.suffix.lower().lstrip(".")
    if fmt not in EXPORT_FORMATS:
        raise UnsupportedFormatError(fmt or args.out.name, EXPORT_FORMATS, args.out)
    problems = [
        f"{what} {str(path)!r}: not a file name this system can use (lone surrogate?)"
        for what, path in (("OUT", args.out), ("--animate", args.animate))
        if path is not None and not _encodable(path)
    ]
    if problems:
        raise InputError("scene export", problems)
    if fmt == "glb" and args.animate is not None:
        problems.append("--animate needs a USD output (.usda, .usdc or .usdz), not .glb")
    if args.animate is None and (args.since is not None or args.until is not None):
        problems.append("--from/--to choose the window of --animate STORE; give --animate too")
    if args.animate is not None and not args.animate.is_file():
        problems.append(f"--animate {args.animate}: no such event store file")
    since = _time("--from", args.since, problems)
    until = _time("--to", args.until, problems)
    if problems:
        raise InputError("scene export", problems)
    options = {
        "rail": not args.no_rail,
        "vehicles": not args.no_vehicles,
        "ports": not args.no_ports,
    }
    if fmt == "glb":
        from twin.scene.export import export_glb

        scene = _load(args.src)
        out = export_glb(scene, args.out, **options)
        extra = ""
    else:
        usd = _usd_module()
        scene = _load(args.src)
        anim = None
        if args.animate is not None:
            from twin.live.store import SQLiteStore

            with SQLiteStore(args.animate, readonly=True) as store:
                anim = usd.animation_from_store(scene, store, since, until)
        out = usd.export_usd(scene, args.out, animation=anim, **options)
        extra = "" if anim is None else _animation_note(anim)
    print(
        f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB, {len(scene)} nodes, "
        f"{len(scene.assets)} assets){extra}"
    )
    return 0


def _encodable(path: Path) -> bool:
    try:
        os.fsencode(path)
    except UnicodeError:
        return False
    return True


def _usd_module():
    try:
        import pxr  # noqa: F401

        from twin.scene import usd
    except ModuleNotFoundError as exc:
        raise InputError(
            "scene export",
            [f"USD export needs usd-core ({exc}); install the usd extra: pip install 'twin[usd]'"],
        ) from None
    return usd


def _time(option: str, text: str | None, problems: list[str]) -> float | None:
    """An option's UTC time (ISO 8601 or epoch seconds), or None; problems name the option."""
    if text is None:
        return None
    from twin.live.events import EventFormatError, parse_time

    try:
        return parse_time(float(text) if _is_number(text) else text)
    except EventFormatError as exc:
        problems.append(f"{option}: {exc.reason}")
        return None


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _animation_note(anim) -> str:
    from twin.live.events import format_time

    note = (
        f"; animated {format_time(anim.origin)} .. {format_time(anim.end)} "
        f"from {anim.events:,} events"
    )
    for why, n in sorted(anim.skipped.items()):
        note += f"\n  skipped {n:,} events: {why}"
    return note


def cmd_render(args: argparse.Namespace) -> int:
    try:
        from twin.physics.render import render_scene
    except ModuleNotFoundError as exc:
        raise InputError(
            "scene render",
            [f"rendering needs twin.physics and pybullet ({exc}); install the physics extra"],
        ) from None
    scene = _load(args.src)
    out = render_scene(
        scene,
        args.out,
        camera=args.camera,
        target=args.target,
        width=args.width,
        height=args.height,
    )
    print(f"wrote {out}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from twin.scene.demo import generate

    path = generate(args.folder)
    print(f"wrote {path} (+ assets/, process/)")
    return 0
