"""`twin calibrate`: estimate a fab model's parameters from the event log; report the drift."""

from __future__ import annotations

import argparse
from typing import Any


def register(sub: Any) -> None:
    p = sub.add_parser(
        "calibrate",
        help="estimate the model's parameters from the event store and report the drift",
        description="Estimate processing time per tool family, time to failure and to repair "
        "per family (E10 unscheduled down spells), PM duration and interval and setup time per "
        "family, transport time (overall and per from-to area), rework and sampling rate per "
        "step, scrap and release rate per product from an event store, each with n and a 95 % "
        "interval. Parameters with too few samples keep their "
        "design value (flagged thin). The drift report lists the parameters whose interval "
        "excludes the design value first, ordered by a proxy of their effect on cycle time. "
        "See docs/forecast.md.",
    )
    p.add_argument("--store", required=True, help="SQLite event store (read only)")
    p.add_argument(
        "--model",
        required=True,
        help="scene folder (its process model; its tools map events to families) or SMT2020 "
        "folder (the store's recorded catalog maps the tools)",
    )
    p.add_argument("--out", help="folder for the calibrated model (SMT2020 format) and report")
    p.add_argument("--since", help="window start: ISO 8601 UTC or epoch seconds (default: first)")
    p.add_argument("--until", help="window end: ISO 8601 UTC or epoch seconds (default: last)")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(func=_calibrate)


def _calibrate(args: argparse.Namespace) -> int:
    from twin.errors import InputError

    from .report import as_json, as_text
    from .source import calibrate_store, parse_when

    problems = []
    when = {}
    for opt in ("since", "until"):
        try:
            when[opt] = parse_when(getattr(args, opt), f"--{opt}")
        except InputError as exc:
            problems += exc.problems
    if not problems and None not in when.values() and not when["since"] < when["until"]:
        problems.append(f"--since {args.since} must be before --until {args.until}")
    if problems:
        raise InputError("twin calibrate", problems)
    cal, model = calibrate_store(args.store, args.model, when["since"], when["until"])
    extra: dict[str, Any] = {}
    if args.out:
        from .write import write_calibrated

        extra["model"] = str(write_calibrated(model, cal, args.model, args.out))
    text = as_json(cal, extra) if args.json else as_text(cal)
    if args.out:
        from pathlib import Path

        (Path(args.out) / ("drift.json" if args.json else "drift.txt")).write_text(text + "\n")
    print(text)
    return 0
