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
"""

from __future__ import annotations

import json
import threading
import time as _time
from collections import deque
from dataclasses import dataclass
from functools import partial
from typing import Any

from twin.errors import InputError
from twin.live.events import Event
from twin.live.sources import Message


def topic_for(fab: str, source: str) -> str:
    """The topic an event source publishes on; MQTT wildcards and separators are replaced."""
    clean = "".join("_" if ch in "/+#" else ch for ch in source)
    return f"twin/{fab}/events/{clean}"


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
    resend_after: float = 5.0  # s; end-to-end sink re-sends what is unconfirmed after this long
    batch: int = 1  # sink: events per MQTT message (a JSON array when > 1)
    linger: float = 0.005  # s a partial batch waits for more events before it is sent

    @classmethod
    def from_url(cls, url: str, **kw: Any) -> MqttConfig:
        """``mqtt://HOST:PORT/TOPIC`` (TOPIC may contain + and #; default twin/+/events/#)."""
        if not url.startswith("mqtt://"):
            raise InputError("MQTT address", [f"{url!r}: expected mqtt://HOST:PORT/TOPIC"])
        rest = url[len("mqtt://") :]
        hostport, _, topic = rest.partition("/")
        host, _, port = hostport.rpartition(":") if ":" in hostport else (hostport, "", "1883")
        problems = []
        if not host:
            problems.append(f"{url!r}: missing host")
        if not port.isdigit() or not 0 < int(port) < 65536:
            problems.append(f"{url!r}: port must be 1..65535, got {port!r}")
        if problems:
            raise InputError("MQTT address", problems)
        return cls(host=host, port=int(port), topic=topic or cls.topic, **kw)


def _client(cfg: MqttConfig, *, manual_ack: bool) -> Any:
    import paho.mqtt.client as mqtt

    client = mqtt.Client(
        mqtt.CallbackAPIVersion.VERSION2,
        client_id=cfg.client_id,
        clean_session=False,
        protocol=mqtt.MQTTv311,
        manual_ack=manual_ack,
    )
    client.reconnect_delay_set(min_delay=cfg.min_backoff, max_delay=cfg.max_backoff)  # type: ignore[arg-type]
    # paho's own in-flight window rescans every outstanding message on each PUBACK (O(n) per
    # ack); it is switched off and the sink bounds what is outstanding itself.
    client.max_inflight_messages_set(0)
    client.max_queued_messages_set(0)
    return client


class MqttSource:
    """Subscribes with QoS 1; each message carries an ``ack`` the synchroniser calls when durable."""

    def __init__(self, cfg: MqttConfig, *, connect_timeout: float = 10.0) -> None:
        self.cfg = cfg
        # The network thread only appends to the inbox (deque.append is atomic) and wakes the
        # ingest thread when it waits; the ingest thread builds the messages, in batches.
        self._inbox: deque[Any] = deque()
        self._wake = threading.Event()
        self._idle = False
        self._topics: set[str] = set()
        self.connected = threading.Event()
        self.connects = 0
        self._closed = False
        self._fab_of: dict[str, str] = {}  # topic source name -> fab, learnt from topics
        self._confirmed: dict[str, int] = {}
        self._confirmed_all = 0.0  # monotonic time all positions were last re-sent
        self._client = _client(cfg, manual_ack=True)
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect
        self._client.on_message = self._on_message
        _connect(self._client, cfg, connect_timeout, self.connected)

    def _on_connect(self, client: Any, userdata: Any, flags: Any, rc: Any, props: Any) -> None:
        if rc.is_failure:
            return
        self.connects += 1
        client.subscribe(self.cfg.topic, qos=1)
        self.connected.set()

    def _on_disconnect(self, client: Any, userdata: Any, flags: Any, rc: Any, props: Any) -> None:
        self.connected.clear()

    def _on_message(self, client: Any, userdata: Any, msg: Any) -> None:
        self._inbox.append(msg)
        if self._idle:
            self._wake.set()

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
            name = topic_for("", source).rsplit("/", 1)[1]
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
        ack, topics = self._client.ack, self._topics
        while inbox and len(out) < max_items:
            msg = inbox.popleft()
            topic = msg.topic
            if topic not in topics:
                topics.add(topic)
                parts = topic.split("/")
                if len(parts) == 4 and parts[2] == "events":
                    self._fab_of.setdefault(parts[3], parts[1])
            out.append(Message(msg.payload, partial(ack, msg.mid, msg.qos), topic))
        return out

    def close(self) -> None:
        self._closed = True
        self._client.disconnect()
        self._client.loop_stop()


class MqttSink:
    """Publishes events with QoS 1 on ``topic_for(fab, event.source)``; ``flush`` waits for the
    broker's PUBACKs. Unacknowledged messages are re-sent after a reconnect.

    With ``end_to_end=True`` the sink also keeps every event until the twin confirms it durable
    (``twin/<fab>/acks/<source>``, published by ``MqttSource.confirm``) and re-publishes the
    unconfirmed ones after each reconnect, so nothing is lost even if the broker itself dies
    (SIGKILL) with messages it had acknowledged but not yet delivered or persisted.
    """

    def __init__(
        self,
        cfg: MqttConfig,
        *,
        fab: str = "fab",
        end_to_end: bool = False,
        connect_timeout: float = 10.0,
    ) -> None:
        self.cfg, self.fab, self.end_to_end = cfg, fab, end_to_end
        self.connected = threading.Event()
        self._client = _client(cfg, manual_ack=False)
        self._lock = threading.Condition()
        self._unacked: set[int] = set()
        self._acked_early: set[int] = set()
        # source -> [seq, topic, json, last sent (monotonic s)] in seq order
        self._outbox: dict[str, deque[list[Any]]] = {}
        self._connects = 0
        self.published = 0
        self.acknowledged = 0
        self.republished = 0
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = lambda c, u, f, rc, p: self.connected.clear()
        self._client.on_publish = self._on_publish
        self._client.on_message = self._on_confirm
        self._topics: dict[str, str] = {}  # event source -> topic
        self._batches: dict[str, list[str]] = {}  # topic -> JSON texts waiting to be sent
        self._batch_t0: dict[str, float] = {}
        self._closing = threading.Event()
        _connect(self._client, cfg, connect_timeout, self.connected)
        if end_to_end or cfg.batch > 1:
            threading.Thread(target=self._ticker, daemon=True, name="mqtt-sink").start()

    def _on_connect(self, client: Any, userdata: Any, flags: Any, rc: Any, props: Any) -> None:
        if rc.is_failure:
            return
        self._connects += 1
        if self.end_to_end:
            client.subscribe(f"twin/{self.fab}/acks/#", qos=1)
            if self._connects > 1:  # the broker may have lost what it had: send it again
                self._resend(older_than=0.0)
        self.connected.set()

    def _resend(self, older_than: float) -> None:
        """Re-publish unconfirmed events last sent more than ``older_than`` s ago."""
        now = _time.monotonic()
        again = []
        with self._lock:  # never call paho while holding it: paho calls back into it
            for box in self._outbox.values():
                for m in box:
                    if now - m[3] >= older_than:
                        again.append((m[1], m[2]))
                        m[3] = now
            self.republished += len(again)
        for topic, payload in again:
            self._send(topic, payload)

    def _ticker(self) -> None:
        """Sends partial batches after ``linger``; re-sends unconfirmed events (which covers what
        a reconnect does not: a broker restarted without the twin's session drops messages for
        it until the twin subscribes again)."""
        tick = min(1.0, self.cfg.resend_after / 2, self.cfg.linger if self.cfg.batch > 1 else 1.0)
        last_resend = _time.monotonic()
        while not self._closing.wait(tick):
            if self.cfg.batch > 1:
                self._send_batches(older_than=self.cfg.linger)
            now = _time.monotonic()
            if self.end_to_end and self.connected.is_set() and now - last_resend >= 0.5:
                self._resend(older_than=self.cfg.resend_after)
                last_resend = now

    def _send_batches(self, older_than: float) -> None:
        now = _time.monotonic()
        with self._lock:
            due = [t for t, t0 in self._batch_t0.items() if now - t0 >= older_than]
            ready = [(t, self._batches.pop(t)) for t in due]
            for t in due:
                del self._batch_t0[t]
        for topic, texts in ready:
            self.publish_raw(topic, "[" + ",".join(texts) + "]")

    def _on_confirm(self, client: Any, userdata: Any, msg: Any) -> None:
        try:
            ack = json.loads(msg.payload)
            source, seq = ack["source"], int(ack["seq"])
        except (ValueError, KeyError, TypeError):
            return
        with self._lock:
            box = self._outbox.get(source)
            while box and box[0][0] <= seq:
                box.popleft()
            self._lock.notify_all()

    def unconfirmed(self) -> int:
        with self._lock:
            return sum(len(b) for b in self._outbox.values())

    def flush_confirmed(self, timeout: float = 60.0) -> bool:
        """Wait until the twin confirmed every event published (``end_to_end`` only)."""
        self._send_batches(older_than=0.0)
        deadline = _time.monotonic() + timeout
        with self._lock:
            while any(self._outbox.values()):
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
        topic = self._topics.get(event.source)
        if topic is None:  # one per source: topic_for walks the name character by character
            topic = self._topics[event.source] = topic_for(self.fab, event.source)
        payload = event.to_json()
        if self.end_to_end:
            with self._lock:
                while sum(len(b) for b in self._outbox.values()) >= self.cfg.max_unconfirmed:
                    self._lock.wait(0.5)
                box = self._outbox.setdefault(event.source, deque())
                box.append([event.seq, topic, payload, _time.monotonic()])
        if self.cfg.batch <= 1:
            self.publish_raw(topic, payload)
            return
        with self._lock:
            buf = self._batches.get(topic)
            if buf is None:
                buf = self._batches[topic] = []
                self._batch_t0[topic] = _time.monotonic()
            buf.append(payload)
            full = len(buf) >= self.cfg.batch
            if full:
                del self._batches[topic], self._batch_t0[topic]
        if full:
            self.publish_raw(topic, "[" + ",".join(buf) + "]")

    def publish_raw(self, topic: str, payload: str | bytes) -> None:
        """Publish with QoS 1; waits while ``max_inflight`` messages await their PUBACK
        (backpressure: nothing is dropped while the broker is slow or away)."""
        with self._lock:
            while len(self._unacked) >= self.cfg.max_inflight:
                self._lock.wait(0.5)
        self._send(topic, payload)
        self.published += 1

    def _send(self, topic: str, payload: str | bytes) -> None:
        info = self._client.publish(topic, payload, qos=1)
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

    def close(self) -> None:
        self._send_batches(older_than=0.0)
        self._closing.set()
        self._client.disconnect()
        self._client.loop_stop()


def _connect(client: Any, cfg: MqttConfig, timeout: float, connected: threading.Event) -> None:
    """Start the network thread; it keeps reconnecting with backoff after any disconnect."""
    client.connect_async(cfg.host, cfg.port, keepalive=cfg.keepalive)
    client.loop_start()
    if not connected.wait(timeout):
        client.loop_stop()
        raise InputError(
            "MQTT", [f"no connection to broker {cfg.host}:{cfg.port} within {timeout:.0f} s"]
        )
