"""The event store's integrity: the hash chain over its rows, the head file beside it, opening
a file that may not be a store, and ``verify`` / ``backup`` / ``reset_head`` (docs/store.md).

``twin.live.store.SQLiteStore`` uses the chain and head on every open and write; the functions
here work on a store's path and are what `twin store verify|backup` call.
"""

from __future__ import annotations

import hashlib
import os
import re
import sqlite3
import stat
import threading
from dataclasses import dataclass, replace
from pathlib import Path

from twin.errors import StoreError

# ------------------------------------------------------------------ hash chain and head file

GENESIS = bytes(32)  # h_0, the hash "before" position 1
sha256 = hashlib.sha256
HINT = "restore the store and its .head file from a backup, or see `twin store verify --help`"


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
        raise StoreError(
            show_path(hp), f"head file cannot be read ({exc.strerror})", HINT
        ) from None
    m = _HEAD_RE.fullmatch(raw.decode("ascii", "replace"))
    if m is None:
        raise StoreError(
            show_path(hp),
            "is not a twin store head file (accepted: 'twin-store-head 1', then a position and "
            "a SHA-256 in hex)",
            HINT,
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
        remove_quietly(tmp)
        raise
    if durable and new:
        fsync_dir(hp.parent)


def fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def show_path(path: object) -> str:
    """A path as printable text (undecodable bytes as backslash escapes)."""
    return os.fspath(path).encode("utf-8", "backslashreplace").decode()  # type: ignore[arg-type]


ROWS_AFTER = (
    "SELECT pos, source, seq, id, time, type, subject, data, hash FROM events "
    "WHERE pos > ? ORDER BY pos"
)


def walk_chain(
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
    cur = db.execute(ROWS_AFTER, (after,))
    try:
        while rows := cur.fetchmany(2000):
            for row in rows:
                pos = row[0]
                if pos != end + 1:
                    return end, prev, watched, f"position {end + 1} is missing", end + 1
                try:
                    h = sha256(prev + row_bytes(*row[:8])).digest()
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
NOT_A_STORE = "give the path of a store made by `twin ingest` or `twin up --store`"


def short_text(v: object) -> str:
    """A value for a message: repr'd, lone surrogates escaped, at most 60 characters."""
    if type(v) is int and not -(2**63) <= v < 2**63:
        return f"an integer of {v.bit_length()} bits"
    try:
        text = repr(v)
    except Exception:  # noqa: BLE001 - a message must not fail
        text = object.__repr__(v)
    text = text.encode("utf-8", "backslashreplace").decode()
    return text if len(text) <= 60 else text[:57] + "..."


def usable_path(path: str | Path) -> Path:
    """``path`` as a Path, or StoreError when no file can have that name."""
    try:
        p = Path(path)
        if "\0" in os.fspath(p):
            raise ValueError("NUL")
        os.fsencode(p)
    except (TypeError, ValueError):  # UnicodeEncodeError: a lone surrogate
        raise StoreError(
            short_text(path), "is not a usable file name (it holds NUL or a lone surrogate)"
        ) from None
    return p


def connect(path: Path, *, readonly: bool) -> sqlite3.Connection:
    """A connection to the existing SQLite database at ``path``; StoreError for anything else."""
    try:
        st = path.stat()
    except FileNotFoundError:
        raise StoreError(show_path(path), "no such event store", NOT_A_STORE) from None
    except OSError as exc:
        raise StoreError(show_path(path), f"cannot be read ({exc.strerror})") from None
    if not stat.S_ISREG(st.st_mode):
        raise StoreError(show_path(path), "is not a file", NOT_A_STORE)
    if st.st_size == 0:
        raise StoreError(
            show_path(path),
            "is an empty file (0 bytes), not an event store",
            "to start a new store, give a path where no file exists (or delete this one)",
        )
    try:
        with open(path, "rb") as f:
            magic = f.read(len(_MAGIC))
    except OSError as exc:
        raise StoreError(show_path(path), f"cannot be read ({exc.strerror})") from None
    if magic != _MAGIC:
        raise StoreError(
            show_path(path), "is not an SQLite database, so not an event store", NOT_A_STORE
        )
    try:
        if readonly:
            uri = path.absolute().as_uri() + "?mode=ro"
            return sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False)
        return sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    except sqlite3.Error as exc:
        raise StoreError(show_path(path), f"cannot be opened ({exc})") from None


def remove_quietly(*paths: Path) -> None:
    """Delete temporary files that may or may not exist (a cleanup never raises)."""
    for p in paths:
        try:
            p.unlink(missing_ok=True)
        except OSError:
            pass


def kind_of(db: sqlite3.Connection, path: Path) -> str:
    """'empty' (no tables), 'legacy' (a store made before the chain) or 'chained'."""
    names = sorted(n for (n,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'"))
    if not names:
        return "empty"
    if "events" not in names:
        shown = ", ".join(n[:40] for n in names[:5]) + (", ..." if len(names) > 5 else "")
        raise StoreError(
            show_path(path),
            f"is an SQLite database but not a twin event store (no events table; it has {shown})",
            NOT_A_STORE,
        )
    cols = {r[1] for r in db.execute("PRAGMA table_info(events)")}
    if missing := _COLUMNS - cols:
        raise StoreError(
            show_path(path),
            "is an SQLite database but not a twin event store (its events table has no "
            f"{', '.join(sorted(missing))})",
            NOT_A_STORE,
        )
    return "chained" if "hash" in cols else "legacy"


# ------------------------------------------------------------------ verify and backup


@dataclass(frozen=True, slots=True)
class Verdict:
    """What ``verify`` found: the events at positions 1..``count`` chain intact up to ``hash``;
    ``problem`` is the first thing wrong (None: the store is intact), at ``position`` if known."""

    path: Path | str  # a SQLite file, or a PostgreSQL store's URL with its password masked
    count: int
    hash: bytes
    problem: str | None = None
    position: int | None = None

    @property
    def ok(self) -> bool:
        return self.problem is None

    def line(self) -> str:
        where = show_path(self.path)
        if self.ok:
            return f"OK {where}: {self.count} events, chain intact, head {self.hash.hex()}"
        at = f" at position {self.position}" if self.position is not None else ""
        return f"BROKEN {where}{at}: {self.problem} ({self.count} events intact before it)"


def verify(path: str | Path, *, head: bool = True) -> Verdict:
    """Walk the whole chain of the store at ``path`` (read-only; fine beside a writer), compare
    it with the head file (``head``) and run SQLite's quick check. StoreError if ``path`` is not
    a readable store at all."""
    path = usable_path(path)
    hd = read_head(path) if head else None  # before the database: writers move it after commit
    db = connect(path, readonly=True)
    try:
        kind = kind_of(db, path)
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
        end, h, watched, problem, at = walk_chain(db, 0, watch=hpos)
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
        raise StoreError(
            show_path(path), f"cannot be read as an event store ({exc})", HINT
        ) from None
    finally:
        db.close()


def reset_head(path: str | Path) -> Verdict:
    """Accept the store at ``path`` as it is: if its whole chain verifies, write its head file
    at its last event (after a loss the operator has accepted, or for a copy without its head).
    A store made before the chain is chained first. Returns the verdict; the head is written
    only when it is OK."""
    if not os.path.lexists(usable_path(path)):  # accepting a store never creates one
        raise StoreError(show_path(path), "no such event store", NOT_A_STORE)
    from twin.live.store import SQLiteStore

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
    src, dest = usable_path(src), usable_path(dest)
    for p in (dest, head_path(dest)):
        if os.path.lexists(p):
            raise StoreError(
                show_path(p), "already exists", "give a new path (a backup never overwrites)"
            )
    if not dest.parent.is_dir():
        raise StoreError(show_path(dest), "cannot be created: its folder does not exist")
    tmp = dest.with_name(f".{dest.name}.{os.getpid()}-{threading.get_ident()}.partial")
    from twin.live.store import SQLiteStore

    try:
        with SQLiteStore(src, readonly=True) as store:  # refuses a source behind its head
            if not store.chained:
                raise StoreError(
                    show_path(src),
                    "has no hash chain yet (made before chained stores)",
                    "open it for writing once, or run `twin store verify --reset-head`",
                )
            out = sqlite3.connect(tmp)
            try:
                store._db.backup(out)
                out.execute("PRAGMA journal_mode=WAL")
            except sqlite3.Error as exc:
                raise StoreError(show_path(dest), f"backup failed ({exc})") from None
            finally:
                out.close()
        verdict = verify(tmp, head=False)
        if not verdict.ok:
            raise StoreError(show_path(dest), f"the copy does not verify: {verdict.problem}", HINT)
        try:
            os.link(tmp, dest)
        except FileExistsError:
            raise StoreError(show_path(dest), "already exists", "give a new path") from None
        except OSError:  # a file system without hard links
            os.replace(tmp, dest)
    finally:
        remove_quietly(tmp, Path(f"{tmp}-wal"), Path(f"{tmp}-shm"), Path(f"{tmp}-journal"))
    write_head(dest, verdict.count, verdict.hash)
    fsync_dir(dest.parent)
    return replace(verdict, path=dest)
