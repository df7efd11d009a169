"""Times left drawn per replication at a live start (twin.whatif.start, ``TimeLeft``): the
residual distributions, the engines' draw, and hostile input."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from twin.errors import InputError
from twin.process.model import Dist, DownCalendar
from twin.whatif.reference import LotState, SimConfig, StartState, TimeLeft, ToolState, simulate
from twin.whatif.reference.start import (
    MAX_LEFT,
    draw_left,
    time_left_problem,
    time_left_table,
)
from twin.whatif.reference.streams import START, Stream
from twin.whatif.start import (
    _down_mixture,
    _mixture_mean,
    _run_left,
    _transport_mixture,
)

DEMO = "scenes/demo-fab"


@pytest.fixture(scope="module")
def model():
    from twin.process import load_model
    from twin.scene.load import load_scene

    return load_model(load_scene(DEMO).metadata["process_dir"])


def _with_downs(model, repairs):
    """``model`` with one family's down calendars replaced by (MTTF mean, repair Dist)."""
    fam = next(f for f in model.families if any(a.kind == "down" for a in model.calendars_of(f)))
    att = next(a for a in model.calendars_of(fam) if a.kind == "down")
    downs, atts = {}, []
    for i, (mttf, mttr) in enumerate(repairs):
        name = f"cal{i}"
        downs[name] = DownCalendar(name=name, mttf=Dist(kind="exponential", mean=mttf), mttr=mttr)
        atts.append(dataclasses.replace(att, calendar=name))
    return fam, dataclasses.replace(model, downs=downs, attachments=atts, pms={})


def test_exponential_repair_left_is_the_whole_repair_whatever_the_time_down(model):
    """Exponential repair is memoryless: the time left drawn is exponential with the MTTR at
    any time already spent down."""
    fam, m = _with_downs(model, [(36000.0, Dist(kind="exponential", mean=1800.0))])
    for spent in (0.0, 600.0, 1e6):
        assert _down_mixture(m, fam, "down", spent) == (
            TimeLeft(p=1.0, kind="exponential", mean=1800.0),
        )


def test_uniform_and_constant_repairs_leave_their_residual(model):
    """A uniform [a, b] repair down s s leaves uniform [max(a - s, 0), b - s]; a constant c
    leaves c - s; past the longest repair the tool is overdue (no component)."""
    d = Dist(kind="uniform", mean=3000.0, spread=1000.0)  # [2000, 4000]
    fam, m = _with_downs(model, [(36000.0, d)])
    (c,) = _down_mixture(m, fam, "down", 500.0)
    assert (c.kind, c.low, c.high) == ("uniform", 1500.0, 3500.0)
    (c,) = _down_mixture(m, fam, "down", 3000.0)
    assert (c.kind, c.low, c.high) == ("uniform", 0.0, 1000.0)
    assert _down_mixture(m, fam, "down", 4000.0) == ()
    fam, m = _with_downs(model, [(36000.0, Dist(kind="constant", mean=1800.0))])
    assert _down_mixture(m, fam, "down", 600.0)[0].mean == 1200.0
    assert _down_mixture(m, fam, "down", 1800.0) == ()
    assert _down_mixture(m, fam, "pm", 0.0) is None


def test_several_calendars_are_weighted_by_rate_and_survival(model):
    """Which calendar a down is of is unknown: weight 1/MTTF x P(repair > time down). A down
    longer than one calendar's longest repair is of the other calendar."""
    unif = Dist(kind="uniform", mean=1000.0, spread=500.0)  # [500, 1500]
    expo = Dist(kind="exponential", mean=3600.0)
    fam, m = _with_downs(model, [(10000.0, unif), (40000.0, expo)])
    mix = _down_mixture(m, fam, "down", 0.0)
    shares = np.array([c.p for c in mix]) / sum(c.p for c in mix)
    assert shares == pytest.approx([0.8, 0.2])  # rates 1e-4 : 2.5e-5
    mix = _down_mixture(m, fam, "down", 1000.0)  # uniform survival 1/2, exponential e^(-1000/3600)
    shares = np.array([c.p for c in mix]) / sum(c.p for c in mix)
    w = np.array([1e-4 * 0.5, 2.5e-5 * math.exp(-1000 / 3600)])
    assert shares == pytest.approx(w / w.sum())
    (only,) = _down_mixture(m, fam, "down", 2000.0)
    assert only.kind == "exponential" and only.mean == 3600.0
    mix = _down_mixture(m, fam, "down", 1e9)  # no underflow to a zero total
    assert len(mix) == 1 and mix[0].p == 1.0


def test_draw_left_follows_the_mixture():
    """The engines' draw: one uniform picks a component by its share of the weights, then
    the offset + its draw; the mean and the tail match theory (20,000 draws)."""
    mix = (
        TimeLeft(p=2.0, kind="exponential", mean=3600.0, offset=100.0),
        TimeLeft(p=1.0, kind="uniform", low=100.0, high=5000.0),
    )
    table = time_left_table(mix)
    s = Stream(7, 0, START)
    x = np.array([draw_left(s, table) for _ in range(20_000)])
    mean = (2 * 3700.0 + 2550.0) / 3
    assert abs(x.mean() - mean) < 4 * x.std() / math.sqrt(len(x))
    assert abs(x.mean() - _mixture_mean(mix)) < 1e-9 + 4 * x.std() / math.sqrt(len(x))
    tail = 2 / 3 * math.exp(-(5000.0 - 100.0) / 3600.0)  # beyond the uniform's top
    assert abs((x > 5000.0).mean() - tail) < 0.015
    assert x.min() >= 100.0


def test_run_left_is_the_residual_of_load_processing_unload(model):
    """A processing lot's time left is its run (load + processing + unload, per piece x the
    wafers) less the time worked, conditioned on the run lasting that long; a setup still
    ahead adds to the whole run; overdue leaves 0."""
    route = model.route_of("part_A")
    step = next(s for s in route.steps if s.per == "lot" and s.dist == "uniform")
    fam = model.families[step.family]
    c = fam.load_time + fam.unload_time
    lo, hi = step.mean - step.spread, step.mean + step.spread
    left = _run_left(model, step, 25, 0.0, 0.0)
    assert (left.kind, left.low, left.high) == ("uniform", c + lo, c + hi)
    worked = c + lo + 10.0  # into the run's spread: the earliest end is now
    left = _run_left(model, step, 25, 0.0, worked)
    assert left.low == pytest.approx(0.0) and left.high == pytest.approx(c + hi - worked)
    left = _run_left(model, step, 25, 300.0, 0.0)
    assert (left.low, left.high) == (300.0 + c + lo, 300.0 + c + hi)
    assert _run_left(model, step, 25, 0.0, c + hi + 1.0) == TimeLeft(kind="constant", mean=0.0)
    piece = next(s for s in route.steps if s.per == "piece" and s.part_interval is None)
    left = _run_left(model, piece, 20, 0.0, 0.0)
    plo, phi = piece.mean - piece.spread, piece.mean + piece.spread
    assert left.low == pytest.approx(c + 20 * plo) and left.high == pytest.approx(c + 20 * phi)


def test_transport_left_is_in_transit_with_its_survival(model):
    """A lot tracked out s s ago is in transport with probability P(T > s) (then arrives
    after T's residual), else in its queue at once (a component of 0)."""
    lo, hi = model.transport.bounds(model.ptime_spread_mode)
    (only,) = _transport_mixture(model, 0.0)
    assert (only.kind, only.low, only.high) == ("uniform", lo, hi)
    s = (lo + hi) / 2
    moving, queued = _transport_mixture(model, s)
    assert moving.p == pytest.approx((hi - s) / (hi - lo)) and queued.p == pytest.approx(
        1 - moving.p
    )
    assert (moving.low, moving.high) == (0.0, hi - s) and queued.mean == 0.0
    assert _transport_mixture(model, hi + 1.0) == ()


def _toy_start(model, t0: float) -> StartState:
    route = model.route_of("part_A")
    step = next(s for s in route.steps if s.per == "lot")
    tool = f"{step.family}#1"
    other = next(f for f in model.families if f != step.family and not model.families[f].is_delay)
    left = (TimeLeft(kind="uniform", low=100.0, high=4000.0),)
    return StartState(
        time=t0,
        lots=[
            LotState(id="L1", product="part_A", step=step.number, status="processing",
                     tool=tool, until=t0 + 60.0, until_left=left),
            LotState(id="L2", product="part_A", step=step.number, status="processing",
                     tool=tool, until=t0 + 60.0, until_left=left),
            LotState(id="L3", product="part_A", step=route.steps[0].number, status="transport",
                     until=t0, until_left=(TimeLeft(p=0.5, kind="uniform", low=0.0, high=400.0),
                                           TimeLeft(p=0.5, kind="constant"))),
        ],
        tools={f"{other}#1": ToolState(down_left=(TimeLeft(kind="exponential", mean=7200.0),))},
    )  # fmt: skip


def test_replications_draw_their_own_times_and_a_batch_shares_one(model):
    """Each replication draws its own time left (different ends across replications, the
    same for the same seed and replication); two lots listed together on one tool with the
    same time left end together."""
    m = dataclasses.replace(model, releases=[])
    start = _toy_start(m, 1000.0)
    ends = set()
    for rep in range(4):
        cfg = SimConfig(days=1.0, seed=3, replication=rep, breakdowns=False, pms=False)
        outs: dict[str, float] = {}

        def obs(kind, t, **f):
            if kind == "track_out" and f["lot"] in ("L1", "L2"):
                outs.setdefault(f["lot"], t)  # noqa: B023 - used within the iteration

        r = simulate(m, cfg, start=start, observer=obs)
        again = simulate(m, cfg, start=start)
        assert list(r.lots.completion) == list(again.lots.completion)
        assert outs["L1"] == outs["L2"]
        assert 1000.0 + 100.0 <= outs["L1"] <= 1000.0 + 4000.0
        ends.add(outs["L1"])
    assert len(ends) == 4


def test_a_moment_run_reports_the_start_wip_with_draws(model):
    """A run of a moment from a start with drawn times left reports every start lot in the
    WIP (transport and processing lots are in the fab)."""
    m = dataclasses.replace(model, releases=[])
    r = simulate(m, SimConfig(days=1e-9), start=_toy_start(m, 50.0))
    assert r.wip_lots[0] == 3


BAD = [
    ("nan weight", (TimeLeft(p=math.nan),), ".p = nan"),
    ("negative weight", (TimeLeft(p=-1.0),), ".p = -1.0"),
    ("all zero", (TimeLeft(p=0.0),), "weights sum to 0.0"),
    ("bool weight", (TimeLeft(p=True),), ".p = True"),
    ("unknown kind", (TimeLeft(kind="\ud800"),), "kind = '\\ud800'"),
    ("huge", (TimeLeft(mean=1e300),), f"s from 0 to {MAX_LEFT:g}"),
    ("inf offset", (TimeLeft(offset=math.inf),), ".offset = inf"),
    ("low above high", (TimeLeft(kind="uniform", low=5.0, high=1.0),), "low 5.0 > high 1.0"),
    ("not a TimeLeft", ({"p": 1},), "is dict: a TimeLeft"),
    ("not a tuple", "draw", "must be a tuple"),
    ("too many", (TimeLeft(),) * 65, "at most 64"),
]


@pytest.mark.parametrize("case, comps, says", BAD, ids=[b[0] for b in BAD])
def test_hostile_times_left_are_refused_by_the_engine(model, case, comps, says):
    """A drawn time left with a NaN, negative, infinite or huge number, an unknown kind, or
    the wrong type is one clear error of the start state, for tools and for lots."""
    assert says in time_left_problem("x", comps)
    m = dataclasses.replace(model, releases=[])
    start = _toy_start(m, 0.0)
    tool = next(iter(start.tools))
    bad = dataclasses.replace(start, tools={tool: ToolState(down_left=comps)})
    with pytest.raises(InputError, match="down_left") as exc:
        simulate(m, SimConfig(days=0.1), start=bad)
    str(exc.value).encode("utf-8", "backslashreplace")
    lots = [dataclasses.replace(start.lots[0], until_left=comps)]
    with pytest.raises(InputError, match="until_left"):
        simulate(m, SimConfig(days=0.1), start=dataclasses.replace(start, lots=lots, tools={}))


def test_a_queued_lot_takes_no_time_left(model):
    """until_left is for processing and transport lots: on a queued lot it is refused."""
    m = dataclasses.replace(model, releases=[])
    ls = LotState(id="Q", product="part_A", step=1, until_left=(TimeLeft(),))
    with pytest.raises(InputError, match="not queued"):
        simulate(m, SimConfig(days=0.1), start=StartState(lots=[ls]))
