"""The things the reference engine moves: lots, tools, runs (jobs), and the event kinds."""

from __future__ import annotations

import math

from twin.process.model import FabModel
from twin.whatif.reference.compiled import CFamily

# event kinds, in the order they run at equal times; LOOK: a tool's first look for work with
# SimConfig.start_together (after every other event of the start instant)
JOB_END, READY, DOWN_END, FAIL, PM_TIME, ARRIVE, DELAY_END, RELEASE_EV, WARMUP, LOOK = range(10)


class Lot:
    """A lot in the fab (engine-internal; custom dispatch rules read its fields)."""

    __slots__ = (
        "id", "lot_type", "product", "route", "idx", "step", "priority", "wafers", "release",
        "due", "arrived", "seq", "left", "cqt_to", "cqt_deadline", "reworked", "qt", "pt", "tt",
        "last_tt", "n_steps", "rec", "dedic", "only", "started",
    )  # fmt: skip

    def __init__(self, lot_id, lot_type, product, route, priority, wafers, release, due):
        self.id, self.lot_type, self.product, self.route = lot_id, lot_type, product, route
        self.priority, self.wafers, self.release, self.due = priority, wafers, release, due
        self.idx, self.step = 0, route[0]
        self.arrived = self.left = release
        self.seq = 0
        self.cqt_to, self.cqt_deadline = -1, 0.0
        self.reworked = None
        self.qt = self.pt = self.tt = self.last_tt = 0.0
        self.n_steps = 0
        self.rec = None
        self.dedic = None  # step index -> Tool: later steps that must run on a given tool
        self.only = None  # the tool the lot waits for at its current step, if dedicated
        self.started = False  # has it started a step in this run (SimConfig.unstarted_last)


class Tool:
    """One tool of a family: setup, availability, downs, accumulators for the KPIs."""

    __slots__ = (
        "id", "fam", "setup", "minrun_left", "minrun_setup", "ready", "inflight", "down_until",
        "jobs", "in_idle", "stream", "pm_stream", "pm_wafer", "wafers", "pm_due", "state", "ded",
        "k", "refused",
    )  # fmt: skip

    def __init__(self, tool_id: str, fam: CFamily, k: int = 0):
        self.id, self.fam, self.k = tool_id, fam, k  # k: position in the family (SimConfig.wake)
        self.setup = None
        self.minrun_left, self.minrun_setup = 0, None
        self.ready = self.down_until = 0.0
        self.inflight = 0
        self.jobs: list[Job] = []
        self.in_idle = False
        self.ded: list = []  # heap of lots dedicated to this tool (same layout as class heaps)
        # wafer-count PMs: [wafers left at tool.wafers == since, interval, duration Dist, since]
        self.pm_wafer: list[list] = []
        self.wafers = 0  # wafers the tool has started
        self.pm_due = math.inf  # tool.wafers at which the first wafer-count PM falls due
        self.state = ""
        self.refused = 0  # other setups refused in a row (SimConfig.min_runs="hold")


class Job:
    """Lots processed together on one tool (one lot, or a batch)."""

    __slots__ = ("tool", "lots", "step", "start", "end", "setup", "pms")

    def __init__(self, tool, lots, step, start, end, setup):
        self.tool, self.lots, self.step = tool, lots, step
        self.start, self.end, self.setup = start, end, setup
        self.pms = None


def tool_ids(model: FabModel) -> list[str]:
    """Ids of the tools the engine creates: ``"<family>#<n>"``, n = 1..count."""
    return [
        f"{name}#{i + 1}"
        for name, f in model.families.items()
        if not f.is_delay
        for i in range(f.count)
    ]
