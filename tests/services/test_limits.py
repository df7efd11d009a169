"""Server limits (twin_api.limits, BodyLimit, the POST /events value bound) against real
uvicorn servers on 127.0.0.1 with small limits: each test takes a few seconds at most."""

from __future__ import annotations

import signal
import socket
import threading
import time
import tracemalloc
from collections.abc import Iterator

import httpx
import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from tests.services.conftest import ADMIN, LiveServer, auth, free_port, make_settings
from twin_api.app import create_app
from twin_api.limits import server_config
from twin_api.routers.events import json_values, json_values_bound

INGEST = auth("ingest")


class LimitedServer(LiveServer):
    """``create_app(settings)`` served as ``twin serve`` serves it (``server_config``)."""

    def __init__(self, **kw) -> None:
        import uvicorn

        self.settings = make_settings(**kw)
        self.app = create_app(self.settings)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.config = server_config(self.app, self.settings, "127.0.0.1", self.port)
        self.server = uvicorn.Server(self.config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def guard(self):
        return self.config.guard

    def connections(self) -> int:
        return len(self.server.server_state.connections)

    def sock(self, timeout: float = 5.0) -> socket.socket:
        s = socket.create_connection(("127.0.0.1", self.port), timeout=timeout)
        return s


@pytest.fixture(scope="module")
def srv() -> Iterator[LimitedServer]:
    """Small limits, no rate limits (other tests would trip them)."""
    with LimitedServer(
        max_header_bytes=8192,
        header_timeout=0.6,
        body_timeout=0.6,
        max_connections=30,
        max_batch=10,
        rate_limit=0,
        auth_fail_rate=0,
    ) as s:
        yield s


def read_all(s: socket.socket, limit: float = 5.0) -> bytes:
    """Everything the server sends until it closes (or ``limit`` s pass)."""
    out = b""
    s.settimeout(limit)
    try:
        while chunk := s.recv(65536):
            out += chunk
    except (ConnectionResetError, TimeoutError):
        pass
    return out


def health(url: str) -> int:
    return httpx.get(url + "/health", timeout=5).status_code


# ------------------------------------------------------------------ header size and time
def test_oversized_headers_answered_431_without_reading_them(srv):
    """Request headers over max_header_bytes are answered 431 (problem JSON) and the
    connection closed: the server stops reading long before the client has sent 4 MiB."""
    before = srv.guard.refused_large
    s = srv.sock()
    s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ")
    sent, t0 = 0, time.monotonic()
    try:
        while sent < 4 * 1024 * 1024 and time.monotonic() - t0 < 5:
            s.sendall(b"a" * 4096)
            sent += 4096
    except OSError:  # reset: the server closed it
        pass
    answer = read_all(s)
    s.close()
    assert srv.guard.refused_large == before + 1
    assert answer == b"" or answer.startswith(b"HTTP/1.1 431"), answer[:200]
    if answer:
        assert b"application/problem+json" in answer and b"TWIN_MAX_HEADER_BYTES" in answer
    assert health(srv.url) == 200


def test_headers_just_under_the_limit_are_served(srv):
    """Headers a little under max_header_bytes (in several packets) are served as usual."""
    s = srv.sock()
    head = b"GET /health HTTP/1.1\r\nHost: x\r\nX-Pad: " + b"p" * 7000 + b"\r\n\r\n"
    for i in range(0, len(head), 1000):
        s.sendall(head[i : i + 1000])
    answer = s.recv(65536)
    s.close()
    assert answer.startswith(b"HTTP/1.1 200"), answer[:200]


def test_pipelined_body_not_counted_as_headers(srv):
    """A read holding a body bigger than max_header_bytes and the start of the next
    pipelined request does not count the body against that request's header limit."""
    body = b"[" + b" " * 20_000 + b"]"
    s = srv.sock()
    s.sendall(
        b"POST /events HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n" % len(body)
        + f"Authorization: {INGEST['Authorization']}\r\n\r\n".encode()
        + body
        + b"GET /health HTTP/1.1\r\n"
    )
    time.sleep(0.2)
    s.sendall(b"Host: x\r\nConnection: close\r\n\r\n")
    answers = read_all(s)
    s.close()
    assert answers.count(b"HTTP/1.1 200") == 2, answers[:500]


def test_stalled_headers_closed_after_the_timeout(srv):
    """A connection that sends part of its headers, or nothing, or drips a byte at a time, is
    closed header_timeout after it opened (not held open by the drip)."""
    socks = [srv.sock() for _ in range(3)]
    t0 = time.monotonic()
    socks[0].sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n")
    drip = b"GET /health HTTP/1.1\r\nX-Slow: " + b"z" * 100
    try:
        for b in drip:  # 4 s of drip unless it is closed
            socks[2].sendall(bytes([b]))
            time.sleep(0.04)
    except OSError:
        pass
    dripped = time.monotonic() - t0
    closed = [read_all(s, limit=5) for s in socks]
    elapsed = time.monotonic() - t0
    assert closed == [b"", b"", b""]
    assert 0.5 <= elapsed < 3.5 and dripped < 3.5, (elapsed, dripped)
    for s in socks:
        s.close()


def test_keep_alive_connection_not_closed_by_the_header_timeout(srv):
    """The header deadline starts at a request's first byte: a kept-alive connection idle
    between requests is governed by the keep-alive timeout, and serves its next request."""
    with httpx.Client(base_url=srv.url, timeout=5) as c:
        assert c.get("/health").status_code == 200
        time.sleep(1.0)  # past header_timeout (0.6 s), within keep-alive (5 s)
        assert c.get("/health").status_code == 200
        assert c.get("/health").http_version == "HTTP/1.1"


def test_garbage_bytes_answered_400(srv):
    """Bytes that are not HTTP are answered 400 and the connection closed."""
    s = srv.sock()
    s.sendall(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(range(256)) + b"\r\n\r\n")
    answer = read_all(s)
    s.close()
    assert answer.startswith(b"HTTP/1.1 400"), answer[:100]


# ------------------------------------------------------------------ body time
def stalled_post(srv, path: str, headers: dict[str, str]) -> tuple[bytes, float]:
    s = srv.sock()
    head = f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n"
    head += "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    s.sendall(head.encode() + b"\r\n" + b'[{"id": "a"')
    t0 = time.monotonic()
    answer = read_all(s)
    s.close()
    return answer, time.monotonic() - t0


def test_stalled_body_answered_408_and_closed(srv):
    """A request body that stalls for body_timeout is answered 408 (problem JSON naming the
    setting) and the connection closed, for the fast path (POST /events) and a FastAPI route
    that reads its body (POST /whatif)."""
    for path, headers in (("/events", INGEST), ("/whatif", ADMIN)):
        answer, elapsed = stalled_post(srv, path, headers)
        assert answer.startswith(b"HTTP/1.1 408"), (path, answer[:300])
        assert b"application/problem+json" in answer and b"TWIN_BODY_TIMEOUT" in answer
        assert b"connection: close" in answer.lower()
        assert 0.5 <= elapsed < 4, (path, elapsed)


def test_slow_but_flowing_body_is_served(srv):
    """A body sent in parts with pauses shorter than body_timeout is read and answered."""
    body = orjson.dumps([])
    s = srv.sock()
    head = f"POST /events HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body) + 8}\r\n"
    head += f"Authorization: {INGEST['Authorization']}\r\n\r\n"
    s.sendall(head.encode() + b"  ")
    for part in (b"  ", b"  ", b"  " + body):
        time.sleep(0.3)
        s.sendall(part)
    answer = s.recv(65536)
    s.close()
    assert answer.startswith(b"HTTP/1.1 200"), answer[:300]


# ------------------------------------------------------------------ connections
def test_connection_cap_keeps_health_answering(srv):
    """Beyond max_connections the connections waiting longest for their headers are closed,
    so 90 half-sent requests on a cap of 30 leave the server at most at its cap and /health
    still answers."""
    socks = []
    try:
        for _ in range(90):
            s = srv.sock()
            s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n")
            socks.append(s)
        time.sleep(0.1)
        assert srv.connections() <= 30
        assert health(srv.url) == 200
        # the first ones were evicted: their reads see the close at once
        socks[0].settimeout(2)
        assert socks[0].recv(100) == b""
    finally:
        for s in socks:
            s.close()


def test_full_of_active_connections_refuses_new_ones_with_503():
    """When every connection has sent its request (none to evict), a connection over the cap
    is answered 503 with Retry-After and closed at once; after those close, it is served."""
    with LimitedServer(max_connections=3, rate_limit=0, auth_fail_rate=0) as srv:
        clients = [httpx.Client(base_url=srv.url, timeout=5) for _ in range(3)]
        try:
            for c in clients:  # kept alive after their answers: idle, not waiting for headers
                assert c.get("/health").status_code == 200
            r = httpx.get(srv.url + "/health", timeout=5)
            assert r.status_code == 503 and r.headers["retry-after"] == "1"
            assert "TWIN_MAX_CONNECTIONS" in r.json()["detail"]
        finally:
            for c in clients:
                c.close()
        time.sleep(0.2)
        assert health(srv.url) == 200


def test_concurrency_cap_answers_503_but_health():
    """Over max_concurrency requests in progress, a request is answered 503 with Retry-After
    (problem JSON); /health is still served; once they finish, requests are served again."""
    with LimitedServer(
        max_concurrency=3, ws_max_clients=1, body_timeout=3, rate_limit=0, auth_fail_rate=0
    ) as srv:
        held = []
        for _ in range(3):  # each waits for the rest of its body: in progress
            s = srv.sock()
            head = "POST /events HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n"
            s.sendall(f"{head}Authorization: {INGEST['Authorization']}\r\n\r\n[".encode())
            held.append(s)
        time.sleep(0.3)
        r = httpx.get(srv.url + "/equipment/LITH01", headers=ADMIN, timeout=5)
        assert r.status_code == 503 and r.headers["retry-after"] == "1"
        assert r.headers["content-type"] == "application/problem+json"
        assert r.json()["status"] == 503 and "TWIN_MAX_CONCURRENCY" in r.json()["detail"]
        assert health(srv.url) == 200
        for s in held:
            s.close()
        time.sleep(0.3)
        assert httpx.get(srv.url + "/kpis", headers=ADMIN, timeout=5).status_code == 200


# ------------------------------------------------------------------ rate limits
def test_rate_limit_429_with_retry_after():
    """A client address over its bucket (burst then rate/s) is answered 429 with Retry-After
    and a problem JSON naming the setting; loopback has no exemption; it refills."""
    with LimitedServer(rate_limit=5, rate_burst=5, auth_fail_rate=0) as srv:
        with httpx.Client(base_url=srv.url, timeout=5) as c:
            codes = [c.get("/equipment/LITH01", headers=ADMIN).status_code for _ in range(6)]
            assert codes[:5] == [200] * 5 and codes[5] == 429
            r = c.get("/health")
            assert r.status_code == 429 and int(r.headers["retry-after"]) >= 1
            p = r.json()
            assert p["status"] == 429 and p["title"] == "Too Many Requests"
            assert "TWIN_RATE_LIMIT" in p["detail"] and "127.0.0.1" in p["detail"]
            time.sleep(0.5)  # 5/s: two tokens back
            assert c.get("/health").status_code == 200


def test_failed_authentication_has_a_stricter_bucket():
    """Wrong tokens drain the failed-authentication bucket: after auth_fail_burst 401s the
    address is answered 429 (even with a good token) until it refills; 403s do not count."""
    with LimitedServer(
        rate_limit=1000, rate_burst=1000, auth_fail_rate=2, auth_fail_burst=3
    ) as srv:
        with httpx.Client(base_url=srv.url, timeout=5) as c:
            for _ in range(5):  # a read token on POST /events: 403, not a failed login
                assert c.post("/events", json=[], headers=auth("read")).status_code == 403
            bad = {"Authorization": "Bearer wrong-" + "x" * 30}
            codes = [c.get("/kpis", headers=bad).status_code for _ in range(4)]
            assert codes == [401, 401, 401, 429]
            r = c.get("/kpis", headers=ADMIN)
            assert r.status_code == 429 and "TWIN_AUTH_FAIL_RATE" in r.json()["detail"]
            time.sleep(0.6)  # 2/s: one failure allowed again
            assert c.get("/kpis", headers=ADMIN).status_code == 200


def test_refused_stream_handshakes_count_as_failed_authentication():
    """WS /stream handshakes with a wrong token drain the failed-authentication bucket like
    401s do; then even a good token's handshake is answered 429 with Retry-After."""
    import asyncio

    import websockets

    with LimitedServer(rate_limit=0, auth_fail_rate=0.1, auth_fail_burst=2) as srv:
        url = srv.url.replace("http", "ws") + "/stream?token="

        async def attempt(token: str) -> str:
            try:
                async with websockets.connect(url + token) as ws:
                    return "ok" if '"live"' in await asyncio.wait_for(ws.recv(), 10) else "?"
            except websockets.exceptions.InvalidStatus as exc:
                r = exc.response
                return f"{r.status_code} {r.headers.get('retry-after')}"

        got = [asyncio.run(attempt(t)) for t in ("nope", "nope", auth("read")["Authorization"][7:])]
        assert got[:2] == ["401 None", "401 None"] and got[2] in ("429 9", "429 10"), got


# ------------------------------------------------------------------ POST /events bodies
def test_tiny_values_over_the_cap_refused_413_without_parsing(srv):
    """8 MiB of `[],[],...` (2.8 million values, far over max_batch × max_event_values) is
    refused 413 naming the limits, within seconds, and the server's Python allocations for
    it stay small (parsing it would build 2.8 million lists: hundreds of MB)."""
    body = b"[" + b"[]," * (8 * 1024 * 1024 // 3 - 2) + b"[]]"
    assert len(body) <= srv.settings.max_body_bytes
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        t0 = time.monotonic()
        r = httpx.post(srv.url + "/events", content=body, headers=INGEST, timeout=30)
        elapsed = time.monotonic() - t0
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert r.status_code == 413, r.text[:300]
    assert "JSON values" in r.json()["detail"] and "TWIN_MAX_EVENT_VALUES" in r.json()["detail"]
    assert elapsed < 10
    # the body itself (8 MiB) is held a few times over; 2.8 M lists would be > 150 MB
    assert peak < 80 * 1024 * 1024, peak / 2**20


def test_realistic_batch_within_the_value_bound(srv):
    """A batch of max_batch ordinary events passes the value bound and is ingested."""
    events = [
        {"id": f"lim:{i}", "source": "lim", "seq": i, "time": "2026-01-31T08:00:00.000Z",
         "type": "equipment.state", "subject": "LITH01",
         "data": {"state": "standby", "reason": "idle, waiting: for lots"}}
        for i in range(1, 11)
    ]  # fmt: skip
    body = orjson.dumps(events)
    assert json_values_bound(body) <= 10 * 64
    r = httpx.post(srv.url + "/events", content=body, headers=INGEST, timeout=10)
    assert r.status_code == 200 and r.json()["received"] == 10, r.text[:300]


@pytest.mark.parametrize(
    "body, status",
    [
        (b"[" * 100_000 + b"]" * 100_000, 413),  # deep nesting: 100,000 values
        (b"[" * 2000 + b"]" * 2000, 413),  # deeper than orjson's limit: values first
        (b"\xff\xfe garbage \x00", 400),
        # lone surrogates, raw or escaped: that event alone is rejected (was a 500 from the store)
        ('[{"id": "x\ud800"}]'.encode("utf-8", "surrogatepass"), 200),
        (b'{"events": "\\ud800"}', 422),  # not a list of events
        (b'[{"id": "\\udfff", "data": {"\\ud800": 1}}]', 200),
        (b'[{"id": "x", "seq": 1e999}]', 200),  # orjson refuses inf: that event is rejected
        (b'[{"id": "' + b"\\u" * 1000 + b'"}]', 400),
        (b'"' + b'\\"' * 100_000 + b'"', 422),  # one string of escaped quotes: one value
        (b"[" + b"1e999999," * 10 + b"1]", 413),  # 11 events over max_batch 10
    ],
)
def test_hostile_bodies_answered_4xx(srv, body, status):
    """Hostile POST /events bodies get a 4xx naming the problem (or each event rejected on
    its own), never a 500."""
    r = httpx.post(srv.url + "/events", content=body, headers=INGEST, timeout=30)
    assert r.status_code == status, r.text[:300]
    assert "detail" in r.json() if status != 200 else r.json()["rejected"] == 1


def test_nesting_past_both_parsers_is_400():
    """A body nested past orjson's limit and Python's recursion is a 400, not a 500 (with a
    value bound that lets it reach the parsers)."""
    from fastapi import HTTPException

    from twin_api.routers.events import ingest_body

    with pytest.raises(HTTPException) as e:
        ingest_body(None, b"[" * 100_000 + b"]" * 100_000, cap=10_000, per_event=64)
    assert e.value.status_code == 400 and "nested too deeply" in e.value.detail


def test_huge_content_length_413(srv):
    """A declared body length past any integer the server could hold is refused 413."""
    s = srv.sock()
    s.sendall(
        b"POST /events HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999\r\n"
        + f"Authorization: {INGEST['Authorization']}\r\n\r\n[".encode()
    )
    answer = read_all(s, limit=3)
    s.close()
    assert answer[:12] in (b"HTTP/1.1 413", b"HTTP/1.1 400"), answer[:200]


def _count(doc) -> int:
    if isinstance(doc, list):
        return 1 + sum(_count(x) for x in doc)
    if isinstance(doc, dict):
        return 1 + sum(1 + _count(v) for v in doc.values())
    return 1


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(), inner, max_size=5),
    max_leaves=30,
)


@given(JSON, st.booleans())
def test_json_values_counts_exactly(doc, indent):
    """json_values equals the number of values and keys a parser builds, whatever the strings
    hold (quotes, backslashes, commas, colons, brackets), and the cheap bound is above it."""
    import json

    body = json.dumps(doc, indent=2 if indent else None).encode()
    assert json_values(body) == _count(doc)
    assert json_values_bound(body) >= _count(doc)


# ------------------------------------------------------------------ query bounds
@pytest.mark.parametrize(
    "query",
    ["after=1e20", "after=100000000000000000000", "after=9223372036854775808",
     "limit=100000000000000000000", "after=-1", "after=%ED%A0%80", "limit=" + "9" * 5000],
)  # fmt: skip
def test_events_positions_bounded_to_int64(srv, query):
    """?after= past signed 64 bits (or not an integer) is answered 422 naming the accepted
    range (it reached SQLite and answered 500); ?limit= past the page maximum names that."""
    r = httpx.get(srv.url + "/events?" + query, headers=ADMIN, timeout=5)
    assert r.status_code == 422, r.text[:300]
    if query.startswith("after=") and (query.endswith("0000") or query.endswith("808")):
        assert "9223372036854775807" in r.text
    if query == "limit=100000000000000000000":
        assert "over the maximum of 1000" in r.text


def test_events_after_int64_max_is_an_empty_page(srv):
    """The largest accepted position is served: an empty page."""
    r = httpx.get(srv.url + f"/events?after={2**63 - 1}&limit=1000", headers=ADMIN)
    assert r.status_code == 200 and r.json()["items"] == []


# ------------------------------------------------------------------ settings
def test_limit_settings_validated_all_at_once():
    """Nonsense limits are refused at start, every problem named in one error."""
    with pytest.raises(ValidationError) as e:
        make_settings(
            max_header_bytes=10,
            header_timeout=float("nan"),
            body_timeout=0,
            max_connections=0,
            rate_limit=-1,
            auth_fail_rate=float("inf"),
            max_event_values=0,
            max_concurrency=5,
            ws_max_clients=10,
        )
    text = str(e.value)
    for name in ("max_header_bytes", "header_timeout", "body_timeout", "max_connections",
                 "rate_limit", "auth_fail_rate", "max_event_values", "max_concurrency"):  # fmt: skip
        assert name in text, name


def test_twin_serve_runs_uvicorn_with_the_limits(monkeypatch):
    """`twin serve`/`twin up` (service_commands._run) hand uvicorn the limited protocol and
    the rate limiter built from the settings, with room for the connection cap in the
    process's open-file limit."""
    import resource

    import uvicorn

    from twin import service_commands
    from twin_api.limits import FD_SPARE, LimitedHttp, RateLimit

    seen = {}

    def run(self) -> None:
        seen["config"] = self.config

    monkeypatch.setattr(uvicorn.Server, "run", run)
    settings = make_settings(max_connections=500, rate_limit=7)
    sigterm = signal.getsignal(signal.SIGTERM)
    try:
        assert service_commands._run(settings, "127.0.0.1", free_port()) == 1  # not started
    finally:
        signal.signal(signal.SIGTERM, sigterm)
    config = seen["config"]
    assert config.http.func is LimitedHttp and config.guard.max_connections == 500
    assert isinstance(config.app, RateLimit) and config.app.rate == 7
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    assert soft == resource.RLIM_INFINITY or soft >= 500 + FD_SPARE
