"""The heavier reads of the twin API under `wrk -t2 -c64` (one uvicorn worker, `twin serve`,
SQLite store, no physics): /kpis, /lots?limit=100, /equipment?limit=100 and /equipment/{id}.

    .venv/bin/python bench/bench_reads.py [--events 60000] [--duration 5] [--ingest 2000]

First the demo fab's synthetic stream (``--events``) is posted; then each read is measured
alone (requests/s, wrk's p99, and the server's CPU time per request: the figure that does not
depend on the neighbours of a shared machine), and again while a poster ingests about
``--ingest`` events/s in batches of 100 (0: not measured). Issue 19's target: every read
>= 5,000 requests/s alone. Uses bench_api.py's server and stream.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_api as b  # noqa: E402

READS = ("/kpis", "/lots?limit=100", "/equipment?limit=100", "/equipment/LITH01")


def poster(port: int, events: list, rate: float, stop: threading.Event, posted: list) -> None:
    """Post ``events`` in batches of 100 at ``rate`` events/s until ``stop``; ``posted[0]``
    counts them."""
    import httpx

    with httpx.Client(base_url=f"http://127.0.0.1:{port}", headers=b.AUTH, timeout=30) as c:
        due, step = time.monotonic(), 100 / rate
        while not stop.is_set() and posted[0] + 100 <= len(events):
            c.post("/events", json=events[posted[0] : posted[0] + 100])
            posted[0] += 100
            due += step
            time.sleep(max(0.0, due - time.monotonic()))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--events", type=int, default=60_000, help="events posted first")
    ap.add_argument("--duration", type=int, default=5, help="s per measurement")
    ap.add_argument("--ingest", type=float, default=2000.0, help="events/s during the 2nd pass")
    args = ap.parse_args()
    port = b.free_port()
    proc = b.start_server(Path(tempfile.mkdtemp(prefix="bench-reads-")) / "events.db", port,
                          "NORMAL")  # fmt: skip
    try:
        events = b.demo_events(args.events + int(args.ingest * args.duration * len(READS) * 2))
        b.post_batches(port, [events[: args.events]])
        rest = events[args.events :]
        print(f"{'read':24s} {'req/s':>9s} {'p99 ms':>9s} {'CPU us/req':>11s}  ingest ev/s")
        for path in READS:
            c0 = b.cpu_seconds(proc.pid)
            rps, p99, bad = b.wrk(port, path, args.duration)
            per = (b.cpu_seconds(proc.pid) - c0) / (rps * args.duration) * 1e6
            print(f"{path:24s} {rps:9,.0f} {p99:9.1f} {per:11.0f}  -{'  NON-2xx' if bad else ''}")
        if args.ingest <= 0:
            return 0
        for path in READS:
            stop, posted = threading.Event(), [0]
            t = threading.Thread(target=poster, args=(port, rest, args.ingest, stop, posted))
            t0 = time.monotonic()
            t.start()
            rps, p99, bad = b.wrk(port, path, args.duration)
            stop.set()
            t.join()
            rate = posted[0] / (time.monotonic() - t0)
            rest = rest[posted[0] :]
            print(f"{path:24s} {rps:9,.0f} {p99:9.1f} {'-':>11s}  {rate:,.0f}"
                  f"{'  NON-2xx' if bad else ''}")  # fmt: skip
    finally:
        proc.terminate()
        proc.wait(10)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
