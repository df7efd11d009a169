"""Every read endpoint, in process and on a real server, after ingesting the demo fab's stream;
answers are checked against a TwinState that applied the same stream directly and the scene."""

from __future__ import annotations

import io
import time

import pytest

from tests.services.conftest import ADMIN, make_settings
from tests.services.streams import demo_catalog, demo_stream, dicts
from twin.live.events import format_time
from twin.live.state import TwinState, apply_all
from twin_api.settings import DEFAULT_SCENE


@pytest.fixture(scope="session")
def stream():
    return demo_stream(lots=6, seed=3)


@pytest.fixture(scope="session")
def expected(stream):
    return apply_all(TwinState(demo_catalog()), stream)


@pytest.fixture(scope="session")
def scene():
    from twin.scene.load import load_scene

    return load_scene(DEFAULT_SCENE)


@pytest.fixture(scope="session", autouse=True)
def loaded(inproc, live, stream):
    """Both servers hold the stream, posted in batches of 500."""
    import httpx

    with httpx.Client(base_url=live.url, timeout=60) as remote:
        for client in (inproc, remote):
            for lo in range(0, len(stream), 500):
                r = client.post("/events", json=dicts(stream[lo : lo + 500]), headers=ADMIN)
                assert r.status_code == 200 and r.json()["accepted"] == len(stream[lo : lo + 500])


def get(api, path, **params):
    r = api.get(path, params=params, headers=ADMIN)
    assert r.status_code == 200, r.text
    return r.json()


def all_pages(api, path, limit=7, **params):
    items, offset = [], 0
    while offset is not None:
        page = get(api, path, offset=offset, limit=limit, **params)
        items += page["items"]
        offset = page["next"]
    return items


def test_health(api, stream):
    """/health says only "up" without a token, and what runs with one."""
    assert api.get("/health").json() == {"status": "up"}
    r = api.get("/health", headers=ADMIN)
    assert r.status_code == 200
    body = r.json()
    assert body["status"] == "up" and body["scene"] == "demo-fab"
    assert body["events_stored"] >= len(stream)


def test_scene_filters(api, scene):
    """/scene filters by kind, family and bay, and pages cover every node exactly once."""
    assert get(api, "/scene", kind="tool")["total"] == scene.summary()["tools"]
    for fam, n in scene.families().items():
        assert get(api, "/scene", family=fam, limit=1)["total"] == n
    in_bay1 = [n.id for n in scene.nodes("tool") if n.parent == "BAY1"]
    page = get(api, "/scene", kind="tool", bay="BAY1", limit=1000)
    assert sorted(n["id"] for n in page["nodes"]) == sorted(in_bay1)
    ids = []
    offset = 0
    while offset is not None:
        page = get(api, "/scene", offset=offset, limit=50)
        ids += [n["id"] for n in page["nodes"]]
        offset = page["next"]
    assert sorted(ids) == sorted(n.id for n in scene)
    lith = next(
        n for n in get(api, "/scene", kind="tool", limit=1000)["nodes"] if n["id"] == "LITH01"
    )
    assert lith["position"] == pytest.approx(list(scene.world_position("LITH01")), abs=1e-5)
    assert get(api, "/scene", kind="rail_node", limit=1)["total"] == scene.summary()["rail_nodes"]


def test_scene_glb(api, scene):
    """/scene.glb is a binary glTF whose geometry spans the scene's bounding box."""
    import trimesh

    r = api.get("/scene.glb", headers=ADMIN)
    assert r.status_code == 200 and r.content[:4] == b"glTF"
    assert r.headers["content-type"] == "model/gltf-binary"
    loaded = trimesh.load(io.BytesIO(r.content), file_type="glb")
    lo, hi = loaded.bounds
    want = scene.scene_bbox()
    assert hi[0] - lo[0] == pytest.approx(want[1][0] - want[0][0], rel=0.15)


def test_equipment_matches_state(api, expected):
    """/equipment and /equipment/{id}: E10 state, lots in process, setup and revision."""
    items = all_pages(api, "/equipment")
    assert sorted(e["id"] for e in items) == sorted(expected.equipment)
    for e in items:
        want = expected.equipment[e["id"]]
        assert (e["state"], e["lots"], e["setup"], e["rev"]) == (
            want.state, want.lots, want.setup, want.rev,
        )  # fmt: skip
        assert e["since"] == (format_time(want.since) if want.state else None)
    one = get(api, "/equipment/LITH01")
    assert one["rev"] == expected.equipment["LITH01"].rev and one["family"] == "Litho_FE_3"
    assert one["bay"] == "BAY1" and one["kind"] == "tool"
    for state in ("standby", "productive"):
        n = sum(e.state == state for e in expected.equipment.values())
        assert get(api, "/equipment", state=state)["total"] == n


def test_unknown_ids_are_404_with_close_matches(api):
    """An unknown id answers 404 naming it and the closest known ids."""
    r = api.get("/equipment/LITH1", headers=ADMIN)
    assert r.status_code == 404 and "LITH1" in r.json()["detail"] and "LITH01" in r.json()["detail"]
    r = api.get("/lots/L0001", headers=ADMIN)
    assert r.status_code == 404 and "unknown lot 'L0001'" in r.json()["detail"]
    r = api.get("/whatif/abc", headers=ADMIN)
    assert r.status_code == 404 and "what-if job" in r.json()["detail"]
    assert api.get("/nope", headers=ADMIN).status_code == 404


def test_lots_match_state(api, expected):
    """/lots pages through every lot once; /lots/{id} and the status filter agree with it."""
    items = all_pages(api, "/lots", limit=4)
    assert sorted(x["id"] for x in items) == sorted(expected.lots)
    for x in items:
        want = expected.lots[x["id"]]
        assert (x["status"], x["step"], x["rev"], x["moves"]) == (
            want.status, want.step, want.rev, want.moves,
        )  # fmt: skip
    lot = next(iter(expected.lots))
    assert get(api, f"/lots/{lot}")["product"] == expected.lots[lot].product
    done = sum(x.status == "completed" for x in expected.lots.values())
    assert get(api, "/lots", status="completed")["total"] == done


def test_carriers_and_vehicles_match_state(api, expected, scene):
    """/carriers and /vehicles (poses on the rail, world positions from the scene)."""
    carriers = all_pages(api, "/carriers")
    assert {c["id"]: (c["status"], c["rev"]) for c in carriers} == {
        c.id: (c.status, c.rev) for c in expected.carriers.values()
    }
    vehicles = all_pages(api, "/vehicles")
    assert len(vehicles) == 12
    for v in vehicles:
        want = expected.vehicles[v["id"]]
        if want.segment is not None:
            assert (v["segment"], v["offset"], v["rev"]) == (want.segment, want.offset, want.rev)
            assert v["position"] == pytest.approx(
                list(scene.point_on_segment(want.segment, want.offset)), abs=1e-3
            )


def test_kpis_equal_direct_apply(api, expected):
    """After POST /events of the stream, /kpis equals the KPIs of a TwinState that applied the
    same stream directly."""
    got = get(api, "/kpis")
    assert got.pop("revision") == expected.revision
    assert got.pop("clock") == format_time(expected.clock)
    assert got == expected.kpis()
    assert got["lots_completed"] > 0 and got["moves"] > 0


def test_state_time_travel(api, stream):
    """/state?at=T equals a TwinState that applied only the events up to T."""
    t = stream[len(stream) // 2].time
    want = apply_all(TwinState(demo_catalog()), [e for e in stream if e.time <= t])
    got = get(api, "/state", at=format_time(t))
    assert got["revision"] == want.revision
    assert got["wip"] == want.wip() and got["moves"] == want.moves
    assert got["lots_completed"] == want.lots_completed
    assert get(api, "/state", at=str(t))["revision"] == want.revision  # epoch seconds too
    r = api.get("/state", params={"at": "yesterday"}, headers=ADMIN)
    assert r.status_code == 422 and "ISO 8601" in r.json()["detail"]


def test_event_history_filters_and_pages(api, stream):
    """/events by type, subject and time, paged with ?after=, equals the stream filtered here."""

    def fetch(**params):
        out, after = [], 0
        while True:
            page = get(api, "/events", after=after, limit=250, **params)
            out += page["items"]
            if not page["more"]:
                return out
            after = page["next_after"]

    ins = fetch(type="lot.track_in")
    assert [x["event"]["id"] for x in ins] == [e.id for e in stream if e.type == "lot.track_in"]
    assert [x["pos"] for x in ins] == sorted(x["pos"] for x in ins)
    subj = stream[10].subject
    assert [x["event"]["id"] for x in fetch(subject=subj)] == [
        e.id for e in stream if e.subject == subj
    ]
    t0, t1 = stream[100].time, stream[300].time
    window = fetch(since=format_time(t0), until=format_time(t1))
    assert [x["event"]["id"] for x in window] == [e.id for e in stream if t0 <= e.time <= t1]


def test_metrics_prometheus_text(api, stream):
    """/metrics is Prometheus text: every sample line parses and the counters are right."""
    r = api.get("/metrics", headers=ADMIN)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    samples = {}
    for line in r.text.splitlines():
        if line.startswith("#") or not line:
            continue
        name, value = line.rsplit(" ", 1)
        samples[name] = float(value)
    assert samples["twin_events_ingested_total"] >= len(stream)
    assert "twin_websocket_clients" in samples and "twin_ingest_lag_seconds" in samples
    assert samples['twin_whatif_jobs{state="running"}'] >= 0
    assert any(k.startswith("twin_http_request_duration_seconds_count") for k in samples)


def test_openapi_documents_every_endpoint(api):
    """/openapi.json lists every HTTP endpoint with its schemas (under /v1)."""
    spec = api.get("/openapi.json").json()
    for path in ("/health", "/scene", "/scene.glb", "/equipment", "/equipment/{equipment_id}",
                 "/lots", "/lots/{lot_id}", "/carriers", "/vehicles", "/kpis", "/state",
                 "/events", "/metrics", "/whatif", "/whatif/{job_id}"):  # fmt: skip
        assert "/v1" + path in spec["paths"], path
    assert "EquipmentPublic" in spec["components"]["schemas"]
    assert set(spec["paths"]["/v1/events"]) == {"get", "post"}
    assert spec["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    assert spec["paths"]["/v1/kpis"]["get"]["security"] == [{"bearer": []}]
    assert "security" not in spec["paths"]["/v1/health"]["get"]


def test_whatif_round_trip(api):
    """POST /whatif -> 202 with an id and a Location; GET follows it to completion; DELETE of a
    finished job changes nothing."""
    r = api.post("/whatif", json={"replications": 1, "days": 1}, headers=ADMIN)
    assert r.status_code == 202 and r.headers["location"] == f"/whatif/{r.json()['id']}"
    deadline = time.monotonic() + 120
    while (job := get(api, r.headers["location"]))["status"] in ("queued", "running"):
        assert time.monotonic() < deadline
        time.sleep(0.2)
    assert job["status"] == "completed", job["error"]
    assert job["result"]["scenarios"]["baseline"]["replications"] == 1
    gone = api.delete(r.headers["location"], headers=ADMIN)
    assert gone.status_code == 200 and gone.json()["status"] == "completed"


def test_operation_ids_are_the_handlers_names_and_unique():
    """Generated clients read well: every operationId is the handler's name (list_equipment,
    not list_equipment_equipment_get), and no two are alike."""
    from twin_api.app import create_app

    spec = create_app(make_settings()).openapi()
    ids = [op["operationId"] for ops in spec["paths"].values() for op in ops.values()]
    assert len(ids) == len(set(ids))
    assert {"list_equipment", "get_lot", "post_events", "create_whatif_job", "ready"} <= set(ids)
    assert not [i for i in ids if i.endswith(("_get", "_post", "_delete"))]


@pytest.mark.parametrize(
    "path, says",
    [
        ("/equipment?state=bogus", "state: unknown value 'bogus'; accepted: engineering"),
        ("/equipment?state=standby,nope", "unknown value 'nope'"),
        ("/equipment?family=NoSuchFamily", "family: unknown value 'NoSuchFamily'"),
        ("/equipment?bay=" + "x" * 5000, "bay: unknown value 'xxxx"),
        ("/lots?status=done", "status: unknown value 'done'; accepted: completed, hold"),
        ("/lots?product=%ED%A0%80", "product: unknown value"),
        ("/carriers?status=lost", "accepted: assigned, delivered, failed"),
        ("/scene?kind=spaceship", "kind: unknown value 'spaceship'"),
    ],
)
def test_unknown_filter_values_are_refused_naming_what_is_accepted(api, path, says):
    """A filter value the twin does not know is a 422 naming it and the accepted values (not an
    empty list that looks like an answer); garbage, huge and undecodable values alike."""
    r = api.get(path, headers=ADMIN)
    assert r.status_code == 422, r.text
    assert says in r.text
    assert len(r.text) < 4000  # a huge value is cut, not echoed


def test_known_filter_values_still_filter(api):
    """A known value filters as before."""
    r = api.get("/equipment?state=standby,productive,unscheduled_down", headers=ADMIN)
    assert r.status_code == 200
    assert all(
        e["state"] in ("standby", "productive", "unscheduled_down") for e in r.json()["items"]
    )


def test_every_error_is_one_problem_shape():
    """401, 403, 404, 409, 413 and 422 (FastAPI's validation and the twin's own) all answer
    application/problem+json with type, title, status and a one-line detail; several problems
    come as a list beside it; the OpenAPI spec documents that shape for every error."""
    from fastapi.testclient import TestClient

    from tests.services.conftest import auth
    from twin_api.app import create_app

    app = create_app(make_settings(max_body_bytes=1000))
    with TestClient(app) as c:
        answers = [
            c.get("/equipment"),  # 401
            c.post("/events", json=[], headers=auth("read")),  # 403
            c.get("/lots/NOPE", headers=ADMIN),  # 404
            c.get("/lots/NOPE/eta", headers=ADMIN),  # 409: no forecast yet
            c.post("/events", content=b"[" + b" " * 5000 + b"]", headers=ADMIN),  # 413
            c.get("/events?limit=-1", headers=ADMIN),  # 422, validation
            c.get("/state?at=noon", headers=ADMIN),  # 422, the twin's own
            c.post("/whatif", json={"days": 1e9, "rules": "nope"}, headers=ADMIN),  # 422, several
        ]
    statuses = [r.status_code for r in answers]
    assert statuses == [401, 403, 404, 409, 413, 422, 422, 422], statuses
    for r in answers:
        assert r.headers["content-type"].startswith("application/problem+json"), r.text
        body = r.json()
        assert body["type"] == "about:blank" and body["status"] == r.status_code
        assert body["title"] and isinstance(body["detail"], str) and "\n" not in body["detail"]
    assert answers[5].json()["problems"][0]["loc"] == ["query", "limit"]
    assert len(answers[7].json()["problems"]) >= 2
    spec = app.openapi()
    assert "HTTPValidationError" not in spec["components"]["schemas"]
    for ops in spec["paths"].values():
        for op in ops.values():
            for code, resp in op["responses"].items():
                if code.startswith(("4", "5")):
                    assert "application/problem+json" in resp["content"], (code, op["operationId"])
