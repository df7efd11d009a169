"""What the fab DOES: products, routes, tool families, calendars, dispatch rules.

``load_model(path)`` reads an SMT2020-format folder into a :class:`FabModel` (all times in
seconds); the dataclasses live in :mod:`twin.process.model`.
"""

from __future__ import annotations

from twin.process.model import (
    DELAY_FAMILY,
    DISPATCH_RULES,
    Attachment,
    Dist,
    DownCalendar,
    FabModel,
    PMCalendar,
    Product,
    Release,
    Route,
    Step,
    ToolFamily,
    WipLot,
)

__all__ = [
    "DELAY_FAMILY",
    "DISPATCH_RULES",
    "Attachment",
    "Dist",
    "DownCalendar",
    "FabModel",
    "PMCalendar",
    "Product",
    "Release",
    "Route",
    "Step",
    "ToolFamily",
    "WipLot",
]
