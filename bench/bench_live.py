"""Live-sync benchmark: apply rate, durable ingest rate, MQTT end-to-end rate and latency.

Run: .venv/bin/python bench/bench_live.py [--events 250000] [--mqtt-events 60000]
     [--latency-runs 5] [--stages] [--only apply|store|stages|mqtt|latency]
Needs mosquitto (/usr/sbin/mosquitto) for the MQTT rows; it starts its own broker.
Targets (issue 4): apply >= 200,000 ev/s on one core; durable ingest >= 50,000 ev/s;
MQTT end to end >= 20,000 ev/s; p99 publish-to-state latency <= 50 ms at 5,000 ev/s.
Each rate is also given per CPU second (time.process_time of this process: for MQTT the twin's
network and ingest threads, not the publisher or the broker), since wall time on a shared
machine includes other people's work; quote it with the load average printed.
"""

from __future__ import annotations

import argparse
import gc
import multiprocessing as mp
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from twin.live import codec
from twin.live.events import Event, check_event, parse_event, parse_time
from twin.live.mqtt import MqttConfig, MqttSink, MqttSource
from twin.live.order import Released, ReorderBuffer
from twin.live.sources import Message
from twin.live.state import TwinState, apply
from twin.live.store import SQLiteStore
from twin.live.sync import SyncConfig, Synchroniser, _expand
from twin.live.synthetic import StreamConfig, synthetic_catalog, synthetic_stream
from twin.live.validate import validate, validate_apply

ROWS: list[tuple[str, float, str, str]] = []


def row(name: str, value: float, unit: str, target: str) -> None:
    ROWS.append((name, value, unit, target))
    print(f"  {name:<48} {value:>12,.1f} {unit:<6} (target {target})", flush=True)


def bench_apply(events: list[Event], catalog) -> None:
    best = best_cpu = 0.0
    for _ in range(3):
        s = TwinState(catalog)
        t, c = time.perf_counter(), time.process_time()
        for e in events:
            apply(s, e)
        best = max(best, len(events) / (time.perf_counter() - t))
        best_cpu = max(best_cpu, len(events) / (time.process_time() - c))
    row("apply (in process, one core), wall", best, "ev/s", ">= 200,000")
    row("apply (in process, one core), per CPU second", best_cpu, "ev/s", ">= 200,000")
    s = TwinState(catalog)
    t = time.perf_counter()
    for e in events:
        if validate(e, s, checked=True) is None:
            apply(s, e)
    row("validate + apply, wall", len(events) / (time.perf_counter() - t), "ev/s", "-")


def bench_store(events: list[Event], catalog, tmp: Path) -> None:
    for sync_mode in ("FULL", "NORMAL"):
        path = tmp / f"store-{sync_mode}.db"
        with SQLiteStore(path, synchronous=sync_mode) as st:
            t, c = time.perf_counter(), time.process_time()
            for i in range(0, len(events), 2000):
                st.write(events[i : i + 2000])
            rate = len(events) / (time.perf_counter() - t)
            cpu = len(events) / (time.process_time() - c)
        row(f"SQLite append, 2000/commit, sync={sync_mode}, wall", rate, "ev/s", ">= 50,000")
        row(f"SQLite append, 2000/commit, sync={sync_mode}, per CPU s", cpu, "ev/s", ">= 50,000")
    lines = [e.to_json() for e in events]
    for overlap in (False, True):  # run() as `twin ingest` runs it; with `--overlap`
        with SQLiteStore(tmp / f"pipeline-{overlap}.db") as st:
            cfg = SyncConfig(batch=2000, snapshot_every=100_000, overlap=overlap)
            sync = Synchroniser(st, catalog, cfg=cfg)
            t, c = time.perf_counter(), time.process_time()
            sync.run(_TextSource(lines))
            rate = len(lines) / (time.perf_counter() - t)
            cpu = len(lines) / (time.process_time() - c)
            assert sync.pos == len(lines), "every event stored"
        how = ", writer thread" if overlap else ""
        row(f"durable ingest JSON text -> state (FULL){how}, wall", rate, "ev/s", ">= 50,000")
        row(f"durable ingest JSON text -> state (FULL){how}, per CPU s", cpu, "ev/s", ">= 50,000")


def bench_stages(events: list[Event], catalog, tmp: Path) -> None:
    """CPU time per event of each stage of the durable row, each run alone over the same input
    (so their sum is close to, not exactly, the pipeline's): where the time goes."""
    lines = [e.to_json() for e in events]
    n = len(lines)
    stages: list[tuple[str, float]] = []

    def stage(name: str, fn) -> object:
        c = time.process_time()
        out = fn()
        stages.append((name, (time.process_time() - c) / n * 1e6))
        return out

    msgs = stage("source: one Message per text", lambda: [Message(x) for x in lines])
    stage("  items (JSON-array check)", lambda: _expand(msgs))
    dicts = stage("parse: orjson text -> dict", lambda: [codec.fast_loads(x) for x in lines])
    parsed = stage(
        "parse: text -> checked Event (all of it)", lambda: [parse_event(x) for x in lines]
    )
    stage("  of which shape check (check_event)", lambda: [check_event(e) for e in parsed])
    stage("  of which time text -> epoch s", lambda: [parse_time(d["time"]) for d in dicts])

    def reorder() -> None:
        rb, out = ReorderBuffer(), Released()
        for e in parsed:
            rb.push(e, out)

    stage("reorder (ReorderBuffer.push)", reorder)
    stage("validate + apply", lambda: validate_apply(parsed, TwinState(catalog)))
    with SQLiteStore(tmp / "stages.db") as st:
        stage(
            "store (2,000 per FULL commit)",
            lambda: [st.write(parsed[i : i + 2000]) for i in range(0, n, 2000)],
        )
    with SQLiteStore(tmp / "stages-run.db") as st:
        sync = Synchroniser(st, catalog, cfg=SyncConfig(batch=2000, snapshot_every=100_000))
        stage("whole pipeline (Synchroniser.run)", lambda: sync.run(_TextSource(lines)))
    parts = sum(v for name, v in stages[:-1] if not name.startswith(" ") and "orjson" not in name)
    for name, v in stages:
        print(f"  {name:<48} {v:8.2f} us of CPU per event", flush=True)
    print(f"  {'sum of the top-level stages':<48} {parts:8.2f}")


class _TextSource:
    """JSON texts already in memory, handed out as ``twin ingest``'s file source hands out lines
    (one Message each), so the row measures the pipeline, not reading a file."""

    def __init__(self, texts: list[str]) -> None:
        self.texts, self.i = texts, 0

    @property
    def exhausted(self) -> bool:
        return self.i >= len(self.texts)

    def receive(self, max_items: int, timeout: float) -> list[Message]:
        chunk = self.texts[self.i : self.i + max_items]
        self.i += len(chunk)
        return [Message(x) for x in chunk]

    def close(self) -> None:
        pass


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _publisher(port: int, events: list[Event], rate: float | None, ready, batch: int) -> None:
    """Child process: publish events, at ``rate`` ev/s or as fast as possible. With a rate,
    each event's time is the wall clock at publish (a live stream), for latency."""
    import dataclasses

    cfg = MqttConfig(port=port, client_id="bench-pub", batch=batch, linger=0.002)
    sink = MqttSink(cfg, fab="bench")
    ready.wait()
    t0 = time.time()
    for i, ev in enumerate(events):
        if rate is not None:
            due = t0 + i / rate
            now = time.time()
            if due > now:
                time.sleep(due - now)
            ev = dataclasses.replace(ev, time=time.time())
        sink.publish(ev)
    sink.flush(120)
    sink.close()


class _Stages:
    """Per-event stage stamps in the twin's process, for decomposing the latency tail: arrival at
    the MQTT client (paho's own stamp), receive(), validation start, commit end, on_commit. The
    hooks wrap private methods: a diagnostic, not an API."""

    def __init__(self, src: MqttSource, sync: Synchroniser, store: SQLiteStore) -> None:
        self.arrived: list[tuple[object, float]] = []  # (payload, wall s)
        self.received: dict[int, float] = {}  # id(payload) -> Message.received
        self.marks: dict[str, list[tuple[float, list]]] = {"apply": [], "durable": []}
        off = time.time() - time.monotonic()  # paho stamps with the monotonic clock
        on_message, process = src._client.on_message, sync.process
        commit, write = sync._commit, store.write

        def arrived(client, userdata, msg):
            on_message(client, userdata, msg)
            self.arrived.append((msg.payload, msg.timestamp + off))

        def processed(messages):
            self.received.update((id(m.payload), m.received) for m in messages)
            return process(messages)

        def committing(out, *args):
            self.marks["apply"].append((time.time(), [e.key for e in out.events]))
            return commit(out, *args)

        def written(evs, dead=()):
            n = write(evs, dead)
            self.marks["durable"].append((time.time(), [e.key for e in evs]))
            return n

        src._client.on_message, sync.process, sync._commit, store.write = (
            arrived,
            processed,
            committing,
            written,
        )

    def report(self, state_at: dict) -> None:
        """``state_at``: event key -> (publish time, on_commit time)."""
        at: dict = {k: {"publish": t0, "state": t1} for k, (t0, t1) in state_at.items()}
        for payload, t in self.arrived:
            items = codec.loads(payload)
            for d in items if isinstance(items, list) else [items]:
                st = at.get((d["source"], d["seq"]))
                if st is not None:
                    st["client"], st["receive"] = t, self.received.get(id(payload))
        for name, marks in self.marks.items():
            for t, keys in marks:
                for k in keys:
                    if k in at:
                        at[k].setdefault(name, t)
        order = ("publish", "client", "receive", "apply", "durable", "state")
        rows = [v for v in at.values() if all(v.get(x) is not None for x in order)]
        total = sorted(v["state"] - v["publish"] for v in rows)
        tail = [v for v in rows if v["state"] - v["publish"] >= total[int(len(total) * 0.99)]]
        print(f"  stages of {len(rows):,} events (ms): p50 / p90 / p99 / mean over the p99 tail")
        for a, b in zip(order, order[1:]):
            xs = sorted(v[b] - v[a] for v in rows)
            q = [xs[int(len(xs) * f)] * 1000 for f in (0.5, 0.9, 0.99)]
            mean = sum(v[b] - v[a] for v in tail) / len(tail) * 1000
            print(f"    {a + ' -> ' + b:<20} {q[0]:7.2f} {q[1]:7.2f} {q[2]:7.2f} {mean:7.2f}")


def bench_mqtt(
    events: list[Event],
    catalog,
    tmp: Path,
    rate: float | None,
    batch: int,
    stages: bool = False,
) -> None:
    mosq = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    if not Path(mosq).exists():
        print("  (mosquitto not installed: MQTT rows skipped)")
        return
    port = _free_port()
    conf = tmp / f"m{port}.conf"
    conf.write_text(
        f"listener {port} 127.0.0.1\nallow_anonymous true\n"
        "max_queued_messages 0\nmax_inflight_messages 0\n"
        "set_tcp_nodelay true\n"  # as docs/events.md asks: without it Nagle holds deliveries
    )
    broker = subprocess.Popen(
        [mosq, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        time.sleep(0.5)
        latencies: list[float] = []
        done = threading.Event()
        first: list[float] = []
        state_at: dict = {}

        def on_commit(evs: list[Event]) -> None:
            now = time.time()
            if not first:
                first.append(now)
            if rate is not None:
                latencies.extend(now - e.time for e in evs)
                if stages:
                    state_at.update((e.key, (e.time, now)) for e in evs)

        src = MqttSource(MqttConfig(port=port, topic="twin/bench/events/#", client_id="bench-sub"))
        st = SQLiteStore(tmp / f"mqtt-{port}.db")
        sync = Synchroniser(
            st, catalog, cfg=SyncConfig(batch=2000, wait=0.002), on_commit=on_commit
        )
        probe = _Stages(src, sync, st) if stages and rate is not None else None
        ready = mp.Event()
        pub = mp.Process(target=_publisher, args=(port, events, rate, ready, batch))
        pub.start()
        runner = threading.Thread(target=lambda: sync.run(src, stop=done.is_set), daemon=True)
        runner.start()
        time.sleep(1.0)
        t0, c0 = time.time(), time.process_time()
        ready.set()
        deadline = time.monotonic() + 300
        while sync.pos < len(events) and time.monotonic() < deadline:
            time.sleep(0.01)
        elapsed, cpu = time.time() - t0, time.process_time() - c0
        done.set()
        runner.join(10)
        pub.join(30)
        src.close()
        st.close()
        if rate is None:
            row(f"MQTT end to end, {batch} ev/message", sync.pos / elapsed, "ev/s", ">= 20,000")
            # the twin's process only (network thread + ingest); the publisher and broker are apart
            row(f"MQTT end to end, {batch} ev/message, per twin CPU s", sync.pos / cpu, "ev/s", "-")
        else:
            latencies.sort()
            p50 = latencies[len(latencies) // 2] * 1000
            p99 = latencies[int(len(latencies) * 0.99)] * 1000
            row(f"MQTT latency p50 at {rate:,.0f} ev/s, batch {batch}", p50, "ms", "-")
            row(f"MQTT latency p99 at {rate:,.0f} ev/s, batch {batch}", p99, "ms", "<= 50")
            if probe is not None:
                probe.report(state_at)
    finally:
        broker.terminate()
        broker.wait()


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--events", type=int, default=250_000)
    ap.add_argument("--mqtt-events", type=int, default=60_000)
    ap.add_argument("--latency-seconds", type=float, default=10.0)
    ap.add_argument("--mqtt-batch", type=int, default=50, help="events per MQTT message")
    ap.add_argument("--latency-runs", type=int, default=1, help="repeat the latency measure")
    ap.add_argument(
        "--stages",
        action="store_true",
        help="latency: stamp each stage per event and report them (the stamps, held for the "
        "whole run, add collector pauses of their own: compare tails with a plain run)",
    )
    ap.add_argument(
        "--only",
        choices=["apply", "store", "stages", "mqtt", "latency"],
        help="run one group of rows (stages: CPU per event of each stage of the durable row)",
    )
    args = ap.parse_args()
    want = lambda group: args.only in (None, group)  # noqa: E731
    catalog = synthetic_catalog()
    lots = max(10, args.events // 240)
    events = synthetic_stream(StreamConfig(lots=lots, seed=1), catalog)[: args.events]
    print(
        f"synthetic stream: {len(events):,} events ({lots} lots); python {sys.version.split()[0]}; "
        f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at start"
    )
    # The bench holds its whole input (the events and their text) for the run; a real ingest
    # process does not. Frozen, the input is left out of the collector's full passes, which
    # would otherwise rescan it (100+ ms each) and show up as ingest latency.
    gc.freeze()
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        if want("apply"):
            bench_apply(events, catalog)
        if want("store"):
            bench_store(events, catalog, tmp)
        if args.only == "stages":
            bench_stages(events, catalog, tmp)
        for batch in sorted({1, args.mqtt_batch}) if want("mqtt") else ():
            bench_mqtt(events[: args.mqtt_events], catalog, tmp, None, batch)
        n = int(5000 * args.latency_seconds)
        for _ in range(args.latency_runs) if want("latency") else ():
            bench_mqtt(events[:n], catalog, tmp, 5000.0, args.mqtt_batch, args.stages)
            print(f"  (load average {os.getloadavg()[0]:.2f})", flush=True)
    print(f"\nload average at end: {os.getloadavg()[0]:.1f}")
    print(f"| {'measure':<52} | {'value':>12} | unit | target |")
    print(f"|{'-' * 54}|{'-' * 14}|------|--------|")
    for name, value, unit, target in ROWS:
        print(f"| {name:<52} | {value:>12,.1f} | {unit} | {target} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
