"""The synchroniser: source -> parse -> reorder -> validate -> store -> apply -> physics world.

Per batch of messages: each payload is parsed and bounded (unreadable, out-of-range or
reserved ones become dead letters), put in per-source order by the reorder buffer, validated
against the current state, and applied when valid; then accepted events and dead letters are
written in one durable transaction, and only then are the messages acknowledged and the world
updated. A crash before the commit loses only unacknowledged messages, which the source delivers
again; a restart resumes from the latest snapshot plus a replay of the events after it, which
equals a full replay.

A write that fails leaves nothing ahead of the store: the state and the reorder buffer are
rebuilt from the store (snapshot + replay), nothing of the batch is acknowledged, and
``IngestFailed`` is raised, so the same messages are accepted when they come again. When the
failure is one event the store cannot hold, that event is dead-lettered and the rest of its
batch is stored and applied. ``process`` and ``process_request`` return an ``IngestResult``:
what became of each payload.

``run`` overlaps the two halves (``SyncConfig.overlap``): a writer thread commits batch N while
the ingest thread parses, validates and applies batch N+1 (CPython's sqlite3 releases the GIL
while SQLite inserts and syncs, so the commit uses the second core). The order above holds per
batch: batch N's messages are acknowledged, and ``on_commit`` and the world see its events, only
after its commit returned, in batch order, on the ingest thread; a snapshot is taken only when
nothing is in flight, so it holds exactly the stored events.
"""

from __future__ import annotations

import json
import logging
import re
import time as _time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Protocol

from twin.errors import ConfigError, IngestFailed, InputError
from twin.live import codec
from twin.live.catalog import Catalog
from twin.live.events import (
    MAX_DEPTH,
    MAX_TIME,
    RESERVED_SOURCE_PREFIXES,
    RESERVED_TYPES,
    Event,
    EventFormatError,
    check_event,
    format_time,
    parse_event,
    too_deep,
)
from twin.live.order import Released, ReorderBuffer, ReorderConfig
from twin.live.sources import Message, Source
from twin.live.state import TwinState, apply
from twin.live.store import DeadLetter, EventStore
from twin.live.validate import validate_apply

log = logging.getLogger("twin.live.sync")
DEAD_LETTER_BURST = 100  # dead letters in one batch that make a log line (a producer gone wrong)


class World(Protocol):
    """What the synchroniser pushes into a physics world (implemented by the physics helper)."""

    def set_vehicle_pose(self, vehicle_id: str, segment: str, offset: float) -> None: ...

    def set_equipment_state(self, equipment_id: str, state: str) -> None: ...


@dataclass(kw_only=True)
class SyncConfig:
    batch: int = 2000  # messages per durable commit (at most)
    wait: float = 0.05  # s to wait for the first message of a batch
    snapshot_every: int = 100_000  # events between snapshots
    snapshot_interval: float = 60.0  # s of wall clock between snapshots (if events arrived)
    reorder: ReorderConfig = field(default_factory=ReorderConfig)
    # run(): commit one batch in a writer thread while the next is applied; off by default: on
    # the 2-core bench machine it cost 8-30 % more CPU and never won (docs/events.md)
    overlap: bool = False
    # s an event's time may be ahead of this machine's clock; later is dead-lettered as a
    # producer's clock error. A year by default, since synthetic and test streams are dated
    # ahead; a live deployment sets minutes. None: no limit but 9999-12-31T23:59:59Z
    max_future: float | None = 366 * 86_400.0

    def check(self) -> None:
        problems = []
        if self.batch < 1:
            problems.append(f"batch must be >= 1, got {self.batch}")
        if self.wait < 0:
            problems.append(f"wait must be >= 0 s, got {self.wait}")
        if self.snapshot_every < 1:
            problems.append(f"snapshot_every must be >= 1 event, got {self.snapshot_every}")
        if self.snapshot_interval <= 0:
            problems.append(f"snapshot_interval must be > 0 s, got {self.snapshot_interval}")
        if self.reorder.window < 1 or self.reorder.max_wait <= 0 or self.reorder.tail_wait <= 0:
            problems.append("reorder window must be >= 1 event, max_wait and tail_wait > 0 s")
        if self.max_future is not None and not self.max_future >= 0:
            problems.append(f"max_future must be >= 0 s or None, got {self.max_future}")
        if problems:
            raise ConfigError("sync config", problems)


@dataclass
class SyncStats:
    received: int = 0
    accepted: int = 0
    rejected: int = 0
    duplicates: int = 0
    late: int = 0
    gaps: int = 0
    refused: int = 0  # seqs (or heartbeat tails) beyond the reorder window
    deferred: int = 0  # an end-to-end producer's events not kept now: it sends them again
    failed_writes: int = 0  # store writes that raised (the state was rebuilt each time)
    snapshots: int = 0
    world_errors: int = 0  # poses/states the physics world refused (e.g. ids not in its scene)
    last_world_error: str = ""


ACCEPTED, REJECTED, DUPLICATE, HELD = "accepted", "rejected", "duplicate", "held"


@dataclass(slots=True)
class IngestResult:
    """What one ``process``/``process_request`` call did with each payload it was given, in
    order: ``status`` (accepted | rejected | duplicate | held), ``reason`` (why, when not
    accepted), ``event`` (the parsed event, or None) and ``position`` (its place in the stored
    stream when accepted, else 0). ``released`` counts events of earlier calls that this one
    released from the reorder buffer and stored; ``gaps`` the gaps it declared."""

    status: list[str] = field(default_factory=list)
    reason: list[str | None] = field(default_factory=list)
    event: list[Event | None] = field(default_factory=list)
    position: list[int] = field(default_factory=list)
    released: int = 0
    gaps: int = 0

    @property
    def accepted(self) -> int:
        return self.status.count(ACCEPTED)

    def counts(self) -> dict[str, int]:
        out = dict.fromkeys((ACCEPTED, REJECTED, DUPLICATE, HELD), 0)
        for st in self.status:
            out[st] += 1
        return out

    def extend(self, other: IngestResult) -> None:
        self.status += other.status
        self.reason += other.reason
        self.event += other.event
        self.position += other.position
        self.released += other.released
        self.gaps += other.gaps


class Synchroniser:
    """Keeps a ``TwinState`` in step with a store and a stream of messages."""

    def __init__(
        self,
        store: EventStore,
        catalog: Catalog | None = None,
        *,
        world: World | None = None,
        cfg: SyncConfig | None = None,
        on_commit: Callable[[list[Event]], None] | None = None,
    ) -> None:
        self.cfg = cfg or SyncConfig()
        self.cfg.check()
        self.store = store
        self.world = world
        self.on_commit = on_commit  # called with the accepted events after each commit
        self.stats = SyncStats()
        self.last_refusal = ""  # the latest seq jump or heartbeat refused, for people
        self.store_error: str | None = None  # the last write's failure, until a write succeeds
        if catalog is not None:  # so `state_at` can rebuild the same state without being told
            store.put_meta("catalog", json.dumps(catalog.to_dict()))
        self._catalog = catalog
        self.state, self.pos = self._recover(catalog)
        self.reorder = ReorderBuffer(self.cfg.reorder, start=self._start_positions())
        self._since_snap = 0
        self._snap_wall = _time.monotonic()
        self._pending_acks: dict[tuple[str, int], list[Callable[[], None]]] = {}
        self._writer: ThreadPoolExecutor | None = None  # set while run() overlaps commits
        self._inflight: _Batch | None = None  # the batch the writer is committing
        self._durable: dict[str, int] = {}  # per source, the seq up to which all is committed
        self._stale = False  # a failed write's rebuild from the store failed too

    def _recover(self, catalog: Catalog | None) -> tuple[TwinState, int]:
        snap = self.store.snapshot()
        if snap is not None:
            pos, state = snap
        else:
            pos, state = 0, TwinState(catalog or self.store.catalog())
        for ev in self.store.read(after=pos):
            apply(state, ev)
            pos += 1
        return state, pos

    def _start_positions(self) -> dict[str, int]:
        """Where each source resumes: its highest stored seq (events and dead letters), or
        where an admin's reset moved it (the ``reset:<source>`` record's seq), if later."""
        start: dict[str, int] = {}
        for src, n in self.store.last_seqs().items():
            if src.startswith("gap:"):
                continue
            if src.startswith("reset:"):
                src = src[len("reset:") :]
            start[src] = max(start.get(src, 0), n)
        return start

    def _resync(self) -> None:
        """After a failed write: state, position and reorder buffer rebuilt from the store, so
        the twin holds exactly what is stored; messages waiting for acknowledgement are
        forgotten unacknowledged (their sources deliver them again)."""
        self.stats.failed_writes += 1
        self._inflight = None
        self._pending_acks.clear()
        self._stale = True  # until the rebuild below succeeds, nothing more is taken
        try:
            self._rebuild()
        except Exception as exc:  # the store is unreadable too: the next batch tries again
            log.error("twin state not rebuilt from the store: %s: %s", type(exc).__name__, exc)

    def _rebuild(self) -> None:
        state, pos = self._recover(self._catalog)
        start = self._start_positions()
        self.state, self.pos = state, pos
        self.reorder = ReorderBuffer(self.cfg.reorder, start=start)
        self._stale = False

    def _fresh(self) -> None:
        """Refuse to take events while the state may hold a batch that was never stored (its
        rebuild from the store failed): rebuild first, or raise ``IngestFailed``."""
        if not self._stale:
            return
        try:
            self._rebuild()
        except Exception as exc:
            raise IngestFailed(
                "the twin state could not be rebuilt from the store after a failed write "
                f"({type(exc).__name__}: {str(exc)[:200]}); nothing is taken until it can: "
                "send the same events again"
            ) from exc

    # ----------------------------------------------------------- ingest
    def process(self, messages: list[Message]) -> IngestResult:
        """Ingest one batch durably; returns what became of each event (a JSON-array message
        counts one item per element). A batch holding more than ``cfg.batch`` events is
        committed in slices of that size, so one large backlog does not hold back the
        acknowledgement of its first events. Raises ``IngestFailed`` when the store cannot
        be written (nothing of the failed slice is acknowledged or kept in the state)."""
        return self._process_items(_expand(messages))

    def process_request(
        self,
        payloads: list[Any],
        origin: str,
        *,
        refuse: Callable[[Event], str | None] | None = None,
    ) -> IngestResult:
        """Ingest one request's payloads (Events that ``parse_event`` already checked, or raw
        payloads, which are parsed here); a dead letter names ``origin[index]``. Same as
        ``process`` with one Message per payload, without building them. ``refuse``: the
        caller's own check (e.g. which sources its token may publish): a reason dead-letters
        the event, None lets it through."""
        request = Message(None, origin=origin, checked=True)  # type: ignore[arg-type]
        items = [(p, None, request, k) for k, p in enumerate(payloads)]
        return self._process_items(items, refuse)

    def _process_items(
        self, items: list[_Item], refuse: Callable[[Event], str | None] | None = None
    ) -> IngestResult:
        self.stats.received += len(items)
        step = self.cfg.batch
        if len(items) <= step:
            return self._ingest(items, refuse)
        result = IngestResult()
        for i in range(0, len(items), step):
            result.extend(self._ingest(items[i : i + step], refuse))
        return result

    def _ingest(
        self, items: list[_Item], refuse: Callable[[Event], str | None] | None = None
    ) -> IngestResult:
        self._fresh()
        out = Released()
        dead: list[DeadLetter] = []
        acks: list[Callable[[], None]] = []
        now = _time.time()
        future = self.cfg.max_future
        horizon = MAX_TIME if future is None else min(MAX_TIME, now + future)
        n = len(items)
        res = IngestResult([HELD] * n, [None] * n, [None] * n, [0] * n)
        status, why, events = res.status, res.reason, res.event
        where: dict[int, int] = {}  # id(event) -> index of its item, for the results
        push, pending = self.reorder.push, self._pending_acks
        released, dups, late, refused = out.events, out.duplicates, out.late, out.refused
        deferred = out.deferred
        for k, (payload, ack, m, j) in enumerate(items):
            try:
                if type(payload) is Event:
                    ev = payload
                    if not m.checked:
                        check_event(ev)
                else:
                    ev = parse_event(payload)  # type: ignore[arg-type]
                if (
                    ev.time > horizon
                    or ev.type in RESERVED_TYPES
                    or ev.source.startswith(RESERVED_SOURCE_PREFIXES)
                ):
                    raise EventFormatError(_refused_at_door(ev, now, future))
                if refuse is not None and (no := refuse(ev)) is not None:
                    raise EventFormatError(no)
            except Exception as exc:  # never let one payload stop the stream
                reason = (
                    exc.reason
                    if isinstance(exc, EventFormatError)
                    else f"unreadable payload ({type(exc).__name__})"
                )
                dead.append(DeadLetter(_where(m, j, reason), _raw(payload), received=now))
                status[k], why[k] = REJECTED, reason
                if ack is not None:
                    acks.append(ack)
                continue
            events[k] = ev
            where[id(ev)] = k
            n0, n_dup, n_late, n_ref = len(released), len(dups), len(late), len(refused)
            n_def = len(deferred)
            push(ev, out)
            if len(released) > n0 and released[n0] is ev:
                if ack is not None:
                    acks.append(ack)  # released now: committed below (the in-order fast path)
            elif len(dups) > n_dup:
                status[k], why[k] = DUPLICATE, f"{ev.source} seq {ev.seq} was already received"
                if ack is not None:
                    acks.append(ack)  # already durable: nothing to wait for
            elif len(late) > n_late or len(refused) > n_ref:
                status[k] = REJECTED  # dead-lettered with its reason below
                if ack is not None:
                    acks.append(ack)
            elif len(deferred) > n_def:  # its end-to-end producer sends it again
                why[k] = f"{ev.source} re-sends seq {ev.seq} until confirmed: not kept for now"
                self.stats.deferred += 1
                if ack is not None:
                    acks.append(ack)
            else:
                why[k] = (
                    f"waiting for {ev.source} seq {self.reorder.next_seq(ev.source)} (applied "
                    "when it arrives, or a gap is declared after the reorder wait)"
                )
                if ack is not None:
                    pending.setdefault(ev.key, []).append(ack)  # acked when released
        self.reorder.poll(out)
        return self._commit(out, dead, acks, now, res, where)

    def flush(self) -> IngestResult:
        """End of a finite stream: declare every open gap and commit what was held."""
        return self._commit(self.reorder.flush(), [], [], _time.time())

    def _commit(
        self,
        out: Released,
        dead: list[DeadLetter],
        acks: list[Callable[[], None]],
        now: float,
        res: IngestResult | None = None,
        where: dict[int, int] | None = None,
    ) -> IngestResult:
        pending = self._pending_acks
        accepted, invalid = validate_apply(out.events, self.state)  # shape checked in _ingest()
        if pending:
            for ev in out.events:
                waiting = pending.pop(ev.key, None)
                if waiting:
                    acks.extend(waiting)
        self.stats.duplicates += len(out.duplicates)
        self.stats.late += len(out.late)
        self.stats.gaps += len(out.gaps)
        for gap in out.gaps:  # events the stream lost for good: people must hear of it
            log.warning("gap declared: %s %s", gap.subject, json.dumps(gap.data)[:200])
        late_reason = "arrived after its gap was declared"
        turned = [(ev, late_reason) for ev in out.late] + out.refused  # away by the reorder
        for ev, reason in turned:  # no source/seq: a restart must not resume from them
            dead.append(DeadLetter(reason, ev.to_json(), None, None, now))
        if out.refused:
            self.stats.refused += len(out.refused)
            self.last_refusal = out.refused[-1][1]
        batch = _Batch(accepted, dead + _letters(invalid, now), acks)
        batch.positions = self.reorder.positions()  # released so far: this batch and earlier
        if self._writer is None:
            if accepted or batch.dead:
                invalid = self._write(batch, out, dead, invalid, now)
            first = self.pos + 1
            self._committed(batch)
            if accepted and self._snapshot_due():
                self.snapshot()
        else:
            self._finish()  # the previous batch is durable before this one goes to the writer
            first = self.pos + 1
            if not (accepted or batch.dead):
                self._committed(batch)  # nothing to write (duplicates' acks, an idle poll)
            else:
                batch.future = self._writer.submit(self.store.write, accepted, batch.dead)
                self._inflight = batch
                if accepted and self._snapshot_due():
                    self._finish()  # the snapshot must hold exactly the stored events
                    self.snapshot()
        return _results(res, where, batch.accepted, invalid + turned, first, len(out.gaps))

    def _write(
        self,
        batch: _Batch,
        out: Released,
        door: list[DeadLetter],
        invalid: list[tuple[Event, str]],
        now: float,
    ) -> list[tuple[Event, str]]:
        """The batch's durable write; returns the events validation (or the store) refused.
        On failure the state is rebuilt from the store; events the store cannot hold are
        dead-lettered and the rest validated and written again; any other failure raises
        ``IngestFailed`` with the twin exactly as the store says."""
        try:
            batch.stored = self.store.write(batch.accepted, batch.dead)
            self._store_ok()
            return invalid
        except Exception as exc:
            failure = exc
        bad = {id(ev): r for ev in batch.accepted if (r := _unstorable(ev)) is not None}
        if bad:
            self.state, self.pos = self._recover(self._catalog)  # back to what is stored
            culprits = [
                (ev, f"the store cannot hold this event ({bad[id(ev)]})")
                for ev in batch.accepted
                if id(ev) in bad
            ]
            accepted, invalid = validate_apply(
                [ev for ev in out.events if id(ev) not in bad], self.state
            )
            letters = [DeadLetter(r, _raw(ev.to_dict()), None, None, now) for ev, r in culprits]
            batch.accepted, batch.dead = accepted, door + letters + _letters(invalid, now)
            try:
                batch.stored = self.store.write(batch.accepted, batch.dead)
                self._store_ok()
                return invalid + culprits
            except Exception as exc:
                failure = exc
        self._resync()
        self._store_failed(failure)
        raise IngestFailed(
            f"the event store's write failed ({type(failure).__name__}: {str(failure)[:200]}); "
            "nothing of this batch was stored or acknowledged and the twin state was rebuilt "
            "from the store: send the same events again"
        ) from failure

    def _store_failed(self, exc: BaseException) -> None:
        if self.store_error is None:  # logged once per outage, not per batch
            log.error("event store write failed: %s: %s", type(exc).__name__, str(exc)[:300])
        self.store_error = f"{type(exc).__name__}: {str(exc)[:300]}"

    def _store_ok(self) -> None:
        if self.store_error is not None:
            log.warning("event store writable again after: %s", self.store_error)
            self.store_error = None

    def _finish(self) -> None:
        """Wait for the batch in flight (if any) to be durable, then acknowledge it."""
        batch, self._inflight = self._inflight, None
        if batch is None:
            return
        if batch.future is not None:
            try:
                batch.stored = batch.future.result()
                self._store_ok()
            except Exception as exc:  # nothing is acked; the state goes back to the store's
                self._resync()
                self._store_failed(exc)
                raise IngestFailed(
                    f"the event store's write failed ({type(exc).__name__}: {str(exc)[:200]}); "
                    "the twin state was rebuilt from the store"
                ) from exc
        self._committed(batch)

    def _committed(self, batch: _Batch) -> None:
        accepted = batch.accepted
        self.pos += batch.stored
        if batch.positions is not None:
            self._durable = batch.positions
        self.stats.accepted += len(accepted)
        self.stats.rejected += len(batch.dead)
        if len(batch.dead) >= DEAD_LETTER_BURST:
            log.warning(
                "%d dead letters in one batch; the last: %s",
                len(batch.dead),
                batch.dead[-1].reason[:200],
            )
        for ack in batch.acks:  # durable now: the source may forget these messages
            ack()
        if accepted:
            if self.world is not None:
                self._push_world(accepted)
            if self.on_commit is not None:
                self.on_commit(accepted)
            self._since_snap += len(accepted)

    # ------------------------------------------------------- positions
    def expect_tail(self, source: str, last_seq: int, time: float | None = None) -> str | None:
        """A producer's heartbeat said it published ``source`` up to ``last_seq`` (its last
        event at ``time``): what of it has not arrived when it stops arriving is declared a
        gap. Returns why it was refused (malformed, reserved, beyond the window), else None."""
        if (
            type(source) is not str
            or not source
            or len(source) > 256
            or source.startswith(RESERVED_SOURCE_PREFIXES)
            or type(last_seq) is not int
            or not 1 <= last_seq < 2**63
        ):
            reason = "heartbeat: needs a source name and a last_seq from 1 to 2^63-1"
        else:
            ok_time = type(time) in (int, float) and 0 <= time <= MAX_TIME  # type: ignore[operator]
            reason = self.reorder.expect(source, last_seq, time if ok_time else self.state.clock)
        if reason is not None:
            self.stats.refused += 1
            self.last_refusal = reason
        return reason

    def heartbeats(self, beats: dict[Any, Any]) -> None:
        """Feed heartbeats a source collected: ``{source: last_seq}`` or ``{source:
        {"last_seq": N, "time": T, "resends": bool}}``. A producer that resends until the twin
        confirms (end-to-end delivery) loses nothing, so neither its tail nor a seq missing
        in its stream is ever declared lost: the twin waits for the re-send."""
        for name, beat in list(beats.items())[:10_000]:
            if isinstance(beat, dict):
                if beat.get("resends") is True:
                    if type(name) is str and name and not name.startswith(RESERVED_SOURCE_PREFIXES):
                        self.reorder.be_patient(name)  # it re-sends: never declare its losses
                    continue
                self.expect_tail(name, beat.get("last_seq"), beat.get("time"))  # type: ignore[arg-type]
            else:
                self.expect_tail(name, beat)

    def reset_source(self, source: str, to_seq: int, *, by: str, reason: str = "") -> Event:
        """An admin moves ``source`` forward: seqs up to ``to_seq`` count as done (skipped),
        the next expected is ``to_seq + 1``. Stored as a ``stream.reset`` audit event (source
        ``reset:<source>``), which a restart honours. Raises InputError when it cannot be."""
        problems = []
        if type(source) is not str or not source or source.startswith(RESERVED_SOURCE_PREFIXES):
            problems.append("source: a producer's source name (not gap:... or reset:...)")
        if type(to_seq) is not int or not 1 <= to_seq < 2**63:
            problems.append(f"to_seq must be an integer from 1 to 2^63-1, got {to_seq!r:.40}")
        elif not problems and to_seq < self.reorder.next_seq(source):
            problems.append(
                f"{source} is already at seq {self.reorder.next_seq(source) - 1}; a reset only "
                "moves forward (a producer that starts again from 1 publishes as a new source)"
            )
        if problems:
            raise InputError(f"reset of source {str(source)[:60]!r}", problems)
        now = _time.time()
        first, released, dropped = self.reorder.skip(source, to_seq)
        data = {"from_seq": first, "to_seq": to_seq, "by": by, "at": format_time(now)}
        if reason:
            data["reason"] = reason
        audit = Event(
            f"reset:{source}:{to_seq}", f"reset:{source}", to_seq,
            self.state.clock or now, "stream.reset", source, data,
        )  # fmt: skip
        check_event(audit)  # by and reason are bounded like any event's text
        acks = [a for ev in dropped for a in self._pending_acks.pop(ev.key, [])]
        self._commit(Released(events=[audit, *released]), [], acks, now)
        return audit

    def _snapshot_due(self) -> bool:
        return (
            self._since_snap >= self.cfg.snapshot_every
            or _time.monotonic() - self._snap_wall >= self.cfg.snapshot_interval
        )

    def snapshot(self) -> None:
        self._finish()  # the snapshot holds exactly the stored events
        self.store.save_snapshot(self.state, self.pos)
        self.stats.snapshots += 1
        self._since_snap = 0
        self._snap_wall = _time.monotonic()

    def _push_world(self, events: list[Event]) -> None:
        poses: dict[str, tuple[str, float]] = {}
        states: dict[str, str] = {}
        for ev in events:  # only the latest pose/state per entity in a batch matters
            if ev.type == "vehicle.position":
                poses[ev.subject] = (ev.data["segment"], float(ev.data["offset"]))
            elif ev.type == "equipment.state":
                states[ev.subject] = ev.data["state"]
        world = self.world
        calls = [(world.set_vehicle_pose, (v, seg, off)) for v, (seg, off) in poses.items()]  # type: ignore[union-attr]
        calls += [(world.set_equipment_state, (e, st)) for e, st in states.items()]  # type: ignore[union-attr]
        for fn, args in calls:
            try:
                fn(*args)
            except Exception as exc:  # the state is committed; a world that disagrees is reported
                self.stats.world_errors += 1
                self.stats.last_world_error = f"{fn.__name__}{args}: {exc}"[:300]

    def run(
        self,
        source: Source,
        *,
        stop: Callable[[], bool] | None = None,
        idle_exit: float | None = None,
    ) -> SyncStats:
        """Ingest until the source is exhausted, ``stop()`` is true, or ``idle_exit`` s pass
        without a message; then flush held events and take a snapshot."""
        if self.cfg.overlap:
            self._writer = ThreadPoolExecutor(1, thread_name_prefix="twin-store-writer")
        try:
            self._run(source, stop, idle_exit)
            self._finish()
        finally:
            if self._writer is not None:
                self._writer.shutdown()  # a commit still running completes; it is not acked
                self._writer, self._inflight = None, None
        self.flush()
        confirm = getattr(source, "confirm", None)
        if confirm is not None:
            confirm(self.reorder.positions())
        if self._since_snap:
            self.snapshot()
        return self.stats

    def _run(
        self, source: Source, stop: Callable[[], bool] | None, idle_exit: float | None
    ) -> None:
        last = _time.monotonic()
        confirm = getattr(source, "confirm", None)  # sources that tell publishers what is durable
        beats = getattr(source, "heartbeats", None)  # sources that hear producers' last seqs
        confirmed_at = 0.0
        self._durable = self.reorder.positions()  # nothing in flight yet: all of it is stored
        while not source.exhausted and not (stop is not None and stop()):
            if beats is not None and (heard := beats()):
                self.heartbeats(heard)
                last = _time.monotonic()  # a producer spoke: its tail may still be declared
            # with a batch in flight, look for more without waiting: if none came, the ingest
            # thread finishes that batch (acks it) rather than sleeping on its acknowledgement
            batch = source.receive(self.cfg.batch, 0.0 if self._inflight else self.cfg.wait)
            if batch:
                last = _time.monotonic()
                self.process(batch)
            elif self._inflight is not None:
                self._finish()
            else:
                self._fresh()
                self._commit(self.reorder.poll(), [], [], _time.time())
                if idle_exit is not None and _time.monotonic() - last >= idle_exit:
                    break
            # often: an end-to-end producer sends only a window ahead of what is confirmed
            # (MqttConfig.send_window); a batch still in flight is confirmed once committed
            if confirm is not None and _time.monotonic() - confirmed_at >= 0.01:
                confirm(self._durable)
                confirmed_at = _time.monotonic()


@dataclass(slots=True)
class _Batch:
    """One batch between its validation and its acknowledgement."""

    accepted: list[Event]
    dead: list[DeadLetter]
    acks: list[Callable[[], None]]
    stored: int = 0  # events the store inserted (a second copy of a (source, seq) is not)
    future: Future[int] | None = None  # the writer thread's commit, when run() overlaps
    positions: dict[str, int] | None = None  # per source, durable once this batch is


class _SharedAck:
    """One message carrying several events is acknowledged when the last of them is durable."""

    __slots__ = ("left", "ack")

    def __init__(self, ack: Callable[[], None], n: int) -> None:
        self.ack, self.left = ack, n

    def __call__(self) -> None:
        self.left -= 1
        if self.left == 0:
            self.ack()


# (payload, ack, message it came in, index in a JSON-array message or -1)
_Item = tuple[Any, "Callable[[], None] | None", Message, int]


def _expand(messages: list[Message]) -> list[_Item]:
    """One item per event: messages whose payload is a JSON array of events (a batched
    publish) give one item per element, sharing the message's acknowledgement."""
    out: list[_Item] = []
    for m in messages:
        p = m.payload
        if not ((type(p) is bytes and p[:1] == b"[") or (type(p) is str and p[:1] == "[")):
            out.append((p, m.ack, m, -1))
            continue
        try:
            items = codec.loads(p)
        except (ValueError, RecursionError):
            # one element the parsers refuse (too deep, not JSON) must not lose the others:
            # split the array into element texts, each parsed (and refused) on its own
            items = _split_array(p)
        if not items or not isinstance(items, list):
            out.append((p, m.ack, m, -1))
            continue
        ack = _SharedAck(m.ack, len(items)) if m.ack is not None else None
        out.extend([(item, ack, m, k) for k, item in enumerate(items)])
    return out


_TOKENS = re.compile(rb'"(?:[^"\\]|\\.)*"|[\[\]{},]')


def _split_array(payload: str | bytes) -> list[bytes] | None:
    """The element texts of a JSON array whose whole parse failed (None if it is not an
    array of that shape): strings are skipped as tokens, brackets counted, never recursing."""
    raw = payload.encode("utf-8", "surrogatepass") if isinstance(payload, str) else payload
    depth, start, out = 0, 1, []
    for m in _TOKENS.finditer(raw):
        tok = m.group()
        if tok[:1] == b'"':
            continue
        if tok in (b"[", b"{"):
            depth += 1
        elif tok in (b"]", b"}"):
            depth -= 1
            if depth == 0:
                out.append(raw[start : m.start()])
                return [e for e in out if e.strip()] if raw[m.end() :].strip() == b"" else None
        elif tok == b"," and depth == 1:
            out.append(raw[start : m.start()])
            start = m.end()
    return None


_MAX_RAW = 100_000  # characters of a dead letter's payload kept


def _raw(payload: Any) -> str:
    """A payload as dead-letter text: at most _MAX_RAW characters of valid UTF-8 (lone
    surrogates escaped), never raising whatever the payload (deep, huge, hostile)."""
    if isinstance(payload, bytes | bytearray):
        text = bytes(payload[: _MAX_RAW * 4]).decode("utf-8", errors="replace")
    elif isinstance(payload, str):
        text = payload
    elif too_deep(payload):
        text = f"<a {type(payload).__name__} nested deeper than {MAX_DEPTH} levels>"
    else:
        try:
            text = json.dumps(payload, default=repr)  # ensure_ascii: surrogates as \\ud800
        except Exception:
            text = f"<an unprintable {type(payload).__name__}>"
    text = text[:_MAX_RAW]
    if not text.isascii():
        text = text.encode("utf-8", errors="backslashreplace").decode("utf-8")
    return text


def _where(m: Message, k: int, reason: str) -> str:
    origin = m.origin if k < 0 else f"{m.origin}[{k}]"
    return f"{origin}: {reason}" if origin else reason


def _letters(invalid: list[tuple[Event, str]], now: float) -> list[DeadLetter]:
    """Dead letters of events validation refused: released in order, so they keep their
    source and seq (a restart resumes after them)."""
    return [DeadLetter(reason, ev.to_json(), ev.source, ev.seq, now) for ev, reason in invalid]


def _results(
    res: IngestResult | None,
    where: dict[int, int] | None,
    accepted: list[Event],
    refused: list[tuple[Event, str]],
    first: int,
    gaps: int,
) -> IngestResult:
    """Fill in what the commit decided: positions of the accepted, reasons of the refused."""
    if res is None or where is None:
        res = IngestResult()
        res.released = sum(1 for ev in accepted if ev.type != "stream.gap")
        res.gaps = gaps
        return res
    status, position, why = res.status, res.position, res.reason
    get = where.get
    for pos, ev in enumerate(accepted, start=first):
        k = get(id(ev))
        if k is not None:
            status[k], position[k], why[k] = ACCEPTED, pos, None
        elif ev.type != "stream.gap":
            res.released += 1
    for ev, reason in refused:
        k = get(id(ev))
        if k is not None:
            status[k], why[k] = REJECTED, reason
    res.gaps = gaps
    return res


def _unstorable(ev: Event) -> str | None:
    """Why a store could not hold ``ev`` (bounds, text, JSON), or None."""
    try:
        check_event(ev)
        codec.dumps(ev.data).encode("utf-8")
    except EventFormatError as exc:
        return exc.reason
    except Exception as exc:
        return f"{type(exc).__name__}: {str(exc)[:100]}"
    return None


def _refused_at_door(ev: Event, now: float, future: float | None) -> str:
    if ev.type in RESERVED_TYPES or ev.source.startswith(RESERVED_SOURCE_PREFIXES):
        return (
            f"{ev.type} from source {ev.source[:60]!r}: the sources gap:... and reset:... and "
            "the types stream.gap and stream.reset are written by the twin itself"
        )
    return (
        f"'time' {format_time(ev.time)} is more than {future:.0f} s ahead of this twin's clock "
        f"({format_time(now)}); a producer's clock is wrong, or raise max_future"
    )
