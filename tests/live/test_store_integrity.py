"""The SQLite store is tamper-evident and recoverable: a hash chain per event, a head file a WAL
rollback cannot reach, one-line refusals of lost, altered or malformed stores, `twin store
verify` and `twin store backup` (docs/store.md)."""

from __future__ import annotations

import hashlib
import math
import os
import shutil
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from tests.live.util import LEGACY_SCHEMA
from twin.errors import StoreError, StoreWriteError
from twin.live.events import Event
from twin.live.store import (
    GENESIS,
    DeadLetter,
    SQLiteStore,
    backup,
    head_path,
    read_head,
    reset_head,
    row_bytes,
    verify,
    write_head,
)

ROW = "SELECT pos, source, seq, id, time, type, subject, data, hash FROM events ORDER BY pos"


def make(path: Path, events: list[Event], batches: int = 1) -> None:
    with SQLiteStore(path) as s:
        step = max(1, len(events) // batches)
        for i in range(0, len(events), step):
            s.write(events[i : i + step])


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "twin.cli", *args], capture_output=True, text=True, timeout=120
    )


def assert_one_line_refusal(r: subprocess.CompletedProcess) -> str:
    out = (r.stdout + r.stderr).strip()
    assert r.returncode != 0, out
    assert "Traceback" not in out, out
    assert len(out.splitlines()) == 1, out
    return out


def edit(path: Path, sql: str, args: tuple = ()) -> None:
    """An attacker's edit: drop the append-only triggers, change rows, put the triggers back."""
    con = sqlite3.connect(path)
    con.executescript("DROP TRIGGER events_append_only_u; DROP TRIGGER events_append_only_d;")
    con.execute(sql, args)
    con.commit()
    con.close()


# ------------------------------------------------------------------ the chain


def test_each_row_extends_the_chain_and_verify_passes(tmp_path, stream):
    """h_n = SHA-256(h_{n-1} || row_bytes(row n)) for every row, the head file holds the last
    position and hash, and verify says OK with the count and that hash."""
    path = tmp_path / "twin.db"
    make(path, stream[:1234], batches=5)
    con = sqlite3.connect(path)
    h = GENESIS
    for row in con.execute(ROW):
        h = hashlib.sha256(h + row_bytes(*row[:8])).digest()
        assert row[8] == h, row[0]
    con.close()
    assert read_head(path) == (1234, h)
    v = verify(path)
    assert v.ok and v.count == 1234 and v.hash == h
    assert v.line() == f"OK {path}: 1234 events, chain intact, head {h.hex()}"
    r = cli("store", "verify", str(path))
    assert r.returncode == 0 and r.stdout.strip() == v.line(), r.stderr


def test_row_bytes_are_unambiguous_even_with_nul_in_fields():
    """Two rows that differ only in where a NUL splits two fields hash different bytes, and an
    integer time is hashed as the float SQLite gives back."""
    a = row_bytes(1, "a\0b", 1, "c", 1.0, "t", "s", "{}")
    b = row_bytes(1, "a", 1, "b\0c", 1.0, "t", "s", "{}")
    assert a != b and a.startswith(b"\x01") and b.startswith(b"\x01")
    assert row_bytes(1, "a", 1, "c", 5, "t", "s", "{}") == row_bytes(
        1, "a", 1, "c", 5.0, "t", "s", "{}"
    )
    assert (
        row_bytes(12, "a", 3, "c", 1.5, "t", "s", "{}")
        == b"12\x00a\x003\x00c\x001.5\x00t\x00s\x00{}"
    )


def test_duplicates_and_odd_but_storable_events_keep_the_chain(tmp_path, stream):
    """Writes with copies (the one-at-a-time path), NUL in ids, extreme and infinite times still
    chain: verify passes and a reopened store reads them back as written."""
    path = tmp_path / "twin.db"
    odd = [
        Event("i\0d", "s\0rc", 1, 1e308, "x.y", "S", {"a": "\0", "deep": [[[[1]]]]}),
        Event("id2", "src", 2, -math.inf, "x.y", "S", {}),
        Event("id3", "src", 3, math.inf, "x.y", "S\u00e9\U0001f600", {"n": 2**63 - 1}),
    ]
    with SQLiteStore(path) as s:
        assert s.write(stream[:60] + stream[10:75]) == 75  # copies: one at a time
        assert s.write(odd) == 3  # new: the one-statement path
        assert s.write(stream[70:80] + odd) == 5
        assert s.write(odd) == 0
    with SQLiteStore(path) as s:
        assert list(s.read()) == stream[:75] + odd + stream[75:80]
    assert verify(path).ok and verify(path).count == 83


# ------------------------------------------------------------------ altered events


def test_an_edited_event_is_found_by_verify_at_its_position(tmp_path, stream):
    """UPDATE of one event's data (triggers dropped) makes verify report BROKEN at that position
    and exit 1 with one line."""
    path = tmp_path / "twin.db"
    make(path, stream[:500], batches=4)
    edit(path, "UPDATE events SET data = ? WHERE pos = 137", ('{"forged":1}',))
    v = verify(path)
    assert not v.ok and v.position == 137 and v.count == 136
    assert "does not match its hash" in v.problem
    r = cli("store", "verify", str(path))
    assert r.returncode == 1 and "BROKEN" in r.stdout and "position 137" in r.stdout
    assert_one_line_refusal(r)


def test_editing_the_last_event_is_refused_on_open(tmp_path, stream):
    """When the edited event is the last one (the head's), opening refuses with one line naming
    the file and the position."""
    path = tmp_path / "twin.db"
    make(path, stream[:300])
    edit(path, "UPDATE events SET subject = 'T9' WHERE pos = 300")
    with pytest.raises(StoreError, match=r"twin\.db: the event at position 300 does not match"):
        SQLiteStore(path)
    with pytest.raises(StoreError):
        SQLiteStore(path, readonly=True)
    out = assert_one_line_refusal(cli("state", "--store", str(path)))
    assert "position 300" in out and "twin store verify" in out


def test_deleting_the_last_events_is_refused(tmp_path, stream):
    """DELETE of the newest rows leaves the store behind its head: refused on open."""
    path = tmp_path / "twin.db"
    make(path, stream[:300])
    edit(path, "DELETE FROM events WHERE pos > 250")
    with pytest.raises(StoreError, match="ends at position 250 but its head file says 300"):
        SQLiteStore(path)
    assert verify(path).position == 251


def test_a_head_from_another_store_is_refused(tmp_path, stream):
    """A head whose hash at its position is not this store's: refused (events replaced)."""
    a, b = tmp_path / "a.db", tmp_path / "b.db"
    make(a, stream[:200])
    make(b, stream[1:201])
    shutil.copy(head_path(b), head_path(a))
    with pytest.raises(StoreError, match="position 200 is not the one its head file records"):
        SQLiteStore(a)
    assert verify(a).position == 200


# ------------------------------------------------------------------ lost events and crashes


def test_a_truncated_wal_is_refused_with_one_line(tmp_path, stream):
    """Events committed into the -wal (connection still open, not checkpointed), then the store
    copied with its -wal truncated: the copy is behind its head, refused by open, `twin state`
    and `twin store verify`, each with one line and no traceback."""
    path = tmp_path / "twin.db"
    make(path, stream[:100])  # closed: checkpointed into the database file
    live = SQLiteStore(path)
    live.write(stream[100:220])
    copy = tmp_path / "copy"
    copy.mkdir()
    for suffix in ("", "-wal", ".head"):
        shutil.copy(f"{path}{suffix}", copy / f"twin.db{suffix}")
    live.close()
    assert os.path.getsize(copy / "twin.db-wal") > 0
    os.truncate(copy / "twin.db-wal", 0)
    bad = copy / "twin.db"
    with pytest.raises(StoreError, match="ends at position 100 but its head file says 220"):
        SQLiteStore(bad)
    out = assert_one_line_refusal(cli("state", "--store", str(bad)))
    assert "committed events were lost" in out and str(bad) in out
    out = assert_one_line_refusal(cli("store", "verify", str(bad)))
    assert "BROKEN" in out and "position 101" in out


def test_a_deleted_database_with_its_head_left_is_refused(tmp_path, stream):
    """Database and -wal deleted but the head kept: the new empty store is behind the head; the
    hint says how to start afresh."""
    path = tmp_path / "twin.db"
    make(path, stream[:50])
    path.unlink()
    with pytest.raises(StoreError, match="delete the .head file too"):
        SQLiteStore(path)


def test_a_store_ahead_of_its_head_is_accepted_and_the_head_moved_up(tmp_path, stream):
    """A crash between the SQLite commit and the head update leaves the store ahead of its head:
    a writer opens it, checks the rows after the head, and moves the head to the last event; a
    reader accepts it too but writes nothing."""
    path = tmp_path / "twin.db"
    make(path, stream[:100])
    old_head = head_path(path).read_bytes()
    with SQLiteStore(path) as s:
        s.write(stream[100:180])
    new_head = read_head(path)
    head_path(path).write_bytes(old_head)  # as if the process died before the head update
    with SQLiteStore(path, readonly=True) as r:
        assert r.count() == 180
    assert head_path(path).read_bytes() == old_head
    with SQLiteStore(path) as s:
        assert s.count() == 180
    assert read_head(path) == new_head
    assert verify(path).ok


def test_a_forged_event_past_the_head_is_refused(tmp_path, stream):
    """Rows after the head are chain-checked on open: an edit in the crash window is refused."""
    path = tmp_path / "twin.db"
    make(path, stream[:100])
    old_head = head_path(path).read_bytes()
    make(path, stream[100:150])
    head_path(path).write_bytes(old_head)
    edit(path, "UPDATE events SET type = 'lot.scrap' WHERE pos = 120")
    with pytest.raises(StoreError, match="position 120"):
        SQLiteStore(path)


def test_a_missing_head_is_refused_and_reset_head_accepts_the_store(tmp_path, stream):
    """A store with events but no head file is refused; `twin store verify --reset-head` checks
    the chain and writes the head, after which it opens."""
    path = tmp_path / "twin.db"
    make(path, stream[:40])
    head = read_head(path)
    head_path(path).unlink()
    with pytest.raises(StoreError, match="head file twin.db.head is missing"):
        SQLiteStore(path)
    assert not verify(path).ok
    r = cli("store", "verify", "--reset-head", str(path))
    assert r.returncode == 0 and "head file written" in r.stdout, r.stderr
    assert read_head(path) == head
    SQLiteStore(path).close()
    missing = assert_one_line_refusal(cli("store", "verify", "--reset-head", f"{path}-nope"))
    assert "no such event store" in missing and not Path(f"{path}-nope").exists()


def test_reset_head_refuses_a_broken_chain(tmp_path, stream):
    """--reset-head writes no head when the chain itself is broken (exit 1)."""
    path = tmp_path / "twin.db"
    make(path, stream[:40])
    edit(path, "UPDATE events SET seq = 999 WHERE pos = 7")
    head_path(path).unlink()
    v = reset_head(path)
    assert not v.ok and v.position == 7 and not head_path(path).exists()


@pytest.mark.parametrize(
    "content",
    [b"", b"garbage", b"twin-store-head 1\n-5 " + b"0" * 64 + b"\n", b"\xff\xfe\xed\xa0\x80",
     b"twin-store-head 1\n1 " + b"a" * 64 + b"\n" * 10_000, b"[" * 100_000],
)  # fmt: skip
def test_a_malformed_head_file_is_refused_with_one_line(tmp_path, stream, content):
    """Garbage, invalid UTF-8, negative positions, huge or deeply nested head files: refused."""
    path = tmp_path / "twin.db"
    make(path, stream[:10])
    head_path(path).write_bytes(content)
    with pytest.raises(StoreError, match="not a twin store head file"):
        SQLiteStore(path)


# ------------------------------------------------------------------ files that are not stores


def _corrupt_pages(path: Path) -> None:
    size = path.stat().st_size
    with open(path, "r+b") as f:
        for page in range(3, size // 4096, 3):
            f.seek(page * 4096)
            f.write(b"\xaa" * 4096)


@pytest.mark.parametrize("kind", ["empty", "random", "other-sqlite", "malformed", "directory"])
def test_files_that_are_not_stores_give_one_line(tmp_path, stream, kind):
    """A zero-length file, random bytes, an SQLite database of something else, a store with
    corrupt pages, a directory: the constructor raises StoreError, and `twin state` and `twin
    store verify` print one line and exit non-zero, never a traceback."""
    path = tmp_path / "twin.db"
    if kind == "empty":
        path.write_bytes(b"")
    elif kind == "random":
        path.write_bytes(os.urandom(10_000))
    elif kind == "other-sqlite":
        con = sqlite3.connect(path)
        con.execute("CREATE TABLE customers (name TEXT)")
        con.commit()
        con.close()
    elif kind == "malformed":
        make(path, stream[:3000], batches=3)
        _corrupt_pages(path)
        head_path(path).unlink()  # so the open gets as far as the pages
        reset = cli("store", "verify", "--reset-head", str(path))
        assert_one_line_refusal(reset)
    else:
        path.mkdir()
    if kind != "malformed":
        with pytest.raises(StoreError, match="twin.db"):
            SQLiteStore(path)
        with pytest.raises(StoreError, match="twin.db"):
            SQLiteStore(path, readonly=True)
    if kind == "empty":
        assert path.stat().st_size == 0  # left as it was
        with pytest.raises(StoreError, match="give a path where no file exists"):
            SQLiteStore(path)
    if kind == "other-sqlite":
        con = sqlite3.connect(path)
        assert [n for (n,) in con.execute("SELECT name FROM sqlite_master")] == ["customers"]
        con.close()
    if kind != "directory":
        assert_one_line_refusal(cli("state", "--store", str(path)))
    out = assert_one_line_refusal(cli("store", "verify", str(path)))
    assert "twin.db" in out


def test_a_new_store_appears_whole(tmp_path, stream):
    """Creating a store leaves the file, an empty chain and a head at position 0, and no
    temporary files; a readonly open of a missing path refuses instead of creating."""
    path = tmp_path / "new.db"
    with pytest.raises(StoreError, match="no such event store"):
        SQLiteStore(path, readonly=True)
    assert not path.exists()
    SQLiteStore(path).close()
    assert read_head(path) == (0, GENESIS)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["new.db", "new.db.head"]
    assert verify(path).ok and verify(path).count == 0


# ------------------------------------------------------------------ readers


def test_readonly_readers_check_but_never_write(tmp_path, stream):
    """readonly=True reads a store that a writer holds open, writes no head file, and refuses
    write, snapshots and meta with StoreWriteError."""
    path = tmp_path / "twin.db"
    writer = SQLiteStore(path)
    writer.write(stream[:100])
    before = head_path(path).stat().st_mtime_ns
    reader = SQLiteStore(path, readonly=True, synchronous="NORMAL")
    writer.write(stream[100:200])
    assert reader.count() == 200 and list(reader.read(after=150)) == stream[150:200]
    for call in (
        lambda: reader.write(stream[200:210]),
        lambda: reader.put_meta("k", "v"),
        lambda: reader.save_snapshot(writer.state_at(), 200),
    ):
        with pytest.raises(StoreWriteError, match="read-only"):
            call()
    reader.close()
    writer.close()
    assert head_path(path).stat().st_mtime_ns != before  # the writer's update, not the reader's
    assert read_head(path)[0] == 200


# ------------------------------------------------------------------ backup


def test_backup_while_another_connection_writes_is_a_verified_copy(tmp_path, stream):
    """`twin store backup` copies a store a writer is appending to: the copy verifies, holds a
    prefix of the writes, has its own head file and opens as a store."""
    path, dest = tmp_path / "twin.db", tmp_path / "backup" / "copy.db"
    dest.parent.mkdir()
    make(path, stream[:1000])
    done = threading.Event()

    def keep_writing() -> None:
        with SQLiteStore(path) as w:
            for i in range(1000, len(stream), 100):
                w.write(stream[i : i + 100])
        done.set()

    t = threading.Thread(target=keep_writing)
    t.start()
    v = backup(path, dest)
    t.join()
    assert done.is_set() and v.ok and v.path == dest and v.count >= 1000
    assert read_head(dest) == (v.count, v.hash)
    with SQLiteStore(dest) as s:
        assert list(s.read()) == stream[: v.count]
    assert verify(dest).ok
    left = {p.name for p in dest.parent.iterdir()} - {"copy.db-wal", "copy.db-shm"}
    assert left == {"copy.db", "copy.db.head"}  # no partial file
    r = cli("store", "backup", str(path), str(tmp_path / "second.db"))
    assert r.returncode == 0 and "OK" in r.stdout and str(len(stream)) in r.stdout, r.stderr
    again = assert_one_line_refusal(cli("store", "backup", str(path), str(dest)))
    assert "already exists" in again


def test_backup_refuses_a_source_behind_its_head(tmp_path, stream):
    """A source that lost committed events is not copied: one line, nothing left at DEST."""
    path, dest = tmp_path / "twin.db", tmp_path / "copy.db"
    make(path, stream[:100])
    edit(path, "DELETE FROM events WHERE pos > 90")
    out = assert_one_line_refusal(cli("store", "backup", str(path), str(dest)))
    assert "committed events were lost" in out
    assert not dest.exists() and not head_path(dest).exists()


# ------------------------------------------------------------------ legacy stores


def test_a_store_made_before_the_chain_is_chained_by_its_first_writer(tmp_path, stream):
    """An old store (no hash column, no head): readers read it as it is; the first writer
    computes the chain once and writes the head; later writes continue it; verify passes and
    the append-only triggers are back."""
    path = tmp_path / "old.db"
    con = sqlite3.connect(path)
    con.executescript("PRAGMA journal_mode=WAL;" + LEGACY_SCHEMA)
    from twin.live import codec

    con.executemany(
        "INSERT INTO events (source, seq, id, time, type, subject, data) VALUES (?,?,?,?,?,?,?)",
        [(e.source, e.seq, e.id, e.time, e.type, e.subject, codec.dumps(e.data)) for e in stream[:700]],
    )  # fmt: skip
    con.commit()
    con.close()
    assert "no hash chain yet" in verify(path).problem
    with SQLiteStore(path, readonly=True) as r:
        assert r.count() == 700 and not r.chained
    assert not head_path(path).exists()
    with SQLiteStore(path) as s:
        assert s.chained and list(s.read()) == stream[:700]
        assert read_head(path)[0] == 700
        s.write(stream[700:900])
    v = verify(path)
    assert v.ok and v.count == 900
    con = sqlite3.connect(path)
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        con.execute("UPDATE events SET type = 'x' WHERE pos = 1")
    con.close()


# ------------------------------------------------------------------ hostile writes


def test_dead_letters_with_lone_surrogates_and_huge_values_are_stored(tmp_path):
    """A dead letter's reason/raw/source with lone surrogates, a seq beyond 64 bits, a NaN
    receive time: write stores them (surrogates escaped, seq none, noted in the reason)."""
    path = tmp_path / "twin.db"
    dead = [
        DeadLetter("bad \ud800 text", '{"x": "\udfff"}', "src\ud800", 5, 1.0),
        DeadLetter("huge", '{"seq": 1e999}', "src", 10**40, math.nan),
        DeadLetter("neg", "{}", "src", -(2**70), math.inf),
        DeadLetter("x" * 1_000_000, "[" * 100_000, None, None, 0.0),
    ]
    with SQLiteStore(path) as s:
        assert s.write([], dead) == 0
        got = s.dead_letters()
    assert got[0].reason == "bad \\ud800 text" and got[0].raw == '{"x": "\\udfff"}'
    assert got[0].source == "src\\ud800" and got[0].seq == 5
    assert got[1].seq is None and "not a 64-bit integer" in got[1].reason and got[1].received == 0.0
    assert got[2].seq is None and got[2].received == math.inf
    assert len(got[3].reason) == 1_000_000 and got[3].raw == "[" * 100_000


def _deep(n: int) -> dict:
    d: dict = {}
    for _ in range(n):
        d = {"a": d}
    return d


@pytest.mark.parametrize(
    ("bad", "match"),
    [
        (Event("i", "src", 3, 1.0, "x.y", "S\ud800", {}), r"subject .* lone surrogate"),
        (Event("i\udc80", "src", 3, 1.0, "x.y", "S", {}), r"id .* lone surrogate"),
        (Event("i", "src", 2**64, 1.0, "x.y", "S", {}), r"seq is an integer of 65 bits"),
        (Event("i", "src", 3, math.nan, "x.y", "S", {}), r"time is NaN"),
        (Event("i", "src", 3, 1.0, "x.y", "S", _deep(100_000)), r"data cannot be written"),
    ],
)
def test_an_event_that_cannot_be_stored_names_itself_and_nothing_is_written(
    tmp_path, stream, bad, match
):
    """write raises StoreWriteError naming the event (source, seq) and what is wrong; the
    batch's good events and dead letters are not written, and the chain is unharmed."""
    path = tmp_path / "twin.db"
    with SQLiteStore(path) as s:
        s.write(stream[:10])
        head = read_head(path)
        with pytest.raises(StoreWriteError, match=match) as info:
            s.write(stream[10:20] + [bad] + stream[20:30], [DeadLetter("r", "x")])
        assert "source 'src'" in str(info.value) or "source 'src'" in info.value.where
        assert s.count() == 10 and s.dead_letter_count() == 0
        assert read_head(path) == head
        assert s.write(stream[10:30]) == 20
    assert verify(path).ok


def test_write_head_replaces_the_file_whole(tmp_path):
    """The head file is replaced by rename: it always parses, and no temporary file is left."""
    path = tmp_path / "twin.db"
    for pos in range(50):
        write_head(path, pos, hashlib.sha256(bytes([pos])).digest(), durable=pos % 2 == 0)
        assert read_head(path) == (pos, hashlib.sha256(bytes([pos])).digest())
    assert [p.name for p in tmp_path.iterdir()] == ["twin.db.head"]


def test_a_batch_of_new_events_takes_the_one_statement_path(tmp_path, stream):
    """New events are inserted 50 rows to a statement with no per-event lookup; only a batch
    holding a copy falls back to storing one event at a time."""
    with SQLiteStore(tmp_path / "twin.db") as s:
        sqls: list[str] = []
        s._db.set_trace_callback(sqls.append)
        s.write(stream[:500])
        assert not [q for q in sqls if q.startswith("SELECT 1 FROM events")]
        assert sum(q.startswith("INSERT OR IGNORE INTO events") for q in sqls) == 10
        sqls.clear()
        assert s.write(stream[490:510]) == 10
        assert [q for q in sqls if q.startswith("SELECT 1 FROM events")]
        s._db.set_trace_callback(None)
    assert verify(tmp_path / "twin.db").ok


@pytest.mark.parametrize("name", ["bad\ud800.db", "nul\0.db", "x" * 300 + ".db"])
def test_unusable_store_names_give_one_error(tmp_path, name):
    """A path with a lone surrogate, a NUL or a name too long: StoreError from the constructor
    (reader and writer), verify, backup and reset_head, never another exception."""
    path = str(tmp_path / name)
    for call in (
        lambda: SQLiteStore(path),
        lambda: SQLiteStore(path, readonly=True),
        lambda: verify(path),
        lambda: reset_head(path),
        lambda: backup(path, tmp_path / "copy.db"),
        lambda: backup(tmp_path / "none.db", path),
    ):
        with pytest.raises(StoreError):
            call()


def test_a_store_under_an_undecodable_name_works(tmp_path, stream):
    """A file name with bytes that are not UTF-8 (held as surrogate escapes) is a usable store,
    and messages about it print."""
    path = tmp_path / "caf\udce9.db"
    make(path, stream[:20])
    assert verify(path).ok and "caf\\udce9.db" in verify(path).line()


def test_a_writer_removes_only_old_head_temporaries(tmp_path, stream):
    """A head temporary left by a killed process (over a minute old) is removed when a writer
    opens the store; a fresh one (maybe another writer's, mid-rename) is left alone."""
    path = tmp_path / "twin.db"
    make(path, stream[:10])
    old, fresh = tmp_path / "twin.db.head.1-2.tmp", tmp_path / "twin.db.head.3-4.tmp"
    old.write_text("x")
    fresh.write_text("y")
    os.utime(old, (1e9, 1e9))
    SQLiteStore(path).close()
    assert not old.exists() and fresh.exists()
