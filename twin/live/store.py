"""Durable event storage behind a small interface, with an in-memory and a SQLite backend.

Every backend keeps: an append-only event log in arrival order (each event at a position
``pos`` = 1, 2, ...; (source, seq) unique, a second copy is ignored), dead letters with their
reason, and snapshots of the twin state tagged with the position they include. ``write`` is
atomic and durable on return, so the synchroniser acknowledges only after it returns.
``state_at(t)`` = the latest snapshot whose clock is <= t, plus a replay of the later events with
time <= t. The contract test in ``tests/live/test_store.py`` runs against every backend.

The SQLite store is also tamper-evident and refuses to open when committed events were lost: each
row carries h_n = SHA-256(h_{n-1} || the row's canonical bytes), and the position and hash of the
last event are kept in a sidecar file (``<store>.head``) that a WAL rollback cannot reach.
``verify`` walks the whole chain, ``backup`` copies a live store. See docs/store.md.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import re
import sqlite3
import threading
import time as _time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from itertools import chain
from pathlib import Path
from typing import Any, TypeVar

from twin.errors import InputError, StoreError, StoreWriteError
from twin.live import codec
from twin.live.catalog import Catalog
from twin.live.events import Event
from twin.live.state import TwinState, apply
from twin.live.store_chain import (
    GENESIS,
    HINT,
    ROWS_AFTER,
    connect,
    fsync_dir,
    head_path,
    kind_of,
    read_head,
    remove_quietly,
    row_bytes,
    sha256,
    short_text,
    show_path,
    usable_path,
    walk_chain,
    write_head,
)
from twin.live.store_chain import Verdict as Verdict  # the store's checks, importable from here
from twin.live.store_chain import backup as backup
from twin.live.store_chain import reset_head as reset_head
from twin.live.store_chain import verify as verify


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A payload that was not applied and why. ``raw`` is the payload as received (text)."""

    reason: str
    raw: str
    source: str | None = None
    seq: int | None = None
    received: float = 0.0  # s, wall clock (UTC epoch) when it was rejected


class EventStore(ABC):
    """What the synchroniser needs from storage."""

    @abstractmethod
    def write(self, events: Sequence[Event], dead: Sequence[DeadLetter] = ()) -> int:
        """Append events and dead letters in one durable transaction; returns events inserted."""

    @abstractmethod
    def read_positioned(
        self,
        since: float | None = None,
        until: float | None = None,
        type: str | None = None,
        subject: str | None = None,
        after: int = 0,
        limit: int | None = None,
    ) -> Iterator[tuple[int, Event]]:
        """(position, event) in arrival order: position > after, since <= time <= until, of a
        type/subject, at most ``limit`` of them (a position is a stable cursor for paging)."""

    def read(
        self,
        since: float | None = None,
        until: float | None = None,
        type: str | None = None,
        subject: str | None = None,
        after: int = 0,
    ) -> Iterator[Event]:
        """Events in arrival order: position > after, since <= time <= until, of a type/subject."""
        for _, ev in self.read_positioned(since, until, type, subject, after):
            yield ev

    @abstractmethod
    def count(self) -> int:
        """Events stored (the position of the last one)."""

    @abstractmethod
    def dead_letters(self, limit: int | None = None) -> list[DeadLetter]: ...

    @abstractmethod
    def dead_letter_count(self) -> int: ...

    @abstractmethod
    def save_snapshot(self, state: TwinState, pos: int) -> None:
        """Store ``state``, which includes exactly the events at positions 1..pos."""

    @abstractmethod
    def snapshot(self, at: float | None = None) -> tuple[int, TwinState] | None:
        """The latest snapshot (whose clock is <= at, if given) and its position."""

    @abstractmethod
    def last_seqs(self) -> dict[str, int]:
        """Highest seq per source over events and dead letters (where to resume each source)."""

    @abstractmethod
    def put_meta(self, key: str, value: str) -> None:
        """Store a small named text (e.g. the catalog the events were validated against)."""

    @abstractmethod
    def get_meta(self, key: str) -> str | None: ...

    def close(self) -> None:  # noqa: B027 - optional for backends
        pass

    def catalog(self) -> Catalog | None:
        """The catalog the synchroniser recorded, if any."""
        text = self.get_meta("catalog")
        return None if text is None else Catalog.from_dict(json.loads(text))

    def append(self, events: Sequence[Event]) -> int:
        return self.write(events, ())

    def state_at(self, at: float | None = None, catalog: Catalog | None = None) -> TwinState:
        """The twin state as of event time ``at`` (None: now). Without a snapshot old enough, the
        replay starts from ``catalog`` (default: the one recorded in the store)."""
        snap = self.snapshot(at)
        if snap is None:
            pos, state = 0, TwinState(catalog or self.catalog())
        else:
            pos, state = snap
        for ev in self.read(until=at, after=pos):
            apply(state, ev)
        return state

    def replay(self, catalog: Catalog | None = None) -> TwinState:
        """A full replay from an empty state, ignoring snapshots."""
        state = TwinState(catalog or self.catalog())
        for ev in self.read():
            apply(state, ev)
        return state

    def __enter__(self) -> EventStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class MemoryStore(EventStore):
    """Not durable; for tests and for an in-process twin that needs no history on disk."""

    def __init__(self) -> None:
        self._events: list[Event] = []
        self._keys: set[tuple[str, int]] = set()
        self._dead: list[DeadLetter] = []
        self._snaps: list[tuple[int, float, str]] = []
        self._meta: dict[str, str] = {}

    def put_meta(self, key: str, value: str) -> None:
        self._meta[key] = value

    def get_meta(self, key: str) -> str | None:
        return self._meta.get(key)

    def write(self, events: Sequence[Event], dead: Sequence[DeadLetter] = ()) -> int:
        n = 0
        for ev in events:
            if ev.key not in self._keys:
                self._keys.add(ev.key)
                self._events.append(ev)
                n += 1
        self._dead.extend(dead)
        return n

    def read_positioned(
        self, since=None, until=None, type=None, subject=None, after=0, limit=None
    ) -> Iterator[tuple[int, Event]]:
        n = 0
        for pos, ev in enumerate(self._events[after:], start=after + 1):
            if limit is not None and n >= limit:
                return
            if since is not None and ev.time < since:
                continue
            if until is not None and ev.time > until:
                continue
            if type is not None and ev.type != type:
                continue
            if subject is not None and ev.subject != subject:
                continue
            n += 1
            yield pos, ev

    def count(self) -> int:
        return len(self._events)

    def dead_letters(self, limit: int | None = None) -> list[DeadLetter]:
        return list(self._dead[:limit] if limit is not None else self._dead)

    def dead_letter_count(self) -> int:
        return len(self._dead)

    def save_snapshot(self, state: TwinState, pos: int) -> None:
        self._snaps.append((pos, state.clock, state.to_json()))

    def snapshot(self, at: float | None = None) -> tuple[int, TwinState] | None:
        for pos, clock, text in reversed(self._snaps):
            if at is None or clock <= at:
                return pos, TwinState.from_json(text)
        return None

    def last_seqs(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for src, seq in self._keys:
            out[src] = max(out.get(src, 0), seq)
        for d in self._dead:
            if d.source is not None and d.seq is not None:
                out[d.source] = max(out.get(d.source, 0), d.seq)
        return out


log = logging.getLogger(__name__)
_I64_MIN, _I64_MAX = -(2**63), 2**63 - 1


def _create(path: Path) -> None:
    """Make a new, empty store at ``path`` whole or not at all: built under a temporary name
    and linked into place, so a crash never leaves a half-made store (nor an empty file)."""
    if not path.parent.is_dir():
        raise StoreError(show_path(path), "cannot be created: its folder does not exist")
    tmp = path.with_name(f".{path.name}.{os.getpid()}-{threading.get_ident()}.new")
    try:
        db = sqlite3.connect(tmp, isolation_level=None)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=FULL")
            db.executescript(_SCHEMA)
        finally:
            db.close()
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass  # made meanwhile by another process: that one is opened
        except OSError:  # a file system without hard links
            if not path.exists():
                os.replace(tmp, path)
        fsync_dir(path.parent)
    except (sqlite3.Error, OSError) as exc:
        raise StoreError(show_path(path), f"cannot be created ({exc})") from None
    finally:
        remove_quietly(tmp, Path(f"{tmp}-wal"), Path(f"{tmp}-shm"))


# ------------------------------------------------------------------ the SQLite store

# The hot path leaves pos to SQLite (max + 1: the position the chain was computed for) and
# says OR IGNORE, then checks that every row went in at the position its hash was computed for
# (else the batch is rolled back and stored one event at a time). An explicit rowid would cost
# SQLite a b-tree seek per row, and a plain INSERT a statement journal (about 0.9 µs per row
# each, measured).
_INSERT_ONE = (
    "INSERT OR IGNORE INTO events (source, seq, id, time, type, subject, data, hash) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
)
# One statement inserting 50 rows costs SQLite about 30 % less per row than 50 executions of the
# one-row statement (measured: 9.5 -> 6.6 µs of CPU per row).
_PER_INSERT = 50
_INSERT_MANY = _INSERT_ONE + ", (?, ?, ?, ?, ?, ?, ?, ?)" * (_PER_INSERT - 1)
_INSERT_AT = (
    "INSERT INTO events (source, seq, id, time, type, subject, data, hash, pos) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_LAST = "SELECT pos, hash FROM events ORDER BY pos DESC LIMIT 1"

# Indexes: (source, seq) is unique, and subject filters use events_subject. There is no index
# on time: every read asks for pos > ? in pos order, so SQLite walks the rowid range and filters
# time on the way (tests/live/test_store.py checks the plans); the time index it never used cost
# about 1,700 instructions per insert. Stores made before keep theirs, unused. ``hash`` is the
# chain (h_n, 32 bytes); stores made before it gain the column (nullable) when first opened.
_TRIGGER_U = """CREATE TRIGGER IF NOT EXISTS events_append_only_u BEFORE UPDATE ON events
BEGIN SELECT RAISE(ABORT, 'the event log is append-only'); END;"""
_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS events (
    pos INTEGER PRIMARY KEY,
    source TEXT NOT NULL,
    seq INTEGER NOT NULL,
    id TEXT NOT NULL,
    time REAL NOT NULL,
    type TEXT NOT NULL,
    subject TEXT NOT NULL,
    data TEXT NOT NULL,
    hash BLOB NOT NULL,
    UNIQUE (source, seq)
);
CREATE INDEX IF NOT EXISTS events_subject ON events (subject);
CREATE TABLE IF NOT EXISTS dead_letters (
    id INTEGER PRIMARY KEY,
    received REAL NOT NULL,
    source TEXT,
    seq INTEGER,
    reason TEXT NOT NULL,
    raw TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS snapshots (
    pos INTEGER PRIMARY KEY,
    clock REAL NOT NULL,
    state TEXT NOT NULL
);
{_TRIGGER_U}
CREATE TRIGGER IF NOT EXISTS events_append_only_d BEFORE DELETE ON events
BEGIN SELECT RAISE(ABORT, 'the event log is append-only'); END;
"""

_F = TypeVar("_F", bound=Callable[..., Any])


def _reading(fn: _F) -> _F:
    """A read that meets a damaged database raises one StoreError line, not sqlite3's."""

    @functools.wraps(fn)
    def wrapper(self: SQLiteStore, *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(self, *args, **kwargs)
        except sqlite3.DatabaseError as exc:
            raise self._unreadable(exc) from None

    return wrapper  # type: ignore[return-value]


class SQLiteStore(EventStore):
    """SQLite in WAL mode. ``synchronous=FULL`` (default) survives power loss; NORMAL survives a
    killed process (still WAL-durable per commit) and is faster.

    Opening checks the store against its head file (cheaply: the rows from the head's position
    on) and refuses with one StoreError line when committed events were lost or altered; a writer
    also creates a missing store, chains a store made before the chain, and moves the head up to
    the last event. ``readonly=True`` (readers beside a writer, e.g. one per API thread) checks
    but never writes: no schema, no migration, no head file, and ``write`` refuses."""

    def __init__(
        self, path: str | Path, *, synchronous: str = "FULL", readonly: bool = False
    ) -> None:
        self._open(path, synchronous, readonly, check_head=True)

    def _open(self, path: str | Path, synchronous: str, readonly: bool, check_head: bool) -> None:
        sync = synchronous.upper() if isinstance(synchronous, str) else repr(synchronous)
        if sync not in ("FULL", "NORMAL", "EXTRA"):
            raise InputError(
                "event store", [f"synchronous={synchronous!r}: accepted FULL, NORMAL, EXTRA"]
            )
        self.path = usable_path(path)
        self.readonly = readonly
        self._durable = sync != "NORMAL"  # NORMAL: the head is not fsynced either
        if not readonly and not os.path.lexists(self.path):
            _create(self.path)
        self._db = connect(self.path, readonly=readonly)
        try:
            self._db.execute(f"PRAGMA synchronous={sync}")
            kind = kind_of(self._db, self.path)
            if readonly and kind == "empty":
                raise StoreError(
                    show_path(self.path), "is an SQLite database with no tables, not an event store"
                )
            if not readonly:
                self._db.execute("PRAGMA journal_mode=WAL")
                self._db.executescript(_SCHEMA)
                if kind == "legacy":
                    self._chain_legacy()
                    kind = "chained"
            self.chained = kind != "legacy"
            if self.chained and check_head:
                self._check_head()
            if not readonly:
                self._remove_stale_temporaries()
        except sqlite3.DatabaseError as exc:
            self._db.close()
            raise self._unreadable(exc) from None
        except OSError as exc:  # the head file or a temporary one
            self._db.close()
            raise StoreError(
                show_path(self.path), f"its head file cannot be written ({exc.strerror})"
            ) from None
        except BaseException:
            self._db.close()
            raise

    def _remove_stale_temporaries(self) -> None:
        """Delete head temporaries left by a process killed mid head write (a minute old: a
        live writer's own is renamed within milliseconds)."""
        pattern = f"{glob_escape(head_path(self.path).name)}.*.tmp"
        for stale in self.path.parent.glob(pattern):
            try:
                if _time.time() - stale.stat().st_mtime > 60:
                    remove_quietly(stale)
            except OSError:
                pass

    def _unreadable(self, exc: object) -> StoreError:
        return StoreError(
            show_path(self.path),
            f"cannot be read as an event store ({exc})",
            "restore it from a backup (`twin store backup` makes one)",
        )

    def _check_head(self) -> None:
        """Refuse a store behind its head (committed events lost) or whose events from the
        head's position on do not chain (altered); move a head left behind by a crash up."""
        head = read_head(self.path)  # before the database: a writer moves it after each commit
        last = self._db.execute(_LAST).fetchone()
        last_pos = 0 if last is None else last[0]
        if head is None:
            if last_pos:
                raise StoreError(
                    show_path(self.path),
                    f"holds {last_pos} events but its head file {head_path(self.path).name} "
                    "is missing",
                    HINT,
                )
            hpos, hhash = 0, GENESIS
        else:
            hpos, hhash = head
        if hpos > last_pos:
            raise StoreError(
                show_path(self.path),
                f"ends at position {last_pos} but its head file says {hpos}: committed events "
                "were lost (a deleted or truncated -wal file, or an older copy of the database)",
                HINT
                + (", or to start a new store delete the .head file too" if not last_pos else ""),
            )
        end, h, watched, problem, _ = walk_chain(self._db, max(hpos - 1, 0), watch=hpos)
        if problem is not None:
            raise StoreError(show_path(self.path), f"{problem}: events altered or damaged", HINT)
        if (watched if hpos else GENESIS) != hhash:
            raise StoreError(
                show_path(self.path),
                f"the event at position {hpos} is not the one its head file records: "
                "committed events were altered or replaced",
                HINT,
            )
        if not self.readonly and (head is None or end > hpos):
            self._write_head(end, h)

    def _write_head(self, pos: int, digest: bytes) -> None:
        write_head(self.path, pos, digest, durable=self._durable)

    def _chain_legacy(self) -> None:
        """Compute the chain of a store made before it (once, by the first writer to open it)."""
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            if "hash" not in {r[1] for r in db.execute("PRAGMA table_info(events)")}:
                db.execute("ALTER TABLE events ADD COLUMN hash BLOB")
            db.execute("DROP TRIGGER IF EXISTS events_append_only_u")
            prev, end = GENESIS, 0
            while rows := db.execute(ROWS_AFTER + " LIMIT 5000", (end,)).fetchall():
                hashes = []
                for row in rows:
                    if row[0] != end + 1:
                        raise StoreError(
                            show_path(self.path),
                            f"position {end + 1} is missing, so the store cannot be chained",
                            HINT,
                        )
                    try:
                        prev = sha256(prev + row_bytes(*row[:8])).digest()
                    except (TypeError, ValueError) as exc:
                        raise StoreError(
                            show_path(self.path), f"position {row[0]} is not an event row ({exc})"
                        ) from None
                    end = row[0]
                    hashes.append((prev, end))
                db.executemany("UPDATE events SET hash = ? WHERE pos = ?", hashes)
            db.execute(_TRIGGER_U)
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        if read_head(self.path) is None:
            self._write_head(end, prev)
        log.info("event store %s: hash chain computed over %d events", show_path(self.path), end)

    def close(self) -> None:
        self._db.close()

    def _refuse_readonly(self) -> None:
        if self.readonly:
            raise StoreWriteError(show_path(self.path), "the store was opened read-only")

    def put_meta(self, key: str, value: str) -> None:
        self._refuse_readonly()
        self._db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value))

    @_reading
    def get_meta(self, key: str) -> str | None:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else row[0]

    def write(self, events: Sequence[Event], dead: Sequence[DeadLetter] = ()) -> int:
        self._refuse_readonly()
        try:
            datas: list[str] | None = codec.dumps_many([e.data for e in events])
        except (TypeError, ValueError, RecursionError):
            datas = None  # the checked path below names the event
        dead_rows = [_dead_row(d) for d in dead]
        db = self._db
        rows: list[tuple[Any, ...]] | None = None
        try:
            db.execute("BEGIN IMMEDIATE")
            try:
                if datas is not None:
                    try:
                        pos, h = _last(db)
                        rows = _chain_rows(events, datas, pos, h)
                        before = db.total_changes
                        _insert(db, rows)
                        if db.total_changes - before != len(rows) or (
                            rows and _last(db) != (pos + len(rows), rows[-1][7])
                        ):  # a row ignored (a copy, or a value SQLite stores as NULL)
                            raise sqlite3.IntegrityError("positions are not the chain's")
                    except (sqlite3.Error, OverflowError, TypeError, ValueError):
                        # a (source, seq) already stored, or an event that cannot be stored:
                        # again, one event at a time (UnicodeEncodeError is a ValueError)
                        db.execute("ROLLBACK")
                        db.execute("BEGIN IMMEDIATE")
                        rows = None
                if rows is None:
                    rows = self._checked_rows(events, *_last(db))
                if dead_rows:
                    db.executemany(
                        "INSERT INTO dead_letters (received, source, seq, reason, raw) "
                        "VALUES (?, ?, ?, ?, ?)",
                        dead_rows,
                    )
                db.execute("COMMIT")
            except BaseException:
                if db.in_transaction:
                    db.execute("ROLLBACK")
                raise
        except sqlite3.DatabaseError as exc:
            raise StoreWriteError(show_path(self.path), str(exc)) from None
        if rows:
            try:
                self._write_head(_last(db)[0], rows[-1][7])
            except OSError as exc:  # committed: the store is ahead of its head, which is safe
                log.warning("event store %s: head file not updated (%s)", show_path(self.path), exc)
        return len(rows)

    def _checked_rows(self, events: Sequence[Event], pos: int, h: bytes) -> list[tuple]:
        """Store the events not stored yet (first copy wins) one at a time, chained from
        (pos, h); StoreWriteError names the first event that cannot be stored. Returns the rows
        inserted."""
        db, seen, rows = self._db, set(), []
        for e in events:
            problem = _unstorable(e)
            if problem is not None:
                raise StoreWriteError(_event_name(e), problem)
            key = (e.source, e.seq)
            if (
                key in seen
                or db.execute("SELECT 1 FROM events WHERE source = ? AND seq = ?", key).fetchone()
            ):
                continue
            seen.add(key)
            data = codec.dumps(e.data)
            pos += 1
            b = row_bytes(pos, e.source, e.seq, e.id, e.time, e.type, e.subject, data)
            h = sha256(h + b).digest()
            row = (e.source, e.seq, e.id, e.time, e.type, e.subject, data, h)
            try:
                db.execute(_INSERT_AT, (*row, pos))
            except (sqlite3.Error, OverflowError, ValueError) as exc:
                raise StoreWriteError(_event_name(e), f"SQLite refused it ({exc})") from None
            rows.append(row)
        return rows

    def read_positioned(
        self, since=None, until=None, type=None, subject=None, after=0, limit=None
    ) -> Iterator[tuple[int, Event]]:
        if any(isinstance(v, str) and not _encodes(v) for v in (type, subject)):
            return  # a lone surrogate: no stored event can have it (it never encodes)
        where, args = ["pos > ?"], [after]
        for clause, value in (
            ("time >= ?", since),
            ("time <= ?", until),
            ("type = ?", type),
            ("subject = ?", subject),
        ):
            if value is not None:
                where.append(clause)
                args.append(value)
        args.append(-1 if limit is None else limit)
        sql = (
            "SELECT pos, id, source, seq, time, type, subject, data FROM events "
            f"WHERE {' AND '.join(where)} ORDER BY pos LIMIT ?"
        )
        loads = json.loads
        try:
            cur = self._db.cursor()
            cur.execute(sql, args)
            while rows := cur.fetchmany(5000):
                for pos, i, src, seq, t, ty, subj, data in rows:
                    d = loads(data)
                    if "\\ud" in data:  # a store from before the limits may hold a lone one
                        d = _whole_text(d)
                    yield pos, Event(i, src, seq, t, ty, subj, d)
        except sqlite3.DatabaseError as exc:
            raise self._unreadable(exc) from None
        except ValueError as exc:  # data that is not JSON: not as written (verify finds where)
            raise self._unreadable(f"an event's data is not JSON: {exc}") from None

    @_reading
    def count(self) -> int:
        return self._db.execute("SELECT COALESCE(MAX(pos), 0) FROM events").fetchone()[0]

    @_reading
    def dead_letters(self, limit: int | None = None) -> list[DeadLetter]:
        rows = self._db.execute(
            "SELECT reason, raw, source, seq, received FROM dead_letters ORDER BY id LIMIT ?",
            (-1 if limit is None else limit,),
        ).fetchall()
        return [DeadLetter(*r) for r in rows]

    @_reading
    def dead_letter_count(self) -> int:
        return self._db.execute("SELECT COUNT(*) FROM dead_letters").fetchone()[0]

    def save_snapshot(self, state: TwinState, pos: int) -> None:
        self._refuse_readonly()
        text = state.to_json()
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            db.execute(
                "INSERT OR REPLACE INTO snapshots (pos, clock, state) VALUES (?, ?, ?)",
                (pos, state.clock, text),
            )
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    @_reading
    def snapshot(self, at: float | None = None) -> tuple[int, TwinState] | None:
        if at is None:
            row = self._db.execute(
                "SELECT pos, state FROM snapshots ORDER BY pos DESC LIMIT 1"
            ).fetchone()
        else:
            row = self._db.execute(
                "SELECT pos, state FROM snapshots WHERE clock <= ? ORDER BY pos DESC LIMIT 1",
                (at,),
            ).fetchone()
        return None if row is None else (row[0], TwinState.from_json(row[1]))

    @_reading
    def last_seqs(self) -> dict[str, int]:
        out = dict(self._db.execute("SELECT source, MAX(seq) FROM events GROUP BY source"))
        for src, seq in self._db.execute(
            "SELECT source, MAX(seq) FROM dead_letters WHERE source IS NOT NULL AND seq IS NOT NULL "
            "GROUP BY source"
        ):
            out[src] = max(out.get(src, 0), seq)
        return out


_URL_SCHEMES = ("postgresql://", "postgres://")


def is_url(spec: object) -> bool:
    """Whether a --store / TWIN_STORE value names a database server rather than a file."""
    return isinstance(spec, str) and "://" in spec


def store_arg(text: str) -> str | Path:
    """An argparse ``type`` for --store: a URL stays text (Path would fold its //), else a path."""
    return text if is_url(text) else Path(text)


def open_store(
    spec: str | os.PathLike, *, synchronous: str = "FULL", readonly: bool = False
) -> EventStore:
    """The event store a user named (``--store``, ``TWIN_STORE``): a file path opens the SQLite
    store (the default), ``postgresql://user:password@host:port/database`` the PostgreSQL one
    (``synchronous`` applies to SQLite; PostgreSQL commits as its server is configured). Bad
    configuration is one StoreError line."""
    if is_url(spec):
        text = str(spec)
        if not text.lower().startswith(_URL_SCHEMES):
            from twin.live.store_pg import mask

            scheme = mask(text).split("://", 1)[0][:20]
            raise StoreError(
                mask(text),
                f"names a {scheme!r} server",
                "accepted: a file path (SQLite) or postgresql://user:password@host:port/database",
            )
        from twin.live.store_pg import PostgresStore

        return PostgresStore(text, readonly=readonly)
    return SQLiteStore(spec, synchronous=synchronous, readonly=readonly)


def glob_escape(name: str) -> str:
    """``name`` with glob's special characters taken literally."""
    return re.sub(r"([*?\[])", r"[\1]", name)


def _last(db: sqlite3.Connection) -> tuple[int, bytes]:
    row = db.execute(_LAST).fetchone()
    return (0, GENESIS) if row is None else (row[0], row[1])


def _chain_rows(events: Sequence[Event], datas: list[str], pos: int, h: bytes) -> list[tuple]:
    """The rows of ``events`` for positions pos+1, pos+2, ... chained from ``h`` (the hot path:
    ``row_bytes`` inlined, one hash of about a hundred bytes per event)."""
    rows = []
    append, sha = rows.append, sha256
    for e, d in zip(events, datas):
        pos += 1
        s, q, i, t, ty, su = e.source, e.seq, e.id, e.time, e.type, e.subject
        b = f"{pos:d}\0{s}\0{q:d}\0{i}\0{float(t)!r}\0{ty}\0{su}\0{d}".encode()
        if b.count(0) != 7:  # a NUL inside a field: the length-prefixed form
            b = row_bytes(pos, s, q, i, t, ty, su, d)
        h = sha(h + b).digest()
        append((s, q, i, t, ty, su, d, h))
    return rows


def _insert(db: sqlite3.Connection, rows: list[tuple]) -> None:
    full = len(rows) - len(rows) % _PER_INSERT
    if full:  # rows in the given order, so positions follow arrival
        flat = chain.from_iterable
        db.executemany(
            _INSERT_MANY,
            [tuple(flat(rows[i : i + _PER_INSERT])) for i in range(0, full, _PER_INSERT)],
        )
    if full < len(rows):
        db.executemany(_INSERT_ONE, rows[full:])


def _event_name(e: Any) -> str:
    src, seq = getattr(e, "source", None), getattr(e, "seq", None)
    return f"event (source {short_text(src)}, seq {short_text(seq)})"


def _unstorable(e: Event) -> str | None:
    """Why SQLite could not store this event as a row (None: it can)."""
    for name in ("id", "source", "type", "subject"):
        v = getattr(e, name)
        if not isinstance(v, str):
            return f"{name} is {short_text(v)}, not text"
        try:
            v.encode()
        except UnicodeEncodeError:
            return f"{name} {short_text(v)} holds a lone surrogate (accepted: valid Unicode text)"
    if type(e.seq) is not int:
        return f"seq is {short_text(e.seq)}, not an integer"
    if not _I64_MIN <= e.seq <= _I64_MAX:
        return f"seq is {short_text(e.seq)}; accepted: -2**63 to 2**63-1"
    t = e.time
    if type(t) not in (int, float):
        return f"time is {short_text(t)}, not a number"
    try:
        if float(t) != float(t):
            return "time is NaN; accepted: a number of seconds"
    except OverflowError:
        return f"time is {short_text(t)}; accepted: a number of seconds"
    try:
        codec.dumps(e.data)
    except (TypeError, ValueError, RecursionError) as exc:
        return f"data cannot be written as JSON ({short_text(str(exc))})"
    return None


def _text(v: object) -> str:
    """Text SQLite stores whatever ``v`` is: lone surrogates backslash-escaped."""
    if not isinstance(v, str):
        v = short_text(v)
    return v.encode("utf-8", "backslashreplace").decode()


def _dead_row(d: DeadLetter) -> tuple:
    """A dead letter as a row that can always be stored: nothing in it makes ``write`` fail."""
    reason, seq, received = _text(d.reason), d.seq, d.received
    if seq is not None and (type(seq) is not int or not _I64_MIN <= seq <= _I64_MAX):
        reason += f" (seq {short_text(seq)} is not a 64-bit integer: stored as none)"
        seq = None
    try:
        received = float(received)
        if received != received:
            received = 0.0
    except (TypeError, ValueError, OverflowError):
        received = 0.0
    source = None if d.source is None else _text(d.source)
    return (received, source, seq, reason, _text(d.raw))


def _whole_text(value: Any) -> Any:
    """``value`` with every lone surrogate in its strings replaced by "?", so that what a
    legacy store holds can be served as UTF-8 (new events are refused at the door)."""
    if isinstance(value, str):
        return value.encode("utf-8", "replace").decode("utf-8") if not value.isascii() else value
    if isinstance(value, dict):
        return {_whole_text(k): _whole_text(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_whole_text(v) for v in value]
    return value


def _encodes(text: str) -> bool:
    """Can ``text`` be stored as UTF-8 (no lone surrogate)?"""
    try:
        text.encode("utf-8")
        return True
    except UnicodeEncodeError:
        return False
