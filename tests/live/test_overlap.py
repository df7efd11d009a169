"""``Synchroniser.run`` commits batch N in a writer thread while batch N+1 is applied: messages
are still acknowledged only after their own batch is durable, in order, and the store, the
state and the snapshots are what the one-thread pipeline gives."""

from __future__ import annotations

import subprocess
import sys

import pytest

from twin.errors import IngestFailed
from twin.live.sources import Message
from twin.live.state import TwinState, apply_all
from twin.live.store import SQLiteStore
from twin.live.sync import SyncConfig, Synchroniser


class ListSource:
    """Hands out the given texts ``size`` at a time, each message acked into ``acked``."""

    def __init__(self, texts, size, acked, check=None):
        self.texts, self.size, self.acked, self.i = texts, size, acked, 0
        self.check = check or (lambda k: None)

    @property
    def exhausted(self):
        return self.i >= len(self.texts)

    def receive(self, max_items, timeout):
        chunk = range(self.i, min(self.i + min(max_items, self.size), len(self.texts)))
        self.i = chunk.stop
        return [Message(self.texts[k], lambda k=k: self._ack(k)) for k in chunk]

    def _ack(self, k):
        self.check(k)
        self.acked.append(k)

    def close(self):
        pass


class WatchedStore(SQLiteStore):
    """Records, for each write, the events it was given and whether another was running."""

    def __init__(self, path, fail_at=None):
        super().__init__(path)
        self.writes, self.busy, self.fail_at = [], False, fail_at

    def write(self, events, dead=()):
        self.busy = True
        try:
            if self.fail_at is not None and len(self.writes) == self.fail_at:
                raise OSError("disk full")
            n = super().write(events, dead)
            self.writes.append(len(events) + len(dead))
            return n
        finally:
            self.busy = False


def _texts(stream):
    texts = [e.to_json() for e in stream]
    texts.insert(100, '{"not": "an event"}')  # one dead letter
    return texts + texts[3000:3200]  # and 200 duplicates at the end


@pytest.mark.parametrize("overlap", [True, False])
def test_acks_follow_their_own_commit_in_order(tmp_path, catalog, stream, overlap):
    """Every ack comes after the commit of the batch holding its message, acks keep message
    order, and nothing is acked twice."""
    texts, acked = _texts(stream), []
    store = WatchedStore(tmp_path / "twin.db")
    overlapped = []

    def on_commit(events):  # with the writer thread, the next batch may be writing meanwhile
        overlapped.append(store.busy)

    rows = len(stream) + 1  # the events and the dead letter, each a row in message order

    def check(k):  # message k (its row, or a duplicate of one) is durable before its ack
        assert sum(store.writes) >= min(k + 1, rows)

    sync = Synchroniser(store, catalog, cfg=SyncConfig(batch=300, overlap=overlap))
    sync.on_commit = on_commit
    sync.run(ListSource(texts, 300, acked, check))
    assert acked == list(range(len(texts)))
    assert store.count() == len(stream) and sync.pos == len(stream)
    assert sync.stats.rejected == 1 and sync.stats.duplicates == 200
    assert not any(overlapped) or overlap
    store.close()


def test_overlap_gives_the_same_store_state_and_snapshots(tmp_path, catalog, stream):
    """With and without the writer thread: the same events at the same positions, the same dead
    letters, a state equal to a full replay, and every snapshot equal to the replay of exactly
    the events before its position."""
    results = []
    for overlap in (True, False):
        store = SQLiteStore(tmp_path / f"{overlap}.db")
        cfg = SyncConfig(batch=250, snapshot_every=700, overlap=overlap)
        sync = Synchroniser(store, catalog, cfg=cfg)
        sync.run(ListSource(_texts(stream), 250, []))
        events = list(store.read_positioned())
        snaps = store._db.execute("SELECT pos, state FROM snapshots ORDER BY pos").fetchall()
        assert len(snaps) >= 5
        for pos, text in snaps:
            replay = apply_all(TwinState(catalog), [e for p, e in events if p <= pos])
            assert TwinState.from_json(text).fingerprint() == replay.fingerprint()
        assert sync.state.fingerprint() == store.replay().fingerprint()
        results.append((events, [(d.reason, d.raw) for d in store.dead_letters()], sync.pos))
        store.close()
    assert results[0] == results[1]


def test_a_failed_commit_is_never_acknowledged(tmp_path, catalog, stream):
    """When the writer thread's commit fails, run() raises IngestFailed naming the cause, that
    batch's messages (and the ones after it) are not acked, the batches before it were, and the
    twin state is the store's (rebuilt from it)."""
    acked: list[int] = []
    store = WatchedStore(tmp_path / "twin.db", fail_at=3)
    sync = Synchroniser(store, catalog, cfg=SyncConfig(batch=200))
    with pytest.raises(IngestFailed, match="disk full"):
        sync.run(ListSource([e.to_json() for e in stream], 200, acked))
    assert acked == list(range(600))
    assert store.count() == 600 == sync.pos
    assert sync.state.fingerprint() == store.replay().fingerprint()
    store.close()


def test_cli_overlap_stores_the_same(tmp_path, stream):
    """`twin ingest --overlap` (a writer thread commits) stores what the default does."""
    src = tmp_path / "events.jsonl"
    src.write_text("".join(e.to_json() + "\n" for e in stream[:3000]) + "not json\n")
    stored = []
    for flags in ([], ["--overlap"]):
        db = tmp_path / f"twin{len(flags)}.db"
        cmd = [sys.executable, "-m", "twin.cli", "ingest", "--from", str(src), "--store", str(db),
               "--batch", "400", "--quiet", *flags]  # fmt: skip
        subprocess.run(cmd, check=True, timeout=120)
        with SQLiteStore(db) as s:
            stored.append((list(s.read()), s.dead_letter_count()))
    assert stored[0] == stored[1] == (stream[:3000], 1)
