"""MQTT that cannot lose silently: a broker SIGKILLed with messages (and the twin's session) it
had acknowledged but not persisted, while `twin ingest` is stopped. End to end, every event is
stored exactly once; plain delivery loses events, but heartbeats make every lost seq a declared
gap. Hostile payloads among good events never stop ingest.

``kill_scenario`` is also what bench/bench_broker_kill.py runs."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.live.test_atomic import POISON, _poisoned, _text
from tests.live.test_mqtt import Ingest, wait_for
from tests.live.util import stored_count
from twin.live.events import make_event
from twin.live.mqtt import MqttConfig, MqttSink, topic_for
from twin.live.store import SQLiteStore

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "scenes" / "demo-fab"


def kill_scenario(
    broker,
    workdir: Path,
    *,
    end_to_end: bool,
    hours: float = 12.0,
    seed: int = 1,
    batch: int = 50,
    stop_after: int = 1000,
    pause: float = 3.0,
    settle: float = 12.0,
    stop_ingest: bool = True,
    resume_after_emulator: bool = False,
) -> dict:
    """`twin ingest` and `twin emulate --mqtt --mqtt-batch N` against ``broker``; once the store
    holds ``stop_after`` events the ingest process is stopped (SIGSTOP) for ``pause`` s, and
    halfway through the broker is SIGKILLed and restarted on the same port. Returns what the
    emulator published, what the store holds, and the gaps it declared. ``stop_ingest=False``:
    the ingest process keeps running through the kill. ``resume_after_emulator`` (plain
    delivery only: end to end, the emulator waits for the twin): ingest resumes only once the
    emulator has exited, so everything published after the kill is lost, the tail included.
    Once the emulator has exited and the store has not changed for ``settle`` s (longer than
    the synchroniser's tail wait), ingest is stopped with SIGTERM."""
    py, env = sys.executable, {**os.environ, "PYTHONUNBUFFERED": "1"}
    db = workdir / "twin.db"
    url = f"mqtt://127.0.0.1:{broker.port}/twin/+/events/#"
    ingest = subprocess.Popen(
        [py, "-m", "twin.cli", "ingest", "--from", url, "--store", str(db), "--client-id",
         "twin-kill", "--idle-exit", "600", "--batch", "500"],
        env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    emu_cmd = [py, "-m", "twin.cli", "emulate", str(DEMO), "--hours", str(hours), "--seed",
               str(seed), "--mqtt", f"127.0.0.1:{broker.port}", "--mqtt-batch", str(batch),
               "--json", "--confirm-timeout", "90"]  # fmt: skip
    if not end_to_end:
        emu_cmd.append("--no-end-to-end")
    emu = subprocess.Popen(emu_cmd, env=env, cwd=ROOT, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        wait_for(lambda: stored_count(db) >= stop_after or emu.poll() is not None, 120, "ingest")
        at_stop = stored_count(db)
        if stop_ingest:  # the broker now queues for a twin that reads nothing
            ingest.send_signal(signal.SIGSTOP)
        time.sleep(pause / 2)
        killed_mid_stream = emu.poll() is None
        broker.stop(signal.SIGKILL)  # ...and forgets that queue and the twin's session
        broker.start()
        if resume_after_emulator:
            out, err = emu.communicate(timeout=240)
        time.sleep(pause / 2)
        ingest.send_signal(signal.SIGCONT)
        if not resume_after_emulator:
            out, err = emu.communicate(timeout=240)
        _settle(db, settle)
        ingest.send_signal(signal.SIGTERM)  # a clean stop: held events flushed, snapshot taken
        ingest_out, _ = ingest.communicate(timeout=60)
    finally:
        for p in (emu, ingest):
            if p.poll() is None:
                p.send_signal(signal.SIGCONT)
                p.kill()
                p.wait()
    kpis = json.loads(out) if out.strip().startswith("{") else {}
    published = kpis.get("events", -1)
    with SQLiteStore(db) as s:
        events = list(s.read())
        dead = s.dead_letters()
        same = s.state_at().to_json() == s.replay().to_json()
    gaps = [e for e in events if e.source.startswith("gap:")]
    real = {e.key for e in events if not e.source.startswith("gap:")}
    declared = {
        (g.subject, n) for g in gaps for n in range(g.data["from_seq"], g.data["to_seq"] + 1)
    }
    return {
        "published": published,
        "stored": sum(1 for e in events if not e.source.startswith("gap:")),
        "unique": len(real),
        "lost": published - len(real),  # not stored as events
        "gaps": len(gaps),
        "declared": len(declared),  # seqs the twin declared lost
        "dead_letters": len(dead),
        # neither stored, nor declared lost, nor a dead letter: lost without a word
        "silent": published - len(real | declared | set(map(_key, dead))),
        "at_stop": at_stop,
        "killed_mid_stream": killed_mid_stream,
        "emulate_rc": emu.returncode,
        "emulate_err": err.strip()[-500:],
        "ingest_rc": ingest.returncode,
        "ingest_out": ingest_out.strip()[-500:],
        "state_is_replay": same,
    }


def _settle(db: Path, quiet: float, timeout: float = 300.0) -> None:
    """Wait until the store has not grown for ``quiet`` s."""
    deadline = time.monotonic() + timeout
    last, since = stored_count(db), time.monotonic()
    while time.monotonic() - since < quiet:
        if time.monotonic() > deadline:
            raise AssertionError(f"the store kept growing for {timeout:.0f} s")
        time.sleep(0.2)
        n = stored_count(db)
        if n != last:
            last, since = n, time.monotonic()


def _key(d) -> tuple:
    """The (source, seq) a dead letter was, where it can tell."""
    if d.source is not None:
        return (d.source, d.seq)
    try:
        raw = json.loads(d.raw)
        return (raw["source"], raw["seq"])
    except (ValueError, KeyError, TypeError):
        return ("?", d.raw)


@pytest.mark.slow
def test_broker_sigkill_end_to_end_stores_every_event_once(broker, tmp_path):
    """`twin emulate --mqtt` (end to end by default) loses nothing when the broker is SIGKILLed
    while `twin ingest` is stopped: every published event is stored exactly once, 0 gaps, and
    the emulator exits 0 only once the twin confirmed everything."""
    r = kill_scenario(broker, tmp_path, end_to_end=True)
    assert r["emulate_rc"] == 0 and r["ingest_rc"] == 0, r
    assert 0 < r["at_stop"] < r["published"] and r["killed_mid_stream"], r
    assert r["stored"] == r["unique"] == r["published"], r
    assert r["gaps"] == r["dead_letters"] == r["silent"] == 0, r
    assert r["state_is_replay"], r


@pytest.mark.slow
def test_broker_sigkill_plain_delivery_declares_every_lost_seq(broker, tmp_path):
    """With --no-end-to-end the same kill, with the emulator done before ingest resumes, loses
    the rest of the stream, but not silently: the sinks' (retained) heartbeats tell the twin
    the last seq of each source, so every lost seq, the tail included, is a declared gap
    (events that then fail validation, e.g. a track-out whose lot was lost, are dead letters)."""
    r = kill_scenario(broker, tmp_path, end_to_end=False, hours=30, resume_after_emulator=True)
    assert r["emulate_rc"] == 0 and r["ingest_rc"] == 0 and r["killed_mid_stream"], r
    assert r["stored"] == r["unique"], r
    assert r["lost"] > 0, r  # the kill did lose events (else this test checks nothing)
    assert r["silent"] == 0, r  # each one stored, declared lost, or a dead letter saying why
    assert r["state_is_replay"], r


def _hostile(good: dict) -> list[bytes | str]:
    """Payloads a broken or hostile publisher may put on an events topic."""
    lone = json.dumps({**good, "id": "\ud800", "subject": "\udfff"})  # escaped lone surrogates
    return [
        b"\xff\xfe\x00garbage",
        b"\xed\xa0\x80",  # a surrogate encoded in UTF-8: not valid UTF-8
        lone,
        '{"data":' + "[" * 1000 + "]" * 1000 + "}",
        '{"a":' * 1000 + "1" + "}" * 1000,
        "{" * 100_000,
        json.dumps([{"not": "an event"}] * 20_000),  # a huge array message
        json.dumps([[1] * 10] * 5_000),
        b"",
        "null",
        "1e999",
        json.dumps({**good, "seq": -1}),
        json.dumps({**good, "seq": True}),
        json.dumps({**good, "time": "NaN"}),
        json.dumps({**good, "data": {"state": "x" * 1_000_000}}),
    ]


def _run_hostile(
    broker, tmp_path, catalog, stream, extra: list[dict], raw: list[str] = ()
) -> tuple[Ingest, int]:
    """Publish ``stream`` with the hostile payloads (and ``extra`` events, ``raw`` texts) in
    between; wait until every good event is stored."""
    ingest = Ingest(broker, tmp_path / "twin.db", catalog, max_wait=1.0)
    sink = MqttSink(MqttConfig(port=broker.port, client_id="emu-h"), fab="fab1")
    bad = _hostile(json.loads(stream[0].to_json())) + [json.dumps(e) for e in extra] + list(raw)
    every = max(1, len(stream) // (len(bad) + 1))
    topic = topic_for("fab1", stream[0].source)
    try:
        for i, e in enumerate(stream):
            if i % every == 0 and bad:
                sink.publish_raw(topic, bad.pop())
            sink.publish(e)
        assert sink.flush(60)
        wait_for(
            lambda: ingest.sync.pos >= len(stream) or not ingest.thread.is_alive(),
            120,
            f"all stored {ingest.sync.stats}",
        )
        assert ingest.thread.is_alive(), "ingest stopped"  # it kept running
    finally:
        sink.close()
        ingest.close()
    return ingest, len(_hostile({})) + len(extra)


def test_hostile_payloads_among_good_events(broker, tmp_path, catalog, stream):
    """Garbage bytes, lone surrogates, 1,000-deep nesting and a 20,000-element array on the
    events topic become dead letters; ingest keeps running, every good event is stored once and
    the live state equals the store's replay."""
    ingest, n_bad = _run_hostile(broker, tmp_path, catalog, stream, [])
    with SQLiteStore(tmp_path / "twin.db") as s:
        assert s.count() == len(stream)
        assert s.dead_letter_count() >= n_bad
        assert ingest.sync.state.to_json() == s.replay().to_json()
        assert s.state_at().summary() == s.replay().summary()


def test_hostile_seq_and_time_among_good_events(broker, tmp_path, catalog, stream):
    """An event with seq 2^63 or time 1e15 (year 31 million), or an array message holding a
    1,000-deep array, is a dead letter, not the end of ingest: every good event is stored and
    the live state equals the store's replay."""
    good = json.loads(stream[0].to_json())
    extra = [
        {**good, "id": "big-seq", "seq": 2**63},
        {**good, "id": "far-time", "seq": 10**9, "time": 1e15},
    ]
    ingest, _ = _run_hostile(broker, tmp_path, catalog, stream, extra, ["[" * 1000 + "]" * 1000])
    with SQLiteStore(tmp_path / "twin.db") as s:
        assert sum(1 for e in s.read() if not e.source.startswith("gap:")) == len(stream)
        assert ingest.sync.state.to_json() == s.replay().to_json()


def test_emulate_end_to_end_without_a_twin_fails_naming_the_unconfirmed(broker, tmp_path):
    """With no twin confirming, `twin emulate --mqtt` waits --confirm-timeout s, then exits 1
    saying how many events were not confirmed durable; --no-end-to-end exits 0."""
    cmd = [sys.executable, "-m", "twin.cli", "emulate", str(DEMO), "--hours", "0.2",
           "--mqtt", f"127.0.0.1:{broker.port}", "--json", "--confirm-timeout", "1"]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=120)
    kpis = json.loads(done.stdout)
    assert done.returncode == 1
    assert f"{kpis['events']} events were not confirmed durable" in done.stderr
    done = subprocess.run([*cmd, "--no-end-to-end"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr


def test_emulate_refuses_bad_confirm_timeout(capsys):
    """--confirm-timeout must be a finite number of seconds in (0, 86400]."""
    from twin.cli import main

    for bad in ("0", "nan", "-1", "1e9"):
        assert main(["emulate", str(DEMO), "--confirm-timeout", bad, "--mqtt", "x:1"]) == 1
        assert "--confirm-timeout" in capsys.readouterr().err


_GOODS = st.integers(0, 199)
_POISONS = st.sampled_from(sorted(POISON))
_ITEMS = st.lists(
    st.one_of(
        st.tuples(st.just("good"), _GOODS),
        st.tuples(st.just("poison"), _POISONS),
        st.tuples(
            st.just("garbage"), st.sampled_from([b"\xff\x00", b"{", b"null", b"[]", b"[[[["])
        ),
        st.tuples(st.just("array"), st.lists(st.one_of(_GOODS, _POISONS), max_size=8)),
    ),
    max_size=15,
)


@pytest.mark.slow
def test_any_mix_over_mqtt_keeps_the_state_equal_to_the_store(broker, tmp_path, catalog, stream):
    """Arbitrary mixes of good events, poison payloads, garbage and JSON-array messages through
    a real broker into a running twin: ingest keeps running, nothing is stored twice, and the
    state equals a replay of the store after every mix."""
    ingest = Ingest(broker, tmp_path / "twin.db", catalog)
    sink = MqttSink(MqttConfig(port=broker.port, client_id="hyp"), fab="fab1")
    good = stream[:200]
    topic = topic_for("fab1", good[0].source)
    probe = [0]

    def text(w: int | str) -> str:
        return good[w].to_json() if isinstance(w, int) else _text(_poisoned(good[1], w))

    @settings(max_examples=12, deadline=None)
    @given(plan=_ITEMS)
    def one_mix(plan):
        for kind, what in plan:
            if kind == "array":
                sink.publish_raw(topic, "[" + ",".join(map(text, what)) + "]")
            else:
                sink.publish_raw(topic, what if kind == "garbage" else text(what))
        probe[0] += 1  # a barrier: once it is applied, everything published before was taken
        ev = make_event("probe", probe[0], good[0].time, "alarm.set", "ETCH_1", alarm="p",
                        severity="info")  # fmt: skip
        sink.publish_raw(topic_for("fab1", "probe"), ev.to_json())
        assert sink.flush(30)
        state = ingest.sync.state
        wait_for(lambda: state.last_seq.get("probe", 0) >= probe[0], 60, "the barrier")
        ingest.paused.set()
        try:
            time.sleep(0.3)
            with SQLiteStore(tmp_path / "twin.db", readonly=True) as s:
                keys = [e.key for e in s.read()]
                assert len(keys) == len(set(keys))
                assert ingest.sync.state.fingerprint() == s.replay(catalog).fingerprint()
        finally:
            ingest.paused.clear()

    try:
        one_mix()
        assert ingest.thread.is_alive(), "ingest stopped"
    finally:
        sink.close()
        ingest.close()
