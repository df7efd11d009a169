"""The kernel against the reference engine, which defines the semantics: every lot's
completion to the last bit, every KPI, the whole event sequence. The kernel draws the
reference's own random streams (numpy SeedSequence + PCG64 on the device), so on the CPU
stochastic runs agree exactly too; on CUDA, whose ``log`` may differ in the last bit, only
constant-time runs are required to agree exactly."""

from __future__ import annotations

import dataclasses
import heapq
import math

import pytest
from models import (
    RANK_CASES,
    constant_times,
    mixed_batch_fab,
    operation_fab,
    rank_fab,
    ranked,
    tie_fab,
    toy_fab,
)

from twin.datasets import PROJECT_ROOT
from twin.process import load_model
from twin.whatif.kernel import simulate_batch
from twin.whatif.kernel.agreement import (
    CHOICES,
    NOT_OPTIONS,
    compare,
    option_cases,
    rank_cases,
    with_ranks,
)
from twin.whatif.reference import LotState, SimConfig, StartState, ToolState, simulate
from twin.whatif.reference import engine as ref_engine

DEMO = PROJECT_ROOT / "scenes" / "demo-fab"


def _kpis(res) -> dict:
    k = res.kpis()
    k.pop("wall_seconds")
    return k


def _nan_equal(a, b) -> bool:
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_nan_equal(a[k], b[k]) for k in a)
    if isinstance(a, float) and math.isnan(a):
        return isinstance(b, float) and math.isnan(b)
    return a == b


def assert_same_run(ref, ker, *, some_lots: bool = True) -> None:
    """Same lots in the same order, same completion/queue/process/transport times, same KPIs
    (and, unless some_lots is False, at least one lot finished)."""
    a, b = ref.lots, ker.lots
    assert len(a) == len(b) and (len(a) > 0 or not some_lots)
    assert a.id == b.id
    assert a.completion == b.completion
    assert a.queue_time == b.queue_time and a.process_time == b.process_time
    assert a.transport_time == b.transport_time and a.steps_done == b.steps_done
    assert ref.events == ker.events
    assert _nan_equal(_kpis(ref), _kpis(ker))


def _exact(device: str, model) -> bool:
    return device == "cpu" or all(
        s.dist == "constant" for r in model.routes.values() for s in r.steps
    )


@pytest.mark.parametrize("constant", [False, True], ids=["stochastic", "constant"])
def test_demo_fab_agrees_exactly(device, constant):
    """Demo fab, 10 days, 3 replications in one launch: identical to the reference."""
    model = load_model(DEMO)
    if constant:
        model = constant_times(model)
    cfg = SimConfig(days=10, warmup_days=1, seed=7)
    runs = simulate_batch([model], cfg, [0, 1, 2], device=device)[0]
    for kr in runs:
        ref = simulate(model, SimConfig(days=10, warmup_days=1, seed=7, replication=kr.replication))
        if _exact(device, model):
            assert_same_run(ref, kr.result())
        else:
            assert abs(len(ref.lots) - len(kr.result().lots)) <= 2


@pytest.mark.parametrize("constant", [False, True], ids=["stochastic", "constant"])
def test_every_feature_agrees_exactly(device, constant):
    """Toy fab with batching, cascading, setups/min runs, all rules, sampling, rework, CQT,
    delays, dedication, downs, time/wafer PMs, hot lots, WIP, warm-up: identical results."""
    model = toy_fab()
    if constant:
        model = constant_times(model)
    cfg = SimConfig(days=12, warmup_days=2, seed=3)
    kr = simulate_batch([model], cfg, [0], device=device)[0][0]
    ref = simulate(model, cfg)
    k = ref.kpis()
    assert k["queue_time_checks"] > 0 and any(s > 6 for s in ref.lots.steps_done)  # reworks
    if _exact(device, model):
        assert_same_run(ref, kr.result())


def test_event_sequence_is_the_references():
    """Every event the kernel pops has the reference's (time, kind), in the same order."""
    model = toy_fab()
    cfg = SimConfig(days=5, seed=11)
    eng = ref_engine.Engine(model, cfg)
    popped = []
    real_pop = heapq.heappop

    def pop(heap):
        item = real_pop(heap)
        if heap is eng.heap:
            popped.append(item[:2])
        return item

    ref_engine.heapq.heappop = pop
    try:
        eng.run()
    finally:
        ref_engine.heapq.heappop = real_pop
    kr = simulate_batch([model], cfg, [0], device="cpu", trace=len(popped) + 1)[0][0]
    assert kr.events == len(popped)
    got = list(zip(kr.out["tr_t"][: kr.events].tolist(), kr.out["tr_k"][: kr.events].tolist()))
    assert got == [(float(t), int(k)) for t, k in popped]


def test_event_kinds_are_the_references():
    """The kernel's event kinds are the reference's (entities.py), so both order equal-time
    events alike: tools finish before downs, downs before arrivals, arrivals before releases."""
    from twin.whatif.kernel import kernel
    from twin.whatif.reference import entities

    names = ["JOB_END", "READY", "DOWN_END", "FAIL", "PM_TIME", "ARRIVE", "DELAY_END",
             "RELEASE_EV", "WARMUP", "LOOK"]  # fmt: skip
    assert [int(getattr(kernel, k)) for k in names] == [getattr(entities, k) for k in names]
    assert [getattr(entities, k) for k in names] == list(range(len(names)))


def test_warm_start_agrees_exactly(device):
    """From an explicit StartState (queued, processing and in-transport lots; busy, down and
    set-up tools) the kernel continues exactly like the reference."""
    model = constant_times(toy_fab()) if device != "cpu" else toy_fab()
    model.wip = []
    t0 = 3 * 86400.0
    start = StartState(
        time=t0,
        lots=[
            LotState(id="q1", product="PA", step=2, status="queued", release=t0 - 5000),
            LotState(
                id="p1",
                product="PA",
                step=3,
                status="processing",
                tool="C#1",
                until=t0 + 900,
                release=t0 - 9000,
            ),  # fmt: skip
            LotState(
                id="t1",
                product="PB",
                step=3,
                status="transport",
                until=t0 + 200,
                lot_type="HotLB",
                priority=20,
                wafers=20,
            ),  # fmt: skip
            LotState(id="q2", product="PB", step=5, status="queued", wafers=20),
        ],
        tools={
            "S#2": ToolState(setup="L2", busy_until=t0 + 600),
            "H#1": ToolState(down_until=t0 + 7200),
            "C#1": ToolState(busy_until=t0 + 900),
        },
    )
    cfg = SimConfig(days=6, seed=5)
    kr = simulate_batch([model], cfg, [0], start=start, device=device)[0][0]
    assert_same_run(simulate(model, cfg, start=start), kr.result())


def test_options_agree_exactly():
    """Switches of SimConfig (no breakdowns, PMs, transport, load/unload, dedication,
    initial WIP; other sample interval) behave as in the reference."""
    model = toy_fab()
    cfg = SimConfig(days=6, seed=2, breakdowns=False, pms=False, transport=False,
                    load_unload=False, dedication=False, initial_wip=False,
                    wip_sample_days=0.25)  # fmt: skip
    kr = simulate_batch([model], cfg, [4], device="cpu")[0][0]
    assert_same_run(simulate(model, SimConfig(**{**cfg.__dict__, "replication": 4})), kr.result())


@pytest.mark.parametrize(
    "rules",
    [
        {"pm_first": "same"},
        {"pm_interval_from": "end"},
        {"idle_downs": "skip"},
        {"wake": "first"},
        {"pm_first": "same", "pm_interval_from": "end", "idle_downs": "skip", "wake": "first"},
    ],
    ids=["same-first", "from-end", "skip-idle", "wake-first", "pyscfabsim"],
)
def test_maintenance_rules_agree_exactly(rules):
    """The maintenance rules PySCFabSim follows (every tool's first PM at the same time, the
    next PM an interval after the end, downs of idle tools skipped, work to the first idle
    tool) behave as in the reference, each alone and together (12 days: the time PMs
    repeat)."""
    model = toy_fab()
    cfg = SimConfig(days=12, seed=3, **rules)
    kr = simulate_batch([model], cfg, [1], device="cpu")[0][0]
    assert_same_run(simulate(model, SimConfig(**{**cfg.__dict__, "replication": 1})), kr.result())


def test_operation_batching_agrees_exactly():
    """Batches of one operation across routes (SimConfig.batch_by="operation") form and run
    as in the reference."""
    model = operation_fab()
    cfg = SimConfig(days=6, seed=7, batch_by="operation", batch_wait="max")
    kr = simulate_batch([model], cfg, [2], device="cpu")[0][0]
    assert_same_run(simulate(model, SimConfig(**{**cfg.__dict__, "replication": 2})), kr.result())


def test_operation_batching_mixes_routes():
    """batch_by="operation" puts lots of both routes into one batch (a batch draws one
    processing time, so its lots share it); batch_by="step" never does."""

    def shared(batch_by: str) -> int:
        cfg = SimConfig(days=6, seed=7, batch_by=batch_by, record_steps=True)
        lots = simulate(operation_fab(), cfg).lots
        first = {p: set() for p in ("PA", "PB")}
        for i, steps in enumerate(lots.steps):
            for number, _q, proc, _t in steps:
                if number == 1 and lots.product[i] in first:
                    first[lots.product[i]].add(proc)
        assert first["PA"] and first["PB"], "both routes ran their batch step"
        return len(first["PA"] & first["PB"])

    assert shared("operation") > 0
    assert shared("step") == 0


@pytest.mark.slow
def test_hvlm_30_days_agrees_exactly(hvlm):
    """SMT2020 HVLM, 30 days from the initial WIP (about 1.8 million events), stochastic as
    published: the same lots complete at the same times with the same KPIs."""
    model = load_model(hvlm)
    cfg = SimConfig(days=30, seed=1)
    kr = simulate_batch([model], cfg, [0], device="cpu")[0][0]
    assert_same_run(simulate(model, cfg), kr.result())
    assert kr.events > 1_000_000


@pytest.mark.parametrize("rule", ["hot_first", "fifo"])
def test_mixed_batch_runs_with_the_head_lots_step(rule):
    """A batch of one operation (batch_by="operation") runs with the processing time and
    setup of the step of its head lot after dispatch sorting (the highest-priority lot, or
    the earliest arrival in a fifo family), not those of the lot that arrived first."""
    model = mixed_batch_fab()
    model.families["B"].rule = rule
    ins: dict[tuple, list] = {}
    outs: dict[str, list] = {}
    released: dict[str, float] = {}

    def observe(kind, t, **f):
        if kind == "lot_released":
            released[f["lot"]] = t  # step 1 is at B, no transport: it arrives there now
        if f.get("family") != "B":
            return
        if kind == "track_in":
            ins.setdefault((f["tool"], t), []).append(f["lot"])
        elif kind == "track_out":
            outs.setdefault(f["lot"], []).append(t)

    cfg = SimConfig(days=3, seed=4, batch_by="operation", load_unload=False)
    simulate(model, cfg, observer=observe)
    setup, mixed, heads = None, 0, {True: 0, False: 0}
    for (_tool, t), lots in sorted(ins.items(), key=lambda kv: kv[0][1]):
        hot = {lot: lot.startswith("HotLB") for lot in lots}  # route rb's lots are the hot ones
        if rule == "fifo":
            head_hot = hot[min(lots, key=released.__getitem__)]
        else:
            head_hot = any(hot.values())
        mixed += len(set(hot.values())) == 2
        heads[head_hot] += 1
        want = "OXB" if head_hot else "OXA"
        change = 600.0 if want != setup else 0.0
        setup = want
        if lots[0] not in outs:
            continue  # still running at the horizon
        run = outs[lots[0]][0] - t - change  # the subtraction rounds: compare to 1 ms
        if head_hot:
            assert abs(run - 3600.0) > 1e-3 and 1800.0 <= run <= 5400.0, (t, lots, run)
        else:
            assert abs(run - 3600.0) < 1e-3, (t, lots, run)
    assert mixed > 5 and min(heads.values()) > 5  # mixed batches with both heads were checked


@pytest.mark.parametrize("rule", ["hot_first", "fifo", "least_setup", "critical_ratio"])
@pytest.mark.parametrize("batch_by", ["step", "operation"])
def test_mixed_batch_agrees_exactly(device, rule, batch_by):
    """Batch families under every rule, lots of one operation whose steps differ in spread
    and setup: kernel and reference form and run the same batches (the reference took the
    first arrival's step, and ordered a fifo family's batch by priority). On CUDA with
    constant times (the setups still differ)."""
    model = mixed_batch_fab()
    model.families["B"].rule = rule
    if device != "cpu":
        model = constant_times(model)
    cfg = SimConfig(days=6, seed=4, batch_by=batch_by)
    kr = simulate_batch([model], cfg, [0], device=device)[0][0]
    assert_same_run(simulate(model, cfg), kr.result())


@pytest.mark.parametrize(
    "rule, ranks", RANK_CASES, ids=[f"{r}-{'-'.join(k)}" for r, k in RANK_CASES]
)
def test_ranks_agree_exactly(device, rule, ranks):
    """Every rank (hp, setup, fifo, cr) alone and in combinations, under hot_first and
    least_setup, on every family of the toy fab (batching, setups with minimum runs,
    dedication, hot lots): kernel and reference identical (on CUDA with constant times)."""
    model = ranked(toy_fab(), rule, ranks)
    if device != "cpu":
        model = constant_times(model)
    cfg = SimConfig(days=8, warmup_days=1, seed=5)
    kr = simulate_batch([model], cfg, [0], device=device)[0][0]
    assert_same_run(simulate(model, cfg), kr.result())


@pytest.mark.parametrize(
    "rule, ranks", RANK_CASES, ids=[f"{r}-{'-'.join(k)}" for r, k in RANK_CASES]
)
def test_ranks_hand_model_agrees_exactly(device, rule, ranks):
    """The hand-ordered rank model (test_reference.py checks its orders): the kernel
    finishes the lots in the reference's order at the same times."""
    model = rank_fab(rule, ranks)
    cfg = SimConfig(days=1)
    kr = simulate_batch([model], cfg, [0], device=device)[0][0]
    ref = simulate(model, cfg)
    assert len(ref.lots) == 5
    assert_same_run(ref, kr.result())


@pytest.mark.parametrize(
    "rule, ranks", RANK_CASES, ids=[f"{r}-{'-'.join(k)}" for r, k in RANK_CASES]
)
def test_ranks_break_arrival_ties_within_a_class(device, rule, ranks):
    """Lots of one setup class that arrive together go by the family's next rank (the
    kernel's queue order within a class is the reference's heap order), identical runs;
    under (fifo, hp) the reference serves them by priority after the first."""
    model = tie_fab(rule, ranks)
    cfg = SimConfig(days=1)
    ref = simulate(model, cfg)
    kr = simulate_batch([model], cfg, [0], device=device)[0][0]
    assert_same_run(ref, kr.result())
    if ranks == ("fifo", "hp"):
        order = [i for _, i in sorted(zip(ref.lots.completion, ref.lots.id))]
        assert order == ["w0", "w3", "w1", "w4", "w2", "w5"]


HVLM_DAYS = 3  # short for CI; bench/bench_agreement.py runs the same cases over 60 days
_hvlm_models: dict = {}


def test_option_cases_cover_every_option():
    """Every SimConfig option has an HVLM agreement case at each of its non-default values,
    besides the defaults, the half spread and PySCFabSim's rule set."""
    cases = option_cases()
    names = {c.name for c in cases}
    default = SimConfig(days=1)
    for name in SimConfig.__dataclass_fields__:
        if name in NOT_OPTIONS:
            continue
        assert any(name in c.options and len(c.options) == 1 for c in cases), name
        for v in CHOICES.get(name, ()):
            assert v == getattr(default, name) or f"{name}={v}" in names
    assert {"defaults", "spread=half", "pyscfabsim"} <= names
    assert next(c for c in cases if c.name == "pyscfabsim").options["batch_by"] == "operation"


def test_compare_finds_the_first_difference():
    """compare() reports None for identical runs and the first differing completion else."""
    model = toy_fab()
    cfg = SimConfig(days=4, seed=3)
    ref = simulate(model, cfg)
    assert compare(ref, simulate(model, cfg))["first_diff"] is None
    other = simulate(model, SimConfig(days=4, seed=3, replication=1))
    c = compare(ref, other)
    assert c["first_diff"] is not None and 0 < c["first_diff"] <= 4
    assert c["first_diff"] * 86400.0 in (ref.lots.completion + other.lots.completion)


@pytest.mark.slow
@pytest.mark.parametrize("case", option_cases(), ids=lambda c: c.name)
def test_hvlm_options_agree_exactly(hvlm, case):
    """SMT2020 HVLM, 3 days, 2 replications, with each SimConfig option alone, the half spread
    and PySCFabSim's rule set: every lot and the event count as in the reference."""
    if case.spread not in _hvlm_models:
        _hvlm_models[case.spread] = load_model(hvlm, ptime_spread_mode=case.spread)
    model = _hvlm_models[case.spread]
    runs = simulate_batch([model], case.config(HVLM_DAYS, seed=1), [0, 1], device="cpu")[0]
    for kr in runs:
        ref = simulate(model, case.config(HVLM_DAYS, seed=1, replication=kr.replication))
        assert ref.events > 5000
        assert_same_run(ref, kr.result(), some_lots=case.options.get("initial_wip", True))


@pytest.mark.slow
@pytest.mark.parametrize("case", rank_cases(), ids=lambda c: c.name)
def test_hvlm_ranks_agree_exactly(hvlm, case):
    """SMT2020 HVLM, 3 days, with other FWLRANK lists on every family (LVHM's
    rank_HP;rank_RSETUP;rank_CR among them): every lot and the event count as in the
    reference, and the ranks change the run (they are not ignored)."""
    if "full" not in _hvlm_models:
        _hvlm_models["full"] = load_model(hvlm, ptime_spread_mode="full")
    model = with_ranks(_hvlm_models["full"], case)
    cfg = case.config(HVLM_DAYS, seed=1)
    kr = simulate_batch([model], cfg, [0], device="cpu")[0][0]
    ref = simulate(model, cfg)
    assert compare(ref, kr.result())["first_diff"] is None
    base = simulate(_hvlm_models["full"], cfg)
    assert compare(ref, base)["first_diff"] is not None


@pytest.mark.parametrize(
    "dues",
    [
        [1e300, -1e300, 5e299, -1e-300],
        [math.inf, -math.inf, 0.0, 1.0],
        [math.nan, 1.0, math.nan, 2.0],
    ],
    ids=["huge", "infinite", "nan"],
)
def test_critical_ratio_extreme_due_dates_agree(device, dues):
    """Extreme due dates (huge, infinite, NaN) under rank_CR: the kernel takes the lots in
    the reference's order (a NaN ratio compares as Python's tuples do: never smaller)."""
    model = rank_fab("hot_first", ("cr", "fifo"))
    model.wip = [dataclasses.replace(w, due=d) for w, d in zip(model.wip, [1e7, *dues])]
    cfg = SimConfig(days=1)
    kr = simulate_batch([model], cfg, [0], device=device)[0][0]
    assert_same_run(simulate(model, cfg), kr.result())
