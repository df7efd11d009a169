"""A warm start with times left drawn per replication (``ToolState.down_left``,
``LotState.until_left``): the kernel draws the reference's numbers from the same START
stream, so both engines agree exactly for every seed and replication."""

from __future__ import annotations

import dataclasses

import pytest
from models import toy_fab
from test_kernel_agreement import assert_same_run

from twin.errors import InputError
from twin.whatif.kernel import simulate_batch
from twin.whatif.reference import LotState, SimConfig, StartState, TimeLeft, ToolState, simulate

T0 = 3 * 86400.0


def drawn_start(exponential: bool = True) -> StartState:
    """Downs (a mixture, a uniform, a constant), processing lots (one alone, a batch of two
    sharing one draw, a mixture with an offset) and a lot maybe still in transport."""
    expo = (
        TimeLeft(p=2.0, kind="exponential", mean=3600.0, offset=30.0)
        if exponential
        else TimeLeft(p=2.0, kind="uniform", low=0.0, high=7200.0)
    )
    batch = (TimeLeft(kind="uniform", low=100.0, high=900.0, offset=50.0),)
    return StartState(
        time=T0,
        lots=[
            LotState(id="q1", product="PA", step=2, status="queued", release=T0 - 5000),
            LotState(id="p1", product="PA", step=3, status="processing", tool="C#1",
                     until=T0 + 900, release=T0 - 9000,
                     until_left=(TimeLeft(kind="uniform", low=0.0, high=1800.0),)),
            LotState(id="b1", product="PB", step=3, status="processing", tool="H#1",
                     until=T0 + 5, until_left=batch),
            LotState(id="b2", product="PB", step=3, status="processing", tool="H#1",
                     until=T0 + 5, until_left=batch),
            LotState(id="p9", product="PA", step=3, status="processing", tool="C#2",
                     until=T0 + 5, until_left=(expo, TimeLeft(p=3.0, kind="constant", mean=20))),
            LotState(id="t1", product="PB", step=5, status="transport", until=T0,
                     until_left=(TimeLeft(p=0.7, kind="uniform", low=0.0, high=240.0),
                                 TimeLeft(p=0.3, kind="constant"))),
        ],
        tools={
            "C#1": ToolState(down_left=(expo, TimeLeft(p=1, kind="uniform", low=100, high=5000))),
            "H#1": ToolState(down_left=(TimeLeft(kind="constant", mean=700.0),)),
            "S#2": ToolState(setup="L2", down_left=(TimeLeft(kind="uniform", high=9000.0),)),
        },
    )  # fmt: skip


def _model():
    m = toy_fab()
    m.wip = []
    return m


@pytest.mark.parametrize("rep", [0, 1, 2, 5])
def test_drawn_start_agrees_exactly(device, rep):
    """Every replication draws its own times left, and the kernel's run is the reference's
    to the last bit (CUDA: uniform and constant draws only, its log may differ in the last
    bit)."""
    start = drawn_start(exponential=device == "cpu")
    cfg = SimConfig(days=4, seed=11)
    kr = simulate_batch([_model()], cfg, [rep], start=start, device=device)[0][0]
    ref = simulate(_model(), dataclasses.replace(cfg, replication=rep), start=start)
    assert_same_run(ref, kr.result())


def test_replications_differ_only_by_their_draws():
    """Two replications of one drawn start (same seed) end their lots at different times."""
    cfg = SimConfig(days=4, seed=11)
    runs = simulate_batch([_model()], cfg, [0, 1], start=drawn_start(), device="cpu")[0]
    a, b = (r.result().lots for r in runs)
    assert list(a.completion) != list(b.completion)


def test_a_moment_run_reports_the_start_wip():
    """A run of a moment from a drawn start holds every start lot in the WIP, in both
    engines."""
    cfg = SimConfig(days=1e-9)
    kr = simulate_batch([_model()], cfg, [0], start=drawn_start(), device="cpu")[0][0]
    assert kr.result().wip_lots[0] == simulate(_model(), cfg, start=drawn_start()).wip_lots[0]
    assert kr.result().wip_lots[0] == len(drawn_start().lots)


def test_hostile_time_left_is_refused_before_the_kernel_runs():
    """A NaN weight or a queued lot with a time left is the reference's error, raised when
    the kernel compiles the start."""
    start = drawn_start()
    start.tools["C#1"] = ToolState(down_left=(TimeLeft(p=float("nan")),))
    with pytest.raises(InputError, match="down_left\\[0\\].p = nan"):
        simulate_batch([_model()], SimConfig(days=1), [0], start=start, device="cpu")
    start = drawn_start()
    start.lots[0] = dataclasses.replace(start.lots[0], until_left=(TimeLeft(),))
    with pytest.raises(InputError, match="not queued"):
        simulate_batch([_model()], SimConfig(days=1), [0], start=start, device="cpu")


@pytest.mark.parametrize("warmup", [0.0, 1.3])
def test_busy_by_interval_agrees_and_adds_up(warmup):
    """SimConfig.busy_by_interval: per family, the busy time of each WIP sample interval (the
    KPIs' utilisation_by_interval) is the same in both engines and adds up to the family's
    busy time over the measured window; intervals in the warm-up report 0."""
    model = toy_fab()
    cfg = SimConfig(days=6, seed=5, busy_by_interval=True, wip_sample_days=0.5,
                    warmup_days=warmup)  # fmt: skip
    ref = simulate(model, cfg)
    kr = simulate_batch([model], cfg, [0], device="cpu")[0][0].result()
    assert_same_run(ref, kr)
    for name, fs in ref.families.items():
        assert len(fs.busy_by) == 12 and fs.busy_by == kr.families[name].busy_by
        assert sum(fs.busy_by) == pytest.approx(fs.busy, rel=1e-12, abs=1e-6)
        by = ref.kpis()["families"][name]["utilisation_by_interval"]
        assert all(0.0 <= u <= 1.0 for u in by)
        assert by[:2] == ([0.0, 0.0] if warmup else by[:2])
    assert any(sum(fs.busy_by) > 0 for fs in ref.families.values())
    off = simulate(model, dataclasses.replace(cfg, busy_by_interval=False))
    assert all(not fs.busy_by for fs in off.families.values())
    assert "utilisation_by_interval" not in next(iter(off.kpis()["families"].values()))
    assert list(off.lots.completion) == list(ref.lots.completion)  # it changes no run
