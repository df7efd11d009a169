"""The reference what-if engine: a readable event-by-event simulator of a FabModel.

It defines the simulation semantics (see :mod:`twin.whatif.reference.engine`); faster engines
must agree with it. Entry point: ``simulate(model, SimConfig(days=...))``.

Modules: ``engine`` (the event loop, queues, runs), ``dispatch`` (rules and the plug-in point),
``start`` (releases, initial WIP, warm start), ``calendars`` (breakdowns, PMs), ``entities``
(lots, tools, runs), ``compiled`` (the model as flat step/family tables), ``streams`` (random
numbers per purpose), ``config`` and ``results``.
"""

from __future__ import annotations

from twin.whatif.reference.config import LotState, SimConfig, StartState, TimeLeft, ToolState
from twin.whatif.reference.dispatch import RULES, register_rule
from twin.whatif.reference.engine import simulate, tool_ids
from twin.whatif.reference.results import LotRecords, SimResult

__all__ = [
    "RULES",
    "LotRecords",
    "LotState",
    "SimConfig",
    "SimResult",
    "StartState",
    "TimeLeft",
    "ToolState",
    "register_rule",
    "simulate",
    "tool_ids",
]
