"""API conventions (docs/api.md, "Conventions"): /v1 with unprefixed aliases, ETag /
If-None-Match / HEAD, enums, descriptions and examples in the OpenAPI document, one pagination
style with a refused over-maximum limit, and a document that validates."""

from __future__ import annotations

import asyncio
import importlib
import pkgutil
import time
from collections.abc import Iterator

import httpx
import pytest
from pydantic import BaseModel

from tests.services.conftest import ADMIN, TOKENS, LiveServer, auth, make_settings
from tests.services.streams import demo_stream, dicts, tool_events
from twin.vocabulary import CARRIER_STATUSES, E10_STATES, LOT_STATUSES, VEHICLE_STATES
from twin_api.app import create_app
from twin_api.conventions import kind_of, matches

READS = ["/equipment", "/equipment/LITH01", "/lots", "/carriers", "/vehicles", "/kpis",
         "/state", "/events?limit=5", "/scene?limit=3", "/sources", "/viewer/state",
         "/viewer/history"]  # fmt: skip
LISTS = ["/equipment", "/lots", "/carriers", "/vehicles", "/scene", "/sources", "/whatif",
         "/events"]  # fmt: skip


@pytest.fixture(scope="module")
def live(tmp_path_factory) -> Iterator[LiveServer]:
    """This module's own real server (SQLite store): the suite's shared ones hold exactly
    the streams that other modules compare their answers with."""
    store = tmp_path_factory.mktemp("conv") / "events.db"
    with LiveServer(make_settings(store=str(store), synchronous="NORMAL")) as srv:
        srv_stream(lambda body: httpx.post(srv.url + "/events", json=body, headers=ADMIN,
                                           timeout=60))  # fmt: skip
        yield srv


@pytest.fixture(scope="module")
def inproc() -> Iterator:
    """This module's own app in process (memory store)."""
    from fastapi.testclient import TestClient

    with TestClient(create_app(make_settings())) as client:
        srv_stream(lambda body: client.post("/events", json=body, headers=ADMIN))
        yield client


def srv_stream(post) -> None:  # noqa: ANN001
    stream = dicts(demo_stream(lots=3, seed=11))
    for lo in range(0, len(stream), 500):
        r = post(stream[lo : lo + 500])
        assert r.status_code == 200 and r.json()["accepted"] == len(stream[lo : lo + 500])


@pytest.fixture(params=["inproc", "uvicorn"])
def api(request, inproc, live) -> Iterator:
    """Each test that takes ``api`` runs in process and against the real server."""
    if request.param == "inproc":
        yield inproc
    else:
        with httpx.Client(base_url=live.url, timeout=30) as client:
            yield client


def spec_of(api) -> dict:
    return api.get("/openapi.json").json()


# ------------------------------------------------------------------ versioning
@pytest.mark.parametrize("path", READS)
def test_v1_and_the_unprefixed_alias_answer_the_same(api, path):
    """Every read answers under /v1 and, as an alias, without it: same status, same ETag."""
    a = api.get("/v1" + path, headers=ADMIN)
    b = api.get(path, headers=ADMIN)
    assert a.status_code == b.status_code == 200, (a.text[:200], b.text[:200])
    assert a.headers.get("etag") == b.headers.get("etag") and a.headers.get("etag")


def test_openapi_lists_v1_paths_only(api):
    """The document lists every operation once, under /v1; the aliases are not in it."""
    paths = spec_of(api)["paths"]
    assert paths and all(p.startswith("/v1/") for p in paths), list(paths)
    assert "/v1/equipment/{equipment_id}" in paths and "/v1/whatif" in paths


def test_v1_prefix_is_exact(api):
    """Only /v1 and /v1/... are the version: /v10/kpis and /v1kpis are unknown paths."""
    for path in ("/v10/kpis", "/v1kpis", "/v2/kpis"):
        assert api.get(path, headers=ADMIN).status_code == 404, path
    assert api.get("/v1/v1/kpis", headers=ADMIN).status_code == 404


def test_post_and_stream_work_under_v1(live):
    """POST /v1/events ingests (the fast path too) and WS /v1/stream streams."""
    import websockets

    ev = {"id": "conv-v1:1", "source": "conv-v1", "seq": 1, "time": "2026-01-31T08:00:00Z",
          "type": "equipment.state", "subject": "LITH01",
          "data": {"state": "standby", "reason": "idle"}}  # fmt: skip
    r = httpx.post(live.url + "/v1/events", json=[ev], headers=ADMIN, timeout=30)
    assert r.status_code == 200 and r.json()["accepted"] == 1, r.text
    url = live.url.replace("http", "ws") + "/v1/stream?since=0"

    async def first() -> object:
        async with websockets.connect(url, additional_headers=auth("read")) as ws:
            return await asyncio.wait_for(ws.recv(), 10)

    assert asyncio.run(first())


def test_location_keeps_the_prefix_the_client_used(inproc):
    """POST /v1/whatif answers Location: /v1/whatif/{id}; POST /whatif, /whatif/{id}."""
    for prefix in ("/v1", ""):
        r = inproc.post(prefix + "/whatif", json={"replications": 1, "days": 0.01}, headers=ADMIN)
        assert r.status_code == 202, r.text
        assert r.headers["location"] == f"{prefix}/whatif/{r.json()['id']}"
        inproc.delete(r.headers["location"], headers=ADMIN)


# ------------------------------------------------------------------ ETag, 304, HEAD
@pytest.mark.parametrize("path", READS)
def test_if_none_match_answers_304_without_a_body(api, path):
    """A read's ETag sent back in If-None-Match answers 304 with the same ETag and no body
    (strong tags; weak comparison: W/ accepted), while the twin has not changed."""
    for _ in range(5):  # a read that raced an ingest is untagged: ask again
        r = api.get(path, headers=ADMIN)
        tag = r.headers.get("etag")
        again = api.get(path, headers={**ADMIN, "If-None-Match": tag or '"none"'})
        if tag and again.status_code == 304:
            break
    assert tag and tag.startswith('"') and not tag.startswith("W/"), tag
    assert again.status_code == 304 and again.content == b"" and again.headers["etag"] == tag
    weak = api.get(path, headers={**ADMIN, "If-None-Match": f'"x", W/{tag}'})
    assert weak.status_code == 304
    other = api.get(path, headers={**ADMIN, "If-None-Match": '"0-000000000000"'})
    assert other.status_code == 200 and other.content


def test_a_change_of_the_twin_changes_the_tag(inproc):
    """An applied event moves the revision: the old tag no longer matches (200, a new tag);
    the tag differs between two queries of one path."""
    r = inproc.get("/kpis", headers=ADMIN)
    tag = r.headers["etag"]
    assert (
        inproc.get("/lots?limit=1", headers=ADMIN).headers["etag"]
        != inproc.get("/lots?limit=2", headers=ADMIN).headers["etag"]
    )
    (ev,) = dicts(tool_events("conv-tag", ["LITH02"], 1, t0=time.time()))
    posted = inproc.post("/events", json=[ev], headers=ADMIN).json()
    assert posted["accepted"] == 1, posted["results"]
    after = inproc.get("/kpis", headers={**ADMIN, "If-None-Match": tag})
    assert after.status_code == 200 and after.headers["etag"] != tag


def test_304_needs_a_read_token(api):
    """A matching tag without a token (or with a token lacking read) is 401/403, not 304."""
    tag = api.get("/kpis", headers=ADMIN).headers["etag"]
    assert api.get("/kpis", headers={"If-None-Match": tag}).status_code == 401
    r = api.get("/kpis", headers={**auth("ingest"), "If-None-Match": tag})
    assert r.status_code == 403


def test_job_tags_follow_the_job(inproc):
    """A what-if job's ETag comes from its own status: it changes as the job runs and ends,
    and matches (304) once the job no longer changes."""
    r = inproc.post("/whatif", json={"replications": 1, "days": 0.5}, headers=ADMIN)
    where = r.headers["location"]
    tags = set()
    deadline = time.monotonic() + 120
    while True:
        g = inproc.get(where, headers=ADMIN)
        tags.add(g.headers["etag"])
        if g.json()["status"] not in ("queued", "running"):
            break
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert g.json()["status"] == "completed"
    assert len(tags) >= 2  # queued/running then completed
    same = inproc.get(where, headers={**ADMIN, "If-None-Match": g.headers["etag"]})
    assert same.status_code == 304 and same.content == b""


def test_probes_are_never_tagged(api):
    """/health, /ready and /metrics answer fresh every time: no ETag, never 304."""
    for path in ("/health", "/ready", "/metrics"):
        r = api.get(path, headers={**ADMIN, "If-None-Match": "*"})
        assert r.status_code == 200 and "etag" not in r.headers, path
    assert kind_of("/metrics") is None and kind_of("/lots/L1/eta") == "content"
    assert kind_of("/lots/L1") == "revision" and kind_of("/lotsx") == "content"
    assert kind_of("/events") == kind_of("/viewer/history") == "content"
    assert kind_of("/state", b"at=0") == kind_of("/viewer/state", b"x=1&at=0") == "content"
    assert kind_of("/state") == kind_of("/viewer/state", b"x=1") == "revision"


HOSTILE_TAGS = ["garbage", '"', "W/", ",,,", "*, x", '"' + "9" * 10_000 + '"',
                ",".join(['"a"'] * 3000), "\x7f", "W/W/\"1\""]  # fmt: skip


def test_hostile_if_none_match_is_no_500(api):
    """Garbage, huge, NUL and undecodable If-None-Match values are ignored (200) or match
    as * does (304); a byte no header may hold is refused by the server (400): never a 500."""
    for value in HOSTILE_TAGS:
        for path in ("/lots", "/scene.glb"):
            r = api.get(path, headers={**ADMIN, "If-None-Match": value})
            ok = (200, 304, 400) if value == "\x7f" else (200, 304)
            assert r.status_code in ok, (path, value[:20], r.status_code)
    for raw in (b"\xed\xa0\x80", b"\xff\xfe", b'"\xed\xa0\x80"'):
        r = api.get("/kpis", headers=[*ADMIN.items(), ("If-None-Match", raw)])
        assert r.status_code == 200
    assert api.get("/kpis", headers={**ADMIN, "If-None-Match": "*"}).status_code == 304
    for path in ("/lots/%ED%A0%80", "/v1/lots/%FF%FE", "/equipment/%ED%A0%80"):
        for tag in ("*", '"1-abc"', None):
            headers = ADMIN if tag is None else {**ADMIN, "If-None-Match": tag}
            assert api.get(path, headers=headers).status_code == 404, (path, tag)
            assert api.head(path, headers=headers).status_code == 404, (path, tag)
    assert api.get("/lots/NOPE", headers={**ADMIN, "If-None-Match": "*"}).status_code == 404


def test_matches():
    """If-None-Match parsing: lists, W/ prefixes, * and garbage."""
    assert matches('"a", "b"', '"b"') and matches('W/"b"', '"b"') and matches(" * ", '"b"')
    assert not matches('"ab"', '"b"') and not matches("b", '"b"') and not matches("", '"b"')
    assert not matches("\ud800", '"b"')


def test_head_works_wherever_get_does(api):
    """HEAD of every GET in the document answers GET's status and headers, with no body."""
    params = {"equipment_id": "LITH01", "lot_id": "NOPE", "job_id": "nope"}
    for path, ops in spec_of(api)["paths"].items():
        if "get" not in ops:
            continue
        url = path.format(**params)
        g = api.get(url, headers=ADMIN)
        h = api.head(url, headers=ADMIN)
        assert h.status_code == g.status_code, url
        assert h.content == b"", url
        if url.endswith(("/metrics", "/health", "/ready", "/viewer/history")):
            continue  # fresh numbers every time
        for k in ("content-type", "content-length", "etag"):
            if g.status_code == 200 or k != "etag":
                assert h.headers.get(k) == g.headers.get(k), (url, k)
    assert api.head("/v1/equipment/NOPE", headers=ADMIN).status_code == 404
    assert api.head("/viewer/static/viewer.js").status_code == 200


# ------------------------------------------------------------------ the document
def test_enums_for_the_vocabularies(api):
    """E10 states, lot status, carrier status and vehicle state are enums in the schemas."""
    schemas = spec_of(api)["components"]["schemas"]

    def enum(model: str, prop: str) -> list[str]:
        p = schemas[model]["properties"][prop]
        for s in p.get("anyOf", [p]):
            if "enum" in s:
                return s["enum"]
        raise AssertionError(f"{model}.{prop} has no enum: {p}")

    assert enum("EquipmentPublic", "state") == list(E10_STATES)
    assert enum("LotPublic", "status") == list(LOT_STATUSES)
    assert enum("CarrierPublic", "status") == list(CARRIER_STATUSES)
    assert enum("VehiclePublic", "state") == list(VEHICLE_STATES)


def test_every_property_has_a_description_and_every_response_an_example(api):
    """Walk /openapi.json: every schema property has a description; every JSON success
    response has an example (in its schema or beside it)."""
    spec = spec_of(api)
    schemas = spec["components"]["schemas"]
    missing = [f"{name}.{prop}" for name, s in schemas.items()
               for prop, p in s.get("properties", {}).items() if not p.get("description")]  # fmt: skip
    assert not missing, missing
    no_example = []
    for path, ops in spec["paths"].items():
        for method, op in ops.items():
            for code, resp in op["responses"].items():
                media = resp.get("content", {}).get("application/json")
                if not code.startswith("2") or media is None:
                    continue
                ref = media.get("schema", {}).get("$ref", "")
                target = schemas.get(ref.rsplit("/", 1)[-1], {}) if ref else {}
                if not ("example" in media or "examples" in media or target.get("examples")):
                    no_example.append(f"{method} {path} {code}")
    assert not no_example, no_example


def _models() -> list[type[BaseModel]]:
    import twin_api.schemas as pkg

    out = []
    for info in pkgutil.iter_modules(pkg.__path__):
        mod = importlib.import_module(f"twin_api.schemas.{info.name}")
        for v in vars(mod).values():
            if isinstance(v, type) and issubclass(v, BaseModel) and v.__module__ == mod.__name__:
                extra = v.model_config.get("json_schema_extra")
                if isinstance(extra, dict) and extra.get("examples"):
                    out.append(v)
    return out


def test_examples_are_valid_instances():
    """Every example in a schema is an instance of its model (examples do not drift)."""
    models = _models()
    assert len(models) >= 15
    for m in models:
        for ex in m.model_config["json_schema_extra"]["examples"]:  # type: ignore[index]
            m.model_validate(ex)


def test_openapi_document_validates(api):
    """/openapi.json is a valid OpenAPI 3.1 document (openapi-spec-validator)."""
    from openapi_spec_validator import validate

    validate(spec_of(api))


def test_limit_parameters_state_the_maximum(api):
    """Every list's limit parameter carries the maximum (TWIN_MAX_PAGE) in its schema."""
    spec = spec_of(api)
    found = 0
    for ops in spec["paths"].values():
        for op in ops.values():
            for p in op.get("parameters", ()):
                if p["name"] == "limit":
                    found += 1
                    ints = [s for s in p["schema"].get("anyOf", [p["schema"]]) if s.get("type") == "integer"]  # fmt: skip
                    assert ints and ints[0]["maximum"] == 1000 and ints[0]["minimum"] == 1
    assert found == len(LISTS)


# ------------------------------------------------------------------ pagination
@pytest.mark.parametrize("path", LISTS)
def test_limit_over_the_maximum_is_refused(api, path):
    """limit above TWIN_MAX_PAGE is a 422 naming the maximum, on every list; at it, 200."""
    for value in ("1001", "99999999999999999999"):
        r = api.get(path, params={"limit": value}, headers=ADMIN)
        assert r.status_code == 422, (path, r.text)
        assert "over the maximum of 1000" in r.json()["detail"]
    assert api.get(path, params={"limit": 1000}, headers=ADMIN).status_code == 200
    r = api.get(path, params={"limit": "9" * 5000}, headers=ADMIN)
    assert r.status_code == 422 and len(r.text) < 2000


@pytest.mark.parametrize("path", LISTS)
def test_every_list_pages_the_same_way(api, path):
    """Every list answers next_cursor and, when there is more, Link rel=next; following the
    links walks the whole list once, keeping the filters and the prefix."""
    sep = "&" if "?" in path else "?"
    first = api.get(f"/v1{path}{sep}limit=2", headers=ADMIN)
    assert first.status_code == 200 and "next_cursor" in first.json()
    seen, url, pages = [], f"/v1{path}{sep}limit=2", 0
    while url:
        r = api.get(url, headers=ADMIN)
        assert r.status_code == 200, r.text
        body = r.json()
        seen += body["items"] if path != "/scene" else body["nodes"]
        link = r.headers.get("link")
        assert (link is None) == (body["next_cursor"] is None), (link, body["next_cursor"])
        url = link[1 : link.index(">")] if link else None
        if url:
            assert url.startswith(f"/v1{path}?") and "limit=2" in url and "cursor=" in url
        pages += 1
        if pages > 60:
            break
    assert seen or path == "/whatif", path  # (no job may have run on this server yet)
    if pages <= 60 and path != "/events":
        total = first.json()["total"]
        assert len(seen) == total
    keys = [x.get("id", x.get("source", x.get("pos"))) for x in seen]
    assert len(keys) == len(set(keys)) or path == "/events"


def test_links_keep_the_filters(api):
    """The next link of a filtered list repeats the filters and the limit, and leads to the
    next page of the filtered list."""
    r = api.get("/v1/scene?limit=2&kind=tool,stocker&offset=0", headers=ADMIN)
    assert r.status_code == 200 and r.json()["total"] > 2
    link = r.headers["link"]
    assert link.startswith("</v1/scene?limit=2&kind=tool%2Cstocker&cursor=")
    assert link.endswith('>; rel="next"') and "offset" not in link
    nxt = api.get(link[1 : link.index(">")], headers=ADMIN).json()
    assert nxt["offset"] == 2 and {n["kind"] for n in nxt["nodes"]} <= {"tool", "stocker"}


HOSTILE_CURSORS = ["zz", "", "%ED%A0%80", "x" * 10_000, "bzE" * 30, "YTE", "b-1", "%00",
                   "b99999999999999999999", "bzk5OTk5OTk5OTk5OTk5OTk5OTk5"]  # fmt: skip


@pytest.mark.parametrize("path", ["/lots", "/events", "/scene", "/whatif"])
def test_hostile_cursors_answer_422(api, path):
    """A cursor this list did not write (garbage, huge, a lone surrogate, another list's, a
    position past 64 bits) is a 422 naming what is accepted; the list answers after."""
    for value in HOSTILE_CURSORS:
        if value == "YTE" and path == "/events":
            continue  # /events' own cursor
        r = api.get(f"{path}?cursor={value}", headers=ADMIN)
        assert r.status_code == 422, (path, value[:20], r.status_code, r.text[:200])
        assert "next_cursor" in r.json()["detail"] and len(r.text) < 2000
    assert api.get(path, headers=ADMIN).status_code == 200


def test_cursor_and_offset_agree(api):
    """cursor is the opaque form of the position: the same page as offset / after."""
    a = api.get("/equipment?limit=3", headers=ADMIN).json()
    b = api.get("/equipment", params={"limit": 3, "cursor": a["next_cursor"]}, headers=ADMIN)
    c = api.get("/equipment", params={"limit": 3, "offset": a["next"]}, headers=ADMIN)
    assert b.json()["items"] == c.json()["items"]
    e = api.get("/events?limit=2", headers=ADMIN).json()
    f = api.get("/events", params={"limit": 2, "cursor": e["next_cursor"]}, headers=ADMIN)
    g = api.get("/events", params={"limit": 2, "after": e["next_after"]}, headers=ADMIN)
    assert f.json()["items"] == g.json()["items"]


def test_small_max_page_is_named():
    """A server with TWIN_MAX_PAGE=5 names 5 as the maximum and defaults to 5 items."""
    from fastapi.testclient import TestClient

    from twin_api.app import create_app

    with TestClient(create_app(make_settings(max_page=5))) as c:
        r = c.get("/scene?limit=6", headers=auth("read"))
        assert r.status_code == 422 and "maximum of 5" in r.json()["detail"]
        assert c.get("/scene", headers=auth("read")).json()["limit"] == 5
        assert TOKENS  # the tokens of the suite serve it


# ------------------------------------------------------------------ reads once per revision
def test_revision_reads_are_rendered_once_per_revision(inproc, monkeypatch):
    """/kpis is computed once per revision however many callers ask (each gets the same
    bytes and tag, a caller without a token still gets 401); an applied event renders anew."""
    import twin_api.routers.kpis as kpis

    calls = []
    real = kpis.locked_kpis
    monkeypatch.setattr(kpis, "locked_kpis", lambda rt: calls.append(1) or real(rt))
    inproc.get("/kpis?fresh=1", headers=ADMIN)
    n = len(calls)
    answers = [inproc.get("/kpis?fresh=1", headers=ADMIN) for _ in range(5)]
    assert len({(a.content, a.headers["etag"]) for a in answers}) == 1
    assert len(calls) == n  # served from the rendering
    assert inproc.get("/kpis?fresh=1").status_code == 401
    assert inproc.head("/kpis?fresh=1", headers=ADMIN).content == b""
    (ev,) = dicts(tool_events("conv-once", ["LITH03"], 1, t0=time.time()))
    assert inproc.post("/events", json=[ev], headers=ADMIN).json()["accepted"] == 1
    again = inproc.get("/kpis?fresh=1", headers=ADMIN)
    assert len(calls) == n + 1 and again.headers["etag"] != answers[0].headers["etag"]


def test_lot_pages_follow_new_lots(inproc):
    """The sorted lot index is rebuilt when a lot is added: a new lot shows in the list."""
    before = inproc.get("/lots?limit=1000", headers=ADMIN).json()
    lot = {"id": "conv-lot:1", "source": "conv-lot", "seq": 1,
           "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
           "type": "lot.released", "subject": "AAA-conv-lot",
           "data": {"product": before["items"][0]["product"]}}  # fmt: skip
    r = inproc.post("/events", json=[lot], headers=ADMIN).json()
    assert r["accepted"] == 1, r["results"]
    after = inproc.get("/lots?limit=1000", headers=ADMIN).json()
    ids = [x["id"] for x in after["items"]]
    assert after["total"] == before["total"] + 1 and ids[0] == "AAA-conv-lot"
    assert ids == sorted(ids)


def test_a_read_that_asks_for_a_later_revision_is_never_304(api):
    """?min_revision= past the twin's revision is neither answered 304 nor from a rendering
    of an earlier revision (the revision layer waits for it); at or below it, 304 as usual."""
    from twin_api.conventions import _waits

    r = api.get("/kpis?min_revision=0", headers=ADMIN)
    tag = r.headers["etag"]
    rev = int(tag.strip('"').split("-")[0])
    same = api.get("/kpis?min_revision=0", headers={**ADMIN, "If-None-Match": tag})
    assert same.status_code == 304
    assert _waits({"query_string": f"a=1&min_revision={rev + 1}".encode()}, rev)
    assert not _waits({"query_string": f"min_revision={rev}".encode()}, rev)
    assert _waits({"query_string": b"min_revision=\xed\xa0\x80"}, rev)
    assert not _waits({"query_string": b"x=1"}, rev)
