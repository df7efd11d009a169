"""`twin schema events` and `twin schema asyncapi`: print the event contract generated from
the event registry (the same documents as the API's GET /schemas/events.json and
GET /asyncapi.json). docs/events.md explains them."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any


def register(sub: Any) -> None:
    p = sub.add_parser(
        "schema",
        help="print the event JSON Schema or the AsyncAPI document",
        description="Print a document generated from the twin's event registry: the JSON "
        "Schema (draft 2020-12) of a fab event, or the AsyncAPI 3.0 document of the MQTT "
        "topics and the WebSocket stream. See docs/events.md.",
    )
    docs = p.add_subparsers(dest="schema_document", metavar="SUBCOMMAND")
    for name, help_text in (
        ("events", "JSON Schema (draft 2020-12) of one event: a oneOf by type"),
        ("asyncapi", "AsyncAPI 3.0: MQTT events, heartbeats, acks, presence; WebSocket stream"),
    ):
        d = docs.add_parser(name, help=help_text, description=help_text + ".")
        d.add_argument(
            "--indent", type=int, default=2, help="spaces per level (0: one line; default 2)"
        )
        d.set_defaults(func=_print, document=name)
    p.set_defaults(func=lambda args: _usage(p))


def _usage(p: argparse.ArgumentParser) -> int:
    p.print_help()
    return 2


def _print(args: argparse.Namespace) -> int:
    from twin.errors import InputError
    from twin.live.contract import asyncapi, event_schema

    if not 0 <= args.indent <= 16:
        raise InputError("--indent", [f"{args.indent}: use 0 (one line) to 16"])
    doc = event_schema() if args.document == "events" else asyncapi()
    sys.stdout.write(json.dumps(doc, indent=args.indent or None, ensure_ascii=False) + "\n")
    return 0
