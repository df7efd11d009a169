"""Models for the kernel tests: a toy fab that uses every feature, and constant-time copies."""

from __future__ import annotations

import copy
import dataclasses

from twin.process.model import (
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

DAY = 86400.0


def _u(mean: float, spread: float) -> dict:
    return {"dist": "uniform", "mean": mean, "spread": spread}


def toy_fab() -> FabModel:
    """Two products over six families: batching, cascading (part and batch intervals), setups
    with minimum runs and least-setup waking, every dispatching rule, sampling, rework, CQT
    windows, a delay step, same-tool dedication, breakdowns, time and wafer PMs, hot lots,
    exponential and constant releases and an initial WIP."""
    fams = {
        "B": ToolFamily(name="B", count=2, area="Diff", load_time=60, unload_time=60),
        "C": ToolFamily(name="C", count=2, area="Imp", capacity=2),
        "S": ToolFamily(name="S", count=3, area="Litho", rule="least_setup", wake_least_setup=True),
        "F": ToolFamily(name="F", count=1, area="Met", rule="fifo"),
        "R": ToolFamily(name="R", count=2, area="Etch", rule="critical_ratio"),
        "H": ToolFamily(name="H", count=2, area="Etch"),
        "Delay_32": ToolFamily(name="Delay_32", count=0, area="Delay", is_delay=True),
    }
    a = [
        Step(number=1, family="B", per="batch", batch_min=50, batch_max=100, **_u(3600, 600)),
        Step(number=2, family="S", setup="L1", setup_time=900, same_tool_step=7, **_u(1200, 300)),
        Step(number=3, family="C", per="piece", part_interval=40.0, **_u(60, 10)),
        Step(number=4, family="F", sampling_percent=40.0, **_u(600, 100)),
        Step(
            number=5,
            family="R",
            rework_step=3,
            rework_prob=0.15,
            cqt_step=7,
            cqt_limit=4 * 3600.0,
            **_u(1500, 500),
        ),  # fmt: skip
        Step(number=6, family="Delay_32", is_delay=True, dist="constant", mean=1800.0),
        Step(number=7, family="S", setup="L2", setup_time=900, **_u(1300, 200)),
        Step(number=8, family="H", batch_interval=600.0, **_u(2400, 300)),
        Step(number=9, family="B", per="batch", batch_min=25, batch_max=75, **_u(5400, 900)),
    ]
    b = [
        Step(number=1, family="C", per="piece", **_u(50, 10)),
        Step(number=2, family="S", setup="L1", setup_time=900, same_tool_step=4, **_u(1000, 200)),
        Step(number=3, family="R", **_u(1400, 300)),
        Step(number=4, family="S", setup="L3", setup_time=600, **_u(1100, 100)),
        Step(number=5, family="H", dist="exponential", mean=2000.0),
        Step(number=6, family="F", **_u(400, 100)),
    ]
    return FabModel(
        name="toy",
        families=fams,
        products={"PA": Product(name="PA", route="ra"), "PB": Product(name="PB", route="rb")},
        routes={"ra": Route(name="ra", steps=a), "rb": Route(name="rb", steps=b)},
        releases=[
            Release(
                lot_type="LA", product="PA", interval=5400.0, count=10**6, due_offset=3 * DAY
            ),  # fmt: skip
            Release(
                lot_type="LB",
                product="PB",
                dist="exponential",
                interval=7200.0,
                count=10**6,
                due_offset=2 * DAY,
                wafers=20,
            ),  # fmt: skip
            Release(
                lot_type="HotLB",
                product="PB",
                interval=DAY,
                count=100,
                priority=20,
                start=3600.0,
                due_offset=DAY,
                lots_per_release=2,
            ),  # fmt: skip
        ],
        wip=[
            WipLot(
                id=f"W{i}", lot_type="LA", product="PA", step=1 + i % 9, release=-DAY, due=DAY
            )  # fmt: skip
            for i in range(12)
        ],
        setup_times={("L1", "L2"): 1200.0, (None, "L3"): 300.0},
        min_runs={"L2": 3},
        downs={
            "bd": DownCalendar(
                name="bd",
                mttf=Dist(kind="exponential", mean=2 * DAY),
                mttr=Dist(kind="exponential", mean=3 * 3600.0),
            ),  # fmt: skip
        },
        pms={
            "pm": PMCalendar(
                name="pm",
                by="time",
                interval=5 * DAY,
                duration=Dist(kind="uniform", mean=4 * 3600, spread=1800),
            ),  # fmt: skip
            "wpm": PMCalendar(
                name="wpm", by="wafers", interval=800, duration=Dist(kind="constant", mean=3600.0)
            ),  # fmt: skip
        },
        attachments=[
            Attachment(
                calendar="bd",
                kind="down",
                target_kind="area",
                target="Litho",
                first=Dist(kind="exponential", mean=DAY),
            ),  # fmt: skip
            Attachment(
                calendar="bd",
                kind="down",
                target_kind="family",
                target="H",
                first=Dist(kind="exponential", mean=DAY),
            ),  # fmt: skip
            Attachment(
                calendar="pm",
                kind="pm",
                target_kind="family",
                target="B",
                first=Dist(kind="constant", mean=2 * DAY),
            ),  # fmt: skip
            Attachment(
                calendar="wpm",
                kind="pm",
                target_kind="family",
                target="C",
                first=Dist(kind="constant", mean=400),
            ),  # fmt: skip
        ],
        transport=Dist(kind="uniform", mean=300, spread=120),
    )


def constant_times(model: FabModel) -> FabModel:
    """A copy whose every duration (steps, transport, downs, PMs, releases) is constant."""
    m = copy.deepcopy(model)

    def c(d: Dist) -> Dist:
        return Dist(kind="constant", mean=d.mean)

    for r in m.routes.values():
        for s in r.steps:
            s.dist = "constant"
    m.transport = c(m.transport)
    for d in m.downs.values():
        d.mttf, d.mttr = c(d.mttf), c(d.mttr)
    for p in m.pms.values():
        p.duration = c(p.duration)
    for a in m.attachments:
        a.first = c(a.first)
    for rel in m.releases:
        rel.dist = "constant"
    return m


def operation_fab() -> FabModel:
    """The toy fab with route 2's first step made the batch operation of route 1's first step
    (same description and processing): with SimConfig(batch_by="operation") their lots batch
    together."""
    m = toy_fab()
    r1, r2 = list(m.routes.values())[:2]
    op = dataclasses.replace(r1.steps[0], description="OX_1")
    r1.steps[0] = op
    r2.steps[0] = copy.copy(op)
    return m


def mixed_batch_fab() -> FabModel:
    """One batch tool whose operation "OX" is step 1 of two routes with the same description,
    distribution, mean and batch limits (one batch key under SimConfig(batch_by="operation"))
    but a different spread and setup: route ra's runs exactly 3600 s, route rb's is uniform on
    3600 ± 1800 s. Hot rb lots arrive after regular ra lots, so the head of a mixed batch
    after dispatch sorting (the highest-priority lot) is not the first lot that arrived."""
    fams = {
        "B": ToolFamily(name="B", count=1, area="Diff"),
        "E": ToolFamily(name="E", count=2, area="Etch"),
    }

    def op(spread: float, setup: str) -> Step:
        return Step(number=1, family="B", description="OX", per="batch", batch_min=50,
                    batch_max=100, setup=setup, setup_time=600.0, **_u(3600, spread))  # fmt: skip

    def route(spread: float, setup: str) -> list[Step]:
        return [op(spread, setup), Step(number=2, family="E", **_u(600, 100))]

    return FabModel(
        name="mixed-batch",
        families=fams,
        products={"PA": Product(name="PA", route="ra"), "PB": Product(name="PB", route="rb")},
        routes={
            "ra": Route(name="ra", steps=route(0.0, "OXA")),
            "rb": Route(name="rb", steps=route(1800.0, "OXB")),
        },  # fmt: skip
        releases=[
            Release(lot_type="LA", product="PA", interval=1500.0, count=10**6, due_offset=DAY),
            Release(
                lot_type="HotLB",
                product="PB",
                interval=5000.0,
                count=10**6,
                priority=20,
                start=700.0,
                due_offset=DAY,
            ),  # fmt: skip
        ],
        transport=Dist(kind="constant", mean=0.0),
    )


# every rank of SMT2020's FWLRANK alone and in combinations, with the rule they go with
RANK_CASES = [
    ("hot_first", ("hp",)),
    ("hot_first", ("setup",)),
    ("hot_first", ("fifo",)),
    ("hot_first", ("cr",)),
    ("hot_first", ("hp", "setup", "cr")),  # LVHM's FWLRANK
    ("hot_first", ("cr", "setup", "hp", "fifo")),
    ("hot_first", ("fifo", "hp")),
    ("hot_first", ("setup", "fifo")),
    ("least_setup", ("cr", "fifo")),
    ("least_setup", ("hp", "setup", "fifo")),  # HVLM's rule_LSSU families
]


def ranked(model: FabModel, rule: str, ranks: tuple[str, ...]) -> FabModel:
    """A copy of the model whose tool families (not the delay) all have this rule and ranks."""
    m = copy.deepcopy(model)
    for name, f in m.families.items():
        if not f.is_delay:
            m.families[name] = dataclasses.replace(f, rule=rule, ranks=ranks)
    return m


def rank_fab(rule: str = "hot_first", ranks: tuple[str, ...] = ()) -> FabModel:
    """The hand-ordered model of tests/whatif/test_reference.py (rank_model): tool A after a
    pre-tool P, a blocker then four lots that differ in setup, arrival, priority and due."""

    def c(number, family, mean, **kw):
        return Step(number=number, family=family, dist="constant", mean=mean, **kw)

    routes = {
        "r": Route(name="r", steps=[c(1, "P", 100.0), c(2, "A", 1000.0, setup="X")]),
        "rq": Route(name="rq", steps=[c(1, "P", 100.0), c(2, "A", 1000.0, setup="Y")]),
    }
    lots = [("blocker", "p", 2, 10, 1e7), ("a", "q", 2, 10, 1e7), ("c", "p", 2, 20, 1e7)]
    lots += [("b", "p", 1, 10, 5000.0), ("d", "q", 1, 30, 3000.0)]
    return FabModel(
        families={
            "P": ToolFamily(name="P", count=4, area="A"),
            "A": ToolFamily(name="A", count=1, area="A", rule=rule, ranks=ranks),
        },
        products={"p": Product(name="p", route="r"), "q": Product(name="q", route="rq")},
        routes=routes,
        wip=[
            WipLot(id=i, lot_type="L", product=p, step=s, priority=pr, due=due)
            for i, p, s, pr, due in lots
        ],
        setup_times={(None, "Y"): 300.0, ("X", "Y"): 300.0},
    )


def tie_fab(rule: str = "hot_first", ranks: tuple[str, ...] = ()) -> FabModel:
    """One tool, no setups, six lots arriving together (priorities 10, 20, 10, 30, 20, 10,
    due dates apart): ties on arrival go to the next rank within one setup class."""
    prios = [10, 20, 10, 30, 20, 10]
    return FabModel(
        families={"A": ToolFamily(name="A", count=1, area="A", rule=rule, ranks=ranks)},
        products={"p": Product(name="p", route="r")},
        routes={"r": Route(name="r", steps=[Step(number=1, family="A", mean=100.0)])},
        wip=[
            WipLot(id=f"w{i}", lot_type="L", product="p", step=1, priority=p, due=9e3 - i)
            for i, p in enumerate(prios)
        ],
    )
