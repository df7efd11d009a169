"""POST /events: per-event results, bad bodies, limits, dead letters, concurrent ingest and reads."""

from __future__ import annotations

import threading

import httpx
import pytest

from tests.services.conftest import ADMIN, LiveServer, auth, make_settings
from tests.services.streams import demo_stream, dicts, tool_events
from twin.live.events import make_event


@pytest.fixture
def fresh():
    """A new in-process app with an empty memory store (small limits to test them)."""
    from fastapi.testclient import TestClient

    from twin_api.app import create_app

    with TestClient(create_app(make_settings(max_batch=1000, max_body_bytes=400_000))) as c:
        yield c


def ev(seq, tool="LITH01", state="standby", source="mes"):
    return make_event(source, seq, 1.8e9 + seq, "equipment.state", tool, state=state, reason="r")


def test_per_event_results(fresh):
    """Each event gets its own result: valid ones kept, invalid ones rejected with the reason
    (and dead-lettered), repeats reported as duplicates, early ones held for the gap."""
    batch = [
        ev(1).to_dict(),
        ev(2, state="productive").to_dict(),
        ev(2, state="productive").to_dict(),  # repeated in the batch
        ev(3, tool="NOPE").to_dict(),  # unknown equipment
        ev(5).to_dict(),  # seq 4 missing: held
        {"id": "x", "source": "mes"},  # not an event
        ev(1, source="amhs", state="flying").to_dict(),  # not an E10 state
    ]
    r = fresh.post("/events", json={"events": batch}, headers=auth("ingest"))
    assert r.status_code == 200
    body = r.json()
    status = [x["status"] for x in body["results"]]
    assert status == [
        "accepted",
        "accepted",
        "duplicate",
        "rejected",
        "held",
        "rejected",
        "rejected",
    ]
    assert (body["accepted"], body["rejected"], body["duplicate"], body["held"]) == (2, 3, 1, 1)
    reasons = [x.get("reason", "") for x in body["results"]]
    assert "unknown equipment 'NOPE'" in reasons[3]
    assert "missing envelope keys" in reasons[5]
    assert "'flying' is not an E10 state" in reasons[6]
    assert [x.get("seq") for x in body["results"][:2]] == [1, 2]
    rt = fresh.app.state.runtime
    assert rt.store.dead_letter_count() == 3  # nothing invalid is silently dropped
    # an unreadable payload's dead letter names the request and its index in the batch
    assert any(d.reason.startswith("POST /events[5]: ") for d in rt.store.dead_letters())
    # the missing seq arrives: the held event is applied after it
    r = fresh.post("/events", json=[ev(4, state="productive").to_dict()], headers=ADMIN)
    assert r.json()["results"][0]["status"] == "accepted"
    assert fresh.get("/equipment/LITH01", headers=ADMIN).json()["state"] == "standby"
    r = fresh.post("/events", json=[ev(1).to_dict()], headers=ADMIN)
    assert r.json()["results"][0]["status"] == "duplicate"


def test_positions_of_a_batch_committed_in_slices(fresh):
    """A batch larger than one commit (the synchroniser's slice) gets consecutive stream
    positions, in the order posted, across its commits; its events are applied."""
    sync = fresh.app.state.runtime.sync
    sync.cfg.batch = step = 100  # events per commit; POST /events here takes up to 1,000
    n = 2 * step + step // 2
    states = ("standby", "productive")
    batch = [ev(k, state=states[(k - 1) % 2]).to_dict() for k in range(1, n + 1)]
    body = fresh.post("/events", json=batch, headers=ADMIN).json()
    assert body["accepted"] == n
    assert [x["seq"] for x in body["results"]] == list(range(1, n + 1))
    assert [x["index"] for x in body["results"]] == list(range(n))
    assert [x["id"] for x in body["results"]] == [b["id"] for b in batch]
    assert fresh.get("/equipment/LITH01", headers=ADMIN).json()["state"] == states[(n - 1) % 2]


def test_bad_bodies(fresh):
    """Malformed JSON is 400, a body that is not a list of events 422, wrong query types 422."""
    r = fresh.post("/events", content=b'[{"id": ', headers=ADMIN)
    assert r.status_code == 400 and "malformed JSON" in r.json()["detail"]
    r = fresh.post("/events", json={"event": []}, headers=ADMIN)
    assert r.status_code == 422 and "JSON array of events" in r.json()["detail"]
    r = fresh.post("/events", json="hello", headers=ADMIN)
    assert r.status_code == 422
    r = fresh.get("/equipment", params={"limit": "ten"}, headers=ADMIN)
    assert r.status_code == 422 and r.json()["problems"][0]["loc"] == ["query", "limit"]
    r = fresh.get("/events", params={"after": -1}, headers=ADMIN)
    assert r.status_code == 422
    r = fresh.post("/whatif", json={"replications": "many"}, headers=ADMIN)
    assert r.status_code == 422 and r.json()["problems"][0]["loc"] == ["body", "replications"]
    r = fresh.post("/whatif", json={"days": 1, "script": "/etc/passwd"}, headers=ADMIN)
    assert r.status_code == 422  # unknown fields are refused, nothing reads a path


def test_size_limits(fresh):
    """A body over max_body_bytes is 413 before it is read; a batch over max_batch is 413."""
    big = b"[" + b" " * 500_000 + b"]"
    r = fresh.post("/events", content=big, headers={**ADMIN, "content-type": "application/json"})
    assert r.status_code == 413 and "400000 bytes" in r.json()["detail"]
    batch = [ev(i + 1).to_dict() for i in range(1001)]
    small = [{k: v for k, v in e.items() if k != "schema"} for e in batch]
    r = fresh.post("/events", json=small, headers=ADMIN)
    assert r.status_code == 413 and "at most 1000" in r.json()["detail"]
    assert fresh.app.state.runtime.store.count() == 0


def test_streamed_body_over_limit_on_real_server():
    """A chunked body without Content-Length is cut off at the limit with 413."""
    with LiveServer(make_settings(max_body_bytes=100_000)) as srv:

        def chunks():
            for _ in range(50):
                yield b" " * 10_000

        r = httpx.post(srv.url + "/events", content=chunks(), headers=ADMIN, timeout=30)
        assert r.status_code == 413


def test_concurrent_ingest_and_reads():
    """Four writers and three readers at once on a real server: every event is applied once,
    every read succeeds, and each tool ends in the state its own source sent last."""
    tools = [["LITH01", "LITH02"], ["ETCH01", "ETCH02"], ["CMP01", "CMP02"], ["IMP01", "IMP02"]]
    streams = [tool_events(f"w{k}", ts, n=151) for k, ts in enumerate(tools)]
    errors: list[str] = []
    with LiveServer(make_settings()) as srv:

        def write(events):
            with httpx.Client(base_url=srv.url, timeout=60) as c:
                for lo in range(0, len(events), 50):
                    r = c.post("/events", json=dicts(events[lo : lo + 50]), headers=ADMIN)
                    if r.status_code != 200 or r.json()["accepted"] != len(events[lo : lo + 50]):
                        errors.append(r.text[:200])

        stop = threading.Event()

        def read():
            with httpx.Client(base_url=srv.url, timeout=60) as c:
                while not stop.is_set():
                    for path in ("/equipment/LITH01", "/kpis", "/equipment", "/state"):
                        r = c.get(path, headers=ADMIN)
                        if r.status_code != 200:
                            errors.append(f"{path}: {r.status_code}")

        writers = [threading.Thread(target=write, args=(s,)) for s in streams]
        readers = [threading.Thread(target=read) for _ in range(3)]
        for t in writers + readers:
            t.start()
        for t in writers:
            t.join()
        stop.set()
        for t in readers:
            t.join()
        assert not errors, errors[:5]
        total = sum(map(len, streams))
        kpis = httpx.get(srv.url + "/kpis", headers=ADMIN).json()
        assert kpis["revision"] == total
        for ts in tools:
            for tool in ts:
                got = httpx.get(f"{srv.url}/equipment/{tool}", headers=ADMIN).json()
                assert (got["state"], got["rev"]) == ("standby", 151)


def test_stream_posted_twice_changes_nothing(fresh):
    """Replaying a whole stream is a no-op: every event comes back as a duplicate."""
    stream = demo_stream(lots=2, seed=5)

    def post_all() -> dict[str, int]:
        counts = {"accepted": 0, "duplicate": 0}
        for lo in range(0, len(stream), 500):
            body = fresh.post("/events", json=dicts(stream[lo : lo + 500]), headers=ADMIN).json()
            for k in counts:
                counts[k] += body[k]
        return counts

    assert post_all() == {"accepted": len(stream), "duplicate": 0}
    before = fresh.get("/kpis", headers=ADMIN).json()
    assert post_all() == {"accepted": 0, "duplicate": len(stream)}
    assert fresh.get("/kpis", headers=ADMIN).json() == before
