"""Attack bench of the server limits: a real `twin serve` on 127.0.0.1, hostile clients.

    .venv/bin/python bench/bench_attack.py [--requests 10000] [--half-open 3000]
        [--over-cap 6000] [--duration 10] [--rate 1000]

(a) the server's resident memory (VmRSS, and its peak VmHWM) before and after each of
    --rounds parts of --requests fuzzed requests from 32 concurrent clients, a new connection each: random garbage bodies,
    headers of 1 MiB, bad JSON, deep nesting, lone surrogates, wrong tokens, huge query
    values, 8 MiB bodies of `[],` and garbage instead of HTTP; with the rate limits off, so
    that every request reaches the parsers (the worst case for memory). The status codes seen
    are counted: a 500 is a bug.
(b) GET /equipment/{id} with the rate limiter on at twice --rate per address (the bench
    client is allowed): the p99 at a fixed --rate from bench_api's open-loop generator; then
    wrk as fast as it goes, over the limit, to show the 429s. (The most GETs/s with the
    limiter on and not limiting: bench_api.py.)
(c) --half-open sockets each sending part of a request's headers: /health answers while they
    are held, and the server has closed them all soon after its header timeout (2 s here);
    then --over-cap of them, over the connection cap (1,000 here): /health still answers and
    the server's open file descriptors stay under the cap.

Only 127.0.0.1 is targeted; every loop is bounded. Prints one table.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_api import TOKEN, fixed_rate_run, free_port  # noqa: E402

HOST = "127.0.0.1"  # the only address this bench sends to
HEADER_TIMEOUT = 2.0
MAX_CONNECTIONS = 1000


def start(tmp: Path, port: int, **limits: object) -> subprocess.Popen:
    """`twin serve` of the demo fab with ``limits`` (Settings fields) in its environment;
    its log goes to a file (a pipe nobody reads would fill and stall the server)."""
    env = {**os.environ, "TWIN_TOKENS": json.dumps({TOKEN: ["admin"]}), "TWIN_MODE": "production"}
    env.update({f"TWIN_{k.upper()}": str(v) for k, v in limits.items()})
    log = open(tmp / f"server-{port}.log", "w")  # noqa: SIM115 - lives as long as the server
    proc = subprocess.Popen(
        [sys.executable, "-m", "twin.cli", "serve", "--scene", str(ROOT / "scenes" / "demo-fab"),
         "--store", str(tmp / f"events-{port}.db"), "--port", str(port), "--no-physics"],
        cwd=ROOT, env=env, stdout=log, stderr=log,
    )  # fmt: skip
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server failed: {(tmp / f'server-{port}.log').read_text()}")
        if health(port) == 200:
            return proc
        time.sleep(0.3)
    raise SystemExit("server did not start")


def stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()


def health(port: int, timeout: float = 5.0) -> int | str:
    """The status of GET /health on a new connection, or what went wrong."""
    try:
        with socket.create_connection((HOST, port), timeout=timeout) as s:
            s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            head = s.recv(64)
        return int(head.split()[1]) if head.startswith(b"HTTP/1.1 ") else f"answer {head!r}"
    except OSError as exc:
        return type(exc).__name__


def memory(pid: int) -> tuple[float, float]:
    """(VmRSS, VmHWM) of a process in MiB (Linux /proc)."""
    fields = dict(
        line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines()
    )
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


# --------------------------------------------------------------------------- (a) fuzz
def fuzz_requests(rng: random.Random) -> tuple[str, bytes]:
    """One hostile request: (kind, the bytes sent)."""
    good = f"Authorization: Bearer {TOKEN}\r\n"
    kind = rng.choice(
        ["garbage body", "huge header", "bad json", "deep nesting", "lone surrogate",
         "wrong token", "huge query", "tiny values 8 MiB", "not http", "huge content-length"]
    )  # fmt: skip
    if kind == "tiny values 8 MiB" and rng.random() > 0.1:
        kind = "bad json"  # 1 in 100 requests carries 8 MiB
    body = b""
    head = "GET /kpis HTTP/1.1\r\nHost: x\r\n" + good
    if kind == "garbage body":
        body = rng.randbytes(rng.randint(1, 65536))
    elif kind == "huge header":
        head = "GET /kpis HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + "a" * 2**20 + "\r\n"
    elif kind == "bad json":
        body = rng.choice([b"[{", b'{"events": [1,2', b"[1,]", b"nul", b"[NaN]x", b"\xff\xfe"])
    elif kind == "deep nesting":
        n = rng.choice([100, 1025, 5000, 100_000])
        body = b"[" * n + b"]" * n
    elif kind == "lone surrogate":
        body = rng.choice([b'["\\ud800"]', '["\ud800"]'.encode("utf-8", "surrogatepass"),
                           b'[{"id": "\\udfff", "data": {"\\ud800": 1}}]'])  # fmt: skip
    elif kind == "wrong token":
        token = rng.choice(["wrong", "x" * 10_000, "\ud800".encode("utf-8", "surrogatepass")])
        if isinstance(token, bytes):
            token = token.decode("latin-1")
        head = f"GET /kpis HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n"
    elif kind == "huge query":
        q = rng.choice(["/events?after=1e20", "/events?after=100000000000000000000",
                        "/lots?limit=" + "9" * 5000, "/equipment/" + "A" * 60_000,
                        "/state?at=99999999999999999999", "/events?since=%ED%A0%80",
                        "/events?type=" + "a." * 20_000])  # fmt: skip
        head = f"GET {q} HTTP/1.1\r\nHost: x\r\n" + good
    elif kind == "tiny values 8 MiB":
        body = b"[" + b"[]," * (8 * 1024 * 1024 // 3 - 2) + b"[]]"
    elif kind == "not http":
        return kind, rng.randbytes(rng.randint(1, 4096)) + b"\r\n\r\n"
    elif kind == "huge content-length":
        head = "POST /events HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999\r\n"
        return kind, (head + good + "\r\n").encode() + b"[" * 1000
    if body:
        head = head.replace("GET /kpis", "POST /events", 1)
        head += f"Content-Length: {len(body)}\r\nContent-Type: application/json\r\n"
    return kind, (head + "Connection: close\r\n\r\n").encode("latin-1") + body


async def fuzz(port: int, n: int, seed: int = 0, workers: int = 32) -> Counter:
    """``n`` fuzzed requests, ``workers`` at a time, each on its own connection; a Counter of
    (kind, status) with status 'closed' where the server closed without answering."""
    rng = random.Random(seed)
    todo = [fuzz_requests(rng) for _ in range(n)]  # drawn first: the same for every run
    seen: Counter = Counter()

    async def one(kind: str, data: bytes) -> None:
        status = "closed"
        try:
            reader, writer = await asyncio.open_connection(HOST, port)
            try:
                writer.write(data)
                await asyncio.wait_for(writer.drain(), 30)
            except OSError:
                pass
            try:
                head = await asyncio.wait_for(reader.read(64), 30)
            except (OSError, TimeoutError):
                head = b""
            if head.startswith(b"HTTP/1.1 "):
                status = head.split()[1].decode()
            writer.close()
        except OSError as exc:
            status = type(exc).__name__
        seen[kind, status] += 1

    queue = list(reversed(todo))

    async def worker() -> None:
        while queue:
            await one(*queue.pop())

    await asyncio.gather(*(worker() for _ in range(workers)))
    return seen


async def tiny_values(port: int, k: int) -> Counter:
    """``k`` POST /events of 8 MiB of `[],` at once: a Counter of their statuses."""
    body = b"[" + b"[]," * (8 * 1024 * 1024 // 3 - 2) + b"[]]"
    head = (
        f"POST /events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    ).encode()

    async def one() -> str:
        reader, writer = await asyncio.open_connection(HOST, port)
        writer.write(head + body)
        await writer.drain()
        answer = await asyncio.wait_for(reader.read(64), 60)
        writer.close()
        return answer.split()[1].decode() if answer.startswith(b"HTTP/1.1 ") else "closed"

    return Counter(await asyncio.gather(*(one() for _ in range(k))))


# --------------------------------------------------------------------------- (b) GET p99
def wrk(port: int, duration: float) -> tuple[float, int] | None:
    """(requests/s, non-2xx answers) from wrk -t2 -c64, or None without wrk."""
    import re

    if shutil.which("wrk") is None:
        return None
    out = subprocess.run(
        ["wrk", "-t2", "-c64", f"-d{int(duration)}s", "-H", f"Authorization: Bearer {TOKEN}",
         f"http://{HOST}:{port}/equipment/LITH01"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    m = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    return rps, int(m.group(1)) if m else 0


# --------------------------------------------------------------------------- (c) half-open
def half_open(port: int, pid: int, n: int) -> dict[str, object]:
    """Open ``n`` sockets each sending part of a request's headers; how /health fares and
    when the server has closed them."""
    import selectors

    socks = []
    refused = 0
    t0 = time.monotonic()
    for _ in range(n):
        try:
            s = socket.create_connection((HOST, port), timeout=5)
            s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: ")
            s.setblocking(False)
            socks.append(s)
        except OSError:
            refused += 1
    opened = time.monotonic() - t0
    time.sleep(0.2)
    out: dict[str, object] = {
        "opened": len(socks), "refused": refused, "open s": opened,
        "health while held": health(port), "server fds while held": open_fds(pid),
    }  # fmt: skip
    sel = selectors.DefaultSelector()
    for s in socks:
        sel.register(s, selectors.EVENT_READ)
    left = len(socks)
    deadline = time.monotonic() + HEADER_TIMEOUT + 10
    while left and time.monotonic() < deadline:
        for key, _ in sel.select(timeout=0.5):
            try:
                data = key.fileobj.recv(4096)
            except OSError:
                data = b""
            if not data:
                sel.unregister(key.fileobj)
                left -= 1
    out["all closed after s"] = time.monotonic() - t0 if not left else f"{left} still open"
    for s in socks:
        s.close()
    sel.close()
    out["health after"] = health(port)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--requests", type=int, default=10_000, help="fuzzed requests (a)")
    ap.add_argument("--half-open", type=int, default=3000, help="half-sent requests (c)")
    ap.add_argument("--over-cap", type=int, default=6000, help="half-sent, over the cap (c)")
    ap.add_argument("--duration", type=float, default=10.0, help="s per GET measurement (b)")
    ap.add_argument("--rate", type=float, default=1000.0, help="fixed GET rate (b)")
    ap.add_argument("--rounds", type=int, default=2, help="RSS measured after each (a)")
    ap.add_argument("--skip", default="", help="parts to skip, e.g. 'bc'")
    args = ap.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = max(args.half_open, args.over_cap) + 512
    if soft < want:  # this process holds the half-open sockets
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(want, hard), hard))
    rows: list[tuple[str, str]] = []
    tmp = Path(tempfile.mkdtemp(prefix="bench-attack-"))

    # (a) and (c): the rate limits off, every request reaches the parsers
    port = free_port()
    proc = start(
        tmp, port, rate_limit=0, auth_fail_rate=0, header_timeout=HEADER_TIMEOUT,
        max_connections=MAX_CONNECTIONS,
    )  # fmt: skip
    try:
        for k in (1, 8):  # the attack that peaked at 435 MB (one) and 1.4 GB (eight)
            _, hwm0 = memory(proc.pid)
            t0 = time.perf_counter()
            got = asyncio.run(tiny_values(port, k))
            _, hwm1 = memory(proc.pid)
            rows.append((f"(a) {k} x 8 MiB of [],[],... at once",
                         f"{got} in {time.perf_counter() - t0:.2f} s; peak RSS {hwm0:,.0f} -> "
                         f"{hwm1:,.0f} MiB"))  # fmt: skip
        rss0, _ = memory(proc.pid)
        rows.append(("(a) server RSS before fuzzing", f"{rss0:,.0f} MiB"))
        seen: Counter = Counter()
        half = args.requests // args.rounds
        for k in range(args.rounds):  # is it bounded, or a leak?
            n = half if k < args.rounds - 1 else args.requests - half * k
            t0 = time.perf_counter()
            seen += asyncio.run(fuzz(port, n, seed=k))
            wall = time.perf_counter() - t0
            time.sleep(1.0)
            rss1, hwm = memory(proc.pid)
            rows.append((f"(a) after {half * (k + 1):,} fuzzed requests (+{wall:.0f} s)",
                         f"{rss1:,.0f} MiB (+{rss1 - rss0:,.0f}); peak {hwm:,.0f} MiB"))  # fmt: skip
        by_status: Counter = Counter()
        for (_kind, status), k in sorted(seen.items()):
            by_status[status] += k
        rows.append(("(a) answers", ", ".join(f"{s}: {k}" for s, k in sorted(by_status.items()))))
        for kind in sorted({k for k, _ in seen}):
            got = ", ".join(f"{s} x{k}" for (kk, s), k in sorted(seen.items()) if kk == kind)
            rows.append((f"      {kind}", got))
        rows.append(("(a) /health after", str(health(port))))
        for n in () if "c" in args.skip else (args.half_open, args.over_cap):
            res = half_open(port, proc.pid, n)
            cap = f" (cap {MAX_CONNECTIONS})" if n > MAX_CONNECTIONS else ""
            rows.append((f"(c) {n:,} half-sent requests{cap}",
                         ", ".join(f"{k}: {v:.1f}" if isinstance(v, float) else f"{k}: {v}"
                                   for k, v in res.items())))  # fmt: skip
        rss, hwm = memory(proc.pid)
        rows.append(("(c) server RSS after", f"{rss:,.0f} MiB (peak {hwm:,.0f} MiB)"))
    finally:
        stop(proc)

    # (b): the rate limiter on, the bench client allowed (it sends at half its limit)
    if "b" in args.skip:
        return show(rows)
    port = free_port()
    proc = start(tmp, port, rate_limit=2 * args.rate, rate_burst=int(2 * args.rate))
    try:
        run = fixed_rate_run(port, proc.pid, args.rate, args.duration)
        rows.append((f"(b) GET p99 @ {args.rate:,.0f} req/s, limit {2 * args.rate:,.0f}/s",
                     f"{run['p99']:.1f} ms (p50 {run['p50']:.1f} ms, in-app p99 "
                     f"{run['app_p99']} ms, achieved {run['achieved']:,.0f}/s; "
                     "target <= 20 ms)"))  # fmt: skip
        res = wrk(port, 3)
        if res is not None:
            rows.append((f"(b) wrk -t2 -c64 3 s over the limit of {2 * args.rate:,.0f}/s",
                         f"{res[0]:,.0f} answers/s, {res[1]:,} of them not 2xx (429)"))  # fmt: skip
    finally:
        stop(proc)
    return show(rows)


def show(rows: list[tuple[str, str]]) -> int:
    width = max(len(r[0]) for r in rows)
    print(f"{'measure':<{width}}  result")
    for name, value in rows:
        print(f"{name:<{width}}  {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
