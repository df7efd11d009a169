"""The event contract generated from the registry: the JSON Schema is a valid draft 2020-12
schema that accepts every documented, registered and emulated event and refuses what the twin
refuses; the AsyncAPI document passes the AsyncAPI parser; the API and the CLI serve both."""

from __future__ import annotations

import copy
import json
import re
import shutil
import subprocess
from collections import defaultdict
from pathlib import Path

import jsonschema
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from twin.cli import main as twin_main
from twin.live.contract import asyncapi, event_schema
from twin.live.events import MAX_INT, MAX_TEXT, MAX_TIME, EventFormatError, parse_event
from twin.live.registry import registry
from twin.live.synthetic import StreamConfig, synthetic_catalog, synthetic_stream

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs" / "events.md"
SCRIPT = ROOT / "tests" / "services" / "asyncapi_parse.cjs"
MODULES = ROOT / "node_modules"

SCHEMA = event_schema()
VALIDATOR = jsonschema.Draft202012Validator(SCHEMA)
# one validator per type (a $ref into the same document): ~20x cheaper than the oneOf
BY_TYPE = {
    name: jsonschema.Draft202012Validator({**SCHEMA, "oneOf": [{"$ref": f"#/$defs/{name}"}]})
    for name in registry().names
}


def doc_examples() -> list[dict]:
    return [json.loads(b) for b in re.findall(r"```json\n(.*?)\n```", DOCS.read_text(), re.S)]


def good() -> dict:
    return {
        "specversion": "1.0", "schema": 1, "id": "mes:1", "source": "mes", "seq": 1,
        "time": "2027-01-15T08:00:00.000000Z", "type": "lot.track_in", "subject": "L1",
        "data": {"equipment": "DIFF_1", "step": 10},
    }  # fmt: skip


def test_schema_is_a_valid_draft_2020_12_schema():
    """The generated document passes the draft 2020-12 meta-schema, and has one $defs entry
    per registered type plus the envelope."""
    jsonschema.Draft202012Validator.check_schema(SCHEMA)
    assert SCHEMA["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert set(SCHEMA["$defs"]) == {"envelope", *registry().names}
    assert len(SCHEMA["oneOf"]) == len(registry())


@pytest.mark.parametrize("raw", doc_examples(), ids=lambda r: r["type"])
def test_every_docs_example_validates(raw):
    """Every JSON example in docs/events.md validates against the schema and the envelope."""
    VALIDATOR.validate(raw)
    jsonschema.validate(raw, SCHEMA["$defs"]["envelope"], jsonschema.Draft202012Validator)


def test_every_registered_example_validates():
    """Each type's own example (the schema's `examples`) validates and parses in the twin."""
    for name, sub in SCHEMA["$defs"].items():
        for ex in sub.get("examples", []):
            VALIDATOR.validate(ex)
            assert parse_event(ex).type == name


def test_deprecated_alias_validates():
    """An event under the deprecated name `lot.release` still validates (and is refused by
    neither the schema nor the twin)."""
    raw = {**good(), "type": "lot.release", "data": {"reason": "ok"}}
    VALIDATOR.validate(raw)
    assert parse_event(raw).type == "lot.hold_released"


def test_every_synthetic_event_validates():
    """The synthetic stream's events, as the twin emits them (to_dict), all validate."""
    evs = synthetic_stream(StreamConfig(lots=10, seed=3), synthetic_catalog())
    seen = set()
    for ev in evs:
        BY_TYPE[ev.type].validate(ev.to_dict())
        if ev.type not in seen:
            seen.add(ev.type)
            VALIDATOR.validate(ev.to_dict())
    assert "lot.hold_released" in seen


@pytest.fixture(scope="module")
def emulated() -> list[dict]:
    """Three hours of the demo fab from the emulator, in process, as emitted (to_dict)."""
    from twin.emulator.emulator import load_emulator

    emu = load_emulator(str(ROOT / "scenes" / "demo-fab"), seed=1, hours=3.0)
    return [ev.to_dict() for ev in emu.events()]


def test_every_emulated_event_validates(emulated):
    """Every event the emulator emits over three hours of the demo fab validates against its
    type's schema; the first ones of each type against the whole oneOf too."""
    by_type: dict[str, int] = defaultdict(int)
    for raw in emulated:
        BY_TYPE[raw["type"]].validate(raw)
        by_type[raw["type"]] += 1
        if by_type[raw["type"]] <= 5:
            VALIDATOR.validate(raw)
    assert len(emulated) > 1000 and {"vehicle.position", "lot.track_in"} <= set(by_type)


def _set(path: str, value):
    def change(raw: dict) -> None:
        *head, last = path.split(".")
        d = raw
        for k in head:
            d = d[k]
        d[last] = value

    return change


def _drop(path: str):
    def change(raw: dict) -> None:
        *head, last = path.split(".")
        d = raw
        for k in head:
            d = d[k]
        del d[last]

    return change


DEEP: dict = {}
_d = DEEP
for _ in range(40):
    _d["x"] = {}
    _d = _d["x"]

HOSTILE = {
    "no seq": _drop("seq"),
    "no data": _drop("data"),
    "extra key": _set("extra", 1),
    "seq 0": _set("seq", 0),
    "seq bool": _set("seq", True),
    "seq text": _set("seq", "1"),
    "seq past int64": _set("seq", MAX_INT + 1),
    "seq huge": _set("seq", 10**40),
    "time not UTC": _set("time", "2027-01-15T09:00:00+01:00"),
    "time naive": _set("time", "2027-01-15T08:00:00"),
    "time garbage": _set("time", "yesterday"),
    "time year 10000": _set("time", MAX_TIME + 1),
    "time negative": _set("time", -1),
    "time bool": _set("time", True),
    "type unknown": _set("type", "lot.teleported"),
    "type number": _set("type", 3),
    "id empty": _set("id", ""),
    "id long": _set("id", "i" * 257),
    "subject long": _set("subject", "s" * 300),
    "subject null": _set("subject", None),
    "source reserved": _set("source", "gap:mes"),
    "schema 2": _set("schema", 2),
    "specversion 0.3": _set("specversion", "0.3"),
    "specversion number": _set("specversion", 1.0),
    "data list": _set("data", []),
    "data missing field": _drop("data.step"),
    "data unknown field": _set("data.bogus", 1),
    "data wrong type": _set("data.equipment", 3),
    "data bool for int": _set("data.step", True),
    "data int past int64": _set("data.step", MAX_INT + 1),
    "data float for int": _set("data.step", 10.5),
    "data text too long": _set("data.equipment", "e" * (MAX_TEXT + 1)),
    "data deep": _set("data.equipment", DEEP),
    "state not E10": lambda r: r.update(type="equipment.state", data={"state": "flying", "reason": "x"}),
    "negative offset": lambda r: r.update(type="vehicle.position", data={"segment": "S1", "offset": -1.0, "speed": 0.0}),
    "placed at step 0": lambda r: r.update(type="lot.placed", data={"product": "P1", "step": 0}),
    "severity unknown": lambda r: r.update(type="alarm.set", data={"alarm": "A", "severity": "meh"}),
    "gap from a fab source": lambda r: r.update(type="stream.gap", data={"from_seq": 1, "to_seq": 2}),
}  # fmt: skip


def _twin_refuses(raw: dict) -> bool:
    """Refused at parse, by a rule that needs no state (values, ranges), or at the door
    (reserved source or type)."""
    from twin.live.state import TwinState
    from twin.live.validate import check_payload

    ev, reason = check_payload(raw, TwinState())
    if ev is None:
        return True
    door = ev.type in ("stream.gap", "stream.reset") or ev.source.startswith(("gap:", "reset:"))
    return door or (reason is not None and "unknown lot" not in reason)


@pytest.mark.parametrize("name", list(HOSTILE))
def test_what_the_twin_refuses_does_not_validate(name):
    """Garbage and hostile events that the twin refuses are refused by the schema too."""
    raw = good()
    HOSTILE[name](raw)
    assert _twin_refuses(raw), name
    assert not VALIDATOR.is_valid(raw), name


_values = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**70), 2**70),
    st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=8),
    st.lists(st.integers(), max_size=2), st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)  # fmt: skip


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    t=st.sampled_from([t for t in registry() if t.producer == "fab"]),
    key=st.sampled_from(["id", "source", "seq", "time", "subject", "data", "field", "extra"]),
    value=_values,
)
def test_schema_never_accepts_what_parse_refuses(t, key, value):
    """An example of any type with one value replaced at random: when the schema accepts it,
    the twin parses it (the schema is never laxer than the twin's shape checks). Not drawn: a
    float with a zero fraction (1.0), which JSON Schema counts as an integer and the twin does
    not (docs/events.md says so)."""
    assume(not (isinstance(value, float) and value.is_integer()))
    raw = json.loads(json.dumps(good()))
    raw["type"], raw["data"] = t.name, copy.deepcopy(t.example["data"])
    if key == "field":
        names = [f.name for f in t.fields] or ["bogus"]
        raw["data"][names[len(str(value)) % len(names)]] = value
    elif key == "extra":
        raw["data"]["zz"] = value
    else:
        raw[key] = value
    if VALIDATOR.is_valid(raw):
        try:
            parse_event(raw)
        except EventFormatError as exc:  # pragma: no cover - the failure explains itself
            pytest.fail(f"schema accepts what the twin refuses ({exc.reason}): {raw}")


# ---------------------------------------------------------------------- AsyncAPI
def _parse_asyncapi(doc: dict, tmp_path: Path) -> dict:
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed: the AsyncAPI parser (@asyncapi/parser) runs on Node.js")
    assert (MODULES / "@asyncapi" / "parser" / "package.json").exists(), (
        f"{MODULES}/@asyncapi/parser is missing: run `npm ci` (scripts/setup.sh)"
    )
    path = tmp_path / "asyncapi.json"
    path.write_text(json.dumps(doc))
    proc = subprocess.run(
        [node, str(SCRIPT), str(path), str(MODULES)], capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_asyncapi_passes_the_asyncapi_parser(tmp_path):
    """@asyncapi/parser reads the document with no error and no warning, and finds the MQTT
    topics (events, heartbeats, acks, presence) and the WebSocket stream."""
    out = _parse_asyncapi(asyncapi(), tmp_path)
    serious = [d for d in out["diagnostics"] if d["severity"] <= 1]
    assert out["parsed"] and not serious, serious
    assert out["summary"]["version"] == "3.0.0"
    assert set(out["summary"]["channels"]) == {
        "twin/{fab}/events/{source}", "twin/{fab}/heartbeat/{source}",
        "twin/{fab}/acks/{source}", "twin/{fab}/presence", "/stream",
    }  # fmt: skip


def test_asyncapi_parser_catches_a_broken_document(tmp_path):
    """The parser check can fail: an operation on a channel that does not exist is an error."""
    doc = asyncapi()
    doc["operations"]["sendAcks"]["channel"] = {"$ref": "#/channels/nowhere"}
    out = _parse_asyncapi(doc, tmp_path)
    assert not out["parsed"] or any(d["severity"] == 0 for d in out["diagnostics"])


def test_asyncapi_payloads_are_the_registry_schemas():
    """The AsyncAPI payload of each type is the JSON Schema's $defs entry of that type."""
    comps = asyncapi()["components"]["schemas"]
    for name in registry().names:
        assert comps[name] == SCHEMA["$defs"][name]


# ---------------------------------------------------------------------- API and CLI
def test_api_serves_both_documents_without_a_token(inproc):
    """GET /schemas/events.json and /asyncapi.json answer anyone with the generated documents,
    an ETag, and 304 for If-None-Match; they stay out of the OpenAPI paths."""
    r = inproc.get("/schemas/events.json")
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/schema+json")
    assert r.json() == json.loads(json.dumps(SCHEMA))
    again = inproc.get("/schemas/events.json", headers={"If-None-Match": r.headers["etag"]})
    assert again.status_code == 304 and again.content == b""
    a = inproc.get("/asyncapi.json")
    assert a.status_code == 200 and a.json()["asyncapi"] == "3.0.0"
    assert a.headers["etag"] != r.headers["etag"]
    assert inproc.get("/asyncapi.json", headers={"If-None-Match": '"nope"'}).status_code == 200
    assert "/asyncapi.json" not in inproc.get("/openapi.json").json()["paths"]


def test_cli_prints_the_same_documents(capsys):
    """`twin schema events` and `twin schema asyncapi` print the API's documents."""
    assert twin_main(["schema", "events"]) == 0
    assert json.loads(capsys.readouterr().out) == json.loads(json.dumps(SCHEMA))
    assert twin_main(["schema", "asyncapi", "--indent", "0"]) == 0
    out = capsys.readouterr().out
    assert out.count("\n") == 1 and json.loads(out)["channels"]["stream"]["address"] == "/stream"
    assert twin_main(["schema", "events", "--indent", "-1"]) == 1
    assert "--indent" in capsys.readouterr().err


@pytest.fixture
def fresh():
    """A new in-process app with an empty memory store (the shared one is not written to)."""
    from fastapi.testclient import TestClient

    from tests.services.conftest import make_settings
    from twin_api.app import create_app

    with TestClient(create_app(make_settings())) as client:
        yield client


def test_events_read_back_from_the_api_are_cloudevents_that_validate(fresh):
    """Events posted with and without specversion are read back from GET /events with
    specversion "1.0", and validate against the schema; a bad specversion is rejected."""
    from tests.services.conftest import ADMIN
    from twin.live.events import make_event

    inproc = fresh

    evs = [
        make_event("schema-test", k, 1.8e9 + k, "equipment.state", "LITH01", state=s, reason="r")
        for k, s in ((1, "standby"), (2, "productive"), (3, "standby"))
    ]
    bodies = [evs[0].to_dict(), {k: v for k, v in evs[1].to_dict().items() if k != "specversion"}]
    bodies.append({**evs[2].to_dict(), "specversion": "0.3"})
    r = inproc.post("/events", json=bodies, headers=ADMIN)
    assert [x["status"] for x in r.json()["results"]] == ["accepted", "accepted", "rejected"]
    assert "specversion" in r.json()["results"][2]["reason"]
    page = inproc.get("/events?type=equipment.state&subject=LITH01&limit=1000", headers=ADMIN)
    mine = [x["event"] for x in page.json()["items"] if x["event"]["source"] == "schema-test"]
    assert len(mine) == 2
    for raw in mine:
        assert raw["specversion"] == "1.0"
        VALIDATOR.validate(raw)
