"""Forecast jobs through the API: POST /forecast from the live state, GET /lots/{id}/eta from the
latest completed forecast, and hostile requests refused before anything runs."""

from __future__ import annotations

import time

import pytest

from tests.services.conftest import ADMIN, auth, make_settings
from tests.services.streams import demo_stream, dicts


@pytest.fixture(scope="module")
def client():
    from fastapi.testclient import TestClient

    from twin_api.app import create_app

    settings = make_settings(
        whatif_max_runs=20, whatif_max_running=1, whatif_max_queued=1, whatif_workers=1,
        whatif_max_days=30.0,
    )  # fmt: skip
    with TestClient(create_app(settings)) as c:
        yield c


def wait_for(client, job_id, states, timeout=180.0):
    deadline = time.monotonic() + timeout
    while True:
        job = client.get(f"/forecast/{job_id}", headers=auth("whatif")).json()
        if job["status"] in states:
            return job
        assert time.monotonic() < deadline, job
        time.sleep(0.2)


def feed(client) -> None:
    stream = demo_stream(lots=4, seed=11)[:1500]
    for lo in range(0, len(stream), 500):
        r = client.post("/events", json=dicts(stream[lo : lo + 500]), headers=ADMIN)
        assert r.status_code == 200, r.text


def post(client, body, headers=ADMIN):
    """POST /forecast with the body as ASCII JSON (a lone surrogate as its \\ud800 escape)."""
    import json

    return client.post(
        "/forecast",
        content=json.dumps(body),
        headers={**headers, "content-type": "application/json"},
    )


def detail(r) -> str:
    return str(r.json().get("detail"))


def test_eta_before_any_forecast_is_409_and_forecast_on_no_events_is_422(client):
    """Without a completed forecast, GET /lots/{id}/eta is 409 saying to POST /forecast; a
    forecast of a twin that holds no events is refused (422), no job is made."""
    r = client.get("/lots/Lot_1/eta", headers=auth("read"))
    assert r.status_code == 409, r.text
    assert "POST /forecast" in detail(r)
    r = client.post("/forecast", json={"horizon": "1d", "replications": 2}, headers=ADMIN)
    assert r.status_code == 422, r.text
    assert "holds no events" in detail(r)
    assert not client.app.state.runtime.jobs.forecasts.jobs


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ({"horizon": "garbage"}, "horizon garbage: a duration such as 7d"),
        ({"horizon": -1}, "horizon -1"),
        ({"horizon": "0d"}, "more than 0 and at most 90 days"),
        ({"horizon": 1e20}, "at most 90 days"),
        ({"horizon": "nan"}, "horizon nan"),
        ({"horizon": "\ud800"}, "horizon \\ud800"),
        ({"horizon": "60d"}, "over the limit of 30"),
        ({"replications": 0}, "replications"),
        ({"replications": 10**12}, "replications 1000000000000: at most 20"),
        ({"engine": "warp9"}, "engine 'warp9' unknown"),
        ({"rules": "\ud800"}, "\\ud800"),
        ({"seed": -1}, "seed"),
        ({"horizon": [[[[["7d"]]]]]}, "horizon"),
        ({"extra": 1}, "extra"),
    ],
)
def test_hostile_requests_are_422_and_run_nothing(client, body, says):
    """Bad horizon (garbage, negative, zero, huge, NaN, a lone surrogate, over the server's
    limit, nested), replications 0 or huge, unknown engine or rules, a bad seed or an unknown
    field: 422 naming the problem, and no job is queued."""
    before = len(client.app.state.runtime.jobs.forecasts.jobs)
    r = post(client, {"replications": 2, **body})
    assert r.status_code == 422, r.text
    assert says in r.text.encode().decode("unicode_escape") or says in r.text, r.text
    assert len(client.app.state.runtime.jobs.forecasts.jobs) == before


def test_forecast_needs_the_whatif_scope(client):
    """A read token may ask for ETAs but not start a forecast (403)."""
    r = client.post("/forecast", json={"horizon": "1d"}, headers=auth("read"))
    assert r.status_code == 403, r.text


def test_forecast_completes_and_serves_lot_etas(client):
    """A forecast from the live state completes; every active lot of the twin has an ETA at
    GET /lots/{id}/eta (p10 <= p50 <= p90, or "> horizon"); an unknown lot is a 404 naming
    it, and so is one named by a lone surrogate's bytes."""
    feed(client)
    rt = client.app.state.runtime
    active = sorted(x.id for x in rt.state.lots.values() if x.status in ("queued", "processing"))
    assert active
    r = client.post(
        "/forecast", json={"horizon": "2d", "replications": 4, "seed": 3}, headers=ADMIN
    )
    assert r.status_code == 202, r.text
    assert r.headers["location"] == f"/forecast/{r.json()['id']}"
    job = wait_for(client, r.json()["id"], {"completed", "failed"})
    assert job["status"] == "completed", job["error"]
    res = job["result"]
    assert res["replications"] == 4 and res["horizon_days"] == 2.0
    assert len(res["days"]) == 2 and {lot["id"] for lot in res["lots"]} >= set(active)
    for lot_id in active:
        e = client.get(f"/lots/{lot_id}/eta", headers=auth("read"))
        assert e.status_code == 200, e.text
        eta = e.json()
        assert eta["forecast"] == job["id"] and eta["id"] == lot_id
        if eta["p90"] != "> horizon":
            assert eta["p10"] <= eta["p50"] <= eta["p90"]
    e = client.get("/lots/no-such-lot/eta", headers=auth("read"))
    assert e.status_code == 404, e.text
    assert "'no-such-lot'" in e.text and "lot in WIP at the forecast's time" in e.text
    e = client.get("/lots/%ED%A0%80/eta", headers=auth("read"))  # a lone surrogate's bytes
    assert e.status_code == 404, e.text


def test_cancel_and_unknown_job(client):
    """DELETE cancels a forecast job; an unknown job id is a 404 naming it."""
    r = client.get("/forecast/nope", headers=auth("whatif"))
    assert r.status_code == 404 and "nope" in r.text
    r = client.post("/forecast", json={"horizon": "3d", "replications": 20}, headers=ADMIN)
    assert r.status_code == 202, r.text
    c = client.delete(f"/forecast/{r.json()['id']}", headers=auth("whatif"))
    assert c.status_code == 200
    job = wait_for(client, r.json()["id"], {"cancelled", "completed", "failed"})
    assert job["status"] in ("cancelled", "completed"), job["error"]
