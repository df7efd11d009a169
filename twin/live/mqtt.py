"""MQTT transport (paho-mqtt 2.x against a Mosquitto broker): a source and a sink.

Topic scheme: ``twin/<fab>/events/<source>``, one topic per event source; the twin subscribes to
``twin/<fab>/events/#`` (or ``twin/+/events/#`` for every fab). Payload: the event's JSON.

Delivery is at least once: QoS 1 both ways, persistent sessions (``clean_session=False`` with a
fixed client id, so the broker queues messages while the twin is away), automatic reconnect with
exponential backoff, and manual acknowledgement: the source acks a message only after the
synchroniser made it durable, so a crash or a broker restart re-delivers what was not stored and
the (source, seq) key removes the duplicates. The broker must not cap queues below the stream's
burst (``max_queued_messages 0``, ``max_inflight_messages 0`` in mosquitto.conf), and for
millisecond latency it must send without Nagle's delay (``set_tcp_nodelay true``).

A broker can still lose messages it acknowledged (Mosquitto writes sessions to disk only at its
autosave interval or a clean shutdown, so a SIGKILL forgets them). Two more topics close that:

- ``twin/<fab>/heartbeat/<source>``: every sink publishes, every ``heartbeat`` s and on close,
  ``{"source": S, "last_seq": N, "time": T}`` (QoS 1, retained) for each source it publishes, N
  the last seq it handed to the broker. The twin learns the stream's tail even when the tail
  itself was lost (``MqttSource.heartbeats()``), so a lost tail becomes a declared gap.
- ``twin/<fab>/acks/<source>`` and ``twin/<fab>/presence``: the twin confirms what is durable
  (``MqttSource.confirm``) and says when it has (re)subscribed; an end-to-end sink keeps every
  event until it is confirmed and re-sends the rest when it reconnects, when the twin comes back,
  and every ``resend_after`` s. See docs/mqtt.md.
"""

from __future__ import annotations

import json
import logging
import threading
import time as _time
from collections import deque
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from twin.errors import InputError, TwinError
from twin.live import mqtt_security
from twin.live.events import Event
from twin.live.sources import Message

log = logging.getLogger("twin.live.mqtt")
MAX_SEQ = 2**63 - 1  # the largest seq a store can hold (SQLite INTEGER)
MAX_TIME = 253_402_300_799.0  # 9999-12-31T23:59:59Z, the last epoch second ISO 8601 can write
HEARTBEAT_MAX_BYTES = 4096  # a heartbeat is ~100 bytes; anything larger is refused unread


class DeliveryError(TwinError):
    """Events a publisher could not get acknowledged (by the broker, or durable by the twin)."""


def topic_name(source: str) -> str:
    """A source's name as one topic level: MQTT wildcards and separators are replaced."""
    return "".join("_" if ch in "/+#" else ch for ch in source)


def topic_for(fab: str, source: str) -> str:
    """The topic an event source publishes on; MQTT wildcards and separators are replaced."""
    return f"twin/{fab}/events/{topic_name(source)}"


def heartbeat_topic(fab: str, source: str) -> str:
    """Where a sink says the last seq it published for ``source``."""
    return f"twin/{fab}/heartbeat/{topic_name(source)}"


def heartbeat_filter(events_filter: str) -> str:
    """The heartbeats that go with an events subscription: the same fabs and sources
    (``twin/+/events/#`` -> ``twin/+/heartbeat/#``, ``twin/f/events/mes`` ->
    ``twin/f/heartbeat/mes``); every fab's for a filter outside the topic scheme."""
    parts = events_filter.split("/")
    if parts[0] != "twin" or len(parts) < 2 or parts[1] in ("#", ""):
        return "twin/+/heartbeat/#"
    if len(parts) >= 3 and parts[2] == "events":
        return "/".join(["twin", parts[1], "heartbeat", *parts[3:]])
    return f"twin/{parts[1]}/heartbeat/#"


def parse_heartbeat(topic: str, payload: bytes) -> tuple[str, int]:
    """``(source, last_seq)`` of a heartbeat message; ValueError naming what is wrong.

    Accepted: a JSON object ``{"source": S, "last_seq": N, "time": T, "resends": B}`` of at most
    ``HEARTBEAT_MAX_BYTES`` bytes on ``twin/<fab>/heartbeat/<name>``, where S is a non-empty
    string of valid Unicode whose topic name is ``<name>``, N an integer 1..2^63-1 and T finite
    epoch seconds 0..MAX_TIME (extra keys are ignored). ``resends`` true: the producer keeps
    every event until the twin confirms it durable (end to end), so ``heartbeats()`` leaves its
    tail out: it will come again, never to be declared lost.
    """
    if len(payload) > HEARTBEAT_MAX_BYTES:
        raise ValueError(f"{len(payload)} bytes; a heartbeat has at most {HEARTBEAT_MAX_BYTES}")
    try:
        hb = json.loads(payload)
    except (ValueError, RecursionError, UnicodeDecodeError) as exc:
        raise ValueError(f"not JSON ({type(exc).__name__})") from None
    if not isinstance(hb, dict):
        raise ValueError(f"a JSON object is expected, got {type(hb).__name__}")
    source, seq, t = hb.get("source"), hb.get("last_seq"), hb.get("time")
    if type(source) is not str or not source or len(source) > 256:
        raise ValueError("'source' must be a non-empty string of at most 256 characters")
    try:
        source.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("'source' is not valid Unicode (a lone surrogate)") from None
    if topic.rsplit("/", 1)[-1] != topic_name(source):
        raise ValueError(f"'source' {source[:40]!r} does not match the topic {topic[:80]!r}")
    if type(seq) is not int or not 1 <= seq <= MAX_SEQ:
        raise ValueError(f"'last_seq' must be an integer 1..2^63-1, got {str(seq)[:40]!r}")
    if type(t) not in (int, float) or not 0.0 <= t <= MAX_TIME:  # NaN fails both comparisons
        raise ValueError(f"'time' must be epoch seconds 0..{MAX_TIME:.0f}, got {str(t)[:40]!r}")
    return source, seq


def _resends(payload: bytes) -> bool:
    """Does a (valid) heartbeat say its producer resends until the twin confirms?"""
    try:
        return json.loads(payload).get("resends") is True
    except (ValueError, RecursionError, AttributeError):
        return False


@dataclass(kw_only=True)
class MqttConfig:
    host: str = "127.0.0.1"
    port: int = 1883
    topic: str = "twin/+/events/#"  # subscription (source) or unused (sink)
    client_id: str = "twin-ingest"  # fixed: the broker keeps this client's session
    keepalive: int = 30  # s
    min_backoff: float = 0.1  # s, first reconnect delay
    max_backoff: float = 5.0  # s, reconnect delay cap (doubles up to it)
    max_inflight: int = 1000  # QoS 1 messages awaiting PUBACK (sink); publish() blocks beyond
    max_unconfirmed: int = 100_000  # end-to-end sink: events kept until the twin confirms them
    # end-to-end sink: events sent ahead of the oldest unconfirmed one, per source; the rest wait
    # unsent. At most the twin's reorder window (`twin ingest --window`, 1000), so that after a
    # loss nothing the sink sends lies beyond what the twin accepts
    send_window: int = 1000
    resend_after: float = 5.0  # s; end-to-end sink re-sends what is unconfirmed after this long
    batch: int = 1  # sink: events per MQTT message (a JSON array when > 1)
    linger: float = 0.005  # s a partial batch waits for more events before it is sent
    heartbeat: float = 1.0  # s between a sink's heartbeats (last seq published per source)
    # plant network (twin.live.mqtt_security): mqtts:// sets tls; CA None = the system's CAs
    tls: bool = False
    ca_file: str | None = None
    cert_file: str | None = None  # client certificate (PEM)
    key_file: str | None = None
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    protocol: str = "3.1.1"  # or "5": a session that expires session_expiry s after a disconnect
    session_expiry: int = 7 * 86_400

    def check(self) -> None:
        """Raise one InputError listing every out-of-range field."""
        problems = []
        for name in ("min_backoff", "max_backoff", "resend_after", "heartbeat"):
            v = getattr(self, name)
            if not (isinstance(v, int | float) and 0 < v < 1e6):
                problems.append(f"{name} {v!r}: seconds, must be > 0 and < 1e6")
        for name in ("max_inflight", "max_unconfirmed", "send_window", "batch", "keepalive"):
            v = getattr(self, name)
            if type(v) is not int or v < 1:
                problems.append(f"{name} {v!r}: must be an integer >= 1")
        if not (isinstance(self.linger, int | float) and 0 <= self.linger < 60):
            problems.append(f"linger {self.linger!r}: seconds, must be 0..60")
        if type(self.session_expiry) is not int or not 0 <= self.session_expiry <= 2**32 - 1:
            problems.append(f"session_expiry {self.session_expiry!r}: seconds, 0..4294967295")
        problems += mqtt_security.problems(self)
        if problems:
            raise InputError("MQTT configuration", problems)

    @classmethod
    def from_url(cls, url: str, **kw: Any) -> MqttConfig:
        """``mqtt://HOST:PORT/TOPIC`` or, with TLS, ``mqtts://HOST:PORT/TOPIC`` (TOPIC may
        contain + and #; default twin/+/events/#; port 1883, or 8883 with TLS). Security fields
        not given come from the TWIN_MQTT_* variables (``mqtt_security.ENV``)."""
        scheme = "mqtts://" if url.startswith("mqtts://") else "mqtt://"
        if not url.startswith(scheme):
            raise InputError(
                "MQTT address", [f"{url[:200]!r}: expected mqtt://HOST:PORT/TOPIC or mqtts://..."]
            )
        tls = scheme == "mqtts://"
        kw = {k: v for k, v in kw.items() if v is not None}
        kw.update(mqtt_security.from_environment(kw))
        rest = url[len(scheme) :]
        hostport, _, topic = rest.partition("/")
        default_port = "8883" if tls else "1883"
        host, _, port = (
            hostport.rpartition(":") if ":" in hostport else (hostport, "", default_port)
        )
        problems = []
        if not host:
            problems.append(f"{url!r}: missing host")
        if not port.isdigit() or not 0 < int(port) < 65536:
            problems.append(f"{url!r}: port must be 1..65535, got {port!r}")
        if problems:
            raise InputError("MQTT address", problems)
        return cls(host=host, port=int(port), topic=topic or cls.topic, tls=tls, **kw)


def _client(cfg: MqttConfig, *, manual_ack: bool) -> Any:
    import paho.mqtt.client as mqtt

    v5 = cfg.protocol == "5"
    client = mqtt.Client(
        mqtt.CallbackAPIVersion.VERSION2,
        client_id=cfg.client_id,
        # MQTT 5 has no clean session flag: clean_start and the session expiry go with CONNECT
        **({} if v5 else {"clean_session": False}),
        protocol=mqtt.MQTTv5 if v5 else mqtt.MQTTv311,
        manual_ack=manual_ack,
    )
    mqtt_security.apply(client, cfg)
    client.reconnect_delay_set(min_delay=cfg.min_backoff, max_delay=cfg.max_backoff)  # type: ignore[arg-type]
    # paho's own in-flight window rescans every outstanding message on each PUBACK (O(n) per
    # ack); it is switched off and the sink bounds what is outstanding itself.
    client.max_inflight_messages_set(0)
    client.max_queued_messages_set(0)
    return client


class MqttSource:
    """Subscribes with QoS 1; each message carries an ``ack`` the synchroniser calls when durable.

    Also subscribes to the sinks' heartbeats (``heartbeats()``) and publishes the twin's
    presence on ``twin/<fab>/presence`` each time it (re)subscribes, so end-to-end publishers
    re-send what the broker may have dropped while the twin had no session there.
    """

    def __init__(self, cfg: MqttConfig, *, connect_timeout: float = 10.0) -> None:
        cfg.check()
        self.cfg = cfg
        # The network thread only appends to the inbox (deque.append is atomic) and wakes the
        # ingest thread when it waits; the ingest thread builds the messages, in batches.
        self._inbox: deque[Any] = deque()
        self._wake = threading.Event()
        self._idle = False
        self.connected = threading.Event()
        self.connects = 0
        self._closed = False
        parts = cfg.topic.split("/")
        fixed = len(parts) >= 2 and parts[0] == "twin" and parts[1] not in ("+", "#", "")
        self.hb_topic = heartbeat_filter(cfg.topic)
        self._fab_of: dict[str, str] = {}  # topic source name -> fab, learnt from topics
        self._fabs: set[str] = {parts[1]} if fixed else set()
        self._seen: set[str] = set()  # event topics seen (the network thread learns from them)
        self._confirmed: dict[str, int] = {}
        self._confirmed_all = 0.0  # monotonic time all positions were last re-sent
        self._hb_lock = threading.Lock()
        self._hb: dict[str, int] = {}
        self.heartbeats_seen = 0
        self.heartbeats_rejected = 0
        self.last_heartbeat_problem = ""
        self._client = _client(cfg, manual_ack=True)
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect
        self._client.on_message = self._on_message
        self._client.message_callback_add(self.hb_topic, self._on_heartbeat)
        for own in ("twin/+/acks/#", "twin/+/presence"):  # ours, under a wide filter ("#")
            self._client.message_callback_add(own, self._drop)
        _connect(self._client, cfg, connect_timeout, self.connected)

    def _on_connect(self, client: Any, userdata: Any, flags: Any, rc: Any, props: Any) -> None:
        if rc.is_failure:
            log.warning("MQTT %s: broker %s:%d refused: %s", self.cfg.client_id, self.cfg.host,
                        self.cfg.port, rc)  # fmt: skip
            return
        self.connects += 1
        log.info("MQTT %s: %s broker %s:%d", self.cfg.client_id,
                 "connected to" if self.connects == 1 else "reconnected to", self.cfg.host,
                 self.cfg.port)  # fmt: skip
        client.subscribe([(self.cfg.topic, 1), (self.hb_topic, 1)])
        self._confirmed_all = 0.0  # the broker may have lost the retained confirmations
        for fab in list(self._fabs):  # after the SUBSCRIBE: publishers' re-sends reach us
            self._announce(fab)
        self.connected.set()

    def _on_disconnect(self, client: Any, userdata: Any, flags: Any, rc: Any, props: Any) -> None:
        if self.connected.is_set() and not self._closed:
            log.warning("MQTT %s: disconnected from %s:%d (%s); reconnecting", self.cfg.client_id,
                        self.cfg.host, self.cfg.port, rc)  # fmt: skip
        self.connected.clear()

    def _announce(self, fab: str) -> None:
        """Tell ``fab``'s end-to-end publishers the twin is subscribed (now): they re-send."""
        payload = json.dumps({"twin": self.cfg.client_id, "connect": self.connects,
                              "time": _time.time()})  # fmt: skip
        self._client.publish(f"twin/{fab}/presence", payload, qos=1)

    def _learn(self, topic: str) -> None:
        """Note the fab and source name of a topic seen for the first time (network thread)."""
        self._seen.add(topic)
        parts = topic.split("/")
        if len(parts) != 4 or parts[0] != "twin":
            return
        self._fab_of.setdefault(parts[3], parts[1])
        if parts[1] not in self._fabs:
            self._fabs.add(parts[1])
            self._announce(parts[1])

    def _on_message(self, client: Any, userdata: Any, msg: Any) -> None:
        self._inbox.append(msg)
        if self._idle:
            self._wake.set()
        topic = msg.topic
        if topic not in self._seen:
            self._learn(topic)

    def _drop(self, client: Any, userdata: Any, msg: Any) -> None:
        client.ack(msg.mid, msg.qos)  # the twin's own confirmations: not events

    def _on_heartbeat(self, client: Any, userdata: Any, msg: Any) -> None:
        client.ack(msg.mid, msg.qos)  # nothing to make durable: a later heartbeat supersedes it
        topic = msg.topic
        try:
            source, seq = parse_heartbeat(topic, msg.payload)
        except ValueError as exc:
            self.heartbeats_rejected += 1
            self.last_heartbeat_problem = f"{topic[:80]}: {exc}"
            return
        self.heartbeats_seen += 1
        if topic not in self._seen:
            self._learn(topic)
        if _resends(msg.payload):  # an end-to-end producer: what it lost is never a gap
            with self._hb_lock:
                self._hb[source] = {"last_seq": seq, "resends": True}
            return
        with self._hb_lock:
            cur = self._hb.get(source, 0)
            if not isinstance(cur, dict) and seq > cur:  # a re-sending producer's word stands
                self._hb[source] = seq

    def heartbeats(self) -> dict[str, Any]:
        """Per source, the highest ``last_seq`` its publishers' heartbeats announced since the
        previous call (drained: each announcement is returned once); for a producer that
        re-sends until confirmed, ``{"last_seq": N, "resends": True}`` instead."""
        with self._hb_lock:
            out, self._hb = self._hb, {}
        return out

    def confirm(self, positions: dict[str, int]) -> None:
        """Tell publishers how far each source is durable: every seq <= the published one is
        stored or dead-lettered. Retained QoS 1 on ``twin/<fab>/acks/<source>``."""
        # Re-sent every second even when unchanged: a broker that dies may lose a confirmation
        # it had already accepted, and a publisher waits on it.
        again = _time.monotonic() - self._confirmed_all >= 1.0
        if again:
            self._confirmed_all = _time.monotonic()
        for source, seq in positions.items():
            if seq <= self._confirmed.get(source, 0) and not again:
                continue
            name = topic_name(source)
            fab = self._fab_of.get(name)
            if fab is None:
                continue
            payload = json.dumps({"source": source, "seq": seq})
            self._client.publish(f"twin/{fab}/acks/{name}", payload, qos=1, retain=True)
            self._confirmed[source] = seq

    @property
    def exhausted(self) -> bool:
        return self._closed and not self._inbox

    def receive(self, max_items: int, timeout: float) -> list[Message]:
        inbox = self._inbox
        if not inbox and timeout > 0:
            self._wake.clear()
            self._idle = True  # from here on the network thread wakes us
            if not inbox:
                self._wake.wait(timeout)
            self._idle = False
        out: list[Message] = []
        ack = self._client.ack
        while inbox and len(out) < max_items:
            msg = inbox.popleft()
            out.append(Message(msg.payload, partial(ack, msg.mid, msg.qos), msg.topic))
        return out

    def close(self) -> None:
        self._closed = True
        self._client.disconnect()
        self._client.loop_stop()


class MqttSink:
    """Publishes events with QoS 1 on ``topic_for(fab, event.source)``; ``flush`` waits for the
    broker's PUBACKs. Unacknowledged messages are re-sent after a reconnect. Every
    ``cfg.heartbeat`` s and on close it publishes, per source, the last seq it published
    (``heartbeat_topic``, retained), so the twin can tell a lost tail from a quiet source.

    With ``end_to_end=True`` the sink also keeps every event until the twin confirms it durable
    (``twin/<fab>/acks/<source>``, published by ``MqttSource.confirm``) and re-publishes the
    unconfirmed ones when it reconnects, when the twin announces it has (re)subscribed
    (``twin/<fab>/presence``) and every ``resend_after`` s, so nothing is lost even if the broker
    itself dies (SIGKILL) with messages, and sessions, it had acknowledged but not persisted.
    It sends at most ``cfg.send_window`` events past the oldest unconfirmed one of a source; the
    rest wait, unsent, until confirmations move the window (so after a loss nothing arrives
    beyond the twin's reorder window). ``flush_confirmed`` waits until the twin has confirmed
    everything.
    """

    def __init__(
        self,
        cfg: MqttConfig,
        *,
        fab: str = "fab",
        end_to_end: bool = False,
        connect_timeout: float = 10.0,
    ) -> None:
        cfg.check()
        if not fab or any(ch in fab for ch in "/+#") or fab != fab.strip():
            raise InputError("MQTT sink", [f"fab {fab!r}: one topic level, no / + # or spaces"])
        self.cfg, self.fab, self.end_to_end = cfg, fab, end_to_end
        self.connected = threading.Event()
        self._client = _client(cfg, manual_ack=False)
        self._lock = threading.Condition()
        self._unacked: set[int] = set()
        self._acked_early: set[int] = set()
        # source -> [seq, topic, json, last sent (monotonic s)] in seq order: sent, unconfirmed
        self._outbox: dict[str, deque[list[Any]]] = {}
        # source -> the same, not sent yet: beyond the send window (``cfg.send_window``)
        self._waiting: dict[str, deque[list[Any]]] = {}
        self._kept = 0  # events in the outbox and waiting
        self._last_seq: dict[str, int] = {}  # source -> last seq handed to the broker
        self._connects = 0
        self.published = 0
        self.acknowledged = 0
        self.republished = 0
        self.heartbeats_sent = 0
        self.presences = 0  # the twin said it (re)subscribed
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = lambda c, u, f, rc, p: self.connected.clear()
        self._client.on_publish = self._on_publish
        self._client.on_message = self._on_confirm
        self._client.message_callback_add(f"twin/{fab}/presence", self._on_presence)
        self._topics: dict[str, str] = {}  # event source -> topic
        self._batches: dict[str, list[str]] = {}  # topic -> JSON texts waiting to be sent
        self._batch_src: dict[str, tuple[str, int]] = {}  # topic -> (source, last seq in batch)
        self._batch_t0: dict[str, float] = {}
        self._closing = threading.Event()
        self._closed = False
        _connect(self._client, cfg, connect_timeout, self.connected)
        threading.Thread(target=self._ticker, daemon=True, name="mqtt-sink").start()

    def _on_connect(self, client: Any, userdata: Any, flags: Any, rc: Any, props: Any) -> None:
        if rc.is_failure:
            return
        self._connects += 1
        if self.end_to_end:
            client.subscribe([(f"twin/{self.fab}/acks/#", 1), (f"twin/{self.fab}/presence", 1)])
            if self._connects > 1:  # the broker may have lost what it had: send it again
                self._resend(older_than=0.0)
        self.connected.set()

    def _on_presence(self, client: Any, userdata: Any, msg: Any) -> None:
        """The twin (re)subscribed: what the broker dropped while it had no session there is
        sent again now, ahead of new events (before its reorder window fills with them)."""
        if msg.retain:  # an old announcement kept by the broker says nothing about now
            return
        self.presences += 1
        self._resend(older_than=0.0)

    def _resend(self, older_than: float) -> None:
        """Re-publish unconfirmed events last sent more than ``older_than`` s ago, in seq order,
        packed ``cfg.batch`` to a message."""
        now = _time.monotonic()
        again: list[list[Any]] = []
        with self._lock:  # never call paho while holding it: paho calls back into it
            for box in self._outbox.values():
                for m in box:
                    if now - m[3] >= older_than:
                        again.append(m)
                        m[3] = now
            self.republished += len(again)
        self._send_packed(again)

    def _send_packed(self, entries: list[list[Any]]) -> None:
        """Send outbox entries in their order, ``cfg.batch`` to a message per topic. Never
        waits for the in-flight window: it runs on paho's thread too, and the entries are
        bounded by the outbox."""
        size = self.cfg.batch
        groups: list[tuple[str, list[str]]] = []
        for m in entries:
            if groups and groups[-1][0] == m[1] and len(groups[-1][1]) < size:
                groups[-1][1].append(m[2])
            else:
                groups.append((m[1], [m[2]]))
        for topic, texts in groups:
            self._send(topic, texts[0] if size <= 1 else "[" + ",".join(texts) + "]")

    def _ticker(self) -> None:
        """Sends partial batches after ``linger``; heartbeats every ``cfg.heartbeat`` s;
        re-sends unconfirmed events (which covers what a reconnect does not: a broker restarted
        without the twin's session drops messages for it until the twin subscribes again)."""
        cfg = self.cfg
        tick = min(cfg.heartbeat, cfg.linger if cfg.batch > 1 else 1.0, 0.5)
        if self.end_to_end:
            tick = min(tick, cfg.resend_after / 2)
        last_resend = last_beat = _time.monotonic()
        while not self._closing.wait(tick):
            if cfg.batch > 1:
                self._send_batches(older_than=cfg.linger)
            now = _time.monotonic()
            if now - last_beat >= cfg.heartbeat and self.connected.is_set():
                self._heartbeat()
                last_beat = now
            if self.end_to_end and self.connected.is_set() and now - last_resend >= 0.5:
                self._resend(older_than=cfg.resend_after)
                last_resend = now

    def _heartbeat(self) -> None:
        """Send waiting batches, then one retained heartbeat per source: its last seq sent."""
        self._send_batches(older_than=0.0)
        with self._lock:
            last = dict(self._last_seq)
        t = _time.time()
        for source, seq in last.items():
            # "resends": this sink keeps every event until the twin confirms it, so its tail
            # comes again after any loss: the twin must never declare it lost
            payload = json.dumps(
                {"source": source, "last_seq": seq, "time": t, "resends": self.end_to_end}
            )
            self._send(heartbeat_topic(self.fab, source), payload, retain=True)
            self.heartbeats_sent += 1

    def _send_batches(self, older_than: float) -> None:
        now = _time.monotonic()
        with self._lock:
            due = [t for t, t0 in self._batch_t0.items() if now - t0 >= older_than]
            ready = [(t, self._batches.pop(t), self._batch_src.pop(t)) for t in due]
            for t in due:
                del self._batch_t0[t]
        for topic, texts, (source, seq) in ready:
            self.publish_raw(topic, "[" + ",".join(texts) + "]")
            self._sent(source, seq)

    def _sent(self, source: str, seq: int) -> None:
        with self._lock:
            if seq > self._last_seq.get(source, 0):
                self._last_seq[source] = seq

    def _on_confirm(self, client: Any, userdata: Any, msg: Any) -> None:
        if msg.retain:  # kept by the broker from an earlier twin (whose store may be gone)
            return
        try:
            ack = json.loads(msg.payload)
            source, seq = ack["source"], ack["seq"]
            if type(source) is not str or type(seq) is not int:
                return
        except (ValueError, KeyError, TypeError, RecursionError):
            return
        with self._lock:
            box = self._outbox.get(source)
            while box and box[0][0] <= seq:
                box.popleft()
                self._kept -= 1
            released = self._release(source)
            self._lock.notify_all()
        if released:
            self._send_packed(released)
            self._sent(source, released[-1][0])

    def _release(self, source: str) -> list[list[Any]]:
        """Move the waiting events of ``source`` that are now within the send window into the
        outbox (caller holds the lock); returns them, to be sent."""
        waiting = self._waiting.get(source)
        if not waiting:
            return []
        box = self._outbox.setdefault(source, deque())
        front = box[0][0] if box else waiting[0][0]
        out = []
        now = _time.monotonic()
        while waiting and waiting[0][0] - front < self.cfg.send_window:
            entry = waiting.popleft()
            entry[3] = now
            box.append(entry)
            out.append(entry)
        return out

    def unconfirmed(self) -> int:
        """Events published that the twin has not yet confirmed durable (``end_to_end``)."""
        with self._lock:
            return self._kept

    def flush_confirmed(self, timeout: float = 60.0) -> bool:
        """Wait until the twin confirmed every event published (``end_to_end`` only); False on
        timeout (``unconfirmed()`` says how many are left)."""
        self._send_batches(older_than=0.0)
        deadline = _time.monotonic() + timeout
        with self._lock:
            while self._kept:
                left = deadline - _time.monotonic()
                if left <= 0:
                    return False
                self._lock.wait(min(left, 0.1))
        return True

    def _on_publish(self, client: Any, userdata: Any, mid: int, rc: Any, props: Any) -> None:
        with self._lock:
            if mid in self._unacked:
                self._unacked.discard(mid)
            else:  # PUBACK raced ahead of publish() returning
                self._acked_early.add(mid)
            self.acknowledged += 1
            self._lock.notify_all()

    def publish(self, event: Event) -> None:
        if self._closed:
            raise InputError("MQTT sink", [f"publish of {event.id!r} after close()"])
        source = event.source
        topic = self._topics.get(source)
        if topic is None:  # one per source: topic_for walks the name character by character
            topic = self._topics[source] = topic_for(self.fab, source)
        payload = event.to_json()
        if self.end_to_end:
            with self._lock:
                while self._kept >= self.cfg.max_unconfirmed:
                    self._lock.wait(0.5)
                box = self._outbox.setdefault(source, deque())
                entry = [event.seq, topic, payload, _time.monotonic()]
                self._kept += 1
                waiting = self._waiting.get(source)
                if waiting or (box and event.seq - box[0][0] >= self.cfg.send_window):
                    # the twin would refuse it while the oldest unconfirmed one is missing
                    self._waiting.setdefault(source, deque()).append(entry)
                    return
                box.append(entry)
        if self.cfg.batch <= 1:
            self.publish_raw(topic, payload)
            self._sent(source, event.seq)
            return
        with self._lock:
            buf = self._batches.get(topic)
            if buf is None:
                buf = self._batches[topic] = []
                self._batch_t0[topic] = _time.monotonic()
            buf.append(payload)
            src = self._batch_src.get(topic)
            if src is None or event.seq > src[1] or src[0] != source:
                self._batch_src[topic] = (source, event.seq)
            full = len(buf) >= self.cfg.batch
            if full:
                del self._batches[topic], self._batch_t0[topic]
                src = self._batch_src.pop(topic)
        if full:
            self.publish_raw(topic, "[" + ",".join(buf) + "]")
            self._sent(*src)

    def publish_raw(self, topic: str, payload: str | bytes) -> None:
        """Publish with QoS 1; waits while ``max_inflight`` messages await their PUBACK
        (backpressure: nothing is dropped while the broker is slow or away)."""
        with self._lock:
            while len(self._unacked) >= self.cfg.max_inflight:
                self._lock.wait(0.5)
        self._send(topic, payload)
        self.published += 1

    def _send(self, topic: str, payload: str | bytes, retain: bool = False) -> None:
        info = self._client.publish(topic, payload, qos=1, retain=retain)
        with self._lock:
            if info.mid in self._acked_early:
                self._acked_early.discard(info.mid)
            else:
                self._unacked.add(info.mid)

    def pending(self) -> int:
        with self._lock:
            return len(self._unacked)

    def flush(self, timeout: float = 30.0) -> bool:
        """Send partial batches, then wait until the broker acknowledged everything published;
        False on timeout."""
        self._send_batches(older_than=0.0)
        deadline = _time.monotonic() + timeout
        with self._lock:
            while self._unacked:
                left = deadline - _time.monotonic()
                if left <= 0:
                    return False
                self._lock.wait(min(left, 0.1))
        return True

    def close(self, timeout: float = 2.0) -> None:
        """Send what is waiting and a last heartbeat per source; wait up to ``timeout`` s for
        the broker to take them; disconnect."""
        if self._closed:
            return
        self._closed = True
        self._closing.set()
        if self.connected.is_set():
            self._heartbeat()
            self.flush(timeout)
        else:
            self._send_batches(older_than=0.0)
        self._client.disconnect()
        self._client.loop_stop()


def _connect(client: Any, cfg: MqttConfig, timeout: float, connected: threading.Event) -> None:
    """Connect, then start the network thread; it keeps reconnecting with backoff after any
    disconnect. The first attempt runs here, so a TLS failure is reported as such; a broker not
    there yet is waited for up to ``timeout``; a refused CONNECT ends the wait at once."""
    import ssl

    args: dict[str, Any] = {"keepalive": cfg.keepalive}
    if cfg.protocol == "5":
        from paho.mqtt.packettypes import PacketTypes
        from paho.mqtt.properties import Properties

        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = cfg.session_expiry  # the session outlives a disconnect
        args.update(clean_start=False, properties=props)
    failed = threading.Event()
    why: list[str] = []
    user_on_connect = client.on_connect

    def on_connect(c: Any, u: Any, flags: Any, rc: Any, props: Any) -> None:
        if rc.is_failure and not connected.is_set():
            why.append(str(rc))
            failed.set()
        user_on_connect(c, u, flags, rc, props)

    client.on_connect = on_connect
    try:
        client.connect(cfg.host, cfg.port, **args)
    except ssl.SSLError as exc:
        raise InputError("MQTT", [mqtt_security.tls_failure(cfg, exc)]) from None
    except OSError:  # not there (yet): the network thread retries with backoff
        client.connect_async(cfg.host, cfg.port, **args)
    client.loop_start()
    deadline = _time.monotonic() + timeout
    while not connected.is_set() and not failed.is_set() and _time.monotonic() < deadline:
        connected.wait(0.05)
    if connected.is_set():
        return
    client.loop_stop()
    client.disconnect()
    if failed.is_set():
        raise InputError("MQTT", [mqtt_security.refused(cfg, why[0])])
    raise InputError(
        "MQTT", [f"no connection to broker {cfg.host}:{cfg.port} within {timeout:.0f} s"]
    )
