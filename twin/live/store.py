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
import hashlib
import json
import logging
import os
import re
import sqlite3
import stat
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from itertools import chain
from pathlib import Path
from typing import Any, TypeVar

from twin.errors import InputError, StoreError, StoreWriteError
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


# ------------------------------------------------------------------ hash chain and head file

log = logging.getLogger(__name__)

GENESIS = bytes(32)  # h_0, the hash "before" position 1
_sha256 = hashlib.sha256
_I64_MIN, _I64_MAX = -(2**63), 2**63 - 1
_HINT = "restore the store and its .head file from a backup, or see `twin store verify --help`"


def row_bytes(
    pos: int, source: str, seq: int, id: str, time: float, type: str, subject: str, data: str
) -> bytes:
    """The canonical bytes of one stored event row, as the chain hashes them: the fields as text
    (integers in decimal, time as Python's shortest round-trip ``repr`` of the float) joined by
    NUL, UTF-8. ``data`` is JSON text, which holds no raw NUL; if another field does, every field
    is written as ``<byte length>:<bytes>`` after a 0x01 instead (NUL-joined bytes start with a
    digit), so two different rows never give the same bytes. Raises UnicodeEncodeError (a lone
    surrogate), TypeError or ValueError (a field of the wrong type)."""
    b = f"{pos:d}\0{source}\0{seq:d}\0{id}\0{float(time)!r}\0{type}\0{subject}\0{data}".encode()
    if b.count(0) == 7:
        return b
    fields = (f"{pos:d}", source, f"{seq:d}", id, repr(float(time)), type, subject, data)
    return b"\x01" + b"".join(b"%d:%s" % (len(x), x) for x in (f.encode() for f in fields))


def head_path(path: str | Path) -> Path:
    """Where the head of the store at ``path`` is kept: ``<path>.head``."""
    return Path(f"{os.fspath(path)}.head")


_HEAD_RE = re.compile(r"twin-store-head 1\n(0|[1-9][0-9]{0,18}) ([0-9a-f]{64})\n")


def read_head(path: str | Path) -> tuple[int, bytes] | None:
    """(position, hash) from the head file of the store at ``path``; None when there is none."""
    hp = head_path(path)
    try:
        with open(hp, "rb") as f:
            raw = f.read(200)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise StoreError(_show(hp), f"head file cannot be read ({exc.strerror})", _HINT) from None
    m = _HEAD_RE.fullmatch(raw.decode("ascii", "replace"))
    if m is None:
        raise StoreError(
            _show(hp),
            "is not a twin store head file (accepted: 'twin-store-head 1', then a position and "
            "a SHA-256 in hex)",
            _HINT,
        )
    return int(m[1]), bytes.fromhex(m[2])


def write_head(path: str | Path, pos: int, digest: bytes, *, durable: bool = True) -> None:
    """Replace the head file atomically: write a temporary file, fsync it (``durable``), rename it
    over the head. The directory is fsynced when the head is new: a rename lost by a power cut
    leaves the previous head, which a store ahead of its head accepts (docs/store.md)."""
    hp = head_path(path)
    new = not hp.exists()
    tmp = hp.with_name(f"{hp.name}.{os.getpid()}-{threading.get_ident()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        try:
            os.write(fd, f"twin-store-head 1\n{pos:d} {digest.hex()}\n".encode())
            if durable:
                os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, hp)
    except BaseException:
        _remove(tmp)
        raise
    if durable and new:
        _fsync_dir(hp.parent)


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _show(path: object) -> str:
    """A path as printable text (undecodable bytes as backslash escapes)."""
    return os.fspath(path).encode("utf-8", "backslashreplace").decode()  # type: ignore[arg-type]


_ROWS_AFTER = (
    "SELECT pos, source, seq, id, time, type, subject, data, hash FROM events "
    "WHERE pos > ? ORDER BY pos"
)


def _walk(
    db: sqlite3.Connection, after: int = 0, watch: int = -1
) -> tuple[int, bytes, bytes | None, str | None, int | None]:
    """Recompute the chain over the rows after position ``after``, continuing from the hash
    stored there (h_0 when 0). Returns (last position that checked out, its hash, the hash at
    position ``watch`` if reached, the first problem or None, the position it is at)."""
    prev = GENESIS
    if after:
        row = db.execute("SELECT hash FROM events WHERE pos = ?", (after,)).fetchone()
        if row is None or not isinstance(row[0], bytes) or len(row[0]) != 32:
            what = "is missing" if row is None else "has no hash"
            return after - 1, GENESIS, None, f"position {after} {what}", after
        prev = row[0]
    end, watched = after, prev if watch == after else None
    cur = db.execute(_ROWS_AFTER, (after,))
    try:
        while rows := cur.fetchmany(2000):
            for row in rows:
                pos = row[0]
                if pos != end + 1:
                    return end, prev, watched, f"position {end + 1} is missing", end + 1
                try:
                    h = _sha256(prev + row_bytes(*row[:8])).digest()
                except (TypeError, ValueError) as exc:
                    return end, prev, watched, f"position {pos} is not an event row ({exc})", pos
                if h != row[8]:
                    what = "has no hash" if row[8] is None else "does not match its hash"
                    return end, prev, watched, f"the event at position {pos} {what}", pos
                prev, end = h, pos
                if pos == watch:
                    watched = h
    except sqlite3.DatabaseError as exc:
        return end, prev, watched, f"cannot be read after position {end} ({exc})", end + 1
    return end, prev, watched, None, None


# ------------------------------------------------------------------ opening a file

_COLUMNS = {"pos", "source", "seq", "id", "time", "type", "subject", "data"}
_MAGIC = b"SQLite format 3\x00"
_NOT_A_STORE = "give the path of a store made by `twin ingest` or `twin up --store`"


def _usable(path: str | Path) -> Path:
    """``path`` as a Path, or StoreError when no file can have that name."""
    try:
        p = Path(path)
        if "\0" in os.fspath(p):
            raise ValueError("NUL")
        os.fsencode(p)
    except (TypeError, ValueError):  # UnicodeEncodeError: a lone surrogate
        raise StoreError(
            _short(path), "is not a usable file name (it holds NUL or a lone surrogate)"
        ) from None
    return p


def _connect(path: Path, *, readonly: bool) -> sqlite3.Connection:
    """A connection to the existing SQLite database at ``path``; StoreError for anything else."""
    try:
        st = path.stat()
    except FileNotFoundError:
        raise StoreError(_show(path), "no such event store", _NOT_A_STORE) from None
    except OSError as exc:
        raise StoreError(_show(path), f"cannot be read ({exc.strerror})") from None
    if not stat.S_ISREG(st.st_mode):
        raise StoreError(_show(path), "is not a file", _NOT_A_STORE)
    if st.st_size == 0:
        raise StoreError(
            _show(path),
            "is an empty file (0 bytes), not an event store",
            "to start a new store, give a path where no file exists (or delete this one)",
        )
    try:
        with open(path, "rb") as f:
            magic = f.read(len(_MAGIC))
    except OSError as exc:
        raise StoreError(_show(path), f"cannot be read ({exc.strerror})") from None
    if magic != _MAGIC:
        raise StoreError(
            _show(path), "is not an SQLite database, so not an event store", _NOT_A_STORE
        )
    try:
        if readonly:
            uri = path.absolute().as_uri() + "?mode=ro"
            return sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False)
        return sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    except sqlite3.Error as exc:
        raise StoreError(_show(path), f"cannot be opened ({exc})") from None


def _create(path: Path) -> None:
    """Make a new, empty store at ``path`` whole or not at all: built under a temporary name
    and linked into place, so a crash never leaves a half-made store (nor an empty file)."""
    if not path.parent.is_dir():
        raise StoreError(_show(path), "cannot be created: its folder does not exist")
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
        _fsync_dir(path.parent)
    except (sqlite3.Error, OSError) as exc:
        raise StoreError(_show(path), f"cannot be created ({exc})") from None
    finally:
        _remove(tmp, Path(f"{tmp}-wal"), Path(f"{tmp}-shm"))


def _remove(*paths: Path) -> None:
    """Delete temporary files that may or may not exist (a cleanup never raises)."""
    for p in paths:
        try:
            p.unlink(missing_ok=True)
        except OSError:
            pass


def _kind(db: sqlite3.Connection, path: Path) -> str:
    """'empty' (no tables), 'legacy' (a store made before the chain) or 'chained'."""
    names = sorted(n for (n,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'"))
    if not names:
        return "empty"
    if "events" not in names:
        shown = ", ".join(n[:40] for n in names[:5]) + (", ..." if len(names) > 5 else "")
        raise StoreError(
            _show(path),
            f"is an SQLite database but not a twin event store (no events table; it has {shown})",
            _NOT_A_STORE,
        )
    cols = {r[1] for r in db.execute("PRAGMA table_info(events)")}
    if missing := _COLUMNS - cols:
        raise StoreError(
            _show(path),
            "is an SQLite database but not a twin event store (its events table has no "
            f"{', '.join(sorted(missing))})",
            _NOT_A_STORE,
        )
    return "chained" if "hash" in cols else "legacy"


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
        self.path = _usable(path)
        self.readonly = readonly
        self._durable = sync != "NORMAL"  # NORMAL: the head is not fsynced either
        if not readonly and not os.path.lexists(self.path):
            _create(self.path)
        self._db = _connect(self.path, readonly=readonly)
        try:
            self._db.execute(f"PRAGMA synchronous={sync}")
            kind = _kind(self._db, self.path)
            if readonly and kind == "empty":
                raise StoreError(
                    _show(self.path), "is an SQLite database with no tables, not an event store"
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
                for stale in self.path.parent.glob(
                    f"{glob_escape(head_path(self.path).name)}.*.tmp"
                ):
                    stale.unlink(missing_ok=True)  # left by a process killed mid head write
        except sqlite3.DatabaseError as exc:
            self._db.close()
            raise self._unreadable(exc) from None
        except OSError as exc:  # the head file or a temporary one
            self._db.close()
            raise StoreError(
                _show(self.path), f"its head file cannot be written ({exc.strerror})"
            ) from None
        except BaseException:
            self._db.close()
            raise

    def _unreadable(self, exc: object) -> StoreError:
        return StoreError(
            _show(self.path),
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
                    _show(self.path),
                    f"holds {last_pos} events but its head file {head_path(self.path).name} "
                    "is missing",
                    _HINT,
                )
            hpos, hhash = 0, GENESIS
        else:
            hpos, hhash = head
        if hpos > last_pos:
            raise StoreError(
                _show(self.path),
                f"ends at position {last_pos} but its head file says {hpos}: committed events "
                "were lost (a deleted or truncated -wal file, or an older copy of the database)",
                _HINT
                + (", or to start a new store delete the .head file too" if not last_pos else ""),
            )
        end, h, watched, problem, _ = _walk(self._db, max(hpos - 1, 0), watch=hpos)
        if problem is not None:
            raise StoreError(_show(self.path), f"{problem}: events altered or damaged", _HINT)
        if (watched if hpos else GENESIS) != hhash:
            raise StoreError(
                _show(self.path),
                f"the event at position {hpos} is not the one its head file records: "
                "committed events were altered or replaced",
                _HINT,
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
            while rows := db.execute(_ROWS_AFTER + " LIMIT 5000", (end,)).fetchall():
                hashes = []
                for row in rows:
                    if row[0] != end + 1:
                        raise StoreError(
                            _show(self.path),
                            f"position {end + 1} is missing, so the store cannot be chained",
                            _HINT,
                        )
                    try:
                        prev = _sha256(prev + row_bytes(*row[:8])).digest()
                    except (TypeError, ValueError) as exc:
                        raise StoreError(
                            _show(self.path), f"position {row[0]} is not an event row ({exc})"
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
        log.info("event store %s: hash chain computed over %d events", _show(self.path), end)

    def close(self) -> None:
        self._db.close()

    def _refuse_readonly(self) -> None:
        if self.readonly:
            raise StoreWriteError(_show(self.path), "the store was opened read-only")

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
            raise StoreWriteError(_show(self.path), str(exc)) from None
        if rows:
            try:
                self._write_head(_last(db)[0], rows[-1][7])
            except OSError as exc:  # committed: the store is ahead of its head, which is safe
                log.warning("event store %s: head file not updated (%s)", _show(self.path), exc)
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
            h = _sha256(h + b).digest()
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
                    yield pos, Event(i, src, seq, t, ty, subj, loads(data))
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
    append, sha = rows.append, _sha256
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
    return f"event (source {_short(src)}, seq {_short(seq)})"


def _short(v: object) -> str:
    """A value for a message: repr'd, lone surrogates escaped, at most 60 characters."""
    if type(v) is int and not _I64_MIN <= v <= _I64_MAX:
        return f"an integer of {v.bit_length()} bits"
    try:
        text = repr(v)
    except Exception:  # noqa: BLE001 - a message must not fail
        text = object.__repr__(v)
    text = text.encode("utf-8", "backslashreplace").decode()
    return text if len(text) <= 60 else text[:57] + "..."


def _unstorable(e: Event) -> str | None:
    """Why SQLite could not store this event as a row (None: it can)."""
    for name in ("id", "source", "type", "subject"):
        v = getattr(e, name)
        if not isinstance(v, str):
            return f"{name} is {_short(v)}, not text"
        try:
            v.encode()
        except UnicodeEncodeError:
            return f"{name} {_short(v)} holds a lone surrogate (accepted: valid Unicode text)"
    if type(e.seq) is not int:
        return f"seq is {_short(e.seq)}, not an integer"
    if not _I64_MIN <= e.seq <= _I64_MAX:
        return f"seq is {_short(e.seq)}; accepted: -2**63 to 2**63-1"
    t = e.time
    if type(t) not in (int, float):
        return f"time is {_short(t)}, not a number"
    try:
        if float(t) != float(t):
            return "time is NaN; accepted: a number of seconds"
    except OverflowError:
        return f"time is {_short(t)}; accepted: a number of seconds"
    try:
        codec.dumps(e.data)
    except (TypeError, ValueError, RecursionError) as exc:
        return f"data cannot be written as JSON ({_short(str(exc))})"
    return None


def _text(v: object) -> str:
    """Text SQLite stores whatever ``v`` is: lone surrogates backslash-escaped."""
    if not isinstance(v, str):
        v = _short(v)
    return v.encode("utf-8", "backslashreplace").decode()


def _dead_row(d: DeadLetter) -> tuple:
    """A dead letter as a row that can always be stored: nothing in it makes ``write`` fail."""
    reason, seq, received = _text(d.reason), d.seq, d.received
    if seq is not None and (type(seq) is not int or not _I64_MIN <= seq <= _I64_MAX):
        reason += f" (seq {_short(seq)} is not a 64-bit integer: stored as none)"
        seq = None
    try:
        received = float(received)
        if received != received:
            received = 0.0
    except (TypeError, ValueError, OverflowError):
        received = 0.0
    source = None if d.source is None else _text(d.source)
    return (received, source, seq, reason, _text(d.raw))


# ------------------------------------------------------------------ verify and backup


@dataclass(frozen=True, slots=True)
class Verdict:
    """What ``verify`` found: the events at positions 1..``count`` chain intact up to ``hash``;
    ``problem`` is the first thing wrong (None: the store is intact), at ``position`` if known."""

    path: Path
    count: int
    hash: bytes
    problem: str | None = None
    position: int | None = None

    @property
    def ok(self) -> bool:
        return self.problem is None

    def line(self) -> str:
        where = _show(self.path)
        if self.ok:
            return f"OK {where}: {self.count} events, chain intact, head {self.hash.hex()}"
        at = f" at position {self.position}" if self.position is not None else ""
        return f"BROKEN {where}{at}: {self.problem} ({self.count} events intact before it)"


def verify(path: str | Path, *, head: bool = True) -> Verdict:
    """Walk the whole chain of the store at ``path`` (read-only; fine beside a writer), compare
    it with the head file (``head``) and run SQLite's quick check. StoreError if ``path`` is not
    a readable store at all."""
    path = _usable(path)
    hd = read_head(path) if head else None  # before the database: writers move it after commit
    db = _connect(path, readonly=True)
    try:
        kind = _kind(db, path)
        if kind != "chained":
            problem = (
                "has no tables, so no events"
                if kind == "empty"
                else "has no hash chain yet "
                "(made before chained stores): open it for writing once, or run "
                "`twin store verify --reset-head`, to compute it"
            )
            return Verdict(path, 0, GENESIS, problem)
        hpos = -1 if hd is None else hd[0]
        end, h, watched, problem, at = _walk(db, 0, watch=hpos)
        if problem is not None:
            return Verdict(path, end, h, problem, at)
        if head and hd is None and end:
            return Verdict(path, end, h, f"its head file {head_path(path).name} is missing")
        if hd is not None:
            if hpos > end:
                return Verdict(
                    path,
                    end,
                    h,
                    f"the head file says position {hpos} but the store ends at {end}: "
                    "committed events were lost",
                    end + 1,
                )
            if (watched if hpos else GENESIS) != hd[1]:
                return Verdict(
                    path, end, h, "the event there is not the one the head file records", hpos
                )
        check = db.execute("PRAGMA quick_check").fetchone()
        if check is None or check[0] != "ok":
            found = "no answer" if check is None else str(check[0])[:200]
            return Verdict(path, end, h, f"SQLite's integrity check: {found}")
        return Verdict(path, end, h)
    except sqlite3.DatabaseError as exc:
        raise StoreError(_show(path), f"cannot be read as an event store ({exc})", _HINT) from None
    finally:
        db.close()


def reset_head(path: str | Path) -> Verdict:
    """Accept the store at ``path`` as it is: if its whole chain verifies, write its head file
    at its last event (after a loss the operator has accepted, or for a copy without its head).
    A store made before the chain is chained first. Returns the verdict; the head is written
    only when it is OK."""
    if not os.path.lexists(_usable(path)):  # accepting a store never creates one
        raise StoreError(_show(path), "no such event store", _NOT_A_STORE)
    store = SQLiteStore.__new__(SQLiteStore)
    store._open(path, "FULL", False, check_head=False)
    store.close()
    verdict = verify(path, head=False)
    if verdict.ok:
        write_head(path, verdict.count, verdict.hash)
    return verdict


def backup(src: str | Path, dest: str | Path) -> Verdict:
    """Copy the store at ``src`` to ``dest`` with SQLite's online backup (a consistent copy
    while a writer goes on), verify the copy, and write its head file. ``dest`` must be new."""
    src, dest = _usable(src), _usable(dest)
    for p in (dest, head_path(dest)):
        if os.path.lexists(p):
            raise StoreError(
                _show(p), "already exists", "give a new path (a backup never overwrites)"
            )
    if not dest.parent.is_dir():
        raise StoreError(_show(dest), "cannot be created: its folder does not exist")
    tmp = dest.with_name(f".{dest.name}.{os.getpid()}-{threading.get_ident()}.partial")
    try:
        with SQLiteStore(src, readonly=True) as store:  # refuses a source behind its head
            if not store.chained:
                raise StoreError(
                    _show(src),
                    "has no hash chain yet (made before chained stores)",
                    "open it for writing once, or run `twin store verify --reset-head`",
                )
            out = sqlite3.connect(tmp)
            try:
                store._db.backup(out)
                out.execute("PRAGMA journal_mode=WAL")
            except sqlite3.Error as exc:
                raise StoreError(_show(dest), f"backup failed ({exc})") from None
            finally:
                out.close()
        verdict = verify(tmp, head=False)
        if not verdict.ok:
            raise StoreError(_show(dest), f"the copy does not verify: {verdict.problem}", _HINT)
        try:
            os.link(tmp, dest)
        except FileExistsError:
            raise StoreError(_show(dest), "already exists", "give a new path") from None
        except OSError:  # a file system without hard links
            os.replace(tmp, dest)
    finally:
        _remove(tmp, Path(f"{tmp}-wal"), Path(f"{tmp}-shm"), Path(f"{tmp}-journal"))
    write_head(dest, verdict.count, verdict.hash)
    _fsync_dir(dest.parent)
    return replace(verdict, path=dest)
