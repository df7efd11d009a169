"""The synchroniser: source -> parse -> reorder -> validate -> store -> apply -> physics world.

Per batch of messages: each payload is parsed (unreadable ones become dead letters), put in
per-source order by the reorder buffer, validated against the current state, and applied when
valid; then accepted events and dead letters are written in one durable transaction, and only
then are the messages acknowledged and the world updated. A crash before the commit loses only
unacknowledged messages, which the source delivers again; a restart resumes from the latest
snapshot plus a replay of the events after it, which equals a full replay.

``run`` overlaps the two halves (``SyncConfig.overlap``): a writer thread commits batch N while
the ingest thread parses, validates and applies batch N+1 (CPython's sqlite3 releases the GIL
while SQLite inserts and syncs, so the commit uses the second core). The order above holds per
batch: batch N's messages are acknowledged, and ``on_commit`` and the world see its events, only
after its commit returned, in batch order, on the ingest thread; a snapshot is taken only when
nothing is in flight, so it holds exactly the stored events.
"""

from __future__ import annotations

import json
import time as _time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Protocol

from twin.errors import ConfigError
from twin.live import codec
from twin.live.catalog import Catalog
from twin.live.events import Event, EventFormatError, check_event, parse_event
from twin.live.order import Released, ReorderBuffer, ReorderConfig
from twin.live.sources import Message, Source
from twin.live.state import TwinState, apply
from twin.live.store import DeadLetter, EventStore
from twin.live.validate import validate_apply


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
        if self.reorder.window < 1 or self.reorder.max_wait <= 0:
            problems.append("reorder window must be >= 1 event and max_wait > 0 s")
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
    snapshots: int = 0
    world_errors: int = 0  # poses/states the physics world refused (e.g. ids not in its scene)
    last_world_error: str = ""


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
        if catalog is not None:  # so `state_at` can rebuild the same state without being told
            store.put_meta("catalog", json.dumps(catalog.to_dict()))
        self.state, self.pos = self._recover(catalog)
        start = {s: n for s, n in store.last_seqs().items() if not s.startswith("gap:")}
        self.reorder = ReorderBuffer(self.cfg.reorder, start=start)
        self._since_snap = 0
        self._snap_wall = _time.monotonic()
        self._pending_acks: dict[tuple[str, int], list[Callable[[], None]]] = {}
        self._writer: ThreadPoolExecutor | None = None  # set while run() overlaps commits
        self._inflight: _Batch | None = None  # the batch the writer is committing

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

    # ----------------------------------------------------------- ingest
    def process(self, messages: list[Message]) -> int:
        """Ingest one batch durably; returns the number of events accepted. A batch holding
        more than ``cfg.batch`` events (JSON-array messages) is committed in slices of that
        size, so one large backlog does not hold back the acknowledgement of its first events."""
        return self._process_items(_expand(messages))

    def process_request(self, payloads: list[Any], origin: str) -> int:
        """Ingest one request's payloads (Events that ``parse_event`` already checked, or raw
        payloads, which are parsed here); a dead letter names ``origin[index]``. Same as
        ``process`` with one Message per payload, without building them."""
        request = Message(None, origin=origin, checked=True)  # type: ignore[arg-type]
        return self._process_items([(p, None, request, k) for k, p in enumerate(payloads)])

    def _process_items(self, items: list[_Item]) -> int:
        self.stats.received += len(items)
        step = self.cfg.batch
        if len(items) <= step:
            return self._ingest(items)
        return sum(self._ingest(items[i : i + step]) for i in range(0, len(items), step))

    def _ingest(self, items: list[_Item]) -> int:
        out = Released()
        dead: list[DeadLetter] = []
        acks: list[Callable[[], None]] = []
        now = _time.time()
        push, pending = self.reorder.push, self._pending_acks
        released, dups, late = out.events, out.duplicates, out.late
        for payload, ack, m, k in items:
            try:
                if type(payload) is Event:
                    ev = payload
                    if not m.checked:
                        check_event(ev)
                else:
                    ev = parse_event(payload)  # type: ignore[arg-type]
            except Exception as exc:  # never let one payload stop the stream
                reason = (
                    exc.reason
                    if isinstance(exc, EventFormatError)
                    else f"unreadable payload ({type(exc).__name__})"
                )
                dead.append(DeadLetter(_where(m, k, reason), _raw(payload), received=now))
                if ack is not None:
                    acks.append(ack)
                continue
            if ack is None:
                push(ev, out)
                continue
            n0, n_dup, n_late = len(released), len(dups), len(late)
            push(ev, out)
            if len(released) > n0 and released[n0] is ev:
                acks.append(ack)  # released now: committed below (the in-order fast path)
            elif len(dups) > n_dup or len(late) > n_late:
                acks.append(ack)  # already durable (or declared lost): nothing to wait for
            else:
                pending.setdefault(ev.key, []).append(ack)  # held: acked when released
        self.reorder.poll(out)
        return self._commit(out, dead, acks, now)

    def flush(self) -> int:
        """End of a finite stream: declare every open gap and commit what was held."""
        return self._commit(self.reorder.flush(), [], [], _time.time())

    def _commit(
        self, out: Released, dead: list[DeadLetter], acks: list[Callable[[], None]], now: float
    ) -> int:
        pending = self._pending_acks
        accepted, rejected = validate_apply(out.events, self.state)  # shape checked in _ingest()
        for ev, reason in rejected:
            dead.append(DeadLetter(reason, ev.to_json(), ev.source, ev.seq, now))
        if pending:
            for ev in out.events:
                waiting = pending.pop(ev.key, None)
                if waiting:
                    acks.extend(waiting)
        self.stats.duplicates += len(out.duplicates)
        self.stats.late += len(out.late)
        self.stats.gaps += len(out.gaps)
        for ev in out.late:
            dead.append(
                DeadLetter("arrived after its gap was declared", ev.to_json(), None, None, now)
            )
        batch = _Batch(accepted, dead, acks)
        if self._writer is None:
            if accepted or dead:
                batch.stored = self.store.write(accepted, dead)
            self._committed(batch)
            if accepted and self._snapshot_due():
                self.snapshot()
            return len(accepted)
        self._finish()  # the previous batch is durable before this one goes to the writer
        if not (accepted or dead):
            self._committed(batch)  # nothing to write (duplicates' acks, an idle poll)
            return 0
        batch.future = self._writer.submit(self.store.write, accepted, dead)
        self._inflight = batch
        if accepted and self._snapshot_due():
            self._finish()  # the snapshot must hold exactly the stored events
            self.snapshot()
        return len(accepted)

    def _finish(self) -> None:
        """Wait for the batch in flight (if any) to be durable, then acknowledge it."""
        batch, self._inflight = self._inflight, None
        if batch is None:
            return
        if batch.future is not None:
            batch.stored = batch.future.result()  # a failed commit raises here: nothing is acked
        self._committed(batch)

    def _committed(self, batch: _Batch) -> None:
        accepted = batch.accepted
        self.pos += batch.stored
        self.stats.accepted += len(accepted)
        self.stats.rejected += len(batch.dead)
        for ack in batch.acks:  # durable now: the source may forget these messages
            ack()
        if accepted:
            if self.world is not None:
                self._push_world(accepted)
            if self.on_commit is not None:
                self.on_commit(accepted)
            self._since_snap += len(accepted)

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
        confirmed_at = 0.0
        while not source.exhausted and not (stop is not None and stop()):
            # with a batch in flight, look for more without waiting: if none came, the ingest
            # thread finishes that batch (acks it) rather than sleeping on its acknowledgement
            batch = source.receive(self.cfg.batch, 0.0 if self._inflight else self.cfg.wait)
            if batch:
                last = _time.monotonic()
                self.process(batch)
            elif self._inflight is not None:
                self._finish()
            else:
                self._commit(self.reorder.poll(), [], [], _time.time())
                if idle_exit is not None and _time.monotonic() - last >= idle_exit:
                    break
            if confirm is not None and _time.monotonic() - confirmed_at >= 0.1:
                self._finish()  # everything released is committed by now
                confirm(self.reorder.positions())
                confirmed_at = _time.monotonic()


@dataclass(slots=True)
class _Batch:
    """One batch between its validation and its acknowledgement."""

    accepted: list[Event]
    dead: list[DeadLetter]
    acks: list[Callable[[], None]]
    stored: int = 0  # events the store inserted (a second copy of a (source, seq) is not)
    future: Future[int] | None = None  # the writer thread's commit, when run() overlaps


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
            items = None  # the parser reports it as a dead letter
        if not items or not isinstance(items, list):
            out.append((p, m.ack, m, -1))
            continue
        ack = _SharedAck(m.ack, len(items)) if m.ack is not None else None
        out.extend([(item, ack, m, k) for k, item in enumerate(items)])
    return out


def _raw(payload: Any) -> str:
    if isinstance(payload, bytes | bytearray):
        return payload.decode("utf-8", errors="replace")
    if isinstance(payload, str):
        return payload
    try:
        return json.dumps(payload, default=str)[:100_000]
    except (TypeError, ValueError, RecursionError):
        return repr(payload)[:100_000]


def _where(m: Message, k: int, reason: str) -> str:
    origin = m.origin if k < 0 else f"{m.origin}[{k}]"
    return f"{origin}: {reason}" if origin else reason
