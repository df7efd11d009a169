"""The validator: references, state-machine legality, and fuzzed payloads that never crash."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from twin.live.events import make_event
from twin.live.sources import Message
from twin.live.state import TwinState, apply
from twin.live.store import MemoryStore
from twin.live.sync import Synchroniser
from twin.live.validate import check_payload, validate

T0 = 1_800_000_000.0


def ev(seq, type, subject, t=0.0, source="mes", **data):
    return make_event(source, seq, T0 + t, type, subject, **data)


def run(state, *events):
    """Validate and apply each event; returns the list of rejection reasons (None = accepted)."""
    reasons = []
    for e in events:
        r = validate(e, state)
        if r is None:
            apply(state, e)
        reasons.append(r)
    return reasons


def test_illegal_e10_transition(catalog):
    """A tool may not go from unscheduled_down (or non-scheduled) straight to productive."""
    s = TwinState(catalog)
    r = run(
        s,
        ev(1, "equipment.state", "ETCH_1", state="standby", reason="idle"),
        ev(2, "equipment.state", "ETCH_1", t=10, state="unscheduled_down", reason="breakdown"),
        ev(3, "equipment.state", "ETCH_1", t=20, state="productive", reason="run"),
        ev(4, "equipment.state", "ETCH_1", t=30, state="engineering", reason="qualification"),
        ev(5, "equipment.state", "ETCH_1", t=40, state="productive", reason="run"),
        ev(6, "equipment.state", "ETCH_1", t=50, state="non_scheduled", reason="shutdown"),
        ev(7, "equipment.state", "ETCH_1", t=60, state="running", reason="?"),
    )
    assert r[:2] == [None, None]
    assert "illegal E10 transition unscheduled_down -> productive" in r[2]
    assert r[3:5] == [None, None]
    assert "illegal E10 transition productive -> non_scheduled" in r[5]
    assert "not an E10 state" in r[6]
    assert s.equipment["ETCH_1"].state == "productive"


def test_track_out_without_track_in(catalog):
    """A track-out needs a track-in of the same lot at the same tool and step."""
    s = TwinState(catalog)
    r = run(
        s,
        ev(1, "lot.released", "L1", product="P1"),
        ev(2, "lot.track_out", "L1", t=5, equipment="DIFF_1", step=10),
        ev(3, "lot.track_in", "L1", t=10, equipment="DIFF_1", step=10),
        ev(4, "lot.track_out", "L1", t=20, equipment="DIFF_2", step=10),
        ev(5, "lot.track_out", "L1", t=30, equipment="DIFF_1", step=10),
    )
    assert "without a track-in" in r[1]
    assert r[2] is None
    assert "tracked in at 'DIFF_1'" in r[3]
    assert r[4] is None
    assert s.lots["L1"].step == 20 and s.lots["L1"].moves == 1


def test_lot_at_tool_of_wrong_family(catalog):
    """Step 10 of P1 needs DIFF; a track-in at an ETCH tool or at a later step is refused."""
    s = TwinState(catalog)
    r = run(
        s,
        ev(1, "lot.released", "L1", product="P1"),
        ev(2, "lot.track_in", "L1", t=1, equipment="ETCH_1", step=10),
        ev(3, "lot.track_in", "L1", t=2, equipment="LITHO_1", step=20),
    )
    assert "needs family DIFF" in r[1]
    assert "the lot is at step 10" in r[2]
    assert s.lots["L1"].status == "queued" and s.lots["L1"].rev == 1


def test_unknown_references(catalog):
    """Unknown equipment, vehicles, rail segments, products and locations are named."""
    s = TwinState(catalog)
    r = run(
        s,
        ev(1, "equipment.state", "NOPE_9", state="standby", reason="idle"),
        ev(1, "vehicle.position", "V99", source="amhs", segment="S1", offset=1.0, speed=0.0),
        ev(2, "vehicle.position", "V1", source="amhs", segment="S99", offset=1.0, speed=0.0),
        ev(3, "vehicle.position", "V1", source="amhs", segment="S1", offset=11.0, speed=0.0),
        ev(2, "lot.released", "L1", product="P9"),
        ev(
            4,
            "carrier.transfer_requested",
            "C1",
            source="amhs",
            transfer="T1",
            **{"from": "STK1.P1", "to": "MOON.P1"},
        ),  # fmt: skip
    )
    assert "unknown equipment 'NOPE_9'" in r[0]
    assert "unknown vehicle 'V99'" in r[1]
    assert "unknown rail segment 'S99'" in r[2]
    assert "outside 'S1'" in r[3]
    assert "unknown product 'P9'" in r[4]
    assert "unknown location 'MOON.P1'" in r[5]
    assert s.revision == 0


def test_track_in_at_a_down_tool(catalog):
    """A lot cannot be tracked in at a tool that is down."""
    s = TwinState(catalog)
    r = run(
        s,
        ev(1, "equipment.state", "DIFF_1", state="scheduled_down", reason="PM"),
        ev(2, "lot.released", "L1", product="P1"),
        ev(3, "lot.track_in", "L1", t=1, equipment="DIFF_1", step=10),
    )
    assert "while it is scheduled_down" in r[2]


def test_carrier_transfer_sequence(catalog):
    """Pick-up needs an assignment to the same vehicle; delivery needs a pick-up."""
    s = TwinState(catalog)
    x = {"transfer": "T1"}
    r = run(
        s,
        ev(
            1,
            "carrier.transfer_requested",
            "C1",
            source="amhs",
            **x,
            **{"from": "STK1.P1", "to": "ETCH_1.P1"},
        ),
        ev(2, "carrier.delivered", "C1", source="amhs", **x, vehicle="V1"),
        ev(3, "carrier.vehicle_assigned", "C1", source="amhs", **x, vehicle="V1"),
        ev(4, "carrier.picked_up", "C1", source="amhs", **x, vehicle="V2"),
        ev(5, "carrier.picked_up", "C1", source="amhs", **x, vehicle="V1"),
        ev(6, "carrier.delivered", "C1", source="amhs", **x, vehicle="V1"),
        ev(7, "carrier.vehicle_assigned", "C1", source="amhs", transfer="T0", vehicle="V1"),
    )
    assert "is requested" in r[1]
    assert "assigned to 'V1'" in r[3]
    assert r[4] is None and r[5] is None
    assert "not 'T0'" in r[6]
    c = s.carriers["C1"]
    assert (c.status, c.location) == ("delivered", "ETCH_1.P1")


# ----------------------------------------------------------------------------- fuzzing
def _valid_payloads(stream):
    return [json.loads(e.to_json()) for e in stream[:400]]


json_leaf = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True), st.text(max_size=8)
)
json_value = st.recursive(
    json_leaf,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=8,
)
ENVELOPE = ["id", "source", "seq", "time", "type", "subject", "data"]


@st.composite
def broken(draw, base):
    """A valid payload broken in one guaranteed way (so it must be rejected)."""
    raw = json.loads(json.dumps(draw(st.sampled_from(base))))
    # a source of its own, so a broken payload never claims a real event's (source, seq)
    raw["source"], raw["seq"] = "fuzz", 1
    how = draw(st.integers(0, 6))
    if how == 0:  # drop an envelope key
        raw.pop(draw(st.sampled_from(ENVELOPE)))
    elif how == 1:  # an envelope value of the wrong kind
        key = draw(st.sampled_from(["seq", "time", "data", "type", "subject"]))
        raw[key] = draw(st.one_of(st.none(), st.booleans(), st.lists(st.integers(), max_size=2)))
    elif how == 2:  # drop a required data field
        from twin.live.events import EVENT_TYPES

        req = list(EVENT_TYPES[raw["type"]][0])
        if not req:
            raw["data"]["bogus"] = 1
        else:
            raw["data"].pop(draw(st.sampled_from(req)))
    elif how == 3:  # a data field of the wrong type
        name = draw(st.sampled_from(sorted(raw["data"]) or ["bogus"]))
        raw["data"][name] = draw(
            st.one_of(st.none(), st.booleans(), st.lists(st.integers(), max_size=2))
        )
    elif how == 4:  # references nothing known
        if raw["type"] in ("equipment.state", "vehicle.position", "vehicle.state"):
            raw["subject"] = "ghost-" + draw(st.text(min_size=1, max_size=5))
        else:
            raw["type"] = "x." + draw(st.text(max_size=5))
    elif how == 5:  # random JSON in place of the event
        return json.dumps(draw(json_value), allow_nan=True)
    else:  # truncated text
        text = json.dumps(raw)
        return text[: draw(st.integers(0, len(text) - 1))]
    return json.dumps(raw, allow_nan=True)


def _elements(text: str) -> int:
    try:
        value = json.loads(text)
    except ValueError:
        return 1
    return len(value) if text.startswith("[") and isinstance(value, list) and value else 1


def _own_source(text: str, i: int) -> str:
    """Give a parseable broken payload a source of its own, so none is a duplicate of another."""
    try:
        raw = json.loads(text)
    except ValueError:
        return text
    if isinstance(raw, dict) and raw.get("source") == "fuzz":
        raw["source"] = f"fuzz-{i}"
        return json.dumps(raw, allow_nan=True)
    return text


@pytest.mark.slow
def test_fuzzed_payloads_are_rejected_and_change_nothing(catalog, stream):
    """10,000+ mutated payloads: no crash, each dead-lettered with a reason, and the state
    after the valid stream interleaved with them equals the state after the valid stream."""
    base = _valid_payloads(stream)
    fuzz: list[str] = []
    empty = TwinState(catalog)

    @settings(max_examples=110, deadline=None, suppress_health_check=list(HealthCheck))
    @given(st.lists(broken(base), min_size=100, max_size=100))
    def each_is_refused(texts):
        for text in texts:  # alone, against the empty state: refused with a reason, no crash
            _, reason = check_payload(text, empty)
            assert reason, text
        fuzz.extend(texts)

    each_is_refused()
    assert len(fuzz) >= 10_000
    fuzz = [_own_source(t, i) for i, t in enumerate(fuzz)]
    store = MemoryStore()
    sync = Synchroniser(store, catalog)
    msgs = []
    for i, e in enumerate(stream):
        msgs.append(Message(e.to_json()))
        msgs.extend(Message(t) for t in fuzz[i * 2 : i * 2 + 2])
    for i in range(0, len(msgs), 500):
        sync.process(msgs[i : i + 500])
    sync.flush()
    clean = TwinState(catalog)
    for e in stream:
        apply(clean, e)
    assert sync.state.fingerprint() == clean.fingerprint()
    assert store.count() == len(stream)
    used = fuzz[: 2 * len(stream)]
    # a JSON array is a batch of events: each element is judged (and dead-lettered) on its own
    assert store.dead_letter_count() == sum(_elements(t) for t in used)
    assert all(d.reason for d in store.dead_letters())


def test_validate_apply_equals_validate_then_apply_per_event(catalog, stream):
    """validate_apply accepts, rejects (with the same reasons) and changes the state exactly as
    validate then apply one event at a time; a validator bug becomes a reason, not a crash."""
    from twin.live.validate import _RULES, validate_apply

    mixed = list(stream[:1500])
    mixed[10:10] = [ev(9_001, "lot.track_out", "NOPE", equipment="X", step=1)]
    mixed[40:40] = [ev(9_002, "vehicle.position", "V-ghost", segment="S1", offset=0.0, speed=0.0)]
    one, batch = TwinState(catalog), TwinState(catalog)
    want_ok, want_bad = [], []
    for e in mixed:
        reason = validate(e, one)
        if reason is None:
            apply(one, e)
            want_ok.append(e)
        else:
            want_bad.append((e, reason))
    assert validate_apply(mixed, batch) == (want_ok, want_bad)
    assert len(want_bad) == 2 and batch.fingerprint() == one.fingerprint()

    def broken(e, s):
        raise KeyError("bug")

    saved, _RULES["alarm.set"] = _RULES["alarm.set"], broken
    try:
        alarm = ev(9_003, "alarm.set", "X", alarm="A1", severity="info")
        assert validate_apply([alarm], TwinState(catalog))[1][0][1].startswith("validator error")
    finally:
        _RULES["alarm.set"] = saved
