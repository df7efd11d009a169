"""Is an event acceptable now? Shape, references, and state-machine legality.

``validate(event, state)`` never raises on bad data: it returns ``None`` when the event may be
applied, or the reason it must go to the dead letters. ``check_payload`` does the same for a raw
payload (JSON text, bytes or dict) and returns the parsed event or the reason.
"""

from __future__ import annotations

from typing import Any

from twin.live.events import (
    ALARM_SEVERITIES,
    E10_STATES,
    E10_TRANSITIONS,
    UP_STATES,
    VEHICLE_STATES,
    Event,
    EventFormatError,
    check_event,
    parse_event,
)
from twin.live.state import LOT_ACTIVE, TRANSFER_ACTIVE, TwinState, apply


def check_payload(raw: Any, state: TwinState) -> tuple[Event | None, str | None]:
    """Parse and validate one payload: (event, None) if acceptable, else (event or None, reason)."""
    try:
        ev = parse_event(raw)
    except EventFormatError as exc:
        return None, exc.reason
    except Exception as exc:  # the pipeline never crashes on a payload
        return None, f"unreadable payload ({type(exc).__name__}: {str(exc)[:80]})"
    return ev, validate(ev, state)


def validate(ev: Event, state: TwinState, *, checked: bool = False) -> str | None:
    """None if ``ev`` can be applied to ``state``, else the reason it is rejected.

    ``checked``: the event's shape was already checked (it came from ``parse_event``).
    """
    try:
        if not isinstance(ev, Event):
            return f"not an Event: {type(ev).__name__}"
        if not checked:
            try:
                check_event(ev)
            except EventFormatError as exc:
                return exc.reason
        rule = _RULES.get(ev.type)
        return rule(ev, state) if rule is not None else None
    except Exception as exc:  # a validator bug must not take the stream down
        return _validator_error(exc)


def _validator_error(exc: Exception) -> str:
    return f"validator error ({type(exc).__name__}: {str(exc)[:80]})"


def validate_apply(
    events: list[Event], state: TwinState
) -> tuple[list[Event], list[tuple[Event, str]]]:
    """``validate(ev, state, checked=True)`` then ``apply`` for each shape-checked event, in
    order: the accepted events and the rejected ones with their reasons. The synchroniser's per-batch loop, in one
    call instead of two (plus a dispatch) per event."""
    accepted: list[Event] = []
    rejected: list[tuple[Event, str]] = []
    rules, keep = _RULES, accepted.append
    for ev in events:
        rule = rules.get(ev.type)
        try:
            reason = rule(ev, state) if rule is not None else None
        except Exception as exc:  # a validator bug must not take the stream down
            reason = _validator_error(exc)
        if reason is None:
            apply(state, ev)
            keep(ev)
        else:
            rejected.append((ev, reason))
    return accepted, rejected


def _known_equipment(state: TwinState, eid: str) -> str | None:
    known = state.catalog.equipment
    if known and eid not in known:
        return f"unknown equipment {eid!r} ({len(known)} known in the scene)"
    return None


def _known_vehicle(state: TwinState, vid: str) -> str | None:
    known = state.catalog.vehicles
    if known and vid not in known:
        return f"unknown vehicle {vid!r} ({len(known)} known in the scene)"
    return None


def _equipment_state(ev: Event, s: TwinState) -> str | None:
    if err := _known_equipment(s, ev.subject):
        return err
    new = ev.data["state"]
    if new not in E10_TRANSITIONS:
        return f"equipment.state: {new!r} is not an E10 state (accepted: {', '.join(E10_STATES)})"
    e = s.equipment.get(ev.subject)
    old = e.state if e is not None else None
    if old is not None and new not in E10_TRANSITIONS[old]:
        return f"illegal E10 transition {old} -> {new} for {ev.subject!r}"
    return None


def _lot(ev: Event, s: TwinState, statuses: frozenset[str], doing: str) -> str | None:
    lot = s.lots.get(ev.subject)
    if lot is None:
        return f"{doing}: unknown lot {ev.subject!r} (never released)"
    if lot.status not in statuses:
        return f"{doing}: lot {ev.subject!r} is {lot.status} (must be {'/'.join(sorted(statuses))})"
    return None


def _released(ev: Event, s: TwinState) -> str | None:
    if ev.subject in s.lots:
        return f"lot {ev.subject!r} was already released"
    products = s.catalog.products
    if products and ev.data["product"] not in products:
        return f"unknown product {ev.data['product']!r} (known: {', '.join(sorted(products))})"
    return None


def _placed(ev: Event, s: TwinState) -> str | None:
    """A lot placed mid-route: new, of a known product, at a step of its route, released no
    later than now."""
    lot = s.lots.get(ev.subject)
    if lot is not None:
        return f"lot {ev.subject!r} is already known ({lot.status}); a lot is placed only once"
    d = ev.data
    product, step = d["product"], d["step"]
    products = s.catalog.products
    if products and product not in products:
        return f"unknown product {product!r} (known: {', '.join(sorted(products))})"
    if step < 1:
        return f"lot.placed of {ev.subject!r}: step {step}; route step numbers start at 1"
    route = products.get(product)
    if route is not None and not any(st.number == step for st in route):
        have = f"{route[0].number}..{route[-1].number}" if route else "none"
        return (
            f"lot.placed of {ev.subject!r}: step {step} is not a step of {product} (steps {have})"
        )
    rel = d.get("released")
    if rel is not None and not 0 <= rel <= ev.time:
        return (
            f"lot.placed of {ev.subject!r}: released {rel!r} must be epoch seconds from 0 to "
            f"the event's time ({ev.time!r})"
        )
    return None


def _track_in(ev: Event, s: TwinState) -> str | None:
    if err := _lot(ev, s, frozenset({"queued"}), "track-in"):
        return err
    eid = ev.data["equipment"]
    if err := _known_equipment(s, eid):
        return err
    e = s.equipment.get(eid)
    if e is not None and e.state is not None and e.state not in UP_STATES:
        return f"track-in of {ev.subject!r} at {eid!r} while it is {e.state}"
    lot = s.lots[ev.subject]
    route = s.catalog.products.get(lot.product)
    if route is None:
        return None
    if lot.index >= len(route):
        return f"track-in of {ev.subject!r}: the lot has finished its route"
    want = route[lot.index]
    if ev.data["step"] != want.number:
        return f"track-in of {ev.subject!r} at step {ev.data['step']}: the lot is at step {want.number}"
    family = s.catalog.equipment.get(eid)
    if family != want.family:
        return (
            f"lot {ev.subject!r} at {eid!r} (family {family}) but step {want.number} of "
            f"{lot.product} needs family {want.family}"
        )
    return None


def _track_out(ev: Event, s: TwinState) -> str | None:
    lot = s.lots.get(ev.subject)
    eid = ev.data["equipment"]
    if lot is None or lot.status != "processing":
        return f"track-out of {ev.subject!r} at {eid!r} without a track-in"
    if lot.location != eid:
        return f"track-out of {ev.subject!r} at {eid!r} but it was tracked in at {lot.location!r}"
    if ev.data["step"] != lot.step:
        return f"track-out of {ev.subject!r} at step {ev.data['step']}: it is processing step {lot.step}"
    return None


def _hold(ev: Event, s: TwinState) -> str | None:
    return _lot(ev, s, frozenset({"queued"}), "hold")


def _release(ev: Event, s: TwinState) -> str | None:
    return _lot(ev, s, frozenset({"hold"}), "release from hold")


def _rework(ev: Event, s: TwinState) -> str | None:
    if err := _lot(ev, s, frozenset({"queued", "hold"}), "rework"):
        return err
    lot = s.lots[ev.subject]
    route = s.catalog.products.get(lot.product)
    step = ev.data["step"]
    if route is not None:
        idx = next((i for i, st in enumerate(route) if st.number == step), None)
        if idx is None or route[idx].is_delay:
            return f"rework of {ev.subject!r} to step {step}: not a process step of {lot.product}"
        if idx > lot.index:
            return f"rework of {ev.subject!r} to step {step}: ahead of its current step {lot.step}"
    return None


def _scrap(ev: Event, s: TwinState) -> str | None:
    return _lot(ev, s, LOT_ACTIVE, "scrap")


def _completed(ev: Event, s: TwinState) -> str | None:
    if err := _lot(ev, s, frozenset({"queued"}), "complete"):
        return err
    lot = s.lots[ev.subject]
    route = s.catalog.products.get(lot.product)
    if route is not None and lot.index < len(route):
        return f"lot {ev.subject!r} completed at step {lot.step} before the end of its route"
    return None


def _carrier(ev: Event, s: TwinState, statuses: frozenset[str], doing: str) -> str | None:
    c = s.carriers.get(ev.subject)
    if c is None:
        return f"{doing}: carrier {ev.subject!r} has no transfer"
    if c.transfer != ev.data["transfer"]:
        return f"{doing}: carrier {ev.subject!r} is on transfer {c.transfer!r}, not {ev.data['transfer']!r}"
    if c.status not in statuses:
        return (
            f"{doing}: transfer {c.transfer!r} is {c.status} (must be {'/'.join(sorted(statuses))})"
        )
    return None


def _requested(ev: Event, s: TwinState) -> str | None:
    c = s.carriers.get(ev.subject)
    if c is not None and c.status in TRANSFER_ACTIVE:
        return f"carrier {ev.subject!r} already has active transfer {c.transfer!r}"
    for key in ("from", "to"):
        loc = ev.data[key]
        if not s.catalog.knows_location(loc):
            return f"transfer {key} unknown location {loc!r} (equipment, port or vehicle)"
    # ``lot`` is not checked against the lots: the AMHS and the MES are separate sources, and
    # a transfer may legitimately arrive before the lot's release (validation must not depend
    # on how two sources interleave).
    return None


def _assigned(ev: Event, s: TwinState) -> str | None:
    if err := _known_vehicle(s, ev.data["vehicle"]):
        return err
    return _carrier(ev, s, frozenset({"requested", "assigned"}), "vehicle assignment")


def _picked(ev: Event, s: TwinState) -> str | None:
    if err := _carrier(ev, s, frozenset({"assigned"}), "pick-up"):
        return err
    c = s.carriers[ev.subject]
    if c.vehicle != ev.data["vehicle"]:
        return f"pick-up of {ev.subject!r} by {ev.data['vehicle']!r}, assigned to {c.vehicle!r}"
    return None


def _delivered(ev: Event, s: TwinState) -> str | None:
    if err := _carrier(ev, s, frozenset({"in_transit"}), "delivery"):
        return err
    c = s.carriers[ev.subject]
    if c.vehicle != ev.data["vehicle"]:
        return f"delivery of {ev.subject!r} by {ev.data['vehicle']!r}, carried by {c.vehicle!r}"
    return None


def _failed(ev: Event, s: TwinState) -> str | None:
    return _carrier(ev, s, TRANSFER_ACTIVE, "transfer failure")


def _position(ev: Event, s: TwinState) -> str | None:
    known = s.catalog.vehicles  # _known_vehicle inline: most events of a fab are positions
    if known and ev.subject not in known:
        return _known_vehicle(s, ev.subject)
    d = ev.data
    segs = s.catalog.segments
    if segs:
        length = segs.get(d["segment"])
        if length is None:
            return f"vehicle {ev.subject!r} on unknown rail segment {d['segment']!r}"
        if not (-1e-6 <= d["offset"] <= length + 1e-6):
            return f"vehicle {ev.subject!r}: offset {d['offset']} m outside {d['segment']!r} (0..{length:.3f} m)"
    if d["offset"] < 0 or d["speed"] < 0:
        return f"vehicle {ev.subject!r}: offset and speed must be >= 0"
    return None


def _vehicle_state(ev: Event, s: TwinState) -> str | None:
    if err := _known_vehicle(s, ev.subject):
        return err
    if ev.data["state"] not in VEHICLE_STATES:
        return f"vehicle state {ev.data['state']!r} not one of {', '.join(VEHICLE_STATES)}"
    return None


def _alarm_set(ev: Event, s: TwinState) -> str | None:
    if ev.data["severity"] not in ALARM_SEVERITIES:
        return f"alarm severity {ev.data['severity']!r} not one of {', '.join(ALARM_SEVERITIES)}"
    return _alarm_subject(ev, s)


def _alarm_cleared(ev: Event, s: TwinState) -> str | None:
    if f"{ev.subject}/{ev.data['alarm']}" not in s.alarms:
        return f"alarm {ev.data['alarm']!r} on {ev.subject!r} cleared but not set"
    return None


def _alarm_subject(ev: Event, s: TwinState) -> str | None:
    c = s.catalog
    if (
        (c.equipment or c.vehicles)
        and ev.subject not in c.equipment
        and ev.subject not in c.vehicles
    ):
        return f"alarm on unknown equipment or vehicle {ev.subject!r}"
    return None


def _gap(ev: Event, s: TwinState) -> str | None:
    if ev.data["to_seq"] < ev.data["from_seq"]:
        return f"{ev.type}: to_seq < from_seq"
    return None


_RULES = {
    "equipment.state": _equipment_state,
    "lot.released": _released,
    "lot.placed": _placed,
    "lot.track_in": _track_in,
    "lot.track_out": _track_out,
    "lot.hold": _hold,
    "lot.release": _release,
    "lot.rework": _rework,
    "lot.scrap": _scrap,
    "lot.completed": _completed,
    "carrier.transfer_requested": _requested,
    "carrier.vehicle_assigned": _assigned,
    "carrier.picked_up": _picked,
    "carrier.delivered": _delivered,
    "carrier.transfer_failed": _failed,
    "vehicle.position": _position,
    "vehicle.state": _vehicle_state,
    "alarm.set": _alarm_set,
    "alarm.cleared": _alarm_cleared,
    "stream.gap": _gap,
    "stream.reset": _gap,
}
