"""Carrier events: AMHS transfer jobs, from request to delivery or failure."""

from __future__ import annotations

from twin.live.events import Event
from twin.live.registry import EventType, optional, required
from twin.live.state import TRANSFER_ACTIVE, TwinState, carrier_record, vehicle_record
from twin.live.types.checks import carrier_in, known_vehicle


def _validate_requested(ev: Event, s: TwinState) -> str | None:
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


def _apply_requested(s: TwinState, ev: Event) -> None:
    c = carrier_record(s, ev.subject)
    d = ev.data
    c.transfer, c.status, c.source, c.dest = d["transfer"], "requested", d["from"], d["to"]
    c.vehicle, c.lot, c.requested, c.updated = None, d.get("lot", c.lot), ev.time, ev.time
    if c.location is None:
        c.location = d["from"]
    c.rev += 1


def _validate_assigned(ev: Event, s: TwinState) -> str | None:
    if err := known_vehicle(s, ev.data["vehicle"]):
        return err
    return carrier_in(ev, s, frozenset({"requested", "assigned"}), "vehicle assignment")


def _apply_assigned(s: TwinState, ev: Event) -> None:
    c = carrier_record(s, ev.subject)
    c.status, c.vehicle, c.updated = "assigned", ev.data["vehicle"], ev.time
    c.rev += 1


def _validate_picked(ev: Event, s: TwinState) -> str | None:
    if err := carrier_in(ev, s, frozenset({"assigned"}), "pick-up"):
        return err
    c = s.carriers[ev.subject]
    if c.vehicle != ev.data["vehicle"]:
        return f"pick-up of {ev.subject!r} by {ev.data['vehicle']!r}, assigned to {c.vehicle!r}"
    return None


def _apply_picked(s: TwinState, ev: Event) -> None:
    c = carrier_record(s, ev.subject)
    vid = ev.data["vehicle"]
    c.status, c.vehicle, c.location, c.updated = "in_transit", vid, vid, ev.time
    c.rev += 1
    v = vehicle_record(s, vid)
    v.carrier = c.id
    v.rev += 1


def _validate_delivered(ev: Event, s: TwinState) -> str | None:
    if err := carrier_in(ev, s, frozenset({"in_transit"}), "delivery"):
        return err
    c = s.carriers[ev.subject]
    if c.vehicle != ev.data["vehicle"]:
        return f"delivery of {ev.subject!r} by {ev.data['vehicle']!r}, carried by {c.vehicle!r}"
    return None


def _apply_delivered(s: TwinState, ev: Event) -> None:
    c = carrier_record(s, ev.subject)
    vid = ev.data["vehicle"]
    c.status, c.location, c.vehicle, c.updated = "delivered", c.dest, None, ev.time
    c.rev += 1
    v = vehicle_record(s, vid)
    if v.carrier == c.id:
        v.carrier = None
    v.rev += 1


def _validate_failed(ev: Event, s: TwinState) -> str | None:
    return carrier_in(ev, s, TRANSFER_ACTIVE, "transfer failure")


def _apply_failed(s: TwinState, ev: Event) -> None:
    c = carrier_record(s, ev.subject)
    c.status, c.updated = "failed", ev.time
    c.rev += 1


_TRANSFER = "the AMHS transfer job's id"
_VEHICLE = "the vehicle id"
_EXAMPLE = {"transfer": "T000077", "vehicle": "V3"}
# assigned, picked up, delivered: the transfer and the vehicle doing it
_TRANSFER_VEHICLE = (
    required("transfer", "string", _TRANSFER),
    required("vehicle", "string", _VEHICLE),
)

TYPES = (
    EventType(
        name="carrier.transfer_requested",
        subject="carrier",
        description=(
            "A transport job for the carrier from one location to another (load port, "
            "equipment/stocker or vehicle ids). Rejected while the carrier has another active "
            "transfer, or for unknown locations."
        ),
        fields=(
            required("transfer", "string", _TRANSFER),
            required("from", "string", "where the carrier is picked up"),
            required("to", "string", "where it is delivered"),
            optional("lot", "string", "the lot in the carrier"),
            optional("priority", "integer", "transport priority"),
        ),
        validate=_validate_requested,
        effect=_apply_requested,
        example={
            "subject": "C-L00042",
            "data": {"transfer": "T000077", "from": "STK1.P1", "to": "DIFF_1.P1", "lot": "L00042"},
        },
    ),
    EventType(
        name="carrier.vehicle_assigned",
        subject="carrier",
        description=(
            "The AMHS assigns a vehicle to the transfer (reassignment before pick-up is allowed)."
        ),
        fields=_TRANSFER_VEHICLE,
        validate=_validate_assigned,
        effect=_apply_assigned,
        example={"subject": "C-L00042", "data": _EXAMPLE},
    ),
    EventType(
        name="carrier.picked_up",
        subject="carrier",
        description="The assigned vehicle acquired the carrier; the carrier is on the vehicle.",
        fields=_TRANSFER_VEHICLE,
        validate=_validate_picked,
        effect=_apply_picked,
        example={"subject": "C-L00042", "data": _EXAMPLE},
    ),
    EventType(
        name="carrier.delivered",
        subject="carrier",
        description="The carrying vehicle deposited the carrier at the transfer's destination.",
        fields=_TRANSFER_VEHICLE,
        validate=_validate_delivered,
        effect=_apply_delivered,
        example={"subject": "C-L00042", "data": _EXAMPLE},
    ),
    EventType(
        name="carrier.transfer_failed",
        subject="carrier",
        description="An active transfer ended without delivery.",
        fields=(required("transfer", "string", _TRANSFER), required("reason", "string", "why")),
        validate=_validate_failed,
        effect=_apply_failed,
        example={"subject": "C-L00042", "data": {"transfer": "T000077", "reason": "vehicle down"}},
    ),
)
