"""MQTT transport (paho-mqtt 2.x against a Mosquitto broker): a source and a sink.

Topic scheme: ``twin/<fab>/events/<source>``, one topic per event source; the twin subscribes to
``twin/<fab>/events/#`` (or ``twin/+/events/#`` for every fab). Payload: the event's JSON.

Delivery is at least once: QoS 1 both ways, persistent sessions (``clean_session=False`` with a
fixed client id, so the broker queues messages while the twin is away), automatic reconnect with
exponential backoff, and manual acknowledgement: the source acks a message only after the
synchroniser made it durable, so a crash or a broker restart re-delivers what was not stored and
the (source, seq) key removes the duplicates. The broker must not cap queues below the stream's
burst (``max_queued_messages 0``, ``max_inflight_messages 0`` in mosquitto.conf).
"""

from __future__ import annotations

import queue
import threading
import time as _time
from dataclasses import dataclass
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
        self._q: queue.Queue[Message] = queue.Queue()
        self.connected = threading.Event()
        self.connects = 0
        self._closed = False
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
        mid, qos = msg.mid, msg.qos
        self._q.put(Message(msg.payload, ack=lambda: client.ack(mid, qos), origin=msg.topic))

    @property
    def exhausted(self) -> bool:
        return self._closed and self._q.empty()

    def receive(self, max_items: int, timeout: float) -> list[Message]:
        out: list[Message] = []
        try:
            out.append(self._q.get(timeout=timeout) if timeout > 0 else self._q.get_nowait())
            while len(out) < max_items:
                out.append(self._q.get_nowait())
        except queue.Empty:
            pass
        return out

    def close(self) -> None:
        self._closed = True
        self._client.disconnect()
        self._client.loop_stop()


class MqttSink:
    """Publishes events with QoS 1 on ``topic_for(fab, event.source)``; ``flush`` waits for the
    broker's PUBACKs. Unacknowledged messages are re-sent after a reconnect."""

    def __init__(self, cfg: MqttConfig, *, fab: str = "fab", connect_timeout: float = 10.0) -> None:
        self.cfg, self.fab = cfg, fab
        self.connected = threading.Event()
        self._client = _client(cfg, manual_ack=False)
        self._lock = threading.Condition()
        self._unacked: set[int] = set()
        self._acked_early: set[int] = set()
        self.published = 0
        self.acknowledged = 0
        self._client.on_connect = lambda c, u, f, rc, p: (
            (not rc.is_failure) and self.connected.set()
        )
        self._client.on_disconnect = lambda c, u, f, rc, p: self.connected.clear()
        self._client.on_publish = self._on_publish
        _connect(self._client, cfg, connect_timeout, self.connected)

    def _on_publish(self, client: Any, userdata: Any, mid: int, rc: Any, props: Any) -> None:
        with self._lock:
            if mid in self._unacked:
                self._unacked.discard(mid)
            else:  # PUBACK raced ahead of publish() returning
                self._acked_early.add(mid)
            self.acknowledged += 1
            self._lock.notify_all()

    def publish(self, event: Event) -> None:
        self.publish_raw(topic_for(self.fab, event.source), event.to_json())

    def publish_raw(self, topic: str, payload: str | bytes) -> None:
        """Publish with QoS 1; waits while ``max_inflight`` messages await their PUBACK
        (backpressure: nothing is dropped while the broker is slow or away)."""
        with self._lock:
            while len(self._unacked) >= self.cfg.max_inflight:
                self._lock.wait(0.5)
        info = self._client.publish(topic, payload, qos=1)
        with self._lock:
            if info.mid in self._acked_early:
                self._acked_early.discard(info.mid)
            else:
                self._unacked.add(info.mid)
        self.published += 1

    def pending(self) -> int:
        with self._lock:
            return len(self._unacked)

    def flush(self, timeout: float = 30.0) -> bool:
        """Wait until the broker acknowledged everything published; False on timeout."""
        deadline = _time.monotonic() + timeout
        with self._lock:
            while self._unacked:
                left = deadline - _time.monotonic()
                if left <= 0:
                    return False
                self._lock.wait(min(left, 0.1))
        return True

    def close(self) -> None:
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
