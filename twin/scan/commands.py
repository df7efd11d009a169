"""`twin scan ...`: synthesise a scan of a scene, check a scan against the scene (as-built)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from twin.errors import InputError


def register(subparsers: argparse._SubParsersAction) -> None:
    group = subparsers.add_parser("scan", help="as-built check: point-cloud scans vs the scene")
    sub = group.add_subparsers(dest="scan_command", metavar="SUBCOMMAND", required=True)
    src_help = "scene folder (holding scene.yaml) or SMAT2022 .xlsx workbook"

    align = sub.add_parser(
        "align", help="register a PLY/PCD/XYZ scan against the scene; report per-tool deviations"
    )
    align.add_argument("src", type=Path, metavar="SRC", help=src_help)
    align.add_argument(
        "scan", type=Path, metavar="SCAN", help="point cloud: .ply, .pcd or .xyz, in metres"
    )
    align.add_argument(
        "--tolerance-mm", type=float, default=50.0, help="flag tools moved more (default 50)"
    )
    align.add_argument(
        "--tolerance-deg", type=float, default=1.0, help="flag tools turned more (default 1)"
    )
    align.add_argument(
        "--init",
        choices=("auto", "global", "identity"),
        default="auto",
        help="auto: try global registration and the identity (default); identity: the scan is "
        "already in fab coordinates",
    )
    align.add_argument("--json", action="store_true", help="print the report as JSON")
    align.add_argument(
        "--write-scene",
        type=Path,
        metavar="OUT_DIR",
        help="write the scene, flagged tools moved to where the scan shows them, as a folder",
    )
    align.set_defaults(func=cmd_align)

    synth = sub.add_parser(
        "synth", help="synthesise a realistic scan of a scene (with moved tools)"
    )
    synth.add_argument("src", type=Path, metavar="SRC", help=src_help)
    synth.add_argument(
        "out", type=Path, metavar="OUT", help="output .ply, .pcd or .xyz (truth beside it)"
    )
    synth.add_argument("--points", type=int, default=200_000, help="points in the scan")
    synth.add_argument(
        "--move",
        action="append",
        default=[],
        metavar="TOOL:dx,dy,yaw",
        help="move a tool by dx, dy (m) and yaw (deg) before scanning; repeatable",
    )
    synth.add_argument("--noise-mm", type=float, default=3.0, help="range noise sigma (mm)")
    synth.add_argument(
        "--frame",
        default="0,0,0,0",
        metavar="dx,dy,dz,yaw",
        help="express the scan in a scanner frame offset by dx,dy,dz (m) and yaw (deg)",
    )
    synth.add_argument(
        "--position",
        action="append",
        default=None,
        metavar="X,Y",
        help="a scan position in fab coordinates (m); repeatable (default: one per 15 m cell)",
    )
    synth.add_argument("--outliers", type=float, default=0.0, help="fraction of stray points")
    synth.add_argument("--seed", type=int, default=0, help="random seed")
    synth.set_defaults(func=cmd_synth)


def cmd_align(args: argparse.Namespace) -> int:
    from twin.scan.align import AlignConfig, align_scan
    from twin.scene.load import load_scene

    scene = load_scene(args.src)
    config = AlignConfig(
        tolerance_mm=args.tolerance_mm, tolerance_deg=args.tolerance_deg, init=args.init
    )
    result = align_scan(args.scan, scene, config)
    written = None
    if args.write_scene is not None:
        from twin.scene.folder import save_folder

        moved = result.apply(scene)
        written = save_folder(scene, args.write_scene)
    if args.json:
        out = result.to_dict()
        if written is not None:
            out["scene_written"] = str(written)
        print(json.dumps(out, indent=2))
        return 0
    print(
        f"scan {args.scan}: {result.points} points, registered by {result.init} start, "
        f"fitness {result.fitness:.1%}, rmse {result.rmse_mm:.1f} mm, "
        f"{result.timings['total']:.1f} s"
    )
    print(f"{'id':<12} {'status':<11} {'points':>7} {'dx m':>8} {'dy m':>8} {'yaw deg':>8}")
    for t in result.tools:
        note = "" if t.constrained else "  (one face seen: weak along it)"
        print(
            f"{t.id:<12} {t.status:<11} {t.points:>7} {t.dx:>8.3f} {t.dy:>8.3f} "
            f"{t.dyaw_deg:>8.2f}{note}"
        )
    flagged = ", ".join(t.id for t in result.flagged) or "none"
    print(f"flagged beyond {args.tolerance_mm:g} mm / {args.tolerance_deg:g} deg: {flagged}")
    if written is not None:
        print(f"wrote {written} ({moved} tools moved)")
    return 0


def cmd_synth(args: argparse.Namespace) -> int:
    from twin.scan.synth import Move, ScanConfig, synthesize
    from twin.scene.load import load_scene

    try:
        frame = tuple(float(v) for v in args.frame.split(","))
        if len(frame) != 4:
            raise ValueError
    except ValueError:
        raise InputError(
            "--frame", [f"{args.frame!r} is not dx,dy,dz,yaw (m, m, m, deg)"]
        ) from None
    positions, problems = [], []
    for text in args.position or []:
        try:
            x, y = (float(v) for v in text.split(","))
        except ValueError:
            problems.append(f"{text!r} is not X,Y (metres)")
        else:
            positions.append((x, y))
    if problems:
        raise InputError("--position", problems)
    moves = [Move.parse(m) for m in args.move]
    scene = load_scene(args.src)
    config = ScanConfig(
        points=args.points,
        noise_mm=args.noise_mm,
        outliers=args.outliers,
        frame=frame,  # type: ignore[arg-type]
        positions=positions or None,
        seed=args.seed,
    )
    scan = synthesize(scene, config, moves)
    cloud, truth = scan.write(args.out)
    print(f"wrote {cloud} ({len(scan.points)} points, {len(scan.positions)} scan positions)")
    print(f"wrote {truth} (moved tools and the scan → scene transform)")
    return 0
