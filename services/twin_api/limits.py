"""Server limits: what one client (or a crowd of them) may hold of the service.

``server_config(app, settings, host, port)`` is how ``twin serve`` and ``twin up`` run the app
under uvicorn. Around the app it adds what only the server can see:

- ``LimitedHttp``, uvicorn's httptools protocol with: a cap on the bytes of a request's line
  and headers (431 and the connection closed, without reading more; httptools has no limit of
  its own, so a 100 MB header was read whole), a deadline for the headers of each request
  (a connection that has not sent complete headers ``header_timeout`` s after it opened, or
  after the first byte of its next request, is closed), a cap on open connections (the one
  that has waited longest for its headers is closed to make room; with none waiting, the new
  connection is closed at once, so file descriptors never run out) and a cap on requests in
  progress (503 beyond it; ``/health`` is always answered). Connection and header timers cost
  a dict insert and delete per request: one sweep a fraction of a second checks them all.
- ``RateLimit``, an ASGI layer: a token bucket per client address (no exemption for loopback)
  and a stricter one charged only by failed authentication (401, a refused WebSocket
  handshake); an empty bucket answers 429 with ``Retry-After``.

The body read timeout (408) and the JSON-value bound of ``POST /events`` live with the app
(``twin_api.app.BodyLimit``, ``twin_api.routers.events.ingest_body``), so they hold
under any ASGI server.
"""

from __future__ import annotations

import asyncio
import functools
import math
import time
from typing import Any

import orjson
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

HEALTH = "/health"
READY = "/ready"
PROBES = (HEALTH, READY, "/v1" + HEALTH, "/v1" + READY)  # answered over the concurrency cap
# file descriptors beside the connections: the store, logs, worker pipes (256), and one batch
# of accepted connections (uvicorn's backlog, 2048) that may be open before the cap closes some
FD_SPARE = 256 + 2048


def problem(status: int, title: str, detail: str) -> bytes:
    """An RFC 9457 problem body (``detail`` as in every error of the API)."""
    return orjson.dumps({"type": "about:blank", "title": title, "status": status, "detail": detail})


PROBLEM_TYPE = (b"content-type", b"application/problem+json")


async def send_problem(
    send: Any,
    status: int,
    title: str,
    detail: str,
    headers: list[tuple[bytes, bytes]] = (),  # type: ignore[assignment]
    prefix: str = "http",
) -> None:
    """Send a whole problem response through ASGI ``send`` (``prefix`` "websocket.http" for a
    refused WebSocket handshake)."""
    body = problem(status, title, detail)
    await send(
        {
            "type": f"{prefix}.response.start",
            "status": status,
            "headers": [PROBLEM_TYPE, (b"content-length", b"%d" % len(body)), *headers],
        }
    )
    await send({"type": f"{prefix}.response.body", "body": body})


def raw_response(status: int, title: str, detail: str, extra: bytes = b"") -> bytes:
    """A whole HTTP/1.1 response that closes the connection, for the protocol to write."""
    body = problem(status, title, detail)
    return b"".join(
        (
            STATUS_LINE[status],
            b"content-type: application/problem+json\r\n",
            b"content-length: %d\r\nconnection: close\r\n" % len(body),
            extra,
            b"\r\n",
            body,
        )
    )


# --------------------------------------------------------------------------- the protocol
class Guard:
    """What the connections of one server share: the settings and the connections still
    waiting for their request headers, oldest first (dict order), with their deadlines."""

    def __init__(self, settings: Any, app: Any) -> None:
        self.max_header_bytes: int = settings.max_header_bytes
        self.header_timeout: float = settings.header_timeout
        self.max_connections: int = settings.max_connections
        self.max_concurrency: int = settings.max_concurrency
        self.app = app
        self.pending: dict[LimitedHttp, float] = {}
        self.sweeping = False
        self.closed_slow = 0  # connections closed for slow headers (for tests and benches)
        self.closed_full = 0  # new connections closed by the connection cap
        self.evicted = 0  # connections waiting for headers closed to make room
        self.refused_large = 0  # 431s

    async def busy(self, scope: dict, receive: Any, send: Any) -> None:
        """The app of a request over the concurrency cap: 503, but ``/health`` answers."""
        if scope.get("path") in PROBES:
            return await self.app(scope, receive, send)
        await send_problem(
            send,
            503,
            "Service Unavailable",
            f"over {self.max_concurrency} requests in progress (TWIN_MAX_CONCURRENCY); retry",
            [(b"retry-after", b"1"), (b"connection", b"close")],
        )

    def wait_headers(self, conn: LimitedHttp, loop: asyncio.AbstractEventLoop) -> None:
        if conn not in self.pending:
            self.pending[conn] = time.monotonic() + self.header_timeout
            if not self.sweeping:
                self.sweeping = True
                loop.call_later(self._period(), self._sweep, loop)

    def _period(self) -> float:
        return min(1.0, max(0.05, self.header_timeout / 4))

    def _sweep(self, loop: asyncio.AbstractEventLoop) -> None:
        """Close every connection past its header deadline (the oldest come first)."""
        now = time.monotonic()
        pending = self.pending
        while pending:
            conn, deadline = next(iter(pending.items()))
            if deadline > now:
                break
            del pending[conn]
            self.closed_slow += 1
            conn.transport.close()
        if pending:
            loop.call_later(self._period(), self._sweep, loop)
        else:
            self.sweeping = False


class LimitedHttp(HttpToolsProtocol):
    """uvicorn's httptools protocol with the header size and time limits, the connection cap
    and the concurrency cap of ``Guard`` (see the module docstring)."""

    def __init__(self, *args: Any, guard: Guard, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.guard = guard
        self.header_bytes = 0  # of the current request's line and headers, from whole reads
        self.began = False  # did a request begin in the read being parsed?
        self.served = self.app  # uvicorn's wrapping of the app (proxy headers, ...)

    def connection_made(self, transport: Any) -> None:  # type: ignore[override]
        super().connection_made(transport)
        g = self.guard
        if len(self.connections) > g.max_connections:
            if g.pending:  # make room: the connection that has waited longest for headers
                oldest = next(iter(g.pending))
                del g.pending[oldest]
                g.evicted += 1
                oldest.transport.close()
            else:
                g.closed_full += 1
                transport.write(
                    raw_response(
                        503,
                        "Service Unavailable",
                        f"over {g.max_connections} open connections (TWIN_MAX_CONNECTIONS); retry",
                        b"retry-after: 1\r\n",
                    )
                )
                transport.close()
                return
        g.wait_headers(self, self.loop)

    def connection_lost(self, exc: Exception | None) -> None:
        self.guard.pending.pop(self, None)
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        self.began = False
        super().data_received(data)
        g = self.guard
        # still inside a request's line and headers: count the read if all of it was (one that
        # began a request may hold the end of the one before, a pipelined body: not counted,
        # so the limit holds to within one read, 256 KiB at most)
        if self in g.pending and not self.began:
            self.header_bytes += len(data)
            if self.header_bytes > g.max_header_bytes and not self.transport.is_closing():
                del g.pending[self]
                g.refused_large += 1
                self.transport.write(
                    raw_response(
                        431,
                        "Request Header Fields Too Large",
                        f"request line and headers over {g.max_header_bytes} bytes "
                        "(TWIN_MAX_HEADER_BYTES)",
                    )
                )
                self.transport.close()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self.began = True
        self.header_bytes = 0
        self.guard.wait_headers(self, self.loop)

    def on_headers_complete(self) -> None:
        g = self.guard
        g.pending.pop(self, None)
        self.header_bytes = 0
        self.app = g.busy if len(self.tasks) >= g.max_concurrency else self.served
        super().on_headers_complete()


# --------------------------------------------------------------------------- rate limits
class RateLimit:
    """Token buckets per client address: ``rate`` requests/s up to ``burst`` at once, and
    ``fail_rate``/``fail_burst`` charged only by failed authentication; a request from an
    address with either bucket empty is answered 429 with ``Retry-After`` (seconds). A rate
    of 0 turns that bucket off. At most ``max_clients`` addresses are remembered (the oldest
    are forgotten first, which only ever gives one a fresh bucket)."""

    def __init__(
        self,
        app: Any,
        rate: float,
        burst: int,
        fail_rate: float,
        fail_burst: int,
        max_clients: int = 65536,
    ) -> None:
        self.app = app
        self.rate, self.burst = rate, float(burst)
        self.fail_rate, self.fail_burst = fail_rate, float(fail_burst)
        self.max_clients = max_clients
        self.buckets: dict[str, list[float]] = {}  # address -> [tokens, fail tokens, time]
        self.refused = 0

    def _bucket(self, addr: str, now: float) -> list[float]:
        b = self.buckets.get(addr)
        if b is None:
            if len(self.buckets) >= self.max_clients:
                for k in list(self.buckets)[: self.max_clients // 4]:
                    del self.buckets[k]
            b = self.buckets[addr] = [self.burst, self.fail_burst, now]
            return b
        dt = now - b[2]
        b[2] = now
        if self.rate:
            b[0] = min(self.burst, b[0] + dt * self.rate)
        if self.fail_rate:
            b[1] = min(self.fail_burst, b[1] + dt * self.fail_rate)
        return b

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        kind = scope["type"]
        if kind != "http" and kind != "websocket":
            return await self.app(scope, receive, send)
        client = scope.get("client")
        addr = client[0] if client else ""
        b = self._bucket(addr, time.monotonic())
        wait = 0.0
        if self.fail_rate and b[1] < 1:
            wait = (1 - b[1]) / self.fail_rate
            why = f"too many failed authentications from {addr} (TWIN_AUTH_FAIL_RATE)"
        elif self.rate:
            if b[0] < 1:
                wait = (1 - b[0]) / self.rate
                why = f"over {self.rate:g} requests/s from {addr} (TWIN_RATE_LIMIT)"
            else:
                b[0] -= 1
        if wait:
            self.refused += 1
            return await self._refuse(scope, send, why, wait)
        if not self.fail_rate:
            return await self.app(scope, receive, send)

        accepted = False

        async def watch(msg: dict) -> None:
            nonlocal accepted
            t = msg["type"]
            if t == "http.response.start" or t == "websocket.http.response.start":
                if msg["status"] == 401:
                    b[1] -= 1
            elif t == "websocket.accept":
                accepted = True
            elif t == "websocket.close" and not accepted and msg.get("code") == 4401:
                b[1] -= 1
            await send(msg)

        await self.app(scope, receive, watch)

    async def _refuse(self, scope: dict, send: Any, why: str, wait: float) -> None:
        after = max(1, math.ceil(wait))
        detail = f"{why}; retry after {after} s"
        if scope["type"] == "http":
            await send_problem(
                send, 429, "Too Many Requests", detail, [(b"retry-after", b"%d" % after)]
            )
        elif "websocket.http.response" in scope.get("extensions", {}):
            await send_problem(
                send,
                429,
                "Too Many Requests",
                detail,
                [(b"retry-after", b"%d" % after)],
                prefix="websocket.http",
            )
        else:
            await send({"type": "websocket.close", "code": 1013, "reason": "rate limited"})


# --------------------------------------------------------------------------- assembly
def limited_app(app: Any, settings: Any) -> Any:
    """``app`` behind the per-client rate limits of ``settings`` (itself when both are off)."""
    if not settings.rate_limit and not settings.auth_fail_rate:
        return app
    return RateLimit(
        app,
        settings.rate_limit,
        settings.rate_burst,
        settings.auth_fail_rate,
        settings.auth_fail_burst,
    )


def server_config(app: Any, settings: Any, host: str, port: int, **options: Any) -> Any:
    """The ``uvicorn.Config`` that serves ``app`` with every server limit of ``settings``."""
    import uvicorn

    from twin_api.app import UVICORN_OPTIONS

    outer = limited_app(app, settings)
    guard = Guard(settings, outer)
    config = uvicorn.Config(
        outer,
        host=host,
        port=port,
        http=functools.partial(LimitedHttp, guard=guard),  # type: ignore[arg-type]
        **{**UVICORN_OPTIONS, **options},
    )
    config.guard = guard  # type: ignore[attr-defined]
    return config


def raise_fd_limit(wanted: int) -> int:
    """Raise this process's soft limit on open files to ``wanted`` where the hard limit
    allows; returns the soft limit now in force (``wanted`` where there is no such limit)."""
    try:
        import resource
    except ImportError:  # pragma: no cover - not POSIX
        return wanted
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or soft >= wanted:
        return wanted
    new = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (new, hard))
    except (ValueError, OSError):
        return soft
    return new
