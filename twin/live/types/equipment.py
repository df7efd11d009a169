"""Equipment events: the SEMI E10 state of a tool."""

from __future__ import annotations

from twin.live.events import Event
from twin.live.registry import EventType, optional, required
from twin.live.state import TwinState, equipment_record
from twin.live.types.checks import known_equipment
from twin.vocabulary import E10_STATES, E10_TRANSITIONS


def _validate_state(ev: Event, s: TwinState) -> str | None:
    if err := known_equipment(s, ev.subject):
        return err
    new = ev.data["state"]
    if new not in E10_TRANSITIONS:
        return f"equipment.state: {new!r} is not an E10 state (accepted: {', '.join(E10_STATES)})"
    e = s.equipment.get(ev.subject)
    old = e.state if e is not None else None
    if old is not None and new not in E10_TRANSITIONS[old]:
        return f"illegal E10 transition {old} -> {new} for {ev.subject!r}"
    return None


def _apply_state(s: TwinState, ev: Event) -> None:
    e = equipment_record(s, ev.subject)
    d = ev.data
    if e.state is not None:
        e.time_in[e.state] = e.time_in.get(e.state, 0.0) + max(0.0, ev.time - e.since)
    e.state, e.reason, e.since = d["state"], d["reason"], ev.time
    if "setup" in d:
        e.setup = d["setup"]
    e.rev += 1


TYPES = (
    EventType(
        name="equipment.state",
        subject="equipment",
        description=(
            "SEMI E10 state change of a tool. Illegal transitions are rejected: from "
            "scheduled_down, unscheduled_down or non_scheduled straight to productive (a tool "
            "is repaired or qualified into standby/engineering first), and from productive "
            "straight to non_scheduled. The first report of a tool may be any state."
        ),
        fields=(
            required("state", "string", "the new E10 state", enum=E10_STATES),
            required("reason", "string", "why (e.g. PM, breakdown, setup, qualification, idle)"),
            optional("setup", "string", "the tool's new setup"),
        ),
        validate=_validate_state,
        effect=_apply_state,
        example={
            "subject": "LITHO_1",
            "data": {"state": "unscheduled_down", "reason": "breakdown"},
        },
    ),
)
