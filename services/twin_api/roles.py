"""Leader and follower: `twin serve` on a PostgreSQL store shared by several servers (issue 20).

One role thread per server (``Roles.run``, the runtime's ingest thread):

- At start and every ``TWIN_LEAD_INTERVAL`` s (1 s) a follower tries the store's leader lock
  (``PostgresStore.try_lead``: a session advisory lock, released by PostgreSQL when the holder's
  connection ends, ``kill -9`` included).
- A follower keeps the state the API serves with ``twin.live.replica.Follower``: woken by the
  store's NOTIFY, it reads the events after its position and applies them (and publishes them
  to its WebSocket clients), so its state is a replay of the store up to its position.
- When it takes the lock it catches up to the store's end (nobody else writes now), hands that
  state to a new ``Synchroniser`` on its writable store (no second replay), publishes its URL
  (``TWIN_ADVERTISE_URL``) as the store's ``leader_url`` meta, connects to MQTT (only a leader
  connects: the subscription's client id is shared, so the broker session and its queued
  messages move to the new leader; two live clients of one id would keep kicking each other
  off), starts the built-in feed if any, then runs the ingest loop of ``TwinRuntime``
  unchanged. Each source resumes after its last stored seq (``store.last_seqs()``), so nothing
  acknowledged is lost and the (source, seq) key drops what the broker delivers again.
- A leader checks the lock every interval; one that lost it (its connection dropped and another
  server led meanwhile) disconnects from MQTT and follows again.

A SQLite or in-memory store never gets here: one server, as before.
"""

from __future__ import annotations

import logging
import time as _time
from typing import Any

from twin.live.events import Event
from twin.live.store import is_url
from twin.live.sync import Synchroniser
from twin_api.hub import encode

log = logging.getLogger("twin.api.roles")
LEADER_URL = "leader_url"  # store meta: the leading server's advertised URL
LEADER_SINCE = "leader_since"  # store meta: when it took the lock (epoch s)


def replicated(store: str | None) -> bool:
    """Is this store setting one that several servers may share (PostgreSQL)?"""
    return bool(store) and is_url(store) and str(store).lower().startswith("postgres")


class _Handover:
    """The writable store as a new leader's synchroniser first sees it: its latest "snapshot"
    is the follower's state at the follower's position, so taking over replays nothing twice;
    the catalog meta is not written by a follower."""

    def __init__(self, store: Any, start: tuple[int, Any] | None, meta: bool = True) -> None:
        self._store, self._start, self._meta = store, start, meta

    def snapshot(self, at: float | None = None) -> Any:
        if at is None and self._start is not None:
            start, self._start = self._start, None
            return start
        return self._store.snapshot(at)

    def put_meta(self, key: str, value: str) -> None:
        if self._meta:
            self._store.put_meta(key, value)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)


class Roles:
    """The role of one server on a shared store; ``run`` is its thread."""

    def __init__(self, rt: Any) -> None:
        from twin.live.store_pg import PostgresStore

        self.rt = rt
        s = rt.settings
        self.writer: PostgresStore = rt.store  # opened (and migrated) by the runtime
        self.reader = PostgresStore(s.store, readonly=True)
        self.interval = s.lead_interval
        self.role = "follower"
        self.leader_since = 0.0  # monotonic time this server took the lock (0: never)
        self.takeovers = 0  # times this server became the leader
        self.last_takeover_s = 0.0  # s from taking the lock to ingesting
        self.follower: Any = None
        self._feed_started = False
        self._next_try = 0.0

    # ------------------------------------------------------------ start / stop
    def start(self) -> None:
        """Lead if nobody does, else follow; the runtime's ``sync`` is set either way."""
        if self.writer.try_lead():
            self._lead(None)
        else:
            self._follow()

    def stop(self) -> None:
        if self.follower is not None:
            self.follower.close()
            self.follower = None
        if self.role == "leader":
            self.writer.resign()
        self.reader.close()
        self.writer.close()

    @property
    def leading(self) -> bool:
        return self.role == "leader"

    def leader_url(self) -> str | None:
        """The leader's advertised URL as the store says (None: none published)."""
        try:
            return self.reader.get_meta(LEADER_URL)
        except Exception:  # the store is away: no leader known now
            return None

    # ------------------------------------------------------------ the thread
    def run(self) -> None:
        rt = self.rt
        while not rt._stop.is_set():
            try:
                if self.leading:
                    rt._ingest_loop(keep=self._still_leading)
                    if not rt._stop.is_set() and not self.leading:
                        self._close_sources()
                        self._follow()
                    continue
                self._follow_step()
            except Exception as exc:  # the store is away, a restart: try again shortly
                rt.ingest_errors += 1
                rt.last_ingest_error = f"{type(exc).__name__}: {str(exc)[:300]}"
                log.warning("role %s: %s", self.role, rt.last_ingest_error)
                rt._stop.wait(0.5)

    def _follow_step(self) -> None:
        rt, f = self.rt, self.follower
        if f is None:
            self._follow()
            f = self.follower
        f.await_write(min(0.2, self.interval))
        with rt.lock:  # a state hash sees the state and its position together
            f.catch_up()
        now = _time.monotonic()
        if now >= self._next_try:
            self._next_try = now + self.interval
            if self.writer.try_lead():
                t0 = _time.monotonic()
                with rt.lock:
                    f.catch_up()  # to the store's end: it holds the lock, nobody else writes
                start = (f.pos, f.state)
                f.close()
                self.follower = None
                try:
                    self._lead(start)
                except Exception:  # could not take over (the store went away): let go
                    try:
                        self.writer.resign()
                    except Exception:
                        pass
                    raise  # run() logs it; the next step follows again
                self.last_takeover_s = _time.monotonic() - t0
                log.warning("took over as leader at position %d in %.3f s", start[0],
                            self.last_takeover_s)  # fmt: skip

    def _still_leading(self) -> bool:
        now = _time.monotonic()
        if now < self._next_try:
            return True
        self._next_try = now + self.interval
        try:
            held = self.writer.try_lead()
        except Exception as exc:  # the store is away: keep trying (writes are fenced anyway)
            log.warning("leader lock check failed: %s", exc)
            return True
        if not held:
            log.warning("lost the leader lock: following again")
            self.role = "follower"
        return held

    # ------------------------------------------------------------ role changes
    def _follow(self) -> None:
        from twin.live.replica import Follower

        rt = self.rt
        self.role = "follower"
        sync = Synchroniser(
            _Handover(self.reader, None, meta=False), rt.catalog, cfg=rt._sync_config()
        )
        sync.store = self.reader
        with rt.lock:
            rt.sync, rt.store = sync, self.reader
            rt.hub.last_seq = max(rt.hub.last_seq, sync.pos)
        self.follower = Follower(
            self.reader.url,
            start=(sync.pos, sync.state),
            on_events=self._applied,
            store=self.reader,
        )

    def _applied(self, page: list[tuple[int, Event]]) -> None:
        """A follower applied these (role thread): the API's position and WebSocket clients."""
        rt = self.rt
        rt.sync.pos = page[-1][0]
        rt.hub.publish([encode(p, e) for p, e in page])

    def _lead(self, start: tuple[int, Any] | None) -> None:
        rt = self.rt
        sync = rt._synchroniser(_Handover(self.writer, start))
        sync.store = self.writer
        with rt.lock:
            rt.sync, rt.store = sync, self.writer
            rt.hub.last_seq = max(rt.hub.last_seq, sync.pos)
        self.role = "leader"
        self.takeovers += 1
        self.leader_since = _time.monotonic()
        url = rt.settings.advertise_url
        try:
            if url:
                self.writer.put_meta(LEADER_URL, url)
            self.writer.put_meta(LEADER_SINCE, repr(_time.time()))
        except Exception as exc:  # the store is away: ingest anyway (writes retry), say so
            log.warning("could not publish the leader's URL: %s", exc)
        try:
            rt._connect_sources()
        except Exception as exc:  # refused by the broker: ingest what POST /events brings
            rt.ingest_errors += 1
            rt.last_ingest_error = f"MQTT: {exc}"[:300]
            log.error("leader without MQTT: %s", exc)
        if rt.feed is not None:  # None at the start: the runtime starts it after building it
            self.start_feed()

    def start_feed(self) -> None:
        """The built-in feed runs on the leader only (once: it is not stopped on a step-down)."""
        rt = self.rt
        if rt.feed is not None and not self._feed_started:
            self._feed_started = True
            rt.feed.start(rt.bus)

    def _close_sources(self) -> None:
        rt = self.rt
        for src in rt.sources[1:]:
            try:
                src.close()
            except Exception as exc:
                log.warning("closing %s: %s", type(src).__name__, exc)
        rt.sources = rt.sources[:1]

    def info(self) -> dict[str, Any]:
        """What /state/hash and /health say about the role."""
        return {
            "role": self.role,
            "leader_url": self.leader_url(),
            "takeovers": self.takeovers,
            "last_takeover_s": round(self.last_takeover_s, 4),
        }
