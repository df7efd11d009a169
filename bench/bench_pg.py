"""PostgreSQL event store benchmark: durable ingest rate and bytes per stored event.

Run: .venv/bin/python bench/bench_pg.py [--events 200000] [--batch 2000]
Needs the PostgreSQL server binaries (Debian package ``postgresql``) and psycopg
(``pip install 'twin[postgres]'``); it starts its own server (tests/pg.py) with the durable
defaults: fsync on, synchronous_commit on, full_page_writes on. Target (issue 20): durable ingest
into PostgreSQL >= 30,000 ev/s. Each write is one transaction, committed (WAL flushed) before it
returns. Rows:
- store.write of ready Events, at several batch sizes: the store alone;
- the Synchroniser over JSON texts (parse, validate, write, apply), as `twin ingest` runs;
- where the time goes: this process's CPU, the server backend's CPU (from /proc), and the rest
  (waits: WAL flush, network, other people's work on a shared machine);
- follower lag at 5,000 ev/s: commit on the leader to applied in a follower process;
- the leader lock's take-over after kill -9 of the leader process, 20 cycles;
- bytes per event on disk: PostgreSQL (tables + indexes + TOAST, after VACUUM) beside SQLite
  (the database file after a checkpoint) for the same events.
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.pg import PgServer  # noqa: E402
from twin.live.sources import Message  # noqa: E402
from twin.live.store import SQLiteStore  # noqa: E402
from twin.live.store_pg import PostgresStore  # noqa: E402
from twin.live.sync import SyncConfig, Synchroniser  # noqa: E402
from twin.live.synthetic import StreamConfig, synthetic_catalog, synthetic_stream  # noqa: E402


def row(name: str, value: float, unit: str, target: str = "-") -> None:
    print(f"  {name:<58} {value:>12,.1f} {unit:<7} (target {target})", flush=True)


def backend_cpu(store: PostgresStore) -> tuple[float, float]:
    """(user, system) CPU seconds used so far by the server process serving ``store``."""
    pid = store._query("SELECT pg_backend_pid()")[0][0]
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    return int(fields[11]) / tick, int(fields[12]) / tick


def bench_write(server: PgServer, events, batches: list[int]) -> None:
    for k, batch in enumerate(batches):
        url = server.create_database(f"write{k}")
        with PostgresStore(url) as st:
            (u0, s0), c, t = backend_cpu(st), time.process_time(), time.perf_counter()
            for i in range(0, len(events), batch):
                st.write(events[i : i + batch])
            wall = time.perf_counter() - t
            cpu, (u1, s1) = time.process_time() - c, backend_cpu(st)
            assert st.count() == len(events)
        n, commits = len(events), -(-len(events) // batch)
        srv_user, srv_sys = u1 - u0, s1 - s0
        row(f"PostgreSQL store.write, {batch}/commit, wall", n / wall, "ev/s", ">= 30,000")
        row("  client CPU per event (this process)", cpu / n * 1e6, "us")
        row("  server backend user CPU per event", srv_user / n * 1e6, "us")
        row(
            "  server backend system CPU per commit (WAL write+fsync)",
            srv_sys / commits * 1e3,
            "ms",
        )
        rest = max(0.0, wall - cpu - srv_user - srv_sys)
        row("  rest per event (I/O wait, network, other processes)", rest / n * 1e6, "us")


def bench_pipeline(server: PgServer, events, catalog) -> None:
    texts = [e.to_json() for e in events]
    url = server.create_database("pipeline")

    class Texts:
        def __init__(self) -> None:
            self.i = 0

        @property
        def exhausted(self) -> bool:
            return self.i >= len(texts)

        def receive(self, max_items: int, timeout: float) -> list[Message]:
            chunk = texts[self.i : self.i + max_items]
            self.i += len(chunk)
            return [Message(x) for x in chunk]

    for overlap in (False, True):
        with PostgresStore(url if not overlap else server.create_database("pipeline2")) as st:
            sync = Synchroniser(
                st, catalog, cfg=SyncConfig(batch=2000, snapshot_every=100_000, overlap=overlap)
            )
            t, c = time.perf_counter(), time.process_time()
            sync.run(Texts())
            wall, cpu = time.perf_counter() - t, time.process_time() - c
            assert sync.pos == len(texts), "every event stored"
        how = ", writer thread" if overlap else ""
        row(f"durable ingest JSON text -> PostgreSQL -> state{how}, wall", len(texts) / wall,
            "ev/s", ">= 30,000")  # fmt: skip
        row("  client CPU per event", cpu / len(texts) * 1e6, "us")
    with tempfile.TemporaryDirectory() as d, SQLiteStore(Path(d) / "t.db") as st:
        sync = Synchroniser(st, catalog, cfg=SyncConfig(batch=2000, snapshot_every=100_000))
        t, c = time.perf_counter(), time.process_time()
        sync.run(Texts())
        wall, cpu = time.perf_counter() - t, time.process_time() - c
        assert sync.pos == len(texts), "every event stored"
    row("same into SQLite (synchronous=FULL), wall, for comparison", len(texts) / wall, "ev/s")
    row("  client CPU per event", cpu / len(texts) * 1e6, "us")


def bench_follower(
    server: PgServer, events, catalog, rate: int = 5000, seconds: float = 10
) -> None:
    """A leader commits ``rate`` ev/s (batches every 50 ms); a follower (another process, as a
    second server would be) applies them: lag = follower applied - leader committed."""
    import multiprocessing as mp

    url = server.create_database("follow")
    with PostgresStore(url) as st:
        Synchroniser(st, catalog)  # records the catalog the follower starts from
        ctx = mp.get_context("spawn")
        out = ctx.Queue()
        ready = ctx.Event()
        n = min(len(events), int(rate * seconds))
        proc = ctx.Process(target=_follow, args=(url, n, out, ready), daemon=True)
        proc.start()
        ready.wait(60)
        step = rate // 20
        committed: dict[int, float] = {}
        t0 = time.perf_counter()
        for k, i in enumerate(range(0, n, step)):
            time.sleep(max(0.0, t0 + k * 0.05 - time.perf_counter()))
            st.write(events[i : i + step])
            committed[min(i + step, n)] = time.time()
        applied: list[tuple[int, float]] = out.get(timeout=120)  # (pos reached, when)
        proc.join(10)
    import bisect

    reached = [p for p, _ in applied]
    lags = []
    for p, t in committed.items():  # the first catch-up that reached each commit's last event
        k = bisect.bisect_left(reached, p)
        if k < len(applied):
            lags.append(applied[k][1] - t)
    lags.sort()
    q = lambda f: lags[min(len(lags) - 1, int(f * len(lags)))] * 1e3  # noqa: E731
    row(f"follower lag at {rate:,} ev/s, p50 ({len(lags)} commits)", q(0.5), "ms")
    row(f"follower lag at {rate:,} ev/s, p99", q(0.99), "ms")
    row(f"follower lag at {rate:,} ev/s, max", lags[-1] * 1e3, "ms")


def _follow(url: str, n: int, out, ready) -> None:
    from twin.live.replica import Follower

    applied: list[tuple[int, float]] = []
    with Follower(url) as f:
        ready.set()
        while f.pos < n:
            if f.wait(1.0):
                applied.append((f.pos, time.time()))
    out.put(applied)


_LEADER = """
import sys, time
from twin.live.store_pg import PostgresStore
s = PostgresStore(sys.argv[1])
print("leading" if s.try_lead() else "following", flush=True)
time.sleep(600)
"""


def bench_takeover(server: PgServer, cycles: int = 20) -> None:
    """A leader process is killed (SIGKILL); time until another store's try_lead succeeds
    (polled every 5 ms). The leader lock only: not yet a whole server's fail-over."""
    import subprocess

    url = server.create_database("takeover")
    PostgresStore(url).close()
    times = []
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    for _ in range(cycles):
        p = subprocess.Popen(
            [sys.executable, "-c", _LEADER, url], stdout=subprocess.PIPE, text=True, env=env
        )
        try:
            assert p.stdout is not None and p.stdout.readline().strip() == "leading"
            with PostgresStore(url) as other:
                assert not other.try_lead()
                p.kill()
                t0 = time.perf_counter()
                while not other.try_lead():
                    time.sleep(0.005)
                times.append(time.perf_counter() - t0)
        finally:
            p.kill()
            p.wait()
    times.sort()
    row(f"leader lock taken over after kill -9, median of {len(times)} cycles",
        times[len(times) // 2] * 1e3, "ms", "< 5,000")  # fmt: skip
    row("leader lock taken over after kill -9, max", times[-1] * 1e3, "ms", "< 5,000")


def bench_bytes(server: PgServer, events, tmp: Path) -> None:
    url = server.create_database("size")
    with PostgresStore(url) as st:
        for i in range(0, len(events), 2000):
            st.write(events[i : i + 2000])
        st._run("VACUUM (ANALYZE) events")
        pg = st.bytes_used()
    path = tmp / "size.db"
    with SQLiteStore(path) as lite:
        for i in range(0, len(events), 2000):
            lite.write(events[i : i + 2000])
        lite._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    size = path.stat().st_size + sum(
        p.stat().st_size for p in (Path(f"{path}-wal"), Path(f"{path}.head")) if p.exists()
    )
    n = len(events)
    mean_json = sum(len(e.to_json()) for e in events) / n
    row("bytes per event: PostgreSQL (tables + indexes)", pg / n, "B")
    row("bytes per event: SQLite (file after checkpoint)", size / n, "B")
    row("  for reference: the event as JSON text", mean_json, "B")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--events", type=int, default=200_000)
    ap.add_argument("--batch", type=int, nargs="*", default=[500, 2000, 10_000])
    args = ap.parse_args()
    catalog = synthetic_catalog()
    lots = max(10, args.events // 240)
    events = synthetic_stream(StreamConfig(lots=lots, seed=1), catalog)[: args.events]
    print(
        f"command: {' '.join([os.path.basename(sys.executable), *sys.argv])}\n"
        f"synthetic stream: {len(events):,} events; python {sys.version.split()[0]}; "
        f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at start"
    )
    gc.freeze()
    server = PgServer(durable=True)
    try:
        with PostgresStore(server.url()) as st:
            settings = st._query(
                "SELECT name, setting FROM pg_settings WHERE name IN "
                "('fsync', 'synchronous_commit', 'full_page_writes', 'wal_sync_method', "
                "'server_version')"
            )
        print("server: " + ", ".join(f"{k}={v}" for k, v in settings))
        bench_write(server, events, args.batch)
        bench_pipeline(server, events, catalog)
        bench_follower(server, events, catalog)
        bench_takeover(server)
        with tempfile.TemporaryDirectory() as d:
            bench_bytes(server, events, Path(d))
    finally:
        server.stop()
    print(f"load average {os.getloadavg()[0]:.1f} at end")


if __name__ == "__main__":
    main()
