"""TwinState and apply: KPIs against hand-computed values, idempotence, snapshots, ordering."""

from __future__ import annotations

import random

import pytest

from twin.live.events import make_event
from twin.live.order import ReorderConfig
from twin.live.sources import Message
from twin.live.state import TwinState, apply, apply_all
from twin.live.store import MemoryStore
from twin.live.sync import SyncConfig, Synchroniser

T0 = 1_800_000_000.0


def ev(seq, type, subject, t, source="mes", **data):
    return make_event(source, seq, T0 + t, type, subject, **data)


def test_e10_time_and_utilisation_closed_form(catalog):
    """Utilisation = productive time / observed time, from the state timeline by hand."""
    s = TwinState(catalog)
    apply_all(
        s,
        [
            ev(1, "equipment.state", "CMP_1", 0, state="standby", reason="idle"),
            ev(2, "equipment.state", "CMP_1", 100, state="productive", reason="run"),
            ev(3, "equipment.state", "CMP_1", 400, state="standby", reason="idle"),
            ev(4, "equipment.state", "CMP_1", 500, state="unscheduled_down", reason="breakdown"),
            ev(5, "equipment.state", "CMP_1", 800, state="engineering", reason="qual"),
            ev(6, "equipment.state", "CMP_1", 900, state="productive", reason="run"),
            ev(7, "vehicle.state", "V1", 1000, source="amhs", state="idle"),  # moves the clock
        ],
    )
    e = s.equipment["CMP_1"]
    assert e.time_in == {
        "standby": 100 + 100,
        "productive": 300,
        "unscheduled_down": 300,
        "engineering": 100,
    }
    assert s.utilisation_by_family()["CMP"] == pytest.approx((300 + 100) / 1000)
    assert e.rev == 6 and s.revision == 7


def test_lot_kpis_closed_form(catalog):
    """WIP by step/family, moves per hour and mean cycle time of two hand-made lots."""
    s = TwinState(catalog)
    apply_all(
        s,
        [
            ev(1, "lot.released", "A", 0, product="P2"),
            ev(2, "lot.released", "B", 60, product="P2"),
            ev(3, "lot.track_in", "A", 120, equipment="LITHO_1", step=10),
        ],
    )
    assert s.wip() == 2
    assert s.kpis()["wip_by_step"] == {"10": 2}
    assert s.kpis()["wip_by_family"] == {"LITHO": 2}
    events = [ev(4, "lot.track_out", "A", 3600, equipment="LITHO_1", step=10)]
    seq, t = 5, 4000
    # walk A through the rest of P2 (LITHO, ETCH, DIFF, LITHO, delay, ETCH, CMP)
    for step, tool in (
        (20, "ETCH_1"),
        (30, "DIFF_1"),
        (40, "LITHO_2"),
        (60, "ETCH_2"),
        (70, "CMP_1"),
    ):
        events.append(ev(seq, "lot.track_in", "A", t + 10, equipment=tool, step=step))
        events.append(ev(seq + 1, "lot.track_out", "A", t + 20, equipment=tool, step=step))
        seq, t = seq + 2, t + 20
    events.append(ev(seq, "lot.completed", "A", 7200))
    events.append(ev(seq + 1, "lot.scrap", "B", 7300, reason="defect"))
    apply_all(s, events)
    assert s.lots_completed == 1 and s.lots_scrapped == 1 and s.wip() == 0
    assert s.mean_cycle_time() == pytest.approx(7200.0)
    assert s.moves == 6
    # moves in the hour (60 one-minute buckets) before the clock T0+7300 s: all but the first
    assert s.moves_per_hour() == 5
    assert s.lots["A"].step is None and s.lots["A"].moves == 6


def test_duplicates_and_replays_change_nothing(catalog, stream):
    """Applying the stream twice, or with every event doubled, gives the same state."""
    once = apply_all(TwinState(catalog), stream)
    twice = apply_all(apply_all(TwinState(catalog), stream), stream)
    doubled = TwinState(catalog)
    for e in stream:
        apply(doubled, e)
        apply(doubled, e)
    assert once.fingerprint() == twice.fingerprint() == doubled.fingerprint()
    assert once.revision == len(stream)


def test_apply_is_deterministic_and_snapshots_round_trip(catalog, stream):
    """State -> JSON -> state is equal, and continuing from the copy equals the original."""
    half = len(stream) // 2
    a = apply_all(TwinState(catalog), stream[:half])
    b = TwinState.from_json(a.to_json())
    assert b.fingerprint() == a.fingerprint()
    apply_all(a, stream[half:])
    apply_all(b, stream[half:])
    assert a.fingerprint() == b.fingerprint()
    assert a.kpis() == b.kpis()


def test_every_entity_has_a_revision(catalog, stream):
    """An entity's rev counts the events that changed it (equipment: state + track-in/out)."""
    s = apply_all(TwinState(catalog), stream)
    for eid, e in s.equipment.items():
        n = sum(
            1
            for x in stream
            if (x.type == "equipment.state" and x.subject == eid)
            or (x.type in ("lot.track_in", "lot.track_out") and x.data["equipment"] == eid)
        )
        assert e.rev == n, eid
    for vid, v in s.vehicles.items():
        n = sum(
            1
            for x in stream
            if (x.type in ("vehicle.position", "vehicle.state") and x.subject == vid)
            or (x.type in ("carrier.picked_up", "carrier.delivered") and x.data["vehicle"] == vid)
        )
        assert v.rev == n, vid


def _shuffle_within(events, window, rng):
    """Displace each event by less than ``window`` positions (a bounded local shuffle)."""
    keys = [i + rng.uniform(0, window - 1) for i in range(len(events))]
    return [e for _, e in sorted(zip(keys, events), key=lambda p: p[0])]


def test_shuffled_with_duplicates_equals_ordered(catalog, stream):
    """A stream shuffled within the reorder window, with 10 % duplicates, ends in the ordered state."""
    rng = random.Random(3)
    noisy = list(stream) + [stream[rng.randrange(len(stream))] for _ in range(len(stream) // 10)]
    rng.shuffle(noisy[len(stream) :])
    mixed = _shuffle_within(sorted(noisy, key=lambda e: e.time), 50, rng)
    cfg = SyncConfig(reorder=ReorderConfig(window=200, max_wait=60.0))
    sync = Synchroniser(MemoryStore(), catalog, cfg=cfg)
    for i in range(0, len(mixed), 300):
        sync.process([Message(e.to_json()) for e in mixed[i : i + 300]])
    sync.flush()
    ordered = apply_all(TwinState(catalog), stream)
    assert sync.stats.duplicates == len(noisy) - len(stream)
    assert sync.stats.gaps == 0 and sync.stats.rejected == 0
    assert sync.state.fingerprint() == ordered.fingerprint()


def test_unclosed_gap_is_reported_and_the_stream_moves_on(catalog, stream):
    """Events lost from a source become one stream.gap event; the rest is still applied."""
    mes = [e for e in stream if e.source == "mes"]
    lost = {e.seq for e in mes[100:103]}
    kept = [e for e in stream if not (e.source == "mes" and e.seq in lost)]
    cfg = SyncConfig(reorder=ReorderConfig(window=20, max_wait=60.0))
    sync = Synchroniser(MemoryStore(), catalog, cfg=cfg)
    sync.process([Message(e) for e in kept])
    sync.flush()
    assert sync.state.gaps == [{"source": "mes", "from_seq": min(lost), "to_seq": max(lost)}]
    assert sync.reorder.missing == 3
    assert sync.state.last_seq["mes"] == mes[-1].seq
    # the lost events broke some lot's history: later events of that lot are dead letters
    assert sync.stats.accepted + sync.stats.rejected == len(kept) + 1
