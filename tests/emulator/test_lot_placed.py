"""lot.placed: a lot that appears mid-route (a stream's initial WIP), validated at the door."""

from __future__ import annotations

import json

import pytest

from twin.live.catalog import Catalog, RouteStep
from twin.live.events import MAX_INT, MAX_TIME, Event, parse_event
from twin.live.sources import Message
from twin.live.state import TwinState, apply
from twin.live.store import SQLiteStore
from twin.live.sync import Synchroniser
from twin.live.validate import check_payload, validate

T0 = 1_800_000_000.0
ROUTE = (
    RouteStep(1, "CLEAN"),
    RouteStep(2, None, is_delay=True),
    RouteStep(3, "LITHO"),
    RouteStep(4, "ETCH"),
)


@pytest.fixture
def catalog() -> Catalog:
    return Catalog(
        equipment={"CLEAN_1": "CLEAN", "LITHO_1": "LITHO", "ETCH_1": "ETCH"},
        products={"P1": ROUTE},
    )


def raw(seq: int = 1, subject: str = "L1", t: float = 0.0, **data) -> dict:
    """A lot.placed payload as JSON would carry it (data defaults: P1 at step 3)."""
    d = {"product": "P1", "step": 3, **data}
    return {"id": f"mes:{seq}", "source": "mes", "seq": seq, "time": T0 + t,
            "type": "lot.placed", "subject": subject, "data": d}  # fmt: skip


def reason(state: TwinState, payload) -> str | None:
    _, why = check_payload(payload, state)
    return why


def test_a_placed_lot_is_queued_at_its_step(catalog):
    """A valid lot.placed makes the lot WIP at that step, released when it says, and it goes on."""
    s = TwinState(catalog)
    ev = parse_event(raw(released=T0 - 3600.0, wafers=25, priority=10))
    assert validate(ev, s) is None
    apply(s, ev)
    lot = s.lots["L1"]
    assert (lot.status, lot.step, lot.index, lot.released) == ("queued", 3, 2, T0 - 3600.0)
    assert s.kpis()["wip"] == 1 and s.kpis()["wip_by_family"] == {"LITHO": 1}
    tin = Event(
        "mes:2", "mes", 2, T0 + 60, "lot.track_in", "L1", {"equipment": "LITHO_1", "step": 3}
    )
    assert validate(tin, s) is None


def test_placed_at_a_delay_step_waits_for_the_next_process_step(catalog):
    """A lot placed at a delay step is queued at the next process step (delays carry no events)."""
    s = TwinState(catalog)
    apply(s, parse_event(raw(step=2)))
    assert (s.lots["L1"].step, s.lots["L1"].index) == (3, 2)


def test_released_defaults_to_the_event_time(catalog):
    """Without ``released`` the lot counts as released when it was placed."""
    s = TwinState(catalog)
    apply(s, parse_event(raw(t=5.0)))
    assert s.lots["L1"].released == T0 + 5.0


@pytest.mark.parametrize(
    "step, why",
    [
        ("3", "step"),
        (3.0, "step"),
        (True, "step"),
        (None, "step"),
        ([3], "step"),
        ({"n": 3}, "step"),
        (2**63, "step"),
        (-(2**63) - 1, "step"),
        ("\ud800", "step"),
    ],
)
def test_garbage_step_is_refused_at_the_door(catalog, step, why):
    """A step that is not a 64-bit integer is refused with a reason naming the field."""
    got = reason(TwinState(catalog), raw(step=step))
    assert got is not None and why in got


@pytest.mark.parametrize("step", [0, -1, 5, 99, MAX_INT, -(2**63)])
def test_a_step_outside_the_route_is_refused(catalog, step):
    """Steps before the first, beyond the last or not in the route are refused, naming the route."""
    got = reason(TwinState(catalog), raw(step=step))
    assert got is not None and f"step {step}" in got
    if step > 0:
        assert "steps 1..4" in got


def test_unknown_product_and_missing_fields_are_refused(catalog):
    """An unknown product, a missing product or step, or a field of another type is refused."""
    s = TwinState(catalog)
    assert "unknown product 'P9'" in reason(s, raw(product="P9"))
    no_step = raw()
    del no_step["data"]["step"]
    assert "step" in reason(s, no_step)
    no_product = raw()
    del no_product["data"]["product"]
    assert "product" in reason(s, no_product)
    assert reason(s, raw(colour="red")) is not None  # a field the type does not have


@pytest.mark.parametrize(
    "text", ["\ud800", "x" * 5000, "\udfff tail"], ids=["surrogate", "huge", "low-surrogate"]
)
def test_bad_text_in_product_or_subject_is_refused(catalog, text):
    """Lone surrogates and over-long text are refused in the product and the lot id."""
    s = TwinState(catalog)
    assert reason(s, raw(product=text)) is not None
    assert reason(s, raw(subject=text)) is not None


@pytest.mark.parametrize(
    "released",
    [-1.0, T0 + 1.0, MAX_TIME + 1, 1e308, float("inf"), float("nan"), 2**70, True, "yesterday"],
)
def test_released_must_be_a_past_epoch_time(catalog, released):
    """``released`` must be epoch seconds from 0 to the event's own time."""
    payload = raw(released=released)
    got = reason(TwinState(catalog), payload)
    assert got is not None and "released" in got


def test_extreme_times_are_accepted_within_bounds(catalog):
    """At the epoch and at the last representable instant a placed lot is accepted."""
    for t, rel in ((0.0, 0.0), (MAX_TIME, MAX_TIME)):
        s = TwinState(catalog)
        p = {**raw(released=rel), "time": t}
        assert reason(s, p) is None


def test_deep_nesting_is_refused(catalog):
    """A step nested far deeper than an event needs is refused, never recursed into."""
    deep = "[" * 10_000 + "3" + "]" * 10_000
    text = json.dumps(raw(step=0)).replace('"step": 0', '"step": ' + deep)
    assert text.count("[") == 10_000
    got = reason(TwinState(catalog), text)
    assert got is not None


def test_a_lot_is_placed_once(catalog):
    """Placing a lot already released or placed is refused, naming its status."""
    s = TwinState(catalog)
    apply(s, parse_event(raw()))
    assert "already known (queued)" in reason(s, raw(seq=2))
    s2 = TwinState(catalog)
    rel = Event("mes:1", "mes", 1, T0, "lot.released", "L1", {"product": "P1"})
    apply(s2, rel)
    assert "already known" in reason(s2, raw(seq=2))


def test_ingest_state_equals_a_replay_of_the_store(tmp_path, catalog):
    """Good and hostile lot.placed through the synchroniser: the bad ones are dead-lettered
    and the state after ingest equals a replay of the store."""
    msgs = [
        raw(1, "L1"),
        raw(2, "L2", step=99),
        {**raw(1, "L3", step="\ud800"), "source": "junk"},  # unparseable: its own source
        raw(3, "L4", released=T0 + 10),
        raw(4, "L1"),  # placed twice
        raw(5, "L6", step=4, released=T0 - 86_400.0),
        {**raw(2, "L7"), "source": "junk", "data": {"product": "P1", "step": [[[[3]]]]}},
    ]
    with SQLiteStore(tmp_path / "twin.db") as store:
        sync = Synchroniser(store, catalog)
        sync.process([Message(json.dumps(m)) for m in msgs])
        assert sorted(sync.state.lots) == ["L1", "L6"]
        assert store.count() == 2 and store.dead_letter_count() == 5
        assert sync.state.fingerprint() == store.replay(catalog).fingerprint()
        assert sync.state.lots["L6"].released == T0 - 86_400.0
