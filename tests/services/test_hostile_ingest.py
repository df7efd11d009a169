"""POST /events under hostile input: poison items are refused alone, a failed write answers 503
and keeps nothing, reads keep answering, and the state always equals a replay of the store."""

from __future__ import annotations

import json
import sqlite3

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.live.util import LEGACY_SCHEMA
from tests.services.conftest import auth, make_settings
from twin.live.events import Event, make_event


def ev(seq, tool="LITH01", state="standby", source="mes"):
    return make_event(source, seq, 1.8e9 + seq, "equipment.state", tool, state=state, reason="r")


def deep(n: int) -> str:
    return "[" * n + "]" * n


# Each item once made the whole batch fail after the state was applied, or every later read.
POISON_TEXTS = {
    "surrogate in source": '{"id":"p","source":"mes\\ud800","seq":1,"time":1800000000,"type":"equipment.state","subject":"LITH01","data":{"state":"standby","reason":"r"}}',
    "surrogate in id": '{"id":"\\udfff","source":"erp","seq":1,"time":1800000000,"type":"equipment.state","subject":"LITH01","data":{"state":"standby","reason":"r"}}',
    "surrogate in data": '{"id":"p","source":"erp","seq":1,"time":1800000000,"type":"equipment.state","subject":"LITH01","data":{"state":"standby","reason":"\\ud800"}}',
    "seq 2^63+5": '{"id":"p","source":"erp","seq":9223372036854775813,"time":1800000000,"type":"equipment.state","subject":"LITH01","data":{"state":"standby","reason":"r"}}',
    "nested 1,000 deep": '{"id":"p","source":"erp","seq":1,"time":1800000000,"type":"equipment.state","subject":"LITH01","data":{"state":"standby","reason":'
    + deep(1000)
    + "}}",
    "year 10000": '{"id":"p","source":"erp","seq":1,"time":"9999-12-31T23:59:59.999999Z","type":"equipment.state","subject":"LITH01","data":{"state":"standby","reason":"r"}}',
    "time 1e15": '{"id":"p","source":"erp","seq":1,"time":1e15,"type":"equipment.state","subject":"LITH01","data":{"state":"standby","reason":"r"}}',
    "hijack seq 1e15": '{"id":"p","source":"mes","seq":1000000000000000,"time":1800000000,"type":"equipment.state","subject":"LITH01","data":{"state":"standby","reason":"r"}}',
}


@pytest.fixture
def fresh(tmp_path):
    from fastapi.testclient import TestClient

    from twin_api.app import create_app

    settings = make_settings(store=str(tmp_path / "twin.db"), synchronous="NORMAL")
    with TestClient(create_app(settings)) as c:
        yield c


def _post(client, items: list[str]):
    body = "[" + ",".join(items) + "]"
    return client.post(
        "/events",
        content=body.encode(),
        headers={**auth("ingest"), "content-type": "application/json"},
    )


def _reads_answer(client) -> None:
    for path in ("/state", "/kpis", "/events?limit=1000", "/equipment/LITH01"):
        r = client.get(path, headers=auth("read"))
        assert r.status_code == 200, (path, r.status_code, r.text[:200])


def _state_is_the_store(client) -> None:
    rt = client.app.state.runtime
    with rt.lock:
        assert rt.state.fingerprint() == rt.store.replay(rt.catalog).fingerprint()


@pytest.mark.parametrize("name", sorted(POISON_TEXTS))
def test_poison_item_is_refused_alone(fresh, name):
    """One poison item among good ones: 200, it alone rejected with a reason, the good ones
    accepted; GET /state, /kpis, /events keep answering; the state equals a replay."""
    good = [ev(i).to_json() for i in range(1, 6)]
    r = _post(fresh, [*good[:2], POISON_TEXTS[name], *good[2:]])
    assert r.status_code == 200, r.text[:300]
    results = r.json()["results"]
    assert [x["status"] for x in results] == ["accepted"] * 2 + ["rejected"] + ["accepted"] * 3
    assert results[2]["reason"]
    _reads_answer(fresh)
    _state_is_the_store(fresh)


def test_a_failed_write_answers_503_and_keeps_nothing(fresh, monkeypatch):
    """The store's write fails once: 503 naming the cause, nothing of the batch in the store or
    the state; the same batch sent again is accepted."""
    rt = fresh.app.state.runtime
    _post(fresh, [ev(1).to_json()])
    real = rt.store.write
    calls = []

    def failing(events, dead=()):
        calls.append(1)
        if len(calls) == 1:
            raise sqlite3.OperationalError("database or disk is full")
        return real(events, dead)

    monkeypatch.setattr(rt.store, "write", failing)
    batch = [ev(i, state="productive" if i % 2 else "standby").to_json() for i in range(2, 12)]
    r = _post(fresh, batch)
    assert r.status_code == 503 and "disk is full" in r.text
    assert rt.store.count() == 1 and rt.sync.pos == 1
    _state_is_the_store(fresh)
    r = _post(fresh, batch)
    assert r.status_code == 200 and r.json()["accepted"] == 10
    _reads_answer(fresh)
    _state_is_the_store(fresh)


def test_reads_answer_over_a_legacy_store_with_out_of_range_times(tmp_path):
    """A store written before the limits (the schema of then, no hash chain) holds a time past
    year 9999 and a lone surrogate in data: the twin starts over it (chaining it) and /state,
    /kpis, /events still answer (the time clamped to 9999-12-31, the surrogate replaced)."""
    from fastapi.testclient import TestClient

    from twin_api.app import create_app

    db = tmp_path / "legacy.db"
    con = sqlite3.connect(db)
    con.executescript(LEGACY_SCHEMA)
    rows = [ev(1), Event("mes:2", "mes", 2, 1.8e9, "equipment.state", "LITH01",
                         {"state": "productive", "reason": "\ud800 lost"})]  # fmt: skip
    for e, t in zip(rows, (e.time for e in rows)):
        con.execute(
            "INSERT INTO events (source, seq, id, time, type, subject, data) VALUES (?,?,?,?,?,?,?)",
            (e.source, e.seq, e.id, 1e15 if e.seq == 2 else t, e.type, e.subject, json.dumps(e.data)),
        )  # fmt: skip
    con.commit()
    con.close()
    with TestClient(create_app(make_settings(store=str(db)))) as c:
        _reads_answer(c)
        assert c.get("/state", headers=auth("read")).json()["clock"].startswith("9999-12-31")


_ITEM = st.one_of(
    st.builds(lambda k, s: ev(k, state=s).to_json(), st.integers(1, 40),
              st.sampled_from(["standby", "productive", "engineering", "flying"])),
    st.sampled_from(sorted(POISON_TEXTS.values())),
    st.sampled_from(['"text"', "17", "null", "[]", "{}", '{"id":1}', deep(50)]),
)  # fmt: skip


@settings(max_examples=40, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(batches=st.lists(st.lists(_ITEM, max_size=12), min_size=1, max_size=4))
def test_any_mix_over_http_keeps_the_state_equal_to_the_store(fresh, batches):
    """Arbitrary batches of good, invalid and poison items over HTTP: every answer is 200 with
    one result per item, reads answer, and the state equals a replay of the store."""
    for items in batches:
        r = _post(fresh, items)
        assert r.status_code == 200, r.text[:300]
        assert len(r.json()["results"]) == len(items)
    _reads_answer(fresh)
    _state_is_the_store(fresh)


def test_validation_errors_never_echo_what_cannot_be_written(fresh):
    """A request FastAPI's validation refuses, holding a lone surrogate in a value or a key,
    is a 422 listing the problems (the input left out), never a 500."""
    for body in (b'{"seed":"\\ud800"}', b'{"\\udfff": 1, "seed": [1]}'):
        r = fresh.post(
            "/whatif", content=body, headers={**auth("admin"), "content-type": "application/json"}
        )
        assert r.status_code == 422 and r.json()["detail"], r.text[:200]
