"""The twin runtime behind the API: scene, process model, event store, synchroniser, physics
world, the in-process bus with its feed (the fab emulator or a synthetic stream) and MQTT, the
WebSocket hub and the what-if jobs.

It is built and started in the app's lifespan and stopped there. One ingest thread drains the
bus (and MQTT) into the synchroniser; ``POST /events`` goes through the same synchroniser under
the same lock, so every event is validated, stored and applied exactly once, in order. Reads
never take the lock: they copy what they need (``list(dict.values())`` is atomic under the GIL)
and may see a record a few events old, never a broken container.
"""

from __future__ import annotations

import logging
import threading
import time as _time
from collections.abc import Sequence
from itertools import chain
from operator import is_
from typing import Any

from services.api.feed import EventFeed, feed_for
from services.api.hub import StreamHub, encode
from services.api.metrics import Histogram
from services.api.settings import Settings
from twin.live.catalog import Catalog
from twin.live.events import Event, EventFormatError, parse_event
from twin.live.sources import Bus
from twin.live.state import TwinState
from twin.live.store import DeadLetter, EventStore, MemoryStore, SQLiteStore
from twin.live.sync import SyncConfig, Synchroniser

log = logging.getLogger("twin.api")


class _RecordingStore:
    """Wraps the real store (every other attribute passes through) and remembers the dead
    letters of the current POST /events batch, so the caller hears why each rejected event
    was rejected."""

    def __init__(self, inner: EventStore) -> None:
        self.inner = inner
        self.recording = False
        self.dead: list[DeadLetter] = []

    def write(self, events: Sequence[Event], dead: Sequence[DeadLetter] = ()) -> int:
        n = self.inner.write(events, dead)
        if self.recording:
            self.dead.extend(dead)
        return n

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


class _GuardedWorld:
    """The physics world as the synchroniser sees it: a physics error is logged and counted,
    never allowed to stop ingest (the event is already durable and applied)."""

    def __init__(self, world: Any) -> None:
        self.world = world
        self.errors = 0

    def set_vehicle_pose(self, vehicle_id: str, segment: str, offset: float) -> None:
        try:
            self.world.set_vehicle_pose(vehicle_id, segment, offset)
        except Exception as exc:
            self._failed("set_vehicle_pose", vehicle_id, exc)

    def set_equipment_state(self, equipment_id: str, state: str) -> None:
        try:
            self.world.set_equipment_state(equipment_id, state)
        except Exception as exc:
            self._failed("set_equipment_state", equipment_id, exc)

    def _failed(self, what: str, key: str, exc: Exception) -> None:
        self.errors += 1
        if self.errors <= 10:
            log.warning("physics %s(%s) failed: %s", what, key, exc)


class TwinRuntime:
    """Everything the API serves; ``start()`` brings it up, ``stop()`` takes it down cleanly."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.scene: Any = None
        self.model: Any = None
        self.catalog: Catalog | None = None
        self.world: Any = None
        self.store: Any = None  # a _RecordingStore around the event store
        self.sync: Synchroniser | None = None
        self.bus = Bus()
        self.sources: list[Any] = []
        self.feed: EventFeed | None = None
        self.hub = StreamHub(history=settings.history, queue=settings.ws_queue)
        self.jobs: Any = None
        self.lock = threading.RLock()  # serialises the synchroniser
        self.started = 0.0
        self.ingest_lag = 0.0  # s, receipt -> durable commit of the last batch
        self.ingest_seconds = Histogram(
            "twin_ingest_lag_seconds_hist", "receipt to durable commit per batch", ("via",)
        )
        self.request_seconds = Histogram(
            "twin_http_request_duration_seconds",
            "HTTP request latency",
            ("method", "route", "status"),
        )
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._readers = threading.local()
        self._glb: bytes | None = None
        self._recording = False  # POST /events is collecting what its batch committed
        self._commits: list[tuple[int, list[Event]]] = []  # (first position, events) per commit
        self.physics_error: str | None = None
        self.ingest_errors = 0  # exceptions caught in the ingest loop
        self.equipment_info: dict[str, tuple[str, str | None]] = {}  # id -> (kind, bay)
        self.rendered: dict[str, tuple[Any, int, bytes]] = {}  # id -> (record, rev, JSON)

    # ----------------------------------------------------------- lifecycle
    def start(self) -> None:
        from twin.scene.load import load_scene

        s = self.settings
        self.scene = load_scene(s.scene)
        process = s.process or self.scene.metadata.get("process_dir")
        if process:
            from twin.process import load_model

            self.model = load_model(process)
        self.catalog = Catalog.from_scene(self.scene, self.model)
        self.equipment_info = {
            n.id: (n.kind, bay_of(self.scene, n))
            for n in self.scene.nodes(("tool", "stocker", "station"))
        }
        if s.physics:
            self.world = self._physics()
        inner: EventStore = (
            SQLiteStore(s.store, synchronous=s.synchronous) if s.store else MemoryStore()
        )
        self.store = _RecordingStore(inner)
        self.sync = Synchroniser(
            self.store,  # type: ignore[arg-type]
            self.catalog,
            world=_GuardedWorld(self.world) if self.world is not None else None,
            cfg=SyncConfig(),
            on_commit=self._committed,
        )
        self.hub.last_seq = self.sync.pos
        self.sources = [self.bus]
        if s.mqtt:
            from twin.live.mqtt import MqttConfig, MqttSource

            self.sources.append(MqttSource(MqttConfig.from_url(s.mqtt, client_id="twin-api")))
        from services.api.jobs import JobManager

        self.jobs = JobManager(self)
        # built before anything runs: a scene that does not fit its model fails the start
        self.feed = feed_for(
            s.feed,
            self.catalog,
            scene=self.scene,
            model=self.model,
            speed=s.feed_speed,
            seed=s.feed_seed,
        )
        self._thread = threading.Thread(target=self._ingest_loop, name="twin-ingest", daemon=True)
        self._thread.start()
        if self.feed is not None:
            self.feed.start(self.bus)
        self.started = _time.time()

    def _physics(self) -> Any:
        try:
            from twin.physics.world import PhysicsWorld

            return PhysicsWorld(self.scene)
        except ImportError as exc:  # pybullet or the physics module not installed
            self.physics_error = f"physics not available: {exc}"
            log.warning(self.physics_error)
            return None

    def stop(self) -> None:
        if self.feed is not None:
            self.feed.stop()
        if self.jobs is not None:
            self.jobs.shutdown()
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        for src in self.sources[1:]:
            src.close()
        if self.sync is not None:
            with self.lock:
                self.sync.flush()
                if self.sync.pos:
                    self.sync.snapshot()
        if self.world is not None:
            self.world.close()
        if self.store is not None:
            self.store.close()

    # -------------------------------------------------------------- ingest
    def _ingest_loop(self) -> None:
        sync = self.sync
        assert sync is not None
        while not self._stop.is_set():
            try:
                got = False
                for src in self.sources:
                    wait = sync.cfg.wait if len(self.sources) == 1 else 0.01
                    batch = src.receive(sync.cfg.batch, wait)
                    if batch:
                        got = True
                        with self.lock:
                            sync.process(batch)
                        self._lag(min(m.received for m in batch), "bus")
                if not got:
                    with self.lock:
                        sync.process([])  # declares gaps whose wait is over
            except Exception:  # keep ingesting; unacknowledged messages are delivered again
                self.ingest_errors += 1
                log.exception("ingest loop error")
                self._stop.wait(0.5)

    def _lag(self, received: float, via: str) -> None:
        self.ingest_lag = max(0.0, _time.time() - received)
        self.ingest_seconds.observe(self.ingest_lag, via)

    def _committed(self, accepted: list[Event]) -> None:
        """Synchroniser callback after each durable commit (ingest thread, lock held)."""
        sync = self.sync
        assert sync is not None
        first = sync.pos - len(accepted) + 1
        items = list(map(encode, range(first, sync.pos + 1), accepted))
        if self._recording:
            self._commits.append((first, accepted))
        self.hub.publish(items)

    def ingest(self, payloads: list[Any], origin: str = "POST /events") -> list[dict[str, Any]]:
        """Validate, store and apply a batch; one result per payload, in order: ``index``,
        ``status`` (accepted | rejected | duplicate | held), ``id`` when the payload has one,
        ``seq`` (stream position) when accepted, ``reason`` otherwise."""
        received = _time.time()
        results: list[dict[str, Any] | None] = [None] * len(payloads)
        batch: list[Any] = []  # parsed Events, and the raw payloads that will be dead-lettered
        index: list[int] = []  # where each parsed event is in the request
        parsed: list[Event] = []
        for i, raw in enumerate(payloads):
            try:
                ev = parse_event(raw)
            except EventFormatError as exc:
                results[i] = _result(i, "rejected", _id_of(raw), exc.reason)
                batch.append(raw)  # dead-lettered durably, as origin[i]
                continue
            index.append(i)
            parsed.append(ev)
            batch.append(ev)
        sync, store = self.sync, self.store
        assert sync is not None and isinstance(store, _RecordingStore)
        with self.lock:
            self._commits, store.dead = [], []
            self._recording = store.recording = True
            try:
                sync.process_request(batch, origin)
            finally:
                self._recording = store.recording = False
            commits = self._commits  # what this batch committed, with stream positions
            dead = {(d.source, d.seq): d.reason for d in store.dead if d.source is not None}
            last = dict(sync.state.last_seq)
            self._commits, store.dead = [], []
        committed = list(chain.from_iterable(evs for _, evs in commits))
        if len(committed) == len(parsed) and all(map(is_, committed, parsed)):
            # the common case: every parsed event committed once, in the order posted (the
            # same objects), so each one's position is known without a lookup per event
            at = chain.from_iterable(range(p, p + len(evs)) for p, evs in commits)
            for i, ev, pos in zip(index, parsed, at):
                results[i] = {"index": i, "status": "accepted", "id": ev.id, "seq": pos}
            self._lag(received, "http")
            return results  # type: ignore[return-value]
        positions = {ev.key: p + k for p, evs in commits for k, ev in enumerate(evs)}
        seen: set[tuple[str, int]] = set()
        for i, ev in zip(index, parsed):
            key = ev.key
            pos = positions.get(key)
            if pos is not None and key not in seen:  # the common case first
                results[i] = {"index": i, "status": "accepted", "id": ev.id, "seq": pos}
            elif key in seen:
                results[i] = _result(i, "duplicate", ev.id, "repeated in this batch")
            elif key in dead:
                results[i] = _result(i, "rejected", ev.id, dead[key])
            elif ev.seq <= last.get(ev.source, 0):
                why = f"{ev.source} seq {ev.seq} was already received"
                results[i] = _result(i, "duplicate", ev.id, why)
            else:
                why = (
                    f"waiting for {ev.source} seq {last.get(ev.source, 0) + 1} (applied when it "
                    "arrives, or a gap is declared after the reorder wait)"
                )
                results[i] = _result(i, "held", ev.id, why)
            seen.add(key)
        self._lag(received, "http")
        return results  # type: ignore[return-value]

    # --------------------------------------------------------------- reads
    @property
    def state(self) -> TwinState:
        assert self.sync is not None
        return self.sync.state

    def reader(self) -> EventStore:
        """A store handle for this thread: SQLite readers get their own connection (WAL lets
        them read while the ingest thread writes)."""
        assert self.store is not None
        inner = self.store.inner  # type: ignore[attr-defined]
        if not isinstance(inner, SQLiteStore):
            return inner
        r = getattr(self._readers, "store", None)
        if r is None:
            r = self._readers.store = SQLiteStore(inner.path, synchronous="NORMAL")
        return r

    def events_after(
        self,
        after: int,
        limit: int,
        *,
        since: float | None = None,
        until: float | None = None,
        type: str | None = None,
        subject: str | None = None,
    ) -> tuple[list[tuple[int, Event]], int]:
        """Up to ``limit`` (position, event) pairs after position ``after`` matching the
        filters, and the position scanned up to (the cursor for the next page)."""
        store = self.reader()
        rows = list(store.read_positioned(since, until, type, subject, after, limit))
        cursor = rows[-1][0] if len(rows) >= limit else max(after, store.count())
        return rows, cursor

    def state_at(self, at: float) -> TwinState:
        return self.reader().state_at(at, self.catalog)

    def glb(self) -> bytes:
        """The whole scene as one binary glTF, built once."""
        if self._glb is None:
            from twin.scene.export import build_trimesh_scene

            self._glb = build_trimesh_scene(self.scene).export(file_type="glb")
        return self._glb

    def stats(self) -> dict[str, Any]:
        sync = self.sync
        assert sync is not None and self.store is not None
        st = sync.stats
        return {
            "received": st.received,
            "accepted": st.accepted,
            "dead_lettered": st.rejected,
            "duplicates": st.duplicates,
            "gaps": st.gaps,
            "snapshots": st.snapshots,
            "stored": sync.pos,
            "held": sync.reorder.held(),
        }


def bay_of(scene: Any, node: Any) -> str | None:
    """A node's bay: its own ``bay`` or the nearest ancestor of kind bay."""
    if node.bay:
        return node.bay
    parent, hops = node.parent, 0
    while parent is not None and parent in scene and hops < 64:
        p = scene.node(parent)
        if p.kind == "bay":
            return p.id
        parent, hops = p.parent, hops + 1
    return None


def _result(index: int, status: str, id: str | None, reason: str) -> dict[str, Any]:
    out: dict[str, Any] = {"index": index, "status": status}
    if id is not None:
        out["id"] = id
    out["reason"] = reason
    return out


def _id_of(raw: Any) -> str | None:
    if isinstance(raw, dict) and isinstance(raw.get("id"), str):
        return raw["id"][:200]
    return None
