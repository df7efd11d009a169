"""The event store on PostgreSQL (psycopg 3): the shared store of a twin run as a service.

Same contract as the SQLite store (``tests/live/test_store.py`` runs against both): an
append-only log at positions 1, 2, ... with (source, seq) unique (a second copy is ignored, the
first copy in a batch wins), dead letters with their reason, snapshots, meta texts; each event row
carries the same hash chain h_n = SHA-256(h_{n-1} || row bytes) as the SQLite store.

A ``write`` is one transaction and a constant number of round trips whatever its size: lock the
log (one writer at a time, readers are never blocked), read the last position and hash, look up
which of the batch's keys are stored already (one query over arrays), ``COPY`` the new rows, insert
the dead letters, ``NOTIFY twin_events`` with the new last position, commit. The commit is
durable as the server is configured (``synchronous_commit``, on by default).

The schema is under version control: ``schema_version`` holds one row per migration applied;
opening a store applies the forward migrations it lacks (under an advisory lock, so servers
starting together migrate once) and refuses, with one line, a database whose schema is newer
than this code knows. Connection problems (wrong credentials, unreachable host, a URL that is
not one) are one StoreError line with the password masked. See docs/deploy.md.
"""

from __future__ import annotations

import json
import re
import threading
import time as _time
from collections.abc import Iterator, Sequence
from typing import Any

from twin.errors import StoreError, StoreWriteError
from twin.live import codec
from twin.live.events import Event
from twin.live.state import TwinState
from twin.live.store import (
    GENESIS,
    DeadLetter,
    EventStore,
    Verdict,
    _chain_rows,
    _dead_row,
    _event_name,
    _unstorable,
    _whole_text,
    row_bytes,
    sha256,
)

SCHEMA_VERSION = 1  # the newest schema this code knows
# Per store (a database may hold several, one per schema), both named by the events table's oid:
# the NOTIFY channel (payload: the last position of the transaction that committed) and the
# leader lock's key (a session advisory lock: the one ingesting server).
NOTIFY_CHANNEL = "twin_events"  # + "_<oid>"
_LEADER_LOCK = 0x74770002 << 32  # | oid
_MIGRATION_LOCK = 0x7477696E_0001  # pg_advisory_xact_lock key: one migrator at a time

# Forward migrations: _MIGRATIONS[v] takes a store from version v-1 to v. Never edit one that
# was released; add the next.
_MIGRATIONS: dict[int, str] = {
    1: """
CREATE TABLE events (
    pos bigint PRIMARY KEY,
    source text NOT NULL,
    seq bigint NOT NULL,
    id text NOT NULL,
    time double precision NOT NULL,
    type text NOT NULL,
    subject text NOT NULL,
    data text NOT NULL,
    hash bytea NOT NULL,
    UNIQUE (source, seq)
);
CREATE INDEX events_subject ON events (subject, pos);
CREATE TABLE dead_letters (
    id bigserial PRIMARY KEY,
    received double precision NOT NULL,
    source text,
    seq bigint,
    reason text NOT NULL,
    raw text NOT NULL
);
CREATE INDEX dead_letters_source ON dead_letters (source, seq) WHERE seq IS NOT NULL;
CREATE TABLE meta (key text PRIMARY KEY, value text NOT NULL);
CREATE TABLE snapshots (pos bigint PRIMARY KEY, clock double precision NOT NULL, state text NOT NULL);
CREATE FUNCTION twin_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN RAISE EXCEPTION 'the event log is append-only'; END $$;
CREATE TRIGGER events_append_only BEFORE UPDATE OR DELETE ON events
    FOR EACH ROW EXECUTE FUNCTION twin_append_only();
CREATE TRIGGER events_no_truncate BEFORE TRUNCATE ON events
    FOR EACH STATEMENT EXECUTE FUNCTION twin_append_only();
""",
}

_COLUMNS = "pos, source, seq, id, time, type, subject, data, hash"
_LAST = "SELECT pos, hash FROM events ORDER BY pos DESC LIMIT 1"
# The batch's keys go as one JSON text ([[source, seq], ...]): writing it takes orjson a tenth
# of the time psycopg takes to write two arrays (measured: 0.3 against 4.6 us per event).
_STORED = (
    "SELECT e.source, e.seq FROM events e JOIN "
    "(SELECT k->>0 AS source, (k->>1)::bigint AS seq FROM json_array_elements(%s::json) k) k "
    "ON e.source = k.source AND e.seq = k.seq"
)
# Highest seq per source by a skip scan of the (source, seq) index: one probe per source,
# not a pass over the whole log (what a restarting synchroniser asks first).
_LAST_SEQS = """
WITH RECURSIVE s(source) AS (
    (SELECT source FROM events ORDER BY source LIMIT 1)
    UNION ALL
    SELECT (SELECT e.source FROM events e WHERE e.source > s.source ORDER BY e.source LIMIT 1)
    FROM s WHERE s.source IS NOT NULL
)
SELECT source, (SELECT max(seq) FROM events e WHERE e.source = s.source)
FROM s WHERE source IS NOT NULL
"""
# a \\uXXXX escape of a surrogate that is not half of a pair
_LONE = re.compile(
    r"\\u[dD][89abAB][0-9a-fA-F]{2}(?!\\u[dD][c-fC-F])"
    r"|(?<!\\u[dD][89abAB][0-9a-fA-F]{2})\\u[dD][c-fC-F][0-9a-fA-F]{2}"
)
_PAGE = 5000  # rows per read query (reads page by position, holding no transaction open)
_HINT_CONNECT = "check the URL (postgresql://user:password@host:port/database) and the server"


def mask(url: str) -> str:
    """``url`` for messages: the password replaced by ***, lone surrogates escaped."""
    text = url.encode("utf-8", "backslashreplace").decode()
    text = re.sub(r"(://[^:/@?#]*:)[^@/?#]*@", r"\1***@", text)
    text = re.sub(r"(password=)[^&\s]*", r"\1***", text)
    return text if len(text) <= 200 else text[:200] + "..."


def _reason(exc: BaseException, url: str, shown: str) -> str:
    """psycopg's message as one line, without the URL's password."""
    text = str(exc).replace(url, shown).strip() or type(exc).__name__
    text = " ".join(line.strip() for line in text.splitlines() if line.strip())
    return text.encode("utf-8", "backslashreplace").decode()


class PostgresStore(EventStore):
    """An event store in a PostgreSQL database given by its URL
    (``postgresql://user:password@host:port/database``). ``readonly=True`` never writes, not
    even the schema, and refuses a database that holds no store or an older schema.

    One connection, used by one thread at a time (a lock): the API's reader threads share it
    with the ingest thread, each read page and each write transaction whole. A dropped
    connection is made again on the next call, trying for up to ``reconnect_for`` seconds
    (a server restart or fail-over) before the call fails; the first connection fails at once,
    so bad configuration is reported without delay."""

    def __init__(
        self,
        url: str,
        *,
        readonly: bool = False,
        connect_timeout: float = 10,
        reconnect_for: float = 15,
    ) -> None:
        try:
            import psycopg
        except ImportError:
            raise StoreError(
                "postgresql", "needs psycopg", "pip install 'twin[postgres]'"
            ) from None
        self._pg = psycopg
        if not isinstance(url, str):
            raise StoreError(repr(url)[:60], "is not a URL", _HINT_CONNECT)
        self.url, self.shown, self.readonly = url, mask(url), readonly
        self.path = self.shown  # what messages name, as the SQLite store's path
        self.chained = True
        self._timeout = connect_timeout
        self._reconnect_for = reconnect_for
        self.reconnects = 0  # connections made again after a drop
        self._lock = threading.RLock()
        self.leading = False  # holds the leader lock (try_lead)
        self._fenced = False  # led once: writes need the lock's connection
        self._db = self._connect()
        try:
            self.schema_version = self._schema()
            oid = self._db.execute("SELECT 'events'::regclass::oid::bigint").fetchone()[0]
            self.channel, self._leader_key = f"{NOTIFY_CHANNEL}_{oid}", _LEADER_LOCK | int(oid)
        except BaseException:
            self._db.close()
            raise

    # ------------------------------------------------------------ connection and schema
    def _connect(self) -> Any:
        psycopg = self._pg
        try:
            self.url.encode()
        except UnicodeEncodeError:
            raise StoreError(
                self.shown, "holds a lone surrogate (accepted: a URL in valid Unicode text)"
            ) from None
        try:
            kwargs: dict[str, Any] = {"autocommit": True}
            if "connect_timeout" not in self.url:
                kwargs["connect_timeout"] = max(1, round(self._timeout))
            db = psycopg.connect(self.url, **kwargs)
        except psycopg.ProgrammingError as exc:  # the URL does not parse
            raise StoreError(
                self.shown, f"is not a PostgreSQL URL ({_reason(exc, self.url, self.shown)})",
                _HINT_CONNECT,
            ) from None  # fmt: skip
        except (psycopg.Error, ValueError, OSError) as exc:
            raise StoreError(
                self.shown, f"cannot connect ({_reason(exc, self.url, self.shown)})", _HINT_CONNECT
            ) from None
        if self.readonly:
            db.execute("SET default_transaction_read_only = on")
        return db

    def _conn(self) -> Any:
        """The connection, made again if the server dropped it (a restart, a fail-over); the
        leader lock, held by the old connection, is gone with it."""
        if self._db.closed or self._db.broken:
            self.leading = False
            deadline, pause = _time.monotonic() + self._reconnect_for, 0.1
            while True:  # a restart or fail-over takes seconds: ride it out, then give up
                try:
                    self._db = self._connect()
                    self.reconnects += 1
                    break
                except StoreError:
                    if _time.monotonic() + pause > deadline:
                        raise
                    _time.sleep(pause)
                    pause = min(2 * pause, 1.0)
        return self._db

    def try_lead(self) -> bool:
        """Become the one server that ingests into this store, if none is: a session advisory
        lock held by this store's connection. PostgreSQL releases it when that connection ends,
        a killed process's included, so a follower's next try takes over. Once a store has led,
        its writes need the lock: a leader whose connection dropped gets StoreWriteError (another
        server may lead by then) until ``try_lead`` succeeds again. Readers cannot lead."""
        if self.readonly:
            return False
        with self._lock:
            if self.leading and not self._db.broken:
                try:  # a round trip: a dropped connection took the lock with it
                    self._db.execute("SELECT 1")
                    return True
                except self._pg.Error:
                    pass
            try:
                row = self._conn().execute("SELECT pg_try_advisory_lock(%s)", (self._leader_key,))
                self.leading = bool(row.fetchone()[0])
            except self._pg.Error as exc:
                raise StoreError(
                    self.shown,
                    f"cannot take the leader lock ({_reason(exc, self.url, self.shown)})",
                ) from None
            self._fenced = self._fenced or self.leading
            return self.leading

    def resign(self) -> None:
        """Give up the leader lock (a follower may take it at once)."""
        with self._lock:
            if self.leading and not self._db.broken:
                try:
                    self._db.execute("SELECT pg_advisory_unlock(%s)", (self._leader_key,))
                except self._pg.Error:
                    pass  # the connection is gone, and the lock with it
            self.leading = False

    def _schema(self) -> int:
        """Check the schema version; a writer applies the forward migrations it lacks."""
        db = self._db
        try:
            with db.transaction():
                if not self.readonly:
                    db.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK,))
                version = self._version()
                if version > SCHEMA_VERSION:
                    raise StoreError(
                        self.shown,
                        f"has schema version {version}, newer than this twin knows "
                        f"({SCHEMA_VERSION})",
                        "run a twin release that knows it (a store is never downgraded)",
                    )
                if version == 0 and self._has("events"):
                    raise StoreError(
                        self.shown,
                        "holds an events table but no schema_version table: not a twin store",
                        "give an empty database (the twin creates its tables)",
                    )
                if version < SCHEMA_VERSION and self.readonly:
                    raise StoreError(
                        self.shown,
                        "holds no event store" if version == 0
                        else f"has schema version {version}, older than this twin's "
                        f"({SCHEMA_VERSION})",
                        "open it for writing once (`twin ingest` or `twin serve`) to create or "
                        "upgrade it",
                    )  # fmt: skip
                if version < SCHEMA_VERSION:
                    db.execute(
                        "CREATE TABLE IF NOT EXISTS schema_version ("
                        "version integer PRIMARY KEY, applied timestamptz NOT NULL DEFAULT now())"
                    )
                    for v in range(version + 1, SCHEMA_VERSION + 1):
                        db.execute(_MIGRATIONS[v])
                        db.execute("INSERT INTO schema_version (version) VALUES (%s)", (v,))
                    version = SCHEMA_VERSION
        except self._pg.Error as exc:
            raise StoreError(
                self.shown, f"cannot be opened as an event store ({_reason(exc, '', '')})"
            ) from None
        return version

    def _has(self, table: str) -> bool:
        row = self._db.execute("SELECT to_regclass(%s) IS NOT NULL", (table,)).fetchone()
        return bool(row[0])

    def _version(self) -> int:
        if not self._has("schema_version"):
            return 0
        row = self._db.execute("SELECT COALESCE(MAX(version), 0) FROM schema_version").fetchone()
        return int(row[0])

    def close(self) -> None:
        self._db.close()

    def _refuse_readonly(self) -> None:
        if self.readonly:
            raise StoreWriteError(self.shown, "the store was opened read-only")

    def _query(self, sql: str, args: Sequence[Any] = ()) -> list[tuple]:
        """Rows of one statement, outside any transaction; one StoreError line on failure."""
        with self._lock:
            try:
                try:
                    return self._conn().execute(sql, args).fetchall()
                except self._pg.OperationalError:
                    if not self._db.broken:
                        raise
                    return self._conn().execute(sql, args).fetchall()  # once more, reconnected
            except self._pg.Error as exc:
                raise StoreError(
                    self.shown, f"cannot be read ({_reason(exc, self.url, self.shown)})"
                ) from None

    def _run(self, sql: str, args: Sequence[Any] = ()) -> None:
        self._refuse_readonly()
        with self._lock:
            try:
                self._conn().execute(sql, args)
            except self._pg.Error as exc:
                raise StoreWriteError(self.shown, _reason(exc, self.url, self.shown)) from None
            except (UnicodeEncodeError, ValueError) as exc:  # a lone surrogate, a NUL
                raise StoreWriteError(
                    self.shown, f"cannot store a value ({type(exc).__name__}: {exc})"[:300]
                ) from None

    # ------------------------------------------------------------ writes
    def write(self, events: Sequence[Event], dead: Sequence[DeadLetter] = ()) -> int:
        self._refuse_readonly()
        dead_rows = [_pg_dead_row(d) for d in dead]
        psycopg = self._pg
        with self._lock:
            try:
                try:
                    return self._write(events, dead_rows)
                except psycopg.OperationalError:
                    if not self._db.broken:
                        raise
                    # the server dropped the connection (a restart): once more on a new one.
                    # Safe even if the lost reply was a commit's: stored keys are skipped.
                    return self._write(events, dead_rows)
            except psycopg.OperationalError as exc:  # the server is away: nothing committed
                raise StoreWriteError(self.shown, _reason(exc, self.url, self.shown)) from None
            except (psycopg.Error, TypeError, ValueError, OverflowError, RecursionError) as exc:
                for e in events:  # name the event that cannot be stored (nothing was written)
                    problem = _pg_unstorable(e)
                    if problem is not None:
                        raise StoreWriteError(_event_name(e), problem) from None
                raise StoreWriteError(self.shown, _reason(exc, self.url, self.shown)) from None

    def _write(self, events: Sequence[Event], dead_rows: list[tuple]) -> int:
        first: dict[tuple[str, int], Event] = {}
        for e in events:  # the first copy in the batch wins
            first.setdefault((e.source, e.seq), e)
        db = self._conn()
        if self._fenced and not self.leading:
            raise StoreWriteError(
                self.shown,
                "this server no longer holds the leader lock (its connection dropped), so "
                "another may be ingesting; take it again with try_lead before writing",
            )
        with db.transaction():
            cur = db.cursor()
            # one writer at a time (positions and the chain follow the last row); reads go on
            cur.execute("LOCK TABLE events IN SHARE ROW EXCLUSIVE MODE")
            row = cur.execute(_LAST).fetchone()
            pos, h = (0, GENESIS) if row is None else (row[0], bytes(row[1]))
            if first:
                # never prepared: PostgreSQL's generic plan for it is 4x slower (measured)
                keys = codec.dumps([(_esc(s), q) for s, q in first])
                for src, seq in cur.execute(_STORED, (keys,), prepare=False):
                    first.pop((_unesc(src), seq), None)
            new = list(first.values())
            if any(e.time != e.time for e in new):  # NaN: PostgreSQL would store it
                raise ValueError("a time is NaN")
            # the chain covers the names as sent; the rows hold them escaped where needed
            rows = _chain_rows(new, codec.dumps_many([e.data for e in new]), pos, h)
            for k, e in enumerate(new):
                if "\0" in (n := e.id + e.source + e.type + e.subject) or _ESC in n:
                    src, q, i, t, ty, su, d, hh = rows[k]
                    rows[k] = (_esc(src), q, _esc(i), t, _esc(ty), _esc(su), d, hh)
            if rows:
                with cur.copy(f"COPY events ({_COLUMNS}) FROM STDIN") as cp:
                    write_row = cp.write_row
                    for p, r in enumerate(rows, start=pos + 1):
                        write_row((p, *r))
                cur.execute("SELECT pg_notify(%s, %s)", (self.channel, str(pos + len(rows))))
            if dead_rows:
                with cur.copy(
                    "COPY dead_letters (received, source, seq, reason, raw) FROM STDIN"
                ) as cp:
                    for d in dead_rows:
                        cp.write_row(d)
        return len(rows)

    def verify(self) -> Verdict:
        """Walk the whole hash chain (read-only, page by page; fine beside the leader's
        writes): each row's hash recomputed from the previous one and the row as sent (names
        unescaped), positions contiguous from 1. The first problem is the verdict's."""
        prev, end = GENESIS, 0
        sql = f"SELECT {_COLUMNS} FROM events WHERE pos > %s ORDER BY pos LIMIT {_PAGE}"
        while rows := self._query(sql, (end,)):
            for pos, src, seq, i, t, ty, su, data, stored in rows:
                if pos != end + 1:
                    return Verdict(self.shown, end, prev, f"position {end + 1} is missing", end + 1)
                try:
                    b = row_bytes(pos, _unesc(src), seq, _unesc(i), t, _unesc(ty), _unesc(su), data)
                except (TypeError, ValueError, UnicodeEncodeError) as exc:
                    return Verdict(
                        self.shown, end, prev, f"position {pos} is not an event row ({exc})", pos
                    )
                h = sha256(prev + b).digest()
                if h != bytes(stored):
                    return Verdict(
                        self.shown,
                        end,
                        prev,
                        f"the event at position {pos} does not match its hash",
                        pos,
                    )
                prev, end = h, pos
        return Verdict(self.shown, end, prev)

    def put_meta(self, key: str, value: str) -> None:
        self._run(
            "INSERT INTO meta (key, value) VALUES (%s, %s) "
            "ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
            (key, value),
        )

    def save_snapshot(self, state: TwinState, pos: int) -> None:
        self._run(
            "INSERT INTO snapshots (pos, clock, state) VALUES (%s, %s, %s) "
            "ON CONFLICT (pos) DO UPDATE SET clock = EXCLUDED.clock, state = EXCLUDED.state",
            (pos, state.clock, state.to_json()),
        )

    # ------------------------------------------------------------ reads
    def get_meta(self, key: str) -> str | None:
        rows = self._query("SELECT value FROM meta WHERE key = %s", (key,))
        return rows[0][0] if rows else None

    def read_positioned(
        self, since=None, until=None, type=None, subject=None, after=0, limit=None
    ) -> Iterator[tuple[int, Event]]:
        for name in (type, subject):
            try:
                name is None or name.encode()
            except (AttributeError, UnicodeEncodeError):  # no stored name is this: none match
                return
        where, args = ["pos > %s"], [after]
        for clause, value in (
            ("time >= %s", since),
            ("time <= %s", until),
            ("type = %s", _esc(type) if isinstance(type, str) else type),
            ("subject = %s", _esc(subject) if isinstance(subject, str) else subject),
        ):
            if value is not None:
                where.append(clause)
                args.append(value)
        sql = (
            "SELECT pos, id, source, seq, time, type, subject, data FROM events "
            f"WHERE {' AND '.join(where)} ORDER BY pos LIMIT %s"
        )
        loads, left = json.loads, limit
        while left is None or left > 0:
            page = _PAGE if left is None else min(_PAGE, left)
            rows = self._query(sql, [*args, page])
            for p, i, src, seq, t, ty, subj, data in rows:
                d = loads(data)
                if "\\ud" in data and _LONE.search(data):  # written escaped: served as "?"
                    try:
                        d = _whole_text(d)
                    except RecursionError:  # deep data: the escapes replaced in the text
                        d = loads(_LONE.sub("?", data))
                if _ESC in i or _ESC in src or _ESC in ty or _ESC in subj:
                    i, src, ty, subj = _unesc(i), _unesc(src), _unesc(ty), _unesc(subj)
                yield p, Event(i, src, seq, t, ty, subj, d)
            if len(rows) < page:
                return
            args[0] = rows[-1][0]
            if left is not None:
                left -= len(rows)

    def count(self) -> int:
        return int(self._query("SELECT COALESCE(MAX(pos), 0) FROM events")[0][0])

    def dead_letters(self, limit: int | None = None) -> list[DeadLetter]:
        rows = self._query(
            "SELECT reason, raw, source, seq, received FROM dead_letters ORDER BY id LIMIT %s",
            (limit,),
        )
        return [DeadLetter(*r) for r in rows]

    def dead_letter_count(self) -> int:
        return int(self._query("SELECT COUNT(*) FROM dead_letters")[0][0])

    def snapshot(self, at: float | None = None) -> tuple[int, TwinState] | None:
        if at is None:
            rows = self._query("SELECT pos, state FROM snapshots ORDER BY pos DESC LIMIT 1")
        else:
            rows = self._query(
                "SELECT pos, state FROM snapshots WHERE clock <= %s ORDER BY pos DESC LIMIT 1",
                (at,),
            )
        return (rows[0][0], TwinState.from_json(rows[0][1])) if rows else None

    def last_seqs(self) -> dict[str, int]:
        out = {_unesc(src): seq for src, seq in self._query(_LAST_SEQS)}
        for src, seq in self._query(
            "SELECT source, MAX(seq) FROM dead_letters WHERE source IS NOT NULL "
            "AND seq IS NOT NULL GROUP BY source"
        ):
            out[src] = max(out.get(src, 0), seq)
        return out

    def bytes_used(self) -> int:
        """Bytes on disk of the store's tables and indexes (for sizing)."""
        row = self._query(
            "SELECT COALESCE(SUM(pg_total_relation_size(to_regclass(t))), 0) "
            "FROM unnest(ARRAY['events', 'dead_letters', 'meta', 'snapshots']) t"
        )
        return int(row[0][0])


def _pg_unstorable(e: Event) -> str | None:
    """Why PostgreSQL could not store this event (None: it can): what SQLite refuses."""
    return _unstorable(e)


# PostgreSQL text cannot hold U+0000, which a name may (validation allows it, SQLite stores it):
# a name holding U+0000 or the escape U+FFFF (a noncharacter) is stored with U+0000 as
# U+FFFF "0" and U+FFFF as U+FFFF U+FFFF, and read back as sent. Other names are stored as they
# are (one `in` test per name on each write and read).
_ESC = "\uffff"
_UNESC = re.compile("\uffff(.)", re.S)


def _esc(name: str) -> str:
    if "\0" in name or _ESC in name:
        return name.replace(_ESC, _ESC + _ESC).replace("\0", _ESC + "0")
    return name


def _unesc(name: str) -> str:
    if _ESC in name:
        return _UNESC.sub(lambda m: "\0" if m.group(1) == "0" else m.group(1), name)
    return name


def _pg_dead_row(d: DeadLetter) -> tuple:
    """A dead letter as a row PostgreSQL always accepts: SQLite's row, NUL written as \\u0000."""
    received, source, seq, reason, raw = _dead_row(d)
    if source is not None and "\0" in source:
        source = source.replace("\0", "\\u0000")
    return (received, source, seq, reason.replace("\0", "\\u0000"), raw.replace("\0", "\\u0000"))


def wait_for_events(store: PostgresStore, after: int, timeout: float) -> int | None:
    """Block until a write to ``store`` past position ``after`` is notified (or ``timeout`` s
    pass); the last position notified, or None. On a connection of its own."""
    import psycopg

    deadline = _time.monotonic() + timeout
    with psycopg.connect(store.url, autocommit=True) as db:
        db.execute(f"LISTEN {store.channel}")
        n = store.count()
        if n > after:
            return n
        while (left := deadline - _time.monotonic()) > 0:
            for note in db.notifies(timeout=left, stop_after=1):
                if int(note.payload) > after:
                    return int(note.payload)
    return None
