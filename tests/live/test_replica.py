"""Several servers on one PostgreSQL store, first step: one leader by advisory lock (taken over
when it dies, fenced when it lost its connection) and followers that track the store by
NOTIFY and position, their state equal to a replay."""

from __future__ import annotations

import subprocess
import sys
import threading
import time

import pytest

from twin.errors import StoreWriteError
from twin.live.sources import Message
from twin.live.sync import Synchroniser

psycopg = pytest.importorskip("psycopg")
from twin.live.replica import Follower  # noqa: E402
from twin.live.store_pg import PostgresStore  # noqa: E402

LEADER = """
import sys, time
from twin.live.store_pg import PostgresStore
s = PostgresStore(sys.argv[1])
print("leading" if s.try_lead() else "following", flush=True)
time.sleep(600)
"""


def test_one_leader_at_a_time_and_a_resigned_lock_is_taken(pg_url):
    """Of two stores on one database only one leads; a reader never does; after the leader
    resigns or closes, the other's next try succeeds."""
    a, b = PostgresStore(pg_url), PostgresStore(pg_url)
    assert a.try_lead() and a.try_lead()  # again: still the leader
    assert not b.try_lead()
    assert not PostgresStore(pg_url, readonly=True).try_lead()
    a.resign()
    assert b.try_lead() and not a.try_lead()
    b.close()  # the server ends b's session a moment later, releasing the lock
    t0 = time.monotonic()
    while not a.try_lead():
        assert time.monotonic() - t0 < 5, "a closed leader's lock was not released"
        time.sleep(0.05)
    a.close()


def test_stores_in_two_schemas_of_one_database_lead_and_notify_apart(pg_server, stream):
    """Two twins in one database (a schema each): each has its own leader and its own
    notifications; one's writes never wake the other's followers."""
    a_url, b_url = pg_server.create_schema("twin_a"), pg_server.create_schema("twin_b")
    a, b = PostgresStore(a_url), PostgresStore(b_url)
    assert a.try_lead() and b.try_lead() and a.channel != b.channel
    with Follower(a_url) as fa, Follower(b_url) as fb:
        b.write(stream[:10])
        assert fb.wait(timeout=5) == 10 and fa.wait(timeout=0.3) == 0
        a.write(stream[:3])
        assert fa.wait(timeout=5) == 3 and fa.pos == 3 and fb.pos == 10
    a.close()
    b.close()


def test_a_killed_leader_is_replaced_within_5_s(pg_url):
    """kill -9 of the leading process: PostgreSQL drops its lock, a follower leads in < 5 s."""
    proc = subprocess.Popen(
        [sys.executable, "-c", LEADER, pg_url], stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "leading"
        follower = PostgresStore(pg_url)
        assert not follower.try_lead()
        proc.kill()
        t0 = time.monotonic()
        while not follower.try_lead():
            assert time.monotonic() - t0 < 5, "no take-over within 5 s"
            time.sleep(0.05)
        follower.close()
    finally:
        proc.kill()
        proc.wait(10)


def test_a_leader_that_lost_its_connection_cannot_write(pg_url, stream):
    """The leader's connection is cut (as in a network split): its next write is refused
    with the reason and stores nothing, while the new leader writes; after taking the lock
    again it writes, each event once."""
    old, new = PostgresStore(pg_url), PostgresStore(pg_url)
    assert old.try_lead()
    old.write(stream[:10])
    pid = old._db.execute("SELECT pg_backend_pid()").fetchone()[0]
    with psycopg.connect(pg_url, autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s, 5000)", (pid,))  # waits for it
    assert new.try_lead()
    new.write(stream[10:20])
    with pytest.raises(StoreWriteError, match="no longer holds the leader lock"):
        old.write(stream[20:30])
    assert new.count() == 20
    assert not old.try_lead()
    new.resign()
    assert old.try_lead() and old.write(stream[15:30]) == 10
    assert list(new.read()) == stream[:30]
    old.close()
    new.close()


def test_a_follower_tracks_the_leader_by_notification(pg_url, stream, catalog):
    """A follower started before, during and after a leader's ingest holds the state a replay
    of the store gives; each wake-up follows a commit within a second."""
    leader = PostgresStore(pg_url)
    assert leader.try_lead()
    sync = Synchroniser(leader, catalog)
    sync.process([Message(e) for e in stream[:500]])
    follower = Follower(pg_url)
    assert follower.pos == 500
    assert follower.state.fingerprint() == leader.replay(catalog).fingerprint()
    lags: list[float] = []
    done = threading.Event()

    def ingest() -> None:
        for i in range(500, 3000, 250):
            sync.process([Message(e) for e in stream[i : i + 250]])
            time.sleep(0.05)
        done.set()

    t = threading.Thread(target=ingest)
    t.start()
    while not (done.is_set() and follower.pos == leader.count()):
        t0 = time.monotonic()
        if follower.wait(timeout=2.0):
            lags.append(time.monotonic() - t0)
    t.join()
    assert follower.pos == 3000 == leader.count()
    assert follower.state.fingerprint() == leader.replay(catalog).fingerprint()
    assert lags and max(lags) < 1.5, lags
    late = Follower(pg_url)  # one started after: the same state
    assert late.state.fingerprint() == follower.state.fingerprint()
    late.close()
    follower.close()
    leader.close()


def test_a_follower_starts_from_the_latest_snapshot(pg_url, stream, catalog):
    """A store with a snapshot: the follower starts there and replays only the rest."""
    with PostgresStore(pg_url) as s:
        sync = Synchroniser(s, catalog)
        sync.process([Message(e) for e in stream[:400]])
        s.save_snapshot(sync.state, sync.pos)
        sync.process([Message(e) for e in stream[400:600]])
        with Follower(pg_url) as f:
            assert f.pos == 600
            assert f.state.fingerprint() == s.replay(catalog).fingerprint()


def test_a_server_restart_mid_stream_loses_and_duplicates_nothing(
    pg_server, pg_url, stream, catalog
):
    """PostgreSQL restarted (twice) while a synchroniser ingests: the store reconnects (riding
    out the restart), a batch that failed anyway is delivered again, as a broker would, and in
    the end each event is stored once, in order, and the state equals a replay of the store."""
    from twin.errors import TwinError
    from twin.live.sync import SyncConfig

    store = PostgresStore(pg_url)
    sync = Synchroniser(store, catalog, cfg=SyncConfig(batch=100))
    restarts = threading.Thread(target=lambda: [pg_server.restart() for _ in range(2)])
    failures = 0
    for i in range(0, 3000, 100):
        if i == 300:
            restarts.start()
        for _ in range(100):
            try:
                sync.process([Message(e) for e in stream[i : i + 100]])
                break
            except TwinError:  # the store could not be written (or read back): send again
                failures += 1
                time.sleep(0.1)
        time.sleep(0.05)
    restarts.join()
    assert store.count() == 3000 and list(store.read()) == stream[:3000]
    assert sync.state.fingerprint() == store.replay(catalog).fingerprint()
    assert store.reconnects >= 1 and failures < 100, (store.reconnects, failures)
    store.close()
