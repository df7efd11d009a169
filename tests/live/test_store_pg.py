"""The PostgreSQL event store's own rules, against a real server (tests/pg.py): schema versions,
one transaction and a fixed number of statements per batch, the chain SQLite computes, one
writer at a time, reconnection, notification, and one-line errors for bad configuration."""

from __future__ import annotations

import dataclasses
import hashlib
import math
import os
import subprocess
import sys
import tempfile
import threading
import time

import pytest

from tests.live.conftest import free_port
from twin.errors import StoreError, StoreWriteError
from twin.live.events import Event
from twin.live.store import DeadLetter, SQLiteStore, open_store, row_bytes

psycopg = pytest.importorskip("psycopg")
from twin.live.store_pg import (  # noqa: E402
    SCHEMA_VERSION,
    PostgresStore,
    mask,
    wait_for_events,
)


def _deep(n: int) -> list:
    v: list = []
    for _ in range(n):
        v = [v]
    return v


def raw(url: str):
    return psycopg.connect(url, autocommit=True)


def one_line(exc: BaseException) -> str:
    text = str(exc)
    assert "\n" not in text and "Traceback" not in text, text
    return text


# ------------------------------------------------------------------ schema versions


def test_a_new_database_gets_the_schema_and_its_version(pg_url):
    """Opening an empty database creates the tables and records each migration applied."""
    with PostgresStore(pg_url) as s:
        assert s.schema_version == SCHEMA_VERSION and s.count() == 0
    with raw(pg_url) as c:
        versions = [r[0] for r in c.execute("SELECT version FROM schema_version ORDER BY 1")]
    assert versions == list(range(1, SCHEMA_VERSION + 1))
    PostgresStore(pg_url).close()  # a second open migrates nothing and accepts it
    with raw(pg_url) as c:
        assert c.execute("SELECT count(*) FROM schema_version").fetchone()[0] == SCHEMA_VERSION


def test_a_newer_schema_is_refused_with_one_line(pg_url, pg_server):
    """A database migrated by a newer twin is refused, naming both versions, password masked."""
    PostgresStore(pg_url).close()
    with raw(pg_url) as c:
        c.execute("INSERT INTO schema_version (version) VALUES (%s)", (SCHEMA_VERSION + 1,))
    for readonly in (False, True):
        with pytest.raises(StoreError, match=f"schema version {SCHEMA_VERSION + 1}, newer") as e:
            PostgresStore(pg_url, readonly=readonly)
        assert pg_server.password not in one_line(e.value) and "***" in str(e.value)


def test_a_database_with_foreign_tables_or_no_store(pg_url):
    """An events table without schema_version is not adopted; a reader never creates a store."""
    with pytest.raises(StoreError, match="holds no event store"):
        PostgresStore(pg_url, readonly=True)
    with raw(pg_url) as c:
        assert c.execute("SELECT to_regclass('events')").fetchone()[0] is None
        c.execute("CREATE TABLE events (x int)")
    with pytest.raises(StoreError, match="no schema_version table: not a twin store"):
        PostgresStore(pg_url)


def test_servers_opening_together_migrate_once(pg_url):
    """Several processes' first opens at once: one migrates (advisory lock), all open."""
    errors: list[BaseException] = []

    def open_one() -> None:
        try:
            PostgresStore(pg_url).close()
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=open_one) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    with raw(pg_url) as c:
        assert c.execute("SELECT count(*) FROM schema_version").fetchone()[0] == SCHEMA_VERSION


def test_the_log_is_append_only_and_a_reader_never_writes(pg_url, stream):
    """UPDATE, DELETE and TRUNCATE of events are refused by the database; readonly refuses."""
    with PostgresStore(pg_url) as s:
        s.write(stream[:10])
    with raw(pg_url) as c:
        for sql in ("UPDATE events SET type = 'x'", "DELETE FROM events", "TRUNCATE events"):
            with pytest.raises(psycopg.Error, match="append-only"):
                c.execute(sql)
    with PostgresStore(pg_url, readonly=True) as r:
        assert r.count() == 10
        with pytest.raises(StoreWriteError, match="read-only"):
            r.write(stream[10:20])
        with pytest.raises(StoreWriteError, match="read-only"):
            r.put_meta("k", "v")


# ------------------------------------------------------------------ writes


def test_the_chain_is_the_sqlite_stores(pg_url, stream, tmp_path):
    """Each row's hash is h_n = SHA-256(h_{n-1} || row bytes), the same chain SQLite stores."""
    with PostgresStore(pg_url) as pg, SQLiteStore(tmp_path / "t.db") as lite:
        for i in range(0, 900, 300):
            pg.write(stream[i : i + 300] + stream[i : i + 10])
            lite.write(stream[i : i + 300] + stream[i : i + 10])
    with raw(pg_url) as c:
        rows = c.execute(
            "SELECT pos, source, seq, id, time, type, subject, data, hash FROM events ORDER BY pos"
        ).fetchall()
    h = bytes(32)
    for row in rows:
        h = hashlib.sha256(h + row_bytes(*row[:8])).digest()
        assert bytes(row[8]) == h, row[0]
    lite_last = lite_hash(tmp_path / "t.db")
    assert len(rows) == 900 and h == lite_last


def test_twin_store_verify_walks_a_postgresql_chain_and_finds_an_edit(pg_url, stream):
    """`twin store verify postgresql://...` walks the chain (names with NUL escaped in the rows
    included): OK with the count and head on an intact store; BROKEN (exit 1) naming the first
    position after a row is edited behind the store's back (triggers disabled by the owner).
    `twin store backup` of a URL points to PostgreSQL's tools; --reset-head is refused."""
    odd = Event("n\0ul:1", "n\0ul", 1, stream[0].time, "alarm.set", "ETCH_1", {"alarm": "A"})
    with PostgresStore(pg_url) as s:
        s.write(stream[:700])
        s.write([odd])
        assert s.verify().ok and s.verify().count == 701
    cli = [sys.executable, "-m", "twin.cli", "store"]
    r = subprocess.run([*cli, "verify", pg_url], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and r.stdout.startswith("OK ") and "701 events" in r.stdout, r
    with raw(pg_url) as c:
        c.execute("ALTER TABLE events DISABLE TRIGGER USER")
        c.execute("UPDATE events SET subject = 'LITH99' WHERE pos = 333")
        c.execute("ALTER TABLE events ENABLE TRIGGER USER")
    r = subprocess.run([*cli, "verify", pg_url], capture_output=True, text=True, timeout=120)
    assert r.returncode == 1 and "BROKEN" in r.stdout and "position 333" in r.stdout, r
    assert "332 events intact" in r.stdout
    r = subprocess.run([*cli, "backup", pg_url, "x.db"], capture_output=True, text=True)
    assert r.returncode == 1 and "pg_dump" in r.stderr and "Traceback" not in r.stderr, r
    r = subprocess.run([*cli, "verify", "--reset-head", pg_url], capture_output=True, text=True)
    assert r.returncode == 1 and "no head file" in r.stderr and "Traceback" not in r.stderr, r


def lite_hash(path) -> bytes:
    import sqlite3

    con = sqlite3.connect(path)
    try:
        return con.execute("SELECT hash FROM events ORDER BY pos DESC LIMIT 1").fetchone()[0]
    finally:
        con.close()


def _statements(store: PostgresStore, events: list[Event]) -> tuple[int, int]:
    """(statements sent, transactions committed) by one write, from libpq's protocol trace."""
    from psycopg.pq import Trace

    fd, path = tempfile.mkstemp()
    try:
        pgconn = store._db.pgconn
        pgconn.trace(fd)
        pgconn.set_trace_flags(Trace.SUPPRESS_TIMESTAMPS | Trace.REGRESS_MODE)
        store.write(events)
        pgconn.untrace()
        with open(path, errors="replace") as f:
            sent = [line.split("\t") for line in f if line.startswith("F\t")]
    finally:
        os.close(fd)
        os.unlink(path)
    statements = [m for m in sent if len(m) > 2 and m[2].startswith(("Parse", "Query"))]
    commits = [m for m in statements if "COMMIT" in m[-1].upper()]
    return len(statements), len(commits)


def test_a_batch_is_one_transaction_of_a_fixed_number_of_statements(pg_url, stream):
    """No per-event round trips: 2,000 new events cost the statements 20 do, one commit."""
    with PostgresStore(pg_url) as s:
        small = _statements(s, stream[:20])
        big = _statements(s, stream[20:2020])
        again = _statements(s, stream[:2500])  # 2,020 copies among them
        assert s.count() == 2500 and list(s.read()) == stream[:2500]
    assert small == big == again and small[1] == 1, (small, big, again)
    assert small[0] <= 8, small


def test_concurrent_writers_keep_one_gapless_chain(pg_url, stream):
    """Two store handles writing overlapping batches at once: positions 1..n, each event once."""
    a, b = PostgresStore(pg_url), PostgresStore(pg_url)

    def feed(s: PostgresStore, part: list[Event]) -> None:
        for i in range(0, len(part), 97):
            s.write(part[i : i + 97])

    t = threading.Thread(target=feed, args=(a, stream[:1500]))
    t.start()
    feed(b, stream[700:2200])
    t.join()
    assert a.count() == 2200
    got = [p for p, _ in b.read_positioned()]
    assert got == list(range(1, 2201))
    assert sorted(e.key for e in b.read()) == sorted(e.key for e in stream[:2200])
    with raw(pg_url) as c:
        rows = c.execute(
            "SELECT pos, source, seq, id, time, type, subject, data, hash FROM events ORDER BY pos"
        ).fetchall()
    h = bytes(32)
    for row in rows:
        h = hashlib.sha256(h + row_bytes(*row[:8])).digest()
        assert bytes(row[8]) == h, row[0]
    a.close()
    b.close()


@pytest.mark.parametrize(
    "field,value,match",
    [
        ("source", "mes\ud800", "lone surrogate"),
        ("seq", 2**63, "2\\*\\*63-1"),
        ("time", math.nan, "NaN"),
        ("data", {"reason": _deep(100_000)}, "JSON"),
        ("source", ["not", "text"], "not text"),
    ],
)
def test_an_event_postgres_cannot_hold_names_itself_and_nothing_is_written(
    pg_url, stream, field, value, match
):
    """A batch with one unstorable event: StoreWriteError names it; no event, no dead letter."""
    bad = dataclasses.replace(stream[5], **{field: value})
    with PostgresStore(pg_url) as s:
        s.write(stream[:3])
        with pytest.raises(StoreWriteError, match=match) as e:
            s.write([*stream[3:5], bad, *stream[6:9]], [DeadLetter("x", "y", received=1.0)])
        one_line(e.value)
        assert s.count() == 3 and s.dead_letter_count() == 0
        assert s.write(stream[3:9]) == 6  # the store goes on


def test_odd_but_storable_values_round_trip(pg_url, stream):
    """Extreme times, 64-bit seqs, 10k-character names, deep data and hostile dead letters are
    stored and read back as written."""
    e = stream[0]
    deep: list = []
    for _ in range(500):
        deep = [deep]
    odd = [
        dataclasses.replace(e, seq=2**63 - 1, time=math.inf),
        dataclasses.replace(e, seq=1, time=-1e308, subject="S" * 10_000),
        dataclasses.replace(e, seq=2, time=0.0, data={"deep": deep, "nul": "a\0b", "e": "é😀"}),
        dataclasses.replace(e, source='q"\\é😀\t', seq=1),
    ]
    dead = [
        DeadLetter("lone \ud800", "raw \udfff\0end", "src\0", 2**70, math.nan),
        DeadLetter("x" * 100_000, "{" * 100_000, None, None, 1e300),
    ]
    with PostgresStore(pg_url) as s:
        assert s.write(odd, dead) == 4
        assert s.write(odd) == 0  # the keys are looked up exactly, odd text included
        assert list(s.read()) == odd
        got = s.dead_letters()
        assert got[0].reason.startswith("lone \\ud800") and "seq" in got[0].reason
        assert got[0].raw == "raw \\udfff\\u0000end" and got[0].seq is None
        assert got[0].received == 0.0 and got[1].raw == "{" * 100_000
        assert s.last_seqs()[e.source] == 2**63 - 1
        lone = dataclasses.replace(e, seq=3, data={"r": "a\udfffb", "deep": deep})
        assert s.write([lone]) == 1  # as SQLite: stored escaped, served as valid text
        assert list(s.read(after=4))[0].data == {"r": "a?b", "deep": deep}


def test_names_with_nul_or_the_escape_character_round_trip(pg_url, stream):
    """PostgreSQL text cannot hold U+0000: names holding it (or U+FFFF, the escape) are stored
    escaped and read, filtered, deduplicated and resumed from exactly as sent; the hash chain
    covers the names as sent (the SQLite store's chain over the same events)."""
    e = stream[0]
    odd = [
        dataclasses.replace(e, source="m\0es", seq=1, id="a\0\uffff0", subject="L\0T"),
        dataclasses.replace(e, source="m\uffffes", seq=1, id="\uffff\uffff0\0", subject="L\0T"),
        dataclasses.replace(e, source="m\uffff0es", seq=2, subject="L\uffff0T"),
    ]
    with PostgresStore(pg_url) as s:
        assert s.write([*odd, stream[1]]) == 4
        assert s.write([*odd, stream[1]]) == 0  # each found stored under its escaped name
        assert list(s.read()) == [*odd, stream[1]]
        assert list(s.read(subject="L\0T")) == odd[:2]
        assert list(s.read(subject="L\uffff0T")) == odd[2:]
        assert s.last_seqs()["m\0es"] == 1 and s.last_seqs()["m\uffff0es"] == 2
        for bad in ("\ud800", 5, b"L"):  # a filter no stored name can equal: nothing, no error
            assert list(s.read(subject=bad)) == list(s.read(type=bad)) == []
    h = bytes(32)
    for pos, ev in enumerate([*odd, stream[1]], start=1):
        from twin.live import codec

        b = row_bytes(pos, ev.source, ev.seq, ev.id, ev.time, ev.type, ev.subject,
                      codec.dumps(ev.data))  # fmt: skip
        h = hashlib.sha256(h + b).digest()
    with raw(pg_url) as c:
        assert bytes(c.execute("SELECT hash FROM events WHERE pos = 4").fetchone()[0]) == h


def test_the_store_reconnects_after_a_server_restart(pg_server, pg_url, stream):
    """PostgreSQL restarted between writes: the next write and read reconnect; nothing is lost
    or stored twice."""
    with PostgresStore(pg_url) as s:
        s.write(stream[:100])
        pg_server.restart()
        assert s.write(stream[50:200]) == 100
        pg_server.restart()
        assert s.count() == 200 and list(s.read()) == stream[:200]


def test_a_write_is_notified_to_listeners(pg_url, stream):
    """Followers LISTEN: a commit notifies its last position; a quiet store times out."""
    with PostgresStore(pg_url) as s:
        s.write(stream[:5])
        assert wait_for_events(s, 0, timeout=1) == 5  # already past: no wait
        assert wait_for_events(s, 5, timeout=0.3) is None
        timer = threading.Timer(0.3, s.write, args=(stream[5:12],))
        timer.start()
        t0 = time.monotonic()
        assert wait_for_events(s, 5, timeout=10) == 12
        assert time.monotonic() - t0 < 5
        timer.join()


# ------------------------------------------------------------------ bad configuration


@pytest.mark.parametrize(
    "case,match",
    [
        ("wrong password", "password authentication failed"),
        ("unreachable host", "cannot connect.*(refused|timeout|timed out)"),
        ("no such database", 'database "nope" does not exist'),
        ("garbage URL", "is not a PostgreSQL URL"),
        ("lone surrogate", "lone surrogate"),
        ("other scheme", "names a 'mysql' server"),
        ("huge URL", "is not a PostgreSQL URL|cannot connect"),
    ],
)
def test_bad_configuration_is_one_line_without_the_password(pg_server, case, match):
    """open_store on a bad URL raises one StoreError line naming the problem; no password."""
    url = {
        "wrong password": pg_server.url(password="wrong-secret"),
        "unreachable host": f"postgresql://twin:wrong-secret@127.0.0.1:{free_port()}/x",
        "no such database": pg_server.url("nope"),
        "garbage URL": "postgresql://twin:wrong-secret@[::1/x?%%%",
        "lone surrogate": "postgresql://tw\ud800in:wrong-secret@127.0.0.1/x",
        "other scheme": "mysql://twin:wrong-secret@127.0.0.1/x",
        "huge URL": "postgresql://twin:wrong-secret@h/" + "x" * 100_000 + "?sslmode=bogus",
    }[case]
    with pytest.raises(StoreError, match=match) as e:
        open_store(url)
    text = one_line(e.value)
    assert "wrong-secret" not in text and pg_server.password not in text, text
    assert len(text) < 800, text


def test_mask_hides_passwords_in_every_form():
    """Passwords in the userinfo and in a password= parameter are masked."""
    assert mask("postgresql://u:pw@h:5/d") == "postgresql://u:***@h:5/d"
    assert "s3" not in mask("postgresql://u@h/d?password=s3&sslmode=require")
    assert mask("postgresql://u@h/d") == "postgresql://u@h/d"


def test_the_cli_names_a_bad_store_url_in_one_line(pg_server):
    """`twin state --store postgresql://...` with wrong credentials: one line, no traceback."""
    r = subprocess.run(
        [sys.executable, "-m", "twin.cli", "state", "--store", pg_server.url(password="nope")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    out = (r.stdout + r.stderr).strip()
    assert r.returncode != 0 and "Traceback" not in out and len(out.splitlines()) == 1, out
    assert "password authentication failed" in out and "nope" not in out.replace("***", "")


@pytest.mark.slow
def test_twin_serve_keeps_its_events_in_postgresql(pg_url, pg_server):
    """`twin serve --store postgresql://...` creates the store, says so on /health, keeps what it
    is sent (here a dead letter) in PostgreSQL and stops cleanly; a wrong password is one line
    before anything is served."""
    import signal

    import httpx

    from tests.services.test_cli import DEV_ENV, DEV_TOKEN, start, wait_healthy

    port, env = free_port(), {**DEV_ENV, "TWIN_MODE": "development"}
    proc = start(
        ["serve", "--scene", "scenes/demo-fab", "--store", pg_url, "--port", str(port),
         "--no-physics"],
        env,
    )  # fmt: skip
    url, auth = f"http://127.0.0.1:{port}", {"Authorization": f"Bearer {DEV_TOKEN}"}
    try:
        assert wait_healthy(url, proc)["store"] == "postgresql"
        r = httpx.post(url + "/events", json=[{"id": "not an event"}], headers=auth, timeout=30)
        assert r.status_code in (200, 207, 422), r.text
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, out
    assert pg_server.password not in out
    with PostgresStore(pg_url, readonly=True) as s:
        assert s.dead_letter_count() == 1 and s.catalog() is not None
    bad = start(["serve", "--scene", "scenes/demo-fab", "--store",
                 pg_server.url(password="wrong-secret"), "--port", str(free_port())], env)  # fmt: skip
    out, _ = bad.communicate(timeout=120)
    assert bad.returncode != 0 and "Traceback" not in out, out
    (line,) = [x for x in out.splitlines() if x.startswith("twin: error")]
    assert "password authentication failed" in line and "wrong-secret" not in out


def test_a_server_that_stays_down_fails_calls_after_the_reconnect_window(pg_server, stream):
    """With the server gone for good, a write and a read each fail with one line after
    ``reconnect_for`` seconds of trying, not hang; nothing is half-written meanwhile."""
    from tests.pg import PgServer

    own = PgServer()
    try:
        s = PostgresStore(own.url(), reconnect_for=1.0)
        s.write(stream[:5])
    finally:
        own.stop()
    t0 = time.monotonic()
    with pytest.raises((StoreWriteError, StoreError)) as e:
        s.write(stream[5:10])
    one_line(e.value)
    with pytest.raises(StoreError, match="cannot connect"):
        s.count()
    assert time.monotonic() - t0 < 10
    assert own.password not in str(e.value)


def test_cli_ingest_and_state_on_postgresql(pg_url, tmp_path, catalog):
    """`twin ingest --store postgresql://...` stores a file (a bad line dead-lettered) and
    `twin state --store postgresql://...` reports the same state a replay gives; the URL's
    password is never printed."""
    import json

    from twin.live.state import TwinState, apply_all
    from twin.live.synthetic import StreamConfig, synthetic_stream

    events = synthetic_stream(StreamConfig(lots=5, seed=2), catalog)
    src = tmp_path / "events.jsonl"
    lines = [e.to_json() for e in events]
    lines.insert(10, '{"id": "broken"')
    src.write_text("\n".join(lines) + "\n")
    cli = [sys.executable, "-m", "twin.cli"]
    r = subprocess.run(
        [*cli, "ingest", "--from", str(src), "--store", pg_url, "--batch", "250"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    password = pg_url.split(":")[2].split("@")[0]
    assert password not in r.stdout + r.stderr and f"holds {len(events)} events" in r.stdout
    out = subprocess.run(
        [*cli, "state", "--store", pg_url, "--json"], capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, out.stderr
    s = json.loads(out.stdout)
    assert s["events_stored"] == len(events) and s["dead_letters"] == 1
    want = apply_all(TwinState(catalog), events).summary()
    assert s["lots_completed"] == want["lots_completed"] and s["revision"] == want["revision"]


def test_whatif_starts_from_a_postgresql_store(pg_url, tmp_path, capsys):
    """`twin whatif run --start live --store postgresql://...` reads the live state from
    PostgreSQL (a dry run: the start it would simulate from), as it does from SQLite; `twin
    calibrate --store postgresql://...` reads its runs."""
    from twin.cli import main

    demo, events = "scenes/demo-fab", tmp_path / "events.jsonl"
    assert main(["emulate", demo, "--hours", "3", "--seed", "4", "--out", str(events)]) == 0
    assert main(["ingest", "--from", str(events), "--store", pg_url, "--scene", demo,
                 "--quiet"]) == 0  # fmt: skip
    with PostgresStore(pg_url, readonly=True) as s:
        wip = s.state_at().wip()
    capsys.readouterr()
    argv = ["whatif", "run", demo, "--scenarios", f"{demo}/scenarios.yaml", "--start", "live",
            "--store", pg_url, "--days", "0.5", "-r", "1", "--workers", "1", "--dry-run"]  # fmt: skip
    assert main(argv) == 0
    err = capsys.readouterr().err
    assert "live start (now, clock" in err and f"{wip} lots" in err
    assert pg_url.split(":")[2].split("@")[0] not in err  # the password
    main(["calibrate", "--store", pg_url, "--model", demo])  # 3 h: too few runs to calibrate
    assert "track-outs per family; the store has" in capsys.readouterr().err  # but it was read
