"""MQTT against a real Mosquitto broker started by the test: end to end, broker restart, and the
ingest process killed mid-stream. At-least-once delivery + (source, seq) keys = exactly once."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time

import pytest

from tests.live.util import stored_count
from twin.live.mqtt import (
    MqttConfig,
    MqttSink,
    MqttSource,
    heartbeat_filter,
    parse_heartbeat,
    topic_for,
)
from twin.live.order import ReorderConfig
from twin.live.state import TwinState, apply_all
from twin.live.store import SQLiteStore
from twin.live.sync import SyncConfig, Synchroniser
from twin.live.synthetic import StreamConfig, synthetic_stream


def wait_for(cond, timeout, what):
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


class _Gate:
    """A source that yields nothing while ``paused`` is set."""

    def __init__(self, source, paused):
        self.source, self.paused = source, paused
        self.confirm = source.confirm

    @property
    def exhausted(self):
        return self.source.exhausted

    def receive(self, n, timeout):
        if self.paused.is_set():
            time.sleep(timeout)
            return []
        return self.source.receive(n, timeout)

    def close(self):
        self.source.close()


class Ingest:
    """A synchroniser reading an MqttSource on a thread, into a SQLite store."""

    def __init__(self, broker, db, catalog, client_id="twin-test", max_wait=2.0):
        cfg = MqttConfig(port=broker.port, topic="twin/fab1/events/#", client_id=client_id,
                         max_backoff=1.0)  # fmt: skip
        self.source = MqttSource(cfg)
        self.paused = threading.Event()  # while set, the twin takes nothing from its source
        self.store = SQLiteStore(db)
        cfg = SyncConfig(batch=500, reorder=ReorderConfig(window=100_000, max_wait=max_wait))
        self.sync = Synchroniser(self.store, catalog, cfg=cfg)
        self._stop = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        self.sync.run(_Gate(self.source, self.paused), stop=lambda: self._stop)

    def close(self):
        self._stop = True
        self.thread.join(10)
        self.source.close()
        self.store.close()


def test_topic_scheme():
    """Each source publishes on twin/<fab>/events/<source>, wildcards in names neutralised."""
    assert topic_for("fab1", "mes") == "twin/fab1/events/mes"
    assert topic_for("fab1", "a/b+#") == "twin/fab1/events/a_b__"
    cfg = MqttConfig.from_url("mqtt://10.0.0.5:1884/twin/+/events/#")
    assert (cfg.host, cfg.port, cfg.topic) == ("10.0.0.5", 1884, "twin/+/events/#")


@pytest.mark.parametrize("batch", [1, 25])
def test_end_to_end_through_mosquitto(broker, tmp_path, catalog, stream, batch):
    """Every published event reaches the store once, and the state equals the ordered replay,
    whether events travel one per message or batched as JSON arrays."""
    ingest = Ingest(broker, tmp_path / "twin.db", catalog)
    sink = MqttSink(MqttConfig(port=broker.port, client_id="emu-1", batch=batch), fab="fab1")
    try:
        for e in stream:
            sink.publish(e)
        assert sink.flush(30)
        wait_for(lambda: ingest.sync.pos >= len(stream), 60, "all events stored")
    finally:
        sink.close()
        ingest.close()
    with SQLiteStore(tmp_path / "twin.db") as s:
        assert s.count() == len(stream) and s.dead_letter_count() == 0
        assert (
            s.state_at(None, catalog).fingerprint()
            == apply_all(TwinState(catalog), stream).fingerprint()
        )


def test_batched_message_with_bad_events_is_split_and_acknowledged_once(catalog, stream):
    """A JSON-array message is split: its bad elements become dead letters naming their index,
    the good ones are applied, and the message is acknowledged once, after the last one."""
    from twin.live.sources import Message
    from twin.live.store import MemoryStore

    acks = []
    items = [json.loads(e.to_json()) for e in stream[:5]]
    items.insert(2, {"not": "an event"})
    held = json.loads(stream[6].to_json())  # ahead of seq 6: waits in the reorder buffer
    sync = Synchroniser(MemoryStore(), catalog)
    sync.process([Message(json.dumps(items + [held]), ack=lambda: acks.append(1), origin="t")])
    assert sync.pos == 5 and sync.stats.rejected == 1 and acks == []
    assert "t[2]: missing envelope keys" in sync.store.dead_letters()[0].reason
    sync.process([Message(stream[5].to_json())])
    assert sync.pos == 7 and acks == [1]


@pytest.mark.slow
def test_broker_restart_mid_stream_loses_nothing(broker, tmp_path, catalog, stream):
    """The broker is stopped and restarted twice while events flow: every event the publisher
    got acknowledged ends up stored exactly once (persistent sessions, QoS 1, reconnect)."""
    ingest = Ingest(broker, tmp_path / "twin.db", catalog)
    sink = MqttSink(MqttConfig(port=broker.port, client_id="emu-2", max_backoff=1.0), fab="fab1")
    thirds = [len(stream) // 3, 2 * len(stream) // 3]
    try:
        for i, e in enumerate(stream):
            if i in thirds:
                assert sink.flush(30)  # these are acknowledged by the broker
                broker.stop(signal.SIGTERM)  # persists its queues on the way down
                time.sleep(0.5)
                broker.start()
                wait_for(sink.connected.is_set, 30, "publisher reconnect")
            sink.publish(e)
            if i % 200 == 0:
                time.sleep(0.01)
        assert sink.flush(60)
        wait_for(lambda: ingest.sync.pos >= len(stream), 90, "all events stored")
        assert ingest.source.connects >= 3
    finally:
        sink.close()
        ingest.close()
    with SQLiteStore(tmp_path / "twin.db") as s:
        assert s.count() == len(stream)
        keys = [(e.source, e.seq) for e in s.read()]
        assert len(set(keys)) == len(stream)
        assert (
            s.state_at(None, catalog).fingerprint()
            == apply_all(TwinState(catalog), stream).fingerprint()
        )


@pytest.mark.slow
def test_broker_sigkilled_mid_stream_end_to_end_confirmation_loses_nothing(
    broker, tmp_path, catalog, stream
):
    """The broker is SIGKILLed twice while it holds messages not yet delivered to the twin (the
    twin is paused), so it loses them and the twin's session; publishers with end-to-end
    confirmation re-send what the twin has not confirmed durable, so every event is stored
    exactly once and the state equals the ordered replay."""
    ingest = Ingest(broker, tmp_path / "twin.db", catalog, max_wait=10.0)
    cfg = MqttConfig(port=broker.port, client_id="emu-k", max_backoff=1.0, resend_after=1.0)
    sink = MqttSink(cfg, fab="fab1", end_to_end=True)
    kills = {len(stream) // 3, 2 * len(stream) // 3}
    try:
        for i, e in enumerate(stream):
            if i - 200 in kills:  # 200 events went to the broker while the twin was paused
                assert sink.flush(30)  # the broker acknowledged them...
                broker.stop(signal.SIGKILL)  # ...and dies before delivering them
                time.sleep(0.3)
                broker.start()
                ingest.paused.clear()
            if i in kills:
                ingest.paused.set()
            sink.publish(e)
            if i % 100 == 0:
                time.sleep(0.005)
        assert sink.flush_confirmed(120), (sink.unconfirmed(), ingest.sync.stats)
        wait_for(lambda: ingest.sync.pos >= len(stream), 30, f"all stored {ingest.sync.stats}")
    finally:
        sink.close()
        ingest.close()
    assert sink.republished >= 400  # the lost messages were sent again
    with SQLiteStore(tmp_path / "twin.db") as s:
        assert s.count() == len(stream)
        assert s.dead_letter_count() == 0
        assert (
            s.state_at(None, catalog).fingerprint()
            == apply_all(TwinState(catalog), stream).fingerprint()
        )


@pytest.mark.slow
def test_ingest_sigkilled_mid_stream_recovers_every_event(broker, tmp_path):
    """`twin ingest` from MQTT is SIGKILLed three times while draining the broker's queue; the
    persistent session re-delivers what was not acknowledged, and the final state equals a full
    replay of the stream."""
    stream = synthetic_stream(StreamConfig(lots=100, seed=4))
    db = tmp_path / "twin.db"
    url = f"mqtt://127.0.0.1:{broker.port}/twin/fab1/events/#"
    cmd = [sys.executable, "-m", "twin.cli", "ingest", "--from", url, "--store", str(db),
           "--client-id", "twin-kill", "--batch", "200", "--snapshot-every", "1500",
           "--idle-exit", "3", "--quiet"]  # fmt: skip
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    # register the persistent session first, so the broker queues for it while it is down
    subprocess.run([*cmd[:-3], "--idle-exit", "0.5", "--quiet"], env=env, check=True, timeout=60)
    sink = MqttSink(MqttConfig(port=broker.port, client_id="emu-3"), fab="fab1")
    for e in stream:
        sink.publish(e)
    assert sink.flush(60)
    sink.close()
    rng = random.Random(1)
    counts = []
    for _ in range(3):
        proc = subprocess.Popen(cmd, env=env)
        before = stored_count(db)
        wait_for(
            lambda p=proc, b=before: stored_count(db) > b or p.poll() is not None, 60, "progress"
        )
        time.sleep(rng.uniform(0.0, 0.3))
        if proc.poll() is not None:
            break
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        with SQLiteStore(db) as s:
            counts.append(s.count())
    assert any(0 < n < len(stream) for n in counts), counts  # killed mid-stream at least once
    done = subprocess.run(cmd, env=env, timeout=120)
    assert done.returncode == 0
    with SQLiteStore(db) as s:
        assert s.count() == len(stream), counts
        assert s.state_at().fingerprint() == s.replay().fingerprint()
        assert s.state_at().fingerprint() == apply_all(TwinState(), stream).fingerprint()


# ---------------------------------------------------------------- heartbeats and presence
def _hb(source="mes", seq=5, t=1.7e9, **extra):
    return json.dumps({"source": source, "last_seq": seq, "time": t, **extra}).encode()


def test_parse_heartbeat_accepts_the_documented_shape():
    """A heartbeat is {"source", "last_seq", "time"} on its source's topic; extra keys pass."""
    assert parse_heartbeat("twin/f/heartbeat/mes", _hb()) == ("mes", 5)
    assert parse_heartbeat("twin/f/heartbeat/a_b", _hb("a/b", 2**63 - 1, 0, v=2)) == (
        "a/b",
        2**63 - 1,
    )


@pytest.mark.parametrize(
    "topic, payload, why",
    [
        ("twin/f/heartbeat/mes", b"\xff\xfe garbage", "not JSON"),
        ("twin/f/heartbeat/mes", b"[" * 1000 + b"]" * 1000, "not JSON|JSON object"),
        ("twin/f/heartbeat/mes", b'{"a":' * 600 + b"1" + b"}" * 600, "not JSON|'source'"),
        ("twin/f/heartbeat/mes", b'{"a":' * 800 + b"1" + b"}" * 800, "bytes"),
        ("twin/f/heartbeat/mes", b"[" * 100_000, "bytes"),
        ("twin/f/heartbeat/mes", b"x" * 5000, "bytes"),
        ("twin/f/heartbeat/mes", b"", "not JSON"),
        ("twin/f/heartbeat/mes", b"null", "JSON object"),
        ("twin/f/heartbeat/mes", _hb(seq=2**63), "last_seq"),
        ("twin/f/heartbeat/mes", _hb(seq=10**400), "last_seq"),
        ("twin/f/heartbeat/mes", _hb(seq=0), "last_seq"),
        ("twin/f/heartbeat/mes", _hb(seq=True), "last_seq"),
        ("twin/f/heartbeat/mes", _hb(seq=5.0), "last_seq"),
        ("twin/f/heartbeat/mes", _hb(seq="5"), "last_seq"),
        ("twin/f/heartbeat/mes", _hb(t=1e15), "time"),
        ("twin/f/heartbeat/mes", _hb(t=-1), "time"),
        ("twin/f/heartbeat/mes", b'{"source":"mes","last_seq":5,"time":NaN}', "time"),
        ("twin/f/heartbeat/mes", b'{"source":"mes","last_seq":5,"time":1e999}', "time"),
        ("twin/f/heartbeat/mes", _hb(t="2026-01-01T00:00:00Z"), "time"),
        ("twin/f/heartbeat/mes", _hb(t=None), "time"),
        ("twin/f/heartbeat/_", _hb("\ud800"), "lone surrogate"),
        ("twin/f/heartbeat/mes", _hb(""), "'source'"),
        ("twin/f/heartbeat/mes", _hb(["mes"]), "'source'"),
        ("twin/f/heartbeat/mes", _hb("x" * 300), "'source'"),
        ("twin/f/heartbeat/amhs", _hb("mes"), "does not match"),
    ],
)
def test_parse_heartbeat_refuses_hostile_payloads(topic, payload, why):
    """Garbage, deep nesting, huge or non-integer seqs, extreme or non-finite times, lone
    surrogates and a source that is not the topic's are refused with a reason."""
    with pytest.raises(ValueError, match=why):
        parse_heartbeat(topic, payload)


def test_heartbeat_filter_follows_the_events_filter():
    """A twin listens to the heartbeats of the fabs and sources it subscribes to, no others."""
    assert heartbeat_filter("twin/+/events/#") == "twin/+/heartbeat/#"
    assert heartbeat_filter("twin/f1/events/#") == "twin/f1/heartbeat/#"
    assert heartbeat_filter("twin/f1/events/mes") == "twin/f1/heartbeat/mes"
    assert heartbeat_filter("twin/f1/#") == "twin/f1/heartbeat/#"
    assert heartbeat_filter("#") == heartbeat_filter("plant/x") == "twin/+/heartbeat/#"


def test_config_check_lists_every_problem():
    """An MqttConfig with several bad fields is refused once, naming each."""
    from twin.errors import InputError

    bad = MqttConfig(heartbeat=0, resend_after=float("nan"), batch=0, linger=-1)
    with pytest.raises(InputError) as err:
        bad.check()
    for name in ("heartbeat", "resend_after", "batch", "linger"):
        assert name in str(err.value)


def test_heartbeats_tell_a_late_twin_the_tail(broker, stream):
    """Every sink publishes, per source, the last seq it published (retained, and on close): a
    twin that subscribes after the publisher left still learns each source's tail; hostile
    heartbeats are ignored and counted; heartbeats() drains."""
    sink = MqttSink(MqttConfig(port=broker.port, client_id="emu-hb", batch=10), fab="fab1")
    for e in stream[:300]:
        sink.publish(e)
    sink.close()  # sends the last heartbeats
    tails = {}
    for e in stream[:300]:
        tails[e.source] = max(tails.get(e.source, 0), e.seq)
    src = MqttSource(MqttConfig(port=broker.port, topic="twin/+/events/#", client_id="late"))
    raw = MqttSink(MqttConfig(port=broker.port, client_id="emu-bad"), fab="fab2")
    try:
        wait_for(lambda: src.heartbeats_seen >= len(tails), 10, "the retained heartbeats")
        assert src.heartbeats() == tails
        assert src.heartbeats() == {}  # drained
        for payload in [b"\xff", _hb(seq=2**64), _hb("\ud800"), b"[" * 5000, _hb(t=1e300)]:
            raw.publish_raw("twin/fab2/heartbeat/mes", payload)
        wait_for(lambda: src.heartbeats_rejected >= 5, 10, "the hostile heartbeats")
        assert src.heartbeats_rejected == 5 and "heartbeat/mes" in src.last_heartbeat_problem
        raw.publish_raw("twin/fab2/heartbeat/mes", _hb("mes", 7))
        wait_for(lambda: src.heartbeats_seen > len(tails), 10, "a live heartbeat")
        assert src.heartbeats() == {"mes": 7}
    finally:
        raw.close()
        src.close()


def test_heartbeat_follows_a_fixed_interval(broker, stream):
    """A sink repeats its heartbeats every cfg.heartbeat s while it runs, with the last seq
    handed to the broker (never one still waiting in a batch)."""
    src = MqttSource(MqttConfig(port=broker.port, topic="twin/fab1/events/#", client_id="t-hb"))
    cfg = MqttConfig(port=broker.port, client_id="emu-beat", heartbeat=0.2, batch=1000)
    sink = MqttSink(cfg, fab="fab1")
    try:
        assert src.hb_topic == "twin/fab1/heartbeat/#"
        sink.publish(stream[0])  # waits in a batch until the next heartbeat sends it first
        wait_for(lambda: src.heartbeats_seen >= 3, 10, "three heartbeats")
        assert src.heartbeats() == {stream[0].source: stream[0].seq}
        assert sink.published == 1  # the batch went out before its heartbeat
    finally:
        sink.close()
        src.close()


def test_end_to_end_sink_resends_when_the_twin_announces_itself(broker, stream):
    """An end-to-end sink re-sends every unconfirmed event as soon as a twin says it has
    (re)subscribed on twin/<fab>/presence; a retained presence is ignored."""
    other = MqttSink(MqttConfig(port=broker.port, client_id="emu-q"), fab="fab1")
    other._send("twin/fab1/presence", b"{}", retain=True)  # kept: says nothing about now
    assert other.flush(10)
    sink = MqttSink(MqttConfig(port=broker.port, client_id="emu-p"), fab="fab1", end_to_end=True)
    try:
        for e in stream[:50]:
            sink.publish(e)
        assert sink.flush(10) and sink.unconfirmed() == 50
        time.sleep(0.5)  # the retained presence has reached the sink by now
        assert sink.republished == 0
        src = MqttSource(MqttConfig(port=broker.port, topic="twin/fab1/events/#", client_id="p"))
        wait_for(lambda: sink.presences >= 1, 10, "the twin's presence")
        wait_for(lambda: len(src._inbox) >= 50, 10, "the re-sent events")
        assert sink.republished == 50
        src.confirm({e.source: 10**6 for e in stream[:50]})
        assert sink.flush_confirmed(10) and sink.unconfirmed() == 0
        src.close()
    finally:
        other._client.publish("twin/fab1/presence", b"", qos=1, retain=True)  # clear it
        other.close()
        sink.close()


def test_end_to_end_sink_sends_only_its_window_ahead_of_the_twin(broker, stream):
    """An end-to-end sink sends at most ``send_window`` events past the oldest unconfirmed one;
    the rest wait unsent until confirmations move the window, so after a loss nothing it sends
    lies beyond the twin's reorder window (CI once dead-lettered 16 events that way)."""
    first = stream[0].source
    events = [e for e in stream if e.source == first][:30]
    assert [e.seq for e in events] == list(range(events[0].seq, events[0].seq + 30))
    src = MqttSource(MqttConfig(port=broker.port, topic="twin/fab1/events/#", client_id="w"))
    cfg = MqttConfig(port=broker.port, client_id="emu-win", send_window=10, resend_after=60)
    sink = MqttSink(cfg, fab="fab1", end_to_end=True)
    try:
        for e in events:
            sink.publish(e)
        assert sink.flush(10) and sink.unconfirmed() == 30

        def seqs() -> list[int]:
            time.sleep(0.3)
            return sorted({json.loads(m.payload)["seq"] for m in src._inbox})

        wait_for(lambda: len(src._inbox) >= 10, 10, "the first window")
        assert seqs() == [e.seq for e in events[:10]]  # nothing beyond the window
        src.confirm({first: events[4].seq})  # five confirmed: five more may go
        wait_for(lambda: len(seqs()) >= 15, 10, "the window moved")
        assert seqs() == [e.seq for e in events[:15]]
        src.confirm({first: events[14].seq})  # 16..25 may be in flight now
        wait_for(lambda: len(seqs()) >= 25, 10, "the window moved again")
        assert seqs() == [e.seq for e in events[:25]]
        src.confirm({first: events[24].seq})
        wait_for(lambda: len(seqs()) >= 30, 10, "the rest")
        assert seqs() == [e.seq for e in events]
        src.confirm({first: events[-1].seq})
        assert sink.flush_confirmed(10) and sink.unconfirmed() == 0
    finally:
        sink.close()
        src.close()


def test_wide_filter_receives_events_only(broker, stream):
    """A twin subscribed to twin/# gets events in its inbox; heartbeats go to heartbeats(), and
    the twin's own confirmations and presence are acknowledged and dropped, not dead letters."""
    src = MqttSource(MqttConfig(port=broker.port, topic="twin/#", client_id="wide"))
    sink = MqttSink(MqttConfig(port=broker.port, client_id="emu-w"), fab="fab1")
    try:
        for e in stream[:5]:
            sink.publish(e)
        assert sink.flush(10)
        wait_for(lambda: len(src._inbox) >= 5, 10, "the events")
        src.confirm({e.source: e.seq for e in stream[:5]})  # published on twin/fab1/acks/...
        wait_for(lambda: src.heartbeats_seen >= 1, 10, "a heartbeat")
        time.sleep(0.3)
        got = src.receive(100, 0.1)
        assert sorted(m.origin for m in got) == sorted(
            topic_for("fab1", e.source) for e in stream[:5]
        )
    finally:
        sink.close()
        src.close()


def test_an_end_to_end_producers_tail_is_never_expected():
    """A heartbeat that says the producer resends until confirmed is left out of heartbeats():
    its tail comes again after a loss, so the twin must not declare it a gap."""
    from twin.live.mqtt import _resends

    assert _resends(
        json.dumps({"source": "mes", "last_seq": 5, "time": 1.0, "resends": True}).encode()
    )
    for payload in (_hb(), b"garbage", b"[1]", b'{"resends": "yes"}', b"{" * 5000):
        assert not _resends(payload)
