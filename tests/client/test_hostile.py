"""twin.client facing a hostile or broken server, and hostile arguments: every failure is a
clear TwinError naming what went wrong, nothing hangs, nothing unbounded is read."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator

import httpx
import pytest

from twin.client import (
    ClientConfigError,
    ProtocolError,
    ServerError,
    StreamClosed,
    TooBusy,
    Twin,
    TwinUnreachable,
)
from twin.errors import TwinError

URL = "http://twin.test"


def fake(handler) -> Twin:
    """A client whose every request ``handler(request) -> httpx.Response`` answers."""
    return Twin(URL, token="t" * 32, transport=httpx.MockTransport(handler))


def test_an_answer_that_is_not_json_is_a_protocol_error() -> None:
    """200 with garbage, or with JSON nested past the parser's depth: ProtocolError naming
    the request and how the answer begins."""
    with fake(lambda r: httpx.Response(200, content=b"{this is not json")) as tw:
        with pytest.raises(ProtocolError, match=r"GET /kpis: the answer is not JSON.*'\{this"):
            tw.kpis()
    deep = b"[" * 200_000 + b"]" * 200_000
    with fake(lambda r: httpx.Response(200, content=deep)) as tw:
        with pytest.raises(ProtocolError, match="not JSON"):
            tw.kpis()
    with fake(lambda r: httpx.Response(200, json={"items": "nope"})) as tw:
        with pytest.raises(ProtocolError, match=r"expected a page \{'items'"):
            tw.lots()


def test_an_error_without_a_problem_document_still_says_what_came_back() -> None:
    """A 502 with an HTML body (a proxy) is a ServerError whose detail is the body's start."""
    html = b"<html><body>Bad gateway</body></html>" + b" " * 10_000
    with fake(lambda r: httpx.Response(502, content=html)) as tw:
        with pytest.raises(ServerError, match="GET /lots/L1: 502 <html><body>Bad gateway") as i:
            tw.lot("L1")
    assert i.value.status == 502 and len(str(i.value)) < 400


def test_a_huge_body_is_refused_without_reading_it_all() -> None:
    """An announced Content-Length past max_body is refused before reading; a chunked body
    that grows past it is cut off as soon as it does (the server's stream is not drained)."""
    announced = httpx.Response(200, headers={"Content-Length": str(10**12)}, content=b"")
    with fake(lambda r: announced) as tw:
        with pytest.raises(ProtocolError, match="larger than the client accepts"):
            tw.kpis()
    sent = []

    def endless() -> Iterator[bytes]:
        while True:
            sent.append(1)
            yield b"[" + b"0," * 32_768

    with Twin(URL, max_body=2**20,
              transport=httpx.MockTransport(lambda r: httpx.Response(200, content=endless()))
              ) as tw:  # fmt: skip
        with pytest.raises(ProtocolError, match=r"max_body 1,048,576 bytes"):
            tw.kpis()
    assert len(sent) < 40  # 1 MiB in 64 KiB chunks, not the endless stream
    with pytest.raises(ClientConfigError):
        Twin(URL, max_body=0)


def test_bad_ids_and_parameters_are_refused_before_sending() -> None:
    """A lone surrogate, a non-string, an empty or a 100,000-character id, or a surrogate in a
    filter: ClientConfigError, and no request leaves; '/' in an id stays in its segment."""
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.url.raw_path.decode())
        return httpx.Response(200, json={"id": "x"})

    with fake(handler) as tw:
        for bad in ("\ud800", "lot-\udfff-1", "", "L" * 100_000, 42, None):
            with pytest.raises(ClientConfigError, match="lot id"):
                tw.lot(bad)  # type: ignore[arg-type]
        with pytest.raises(ClientConfigError, match="lone surrogate"):
            tw.lots(product="\ud800")
        with pytest.raises(ClientConfigError, match="page_size"):
            tw.lots(page_size=0)
        assert seen == []
        tw.lot("../equipment/LITH01")
        assert seen == ["/lots/..%2Fequipment%2FLITH01"]


def test_bad_urls_and_tokens_are_refused_and_the_token_is_never_shown() -> None:
    """Not http(s), no host, control characters: ClientConfigError; a token with a newline,
    a surrogate or a space is refused without being echoed; repr hides the token."""
    for url in ("ftp://x", "http://", "127.0.0.1:8000", "http://a b", "http://x\r\nHost: y",
                "\ud800", 8000):  # fmt: skip
        with pytest.raises(ClientConfigError, match="url"):
            Twin(url)  # type: ignore[arg-type]
    secret = "s3cret-" + "a" * 30
    for token in (secret + "\nX-Evil: 1", secret + "\ud800", secret + " x", "y" * 5000):
        with pytest.raises(ClientConfigError, match="not a bearer token") as info:
            Twin(URL, token=token)
        assert secret not in str(info.value)
    with Twin(URL, token=secret) as tw:
        assert secret not in repr(tw) and "token=set" in repr(tw)


def test_bodies_that_are_not_json_are_refused_before_sending() -> None:
    """NaN, an object JSON cannot write, nesting 100,000 deep, or a single event instead of a
    list: ClientConfigError."""
    with fake(lambda r: pytest.fail("nothing may be sent")) as tw:
        with pytest.raises(ClientConfigError, match="cannot be sent as JSON"):
            tw.post_events([{"time": float("nan")}])
        with pytest.raises(ClientConfigError, match="cannot be sent as JSON"):
            tw.post_events([object()])
        deep: list = []
        for _ in range(100_000):
            deep = [deep]
        with pytest.raises(ClientConfigError, match="cannot be sent as JSON"):
            tw.post_events([{"data": deep}])
        with pytest.raises(ClientConfigError, match="a list of events"):
            tw.post_events({"id": "a"})  # type: ignore[arg-type]


def test_a_paging_loop_or_a_foreign_next_link_is_refused() -> None:
    """A server whose next page is always the same, or a Link to another host: ProtocolError
    (the client neither loops for ever nor follows the link)."""
    loop = {"items": [{"id": "a"}], "total": 9, "offset": 0, "limit": 1, "next": 0}
    with fake(lambda r: httpx.Response(200, json=loop)) as tw:
        with pytest.raises(ProtocolError, match="a loop"):
            tw.lots()
    foreign = httpx.Response(200, json={"items": [{"id": "a"}]},
                             headers={"Link": '<http://evil.test/lots?c=2>; rel="next"'})  # fmt: skip
    with fake(lambda r: foreign) as tw:
        with pytest.raises(ProtocolError, match="outside http://twin.test"):
            tw.lots()


def test_link_header_cursor_and_offset_paging_are_all_followed() -> None:
    """The three paging styles a twin may use (a Link header, a cursor in ``next``, an offset
    in ``next``) each read every item once."""
    data = [{"id": f"L{i}"} for i in range(7)]

    def by_link(request: httpx.Request) -> httpx.Response:
        start = int(request.url.params.get("start", 0))
        headers = {"Link": f'</lots?start={start + 3}>; rel="next"'} if start + 3 < 7 else {}
        return httpx.Response(200, json={"items": data[start : start + 3]}, headers=headers)

    def by_cursor(request: httpx.Request) -> httpx.Response:
        start = int(request.url.params.get("cursor", "c0")[1:])
        nxt = f"c{start + 3}" if start + 3 < 7 else None
        return httpx.Response(200, json={"items": data[start : start + 3], "next": nxt})

    def by_offset(request: httpx.Request) -> httpx.Response:
        start = int(request.url.params.get("offset", 0))
        nxt = start + 3 if start + 3 < 7 else None
        return httpx.Response(200, json={"items": data[start : start + 3], "next": nxt})

    for handler in (by_link, by_cursor, by_offset):
        with fake(handler) as tw:
            assert list(tw.lots()["id"]) == [d["id"] for d in data], handler.__name__


def test_etags_are_sent_back_and_a_304_answers_from_the_cache() -> None:
    """With an ETag the client revalidates (If-None-Match) and a 304 gives the cached value,
    as a fresh object; a changed resource replaces it; without ETags nothing is cached."""
    state = {"rev": 1, "seen": []}

    def handler(request: httpx.Request) -> httpx.Response:
        state["seen"].append(request.headers.get("if-none-match"))
        tag = f'"r{state["rev"]}"'
        if request.headers.get("if-none-match") == tag:
            return httpx.Response(304, headers={"ETag": tag})
        return httpx.Response(200, json={"revision": state["rev"]}, headers={"ETag": tag})

    with fake(handler) as tw:
        first = tw.kpis()
        first["revision"] = 99  # the caller's copy: the cache is not touched
        assert tw.kpis() == {"revision": 1} and tw.cache_hits == 1
        state["rev"] = 2
        assert tw.kpis() == {"revision": 2} and tw.cache_hits == 1
        assert state["seen"] == [None, '"r1"', '"r1"']
    plain = {"n": 0}

    def no_etag(request: httpx.Request) -> httpx.Response:
        assert "if-none-match" not in request.headers
        plain["n"] += 1
        return httpx.Response(200, json={"revision": plain["n"]})

    with fake(no_etag) as tw:
        assert tw.kpis() != tw.kpis() and tw.cache_hits == 0


def test_busy_reads_are_retried_after_retry_after_and_then_given_up() -> None:
    """A GET answered 429 with a short Retry-After is sent again; past ``retries`` the
    TooBusy error (with retry_after) reaches the caller. A long Retry-After is not waited."""
    calls = {"n": 0}

    def busy_twice(request: httpx.Request) -> httpx.Response:
        calls["n"] += 1
        if calls["n"] <= 2:
            return httpx.Response(429, json={"status": 429, "detail": "slow down"},
                                  headers={"Retry-After": "0"})  # fmt: skip
        return httpx.Response(200, json={"ok": True})

    with fake(busy_twice) as tw:
        assert tw.kpis() == {"ok": True} and calls["n"] == 3
    long = httpx.Response(429, json={"detail": "later"}, headers={"Retry-After": "3600"})
    with fake(lambda r: long) as tw:
        with pytest.raises(TooBusy, match="429 later") as info:
            tw.kpis()
    assert info.value.retry_after == 3600


def test_an_unreachable_twin_is_named() -> None:
    """Nothing listening: TwinUnreachable naming the URL and `twin up`."""
    from tests.services.conftest import free_port

    with Twin(f"http://127.0.0.1:{free_port()}", timeout=5) as tw:
        with pytest.raises(TwinUnreachable, match="cannot reach the twin.*twin up"):
            tw.kpis()
        with pytest.raises(TwinUnreachable, match="event stream"):
            tw.stream()


@pytest.fixture
def ws_server():
    """A WebSocket server on a free port answering each connection with ``messages`` then a
    close with ``close`` (code, reason); yields a dict to set them in, and the URL."""
    from websockets.sync.server import serve

    plan: dict = {"messages": [], "close": (1000, "")}

    def handler(ws) -> None:
        for m in plan["messages"]:
            ws.send(m)
        ws.close(*plan["close"])

    server = serve(handler, "127.0.0.1", 0)
    port = server.socket.getsockname()[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield plan, f"http://127.0.0.1:{port}"
    server.shutdown()
    thread.join(5)


def test_a_stream_sending_garbage_or_closing_is_a_clear_error(ws_server) -> None:
    """A stream message that is not JSON or not a batch: ProtocolError; a close by the twin:
    StreamClosed with its code and the position to resume after."""
    plan, url = ws_server
    item = {"seq": 7, "event": {"id": "a:1"}}
    plan["messages"] = [json.dumps({"notice": "live", "seq": 6}), json.dumps([item]), "{oops"]
    with Twin(url, token="t" * 32) as tw, tw.stream() as s:
        assert s.next(timeout=10) == item and s.live and s.live_seq == 6
        with pytest.raises(ProtocolError, match="not JSON"):
            s.next(timeout=10)
    plan["messages"] = [json.dumps([{"seq": "x"}])]
    with Twin(url) as tw, tw.stream() as s:
        with pytest.raises(ProtocolError, match="expected an array"):
            s.next(timeout=10)
    plan["messages"], plan["close"] = [json.dumps([item])], (1011, "going away")
    with Twin(url) as tw, tw.stream() as s:
        assert s.take(5, timeout=10) == [item]
        with pytest.raises(StreamClosed, match="code 1011: going away.*since=7") as info:
            s.next(timeout=10)
    assert info.value.code == 1011 and info.value.resume == 7
    assert isinstance(info.value, TwinError)


def test_a_dropped_stream_resumes_where_it_was(ws_server) -> None:
    """Closed with 4008 (too slow), the stream reconnects with since=<last seq> and goes on
    without repeating an event; past ``resume`` reconnections it raises StreamClosed."""
    plan, url = ws_server
    batch = [{"seq": i, "event": {"id": f"a:{i}"}} for i in (1, 2, 3)]
    plan["messages"], plan["close"] = [json.dumps(batch)], (4008, "too slow; resume")
    with Twin(url) as tw, tw.stream(resume=2) as s:
        got = s.take(3, timeout=10)
        assert [g["seq"] for g in got] == [1, 2, 3]
        with pytest.raises(StreamClosed) as info:
            s.take(3, timeout=10)  # the replays repeat 1..3: skipped, not yielded twice
    assert info.value.code == 4008 and info.value.resume == 3 and s.resumes_left == 0


def test_time_parameters_take_timezone_aware_datetimes_only() -> None:
    """A timezone-aware datetime or pandas Timestamp is sent as ISO 8601 UTC (the extremes
    too); a naive one is refused before sending, as ambiguous."""
    import datetime as dt

    import pandas as pd

    sent: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(request.url.params["at"])
        return httpx.Response(200, json={"revision": 0})

    with fake(handler) as tw:
        tw.state(at=pd.Timestamp("2026-01-31 09:00", tz="Europe/Berlin"))
        tw.state(at=dt.datetime.max.replace(tzinfo=dt.UTC))
        tw.state(at=dt.datetime(1970, 1, 1, tzinfo=dt.UTC))
        with pytest.raises(ClientConfigError, match="without a timezone"):
            tw.state(at=dt.datetime(2026, 1, 31, 8))
    assert sent == ["2026-01-31T08:00:00.000000Z", "9999-12-31T23:59:59.999999Z",
                    "1970-01-01T00:00:00.000000Z"]  # fmt: skip


def test_a_version_prefix_goes_before_every_path_once() -> None:
    """With prefix='/v1' every request goes to /v1/...; a next link the twin wrote with the
    prefix is followed as it is (not /v1/v1); a prefix that is not a path is refused."""
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.url.path)
        if request.url.params.get("cursor"):
            return httpx.Response(200, json={"items": [{"id": "b"}], "next_cursor": None})
        return httpx.Response(200, json={"items": [{"id": "a"}], "next_cursor": "c1"},
                              headers={"Link": '</v1/lots?cursor=c1>; rel="next"'})  # fmt: skip

    with Twin(URL, prefix="/v1", transport=httpx.MockTransport(handler)) as tw:
        assert list(tw.lots()["id"]) == ["a", "b"]
    assert seen == ["/v1/lots", "/v1/lots"]
    for bad in ("v1", "/v1/", "/v 1", "/\ud800", "//evil.test"):
        with pytest.raises(ClientConfigError, match="prefix"):
            Twin(URL, prefix=bad)


def test_the_token_goes_only_to_the_twins_own_url() -> None:
    """A raw get() of an absolute URL or a scheme-relative path is refused before sending:
    the bearer token never leaves for another host."""
    with fake(lambda r: pytest.fail("nothing may be sent")) as tw:
        for path in ("http://evil.test/lots", "//evil.test/lots", "https://twin.test/x"):
            with pytest.raises(ClientConfigError, match="not a URL"):
                tw.get(path)


def test_the_etag_cache_is_bounded_in_entries_and_bytes(monkeypatch) -> None:
    """The cache keeps at most CACHE_ENTRIES answers and CACHE_BYTES of bodies, dropping the
    least recently used; a body over an eighth of the bound is not kept at all."""
    from twin.client import http

    monkeypatch.setattr(http, "CACHE_ENTRIES", 3)
    monkeypatch.setattr(http, "CACHE_BYTES", 8_000)

    def handler(request: httpx.Request) -> httpx.Response:
        size = int(request.url.params["size"])
        return httpx.Response(200, json={"x": "a" * size}, headers={"ETag": '"t"'})

    with fake(handler) as tw:
        for k in range(5):
            tw.get("/kpis", {"size": 100 + k})
        assert len(tw._cache) == 3 and tw._cache_bytes == sum(len(b) for _, b in tw._cache.values())
        tw.get("/kpis", {"size": 2_000})  # over 8,000 / 8: not kept
        assert len(tw._cache) == 3 and all(len(b) < 1_000 for _, b in tw._cache.values())
        monkeypatch.setattr(http, "CACHE_ENTRIES", 100)  # now the byte bound decides
        for k in range(10):  # bodies of 908..917 bytes: 9,125 in all
            tw.get("/state", {"size": 900 + k})
        assert 7_000 < tw._cache_bytes <= 8_000 and len(tw._cache) == 8
        assert list(tw._cache)[-1].endswith("size=909")  # the newest kept...
        assert not any("kpis" in url for url in tw._cache)  # ...the oldest gone
