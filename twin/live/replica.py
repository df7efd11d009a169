"""Several twin servers on one PostgreSQL store (issue 20, first step): one ingests, the others
follow the store.

- The leader is whichever server holds the store's leader lock (``PostgresStore.try_lead``, a
  PostgreSQL session advisory lock). PostgreSQL drops the lock with its connection, so when the
  leader dies (``kill -9`` included) a follower's next ``try_lead`` succeeds; a leader that lost
  its connection cannot write until it holds the lock again (the store fences its writes).
- A follower keeps its own ``TwinState``, equal to a replay of the store up to ``pos``: it
  LISTENs on the store's channel (every committed write NOTIFYs its last position) and then reads
  the events after ``pos`` in order. A missed notification costs only delay: every wake-up, and
  every ``timeout`` without one, catches up by position.

The API server switches between the two roles in ``twin_api.roles`` (a follower there applies
the store's events with ``Follower`` into the state the API serves).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from twin.errors import StoreError
from twin.live.catalog import Catalog
from twin.live.events import Event
from twin.live.state import TwinState, apply
from twin.live.store_pg import PostgresStore, _reason


class Follower:
    """The twin state of a PostgreSQL store, kept up to date by notification and position."""

    def __init__(
        self,
        url: str,
        catalog: Catalog | None = None,
        *,
        start: tuple[int, TwinState] | None = None,
        on_events: Callable[[list[tuple[int, Event]]], None] | None = None,
        store: PostgresStore | None = None,
    ) -> None:
        """``start``: a (position, state) equal to a replay up to there, followed from there
        (else the latest snapshot or an empty state); ``on_events``: called after each page
        of events applied, with (position, event) pairs; ``store``: a read-only store of
        ``url`` to read with (else one of its own)."""
        import psycopg

        self.on_events = on_events
        self._own_store = store is None
        self.store = store if store is not None else PostgresStore(url, readonly=True)
        try:
            # listen first: a write committed while catching up is then notified, not missed
            self._listen: Any = psycopg.connect(url, autocommit=True)
            self._listen.execute(f"LISTEN {self.store.channel}")
        except psycopg.Error as exc:
            if self._own_store:
                self.store.close()
            raise StoreError(
                self.store.shown, f"cannot listen ({_reason(exc, url, self.store.shown)})"
            ) from None
        snap = start if start is not None else self.store.snapshot()
        if snap is None:
            self.pos, self.state = 0, TwinState(catalog or self.store.catalog())
        else:
            self.pos, self.state = snap
        self.catch_up()

    def catch_up(self) -> int:
        """Apply the stored events after ``pos``; returns how many."""
        n, state, page = 0, self.state, []
        for pos, ev in self.store.read_positioned(after=self.pos):
            apply(state, ev)
            self.pos, n = pos, n + 1
            if self.on_events is not None:
                page.append((pos, ev))
                if len(page) >= 1000:
                    self.on_events(page)
                    page = []
        if page and self.on_events is not None:
            self.on_events(page)
        return n

    def wait(self, timeout: float) -> int:
        """Wait up to ``timeout`` s for a notified write past ``pos``, then catch up; returns
        the events applied (0: nothing new)."""
        self.await_write(timeout)
        return self.catch_up()

    def await_write(self, timeout: float) -> bool:
        """Wait up to ``timeout`` s for a notified write past ``pos``, applying nothing (the
        caller then catches up, under its own lock); whether one came."""
        deadline = time.monotonic() + timeout
        try:
            while (left := deadline - time.monotonic()) > 0:
                got = [int(n.payload) for n in self._listen.notifies(timeout=left, stop_after=1)]
                if any(p > self.pos for p in got):
                    return True
        except Exception:  # the listening connection dropped (a restart): listen again
            self._relisten()
        return False

    def _relisten(self) -> None:
        import psycopg

        try:
            self._listen.close()
            self._listen = psycopg.connect(self.store.url, autocommit=True)
            self._listen.execute(f"LISTEN {self.store.channel}")
        except psycopg.Error:
            time.sleep(0.5)  # the server is away: the next wait tries again

    def run(self, stop: Callable[[], bool], poll: float = 1.0) -> None:
        """Follow until ``stop()`` is true."""
        while not stop():
            self.wait(poll)

    def close(self) -> None:
        self._listen.close()
        if self._own_store:
            self.store.close()

    def __enter__(self) -> Follower:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
