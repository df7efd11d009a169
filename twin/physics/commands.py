"""`twin physics ...` commands: run OHT vehicles on a scene's rail network."""

from __future__ import annotations

import argparse
import json
import math


def register(subparsers: argparse._SubParsersAction) -> None:
    group = subparsers.add_parser("physics", help="the physics world and OHT transport")
    sub = group.add_subparsers(dest="physics_command", metavar="SUBCOMMAND")
    run = sub.add_parser(
        "run",
        help="run OHT vehicles doing random transfers between ports",
        description="Move N vehicles of a scene for T simulated seconds doing random transfers "
        "between ports (move to the source, hoist, move to the destination, set down).",
    )
    run.add_argument("src", metavar="SRC", help="scene folder or SMAT2022 .xlsx workbook")
    run.add_argument(
        "--vehicles",
        type=int,
        default=None,
        help="vehicles to use (default: the scene's; more are placed on free rail)",
    )
    run.add_argument("--seconds", type=float, default=3600.0, help="simulated seconds (3600)")
    run.add_argument("--seed", type=int, default=0, help="random seed (0)")
    run.add_argument("--tick", type=float, default=None, help="decision period, s (0.5)")
    run.add_argument("--json", action="store_true", help="print the figures as JSON")
    run.set_defaults(func=_run)
    place = sub.add_parser(
        "place",
        help="can a tool of this size (or asset) stand here with this clearance?",
        description="Clearance check against tools, stockers and rails in the pybullet world.",
    )
    place.add_argument("src", metavar="SRC", help="scene folder or SMAT2022 .xlsx workbook")
    what = place.add_mutually_exclusive_group(required=True)
    what.add_argument("--size", type=_floats(3), help="box size sx,sy,sz in m")
    what.add_argument("--asset", help="an asset id of the scene")
    place.add_argument(
        "--at",
        type=_floats(2, 3),
        required=True,
        help="x,y[,yaw] (m, m, degrees, as everywhere a person types an angle)",
    )
    place.add_argument("--margin", type=float, default=0.0, help="clearance needed, m (0)")
    place.add_argument("--json", action="store_true", help="print the answer as JSON")
    place.set_defaults(func=_place)
    group.set_defaults(func=lambda args: (group.print_help(), 0)[1])


def _floats(*counts: int):
    def parse(text: str) -> tuple[float, ...]:
        try:
            values = tuple(float(v) for v in text.split(","))
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not comma-separated numbers") from None
        if len(values) not in counts or not all(math.isfinite(v) for v in values):
            raise argparse.ArgumentTypeError(
                f"{text!r}: expected {' or '.join(map(str, counts))} finite numbers"
            )
        return values

    return parse


def _place(args: argparse.Namespace) -> int:
    from twin.physics.world import PhysicsWorld
    from twin.scene.load import load_scene

    scene = load_scene(args.src)
    x, y, *rest = args.at
    pose = (x, y, 0.0, math.radians(rest[0]) if rest else 0.0)  # the world works in radians
    with PhysicsWorld(scene, vehicles=False) as world:
        res = world.can_place(args.asset or args.size, pose, args.margin)
    out = {
        "ok": res.ok,
        "distance_m": None if math.isinf(res.distance) else round(res.distance, 4),
        "nearest": res.nearest,
        "blocking": list(res.blocking),
        "margin_m": args.margin,
    }
    if args.json:
        print(json.dumps(out, indent=2))
    else:
        verdict = "fits" if res.ok else "does not fit"
        near = f"; nearest {res.nearest} at {out['distance_m']} m" if res.nearest else ""
        print(f"{verdict} with {args.margin} m clearance{near}")
        if res.blocking:
            print("blocked by: " + ", ".join(res.blocking))
    return 0 if res.ok else 3


def _run(args: argparse.Namespace) -> int:
    from twin.errors import InputError
    from twin.physics.oht import OhtConfig, OhtSim
    from twin.scene.load import load_scene

    problems = []
    if not (math.isfinite(args.seconds) and args.seconds > 0):
        problems.append(f"--seconds must be > 0, got {args.seconds}")
    if args.vehicles is not None and args.vehicles < 1:
        problems.append(f"--vehicles must be >= 1, got {args.vehicles}")
    if problems:
        raise InputError("twin physics run", problems)
    scene = load_scene(args.src)
    ids = [n.id for n in scene.nodes("vehicle")]
    if args.vehicles is not None:
        if args.vehicles > len(ids):  # more than the scene brings: put the rest on free rail
            from twin.physics.fleet import add_vehicles

            ids += add_vehicles(scene, args.vehicles - len(ids), seed=args.seed)
        ids = ids[: args.vehicles]
    config = OhtConfig() if args.tick is None else OhtConfig(tick=args.tick)
    sim = OhtSim(scene, config, vehicles=ids, seed=args.seed, random_transfers=True)
    sim.advance(args.seconds)
    out = sim.summary()
    if args.json:
        print(json.dumps(out, indent=2))
    else:
        for key, value in out.items():
            if key != "deadlocked_vehicles":
                print(f"{key:>22}: {value}")
        for cycle in out["deadlocked_vehicles"]:
            print(f"{'deadlock':>22}: {' -> '.join(cycle)}")
    return 0
