"""Vehicle events: where an OHT vehicle is on the rails, and its state."""

from __future__ import annotations

from twin.live.events import Event
from twin.live.registry import EventType, optional, required
from twin.live.state import TwinState, vehicle_record
from twin.live.types.checks import known_vehicle
from twin.vocabulary import VEHICLE_STATES


def _validate_position(ev: Event, s: TwinState) -> str | None:
    known = s.catalog.vehicles  # known_vehicle inline: most events of a fab are positions
    if known and ev.subject not in known:
        return known_vehicle(s, ev.subject)
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


def _apply_position(s: TwinState, ev: Event) -> None:
    v = s.vehicles.get(ev.subject)
    if v is None:
        v = vehicle_record(s, ev.subject)
    d = ev.data
    v.segment, v.offset, v.speed, v.updated = d["segment"], d["offset"], d["speed"], ev.time
    v.rev += 1


def _validate_state(ev: Event, s: TwinState) -> str | None:
    if err := known_vehicle(s, ev.subject):
        return err
    if ev.data["state"] not in VEHICLE_STATES:
        return f"vehicle state {ev.data['state']!r} not one of {', '.join(VEHICLE_STATES)}"
    return None


def _apply_state(s: TwinState, ev: Event) -> None:
    v = vehicle_record(s, ev.subject)
    v.state, v.updated = ev.data["state"], ev.time
    if "carrier" in ev.data:
        v.carrier = ev.data["carrier"]
    v.rev += 1


TYPES = (
    EventType(
        name="vehicle.position",
        subject="vehicle",
        description=(
            "Where an OHT vehicle is: on rail `segment`, `offset` metres from the segment's "
            "start node (within its length when the scene is known), moving at `speed`."
        ),
        fields=(
            required("segment", "string", "the rail segment id"),
            required("offset", "number", "distance from the segment's start", minimum=0, unit="m"),
            required("speed", "number", "speed along the rail", minimum=0, unit="m/s"),
        ),
        validate=_validate_position,
        effect=_apply_position,
        example={"subject": "V3", "data": {"segment": "S4", "offset": 5.0, "speed": 2.5}},
    ),
    EventType(
        name="vehicle.state",
        subject="vehicle",
        description="The vehicle's state, with the carrier on board when there is one.",
        fields=(
            required("state", "string", "the vehicle state", enum=VEHICLE_STATES),
            optional("carrier", "string", "the carrier on board"),
            optional("reason", "string", "why (e.g. for down)"),
        ),
        validate=_validate_state,
        effect=_apply_state,
        example={"subject": "V3", "data": {"state": "moving", "carrier": "C-L00042"}},
    ),
)
