"""WS /stream on a real server with the `websockets` client: each change exactly once, filters,
resume after a reconnect (from the recent-event ring and from the store), slow clients dropped."""

from __future__ import annotations

import asyncio
import gc
import json
import socket
import time

import httpx
import pytest
import websockets

from tests.services.conftest import ADMIN, TOKENS, LiveServer, make_settings
from tests.services.streams import dicts, tool_events
from twin_api.hub import SEQ, Client, Frame, StreamFilter, StreamHub, encode, item_text

HEADERS = {"Authorization": f"Bearer {TOKENS['read']}"}


@pytest.fixture(scope="module")
def srv():
    # a small ring (50 events) so that resuming further back has to read the store
    with LiveServer(make_settings(history=50, ws_queue=4)) as s:
        yield s


def post(srv, events) -> list[int]:
    r = httpx.post(srv.url + "/events", json=dicts(events), headers=ADMIN, timeout=60)
    assert r.status_code == 200, r.text
    return [x["seq"] for x in r.json()["results"] if x["status"] == "accepted"]


async def receive(ws, until_seq: int, timeout: float = 20) -> list[dict]:
    """Messages until the event with ``until_seq`` arrived; returns every event received."""
    got: list[dict] = []
    deadline = time.monotonic() + timeout
    while not got or got[-1]["seq"] < until_seq:
        msg = json.loads(await asyncio.wait_for(ws.recv(), max(0.1, deadline - time.monotonic())))
        if isinstance(msg, list):
            got += msg
    return got


def ws_url(srv, **params) -> str:
    query = "&".join(f"{k}={v}" for k, v in params.items())
    return srv.url.replace("http", "ws") + "/stream" + (f"?{query}" if query else "")


def test_each_change_exactly_once_and_resume(srv):
    """A client sees every committed change once, in order; after a reconnect with
    since=<last seq> it gets exactly what it missed, then live changes, and nothing twice."""
    events = tool_events("ws1", ["LITH01", "ETCH01", "CMP01"], n=100)  # 300 events

    async def run():
        async with websockets.connect(ws_url(srv), additional_headers=HEADERS) as ws:
            hello = json.loads(await ws.recv())
            assert hello["notice"] == "live"
            seqs = post(srv, events[:100])
            first = await receive(ws, seqs[-1])
        assert [m["seq"] for m in first] == seqs
        assert [m["event"]["id"] for m in first] == [e.id for e in events[:100]]
        missed = post(srv, events[100:200])  # while disconnected
        last = first[-1]["seq"]
        async with websockets.connect(ws_url(srv, since=last), additional_headers=HEADERS) as ws:
            replay = await receive(ws, missed[-1])
            live_seqs = post(srv, events[200:])
            rest = await receive(ws, live_seqs[-1])
            with pytest.raises(asyncio.TimeoutError):  # and nothing more
                await asyncio.wait_for(ws.recv(), 0.5)
        assert [m["seq"] for m in replay] == missed
        assert [m["seq"] for m in rest] == live_seqs
        all_ids = [m["event"]["id"] for m in first + replay + rest]
        assert all_ids == [e.id for e in events]

    asyncio.run(run())


def test_resume_from_the_store_beyond_the_ring(srv):
    """since=0 replays the whole history (more than the 50-event ring) from the event store."""
    post(srv, tool_events("ws2", ["IMP01"], n=120))
    stored = httpx.get(srv.url + "/health", headers=ADMIN).json()["events_stored"]

    async def run():
        async with websockets.connect(ws_url(srv, since=0), additional_headers=HEADERS) as ws:
            return await receive(ws, stored)

    got = asyncio.run(run())
    assert [m["seq"] for m in got] == list(range(1, stored + 1))


def test_filters(srv):
    """type (exact or prefix ending in '.') and subject filters pass only matching events."""
    events = tool_events("ws3", ["WET01", "WET02"], n=10)

    async def run():
        url = ws_url(srv, type="equipment.", subject="WET02")
        async with websockets.connect(url, additional_headers=HEADERS) as ws:
            await ws.recv()
            seqs = post(srv, events)
            got = await receive(ws, seqs[-1])
        return got

    got = asyncio.run(run())
    assert {m["event"]["subject"] for m in got} == {"WET02"}
    assert len(got) == 10


def test_slow_client_is_dropped_and_never_slows_ingest(srv):
    """A client that stops reading is closed with 4008 and the seq to resume from, while
    POST /events keeps its pace."""
    events = tool_events("ws4", ["TF01", "TF02", "TF03", "TF04"], n=5000)  # 20,000 events

    async def run():
        sock = socket.socket()  # a small receive window: the kernel cannot hide the backlog
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.connect(("127.0.0.1", srv.port))
        ws = await websockets.connect(
            ws_url(srv), sock=sock, additional_headers=HEADERS, max_queue=1, compression=None
        )
        await ws.recv()
        durations = []
        async with httpx.AsyncClient(base_url=srv.url, timeout=60) as c:
            for lo in range(0, len(events), 500):
                t0 = time.perf_counter()
                r = await c.post("/events", json=dicts(events[lo : lo + 500]), headers=ADMIN)
                durations.append(time.perf_counter() - t0)
                assert r.json()["accepted"] == 500
        # now read: what was delivered, then the close frame
        code = reason = None
        try:
            while True:
                await asyncio.wait_for(ws.recv(), 10)
        except websockets.exceptions.ConnectionClosed as exc:
            code, reason = exc.rcvd.code if exc.rcvd else None, exc.rcvd.reason if exc.rcvd else ""
        return durations, code, reason

    durations, code, reason = asyncio.run(run())
    assert code == 4008 and "since=" in reason
    metrics = httpx.get(srv.url + "/metrics", headers=ADMIN).text
    assert "twin_websocket_dropped_total 0" not in metrics
    assert max(durations) < 5.0, durations


def test_hub_offer_never_blocks():
    """The hub hands each batch to every client's bounded queue; a full queue marks the client
    dropped instead of growing or waiting."""
    from twin.live.events import make_event

    hub = StreamHub(history=10, queue=3)
    c = Client(filter=StreamFilter(), limit=3, last=0)
    for i in range(1, 6):
        item = encode(
            i, make_event("s", i, 1.0, "equipment.state", "T", state="standby", reason="x")
        )
        hub.ring.append(item)
        c.offer(Frame([item]))
    assert c.dropped and len(c.batches) == 3 and c.last == 3
    assert hub.recent(0) is not None and [i[SEQ] for i in hub.recent(2)] == [3, 4, 5]
    hub.ring.clear()
    for i in range(20, 31):
        hub.ring.append(
            encode(i, make_event("s", i, 1.0, "equipment.state", "T", state="standby", reason="x"))
        )
    assert hub.recent(5) is None  # the ring no longer reaches back: read the store


def _items(seqs, subject="T"):
    from twin.live.events import make_event

    return [
        encode(i, make_event("s", i, 1.0, "equipment.state", subject, state="standby", reason="x"))
        for i in seqs
    ]


def test_ring_stays_out_of_the_garbage_collector():
    """The hub keeps committed events as plain tuples that the cyclic collector stops tracking
    (so full collections never walk the ring), each encoding to its event's JSON."""
    from twin.live.events import make_event

    hub = StreamHub(history=100)
    hub.publish(_items(range(1, 51)))
    gc.collect()
    assert len(hub.ring) == 50 and not any(gc.is_tracked(i) for i in hub.ring)
    for extra in ({}, {"setup": "S1"}):
        ev = make_event("mes", 3, 1.5, "equipment.state", "T", state="up", reason="x", **extra)
        want = {"seq": 7, "event": json.loads(ev.to_json())}
        assert json.loads(item_text(encode(7, ev))) == want


def test_clients_with_one_filter_share_one_frame():
    """Each batch is filtered and encoded once per distinct filter: clients with equal filters
    are queued the same frame; a client that already has part of the batch gets the rest."""
    hub = StreamHub(history=100, queue=8)
    a = hub.attach(StreamFilter(subjects=frozenset({"T"})), 0)
    b = hub.attach(StreamFilter(subjects=frozenset({"T"})), 0)
    late = hub.attach(StreamFilter(subjects=frozenset({"T"})), 2)  # has seq 1-2 already
    other = hub.attach(StreamFilter(subjects=frozenset({"U"})), 0)
    hub._fanout(_items([1, 2, 3]) + _items([4], subject="U"))
    (fa,), (fb,), (fl,), (fo,) = a.batches, b.batches, late.batches, other.batches
    assert fa is fb and fa.text is fb.text and [i[SEQ] for i in fa.items] == [1, 2, 3]
    assert [i[SEQ] for i in fl.items] == [3] and [i[SEQ] for i in fo.items] == [4]
    assert json.loads(fa.text) == [json.loads(item_text(i)) for i in fa.items]


def test_queued_frames_go_out_joined():
    """A client with several frames queued is sent them as one JSON array (up to CHUNK
    events), skipping what it was already sent."""
    from twin_api.routers.stream import CHUNK, _message

    c = Client(filter=StreamFilter(), limit=100, last=0)
    for lo in range(1, 13, 3):
        c.offer(Frame(_items(range(lo, lo + 3))))  # seq 1-12 in 4 frames
    text, n, last = _message(c, 2)
    assert [m["seq"] for m in json.loads(text)] == list(range(3, 13)) and (n, last) == (10, 12)
    assert not c.batches
    big = Frame(_items(range(13, 14 + CHUNK)))
    c.offer(big)
    c.offer(Frame(_items([14 + CHUNK])))
    text, n, last = _message(c, 12)
    assert text is big.text and n == CHUNK + 1  # a frame over CHUNK goes whole, alone
    assert len(c.batches) == 1
