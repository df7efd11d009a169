"""The model compiled into flat per-step and per-family tables the engine reads in its loop.

Nothing here changes the model: each simulation compiles its own tables, so scenario variants
(copies of a model) never interfere.
"""

from __future__ import annotations

from twin.errors import InputError
from twin.process.model import PER_BATCH, PER_PIECE, FabModel, uniform_bounds
from twin.whatif.reference.config import SimConfig
from twin.whatif.reference.streams import KIND_CODES


class CStep:
    """One route step, with every time in seconds and indices instead of step numbers."""

    __slots__ = (
        "number", "fam", "delay", "kind", "lo", "hi", "mean", "per_piece", "batch", "bmin",
        "bmax", "setup", "setup_time", "batch_interval", "part_interval", "cascading",
        "rework_to", "rework_p", "sample_p", "cqt_to", "cqt_limit", "key", "rpt", "mean_lot", "dedicate_to",
        "span", "plain", "setup_from", "next",
    )  # fmt: skip


class CFamily:
    """Engine-side state of a tool family: its queue, idle tools and KPI accumulators."""

    __slots__ = (
        "idx", "name", "area", "rule", "static", "batching", "has_setups", "wake_least_setup",
        "capacity", "load", "unload", "tools", "queue", "groups", "idle", "keyfn", "classes",
        "mode", "fifo", "ranks", "heap", "heads", "setup_at", "border", "stream", "fs",
        "n", "area_t", "last_t", "departures", "sojourn", "started", "queue_time", "due_ties",
    )  # fmt: skip

    def __init__(self, idx: int, name: str):
        self.idx, self.name = idx, name
        self.tools: list = []
        self.queue: list = []  # heap (static rules) or list (scanned rules)
        self.classes: dict = {}  # built-in rules: setup -> heap of waiting lots
        self.groups: dict = {}  # batching: step key -> lots waiting, in arrival order
        self.idle: list = []  # tools available with nothing to do
        self.n = 0  # lots in the family (queued or in process), for Little's law
        self.area_t = self.last_t = 0.0
        self.departures = 0
        self.sojourn = 0.0
        self.started = 0
        self.queue_time = 0.0
        self.due_ties = False  # SimConfig.due_ties (the engine sets it)


def batch_key(route: str, st, batch_by: str) -> tuple:
    """Lots whose steps have equal keys may share a batch (SimConfig.batch_by)."""
    if batch_by == "operation" and st.per == PER_BATCH and st.description:
        # the spread is left out: HVLM writes the same one 25.0665 in route 3, 25.07 in route 4
        return (st.family, st.description, st.dist, st.mean, st.batch_min, st.batch_max)
    return (route, st.number)


def compile_routes(model: FabModel, cfg: SimConfig, families: dict[str, CFamily]):
    """Route name -> list of CStep, plus per route the suffix sums of mean lot times."""
    mode = model.ptime_spread_mode
    out: dict[str, list[CStep]] = {}
    problems: list[str] = []
    keys: dict = {}  # batch key of each step (SimConfig.batch_by)
    for rname, route in model.routes.items():
        index = {s.number: i for i, s in enumerate(route.steps)}
        steps: list[CStep] = []
        for st in route.steps:
            c = CStep()
            fam = families.get(st.family)
            if fam is None:
                problems.append(f"route {rname} step {st.number}: unknown family {st.family!r}")
                continue
            c.number, c.fam, c.delay = st.number, fam, st.is_delay or fam.name == "Delay_32"
            c.kind = KIND_CODES.get(st.dist, 0)
            c.lo, c.hi = uniform_bounds(st.mean, st.spread, mode)
            c.span = c.hi - c.lo
            c.mean = st.mean
            c.per_piece = st.per == PER_PIECE
            c.batch = st.per == PER_BATCH
            # bmin is the wafers a batch tool waits for before it starts (SimConfig.batch_wait)
            c.bmin = st.batch_max if cfg.batch_wait == "max" else st.batch_min
            c.bmax = st.batch_max
            c.setup, c.setup_time = st.setup, st.setup_time
            c.setup_from = {}  # the engine's cache: current setup of a tool -> setup time (s)
            c.batch_interval = st.batch_interval
            c.part_interval = st.part_interval
            c.cascading = st.batch_interval is not None or st.part_interval is not None
            c.rework_to = index.get(st.rework_step, -1) if st.rework_step is not None else -1
            c.rework_p = st.rework_prob
            c.sample_p = st.sampling_percent / 100.0
            c.cqt_to = index.get(st.cqt_step, -1) if st.cqt_step is not None else -1
            c.cqt_limit = st.cqt_limit or 0.0
            c.plain = c.rework_p == 0.0 and c.cqt_to < 0  # leaving it is just moving on
            same = st.same_tool_step
            c.dedicate_to = index.get(same, -1) if same is not None and cfg.dedication else -1
            c.key = keys.setdefault(batch_key(rname, st, cfg.batch_by), len(keys))
            extra = 0.0 if c.delay or not cfg.load_unload else fam.load + fam.unload
            c.mean_lot = st.mean_time(25) + extra
            steps.append(c)
        for c, nxt in zip(steps, [*steps[1:], None], strict=True):
            c.next = nxt  # the step after this one in the route (None after the last)
        # remaining processing time (s) from each step to the end, for critical ratio
        acc = 0.0
        for c in reversed(steps):
            acc += c.mean_lot * c.sample_p
            c.rpt = acc
        out[rname] = steps
    if problems:
        raise InputError("process model", problems)
    return out


def compile_families(model: FabModel, cfg: SimConfig) -> dict[str, CFamily]:
    """Family name -> CFamily (tools are added by the engine)."""
    fams: dict[str, CFamily] = {}
    with_setup = {s.family for r in model.routes.values() for s in r.steps if s.setup is not None}
    for i, (name, f) in enumerate(model.families.items()):
        c = CFamily(i, name)
        c.area, c.rule = f.area, f.rule
        c.batching = any(
            s.per == PER_BATCH for r in model.routes.values() for s in r.steps if s.family == name
        )
        c.has_setups = name in with_setup
        c.wake_least_setup = f.wake_least_setup
        c.capacity = max(1, f.capacity)
        c.load = f.load_time if cfg.load_unload else 0.0
        c.unload = f.unload_time if cfg.load_unload else 0.0
        fams[name] = c
    return fams
