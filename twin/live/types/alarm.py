"""Alarm events: set and cleared on equipment or a vehicle."""

from __future__ import annotations

from twin.live.events import Event
from twin.live.registry import EventType, optional, required
from twin.live.state import TwinState
from twin.vocabulary import ALARM_SEVERITIES


def _validate_set(ev: Event, s: TwinState) -> str | None:
    if ev.data["severity"] not in ALARM_SEVERITIES:
        return f"alarm severity {ev.data['severity']!r} not one of {', '.join(ALARM_SEVERITIES)}"
    c = s.catalog
    if (
        (c.equipment or c.vehicles)
        and ev.subject not in c.equipment
        and ev.subject not in c.vehicles
    ):
        return f"alarm on unknown equipment or vehicle {ev.subject!r}"
    return None


def _apply_set(s: TwinState, ev: Event) -> None:
    key = f"{ev.subject}/{ev.data['alarm']}"
    old = s.alarms.get(key)
    s.alarms[key] = {
        "subject": ev.subject,
        "alarm": ev.data["alarm"],
        "severity": ev.data["severity"],
        "text": ev.data.get("text", ""),
        "set": ev.time,
        "rev": (old["rev"] + 1) if old else 1,
    }


def _validate_cleared(ev: Event, s: TwinState) -> str | None:
    if f"{ev.subject}/{ev.data['alarm']}" not in s.alarms:
        return f"alarm {ev.data['alarm']!r} on {ev.subject!r} cleared but not set"
    return None


def _apply_cleared(s: TwinState, ev: Event) -> None:
    s.alarms.pop(f"{ev.subject}/{ev.data['alarm']}", None)


TYPES = (
    EventType(
        name="alarm.set",
        subject="equipment or vehicle",
        description="An alarm on equipment or a vehicle; setting an active alarm again updates it.",
        fields=(
            required("alarm", "string", "the alarm's id (e.g. its code)"),
            required("severity", "string", "how bad it is", enum=ALARM_SEVERITIES),
            optional("text", "string", "the alarm text"),
        ),
        validate=_validate_set,
        effect=_apply_set,
        example={
            "subject": "LITHO_1",
            "data": {"alarm": "E042", "severity": "error", "text": "chamber fault"},
        },
    ),
    EventType(
        name="alarm.cleared",
        subject="equipment or vehicle",
        description="An active alarm is cleared; clearing one that is not set is rejected.",
        fields=(required("alarm", "string", "the alarm's id"),),
        validate=_validate_cleared,
        effect=_apply_cleared,
        example={"subject": "LITHO_1", "data": {"alarm": "E042"}},
    ),
)
