"""Two API servers on one PostgreSQL store, in this process (real PostgreSQL, real uvicorn): the
roles, writes sent to the follower, read-your-writes by revision, the state hash; and the
revision rules on a single server."""

from __future__ import annotations

import threading
import time

import httpx
import pytest

from tests.live.conftest import free_port
from tests.services.conftest import LiveServer
from twin.errors import StoreWriteError
from twin_api.app import create_app
from twin_api.revision import state_hash
from twin_api.settings import Settings

psycopg = pytest.importorskip("psycopg")
from twin.live.store_pg import PostgresStore  # noqa: E402

TOKEN = "replica-admin-token-0123456789abcdef"
READ = "replica-read-token-0123456789abcdef"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def event(seq: int, state: str = "standby", source: str = "ops") -> dict:
    return {
        "schema": 1, "id": f"{source}:{seq}", "source": source, "seq": seq,
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(1767225600 + seq)),
        "type": "equipment.state",
        "subject": "DIF01", "data": {"state": state, "reason": "idle"},
    }  # fmt: skip


class Server(LiveServer):
    """uvicorn serving one twin in a thread, on a port chosen before its settings (its URL is
    the leader URL it advertises)."""

    def __init__(self, **kw) -> None:
        port = free_port()
        kw.setdefault("advertise_url", f"http://127.0.0.1:{port}")
        kw.setdefault("lead_interval", 0.2)
        settings = Settings(tokens={TOKEN: ["admin"], READ: ["read"]}, physics=False, **kw)
        super().__init__(settings, port=port, start_timeout=120)

    @property
    def rt(self):
        return self.app.state.runtime

    def hash(self, **headers) -> dict:
        r = httpx.get(self.url + "/state/hash", headers={**AUTH, **headers}, timeout=30)
        assert r.status_code == 200, r.text
        assert int(r.headers["x-twin-revision"]) == r.json()["revision"]
        return r.json()


def replay_hash(url: str) -> tuple[int, str]:
    with PostgresStore(url, readonly=True) as s:
        return s.count(), state_hash(s.replay(s.catalog()))


def test_a_follower_forwards_writes_and_serves_them_at_the_revision_asked(pg_url):
    """Leader and follower on one store: a write sent to the follower is forwarded and stored
    once; the follower, asked for the write's revision, answers with it and the leader's hash,
    which a fresh replay of the store gives too; every response names its revision."""
    with Server(store=pg_url) as a, Server(store=pg_url, min_revision_wait=0.5) as b:
        assert a.hash()["role"] == "leader" and b.hash()["role"] == "follower"
        assert b.hash()["leader_url"] == a.url
        r = httpx.post(b.url + "/events", json=[event(1), event(2, "productive")], headers=AUTH)
        assert r.status_code == 200, r.text
        assert r.headers["x-twin-forwarded-to"] == a.url
        res = r.json()["results"] if isinstance(r.json(), dict) else r.json()
        assert [x["status"] for x in res] == ["accepted", "accepted"], res
        seqs = [x["seq"] for x in res]
        rev = int(r.headers["x-twin-revision"])
        assert rev >= max(seqs)
        got = b.hash(**{"X-Twin-Min-Revision": str(rev)})
        assert got["revision"] >= rev
        assert got["hash"] == a.hash()["hash"] == replay_hash(pg_url)[1]
        q = httpx.get(b.url + f"/equipment/DIF01?min_revision={rev}", headers=AUTH)
        assert q.status_code == 200 and q.json()["state"] == "productive", q.text
        assert int(q.headers["x-twin-revision"]) >= rev
        # the same events again, through either server: stored once
        again = httpx.post(b.url + "/events", json=[event(1), event(2, "productive")], headers=AUTH)
        assert again.status_code == 200 and {x["status"] for x in again.json()["results"]} == {
            "duplicate"
        }, again.text
        with PostgresStore(pg_url, readonly=True) as s:
            assert s.count() == 2


def test_a_revision_not_reached_waits_then_is_a_clear_503(pg_url):
    """A follower asked for a revision it does not reach within TWIN_MIN_REVISION_WAIT answers
    503 problem+json with Retry-After and its own revision, after waiting that long; a revision
    reached while waiting is served."""
    with Server(store=pg_url) as a, Server(store=pg_url, min_revision_wait=0.5) as b:
        t0 = time.monotonic()
        r = httpx.get(b.url + "/state/hash", headers={**AUTH, "X-Twin-Min-Revision": "1000"})
        waited = time.monotonic() - t0
        assert r.status_code == 503 and r.headers["content-type"] == "application/problem+json"
        assert r.headers["retry-after"] == "1" and r.headers["x-twin-revision"] == "0"
        assert "behind the 1000" in r.json()["detail"] and 0.5 <= waited < 5, (waited, r.text)

        def later() -> None:
            time.sleep(0.2)
            httpx.post(a.url + "/events", json=[event(1)], headers=AUTH)

        threading.Thread(target=later).start()
        r = httpx.get(b.url + "/state/hash?min_revision=1", headers=AUTH, timeout=10)
        assert r.status_code == 200 and r.json()["revision"] == 1, r.text


@pytest.mark.parametrize(
    "query,header",
    [
        ("min_revision=abc", None),
        ("min_revision=-1", None),
        ("min_revision=", None),
        ("min_revision=%ED%A0%80", None),  # a lone surrogate, as UTF-8 bytes
        ("min_revision=" + "9" * 5000, None),
        ("min_revision=9223372036854775808", None),  # 2^63
        ("min_revision=1e3", None),
        (None, "１２"),  # full-width digits are not ASCII
        (None, "0x10"),
    ],
)
def test_a_bad_min_revision_is_400_naming_what_is_accepted(query, header):
    """min_revision (query or header) that is not an integer 0..2^63-1 is a 400 problem that
    says what is accepted; the server answers on (single server, in-memory store)."""
    from fastapi.testclient import TestClient

    app = create_app(Settings(tokens={TOKEN: ["admin"]}, physics=False))
    with TestClient(app) as c:
        headers = dict(AUTH)
        if header is not None:
            headers["X-Twin-Min-Revision"] = header.encode()  # type: ignore[assignment]
        r = c.get("/state/hash" + (f"?{query}" if query else ""), headers=headers)
        assert r.status_code == 400, r.text
        assert "integer from 0 to 2^63-1" in r.json()["detail"]
        assert len(r.text) < 1000
        ok = c.get("/state/hash?min_revision=0", headers=AUTH)
        assert ok.status_code == 200 and ok.json()["role"] == "single"
        assert ok.headers["x-twin-revision"] == "0"


def test_single_server_revisions_and_hash_need_a_read_token():
    """On one server (no PostgreSQL) every response carries X-Twin-Revision, a write's the
    revision after it; /state/hash needs a token with the read scope (401 without)."""
    from fastapi.testclient import TestClient

    app = create_app(Settings(tokens={TOKEN: ["admin"], READ: ["read"]}, physics=False))
    with TestClient(app) as c:
        r = c.post("/events", json=[event(1), event(2)], headers=AUTH)
        assert r.status_code == 200 and r.headers["x-twin-revision"] == "2", r.text
        assert c.get("/health").headers["x-twin-revision"] == "2"
        assert c.get("/state/hash").status_code == 401
        h = c.get("/state/hash", headers={"Authorization": f"Bearer {READ}"})
        assert h.status_code == 200 and h.json()["revision"] == 2
        assert h.json()["hash"] == state_hash(app.state.runtime.state)


def test_a_follower_without_a_reachable_leader_answers_503_or_307(pg_url):
    """A write to a follower whose leader cannot be reached (or whose stored URL is garbage) is
    a 503 problem (Retry-After) naming the leader, nothing stored; a request already forwarded
    is not forwarded again; with TWIN_FORWARD_WRITES=false a follower answers 307 to the
    leader's URL."""
    with Server(store=pg_url) as a, Server(store=pg_url) as b:
        with PostgresStore(pg_url) as s:
            s.put_meta("leader_url", "http://127.0.0.1:9")  # nothing listens there
        r = httpx.post(b.url + "/events", json=[event(1)], headers=AUTH)
        assert r.status_code == 503 and r.headers["retry-after"] == "1", r.text
        assert "127.0.0.1:9 could not be reached" in r.json()["detail"]
        with PostgresStore(pg_url) as s, pytest.raises(StoreWriteError, match="cannot store"):
            s.put_meta("leader_url", "http://\ud800x")  # refused by the store, with a line
        for garbage in (
            "not a url",
            "http://[::1",
            "http://\u00e9vil\u0301:99999/",
            "http://" + "x" * 10000,
        ):
            with PostgresStore(pg_url) as s:
                s.put_meta("leader_url", garbage)
            r = httpx.post(b.url + "/events", json=[event(1)], headers=AUTH)
            assert r.status_code == 503 and "could not be reached" in r.json()["detail"], r.text
        with PostgresStore(pg_url) as s:
            assert s.count() == 0
            s.put_meta("leader_url", a.url)
        # a request that says it was forwarded already is not forwarded again (no loops)
        r = httpx.post(
            b.url + "/events", json=[event(1)], headers={**AUTH, "X-Twin-Forwarded": "1"}
        )
        assert r.status_code == 503 and "came forwarded" in r.json()["detail"], r.text
        b.rt.settings.forward_writes = False
        r = httpx.post(b.url + "/events?x=1", json=[event(1)], headers=AUTH)
        assert r.status_code == 307 and r.headers["location"] == a.url + "/events?x=1"


def test_a_follower_takes_over_when_the_leader_stops(pg_url):
    """The leader stops (cleanly: it resigns): the follower leads within 5 s, publishes its
    URL and ingests; its state is the store's."""
    a = Server(store=pg_url).__enter__()
    try:
        with Server(store=pg_url) as b:
            httpx.post(a.url + "/events", json=[event(1)], headers=AUTH)
            a.__exit__()
            t0 = time.monotonic()
            while b.hash()["role"] != "leader":
                assert time.monotonic() - t0 < 5, "no take-over within 5 s"
                time.sleep(0.05)
            assert b.hash()["leader_url"] == b.url
            r = httpx.post(b.url + "/events", json=[event(2)], headers=AUTH)
            assert r.status_code == 200 and "x-twin-forwarded-to" not in r.headers, r.text
            assert b.hash()["hash"] == replay_hash(pg_url)[1]
            assert b.hash()["revision"] == 2
    finally:
        a.__exit__()


@pytest.mark.parametrize(
    "kw",
    [
        {"advertise_url": "ftp://x"},
        {"advertise_url": "http://a b"},
        {"advertise_url": "http://\ud800"},
        {"advertise_url": "http://" + "x" * 5000},
        {"lead_interval": 0},
        {"lead_interval": 1e9},
        {"min_revision_wait": -1},
        {"min_revision_wait": float("inf")},
    ],
)
def test_bad_replication_settings_are_refused(kw):
    """Replication settings out of range are a settings error naming the setting."""
    from pydantic import ValidationError

    with pytest.raises(ValidationError) as e:
        Settings(tokens={TOKEN: ["admin"]}, **kw)
    assert next(iter(kw)) in str(e.value)


def test_a_leader_cut_off_from_the_store_steps_down_and_follows(pg_url):
    """The leader's store connection is cut (as in a network split) and another session takes
    the lock meanwhile: the old leader notices at its next lock check and follows; when the lock
    is free again one server leads, the other forwards its writes there, and both hold the
    store's state."""
    with Server(store=pg_url) as a, Server(store=pg_url) as b:
        httpx.post(a.url + "/events", json=[event(1)], headers=AUTH)
        for srv in (a, b):  # no lock tries for now: the other session takes it first
            srv.rt.roles._next_try = float("inf")
        w = a.rt.roles.writer
        with w._lock:
            pid = w._db.execute("SELECT pg_backend_pid()").fetchone()[0]
        with psycopg.connect(pg_url, autocommit=True) as thief:
            thief.execute("SELECT pg_terminate_backend(%s, 5000)", (pid,))
            assert thief.execute("SELECT pg_try_advisory_lock(%s)", (w._leader_key,)).fetchone()[0]
            a.rt.roles._next_try = 0.0  # the leader checks its lock now
            t0 = time.monotonic()
            while a.hash()["role"] != "follower":
                assert time.monotonic() - t0 < 5, a.hash()
                time.sleep(0.05)
            assert b.hash()["role"] == "follower"
        b.rt.roles._next_try = 0.0
        t0 = time.monotonic()  # the lock is free: one of them takes it
        while sorted(s.hash()["role"] for s in (a, b)) != ["follower", "leader"]:
            assert time.monotonic() - t0 < 5, (a.hash(), b.hash())
            time.sleep(0.05)
        leader, follower = (a, b) if a.hash()["role"] == "leader" else (b, a)
        r = httpx.post(follower.url + "/events", json=[event(2, "productive")], headers=AUTH)
        assert r.status_code == 200 and r.headers["x-twin-forwarded-to"] == leader.url, r.text
        rev = r.headers["x-twin-revision"]
        assert rev == "2"
        got = follower.hash(**{"X-Twin-Min-Revision": rev})
        assert got["hash"] == leader.hash()["hash"] == replay_hash(pg_url)[1]


def test_a_postgresql_restart_mid_stream_loses_and_duplicates_nothing(pg_server, pg_url):
    """PostgreSQL restarted while writes go to the follower (forwarded) and the leader: the
    servers reconnect, one leads, every batch answered 200 is stored, a batch refused (503) is
    sent again, each event is stored once and both servers hold a replay of the store."""
    states = ("productive", "standby")
    with Server(store=pg_url) as a, Server(store=pg_url) as b:
        restart = threading.Thread(target=pg_server.restart)
        refused = 0
        for i in range(0, 400, 10):
            if i == 100:
                restart.start()
            batch = [event(q + 1, states[q % 2]) for q in range(i, i + 10)]
            for attempt in range(200):
                target = (a, b)[attempt % 2]
                try:
                    r = httpx.post(target.url + "/events", json=batch, headers=AUTH, timeout=30)
                except httpx.HTTPError:
                    r = None
                if r is not None and r.status_code == 200:
                    assert {x["status"] for x in r.json()["results"]} <= {
                        "accepted", "duplicate"
                    }, r.text  # fmt: skip
                    break
                refused += 1
                time.sleep(0.1)
            else:
                raise AssertionError(f"batch at {i} never stored: {r and r.text}")
        restart.join()
        with PostgresStore(pg_url, readonly=True) as s:
            assert s.count() == 400 and [e.seq for e in s.read()] == list(range(1, 401))
        want = replay_hash(pg_url)
        for srv in (a, b):
            got = srv.hash(**{"X-Twin-Min-Revision": "400"})
            assert (got["revision"], got["hash"]) == want, (srv.url, got)
        assert sorted(srv.hash()["role"] for srv in (a, b)) == ["follower", "leader"]
        for srv in (a, b):  # the restart did cut them off: they connected again
            roles = srv.rt.roles
            assert roles.reader.reconnects + roles.writer.reconnects >= 1
