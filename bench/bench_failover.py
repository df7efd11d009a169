"""Replicated `twin serve` on one PostgreSQL store: fail-over, follower lag, GET throughput.

Run: .venv/bin/python bench/bench_failover.py [--cycles 20] [--rate 5000] [--wrk-seconds 10]
Needs the PostgreSQL server binaries, Mosquitto, wrk and psycopg; it starts its own PostgreSQL
(tests/pg.py, durable: fsync and synchronous_commit on) and broker, and two `twin serve`
processes (tests/live/test_replica_failover.py's TwinServer). Rows (issue 20):

1. Fail-over: `twin emulate --mqtt` (end to end) publishes while the leader is killed with
   SIGKILL ``--cycles`` times (the killed server is started again, as a follower, before the
   next cycle). Per cycle: seconds from the kill until the other server says it leads, and
   until its revision moves past the killed one's (ingesting again). A cycle succeeds when it
   leads within 5 s. At the end: the emulator has every event confirmed, each is stored once
   (contiguous seqs), and the survivor's state hash equals a replay of the store.
2. Follower lag at ``--rate`` events/s: batches POSTed to the leader at that rate; for each
   batch (20 a second), the time from the leader's answer (committed) until the follower's X-Twin-Revision
   reaches the batch's revision (polled every 2 ms). p50/p99/max.
3. GET /equipment/{id} throughput (wrk, 2 threads, 32 connections, ``--wrk-seconds``) against
   one server, then against both at once (one wrk each, summed), side by side in one run.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "services"))

import httpx  # noqa: E402

from tests.live.conftest import Broker  # noqa: E402
from tests.live.test_replica_failover import (  # noqa: E402
    AUTH,
    TOKEN,
    TwinServer,
    emulate,
    replay_hash,
    store_facts,
)
from tests.pg import PgServer  # noqa: E402

FAST = {"TWIN_RATE_LIMIT": "0", "TWIN_MAX_BATCH": "5000"}


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))]


def row(name: str, value: str) -> None:
    print(f"  {name:<70} {value}", flush=True)


def leader_of(servers: list[TwinServer]) -> tuple[TwinServer, TwinServer]:
    for _ in range(500):
        roles = []
        for s in servers:
            try:
                roles.append(s.hash(timeout=5)["role"])
            except Exception:
                roles.append("?")
        if sorted(roles) == ["follower", "leader"]:
            i = roles.index("leader")
            return servers[i], servers[1 - i]
        time.sleep(0.05)
    raise RuntimeError(f"no single leader: {roles}")


def bench_failover(url: str, mqtt: str, work: Path, cycles: int) -> None:
    servers = [TwinServer(url, mqtt, work, f"s{i}", **FAST) for i in range(2)]
    servers[0].start().wait_up()
    servers[1].start().wait_up()
    out = work / "emulate.json"
    # long enough for every cycle: ~12 s per cycle (a restart is ~5 s on this machine)
    emu = emulate(mqtt, hours=4.0 * cycles, speed=1200, out=out)
    lead_s, ingest_s, ok, at = [], [], 0, 0
    try:
        for c in range(cycles):
            leader, follower = leader_of(servers)
            t_end = time.monotonic() + 60
            while leader.revision() < at + 300 and time.monotonic() < t_end:
                time.sleep(0.05)
            if emu.poll() is not None:
                print(f"    the emulator ended after {c} cycles", flush=True)
                break
            at = leader.revision()
            leader.kill()
            t0 = time.monotonic()
            took = None
            while time.monotonic() - t0 < 30:
                try:
                    if follower.hash(timeout=2)["role"] == "leader":
                        took = time.monotonic() - t0
                        break
                except Exception:
                    pass
                time.sleep(0.01)
            moved = None
            while took is not None and time.monotonic() - t0 < 60 and emu.poll() is None:
                if follower.revision() > at:
                    moved = time.monotonic() - t0
                    break
                time.sleep(0.01)
            if took is not None:
                lead_s.append(took)
                ok += took < 5
            if moved is not None:
                ingest_s.append(moved)
            print(f"    cycle {c + 1}: killed at revision {at}, leads after "
                  f"{took if took is None else round(took, 3)} s, ingesting after "
                  f"{moved if moved is None else round(moved, 3)} s", flush=True)  # fmt: skip
            leader.start().wait_up()
        rc = emu.wait(600)
    finally:
        if emu.poll() is None:
            emu.kill()
    text = out.read_text()
    kpis = json.loads(text[text.index("{") :]) if rc == 0 else {"events": -1}
    facts = store_facts(url)
    total = sum(n for n, *_ in facts["sources"].values())
    once = all(n == d == hi - lo + 1 and lo == 1 for n, d, lo, hi in facts["sources"].values())
    leader, follower = leader_of(servers)
    t_end = time.monotonic() + 30
    while follower.revision() < total and time.monotonic() < t_end:
        time.sleep(0.05)
    rev_hash = replay_hash(url)
    same = [(s.hash()["revision"], s.hash()["hash"]) == rev_hash for s in servers]
    for s in servers:
        s.stop()
    row("kill -9 cycles: took over within 5 s", f"{ok} of {cycles}")
    if lead_s:
        row("fail-over: kill -> the other says it leads, p50 / max",
            f"{statistics.median(lead_s):.3f} s / {max(lead_s):.3f} s")  # fmt: skip
    if ingest_s:
        row("fail-over: kill -> its revision moves (ingesting again), p50 / max",
            f"{statistics.median(ingest_s):.3f} s / {max(ingest_s):.3f} s")  # fmt: skip
    row("emulator: every event confirmed end to end (exit status 0)", f"{rc == 0}")
    row("events emitted / stored / each once / dead letters",
        f"{kpis['events']} / {total} / {once} / {facts['dead']}")  # fmt: skip
    row("both servers' state hash == fresh replay of the store", f"{same}")


def bench_lag(url: str, work: Path, rate: int, seconds: float) -> None:
    src = work / "events.jsonl"
    hours = max(2.0, rate * seconds / 2000)  # the demo fab emits ~2,000 events per fab hour
    subprocess.run(
        [sys.executable, "-m", "twin.cli", "emulate", str(ROOT / "scenes/demo-fab"), "--hours",
         str(hours), "--out", str(src)],
        check=True, capture_output=True, cwd=ROOT,
    )  # fmt: skip
    events = [json.loads(line) for line in src.read_text().splitlines()]
    n = min(len(events), int(rate * seconds))
    leader = TwinServer(url, None, work, "lag-leader", **FAST).start().wait_up()
    follower = TwinServer(url, None, work, "lag-follower", **FAST).start().wait_up()
    per_batch = max(1, rate // 20)  # 20 batches/s, one POST at a time
    lags: list[float] = []
    waits: list[tuple[int, float]] = []
    done = threading.Event()
    lock = threading.Lock()

    def watch() -> None:
        with httpx.Client() as c:
            while not done.is_set() or waits:
                with lock:
                    item = waits[0] if waits else None
                if item is None:
                    time.sleep(0.001)
                    continue
                rev = int(c.get(follower.url + "/health").headers["x-twin-revision"])
                now = time.monotonic()
                with lock:
                    while waits and waits[0][0] <= rev:
                        lags.append(now - waits.pop(0)[1])
                time.sleep(0.002)

    t = threading.Thread(target=watch)
    t.start()
    t0 = time.monotonic()
    sent = 0
    with httpx.Client(headers=AUTH, timeout=30) as c:
        for i in range(0, n, per_batch):
            due = t0 + i / rate
            if (pause := due - time.monotonic()) > 0:
                time.sleep(pause)
            r = c.post(leader.url + "/events", json=events[i : i + per_batch])
            sent += per_batch
            with lock:
                waits.append((int(r.headers["x-twin-revision"]), time.monotonic()))
    achieved = sent / (time.monotonic() - t0)
    done.set()
    t.join(60)
    leader.stop()
    follower.stop()
    row(f"follower lag at {rate:,} ev/s offered ({achieved:,.0f} achieved), {len(lags)} batches",
        f"p50 {1000 * pct(lags, 0.5):.1f} ms, p99 {1000 * pct(lags, 0.99):.1f} ms, "
        f"max {1000 * max(lags):.1f} ms")  # fmt: skip


def wrk(url: str, seconds: int) -> float:
    out = subprocess.run(
        ["wrk", "-t2", "-c32", f"-d{seconds}s", "-H", f"Authorization: Bearer {TOKEN}", url],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    return float(re.search(r"Requests/sec:\s*([\d.]+)", out).group(1))


def bench_gets(url: str, work: Path, seconds: int) -> None:
    a = TwinServer(url, None, work, "get-a", **FAST).start().wait_up()
    b = TwinServer(url, None, work, "get-b", **FAST).start().wait_up()
    path = "/equipment/DIF01"
    one = wrk(a.url + path, seconds)
    got: list[float] = []
    ts = [threading.Thread(target=lambda s=s: got.append(wrk(s.url + path, seconds)))
          for s in (a, b)]  # fmt: skip
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    a.stop()
    b.stop()
    row(f"GET {path}, one server (wrk -t2 -c32)", f"{one:,.0f} req/s")
    row(f"GET {path}, two servers at once (one wrk each, summed)",
        f"{sum(got):,.0f} req/s ({' + '.join(f'{g:,.0f}' for g in got)})")  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cycles", type=int, default=20)
    ap.add_argument("--rate", type=int, default=5000)
    ap.add_argument("--lag-seconds", type=float, default=10.0)
    ap.add_argument("--wrk-seconds", type=int, default=10)
    ap.add_argument("--only", choices=["failover", "lag", "gets"], default=None)
    args = ap.parse_args()
    pg = PgServer(durable=True)
    work = Path(tempfile.mkdtemp(prefix="twin-failover-"))
    broker = Broker(work)
    broker.start()
    try:
        print(f"bench_failover: PostgreSQL on port {pg.port}, Mosquitto on {broker.port}")
        if args.only in (None, "failover"):
            bench_failover(pg.create_schema("fo"), f"127.0.0.1:{broker.port}", work, args.cycles)
        if args.only in (None, "lag"):
            bench_lag(pg.create_schema("lag"), work, args.rate, args.lag_seconds)
        if args.only in (None, "gets"):
            bench_gets(pg.create_schema("gets"), work, args.wrk_seconds)
    finally:
        broker.stop()
        pg.stop()


if __name__ == "__main__":
    main()
