"""GET /equipment/{id} and POST /events below FastAPI (twin_api.fastpath): same answer as
the route, fresh after every change, timed under the route's label; errors still come from the
route."""

from __future__ import annotations

import asyncio

import orjson
import pytest

from tests.services.conftest import ADMIN, auth, make_settings
from twin.live.events import make_event
from twin_api.schemas.equipment import EquipmentPublic


@pytest.fixture
def fresh():
    """A new in-process app with an empty memory store."""
    from fastapi.testclient import TestClient

    from twin_api.app import create_app

    with TestClient(create_app(make_settings())) as c:
        yield c


def state_event(seq: int, state: str, tool: str = "LITH01") -> dict:
    ev = make_event("mes", seq, 1.8e9 + seq, "equipment.state", tool, state=state, reason="r")
    return ev.to_dict()


def test_fast_path_sends_the_routes_bytes(fresh):
    """The fast path's body is byte for byte the FastAPI route's, and fits EquipmentPublic."""
    from twin_api.routers.equipment import get_equipment

    fresh.post("/events", json=[state_event(1, "standby")], headers=ADMIN)
    r = fresh.get("/equipment/LITH01", headers=auth("read"))
    assert r.status_code == 200 and r.headers["content-type"] == "application/json"
    rt = fresh.app.state.runtime
    routed = asyncio.run(get_equipment("LITH01", rt))
    assert r.content == routed.body
    doc = orjson.loads(r.content)
    assert EquipmentPublic.model_validate(doc).model_dump() == doc
    assert doc["state"] == "standby" and doc["rev"] == 1 and doc["bay"] == "BAY1"


def test_fast_path_follows_every_change(fresh):
    """A change to the record (a new rev) is served at once; without one the same JSON is
    served again."""
    fresh.post("/events", json=[state_event(1, "standby")], headers=ADMIN)
    first = fresh.get("/equipment/LITH01", headers=ADMIN).content
    assert fresh.get("/equipment/LITH01", headers=ADMIN).content == first
    fresh.post("/events", json=[state_event(2, "productive")], headers=ADMIN)
    doc = fresh.get("/equipment/LITH01", headers=ADMIN).json()
    assert (doc["state"], doc["rev"]) == ("productive", 2)
    assert doc["time_in"] == {"standby": 1.0}  # the closed standby interval, 1 s


def test_errors_still_come_from_the_route(fresh):
    """No token 401, a token without 'read' 403, an unknown id 404 with close matches, a
    path with more segments 404: the same answers as without the fast path."""
    r = fresh.get("/equipment/LITH01")
    assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
    r = fresh.get("/equipment/LITH01", headers=auth("ingest"))
    assert r.status_code == 403 and "'read' scope" in r.json()["detail"]
    r = fresh.get("/equipment/LITH1", headers=auth("read"))
    assert r.status_code == 404 and "LITH01" in r.json()["detail"]
    assert fresh.get("/equipment/LITH01/x", headers=ADMIN).status_code == 404


def test_fast_path_is_timed_under_the_route(fresh):
    """Requests the fast path answers count in the latency histogram as the route's."""
    for _ in range(3):
        assert fresh.get("/equipment/LITH01", headers=ADMIN).status_code == 200
    text = fresh.get("/metrics", headers=ADMIN).text
    label = 'method="GET",route="/equipment/{equipment_id}",status="200"'
    (count,) = [
        line.split()[-1]
        for line in text.splitlines()
        if line.startswith("twin_http_request_duration_seconds_count{" + label)
    ]
    assert float(count) == 3


def _route_post(app, body: bytes) -> bytes:
    """POST /events answered by the FastAPI route itself (no fast path in between)."""
    from starlette.requests import Request

    from twin_api.routers.events import post_events

    async def receive() -> dict:
        return {"type": "http.request", "body": body, "more_body": False}

    scope = {"type": "http", "method": "POST", "path": "/events", "headers": [], "app": app}
    everything = (app.state.runtime, lambda source: True)  # a token that may publish any source
    return asyncio.run(post_events(everything, Request(scope, receive))).body


def test_post_events_below_fastapi_sends_the_routes_bytes(fresh):
    """A batch that ingests is answered by the fast path with the bytes the route sends for
    the same batch on an equal twin, as JSON, and is timed as the route."""
    from fastapi.testclient import TestClient

    from twin_api.app import create_app

    body = orjson.dumps([state_event(1, "standby"), state_event(2, "productive")])
    r = fresh.post("/events", content=body, headers={**auth("ingest"), "content-type": "x"})
    assert r.status_code == 200 and r.headers["content-type"] == "application/json"
    assert r.json()["accepted"] == 2
    with TestClient(create_app(make_settings())) as other:
        assert r.content == _route_post(other.app, body)
    text = fresh.get("/metrics", headers=ADMIN).text
    label = 'method="POST",route="/events",status="200"'
    assert any(
        line.startswith("twin_http_request_duration_seconds_count{" + label)
        for line in text.splitlines()
    )


def test_post_events_errors_come_from_the_route(fresh, monkeypatch):
    """What the fast path does not answer with a 200 is answered as the route answers it: a
    token without 'ingest' 403, a body that is not a batch 422 (read once, handed on), and a
    TwinError from the ingest 422 with its message, as the app's handler writes it."""
    from twin.errors import InputError

    r = fresh.post("/events", json=[state_event(1, "standby")], headers=auth("read"))
    assert r.status_code == 403 and "'ingest' scope" in r.json()["detail"]
    r = fresh.post("/events", json={"not": "events"}, headers=auth("ingest"))
    assert r.status_code == 422 and "JSON array of events" in r.json()["detail"]

    def broken(payloads, origin="POST /events", **kw):
        raise InputError("store", ["disk full"])

    monkeypatch.setattr(fresh.app.state.runtime, "ingest", broken)
    r = fresh.post("/events", json=[state_event(1, "standby")], headers=auth("ingest"))
    assert r.status_code == 422 and "disk full" in r.json()["detail"]
