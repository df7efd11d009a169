"""The event registry: every type complete, the derived tables agree with it, the renamed type's
old name still works, and the CloudEvents specversion is accepted, refused and emitted."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import pytest

from twin.errors import TwinError
from twin.live import events as events_module
from twin.live import state as state_module
from twin.live import validate as validate_module
from twin.live.catalog import Catalog
from twin.live.events import (
    EVENT_TYPES,
    RESERVED_TYPES,
    Event,
    EventFormatError,
    make_event,
    parse_event,
)
from twin.live.registry import EventType, Registry, RegistryError, optional, registry, required
from twin.live.sources import Message
from twin.live.state import TwinState, apply
from twin.live.store import MemoryStore
from twin.live.sync import Synchroniser
from twin.live.validate import check_payload, validate

REG = registry()


def _envelope(etype: str, subject: str, data: dict, seq: int = 1, **extra) -> dict:
    return {
        "id": f"mes:{seq}", "source": "mes", "seq": seq, "time": "2027-01-15T08:00:00Z",
        "type": etype, "subject": subject, "data": data, **extra,
    }  # fmt: skip


def _a_type(**change) -> EventType:
    base = REG.get("lot.hold")
    fields = dict(name="lot.test_only", aliases=())
    fields.update(change)
    return dataclasses.replace(base, **fields)


# ------------------------------------------------------------------ completeness
@pytest.mark.parametrize("t", list(REG), ids=lambda t: t.name)
def test_every_type_is_complete(t):
    """Each registered type has a description, declared fields with descriptions, a validation
    rule, an effect and an example whose data fits its own fields."""
    assert t.problems() == []
    assert t.description.strip() and callable(t.validate) and callable(t.effect)
    assert all(f.description.strip() for f in t.fields)
    assert set(t.example) == {"subject", "data"}


@pytest.mark.parametrize("t", list(REG), ids=lambda t: t.name)
def test_every_example_parses_as_its_type(t):
    """Each type's registered example, in an envelope, parses to an event of that type."""
    source = {"twin": f"{t.name.split('.')[1]}:mes"}.get(t.producer, "mes")
    raw = _envelope(t.name, t.example["subject"], t.example["data"])
    raw["source"] = source
    ev = parse_event(raw)
    assert ev.type == t.name and ev.data == t.example["data"]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"effect": None}, "no effect"),
        ({"validate": None}, "no validation"),
        ({"description": " "}, "no description"),
        ({"example": None}, "no example"),
        ({"example": {"subject": "L1", "data": {}}}, "example lacks required data.reason"),
        ({"example": {"subject": "L1", "data": {"reason": 3}}}, "does not fit its field"),
        ({"name": "Lot Hold"}, "name must match"),
        ({"subject": "wafer"}, "subject 'wafer'"),
        ({"fields": (required("reason", "text", "why"),)}, "kind 'text'"),
        ({"fields": (required("reason", "string", ""),)}, "has no description"),
        ({"fields": (required("a", "string", "x"), optional("a", "string", "y"))}, "duplicate"),
    ],
)
def test_an_incomplete_type_cannot_be_registered(change, message):
    """Registering a type without an effect, validation, description or fitting example (or
    with a malformed field) raises a RegistryError (a TwinError) naming the problem."""
    with pytest.raises(RegistryError, match=message) as exc:
        Registry([_a_type(**change)])
    assert isinstance(exc.value, TwinError)


def test_a_name_or_alias_is_registered_once():
    """A second type under a registered name or alias is refused, naming the clash."""
    reg = Registry(REG)
    with pytest.raises(RegistryError, match="'lot.hold' is already registered"):
        reg.register(_a_type(name="lot.hold"))
    with pytest.raises(RegistryError, match="'lot.release' is already registered"):
        reg.register(_a_type(aliases=("lot.release",)))
    with pytest.raises(RegistryError, match="not an EventType"):
        reg.register({"name": "lot.x"})


# ------------------------------------------------------------------ derived tables
def test_tables_are_derived_from_the_registry():
    """EVENT_TYPES, the validation rules and apply's effects hold exactly the registry's types
    (and aliases), with the registry's own functions; the reserved types are the twin's own."""
    assert set(EVENT_TYPES) == set(REG.names)
    for t in REG:
        req, opt = EVENT_TYPES[t.name]
        assert list(req) == [f.name for f in t.required_fields]
        assert list(opt) == [f.name for f in t.optional_fields]
    every = {*REG.names, *REG.aliases}
    assert set(validate_module._RULES) == every
    apply(TwinState(), make_event("mes", 1, 1.0, "lot.hold", "L1", reason="x"))  # loads effects
    assert set(state_module._HANDLERS) == every
    for name in every:
        t = REG.get(name)
        assert validate_module._RULES[name] is t.validate
        assert state_module._HANDLERS[name] is t.effect
    assert REG.reserved() == RESERVED_TYPES


def test_unknown_type_names_the_known_ones():
    """An unknown type is refused with the list of current names (aliases not advertised)."""
    with pytest.raises(EventFormatError, match="unknown event type 'lot.teleported'") as exc:
        parse_event(_envelope("lot.teleported", "L1", {}))
    assert "lot.hold_released" in exc.value.reason and "lot.release," not in exc.value.reason


# ------------------------------------------------------------------ the renamed type
def test_old_name_is_accepted_and_normalised_on_ingest():
    """`lot.release` (deprecated) parses, in the fast and the slow path and from make_event,
    to an event of type `lot.hold_released` with the same data."""
    fast = parse_event(json.dumps(_envelope("lot.release", "L1", {"reason": "ok"})))
    slow = parse_event(_envelope("lot.release", "L1", {"reason": "ok"}, time=1800000000))
    made = make_event("mes", 1, 1800000000.0, "lot.release", "L1", reason="ok")
    assert fast.type == slow.type == made.type == "lot.hold_released"
    assert fast.data == slow.data == made.data == {"reason": "ok"}
    assert type(fast) is Event
    with pytest.raises(EventFormatError, match="lot.release: unknown field data.bogus"):
        parse_event(_envelope("lot.release", "L1", {"bogus": 1}))


def _held(catalog: Catalog) -> tuple[TwinState, list[Event]]:
    state = TwinState(catalog)
    lot_evs = [
        make_event("mes", 1, 1.0, "lot.released", "L1", product="P1"),
        make_event("mes", 2, 2.0, "lot.hold", "L1", reason="spc"),
    ]
    for e in lot_evs:
        assert validate(e, state) is None
        apply(state, e)
    return state, lot_evs


def test_both_names_have_the_same_rule_and_effect(catalog):
    """A stored event under the old name (a store written before the rename) is validated and
    applied exactly as one under the new name; both are refused for a lot not on hold."""
    old_state, _ = _held(catalog)
    new_state, _ = _held(catalog)
    old = Event("mes:3", "mes", 3, 3.0, "lot.release", "L1", {"reason": "ok"})
    new = dataclasses.replace(old, type="lot.hold_released")
    assert validate(old, old_state) is None and validate(new, new_state) is None
    apply(old_state, old)
    apply(new_state, new)
    assert old_state.fingerprint() == new_state.fingerprint()
    assert old_state.lots["L1"].status == "queued"
    assert validate(old, old_state) == validate(new, new_state)
    assert "is queued (must be hold)" in validate(new, new_state)


def test_ingest_stores_the_new_name(catalog):
    """A payload sent under the old name is stored and served under the new name."""
    sync = Synchroniser(MemoryStore(), catalog)
    raws = [e.to_json() for e in _held(catalog)[1]]
    raws.append(json.dumps(_envelope("lot.release", "L1", {"reason": "ok"}, seq=3)))
    result = sync.process([Message(r) for r in raws])
    assert result.status == ["accepted"] * 3, result.reason
    stored = [ev.type for ev in sync.store.read()]
    assert stored == ["lot.released", "lot.hold", "lot.hold_released"]
    assert sync.state.lots["L1"].status == "queued"


def test_synthetic_stream_uses_the_new_name(stream):
    """The synthetic stream releases holds as lot.hold_released, never under the old name."""
    types = {e.type for e in stream}
    assert "lot.hold_released" in types and "lot.release" not in types


# ------------------------------------------------------------------ CloudEvents specversion
def test_specversion_is_accepted_and_changes_nothing_stored():
    """`specversion: "1.0"` is accepted (fast and slow path) and gives the same Event as
    without it, so nothing stored (and no chain hash) depends on it."""
    raw = _envelope("lot.hold", "L1", {"reason": "spc"})
    plain = parse_event(raw)
    assert parse_event({**raw, "specversion": "1.0"}) == plain
    assert parse_event(json.dumps({**raw, "specversion": "1.0", "schema": 1})) == plain
    assert parse_event({**raw, "specversion": "1.0", "time": 1800000000}).time == plain.time


@pytest.mark.parametrize(
    "value", ["0.3", "1.0 ", "", 1.0, 1, None, True, ["1.0"], {"v": "1.0"}, "\ud800", "1" * 10**5]
)
def test_other_specversions_are_refused(value):
    """Any specversion but the string "1.0" is refused, naming the accepted value."""
    with pytest.raises(EventFormatError, match='is not supported.*CloudEvents 1.0.*"1.0"'):
        parse_event({**_envelope("lot.hold", "L1", {"reason": "spc"}), "specversion": value})
    ev, reason = check_payload(
        {**_envelope("lot.hold", "L1", {"reason": "spc"}), "specversion": value}, TwinState()
    )
    assert ev is None and "specversion" in reason


def test_specversion_is_emitted():
    """Every event the twin writes out (to_dict, to_json: API reads, WebSocket, MQTT sink,
    JSONL) says specversion 1.0 and parses back to the same event."""
    ev = make_event("mes", 7, 1800000000.5, "lot.hold", "L1", reason="spc")
    assert ev.to_dict()["specversion"] == "1.0"
    assert json.loads(ev.to_json())["specversion"] == "1.0"
    assert parse_event(ev.to_json()) == ev


def test_events_module_exposes_only_known_attributes():
    """The module's lazy EVENT_TYPES does not hide a typo'd attribute: it raises."""
    with pytest.raises(AttributeError, match="EVENT_TYPE"):
        events_module.EVENT_TYPE  # noqa: B018


def test_docs_describe_every_type_and_field():
    """docs/events.md has a section per registered type that names each of its fields, and
    lists every deprecated alias in its Renamed types table."""
    text = (Path(__file__).resolve().parents[2] / "docs" / "events.md").read_text()
    sections = {
        m.group(1): m.group(2)
        for m in re.finditer(r"\n### `([a-z_.]+)`\n(.*?)(?=\n##|\Z)", text, re.S)
    }
    missing = [t.name for t in REG if t.name not in sections]
    assert not missing, f"no section in docs/events.md for {missing}"
    unnamed = [
        f"{t.name}.{f.name}"
        for t in REG
        for f in t.fields
        if f"`{f.name}`" not in sections[t.name] and f'"{f.name}"' not in sections[t.name]
    ]
    assert not unnamed, f"fields not named in their docs section: {unnamed}"
    for alias, name in REG.aliases.items():
        assert f"| `{alias}` | `{name}` |" in text
