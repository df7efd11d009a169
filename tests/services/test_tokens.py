"""Tokens: where they come from, how strong they must be, which sources each may publish,
what /health tells whom, and the admin reset of a source (/sources)."""

from __future__ import annotations

import inspect
import json
import os
import secrets
from collections.abc import Iterator

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from tests.services.conftest import ADMIN, TOKENS, auth, make_settings
from tests.services.streams import dicts, tool_events
from twin.cli import main
from twin_api.auth import (
    GENERATE,
    Grant,
    SourcePolicy,
    TokenTable,
    entropy_bits,
    may_publish,
    token_problems,
)
from twin_api.deps import Publisher
from twin_api.runtime import TwinRuntime
from twin_api.settings import Settings

STRONG = {name: secrets.token_urlsafe(32) for name in ("admin", "mes", "tools", "read", "bare")}
needs_may_publish = pytest.mark.skipif(
    "may_publish" not in inspect.signature(TwinRuntime.ingest).parameters,
    reason="waits for TwinRuntime.ingest(..., may_publish=...) (the lead's runtime change)",
)
needs_reset = pytest.mark.skipif(
    not hasattr(TwinRuntime, "reset_source"),
    reason="waits for TwinRuntime.reset_source (the lead's runtime change)",
)


@pytest.fixture
def clean_env(monkeypatch) -> pytest.MonkeyPatch:
    for k in list(os.environ):
        if k.startswith("TWIN_"):
            monkeypatch.delenv(k)
    return monkeypatch


# ------------------------------------------------------------------ where tokens come from
def test_tokens_from_the_environment_both_forms(clean_env):
    """TWIN_TOKENS holds token -> [scopes] (the old form) and token -> {scopes, sources, name}."""
    clean_env.setenv(
        "TWIN_TOKENS",
        json.dumps(
            {
                STRONG["read"]: ["read"],
                STRONG["mes"]: {"scopes": ["ingest"], "sources": ["mes"], "name": "mes-gw"},
            }
        ),
    )
    s = Settings(mode="production")
    table = TokenTable(s.tokens)
    assert table.scopes_of(STRONG["read"]) == {"read"}
    grant = table.grant_of(STRONG["mes"])
    assert grant.scopes == {"ingest"} and grant.name == "mes-gw"
    assert grant.publish("mes") and not grant.publish("erp")
    assert STRONG["mes"] not in repr(s) and STRONG["mes"] not in str(s)  # never shown


def test_tokens_from_a_file_of_lines_or_json(clean_env, tmp_path):
    """TWIN_TOKENS_FILE holds 'TOKEN SCOPES [SOURCES]' lines (with # comments) or JSON, and
    adds to TWIN_TOKENS; a file other users can read is noted at start."""
    lines = tmp_path / "tokens"
    lines.write_text(
        "# twin tokens\n\n"
        f"{STRONG['mes']} ingest mes,tool-*\n"
        f"  {STRONG['read']}   read,whatif  \n"
        f"{STRONG['admin']} admin\n"
    )
    clean_env.setenv("TWIN_TOKENS_FILE", str(lines))
    clean_env.setenv("TWIN_TOKENS", json.dumps({STRONG["bare"]: ["read"]}))
    lines.chmod(0o644)
    assert "readable by other users (chmod 600 it)" in Settings(mode="production").notes()[0]
    lines.chmod(0o600)
    settings = Settings(mode="production")
    assert settings.notes() == []
    table = TokenTable(settings.tokens)
    mes = table.grant_of(STRONG["mes"])
    assert mes.publish("tool-LITH01") and mes.publish("mes") and not mes.publish("tool")
    assert table.scopes_of(STRONG["read"]) == {"read", "whatif"}
    assert table.grant_of(STRONG["admin"]).publish("anything")
    assert table.scopes_of(STRONG["bare"]) == {"read"}
    as_json = tmp_path / "tokens.json"
    as_json.write_text(json.dumps({STRONG["tools"]: {"scopes": ["ingest"], "sources": ["t*"]}}))
    clean_env.setenv("TWIN_TOKENS_FILE", str(as_json))
    assert TokenTable(Settings(mode="production").tokens).grant_of(STRONG["tools"]).publish("tx")


@pytest.mark.parametrize(
    "content,expected",
    [
        ('{"a":' * 50_000, "nested too deeply"),
        ('{"tok": 3}', "token (3 characters): expected a list of scopes"),
        ("only-one-field\n", ":1: 1 fields"),
        (f"{'a' * 40} read\n{'a' * 40} read\n", ":2: token …aaaa appears twice"),
        (f"{STRONG['mes']} write\n", "unknown scope 'write'"),
        (f"{STRONG['mes']} ingest m*s\n", "'*' only at the end"),
        ('{"\\ud800' + "x" * 40 + '": ["read"]}', "cannot carry ('\\ud800')"),
        (b"\xff\xfe token", "not UTF-8"),
        ("x" * (1 << 20) + "x", "larger than"),
    ],
    ids=["deep", "not-scopes", "fields", "twice", "scope", "pattern", "surrogate", "bytes",
         "huge"],
)  # fmt: skip
def test_bad_token_files_are_one_clear_error(clean_env, tmp_path, content, expected):
    """A token file that is nested too deep, not UTF-8, too large, or has bad lines, scopes,
    sources or tokens is refused with the file and line, never with a whole token."""
    f = tmp_path / "tokens"
    f.write_bytes(
        content if isinstance(content, bytes) else content.encode("utf-8", "surrogatepass")
    )
    clean_env.setenv("TWIN_TOKENS_FILE", str(f))
    with pytest.raises(ValidationError) as err:
        Settings()
    text = str(err.value)
    assert expected in text, text
    assert "TWIN_TOKENS_FILE" in text and "a" * 40 not in text and STRONG["mes"] not in text


def test_a_missing_token_file_is_a_clear_error(clean_env, tmp_path):
    """TWIN_TOKENS_FILE naming no file, or a path with NUL, says it cannot be read."""
    for path in (str(tmp_path / "nope"), "a\x00b"):
        with pytest.raises(ValidationError, match="cannot be read"):
            Settings(tokens_file=path)


def test_blank_token_environment_means_no_tokens(clean_env):
    """TWIN_TOKENS set but blank is no tokens (production then asks for one), not an error
    about JSON."""
    clean_env.setenv("TWIN_TOKENS", "  ")
    assert Settings().tokens == {}
    with pytest.raises(ValidationError, match="needs at least one token"):
        Settings(mode="production")


@pytest.mark.parametrize(
    "raw,expected",
    [
        ("[" * 100_000 + "]" * 100_000, "nested too deeply"),
        ("not json", "TWIN_TOKENS is not JSON"),
        (json.dumps({"x" * 2000: ["read"]}), "2000 characters (at most 1024)"),
        (json.dumps({"tok en" + "x" * 40: ["read"]}), "cannot carry (' ')"),
        (json.dumps({STRONG["mes"]: {"scopes": ["ingest"], "sources": [""]}}), "1 to 200"),
        (json.dumps({STRONG["mes"]: {"scopes": ["read"], "extra": 1}}), "extra: Extra inputs"),
        (json.dumps({STRONG["mes"]: {"scopes": "read"}}), "scopes: Input should be a valid list"),
        (json.dumps([STRONG["mes"]]), "expected a JSON object"),
    ],
    ids=["deep", "garbage", "huge", "space", "empty-source", "unknown-key", "scopes", "list"],
)
def test_bad_token_environment_is_one_clear_error(clean_env, raw, expected):
    """TWIN_TOKENS that is not JSON, nested too deep, or holds tokens a client cannot send is
    a ValidationError naming the problem (not a RecursionError, not the token)."""
    clean_env.setenv("TWIN_TOKENS", raw)
    with pytest.raises(ValidationError) as err:
        Settings()
    assert expected in str(err.value)
    assert "x" * 100 not in str(err.value) and STRONG["mes"] not in str(err.value)


# ------------------------------------------------------------------ strength
@pytest.mark.parametrize(
    "weak",
    [
        "x" * 64,
        "abc" * 20,
        "correcthorsebatterystaple" * 2,
        "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJ",
        "0123456789" * 5,
        "aB3-" * 12,
        "admin-token-0123456789abcdef",
        "short",
    ],
)
def test_production_refuses_easy_tokens(weak):
    """Production refuses short, repeated, sequential or few-character tokens (under 128
    estimated bits), naming the token by its last 4 characters and how to make a good one."""
    with pytest.raises(ValidationError) as err:
        Settings(mode="production", tokens={weak: ["read"]})
    text = str(err.value)
    name = f"…{weak[-4:]}" if len(weak) >= 12 else f"({len(weak)} characters)"
    assert f"token {name}: too easy to guess" in text and GENERATE in text
    assert weak not in text.replace(name, "") and weak[-4:] not in text.replace(name, "")
    assert Settings(tokens={weak: ["read"]}).tokens  # development takes it


def test_generated_tokens_pass():
    """What the error message suggests (token_urlsafe(32)), and 64 hex digits, always pass."""
    for _ in range(300):
        assert token_problems(secrets.token_urlsafe(32), production=True) == []
        assert token_problems(secrets.token_hex(32), production=True) == []
    assert entropy_bits(secrets.token_urlsafe(32)) > 180
    assert Settings(mode="production", tokens={STRONG["read"]: ["read"]}).tokens


def test_production_needs_a_token():
    """Production without any token refuses to start, naming both ways to give one."""
    with pytest.raises(ValidationError, match="TWIN_TOKENS_FILE"):
        Settings(mode="production")


@given(st.text(max_size=80), st.text(max_size=80))
def test_token_checks_never_raise(token, presented):
    """Any configured text gets a list of problems (never an exception), and any presented
    text either matches or not."""
    assert isinstance(token_problems(token, production=True), list)
    assert entropy_bits(token) >= 0
    table = TokenTable({STRONG["read"]: ["read"]})
    assert table.grant_of(presented) is None or presented == STRONG["read"]
    assert may_publish(table, "Bearer " + presented) is None


# ------------------------------------------------------------------ sources
def test_source_policy_names_and_prefixes():
    """A token publishes its named sources and those under its '*' prefixes; admin publishes
    any; an ingest token that lists none publishes none; the reason says what is allowed."""
    p = SourcePolicy.of(["mes", "tool-*"])
    assert p("mes") and p("tool-") and p("tool-LITH01")
    assert not p("mes2") and not p("tool") and not p("erp") and not p("")
    assert (
        p.allowed == "mes, tool-*"
        and "'erp'" in p.reason("erp")
        and "mes, tool-*" in p.reason("erp")
    )
    assert SourcePolicy.of(["*"])("anything") and SourcePolicy.of([], admin=True)("x")
    none = Grant.of("t" * 40, ["ingest"]).publish
    assert not none("mes") and "no source" in none.allowed
    assert Grant.of("t" * 40, ["admin"]).publish("erp")
    assert SourcePolicy.of(["mes"])("\ud800") is False  # a lone surrogate is just a name


def test_ingest_without_sources_depends_on_the_mode():
    """An ingest token without sources may publish any source in development and none in
    production; both say so in a note at start (naming the token by its last 4)."""
    dev = Settings(tokens={STRONG["bare"]: ["ingest"]})
    assert TokenTable(dev.tokens).grant_of(STRONG["bare"]).publish("erp")
    assert "in development it may publish any source" in dev.notes()[0]
    prod = Settings(mode="production", tokens={STRONG["bare"]: ["ingest"]})
    assert not TokenTable(prod.tokens).grant_of(STRONG["bare"]).publish("erp")
    assert "may publish none" in prod.notes()[0] and STRONG["bare"][-4:] in prod.notes()[0]
    assert STRONG["bare"] not in " ".join(dev.notes() + prod.notes())


def test_publisher_dependency_gives_the_callers_predicate():
    """The Publisher dependency answers 401/403 like the others and hands a route the runtime
    and the caller's may_publish predicate; auth.may_publish does the same for a header."""
    tokens = {
        STRONG["mes"]: {"scopes": ["ingest"], "sources": ["mes"]},
        STRONG["read"]: ["read"],
        STRONG["admin"]: ["admin"],
    }
    app = FastAPI()
    app.state.tokens = TokenTable(tokens)
    app.state.runtime = "the runtime"

    @app.get("/probe")
    async def probe(pub: Publisher, source: str) -> dict:
        rt, allowed = pub
        return {"rt": rt, "ok": allowed(source), "allowed": allowed.allowed}

    c = TestClient(app)
    h = {"Authorization": f"Bearer {STRONG['mes']}"}
    assert c.get("/probe?source=mes", headers=h).json() == {
        "rt": "the runtime", "ok": True, "allowed": "mes"
    }  # fmt: skip
    assert c.get("/probe?source=erp", headers=h).json()["ok"] is False
    admin = {"Authorization": f"Bearer {STRONG['admin']}"}
    assert c.get("/probe?source=erp", headers=admin).json()["ok"] is True
    assert c.get("/probe?source=x", headers={"Authorization": f"Bearer {STRONG['read']}"}).status_code == 403  # fmt: skip
    assert c.get("/probe?source=x").status_code == 401
    assert may_publish(app.state.tokens, h["Authorization"])("mes")
    assert may_publish(app.state.tokens, f"Bearer {STRONG['read']}") is None
    assert may_publish(app.state.tokens, "Bearer \ud800") is None
    assert may_publish(app.state.tokens, None) is None


# ------------------------------------------------------------------ the command line
def test_a_token_on_the_command_line_is_refused(clean_env, capsys):
    """`twin up --token` and `twin serve --token` are refused before anything starts, pointing
    to TWIN_TOKENS / TWIN_TOKENS_FILE."""
    assert main(["up", "--token", "x" * 40]) == 1
    err = capsys.readouterr().err
    assert "not taken from the command line" in err and "TWIN_TOKENS_FILE" in err
    assert "x" * 40 not in err
    assert main(["serve", "--scene", "scenes/demo-fab", "--token", "y" * 40]) == 1
    assert "not taken from the command line" in capsys.readouterr().err


def test_twin_up_prints_its_generated_token_once(clean_env, monkeypatch, capsys):
    """`twin up` prints its generated admin token exactly once; with TWIN_TOKENS set it
    generates none and serves those."""
    import twin.service_commands as sc

    seen = []
    monkeypatch.setattr(sc, "_run", lambda settings, host, port: seen.append(settings) or 0)
    assert main(["up"]) == 0
    out = capsys.readouterr().out
    (token,) = seen[0].tokens
    assert out.count(token) == 1 and "shown once" in out
    assert token_problems(token, production=True) == []  # strong enough for production too
    assert token not in repr(seen[0])
    clean_env.setenv("TWIN_TOKENS", json.dumps({STRONG["read"]: ["read"]}))
    assert main(["up"]) == 0
    out = capsys.readouterr().out
    assert list(seen[1].tokens) == [STRONG["read"]] and STRONG["read"] not in out
    assert "from TWIN_TOKENS" in out


# ------------------------------------------------------------------ /health
def test_health_says_only_up_without_a_token(inproc):
    """/health without a valid token answers {"status": "up"} only; a token of any scope gets
    the details, which never hold a token."""
    for headers in ({}, {"Authorization": "Bearer nope"}, {"Authorization": "Basic x"}):
        r = inproc.get("/health", headers=headers)
        assert r.status_code == 200 and r.json() == {"status": "up"}
    for scope in TOKENS:
        r = inproc.get("/health", headers=auth(scope))
        body = r.json()
        assert r.status_code == 200 and body["status"] == "up" and body["scene"] == "demo-fab"
        assert not any(t in r.text for t in TOKENS.values())


def test_sources_answer_503_when_not_running():
    """/sources of a twin that is not running answers 503, not 500."""
    from twin_api.app import create_app
    from twin_api.routers import sources

    app = create_app(make_settings())
    app.include_router(sources.router)
    c = TestClient(app)  # no `with`: never started
    assert c.get("/sources", headers=ADMIN).status_code == 503
    body = {"seq": 1, "reason": "r"}
    assert c.post("/sources/mes/reset", json=body, headers=ADMIN).status_code == 503


def test_health_says_down_with_503_when_not_running():
    """A twin that is not running (never started, or stopped) answers 503 {"status": "down"},
    to anyone."""
    from twin_api.app import create_app

    app = create_app(make_settings())
    c = TestClient(app)  # no `with`: the lifespan never starts the runtime
    for headers in ({}, ADMIN):
        r = c.get("/health", headers=headers)
        assert r.status_code == 503 and r.json() == {"status": "down"}


# ------------------------------------------------------------------ /sources
@pytest.fixture(scope="module")
def owned() -> Iterator[TestClient]:
    """An app whose ingest tokens own sources, with the /sources router mounted (the lead adds
    it to create_app; mounted here only if it is not there yet)."""
    from twin_api.app import create_app
    from twin_api.routers import sources

    tokens = {
        STRONG["admin"]: {"scopes": ["admin"], "name": "ops-alice"},
        STRONG["mes"]: {"scopes": ["ingest"], "sources": ["mes-*"]},
        STRONG["read"]: ["read"],
    }
    app = create_app(make_settings(tokens=tokens, mode="production"))
    if not any(getattr(r, "path", None) == "/sources" for r in app.routes):
        app.include_router(sources.router)
    with TestClient(app) as c:
        yield c


def bearer(name: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {STRONG[name]}"}


def test_sources_lists_each_sources_position(owned):
    """GET /sources (read scope) gives each source's last applied seq, paged."""
    rt = owned.app.state.runtime
    rt.ingest(dicts(tool_events("mes-a", ["LITH01"], n=3)))
    r = owned.get("/sources", headers=bearer("read"))
    assert r.status_code == 200
    items = {i["source"]: i for i in r.json()["items"]}
    assert items["mes-a"] == {"source": "mes-a", "last_seq": 3, "released": 3}
    assert owned.get("/sources").status_code == 401
    assert (
        owned.get("/sources?offset=99999999999999999999", headers=bearer("read")).json()["items"]
        == []
    )


def test_reset_is_admin_only_and_returns_the_audit_event(owned, monkeypatch):
    """POST /sources/{source}/reset needs admin, passes seq, actor (the token's name) and
    reason to the runtime and answers its audit event; without the runtime method: 501."""
    rt = owned.app.state.runtime
    calls = []

    def fake_reset(source, seq, *, actor, reason):
        calls.append((source, seq, actor, reason))
        return {"type": "stream.reset", "subject": source, "data": {"seq": seq}}

    body = {"seq": 5, "reason": "producer restarted"}
    if not hasattr(TwinRuntime, "reset_source"):
        assert owned.post("/sources/mes-a/reset", json=body, headers=bearer("admin")).status_code == 501  # fmt: skip
    monkeypatch.setattr(rt, "reset_source", fake_reset, raising=False)
    for who, status in (("read", 403), ("mes", 403)):
        assert owned.post("/sources/mes-a/reset", json=body, headers=bearer(who)).status_code == status  # fmt: skip
    assert owned.post("/sources/mes-a/reset", json=body).status_code == 401
    assert calls == []
    r = owned.post("/sources/mes-a/reset", json=body, headers=bearer("admin"))
    assert r.status_code == 200, r.text
    assert r.json() == {
        "source": "mes-a", "seq": 5,
        "audit": {"type": "stream.reset", "subject": "mes-a", "data": {"seq": 5}},
    }  # fmt: skip
    assert calls == [("mes-a", 5, "ops-alice", "producer restarted")]


@pytest.mark.parametrize(
    "path,body",
    [
        ("/sources/mes-a/reset", {"seq": -1, "reason": "r"}),
        ("/sources/mes-a/reset", {"seq": 2**63, "reason": "r"}),
        ("/sources/mes-a/reset", {"seq": 10**30, "reason": "r"}),
        ("/sources/mes-a/reset", {"seq": "nan", "reason": "r"}),
        ("/sources/mes-a/reset", {"seq": 1, "reason": ""}),
        ("/sources/mes-a/reset", {"seq": 1, "reason": "   "}),
        ("/sources/mes-a/reset", {"seq": 1, "reason": "\ud800"}),
        ("/sources/mes-a/reset", {"seq": 1, "reason": "r" * 10_000}),
        ("/sources/mes-a/reset", {"seq": 1}),
        ("/sources/mes-a/reset", {"seq": 1, "reason": "r", "extra": [[[[[]]]]]}),
        ("/sources/" + "s" * 10_000 + "/reset", {"seq": 1, "reason": "r"}),
        ("/sources/%ED%A0%80/reset", {"seq": 1, "reason": "r"}),
        ("/sources/a%00b/reset", {"seq": 1, "reason": "r"}),
    ],
)
def test_reset_refuses_bad_input(owned, monkeypatch, path, body):
    """A reset with a bad seq, reason or source name answers 422 and resets nothing."""
    calls = []
    monkeypatch.setattr(
        owned.app.state.runtime, "reset_source", lambda *a, **k: calls.append(a) or {},
        raising=False,
    )  # fmt: skip
    headers = {**bearer("admin"), "Content-Type": "application/json"}
    r = owned.post(path, content=json.dumps(body), headers=headers)  # ASCII: "\ud800" escaped
    assert r.status_code == 422, r.text
    assert r.json()["detail"] and calls == []


@needs_reset
def test_reset_through_the_runtime_is_audited(owned):
    """A real reset stores a stream.reset event naming the actor and reason, and moves the
    source's position to the given seq."""
    rt = owned.app.state.runtime
    rt.ingest(dicts(tool_events("mes-b", ["LITH01"], n=2)))
    r = owned.post(
        "/sources/mes-b/reset", json={"seq": 40, "reason": "renumbered"}, headers=bearer("admin")
    )
    assert r.status_code == 200, r.text
    audit = r.json()["audit"]
    assert audit["type"] == "stream.reset"
    assert "ops-alice" in json.dumps(audit) and "renumbered" in json.dumps(audit)
    items = {i["source"]: i for i in owned.get("/sources", headers=bearer("read")).json()["items"]}
    assert items["mes-b"]["last_seq"] == 40 or items["mes-b"]["released"] == 40
    events = owned.get("/events?type=stream.reset", headers=bearer("read")).json()["items"]
    assert any(e["event"]["type"] == "stream.reset" for e in events)


# ------------------------------------------------------------------ ownership on ingest
@needs_may_publish
def test_a_token_posts_only_its_own_sources(owned):
    """A token for 'mes-*' cannot post 'erp' events: those are rejected with a reason naming
    the source and what the token may publish, the rest of the batch is accepted; admin may
    post any source."""
    mine = dicts(tool_events("mes-c", ["LITH01"], n=2))
    theirs = dicts(tool_events("erp", ["LITH02"], n=1))
    r = owned.post("/events", json=[mine[0], theirs[0], mine[1]], headers=bearer("mes"))
    assert r.status_code == 200, r.text
    results = r.json()["results"]
    assert [x["status"] for x in results] == ["accepted", "rejected", "accepted"]
    assert "'erp'" in results[1]["reason"] and "mes-*" in results[1]["reason"]
    hijack = dict(theirs[0], source="mes", seq=10**15, id="mes:1000000000000000")
    assert owned.post("/events", json=[hijack], headers=bearer("mes")).json()["rejected"] == 1
    r = owned.post("/events", json=theirs, headers=bearer("admin"))
    assert r.json()["accepted"] == 1


@needs_may_publish
def test_runtime_ingest_applies_the_predicate(owned):
    """TwinRuntime.ingest(..., may_publish=policy) rejects events of other sources, one by
    one, and dead-letters them."""
    rt = owned.app.state.runtime
    before = rt.stats()["dead_lettered"]
    evs = dicts(tool_events("mes-d", ["LITH01"], n=1)) + dicts(tool_events("scada", ["IMP01"], n=1))
    results = rt.ingest(evs, "test", may_publish=SourcePolicy.of(["mes-*"]))
    assert [x["status"] for x in results] == ["accepted", "rejected"]
    assert rt.stats()["dead_lettered"] == before + 1
