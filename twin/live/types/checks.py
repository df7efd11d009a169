"""Reference checks shared by the families' validation rules (reasons, never exceptions)."""

from __future__ import annotations

from twin.live.events import Event
from twin.live.state import TwinState


def known_equipment(state: TwinState, eid: str) -> str | None:
    known = state.catalog.equipment
    if known and eid not in known:
        return f"unknown equipment {eid!r} ({len(known)} known in the scene)"
    return None


def known_vehicle(state: TwinState, vid: str) -> str | None:
    known = state.catalog.vehicles
    if known and vid not in known:
        return f"unknown vehicle {vid!r} ({len(known)} known in the scene)"
    return None


def lot_in(ev: Event, s: TwinState, statuses: frozenset[str], doing: str) -> str | None:
    """The event's lot exists and is in one of ``statuses``."""
    lot = s.lots.get(ev.subject)
    if lot is None:
        return f"{doing}: unknown lot {ev.subject!r} (never released)"
    if lot.status not in statuses:
        return f"{doing}: lot {ev.subject!r} is {lot.status} (must be {'/'.join(sorted(statuses))})"
    return None


def carrier_in(ev: Event, s: TwinState, statuses: frozenset[str], doing: str) -> str | None:
    """The event's carrier is on the event's transfer, in one of ``statuses``."""
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
