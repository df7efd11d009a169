"""Store, or nothing: the twin state never runs ahead of the store, whatever arrives or fails.

Each finding of the attack on the ingest path is a test here: a write that fails, poison
payloads in a batch of good ones, far-future times, a one-event hijack of a source; and a
property test that feeds arbitrary mixes of good, malformed and poison payloads and checks the
state against a replay of the store, and every acknowledged event against the store.
"""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from twin.errors import IngestFailed, InputError
from twin.live.events import Event, format_time, make_event
from twin.live.order import ReorderConfig
from twin.live.sources import Message
from twin.live.store import MemoryStore, SQLiteStore
from twin.live.sync import SyncConfig, Synchroniser

# Poison: each of these once made the store's write raise (finding 1) or broke every read
# afterwards (finding 2); now each is refused at the door as a dead letter with its reason.
POISON = {
    "surrogate in source": lambda d: d.update(source="mes\ud800"),
    "surrogate in id": lambda d: d.update(id="x\ud800"),
    "surrogate in data": lambda d: d["data"].update(reason="\udfff"),
    "seq past 2^63": lambda d: d.update(seq=2**63 + 5),
    "seq 2^64-1": lambda d: d.update(seq=2**64 - 1),
    "nested 1,000 deep": lambda d: d["data"].update(reason=_deep(1000)),
    "nested 100,000 deep": lambda d: d["data"].update(reason=_deep(100_000)),
    "year 10000 by rounding": lambda d: d.update(time="9999-12-31T23:59:59.999999Z"),
    "time 1e15": lambda d: d.update(time=1e15),
    "time 1e400 as text": lambda d: d.update(time=math.inf),
    "huge step": lambda d: d.update(type="lot.rework", data={"step": 10**30}),
    "reserved gap source": lambda d: d.update(source="gap:mes"),
    "reserved type": lambda d: d.update(type="stream.gap", data={"from_seq": 1, "to_seq": 9}),
    "10k-char name": lambda d: d.update(subject="S" * 10_000),
}


def _deep(n: int) -> list:
    v: list = []
    for _ in range(n):
        v = [v]
    return v


def _text(payload: dict) -> str:
    """The JSON text a client would send (lone surrogates escaped, any depth)."""
    reason = payload["data"].get("reason")
    if isinstance(reason, list):  # deep: written without recursion, as a hostile client does
        depth = 0
        while isinstance(reason, list) and reason:
            reason, depth = reason[0], depth + 1
        doc = {**payload, "data": {**payload["data"], "reason": "@DEEP@"}}
        return json.dumps(doc).replace('"@DEEP@"', "[" * (depth + 1) + "]" * (depth + 1))
    return json.dumps(payload, allow_nan=True)


def _poisoned(ev: Event, name: str) -> dict:
    d = ev.to_dict()
    d["data"] = dict(d["data"])
    POISON[name](d)
    return d


class FailingStore:
    """A store whose ``write`` raises once, at its ``fail_at``-th call (the disk filled up)."""

    def __init__(self, inner, fail_at: int) -> None:
        self.inner, self.calls, self.fail_at = inner, 0, fail_at

    def write(self, events, dead=()):
        self.calls += 1
        if self.calls == self.fail_at:
            raise OSError("disk full")
        return self.inner.write(events, dead)

    def __getattr__(self, name):
        return getattr(self.inner, name)


@pytest.fixture(params=["memory", "sqlite", "postgres"])
def store(request, tmp_path):
    if request.param == "postgres":
        from twin.live.store_pg import PostgresStore

        s = PostgresStore(request.getfixturevalue("pg_url"))
    else:
        s = MemoryStore() if request.param == "memory" else SQLiteStore(tmp_path / "twin.db")
    yield s
    s.close()


def test_store_fails_once(store, catalog, stream):
    """A write that raises: nothing of that batch is acked or applied (state == replay), its
    events are accepted when sent again, and in the end each is stored exactly once."""
    flaky = FailingStore(store, fail_at=3)
    sync = Synchroniser(flaky, catalog, cfg=SyncConfig(batch=200))  # type: ignore[arg-type]
    acked: list[int] = []
    batches = [stream[i : i + 200] for i in range(0, 1000, 200)]

    def deliver(b: int) -> None:
        msgs = [
            Message(e.to_json(), ack=lambda k=b * 200 + j: acked.append(k))
            for j, e in enumerate(batches[b])
        ]
        sync.process(msgs)

    deliver(0)
    deliver(1)
    with pytest.raises(IngestFailed, match="disk full"):
        deliver(2)
    assert sorted(acked) == list(range(400))  # the failed batch is not acknowledged
    assert sync.pos == store.count() == 400 and sync.stats.failed_writes == 1
    assert sync.state.fingerprint() == store.replay(catalog).fingerprint()
    for b in (2, 3, 4):  # the source delivers the unacknowledged batch again, then goes on
        deliver(b)
    assert sorted(acked) == list(range(1000)) and store.count() == 1000
    assert list(store.read()) == stream[:1000]  # each stored once, in order
    assert sync.state.fingerprint() == store.replay(catalog).fingerprint()


class UnreadableAfterFailure(FailingStore):
    """A write raises once; then the store cannot be read either, ``broken_reads`` times."""

    def __init__(self, inner, fail_at: int, broken_reads: int) -> None:
        super().__init__(inner, fail_at)
        self.broken_reads = broken_reads

    def snapshot(self, at=None):
        if self.calls >= self.fail_at and self.broken_reads > 0:
            self.broken_reads -= 1
            raise OSError("I/O error reading the store")
        return self.inner.snapshot(at)


def test_a_failed_rebuild_refuses_batches_until_the_store_reads_again(tmp_path, catalog, stream):
    """A failed write whose rebuild from the store fails too: the failed batch must not stay
    in the state (a re-send would count as a duplicate and never be stored). Batches are
    refused with IngestFailed until a rebuild succeeds; then the re-sent batch is stored once
    and the state equals a replay."""
    with SQLiteStore(tmp_path / "twin.db") as inner:
        flaky = UnreadableAfterFailure(inner, fail_at=2, broken_reads=2)
        sync = Synchroniser(flaky, catalog, cfg=SyncConfig(batch=100))  # type: ignore[arg-type]
        sync.process_request(stream[:100], "test")
        with pytest.raises(IngestFailed, match="disk full"):
            sync.process_request(stream[100:200], "test")  # write fails, rebuild fails (1)
        with pytest.raises(IngestFailed, match="could not be rebuilt"):
            sync.process_request(stream[100:200], "test")  # rebuild fails again (2)
        assert inner.count() == 100
        res = sync.process_request(stream[100:200], "test")  # the store reads again
        assert res.status.count("accepted") == 100, res.reason[:3]
        assert inner.count() == 200 and list(inner.read()) == stream[:200]
        assert sync.state.fingerprint() == inner.replay(catalog).fingerprint()


def test_an_event_the_store_cannot_hold_is_dead_lettered_alone(tmp_path, catalog, stream):
    """An event that slipped past the door (a pre-checked Event with a lone surrogate) makes
    SQLite's write raise: it is dead-lettered, and the rest of its batch stored and applied."""
    with SQLiteStore(tmp_path / "twin.db") as store:
        sync = Synchroniser(store, catalog)
        good = stream[:50]
        bad = Event("mes:x", "zz\ud800", 1, good[0].time, "alarm.set", "ETCH_1",
                    {"alarm": "A1", "severity": "warning"})  # fmt: skip
        res = sync.process_request([*good[:25], bad, *good[25:]], "test")
        assert res.status.count("accepted") == 50 and res.status[25] == "rejected"
        assert "the store cannot hold this event" in res.reason[25]
        assert store.count() == 50 and store.dead_letter_count() == 1
        assert sync.state.fingerprint() == store.replay(catalog).fingerprint()


@pytest.mark.parametrize("name", sorted(POISON))
def test_poison_in_a_batch_of_good_events(store, catalog, stream, name):
    """One poison payload among good ones, as a dict, as JSON text and inside a JSON-array
    message: it alone is dead-lettered with a reason; the others are stored and applied; every
    stored event still formats and the state equals a replay."""
    sync = Synchroniser(store, catalog)
    good = stream[:30]
    poison = _poisoned(stream[30], name)
    res = sync.process_request([*good[:10], poison, *good[10:20]], "POST /events")
    assert res.status[10] == "rejected" and res.reason[10], res.reason[10]
    assert res.status.count("accepted") == 20
    text = _text(poison)  # \ud800 escaped, as a client would send it
    array = "[" + ",".join([*(e.to_json() for e in good[20:25]), text, good[25].to_json()]) + "]"
    acked: list[int] = []
    r2 = sync.process(
        [Message(text, ack=lambda: acked.append(0)), Message(array, ack=lambda: acked.append(1))]
    )
    assert r2.status[0] == "rejected" and r2.status[6] == "rejected"
    assert r2.status.count("accepted") == 6 and sorted(acked) == [0, 1]
    assert store.count() == 26 and store.dead_letter_count() == 3
    for ev in store.read():  # reads keep answering: every stored time formats
        ev.to_json()
    for d in store.dead_letters():
        d.raw.encode("utf-8")  # dead letters are valid text
    assert sync.state.fingerprint() == store.replay(catalog).fingerprint()
    sync.state.summary()


def test_far_future_times_are_refused_and_reads_answer(store, catalog, stream):
    """Times beyond max_future (or past year 9999) are dead letters naming the window; a time
    within it is accepted; format_time never raises even for a value a legacy store holds."""
    sync = Synchroniser(store, catalog, cfg=SyncConfig(max_future=3600.0))
    first = stream[0]
    soon = first.to_dict()
    late = {**first.to_dict(), "id": "mes:late"}
    late["time"] = format_time(first.time + 400 * 86_400)  # a year past the stream and today
    res = sync.process_request([soon, late], "t")
    assert res.status[0] == "accepted" or "ahead of this twin's clock" in res.reason[0]
    assert res.status[1] == "rejected" and "ahead of this twin's clock" in res.reason[1]
    for t in (1e15, 1e20, math.inf, math.nan, -5.0, 253_402_300_800.0):
        assert format_time(t)[-1] == "Z"


def test_one_event_cannot_hijack_a_source(store, catalog, stream):
    """An event 10^15 seqs ahead is refused (not declared a gap), so the producer's real
    events keep being accepted; the refusal is a dead letter that a restart does not resume
    from."""
    sync = Synchroniser(store, catalog)
    mes = [e for e in stream if e.source == "mes"][:40]
    hijack = {**mes[0].to_dict(), "id": "evil", "seq": 10**15}
    res = sync.process_request([*mes[:20], hijack], "evil token")
    assert res.status[20] == "rejected" and "beyond the reorder window" in res.reason[20]
    assert sync.process_request(mes[20:], "mes").status.count("accepted") == 20
    assert sync.stats.gaps == 0 and store.last_seqs()["mes"] == mes[-1].seq
    again = Synchroniser(store, catalog)  # restart: resumes after the real producer's seq
    assert again.reorder.next_seq("mes") == mes[-1].seq + 1


def test_admin_reset_moves_a_source_forward_with_an_audit_event(store, catalog, stream):
    """reset_source skips seqs forward only; the stream.reset audit event is stored, applied
    and honoured by a restart; a backward or malformed reset is refused with the reason."""
    sync = Synchroniser(store, catalog)
    mes = [e for e in stream if e.source == "mes"][:10]
    sync.process_request(mes, "mes")
    audit = sync.reset_source("mes", 5000, by="token ...abcd", reason="MES counter jumped")
    assert audit.type == "stream.reset" and audit.data["from_seq"] == mes[-1].seq + 1
    assert store.last_seqs()["reset:mes"] == 5000
    assert sync.state.gaps[-1]["reset_by"] == "token ...abcd"
    nxt = make_event(
        "mes", 5001, mes[-1].time + 1, "alarm.set", "ETCH_1", alarm="A", severity="info"
    )
    assert sync.process_request([nxt], "mes").status == ["accepted"]
    with pytest.raises(InputError, match="only moves forward"):
        sync.reset_source("mes", 10, by="admin")
    for bad in (("gap:mes", 9000), ("mes", 2**64), ("", 5)):
        with pytest.raises(InputError):
            sync.reset_source(*bad, by="admin")
    again = Synchroniser(store, catalog)
    assert again.reorder.next_seq("mes") == 5002
    assert again.state.fingerprint() == store.replay(catalog).fingerprint()


def test_heartbeat_declares_a_lost_tail_once_it_stops_arriving(catalog, stream):
    """A heartbeat announcing seqs that never come: after tail_wait without progress the tail
    is one stream.gap; a resending (end-to-end) producer's tail is never declared; malformed
    heartbeats are refused and counted."""
    now = [0.0]
    store = MemoryStore()
    cfg = SyncConfig(reorder=ReorderConfig(max_wait=1.0, tail_wait=5.0))
    sync = Synchroniser(store, catalog, cfg=cfg)
    sync.reorder._clock = lambda: now[0]
    mes = [e for e in stream if e.source == "mes"][:20]
    sync.process_request(mes[:10], "mes")
    sync.heartbeats(
        {
            "mes": {"last_seq": mes[19].seq, "time": mes[19].time},
            "erp": {"last_seq": 7, "resends": True},
        }
    )
    now[0] = 3.0
    sync.process_request(mes[10:12], "mes")  # the tail is arriving: its wait starts again
    now[0] = 7.0
    assert sync.process([]).gaps == 0
    now[0] = 8.5
    res = sync.process([])
    assert res.gaps == 1 and sync.state.gaps[-1] == {
        "source": "mes",
        "from_seq": mes[12].seq,
        "to_seq": mes[19].seq,
    }
    assert sync.reorder.next_seq("erp") == 1  # nothing declared for the resending producer
    for junk in ({"mes": "x"}, {"mes": -3}, {1: 5}, {"gap:mes": 5}, {"mes": {"last_seq": 2**70}}):
        sync.heartbeats(junk)  # refused and counted, never raised
    assert sync.stats.refused == 5
    assert sync.state.fingerprint() == store.replay(catalog).fingerprint()


# ------------------------------------------------------------------ property: whole path

_GOOD = st.integers(0, 59)
_KINDS = st.sampled_from(["good", "dup", "garbage", "not-object", "poison", "far-seq"])


@given(plan=st.lists(st.tuples(_KINDS, _GOOD, st.sampled_from(sorted(POISON))), max_size=60),
       fail_at=st.integers(0, 6), batch=st.integers(1, 25))  # fmt: skip
def test_state_always_equals_a_replay_of_the_store(catalog, stream, plan, fail_at, batch):
    """Arbitrary mixes of good, duplicate, garbage and poison payloads, in batches, with the
    store failing once somewhere: the state equals a replay of the store after every batch,
    and every acknowledged event is stored exactly once."""
    store = FailingStore(MemoryStore(), fail_at=fail_at)
    sync = Synchroniser(store, catalog, cfg=SyncConfig(batch=batch))  # type: ignore[arg-type]
    good = stream[:60]
    payloads: list[object] = []
    for kind, k, poison in plan:
        if kind in ("good", "dup"):
            payloads.append(good[k].to_json())
        elif kind == "garbage":
            payloads.append(b"\xff{not json" if k % 2 else "[" * 5000)
        elif kind == "not-object":
            payloads.append(json.dumps([k, None, "x"]))
        elif kind == "poison":
            payloads.append(_text(_poisoned(good[k], poison)))
        else:
            payloads.append(json.dumps({**good[k].to_dict(), "seq": 10**12 + k}))
    acked: dict[int, int] = {}
    pending = list(enumerate(payloads))
    for _attempt in range(3):  # unacknowledged messages are delivered again
        for i in range(0, len(pending), batch):
            chunk = pending[i : i + batch]
            msgs = [
                Message(p, ack=lambda j=j: acked.__setitem__(j, acked.get(j, 0) + 1))
                for j, p in chunk
            ]
            try:
                sync.process(msgs)
            except IngestFailed:
                pass
            assert sync.state.fingerprint() == store.replay(catalog).fingerprint()
        try:
            sync.flush()
        except IngestFailed:
            pass
        pending = [(j, p) for j, p in pending if j not in acked]
    assert all(n == 1 for n in acked.values())  # acknowledged once, never again
    keys = [ev.key for ev in store.read()]
    assert len(keys) == len(set(keys))  # nothing stored twice
    assert sync.state.fingerprint() == store.replay(catalog).fingerprint()
    # every acknowledged good event is in the store: applied, or a dead letter with its reason
    by_json = {e.to_json(): e for e in good}
    dead = store.dead_letters()
    dead_keys = {(d.source, d.seq) for d in dead}
    dead_raw = "\n".join(d.raw for d in dead)
    stored = set(keys)
    for j in acked:
        ev = by_json.get(payloads[j])  # type: ignore[arg-type]
        if ev is not None:
            assert ev.key in stored or ev.key in dead_keys or f'"id":"{ev.id}"' in dead_raw
