"""The twin runtime behind the API: scene, process model, event store, synchroniser, physics
world, the in-process bus with its feed (the fab emulator or a synthetic stream) and MQTT, the
WebSocket hub and the what-if jobs.

It is built and started in the app's lifespan and stopped there. On a PostgreSQL store it is one
of several servers: ``twin_api.roles`` makes it the leader (ingests, as below) or a follower
(serves the store's state, forwards writes; see twin_api.revision). One ingest thread drains the
bus (and MQTT) into the synchroniser; ``POST /events`` goes through the same synchroniser under
the same lock, so every event is validated, stored and applied exactly once, in order. Reads
never take the lock: they copy what they need (``list(dict.values())`` is atomic under the GIL)
and may see a record a few events old, never a broken container.
"""

from __future__ import annotations

import logging
import threading
import time as _time
from collections.abc import Callable
from typing import Any

from twin.live.catalog import Catalog
from twin.live.events import Event, EventFormatError, parse_event
from twin.live.order import ReorderConfig
from twin.live.sources import Bus
from twin.live.state import TwinState
from twin.live.store import EventStore, MemoryStore, SQLiteStore, open_store
from twin.live.sync import ACCEPTED, SyncConfig, Synchroniser
from twin_api.feed import EventFeed, feed_for
from twin_api.hub import StreamHub, encode
from twin_api.metrics import Histogram
from twin_api.roles import Roles, replicated
from twin_api.settings import Settings

log = logging.getLogger("twin.api")


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
        self.store: EventStore | None = None
        self.sync: Synchroniser | None = None
        self.bus = Bus()
        self.sources: list[Any] = []
        self.feed: EventFeed | None = None
        self.hub = StreamHub(history=settings.history, queue=settings.ws_queue)
        self.jobs: Any = None
        self.roles: Roles | None = None  # leader/follower on a shared (PostgreSQL) store
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
        self.physics_error: str | None = None
        self.ingest_errors = 0  # exceptions caught in the ingest loop
        self.last_ingest_error = ""
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
        self.store = open_store(s.store, synchronous=s.synchronous) if s.store else MemoryStore()
        self.sources = [self.bus]
        if replicated(s.store):  # one of several servers on one store: leader or follower
            self.roles = Roles(self)
            self.roles.start()
        else:
            self.sync = self._synchroniser(self.store)
            self.hub.last_seq = self.sync.pos
            self._connect_sources()
        from twin_api.jobs import JobManager

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
        loop = self.roles.run if self.roles is not None else self._ingest_loop
        self._thread = threading.Thread(target=loop, name="twin-ingest", daemon=True)
        self._thread.start()
        if self.feed is not None:
            if self.roles is None:
                self.feed.start(self.bus)
            elif self.roles.leading:  # a follower starts it when it takes over
                self.roles.start_feed()
        self.started = _time.time()

    def _sync_config(self) -> SyncConfig:
        s = self.settings
        return SyncConfig(max_future=s.max_future, reorder=ReorderConfig(window=s.reorder_window))

    def _synchroniser(self, store: EventStore) -> Synchroniser:
        """The synchroniser that ingests into ``store`` (the leader's, or the only server's)."""
        return Synchroniser(
            store,
            self.catalog,
            world=_GuardedWorld(self.world) if self.world is not None else None,
            cfg=self._sync_config(),
            on_commit=self._committed,
        )

    def _connect_sources(self) -> None:
        """Subscribe to MQTT when configured (a replicated server: only while it leads)."""
        s = self.settings
        if s.mqtt:
            from twin.live.mqtt import MqttSource

            self.sources.append(MqttSource(mqtt_config(s)))

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
        leading = self.roles is None or self.roles.leading
        if self.sync is not None and leading:
            with self.lock:
                self.sync.flush()
                if self.sync.pos:
                    self.sync.snapshot()
        if self.roles is not None:
            self.roles.stop()
        if self.world is not None:
            self.world.close()
        if self.store is not None:
            self.store.close()

    # -------------------------------------------------------------- ingest
    def _ingest_loop(self, keep: Callable[[], bool] | None = None) -> None:
        """Drain the sources into the synchroniser until stopped (or ``keep()`` is false: a
        replicated server that lost the leader lock)."""
        sync = self.sync
        assert sync is not None
        confirmed_at = 0.0
        while not self._stop.is_set() and (keep is None or keep()):
            try:
                got = False
                now = _time.monotonic()
                if now - confirmed_at >= 0.1:  # tell end-to-end publishers what is durable
                    confirmed_at = now
                    for src in self.sources:
                        confirm = getattr(src, "confirm", None)
                        if confirm is not None:
                            with self.lock:
                                positions = sync.reorder.positions()
                            confirm(positions)
                for src in self.sources:
                    wait = sync.cfg.wait if len(self.sources) == 1 else 0.01
                    batch = src.receive(sync.cfg.batch, wait)
                    beats = getattr(src, "heartbeats", None)  # MQTT producers' last seqs
                    heard = beats() if beats is not None else None
                    if batch or heard:
                        got = True
                        with self.lock:
                            if heard:
                                sync.heartbeats(heard)
                            sync.process(batch)
                        if batch:
                            self._lag(min(m.received for m in batch), "bus")
                if not got:
                    with self.lock:
                        sync.process([])  # declares gaps whose wait is over
            except Exception as exc:  # keep ingesting; unacknowledged messages come again
                # a failed write (IngestFailed) left the state as the store says: carry on
                self.ingest_errors += 1
                self.last_ingest_error = f"{type(exc).__name__}: {str(exc)[:300]}"
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
        self.hub.publish(list(map(encode, range(first, sync.pos + 1), accepted)))

    def ingest(
        self,
        payloads: list[Any],
        origin: str = "POST /events",
        *,
        may_publish: Callable[[str], bool] | None = None,
        allowed: str = "",
    ) -> list[dict[str, Any]]:
        """Validate, store and apply a batch; one result per payload, in order: ``index``,
        ``status`` (accepted | rejected | duplicate | held), ``id`` when the payload has one,
        ``seq`` (stream position) when accepted, ``reason`` otherwise. ``may_publish``: the
        caller's token may publish a source (``allowed`` says which, for the reason); events of
        other sources are rejected and dead-lettered. Raises ``IngestFailed`` (nothing of the
        batch stored; the state is the store's) when the store cannot be written."""
        received = _time.time()
        refuse = None
        if may_publish is not None:
            explain = getattr(may_publish, "reason", None)  # auth.may_publish says why

            def refuse(ev: Event) -> str | None:
                if may_publish(ev.source):
                    return None
                if explain is not None:
                    return explain(ev.source)
                return f"this token may not publish source {ev.source[:60]!r} (it may: {allowed})"

        # parsed here, outside the lock (the ingest thread keeps going meanwhile); a payload
        # that does not parse goes in as it came, and the synchroniser dead-letters it
        batch = [_parsed(p) for p in payloads]
        sync = self.sync
        assert sync is not None
        with self.lock:
            res = sync.process_request(batch, origin, refuse=refuse)
        results: list[dict[str, Any]] = []
        add = results.append
        for i, (status, ev, pos, why) in enumerate(
            zip(res.status, res.event, res.position, res.reason)
        ):
            if status == ACCEPTED:
                add({"index": i, "status": status, "id": ev.id, "seq": pos})  # type: ignore[union-attr]
            else:
                out: dict[str, Any] = {"index": i, "status": status}
                id_ = ev.id if ev is not None else _id_of(payloads[i])
                if id_ is not None:
                    out["id"] = id_
                out["reason"] = why
                add(out)
        self._lag(received, "http")
        return results

    def reset_source(
        self, source: str, seq: int, *, actor: str, reason: str = ""
    ) -> dict[str, Any]:
        """An admin moves ``source`` forward to ``seq`` (seqs up to it count as skipped);
        returns the stored ``stream.reset`` audit event. InputError when it cannot be."""
        sync = self.sync
        assert sync is not None
        with self.lock:
            audit = sync.reset_source(source, seq, by=actor, reason=reason)
        return audit.to_dict()

    # --------------------------------------------------------------- reads
    @property
    def state(self) -> TwinState:
        assert self.sync is not None
        return self.sync.state

    def reader(self) -> EventStore:
        """A store handle for this thread: SQLite readers get their own connection (WAL lets
        them read while the ingest thread writes)."""
        inner = self.store
        assert inner is not None
        if not isinstance(inner, SQLiteStore):
            return inner
        r = getattr(self._readers, "store", None)
        if r is None:
            r = self._readers.store = SQLiteStore(inner.path, synchronous="NORMAL", readonly=True)
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


def _parsed(raw: Any) -> Any:
    try:
        return parse_event(raw)
    except EventFormatError:
        return raw


def _id_of(raw: Any) -> str | None:
    """A refused payload's id as the answer echoes it: short, valid UTF-8 (escaped)."""
    if isinstance(raw, dict) and isinstance(raw.get("id"), str):
        return raw["id"][:200].encode("utf-8", "backslashreplace").decode("utf-8")
    return None


def mqtt_config(s: Settings) -> Any:
    """The MQTT subscription the settings describe, TLS and credentials included."""
    from twin.live.mqtt import MqttConfig
    from twin.live.mqtt_security import read_password

    password = s.mqtt_password
    if password is None and s.mqtt_password_file:
        password = read_password(s.mqtt_password_file)
    return MqttConfig.from_url(
        s.mqtt,
        client_id="twin-api",
        ca_file=s.mqtt_ca_file,
        cert_file=s.mqtt_cert_file,
        key_file=s.mqtt_key_file,
        username=s.mqtt_username,
        password=password,
        protocol=s.mqtt_protocol,
    )
