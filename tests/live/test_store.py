"""The EventStore contract, run against every backend, and SQLite's durability specifics."""

from __future__ import annotations

import sqlite3

import pytest

from twin.live.sources import Message
from twin.live.state import TwinState, apply_all
from twin.live.store import DeadLetter, MemoryStore, SQLiteStore
from twin.live.sync import Synchroniser


@pytest.fixture(params=["memory", "sqlite", "postgres"])
def store(request, tmp_path):
    if request.param == "postgres":
        from twin.live.store_pg import PostgresStore

        s = PostgresStore(request.getfixturevalue("pg_url"))
    else:
        s = MemoryStore() if request.param == "memory" else SQLiteStore(tmp_path / "twin.db")
    yield s
    s.close()


def test_contract_append_read_dedupe(store, stream):
    """Appends keep arrival order; a (source, seq) already stored is ignored; filters work."""
    assert store.write(stream[:100]) == 100
    assert store.write(stream[50:150]) == 50  # half are duplicates
    assert store.count() == 150
    assert list(store.read()) == stream[:150]
    t1, t2 = stream[20].time, stream[80].time
    assert list(store.read(since=t1, until=t2)) == [e for e in stream[:150] if t1 <= e.time <= t2]
    pos = [e for e in stream[:150] if e.type == "vehicle.position"]
    assert list(store.read(type="vehicle.position")) == pos
    subj = stream[0].subject
    assert list(store.read(subject=subj)) == [e for e in stream[:150] if e.subject == subj]
    assert list(store.read(after=140)) == stream[140:150]


def test_contract_duplicates_within_one_write(store, stream):
    """One write holding copies of its own events (rows 50 to a statement in SQLite) stores each
    once, in first-arrival order, and counts only those."""
    assert store.write(stream[:60] + stream[10:75]) == 75
    assert store.write(stream[70:80] + stream[70:80]) == 5
    assert list(store.read()) == stream[:80]
    # 1,163 rows: 23 statements of 50 rows and 13 single rows, copies across them
    assert store.write(stream[80:700] + stream[400:943]) == 863
    assert list(store.read()) == stream[:943]


def test_contract_dead_letters(store, stream):
    """Dead letters keep their reason and payload, and count toward each source's position."""
    dead = [
        DeadLetter("not JSON", "{oops", received=1.0),
        DeadLetter("illegal E10 transition", stream[5].to_json(), "mes", 9999, 2.0),
    ]
    store.write(stream[:10], dead)
    assert store.dead_letter_count() == 2
    assert store.dead_letters() == dead
    assert store.dead_letters(limit=1) == dead[:1]
    assert store.last_seqs()["mes"] == 9999


def test_contract_snapshot_and_state_at(store, stream, catalog):
    """state_at(t) = nearest snapshot + replay equals a replay of the events up to t."""
    n = len(stream)
    store.write(stream[: n // 3])
    store.save_snapshot(apply_all(TwinState(catalog), stream[: n // 3]), n // 3)
    store.write(stream[n // 3 :])
    for cut in (n // 5, n // 2, n - 1):
        t = stream[cut].time
        expect = apply_all(TwinState(catalog), [e for e in stream if e.time <= t])
        assert store.state_at(t, catalog).fingerprint() == expect.fingerprint()
    assert store.state_at(None, catalog).fingerprint() == store.replay(catalog).fingerprint()
    pos, snap = store.snapshot()
    assert pos == n // 3 and snap.revision == n // 3
    assert store.snapshot(at=stream[0].time - 1) is None


def test_sqlite_is_wal_append_only_and_survives_reopen(tmp_path, stream):
    """The SQLite store is in WAL mode, refuses updates/deletes, and keeps data across opens."""
    path = tmp_path / "twin.db"
    with SQLiteStore(path) as s:
        s.write(stream[:20], [DeadLetter("bad", "x", received=0.0)])
    raw = sqlite3.connect(path)
    assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        raw.execute("DELETE FROM events")
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        raw.execute("UPDATE events SET type = 'x'")
    raw.close()
    with SQLiteStore(path) as s:
        assert list(s.read()) == stream[:20] and s.dead_letter_count() == 1


def test_sqlite_refuses_a_file_that_is_not_a_store(tmp_path):
    """Opening a non-database file names the file in the error."""
    from twin.errors import InputError

    bad = tmp_path / "notes.db"
    bad.write_text("hello, this is not sqlite" * 100)
    with pytest.raises(InputError, match="notes.db"):
        SQLiteStore(bad)


def test_contract_positions_page_through_the_log(store, stream):
    """read_positioned gives stable positions: pages of `limit` after a cursor cover the log once."""
    store.write(stream[:300])
    seen, cursor = [], 0
    while page := list(store.read_positioned(type="vehicle.position", after=cursor, limit=37)):
        seen += page
        cursor = page[-1][0]
    assert [e for _, e in seen] == [e for e in stream[:300] if e.type == "vehicle.position"]
    assert all(stream[p - 1] == e for p, e in seen)


def test_contract_catalog_is_recorded_for_replays(store, stream, catalog):
    """A synchroniser records its catalog, so state_at before any snapshot has tool families."""
    sync = Synchroniser(store, catalog)
    sync.process([Message(e) for e in stream])
    assert store.catalog() == catalog
    early = store.state_at(stream[len(stream) // 2].time)
    assert early.catalog == catalog and early.utilisation_by_family()


def test_sqlite_reads_walk_an_index_never_the_whole_table(tmp_path, stream):
    """Every filter of read_positioned (GET /events, state_at) is answered from the rowid range
    or the subject index, never a scan or a sort: the indexes kept are the ones reads use."""
    store = SQLiteStore(tmp_path / "twin.db")
    store.write(stream[:500])
    e = stream[7]
    filters = [{}, {"since": e.time}, {"until": e.time}, {"since": 1.0, "until": e.time}]
    filters += [{"type": e.type}, {"subject": e.subject}]
    filters += [{"subject": e.subject, "since": 1.0, "type": e.type}]
    sqls: list[str] = []
    store._db.set_trace_callback(sqls.append)  # the statements as run, values bound
    for f in filters:
        sqls.clear()
        assert list(store.read_positioned(**f, after=3, limit=10))
        (sql,) = [q for q in sqls if q.startswith("SELECT")]
        plan = " ".join(r[-1] for r in store._db.execute("EXPLAIN QUERY PLAN " + sql))
        assert plan.startswith("SEARCH events USING"), (f, plan)
        assert ("events_subject" in plan) == ("subject" in f), (f, plan)
        assert "TEMP B-TREE" not in plan, (f, plan)
    store._db.set_trace_callback(None)
    store.close()


@pytest.mark.parametrize("field", ["subject", "type"])
def test_a_filter_with_a_lone_surrogate_matches_nothing(store, stream, field):
    """Reading with a subject or type no stored event can have (a lone surrogate) returns no
    events on every backend; it is not reported as a damaged store."""
    store.write(stream[:20])
    assert list(store.read(**{field: "S\ud800"})) == []
    assert list(store.read_positioned(**{field: "\udfff"})) == []
    assert len(list(store.read())) == 20
