"""Durable event storage behind a small interface, with an in-memory and a SQLite backend.

Every backend keeps: an append-only event log in arrival order (each event at a position
``pos`` = 1, 2, ...; (source, seq) unique, a second copy is ignored), dead letters with their
reason, and snapshots of the twin state tagged with the position they include. ``write`` is
atomic and durable on return, so the synchroniser acknowledges only after it returns.
``state_at(t)`` = the latest snapshot whose clock is <= t, plus a replay of the later events with
time <= t. The contract test in ``tests/live/test_store.py`` runs against every backend.
"""

from __future__ import annotations

import json
import sqlite3
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from itertools import chain
from pathlib import Path

from twin.errors import InputError
from twin.live import codec
from twin.live.catalog import Catalog
from twin.live.events import Event
from twin.live.state import TwinState, apply


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


_INSERT_ONE = (
    "INSERT OR IGNORE INTO events (source, seq, id, time, type, subject, data) "
    "VALUES (?, ?, ?, ?, ?, ?, ?)"
)
# One statement inserting 50 rows costs SQLite about 30 % less per row than 50 executions of the
# one-row statement (measured: 9.5 -> 6.6 µs of CPU per row); OR IGNORE still applies row by row.
_PER_INSERT = 50
_INSERT_MANY = _INSERT_ONE + ", (?, ?, ?, ?, ?, ?, ?)" * (_PER_INSERT - 1)

# Indexes: (source, seq) is unique, and subject filters use events_subject. There is no index
# on time: every read asks for pos > ? in pos order, so SQLite walks the rowid range and filters
# time on the way (tests/live/test_store.py checks the plans); the time index it never used cost
# about 1,700 instructions per insert. Stores made before keep theirs, unused.
_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    pos INTEGER PRIMARY KEY,
    source TEXT NOT NULL,
    seq INTEGER NOT NULL,
    id TEXT NOT NULL,
    time REAL NOT NULL,
    type TEXT NOT NULL,
    subject TEXT NOT NULL,
    data TEXT NOT NULL,
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
CREATE TRIGGER IF NOT EXISTS events_append_only_u BEFORE UPDATE ON events
BEGIN SELECT RAISE(ABORT, 'the event log is append-only'); END;
CREATE TRIGGER IF NOT EXISTS events_append_only_d BEFORE DELETE ON events
BEGIN SELECT RAISE(ABORT, 'the event log is append-only'); END;
"""


class SQLiteStore(EventStore):
    """SQLite in WAL mode. ``synchronous=FULL`` (default) survives power loss; NORMAL survives a
    killed process (still WAL-durable per commit) and is faster."""

    def __init__(self, path: str | Path, *, synchronous: str = "FULL") -> None:
        if synchronous.upper() not in ("FULL", "NORMAL", "EXTRA"):
            raise InputError(
                "event store", [f"synchronous={synchronous!r}: accepted FULL, NORMAL, EXTRA"]
            )
        self.path = Path(path)
        try:
            self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute(f"PRAGMA synchronous={synchronous.upper()}")
            self._db.executescript(_SCHEMA)
        except sqlite3.DatabaseError as exc:
            raise InputError(
                "event store", [f"{self.path}: not a twin event store ({exc})"]
            ) from None

    def close(self) -> None:
        self._db.close()

    def put_meta(self, key: str, value: str) -> None:
        self._db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value))

    def get_meta(self, key: str) -> str | None:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else row[0]

    def write(self, events: Sequence[Event], dead: Sequence[DeadLetter] = ()) -> int:
        datas = codec.dumps_many([e.data for e in events])
        rows = [
            (e.source, e.seq, e.id, e.time, e.type, e.subject, d) for e, d in zip(events, datas)
        ]
        full = len(rows) - len(rows) % _PER_INSERT
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            before = db.total_changes
            if full:  # rows in the given order, so positions follow arrival as before
                flat = chain.from_iterable
                db.executemany(
                    _INSERT_MANY,
                    [tuple(flat(rows[i : i + _PER_INSERT])) for i in range(0, full, _PER_INSERT)],
                )
            if full < len(rows):
                db.executemany(_INSERT_ONE, rows[full:])
            n = db.total_changes - before
            if dead:
                db.executemany(
                    "INSERT INTO dead_letters (received, source, seq, reason, raw) VALUES (?, ?, ?, ?, ?)",
                    [(d.received, d.source, d.seq, d.reason, d.raw) for d in dead],
                )
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        return n

    def read_positioned(
        self, since=None, until=None, type=None, subject=None, after=0, limit=None
    ) -> Iterator[tuple[int, Event]]:
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
        cur = self._db.cursor()
        cur.execute(sql, args)
        while rows := cur.fetchmany(5000):
            for pos, i, src, seq, t, ty, subj, data in rows:
                yield pos, Event(i, src, seq, t, ty, subj, loads(data))

    def count(self) -> int:
        return self._db.execute("SELECT COALESCE(MAX(pos), 0) FROM events").fetchone()[0]

    def dead_letters(self, limit: int | None = None) -> list[DeadLetter]:
        rows = self._db.execute(
            "SELECT reason, raw, source, seq, received FROM dead_letters ORDER BY id LIMIT ?",
            (-1 if limit is None else limit,),
        ).fetchall()
        return [DeadLetter(*r) for r in rows]

    def dead_letter_count(self) -> int:
        return self._db.execute("SELECT COUNT(*) FROM dead_letters").fetchone()[0]

    def save_snapshot(self, state: TwinState, pos: int) -> None:
        text = state.to_json()
        self._db.execute("BEGIN IMMEDIATE")
        self._db.execute(
            "INSERT OR REPLACE INTO snapshots (pos, clock, state) VALUES (?, ?, ?)",
            (pos, state.clock, text),
        )
        self._db.execute("COMMIT")

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

    def last_seqs(self) -> dict[str, int]:
        out = dict(self._db.execute("SELECT source, MAX(seq) FROM events GROUP BY source"))
        for src, seq in self._db.execute(
            "SELECT source, MAX(seq) FROM dead_letters WHERE source IS NOT NULL AND seq IS NOT NULL "
            "GROUP BY source"
        ):
            out[src] = max(out.get(src, 0), seq)
        return out
