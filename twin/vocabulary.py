"""The fab's shared vocabulary: SEMI E10 equipment states and OHT vehicle states.

One place, imported by the live twin (``twin.live``: event validation and state), the physics
world (``twin.physics``: tool colours and states) and the emulator (``twin.emulator``), so none
of them imports another for a word list. Plain data; imports nothing.
"""

from __future__ import annotations

# SEMI E10 basic equipment states.
E10_STATES = (
    "productive",
    "standby",
    "engineering",
    "scheduled_down",
    "unscheduled_down",
    "non_scheduled",
)
UP_STATES = frozenset({"productive", "standby", "engineering"})

# A lot's status in the twin state (twin.live.state), as the API filters and shows it.
LOT_STATUSES = ("queued", "processing", "hold", "completed", "scrapped")
# A carrier's transfer status.
CARRIER_STATUSES = ("idle", "requested", "assigned", "in_transit", "delivered", "failed")

# Legal E10 transitions. A tool never goes from a down or non-scheduled state straight to
# productive (it is repaired/qualified into standby or engineering first), and a planned
# shutdown (non-scheduled) is entered from an idle or down tool, never from a running one.
E10_TRANSITIONS: dict[str, frozenset[str]] = {
    "productive": frozenset(
        {"productive", "standby", "engineering", "scheduled_down", "unscheduled_down"}
    ),
    "standby": frozenset(E10_STATES),
    "engineering": frozenset(E10_STATES),
    "scheduled_down": frozenset(
        {"standby", "engineering", "scheduled_down", "unscheduled_down", "non_scheduled"}
    ),
    "unscheduled_down": frozenset(
        {"standby", "engineering", "scheduled_down", "unscheduled_down", "non_scheduled"}
    ),
    "non_scheduled": frozenset(
        {"standby", "engineering", "scheduled_down", "unscheduled_down", "non_scheduled"}
    ),
}

# OHT vehicle states (the ``vehicle.state`` event's ``state``).
VEHICLE_STATES = ("idle", "moving", "acquiring", "depositing", "parked", "down")
ALARM_SEVERITIES = ("info", "warning", "error", "critical")
