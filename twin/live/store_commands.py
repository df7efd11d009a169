"""`twin store verify` and `twin store backup`: check a durable event store's hash chain and
head, and copy a live store safely. docs/store.md explains what each line means."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from twin.errors import InputError


def register(sub: Any) -> None:
    p = sub.add_parser(
        "store",
        help="verify or back up a durable event store",
        description="Check a twin event store's hash chain and head file, or copy it while a "
        "twin is ingesting. See docs/store.md.",
    )
    actions = p.add_subparsers(dest="store_action", metavar="SUBCOMMAND")
    v = actions.add_parser(
        "verify",
        help="walk the whole hash chain and the head file; one line, exit 1 if broken",
        description="Recompute every event's hash, compare the last with the head file "
        "(STORE.head) and run SQLite's quick check. Prints one line: OK with the number of "
        "events and the head hash, or BROKEN with the first position that breaks (exit 1). "
        "Read-only: safe while a twin writes to the store.",
    )
    v.add_argument(
        "store", metavar="STORE", help="SQLite event store, or postgresql://... (chain only)"
    )
    v.add_argument(
        "--reset-head",
        action="store_true",
        help="accept the store as it is now: if its chain verifies, rewrite STORE.head at its "
        "last event (after a loss you accept, or for a copy made without its head file); a "
        "store made before chained stores gets its chain computed",
    )
    v.set_defaults(func=_verify)
    b = actions.add_parser(
        "backup",
        help="copy a store (also while it is being written) and its head, verified",
        description="Copy STORE to DEST with SQLite's online backup API, a consistent copy "
        "even while a twin ingests; then verify the copy and write DEST.head. DEST must not "
        "exist.",
    )
    b.add_argument("store", metavar="STORE", help="SQLite event store")
    b.add_argument("dest", type=Path, metavar="DEST", help="the new copy (must not exist)")
    b.set_defaults(func=_backup)
    p.set_defaults(func=lambda args: _usage(p))


def _usage(p: argparse.ArgumentParser) -> int:
    p.print_help()
    return 2


def _verify(args: argparse.Namespace) -> int:
    from twin.live.store import is_url, reset_head, verify

    if is_url(args.store):  # PostgreSQL: the chain per row; no head file, no SQLite check
        if args.reset_head:
            raise InputError("twin store verify", ["--reset-head: a PostgreSQL store has no "
                                                   "head file; verify it without the option"])  # fmt: skip
        from twin.live.store import open_store

        store = open_store(args.store, readonly=True)
        try:
            verdict = store.verify()  # type: ignore[attr-defined]
        finally:
            store.close()
        print(verdict.line())
        return 0 if verdict.ok else 1
    args.store = Path(args.store)
    verdict = reset_head(args.store) if args.reset_head else verify(args.store)
    line = verdict.line()
    if args.reset_head and verdict.ok:
        line += " (head file written)"
    print(line)
    return 0 if verdict.ok else 1


def _backup(args: argparse.Namespace) -> int:
    from twin.live.store import backup, is_url

    if is_url(args.store):
        raise InputError("twin store backup", ["a PostgreSQL store is backed up with "
            "PostgreSQL's own tools (pg_dump -Fc, or pg_basebackup with WAL archiving; see "
            "docs/deploy.md, \"Backup and retention\"); then `twin store verify URL` checks "
            "the restored copy's chain"])  # fmt: skip
    args.store = Path(args.store)
    verdict = backup(args.store, args.dest)
    print(f"backed up to {verdict.line()}")
    return 0
