"""`twin whatif ...`: run scenario what-ifs on a process model from the command line.

    twin whatif run MODEL [--scenarios FILE] [--days D] [--warmup-days W] [--replications R]
                          [--seed S] [--engine reference|kernel] [--device cpu|cuda]
                          [--rules twin|pyscfabsim|smt2020] [--option KEY=VALUE ...]
                          [--json] [--csv FILE] [--workers N] [--worker-memory MIB]
                          [--start model|live --store DB [--at T]]

MODEL is an SMT2020-format folder or a scene folder (its ``process/``). A progress bar goes to
stderr; a table (or, with ``--json``, the full JSON) to stdout. ``--rules`` and ``--option``
come from ``twin.whatif.presets.add_arguments`` (any command that runs the engine adds them).
``--start live`` starts every scenario from the twin state held in an event store (now, or as
of ``--at``), through ``twin.whatif.start`` and the one tool-id map (``twin.process.toolmap``).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any

from twin.errors import InputError
from twin.whatif import presets

# runner.DEFAULT_WORKER_MEMORY_MB, written out: the runner is not imported to build the parser
DEFAULT_MEMORY_MB = 4096


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``whatif`` command group."""
    group = subparsers.add_parser("whatif", help="what-if simulations of the fab's process flow")
    sub = group.add_subparsers(dest="whatif_command", metavar="SUBCOMMAND")
    group.set_defaults(func=lambda args: group.print_help() or 2)

    run = sub.add_parser(
        "run",
        help="replications × scenarios with common random numbers; KPIs with 95 %% CIs",
        description="Run every scenario (plus the unchanged baseline) R times with common "
        "random numbers and report KPI means, confidence intervals and paired differences "
        "against the baseline. Scenario file format: docs/whatif.md.",
    )
    run.add_argument(
        "model",
        type=Path,
        metavar="MODEL",
        help="SMT2020-format folder, or scene folder (process/)",
    )
    run.add_argument("--scenarios", type=Path, help="YAML scenario file (default: baseline only)")
    run.add_argument(
        "--transport",
        choices=("table", "amhs"),
        default="table",
        help="table: fromto.txt (default); amhs: OHT fleet on --layout (docs/amhs.md)",
    )
    run.add_argument("--layout", help="scene folder, scene file or SMAT2022 .xlsx of the AMHS")
    run.add_argument("--vehicles", type=int, help="AMHS fleet size (default: the layout's)")
    run.add_argument("--days", type=float, default=30.0, help="simulated days (default 30)")
    run.add_argument(
        "--warmup-days", type=float, default=0.0, help="days deleted as warm-up (default 0)"
    )
    run.add_argument(
        "--replications", "-r", type=int, default=5, help="replications per scenario (default 5)"
    )
    run.add_argument("--seed", type=int, default=1, help="base random seed (default 1)")
    run.add_argument(
        "--engine",
        default="reference",
        help="simulation engine: reference (default, event by event) or kernel (batched Warp "
        "kernel, when installed)",
    )
    run.add_argument(
        "--device",
        default=None,
        help="where the engine runs: cpu, cuda, cuda:N (kernel engine; reference: cpu only)",
    )
    run.add_argument(
        "--workers",
        type=int,
        default=None,
        help="worker processes (default: one per CPU; 1 runs in this process)",
    )
    run.add_argument(
        "--worker-memory",
        type=int,
        default=None,
        metavar="MIB",
        help=f"memory each worker process may use, in MiB (default {DEFAULT_MEMORY_MB}; "
        "0: no limit); a worker past it fails its scenario",
    )
    run.add_argument(
        "--ray",
        metavar="ADDRESS",
        default=None,
        help="run on Ray: 'local' starts a private instance, 'auto' or ray://HOST:PORT joins a "
        "cluster (needs the ray extra)",
    )
    run.add_argument(
        "--start",
        choices=("model", "live"),
        default="model",
        help="model: the process model's initial WIP (default); live: the twin state in --store",
    )
    run.add_argument(
        "--store", type=_store_arg, help="event store (SQLite file or postgresql:// URL)"
    )
    run.add_argument(
        "--at",
        help="--start live as of this event time: ISO 8601 UTC (2026-01-31T08:00:00Z) or epoch s "
        "(default: the latest state)",
    )
    presets.add_arguments(run)
    run.add_argument(
        "--confidence", type=float, default=0.95, help="confidence level (default 0.95)"
    )
    run.add_argument("--json", action="store_true", help="print the full result as JSON")
    run.add_argument("--csv", type=Path, help="also write one row per scenario and KPI here")
    run.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    run.add_argument(
        "--dry-run",
        action="store_true",
        help="check the model and scenarios, list the scenarios (sweeps expanded), run nothing",
    )
    run.set_defaults(func=cmd_run)


def load_process_model(path: Path):
    """The FabModel of an SMT2020 folder or of a scene folder's ``process/``."""
    from twin.process import load_model

    if not path.exists():
        raise InputError(
            "model",
            [
                f"{path}: no such folder; give an SMT2020 or scene folder (the public SMT2020 "
                "HVLM: `twin datasets fetch smt2020-hvlm`, then `twin datasets path smt2020-hvlm`)"
            ],
        )
    model = load_model(path)
    if (path / "process").is_dir() and not (path / "part.txt").exists():
        model.name = path.resolve().name  # the scene's name, not "process"
    return model


def cmd_run(args: argparse.Namespace) -> int:
    from twin.whatif.runner import LocalProcessPool, RunConfig, Serial, get_engine, run_whatif
    from twin.whatif.scenarios import load_scenario_file

    presets.from_arguments(args, args.model)  # --rules and --option refused before any loading
    config = RunConfig(
        days=args.days,
        warmup_days=args.warmup_days,
        replications=args.replications,
        seed=args.seed,
        confidence=args.confidence,
    )
    config.validate()
    if args.workers is not None and args.workers < 1:
        raise InputError("--workers", [f"--workers {args.workers}: must be >= 1"])
    memory = DEFAULT_MEMORY_MB if args.worker_memory is None else args.worker_memory
    if not 0 <= memory <= 2**40:
        raise InputError(
            "--worker-memory", [f"--worker-memory {memory}: MiB in 0 (no limit)..{2**40}"]
        )
    at = _start_arguments(args)
    # rejects unknown or unavailable engines before anything is loaded
    engine = get_engine(args.engine, device=args.device)
    model = load_process_model(args.model)
    placement = _attach_amhs(args, model)
    start = (
        live_start(args.model, model, args.store, at, quiet=args.quiet)
        if (args.start == "live")
        else None
    )
    scenario_file = load_scenario_file(args.scenarios, model)
    scenarios = scenario_file.scenarios
    config.rules = presets.from_arguments(
        args, args.model, scenario_file.rules, scenario_file.options
    )
    if args.dry_run:
        sys.stdout.write(
            f"{model.name}: {len(scenarios)} scenario{'s' * (len(scenarios) != 1)} × "
            f"{config.replications} replications of {config.days:g} days = "
            f"{len(scenarios) * config.replications} runs on engine {engine.name}, "
            f"rules {_rules_line(config.rules)}\n"
        )
        for sc in scenarios:
            sys.stdout.write(f"  {sc.name}: {sc.describe()}\n")
        if placement is not None:  # the family reconciliation of --layout
            sys.stdout.write(placement.table() + "\n")
        return 0
    if args.ray is not None:
        from twin.whatif.ray_executor import RayExecutor

        address = None if args.ray == "local" else args.ray
        executor = RayExecutor(address=address, num_cpus=args.workers)
    elif args.workers == 1:
        executor = Serial()
    else:
        executor = LocalProcessPool(workers=args.workers, memory_mb=memory)
    result = run_whatif(
        model,
        scenarios,
        config,
        engine=engine,
        executor=executor,
        progress=not args.quiet,
        start=start,
    )
    if args.csv is not None:
        result.write_csv(args.csv)
    if args.json:
        json.dump(_finite(result.to_json()), sys.stdout, indent=1)
        sys.stdout.write("\n")
    else:
        sys.stdout.write(format_table(result))
    return 0


def _attach_amhs(args: argparse.Namespace, model: Any) -> Any:
    """--transport/--layout/--vehicles: the AMHS the scenarios start from (checked here); the
    family placement on the layout, or None."""
    if args.layout is None:
        if args.transport == "amhs" or args.vehicles is not None:
            raise InputError("twin whatif run", ["--transport amhs and --vehicles need --layout"])
        return None
    from twin.amhs.transport import AmhsSpec, attach

    return attach(
        model,
        AmhsSpec(layout=str(args.layout), enabled=args.transport == "amhs", vehicles=args.vehicles),
    )


def _start_arguments(args: argparse.Namespace) -> float | None:
    """Check --start/--store/--at before anything is loaded; the --at time (epoch s) or None."""
    from twin.live.events import EventFormatError, parse_time

    problems = []
    if args.start != "live":
        for name in ("store", "at"):
            if getattr(args, name) is not None:
                problems.append(f"--{name} goes with --start live")
    elif args.store is None:
        problems.append("--start live needs --store DB (the event store of the twin)")
    elif not isinstance(args.store, str) and not _is_file(args.store):
        problems.append(f"--store {_safe(args.store)}: no such event store")
    at = None
    if args.at is not None:
        text = str(args.at)
        try:
            at = parse_time(float(text) if _is_number(text) else text)
        except EventFormatError as exc:
            problems.append(f"--at: {_safe(exc.reason)}")
    if problems:
        raise InputError("twin whatif run", problems)
    return at


def live_start(model_path: Path, model: Any, store_path: Path, at: float | None, quiet=False):
    """The StartState of the twin in an event store, as of ``at`` (None: its latest state).
    Tools map by the scene's tool nodes when MODEL is a scene folder, else by the equipment
    recorded in the store's catalog."""
    from twin.live.events import format_time
    from twin.live.store import open_store
    from twin.live.store_pg import mask
    from twin.process.toolmap import ToolIdMap
    from twin.whatif.start import build_start

    where = f"--store {_safe(store_path if isinstance(store_path, Path) else mask(store_path))}"
    with open_store(store_path, readonly=True) as store:
        first = next(store.read_positioned(limit=1), None)
        if first is None:
            raise InputError("twin whatif run", [f"{where}: the store holds no events"])
        if at is not None and next(store.read_positioned(until=at, limit=1), None) is None:
            raise InputError(
                "twin whatif run",
                [
                    f"--at {format_time(at)} is before the first event of {where} "
                    f"(the first stored event is at {format_time(first[1].time)})"
                ],
            )
        state = store.state_at(at)
        catalog = store.catalog()
    if (model_path / "process").is_dir() and (model_path / "scene.yaml").exists():
        from twin.scene.load import load_scene

        tool_map = ToolIdMap.from_scene(load_scene(model_path), model)
    elif catalog is not None and catalog.equipment:
        tool_map = ToolIdMap.from_families(catalog.equipment, model, where=f"{where} catalog")
    else:
        raise InputError(
            "twin whatif run",
            [f"{where} records no equipment catalog: give the scene folder as MODEL to map tools"],
        )
    live = build_start(state, model, tool_map)
    if not quiet:
        when = "now" if at is None else f"as of {format_time(at)}"
        c = live.counts
        sys.stderr.write(
            f"live start ({when}, clock {format_time(state.clock)}): {c['lots']} lots "
            f"({c['queued']} queued, {c['processing']} processing, {c['hold']} held), "
            f"{c['tools']} tools ({c['down']} down)\n"
        )
        for note in live.notes:
            sys.stderr.write(f"  {note}\n")
    return live.start


def _store_arg(text: str) -> str | Path:
    """--store: a postgresql:// URL stays text, anything else is a path."""
    return text if "://" in text else Path(text)


def _is_file(path: Path) -> bool:
    try:
        return path.is_file()
    except (OSError, ValueError):  # a name the file system cannot hold (a lone surrogate)
        return False


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _safe(x: Any) -> str:
    """Text that any terminal can print (a lone surrogate is escaped)."""
    return str(x).encode("utf-8", "backslashreplace").decode("utf-8")


def _rules_line(rules: presets.RuleSet) -> str:
    """``pyscfabsim (default for an SMT2020 folder)``, with the options set on top."""
    return f"{rules.describe()} ({rules.chosen_by})"


def _finite(x: Any) -> Any:
    """NaN/inf → None, so the output is strict JSON."""
    if isinstance(x, dict):
        return {k: _finite(v) for k, v in x.items()}
    if isinstance(x, list):
        return [_finite(v) for v in x]
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x


# --- the terminal table ----------------------------------------------------------------------


def format_table(result, top_families: int = 5) -> str:
    """Per scenario and lot type: lots, throughput, cycle time ± CI, Δ vs baseline; then the
    most utilised families of the baseline in every scenario."""
    c = result.config
    pct = f"{100 * c.confidence:g} %"
    lines = [
        f"what-if {result.model}: engine {result.engine}, {c.days:g} days "
        f"(warm-up {c.warmup_days:g}), {c.replications} replication"
        f"{'s' * (c.replications != 1)}, seed {c.seed}, {len(result.scenarios)} scenario"
        f"{'s' * (len(result.scenarios) != 1)}",
        f"rules {_rules_line(result.rule_set)}",
        f"{result.events:,} events in {result.wall_seconds:.1f} s; intervals are {pct} "
        "Student-t, differences paired by replication (common random numbers)",
    ]
    suggested = result.suggested_warmup_days()
    if suggested is not None:
        hint = " (longer than the warm-up used)" if suggested > c.warmup_days else ""
        lines.append(
            f"MSER-5 on the baseline's fab WIP suggests a warm-up of {suggested:g} days{hint}"
        )
    lines.append("")
    est = {s.name: result.estimates(s.name) for s in result.scenarios}
    diff = {s.name: result.differences(s.name) for s in result.scenarios[1:]}
    types = sorted(
        {k.split(".")[1] for k in est[result.baseline] if k.startswith("lot_types.")},
        key=lambda t: (t.startswith(("Hot", "SuperHot")), t),
    )
    head = ("scenario", "lot type", "lots", "per day", "cycle time d", f"± ({pct})", "Δ vs base")
    rows = []
    for sc in result.scenarios:
        for t in types:
            e = est[sc.name]
            ct = e.get(f"lot_types.{t}.cycle_time_days.mean")
            d = diff.get(sc.name, {}).get(f"lot_types.{t}.cycle_time_days.mean")
            digits = _digits(ct)
            rows.append(
                (
                    sc.name,
                    t,
                    _num(e.get(f"lot_types.{t}.lots_completed"), 1),
                    _num(e.get(f"lot_types.{t}.throughput_per_day"), 2),
                    _num(ct, digits),
                    _hw(ct, digits),
                    _delta(d, digits) if d else "",
                )
            )
    lines += _grid(head, rows, left=2)
    base = est[result.baseline]
    fams = sorted(
        (k.split(".")[1] for k in base if k.startswith("families.") and k.endswith(".utilisation")),
        key=lambda f: -_mean(base.get(f"families.{f}.utilisation")),
    )[:top_families]
    if fams:
        lines += ["", f"most utilised families (share of tool time, {pct} CI; Δ paired)"]
        head = ("scenario", *fams)
        rows = []
        for sc in result.scenarios:
            cells = []
            for f in fams:
                u = est[sc.name].get(f"families.{f}.utilisation")
                d = diff.get(sc.name, {}).get(f"families.{f}.utilisation")
                cell = f"{_num(u, 3)} ± {_hw(u, 3)}"
                cells.append(cell + (f" Δ {_delta(d, 3)}" if d else ""))
            rows.append((sc.name, *cells))
        lines += _grid(head, rows)
    if len(result.scenarios) > 1:
        lines += ["", "* the difference's interval excludes zero", "scenarios:"]
        for sc in result.scenarios[1:]:
            lines.append(f"  {sc.name}: {sc.describe()}")
    return "\n".join(lines) + "\n"


def _digits(e) -> int:
    """Decimals that show about three significant digits of an estimate's mean."""
    if e is None or not math.isfinite(e.mean) or e.mean == 0:
        return 2
    return min(4, max(0, 3 - math.ceil(math.log10(abs(e.mean) + 1e-300))))


def _mean(e) -> float:
    return e.mean if e is not None and math.isfinite(e.mean) else -math.inf


def _num(e, digits: int) -> str:
    if e is None or not math.isfinite(e.mean):
        return "-"
    return f"{e.mean:,.{digits}f}"


def _hw(e, digits: int) -> str:
    if e is None or not math.isfinite(e.half_width):
        return "-"
    return f"{e.half_width:.{digits}f}"


def _delta(d, digits: int) -> str:
    if not math.isfinite(d.mean):
        return "-"
    hw = f" ± {d.half_width:.{digits}f}" if math.isfinite(d.half_width) else ""
    mark = " *" if d.excludes_zero() else ""
    return f"{d.mean:+.{digits}f}{hw}{mark}"


def _grid(head: tuple[str, ...], rows: list[tuple[str, ...]], left: int = 1) -> list[str]:
    """Columns padded to their widest cell; the first ``left`` columns left-aligned."""
    widths = [max(len(str(r[i])) for r in [head, *rows]) for i in range(len(head))]
    fmt = "  ".join(f"{{:{'<' if i < left else '>'}{w}}}" for i, w in enumerate(widths))
    out = [fmt.format(*head), fmt.format(*("-" * w for w in widths))]
    out += [fmt.format(*r) for r in rows]
    return out
