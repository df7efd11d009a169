"""The event types of the twin, one module per family; ``twin.live.registry`` registers them.

Each module declares, per type, its fields, its validation (``(event, state) -> reason or
None``) and its effect on the state (``(state, event) -> None``) next to each other.
"""

from __future__ import annotations

from twin.live.types import alarm, carrier, equipment, lot, stream, vehicle

TYPES = (*equipment.TYPES, *lot.TYPES, *carrier.TYPES, *vehicle.TYPES, *alarm.TYPES, *stream.TYPES)
