"""`twin ingest` and `twin state`: feed events into a durable store, and ask it for the state."""

from __future__ import annotations

import argparse
import gc
import json
import signal
import sys
from pathlib import Path
from typing import Any

from twin.errors import InputError


def store_arg(text: str) -> str | Path:
    """--store: a postgresql:// URL stays text, anything else is a path (store imported late)."""
    from twin.live.store import store_arg

    return store_arg(text)


def register(sub: Any) -> None:
    p = sub.add_parser(
        "ingest",
        help="validate, store and apply a stream of fab events",
        description="Read events from a JSONL file or an MQTT broker into a durable twin store. "
        "A file source exits when exhausted; MQTT runs until interrupted (or --idle-exit).",
    )
    p.add_argument("--from", dest="src", required=True, help="FILE.jsonl or mqtt://HOST:PORT/TOPIC")
    p.add_argument(
        "--store", required=True, type=store_arg,
        help="SQLite event store (created if missing) or postgresql://user:pw@host/db",
    )  # fmt: skip
    p.add_argument("--scene", help="scene folder or SMAT2022 .xlsx: enables reference checks")
    p.add_argument(
        "--process",
        help="SMT2020-format folder for route/family checks (default: the scene folder's process/)",
    )
    p.add_argument(
        "--speed",
        type=float,
        help="replay a file at this many event-time seconds per wall-clock second (× real time; default: as fast as possible)",
    )
    p.add_argument("--follow", action="store_true", help="keep reading a file that grows")
    p.add_argument("--client-id", default="twin-ingest", help="MQTT client id (keeps the session)")
    p.add_argument("--batch", type=int, default=2000, help="events per durable commit")
    p.add_argument("--snapshot-every", type=int, default=100_000, help="events between snapshots")
    p.add_argument("--idle-exit", type=float, help="stop after this many seconds without events")
    p.add_argument("--synchronous", default="FULL", help="SQLite synchronous: FULL or NORMAL")
    p.add_argument(
        "--max-future",
        type=float,
        default=366 * 86_400.0,
        help="seconds an event's time may be ahead of this machine's clock (default a year; "
        "'inf' for none but year 9999)",
    )
    p.add_argument(
        "--window", type=int, default=1000, help="reorder window: seqs past the highest seen"
    )
    p.add_argument(
        "--overlap",
        action="store_true",
        help="commit each batch in a writer thread while the next is applied (can pay where a "
        "second core is free; default: commit on the ingest thread)",
    )
    p.add_argument(
        "--quiet", action="store_true", help="no summary line at the end (errors are still printed)"
    )
    p.set_defaults(func=_ingest)

    s = sub.add_parser(
        "state",
        help="the twin state held in an event store, now or as of a time",
        description="Rebuild the twin state from the store's latest snapshot plus replay.",
    )
    s.add_argument(
        "--store",
        required=True,
        type=store_arg,
        help="event store to read: SQLite file or postgresql:// URL",
    )
    s.add_argument("--at", help="event time, ISO 8601 UTC (e.g. 2026-01-31T08:00:00Z) or epoch s")
    s.add_argument("--json", action="store_true", help="print JSON")
    s.set_defaults(func=_state)


def _catalog(scene_src: str | None, process_dir: str | None) -> Any:
    if scene_src is None:
        if process_dir is not None:
            raise InputError("twin ingest", ["--process needs --scene (the tools it runs on)"])
        return None
    from twin.live.catalog import Catalog
    from twin.scene.load import load_scene

    scene = load_scene(scene_src)
    model = None
    process_dir = process_dir or scene.metadata.get("process_dir")  # a scene folder's process/
    if process_dir is not None:
        from twin.process import load_model

        model = load_model(process_dir)
    return Catalog.from_scene(scene, model)


def _ingest(args: argparse.Namespace) -> int:
    from twin.live.order import ReorderConfig
    from twin.live.store import open_store
    from twin.live.sync import SyncConfig, Synchroniser

    cfg = SyncConfig(
        batch=args.batch,
        snapshot_every=args.snapshot_every,
        reorder=ReorderConfig(window=args.window),
        overlap=args.overlap,
        max_future=None if args.max_future == float("inf") else args.max_future,
    )
    catalog = _catalog(args.scene, args.process)
    source: Any
    if args.src.startswith("mqtt://"):
        from twin.live.mqtt import MqttConfig, MqttSource

        source = MqttSource(MqttConfig.from_url(args.src, client_id=args.client_id))
    else:
        from twin.live.sources import JsonlFileSource

        source = JsonlFileSource(args.src, speed=args.speed, follow=args.follow)
    source = _with_progress(source, quiet=args.quiet)
    stopping = False

    def stop(signum: int, frame: Any) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    with open_store(args.store, synchronous=args.synchronous) as store:
        sync = Synchroniser(store, catalog, cfg=cfg)
        # The catalog, the recovered state and the loaded modules live for the whole run:
        # frozen, the collector's full passes skip them (they would be pauses in the stream).
        gc.freeze()
        try:
            stats = sync.run(source, stop=lambda: stopping, idle_exit=args.idle_exit)
        finally:
            source.close()
    if not args.quiet:
        print(
            f"ingested {stats.received} messages: {stats.accepted} accepted, "
            f"{stats.rejected} dead letters, {stats.duplicates} duplicates, {stats.gaps} gaps; "
            f"store {getattr(store, 'shown', args.store)} now holds {sync.pos} events"
        )
    return 0


class _Progress:
    """A source wrapper that counts what it hands on in a progress line (on a terminal only:
    tqdm's disable=None), for `twin ingest`, whose total is unknown (a stream)."""

    def __init__(self, source: Any, file: Any = None, disable: bool | None = None) -> None:
        from tqdm import tqdm

        self.source = source
        self.bar = tqdm(
            unit=" msg", desc="ingest", file=file or sys.stderr, disable=disable, leave=False
        )

    def receive(self, max_items: int, timeout: float) -> list:
        got = self.source.receive(max_items, timeout)
        if got:
            self.bar.update(len(got))
        return got

    @property
    def exhausted(self) -> bool:
        return self.source.exhausted

    def close(self) -> None:
        self.bar.close()
        self.source.close()

    def __getattr__(self, name: str) -> Any:  # confirm, heartbeats... of an MQTT source
        return getattr(self.source, name)


def _with_progress(source: Any, *, quiet: bool) -> Any:
    return source if quiet or not sys.stderr.isatty() else _Progress(source)


def _state(args: argparse.Namespace) -> int:
    from twin.live.events import EventFormatError, format_time, parse_time
    from twin.live.store import is_url, open_store

    if not is_url(args.store) and not args.store.is_file():
        raise InputError("twin state", [f"{args.store}: no such event store"])
    at = None
    if args.at is not None:
        try:
            at = parse_time(float(args.at) if _is_number(args.at) else args.at)
        except EventFormatError as exc:
            raise InputError("twin state", [f"--at: {exc.reason}"]) from None
    with open_store(args.store, readonly=True) as store:
        state = store.state_at(at)
        out = state.summary()
        out["dead_letters"] = store.dead_letter_count()
        out["events_stored"] = store.count()
    out["at"] = format_time(at) if at is not None else None
    if args.json:  # times as ISO 8601 UTC, as the API gives them
        out["clock"] = format_time(out["clock"]) if out["clock"] is not None else None
        json.dump(out, sys.stdout, indent=2, sort_keys=False, default=str)
        print()
        return 0
    print(
        f"revision {out['revision']}  events applied {out['events_applied']}  "
        f"dead letters {out['dead_letters']}  clock {format_time(out['clock'])}"
    )
    print(
        f"WIP {out['wip']}  lots completed {out['lots_completed']}  scrapped "
        f"{out['lots_scrapped']}  moves/h {out['moves_per_hour']}  gaps {out['gaps']}"
    )
    ct = out["mean_cycle_time_s"]
    if ct is not None:
        print(f"mean cycle time {ct / 3600:.2f} h")
    for fam, u in out["utilisation_by_family"].items():
        print(f"  utilisation {fam:<24} {u:6.1%}")
    states: dict[str, int] = {}
    for e in out["equipment"].values():
        states[str(e["state"])] = states.get(str(e["state"]), 0) + 1
    print("equipment by E10 state: " + ", ".join(f"{k} {v}" for k, v in sorted(states.items())))
    return 0


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True
