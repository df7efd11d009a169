"""The viewer's endpoints and /docs, in process and on a real server: what they serve, that
they need the read scope, that hostile ids, names and times get a clear 4xx, and that the
pages load nothing from the network (no CDN)."""

from __future__ import annotations

import asyncio
import base64
import re

import httpx
import pytest
import websockets
from fastapi.testclient import TestClient

from tests.services.conftest import ADMIN, TOKENS, LiveServer, auth, make_settings
from twin.viewer import missing_vendor, static_files
from twin_api.app import create_app

READ = auth("read")
T0 = 1_800_000_000.0
needs_vendor = pytest.mark.skipif(
    bool(missing_vendor()), reason="browser files not installed (run scripts/setup.sh)"
)


@pytest.fixture(scope="module")
def client():
    with TestClient(create_app(make_settings())) as c:
        yield c


def _states(client, tool: str, states: list[str], source: str) -> None:
    """``tool`` goes through ``states``, one a minute from T0."""
    events = [
        {"id": f"{source}:{k + 1}", "source": source, "seq": k + 1, "time": T0 + 60 * k,
         "type": "equipment.state", "subject": tool, "data": {"state": s, "reason": "test"}}
        for k, s in enumerate(states)
    ]  # fmt: skip
    r = client.post("/events", json=events, headers=ADMIN)
    assert r.status_code == 200, r.text
    assert all(x["status"] == "accepted" for x in r.json()["results"]), r.text


def test_scene_is_flat_arrays_matching_the_scene_graph(client):
    """/viewer/scene has one entry per tool/stocker, rail segment, port and vehicle."""
    scene = client.app.state.runtime.scene
    r = client.get("/viewer/scene", headers=READ)
    assert r.status_code == 200
    body = r.json()
    eq = body["equipment"]
    assert len(eq["ids"]) == len(scene.nodes(("tool", "stocker", "station")))
    assert len(eq["box"]) == 6 * len(eq["ids"])
    assert len(body["segments"]["ids"]) == len(scene.segments)
    assert len(body["segments"]["xyz"]) == 6 * len(scene.segments)
    assert len(body["ports"]) == 3 * len(scene.nodes("port"))
    assert len(body["vehicles"]["ids"]) == len(scene.nodes("vehicle"))
    seg = next(iter(scene.segments.values()))
    i = body["segments"]["ids"].index(seg.id)
    assert body["segments"]["xyz"][6 * i : 6 * i + 3] == pytest.approx(
        list(scene.world_position(seg.start)), abs=1e-3
    )


def test_state_now_and_at_a_past_time(client):
    """/viewer/state?at=T is the state as of T (state_at), now carries the stream position."""
    _states(client, "LITH01", ["productive", "standby", "unscheduled_down"], "viewer-past")
    now = client.get("/viewer/state", headers=READ).json()
    assert now["equipment"]["LITH01"][0] == "unscheduled_down"
    assert isinstance(now["seq"], int) and now["seq"] >= 3
    past = client.get("/viewer/state", params={"at": T0 + 70}, headers=READ).json()
    assert past["equipment"]["LITH01"][0] == "standby"
    assert past["seq"] is None and past["at"].startswith("2027-01-15T08:")
    before = client.get("/viewer/state", params={"at": "2020-01-01T00:00:00Z"}, headers=READ)
    assert before.json()["equipment"]["LITH01"][0] is None
    h = client.get("/viewer/history", headers=READ).json()
    assert h["first_epoch"] <= T0 and h["last_epoch"] >= T0 + 120 and h["events"] >= 3


@pytest.mark.parametrize("path", ["/viewer/scene", "/viewer/state", "/viewer/history"])
def test_data_needs_the_read_scope(client, path):
    """Every viewer data endpoint answers 401 without a token and with an unknown one."""
    assert client.get(path).status_code == 401
    assert client.get(path, headers={"Authorization": "Bearer nope-0123456789"}).status_code == 401


@pytest.mark.parametrize(
    "at",
    ["yesterday", "nan", "inf", "-1", "1e308", "9" * 400, "%ED%A0%80", "%FF%FE", "%00",
     "2026-01-01T00:00:00", "99999-01-01T00:00:00Z", "%5B" * 1000, "253402300800"],
)  # fmt: skip
def test_hostile_times_get_a_422_naming_the_range(client, at):
    """?at= garbage, huge, unzoned, nested, bad UTF-8 or a lone surrogate (percent-encoded, as
    a client sends it): 422 that names what is accepted."""
    r = client.get("/viewer/state?at=" + at, headers=READ)
    assert r.status_code == 422, r.text
    assert "accepted" in r.text and "1970" in r.text


def test_extreme_but_valid_times_answer(client):
    """The first and last second a time may name both give a state (empty or the latest)."""
    for at in ("0", "253402300799"):
        r = client.get("/viewer/state", params={"at": at}, headers=READ)
        assert r.status_code == 200, r.text


@pytest.mark.parametrize(
    "name",
    ["../routers/viewer.py", "..%2f..%2fpyproject.toml", "/etc/passwd", "vendor/..%2findex.html",
     "x" * 5000, "%ED%A0%80.js", "viewer.js%00", "%00", "%FF", "vendor/", "__init__.py"],
)  # fmt: skip
def test_static_serves_only_its_table(client, name):
    """/viewer/static/<anything not in the table> is a 404 (naming what is served when the
    route is reached; a client may resolve '..' before sending), never a file's contents."""
    r = client.get("/viewer/static/" + name)
    assert r.status_code == 404, r.text
    detail = r.json()["detail"]
    assert "no viewer file" in detail or detail == "Not Found"
    assert "import" not in r.text and "[project]" not in r.text


def test_unknown_equipment_id_is_a_404(client):
    """The info panel's lookups with a garbage id answer 404 naming the id, not a 500."""
    for bad in ("NOPE", "%ED%A0%80", "x" * 10_000):
        r = client.get("/equipment/" + bad, headers=READ)
        assert r.status_code == 404, r.text


@needs_vendor
def test_pages_load_nothing_from_the_network(client):
    """/viewer and /docs, and the viewer's own scripts, name no http(s) URL (no CDN)."""
    for path in ("/viewer", "/docs", "/viewer/static/viewer.js", "/viewer/static/fab3d.js",
                 "/viewer/static/docs.js"):  # fmt: skip
        r = client.get(path)
        assert r.status_code == 200, path
        assert not re.search(r"https?://|wss?://|//cdn", r.text), path
        for ref in re.findall(r'(?:src|href)="([^"]*)"', r.text):  # the page's own files only
            assert ref.startswith(("/viewer/static/", "data:")), (path, ref)
    assert "swagger-ui-bundle.js" in client.get("/docs").text
    for name in ("vendor/three.module.js", "vendor/OrbitControls.js", "vendor/swagger-ui.css"):
        r = client.get("/viewer/static/" + name)
        assert r.status_code == 200 and r.headers["cache-control"].startswith("public")


def test_without_vendored_files_the_pages_say_how_to_install(client, monkeypatch):
    """Before setup.sh has copied three.js / Swagger UI, /viewer and /docs are a 503 naming it."""
    import twin_api.routers.viewer as v

    monkeypatch.setattr(v, "missing_vendor", lambda: ["three.module.js"])
    for path in ("/viewer", "/docs"):
        r = client.get(path)
        assert r.status_code == 503 and "scripts/setup.sh" in r.json()["detail"]


def test_static_table_has_the_viewer_files():
    """The served table holds the page, its script and style (vendor files once set up)."""
    assert {"index.html", "viewer.js", "fab3d.js", "viewer.css", "docs.html"} <= set(static_files())


def test_openapi_has_no_redoc_and_docs_is_ours(client):
    """ReDoc (a CDN page) is off; /openapi.json still lists the viewer's data endpoints."""
    assert client.get("/redoc").status_code == 404
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/v1/viewer/scene", "/v1/viewer/state", "/v1/viewer/history"} <= set(paths)


# ---------------------------------------------------------------- the stream's subprotocol auth
def _proto(token: str) -> str:
    return "twin.bearer." + base64.urlsafe_b64encode(token.encode()).decode().rstrip("=")


@pytest.fixture(scope="module")
def server():
    with LiveServer(make_settings()) as s:
        yield s


def test_stream_takes_the_token_in_a_subprotocol(server):
    """A browser's /stream: the token in 'twin.bearer.<base64url>', the server answers twin.v1."""

    async def go() -> dict:
        url = server.url.replace("http", "ws") + "/stream"
        async with websockets.connect(url, subprotocols=["twin.v1", _proto(TOKENS["read"])]) as ws:
            assert ws.subprotocol == "twin.v1"
            import json

            return json.loads(await asyncio.wait_for(ws.recv(), 10))

    assert asyncio.run(go())["notice"] == "live"


@pytest.mark.parametrize(
    "proto",
    ["twin.bearer.", "twin.bearer.!!!", "twin.bearer." + "A" * 5000, "twin.bearer.gA",
     _proto("unknown-token-0123456789"), _proto(TOKENS["ingest"])],
)  # fmt: skip
def test_stream_refuses_a_bad_subprotocol_token(server, proto):
    """Garbage, huge, non-ASCII, unknown or unscoped subprotocol tokens are refused (401)."""

    async def go() -> None:
        url = server.url.replace("http", "ws") + "/stream"
        async with websockets.connect(url, subprotocols=["twin.v1", proto]) as ws:
            await asyncio.wait_for(ws.recv(), 10)

    with pytest.raises(websockets.exceptions.InvalidStatus) as exc:
        asyncio.run(go())
    assert exc.value.response.status_code == 401


def test_viewer_page_served_without_token_data_not(server):
    """On a real server: the page is public (it holds no data), the data needs the token."""
    if missing_vendor():
        pytest.skip("browser files not installed (run scripts/setup.sh)")
    assert httpx.get(server.url + "/viewer").status_code == 200
    assert httpx.get(server.url + "/viewer/state").status_code == 401
    assert httpx.get(server.url + "/viewer/state", headers=READ).status_code == 200


def test_scene_and_vendor_files_go_gzipped_to_who_accepts_it(client):
    """/viewer/scene (and vendored files) are gzip for a client that accepts it, the same JSON
    decoded; plain for one that does not (or refuses it with q=0)."""
    zipped = client.get("/viewer/scene", headers={**READ, "Accept-Encoding": "gzip"})
    plain = client.get("/viewer/scene", headers={**READ, "Accept-Encoding": "identity"})
    assert zipped.headers["content-encoding"] == "gzip"
    assert "content-encoding" not in plain.headers
    assert zipped.json() == plain.json()
    assert int(zipped.headers["content-length"]) < len(plain.content) / 3
    for refused in ("gzip;q=0", "br", "identity, gzip; q=0.0", "x" * 5000):
        r = client.get("/viewer/scene", headers={**READ, "Accept-Encoding": refused})
        assert "content-encoding" not in r.headers, refused
