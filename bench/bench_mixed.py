"""Reads under the load a deployment sees (issue 19, "Reads that stay fast under load"): one
uvicorn worker (`twin serve`, SQLite store, no physics) answers open-loop GETs at a fixed rate,
the four reads in turn (/kpis, /lots?limit=100, /equipment?limit=100, /equipment/{id}), while
a poster ingests the demo fab's stream at a fixed rate in batches and WebSocket clients listen
to everything on /stream.

    .venv/bin/python bench/bench_mixed.py [--rate 1000] [--ingest 5000] [--clients 20]
        [--duration 20] [--runs 3]

Target: p99 <= 20 ms at 1,000 requests/s while ingest runs at 5,000 events/s and 20 WebSocket
clients listen. Latency counts from each request's scheduled time (no coordinated omission).
Printed beside it: the ingest rate reached, the events each client received, the server's CPU
per second and the load average (on a shared machine the neighbours show in the p99).
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_api as b  # noqa: E402

READS = ("/kpis", "/lots?limit=100", "/equipment?limit=100", "/equipment/LITH01")


class Feed:
    """The stream posted run after run: each run goes on where the last one stopped, so every
    source's seqs stay contiguous."""

    def __init__(self, events: list[dict]) -> None:
        self.events, self.next = events, 0

    def pace(self, port: int, rate: float, stop: threading.Event) -> list[float]:
        """Post in order at ``rate``/s (a batch every 20 ms) until ``stop`` or the end;
        returns [events accepted, seconds]."""
        import orjson

        out = [0.0, 0.0]
        tick = 0.02
        per = max(1, int(rate * tick))
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        headers = {**b.AUTH, "Content-Type": "application/json"}
        t0 = time.perf_counter()
        k = 0
        while not stop.is_set() and self.next < len(self.events):
            time.sleep(max(0.0, t0 + k * tick - time.perf_counter()))
            batch = self.events[self.next : self.next + per]
            conn.request("POST", "/events", orjson.dumps(batch), headers)
            r = conn.getresponse()
            answer = orjson.loads(r.read())
            if r.status != 200:
                raise SystemExit(f"POST /events: {r.status} {str(answer)[:300]}")
            out[0] += answer["accepted"]
            self.next += len(batch)
            k += 1
        out[1] = time.perf_counter() - t0
        conn.close()
        return out


async def listeners(port: int, clients: int, stop: asyncio.Event) -> list[int]:
    """``clients`` WebSocket clients on /stream (everything); the messages each received."""
    import websockets

    counts = [0] * clients

    async def one(k: int) -> None:
        url = f"ws://127.0.0.1:{port}/stream"
        async with websockets.connect(url, additional_headers=b.AUTH, max_size=None) as ws:
            while not stop.is_set():
                try:
                    await asyncio.wait_for(ws.recv(decode=False), 0.5)
                    counts[k] += 1
                except TimeoutError:
                    continue

    tasks = [asyncio.create_task(one(k)) for k in range(clients)]
    await stop.wait()
    await asyncio.gather(*tasks, return_exceptions=True)
    return counts


async def one_run(port: int, args: argparse.Namespace, feed: Feed) -> dict:
    stop_ws = asyncio.Event()
    ws_task = asyncio.create_task(listeners(port, args.clients, stop_ws))
    await asyncio.sleep(1.0)  # the clients are connected
    stop_post = threading.Event()
    posted: list[float] = []
    poster = threading.Thread(target=lambda: posted.extend(feed.pace(port, args.ingest, stop_post)))
    poster.start()
    await asyncio.sleep(1.0)  # ingest at its pace before the reads are measured
    lat, late = await b.fixed_rate(port, args.rate, args.duration, paths=READS)
    stop_post.set()
    await asyncio.to_thread(poster.join)
    stop_ws.set()
    counts = await ws_task
    p50, p99 = np.percentile(lat, [50, 99])
    return {
        "p50": p50,
        "p99": p99,
        "late99": float(np.percentile(late, 99)),
        "ingest": posted[0] / posted[1] if posted and posted[1] else 0.0,
        "ws_min": min(counts) if counts else 0,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rate", type=float, default=1000.0, help="GET requests/s")
    ap.add_argument("--ingest", type=float, default=5000.0, help="events/s posted")
    ap.add_argument("--clients", type=int, default=20, help="WebSocket clients")
    ap.add_argument("--duration", type=float, default=20.0, help="s of reads per run")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--synchronous", default="FULL", choices=["FULL", "NORMAL"])
    args = ap.parse_args()
    need = int(args.ingest * (args.duration + 5) * args.runs) + 20_000
    events = b.demo_events(need)
    tmp = Path(tempfile.mkdtemp(prefix="bench-mixed-"))
    port = b.free_port()
    proc = b.start_server(tmp / "events.db", port, args.synchronous)
    try:
        b.post_batches(port, [events[:20_000]])  # a fab with history and WIP
        feed = Feed(events[20_000:])
        print("| run | p50 ms | p99 ms (target <= 20) | generator late p99 ms | ingest ev/s "
              "| least events to a client | server CPU/s | load |")  # fmt: skip
        print("|---|---|---|---|---|---|---|---|")
        for k in range(args.runs):
            c0, t0 = b.cpu_seconds(proc.pid), time.perf_counter()
            r = asyncio.run(one_run(port, args, feed))
            cpu = (b.cpu_seconds(proc.pid) - c0) / (time.perf_counter() - t0)
            print(f"| {k + 1} | {r['p50']:.1f} | {r['p99']:.1f} | {r['late99']:.1f} | "
                  f"{r['ingest']:,.0f} | {r['ws_min']:,} | {cpu:.2f} | "
                  f"{os.getloadavg()[0]:.1f} |")  # fmt: skip
    finally:
        proc.terminate()
        proc.wait(10)
    print(
        f"\n{args.rate:,.0f} GET/s over {', '.join(READS)}; ingest target "
        f"{args.ingest:,.0f} ev/s; {args.clients} WebSocket clients; {args.duration:g} s per run"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
