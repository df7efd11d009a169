"""Semantics of the reference engine on small models with known answers."""

from __future__ import annotations

import dataclasses
import math
from collections import defaultdict

import numpy as np
import pytest

from twin.errors import ConfigError, InputError
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
from twin.whatif.reference import (
    LotState,
    SimConfig,
    StartState,
    ToolState,
    register_rule,
    simulate,
)

DAY = 86400.0


def line(steps, families, *, interval=600.0, count=10**9, wip=(), transport=None, **kw):
    """A one-product model: the given steps and families, regular releases."""
    return FabModel(
        families={f.name: f for f in families},
        products={"p": Product(name="p", route="r")},
        routes={"r": Route(name="r", steps=list(steps))},
        releases=[Release(lot_type="L", product="p", interval=interval, count=count)]
        if count
        else [],
        wip=list(wip),
        transport=transport or Dist(),
        **kw,
    )


def fam(name, count=1, **kw):
    return ToolFamily(name=name, count=count, area=kw.pop("area", "A"), **kw)


def const(number, family, mean, **kw):
    return Step(number=number, family=family, dist="constant", mean=mean, **kw)


def recorder():
    events = []

    def observe(kind, time, **fields):
        events.append((kind, time, fields))

    return events, observe


def test_deterministic_for_a_seed():
    """Same seed and replication give identical records; another replication differs."""
    m = line(
        [Step(number=1, family="A", dist="exponential", mean=300.0)],
        [fam("A")],
        interval=400.0,
    )
    a = simulate(m, SimConfig(days=2, seed=5))
    b = simulate(m, SimConfig(days=2, seed=5))
    c = simulate(m, SimConfig(days=2, seed=5, replication=1))
    assert a.lots.completion == b.lots.completion and len(a.lots) > 100
    assert a.lots.completion != c.lots.completion


def test_common_random_numbers_per_family():
    """Changing family B's tool count leaves family A's processing-time draws unchanged."""
    steps = [
        Step(number=1, family="A", dist="uniform", mean=100.0, spread=50.0),
        Step(number=2, family="B", dist="exponential", mean=500.0),
    ]
    base = line(steps, [fam("A", 2), fam("B", 1)], interval=300.0)
    more = dataclasses.replace(base, families={"A": fam("A", 2), "B": fam("B", 3)})
    cfg = SimConfig(days=1, seed=2, record_steps=True)
    ra, rb = simulate(base, cfg), simulate(more, cfg)
    pa = {i: s[0][2] for i, s in zip(ra.lots.id, ra.lots.steps)}
    pb = {i: s[0][2] for i, s in zip(rb.lots.id, rb.lots.steps)}
    common = sorted(set(pa) & set(pb))
    assert len(common) > 20
    assert [pa[i] for i in common] == [pb[i] for i in common]
    assert ra.lots.completion != rb.lots.completion


def test_transport_and_delay_steps():
    """Cycle time = processing + transport between steps + delay (no tool for Delay_32)."""
    steps = [const(1, "A", 100.0), const(2, "Delay_32", 1000.0, is_delay=True), const(3, "A", 50.0)]
    fams = [fam("A"), fam("Delay_32", count=1, is_delay=True)]
    m = line(steps, fams, interval=10000.0, transport=Dist(kind="constant", mean=30.0))
    res = simulate(m, SimConfig(days=1))
    ct = np.asarray(res.lots.completion) - np.asarray(res.lots.release)
    assert np.allclose(ct, 100 + 30 + 1000 + 30 + 50)
    assert res.kpis()["families"]["A"]["lots_started"] == 2 * len(res.lots)


def test_load_unload_and_per_piece_times():
    """A per-piece step takes wafers × time, plus the family's load and unload times."""
    steps = [const(1, "A", 10.0, per="piece")]
    m = line(steps, [fam("A", load_time=60.0, unload_time=30.0)], interval=5000.0)
    res = simulate(m, SimConfig(days=1))
    assert np.allclose(np.asarray(res.lots.process_time), 25 * 10 + 90)
    off = simulate(m, SimConfig(days=1, load_unload=False))
    assert np.allclose(np.asarray(off.lots.process_time), 250)


def test_cascading_part_interval():
    """Cascading: the next lot starts interval × wafers after the previous one, 2 in the tool."""
    steps = [const(1, "A", 60.0, per="piece", part_interval=20.0)]
    wip = [WipLot(id=f"w{i}", lot_type="L", product="p", step=1) for i in range(4)]
    m = line(steps, [fam("A", capacity=2)], count=0, wip=wip)
    events, obs = recorder()
    res = simulate(m, SimConfig(days=1), observer=obs)
    starts = sorted(t for k, t, f in events if k == "track_in")
    assert starts == pytest.approx([0, 500, 1000, 1500])  # 20 s × 25 wafers apart
    # one piece (60 s) + 24 further wafers at the interval
    assert np.allclose(np.asarray(res.lots.process_time), 60 + 20 * 24)


def test_batches_respect_min_and_max():
    """Batches hold lots of one step with BATCHMN <= wafers <= BATCHMX; a tool waits for MN."""
    steps = [const(1, "F", 1000.0, per="batch", batch_min=75, batch_max=100)]
    m = line(steps, [fam("F", count=2)], interval=120.0)
    events, obs = recorder()
    res = simulate(m, SimConfig(days=1, batch_wait="min"), observer=obs)
    batches = defaultdict(int)
    for k, t, f in events:
        if k == "track_in":
            batches[(t, f["tool"])] += 1
    sizes = set(batches.values())
    assert sizes <= {3, 4} and 4 in sizes
    assert len(res.lots) > 100


@pytest.mark.parametrize(("wait", "first", "size"), [("max", 360.0, 4), ("min", 120.0, 2)])
def test_batch_wait_full_or_minimum(wait, first, size):
    """batch_wait="max" starts a batch when BATCHMX wafers wait, "min" at BATCHMN wafers."""
    # lots of 25 wafers arrive at 0, 120, 240, ... s; one idle tool; MN 50 (2 lots), MX 100 (4)
    steps = [const(1, "F", 10_000.0, per="batch", batch_min=50, batch_max=100)]
    m = line(steps, [fam("F")], interval=120.0, count=8)
    events, obs = recorder()
    simulate(m, SimConfig(days=1, batch_wait=wait), observer=obs)
    starts = defaultdict(int)
    for k, t, _f in events:
        if k == "track_in":
            starts[t] += 1
    assert min(starts) == pytest.approx(first)
    assert starts[min(starts)] == size
    assert sorted(starts.values()) == ([4, 4] if wait == "max" else [2, 2, 4])


def test_batch_wait_is_checked():
    """An unknown batch_wait is refused with the accepted values."""
    with pytest.raises(ConfigError, match="min, max"):
        SimConfig(days=1, batch_wait="full")


def test_setups_and_minimum_runs():
    """A tool changes setup only after its minimum run when lots of its setup are waiting."""
    steps = [const(1, "I", 60.0, setup="X"), const(2, "I", 60.0, setup="Y")]
    wip = [WipLot(id=f"x{i}", lot_type="L", product="p", step=1) for i in range(6)]
    wip += [WipLot(id=f"y{i}", lot_type="L", product="p", step=2) for i in range(6)]
    m = line(
        steps,
        [fam("I", rule="least_setup")],
        count=0,
        wip=wip,
        setup_times={(None, "X"): 600.0, (None, "Y"): 600.0},
        min_runs={"X": 3, "Y": 3},
    )
    events, obs = recorder()
    res = simulate(m, SimConfig(days=1), observer=obs)
    order = [f["step"] for k, t, f in events if k == "track_in"]
    changes = sum(1 for a, b in zip(order, order[1:]) if a != b)
    assert changes <= 3  # least setup: long runs, never a change inside a minimum run
    runs = "".join(map(str, order)).replace("12", "1|2").replace("21", "2|1").split("|")
    assert all(len(r) >= 3 for r in runs[:-1])
    setups = [(t, f) for k, t, f in events if k == "tool_state" and f["reason"] == "setup"]
    assert len(setups) == changes + 1
    assert res.kpis()["families"]["I"]["setup_share"] > 0


def test_hot_lots_first_and_custom_rule():
    """hot_first serves priority 30, 20, then 10; a registered rule (LIFO) is honoured."""
    pr = [10, 20, 10, 30, 20, 10]
    wip = [
        WipLot(id=f"w{i}", lot_type="L", product="p", step=1, priority=p) for i, p in enumerate(pr)
    ]
    m = line([const(1, "A", 100.0)], [fam("A")], count=0, wip=wip)
    res = simulate(m, SimConfig(days=1))
    got = [p for _, p in sorted(zip(res.lots.completion, res.lots.priority))]
    # w0 arrives first and finds the tool idle; the rest wait and go by priority
    assert got == [10, *sorted(pr[1:], reverse=True)]

    register_rule("lifo_test", lambda lot, tool, now, setup: (-lot.arrived, -lot.seq))
    lifo = dataclasses.replace(m, families={"A": fam("A", rule="lifo_test")})
    res = simulate(lifo, SimConfig(days=1))
    order = [i for _, i in sorted(zip(res.lots.completion, res.lots.id))]
    assert order[1:] == ["w5", "w4", "w3", "w2", "w1"]  # w0 started before the others arrived


def test_unknown_rule_is_an_error():
    """A family naming an unregistered rule is refused before the run."""
    m = line([const(1, "A", 100.0)], [fam("A", rule="nope")])
    with pytest.raises(ConfigError, match="nope"):
        simulate(m, SimConfig(days=1))


def test_sampling_share():
    """A step with StepPercent 30 is executed by ~30 % of lots (binomial 4-sigma band)."""
    steps = [const(1, "A", 10.0), const(2, "B", 10.0, sampling_percent=30.0)]
    m = line(steps, [fam("A"), fam("B")], interval=100.0)
    res = simulate(m, SimConfig(days=3))
    n = len(res.lots)
    share = (np.asarray(res.lots.steps_done) == 2).mean()
    assert abs(share - 0.3) < 4 * math.sqrt(0.3 * 0.7 / n)


def test_rework_probability():
    """After a step with REWORK 20 % a lot goes back once to RWKSTEP with probability 0.2."""
    steps = [const(1, "A", 10.0), const(2, "B", 10.0, rework_step=1, rework_prob=0.2)]
    m = line(steps, [fam("A"), fam("B")], interval=100.0)
    res = simulate(m, SimConfig(days=3))
    done = np.asarray(res.lots.steps_done)
    assert set(done) <= {2, 4}
    share = (done == 4).mean()
    assert abs(share - 0.2) < 4 * math.sqrt(0.2 * 0.8 / len(done))


def test_critical_queue_time_tracking():
    """A CQT window shorter than the transport is always violated; a long one never."""
    tight = [const(1, "A", 10.0, cqt_step=2, cqt_limit=5.0), const(2, "A", 10.0)]
    loose = [const(1, "A", 10.0, cqt_step=2, cqt_limit=1e6), const(2, "A", 10.0)]
    tr = Dist(kind="constant", mean=60.0)
    for steps, expect_all in ((tight, True), (loose, False)):
        k = simulate(line(steps, [fam("A")], interval=1000.0, transport=tr), SimConfig(days=1))
        kp = k.kpis()
        assert kp["queue_time_checks"] > 50
        assert kp["queue_time_violations"] == (kp["queue_time_checks"] if expect_all else 0)


def test_breakdown_share_matches_renewal_theory():
    """Exponential MTTF/MTTR: down share of an idle tool is MTTR / (MTTF + MTTR) (±10 %)."""
    m = line(
        [const(1, "A", 10.0)],
        [fam("A", count=20)],
        count=0,
        downs={
            "brk": DownCalendar(
                name="brk",
                mttf=Dist(kind="exponential", mean=9 * 3600.0),
                mttr=Dist(kind="exponential", mean=3600.0),
            )
        },
        attachments=[
            Attachment(
                calendar="brk",
                kind="down",
                target_kind="area",
                target="A",
                first=Dist(kind="exponential", mean=9 * 3600.0),
            )
        ],
    )
    k = simulate(m, SimConfig(days=60, warmup_days=2)).kpis()["families"]["A"]
    assert k["down_share"] == pytest.approx(0.1, rel=0.1)
    assert (
        simulate(m, SimConfig(days=5, breakdowns=False)).kpis()["families"]["A"]["down_share"] == 0
    )


def test_pm_by_calendar_and_by_wafers():
    """Calendar PMs take duration/interval of the time; wafer PMs happen every N wafers."""
    pm_time = PMCalendar(
        name="t", by="time", interval=10 * DAY, duration=Dist(kind="constant", mean=DAY)
    )
    pm_waf = PMCalendar(
        name="w", by="wafers", interval=500, duration=Dist(kind="constant", mean=600.0)
    )
    att_t = Attachment(
        calendar="t", kind="pm", target_kind="family", target="A", first=Dist(mean=5 * DAY)
    )
    att_w = Attachment(
        calendar="w", kind="pm", target_kind="family", target="B", first=Dist(mean=500)
    )
    m = line(
        [const(1, "A", 10.0), const(2, "B", 100.0)],
        [fam("A"), fam("B")],
        interval=3600.0,
        pms={"t": pm_time, "w": pm_waf},
        attachments=[att_t, att_w],
    )
    events, obs = recorder()
    res = simulate(m, SimConfig(days=40), observer=obs)
    k = res.kpis()["families"]
    assert k["A"]["pm_share"] == pytest.approx(4 / 40)  # PMs at days 5, 15, 25, 35
    pms_b = [t for kind, t, f in events if kind == "tool_state" and f["tool"] == "B#1"
             and f["reason"] == "pm"]  # fmt: skip
    wafers_b = 25 * k["B"]["lots_started"]
    assert len(pms_b) == wafers_b // 500


def test_warm_start_state():
    """A warm start keeps a lot in process until its end and a down tool down until its time."""
    m = line([const(1, "A", 100.0)], [fam("A", count=2)], count=0)
    start = StartState(
        time=1000.0,
        lots=[
            LotState(id="a", product="p", step=1, status="processing", tool="A#1", until=1500.0),
            LotState(id="b", product="p", step=1, status="queued"),
            LotState(id="c", product="p", step=1, status="transport", until=1200.0),
        ],
        tools={"A#2": ToolState(down_until=3000.0)},
    )
    res = simulate(m, SimConfig(days=1), start=start)
    done = dict(zip(res.lots.id, res.lots.completion))
    assert done == {"a": 1500.0, "b": 1600.0, "c": 1700.0}
    bad = StartState(lots=[LotState(id="x", product="p", step=9)], tools={"Z#1": ToolState()})
    with pytest.raises(InputError) as err:
        simulate(m, SimConfig(days=1), start=bad)
    assert len(err.value.problems) == 2


def test_observer_and_kpis_consistent():
    """Observer events match the records: one track-in per executed step, one completion each."""
    steps = [const(1, "A", 50.0), const(2, "B", 80.0, sampling_percent=50.0)]
    m = line(steps, [fam("A"), fam("B")], interval=300.0)
    events, obs = recorder()
    res = simulate(m, SimConfig(days=1, warmup_days=0.25), observer=obs)
    kinds = defaultdict(int)
    for k, _, _ in events:
        kinds[k] += 1
    assert kinds["lot_completed"] == len(res.lots)
    ins = kinds["track_in"] - kinds["track_out"]  # lots still in a tool at the end
    assert 0 <= ins <= 2
    kp = res.kpis()
    measured = sum(1 for c in res.lots.completion if c >= 0.25 * DAY)
    assert kp["lot_types"]["L"]["lots_completed"] == measured
    assert kp["lot_types"]["L"]["throughput_per_day"] == pytest.approx(measured / 0.75)
    assert kp["events"] > 0 and kp["wall_seconds"] > 0


def test_config_validation_lists_every_problem():
    """SimConfig refuses bad values, listing each one."""
    with pytest.raises(ConfigError) as err:
        SimConfig(days=-1, warmup_days=-2, wip_sample_days=0)
    assert len(err.value.problems) == 3


def test_config_refuses_hostile_values():
    """SimConfig refuses infinite, NaN and century-plus horizons, sampling that would take
    more than a million WIP samples, and seeds or replications outside what both engines
    key their streams with (64-bit seed, 31-bit replication) or not integers."""
    bad = [
        {"days": math.inf}, {"days": math.nan}, {"days": 1e9}, {"days": -0.0},
        {"wip_sample_days": 1e-300}, {"wip_sample_days": math.nan},
        {"wip_sample_days": -math.inf}, {"seed": 2**64}, {"seed": -1}, {"seed": "1"},
        {"seed": True}, {"seed": 1.0}, {"seed": "\ud800"}, {"replication": 2**31},
        {"replication": -(2**70)}, {"replication": None},
    ]  # fmt: skip
    for kw in bad:
        opts = {"days": 1.0, **kw}
        with pytest.raises(ConfigError) as err:
            SimConfig(**opts)
        name = next(iter(kw))
        assert len(err.value.problems) == 1 and err.value.problems[0].startswith(name), kw
    ok = SimConfig(days=36_500, seed=np.int64(2**62), replication=2**31 - 1)
    assert ok.days == 36_500
    assert SimConfig(days=1, seed=2**64 - 1, wip_sample_days=1e-6).seed == 2**64 - 1


def test_same_tool_dedication():
    """SVESTN/FORSTEP: a lot runs the later step on the tool that ran the earlier one."""
    steps = [
        Step(number=1, family="A", dist="exponential", mean=100.0, same_tool_step=3),
        const(2, "B", 10.0),
        Step(number=3, family="A", dist="exponential", mean=100.0),
    ]
    m = line(steps, [fam("A", count=3), fam("B")], interval=100.0)
    events, obs = recorder()
    simulate(m, SimConfig(days=1), observer=obs)
    tools = defaultdict(dict)
    for k, _t, f in events:
        if k == "track_in" and f["family"] == "A":
            tools[f["lot"]][f["step"]] = f["tool"]
    both = [v for v in tools.values() if len(v) == 2]
    assert len(both) > 200
    assert all(v[1] == v[3] for v in both)
    assert len({v[1] for v in both}) == 3
    free = SimConfig(days=1, dedication=False)
    events.clear()
    simulate(m, free, observer=obs)
    tools.clear()
    for k, _t, f in events:
        if k == "track_in" and f["family"] == "A":
            tools[f["lot"]][f["step"]] = f["tool"]
    assert any(v[1] != v[3] for v in tools.values() if len(v) == 2)


def test_constant_first_pm_is_staggered():
    """A constant first occurrence F is spread over the n tools: tool k at F·k/n."""
    pm = PMCalendar(name="t", by="time", interval=100 * DAY, duration=Dist(mean=3600.0))
    att = Attachment(
        calendar="t", kind="pm", target_kind="family", target="A", first=Dist(mean=4 * DAY)
    )
    m = line([const(1, "A", 10.0)], [fam("A", count=4)], count=0, pms={"t": pm}, attachments=[att])
    events, obs = recorder()
    simulate(m, SimConfig(days=10), observer=obs)
    starts = {f["tool"]: t for k, t, f in events if k == "tool_state" and f["reason"] == "pm"}
    assert starts == {f"A#{k}": k * DAY for k in range(1, 5)}


def _pm_line(interval_days, count, first_days, wip=()):
    """A family A of ``count`` tools with one time PM (1 h, constant first occurrence)."""
    pm = PMCalendar(name="t", by="time", interval=interval_days * DAY, duration=Dist(mean=3600.0))
    att = Attachment(
        calendar="t", kind="pm", target_kind="family", target="A", first=Dist(mean=first_days * DAY)
    )
    steps = [const(1, "A", 2 * DAY)]
    fams = [fam("A", count=count)]
    return line(steps, fams, count=0, wip=wip, pms={"t": pm}, attachments=[att])


def _pm_starts(model, cfg):
    events, obs = recorder()
    simulate(model, cfg, observer=obs)
    return [(f["tool"], t) for k, t, f in events if k == "tool_state" and f["reason"] == "pm"]


def test_same_first_pm_on_every_tool():
    """pm_first="same": a constant first occurrence F is F on every tool (the format read
    literally), so the whole family goes to PM at once."""
    m = _pm_line(100, 4, 4)
    starts = dict(_pm_starts(m, SimConfig(days=10, pm_first="same")))
    assert starts == {f"A#{k}": 4 * DAY for k in range(1, 5)}


def test_next_pm_an_interval_after_the_end():
    """pm_interval_from="end": the next calendar PM comes MTBPM after the end of the last
    (1 h PMs every 3 days from day 1: days 1, 4 + 1 h, 7 + 2 h); "start": days 1, 4, 7."""
    m = _pm_line(3, 1, 1)
    h = 3600.0
    assert _pm_starts(m, SimConfig(days=9)) == [("A#1", d * DAY) for d in (1, 4, 7)]
    assert _pm_starts(m, SimConfig(days=9, pm_interval_from="end")) == [
        ("A#1", DAY), ("A#1", 4 * DAY + h), ("A#1", 7 * DAY + 2 * h)
    ]  # fmt: skip


def test_idle_downs_skip_leaves_idle_tools_up():
    """idle_downs="skip": a PM that falls due while a tool is idle has no effect; the busy
    tool still goes down and its lot finishes 1 h later (2 days of work + the PM)."""
    wip = [WipLot(id="w", lot_type="L", product="p", step=1)]
    m = _pm_line(100, 2, 1, wip=wip)
    cfg = SimConfig(days=5, pm_first="same", idle_downs="skip")
    assert _pm_starts(m, cfg) == [("A#2", DAY)]  # the tool the lot started on (last idle)
    res = simulate(m, cfg)
    assert res.lots.completion == [2 * DAY + 3600.0]
    assert res.families["A"].pm == 3600.0
    applied = simulate(m, SimConfig(days=5, pm_first="same"))
    assert applied.families["A"].pm == 2 * 3600.0
    assert applied.lots.completion == [2 * DAY + 3600.0]


def test_wake_first_or_most_recent_idle_tool():
    """wake="first": arriving work goes to the first idle tool of the family (A#1 runs every
    lot when one tool at a time is enough); "recent": to the one idle most recently (A#3, the
    last one found idle at the start, keeps all the work)."""
    m = line([const(1, "A", 3600.0)], [fam("A", count=3)], interval=7200.0, count=5)

    def tools(wake):
        events, obs = recorder()
        simulate(m, SimConfig(days=1, wake=wake), observer=obs)
        return [f["tool"] for k, _t, f in events if k == "track_in"]

    assert tools("first") == ["A#1"] * 5
    assert tools("recent") == ["A#3"] * 5


def test_maintenance_rule_names_are_checked():
    """Unknown maintenance rules are refused with the accepted values."""
    with pytest.raises(ConfigError) as exc:
        SimConfig(days=1, pm_first="random", pm_interval_from="middle", idle_downs="maybe")
    text = str(exc.value)
    for part in ("staggered, same", "start, end", "apply, skip"):
        assert part in text


def test_critical_ratio_rule():
    """critical_ratio serves the lot with the least slack per remaining processing time first."""
    wip = [
        WipLot(id="late_due", lot_type="L", product="p", step=1, due=1e6),
        WipLot(id="blocker", lot_type="L", product="p", step=1, due=1e6),
        WipLot(id="early_due", lot_type="L", product="p", step=1, due=2000.0),
    ]
    m = line([const(1, "A", 100.0)], [fam("A", rule="critical_ratio")], count=0, wip=wip)
    res = simulate(m, SimConfig(days=1))
    order = [i for _, i in sorted(zip(res.lots.completion, res.lots.id))]
    assert order == ["late_due", "early_due", "blocker"]  # late_due found the tool idle
    fifo = dataclasses.replace(m, families={"A": fam("A", rule="fifo")})
    res = simulate(fifo, SimConfig(days=1))
    assert [i for _, i in sorted(zip(res.lots.completion, res.lots.id))] == [w.id for w in wip]


# ---- dispatching ranks (SMT2020 FWLRANK) ---------------------------------------------------


def rank_model(rule: str = "hot_first", ranks: tuple = ()) -> FabModel:
    """One tool A (1000 s a lot) after a pre-tool P (100 s): a blocker starts at A at 0 and
    sets it up X; four lots wait, set up X (product p) or Y (product q, 300 s to change),
    arriving at 0 (WIP at A) or at 100 (WIP at P), with these priorities and due dates:
        a: Y, 0, prio 10, due 1e7    b: X, 100, prio 10, due 5000
        c: X, 0, prio 20, due 1e7    d: Y, 100, prio 30, due 3000
    The critical ratio (due - now) / 1000 s orders them like their due dates."""
    routes = {
        "r": Route(name="r", steps=[const(1, "P", 100.0), const(2, "A", 1000.0, setup="X")]),
        "rq": Route(name="rq", steps=[const(1, "P", 100.0), const(2, "A", 1000.0, setup="Y")]),
    }
    lots = [("blocker", "p", 2, 10, 1e7), ("a", "q", 2, 10, 1e7), ("c", "p", 2, 20, 1e7)]
    lots += [("b", "p", 1, 10, 5000.0), ("d", "q", 1, 30, 3000.0)]
    wip = [
        WipLot(id=i, lot_type="L", product=p, step=s, priority=pr, due=due)
        for i, p, s, pr, due in lots
    ]
    return FabModel(
        families={"P": fam("P", count=4), "A": fam("A", rule=rule, ranks=ranks)},
        products={"p": Product(name="p", route="r"), "q": Product(name="q", route="rq")},
        routes=routes,
        wip=wip,
        setup_times={(None, "Y"): 300.0, ("X", "Y"): 300.0},
    )


def started_at(model: FabModel, family: str = "A") -> list[str]:
    """The lots in the order they start on the family's tools."""
    events, observe = recorder()
    simulate(model, SimConfig(days=1), observer=observe)
    return [f["lot"] for kind, _, f in events if kind == "track_in" and f["family"] == family]


RANK_ORDERS = [
    # (rule, ranks, order after the blocker), worked out by hand from rank_model's table
    ("hot_first", ("hp",), "dcab"),  # priority 30, 20, then a before b by sequence
    ("hot_first", ("fifo",), "acbd"),  # arrival 0 (a, c by sequence), then 100 (b, d)
    ("hot_first", ("setup",), "cbad"),  # X needs no setup: c, b (sequence); then a, d
    ("hot_first", ("cr",), "dbac"),  # due 3000, 5000, then a, c tie (sequence)
    ("hot_first", ("setup", "hp"), "cbda"),  # X by priority (c, b), then Y (d, a)
    ("hot_first", ("cr", "hp"), "dbca"),  # a, c tie on the ratio: c has the priority
    ("hot_first", ("fifo", "hp"), "cadb"),  # at 0: c (20) before a; at 100: d (30) before b
    ("hot_first", ("hp", "setup", "fifo"), "dcba"),  # HVLM: d (Y), c; then b (X) before a
    ("hot_first", (), "dcba"),  # no ranks: hp, setup, fifo
    ("least_setup", (), "cbda"),  # setup, hp, fifo
    ("least_setup", ("hp", "setup", "fifo"), "cbda"),  # HVLM's rule_LSSU: setup leads
    ("least_setup", ("cr",), "bcda"),  # setup, then due: X (b, c), Y (d, a)
    ("fifo", (), "acbd"),
    ("critical_ratio", (), "dcba"),  # hp: d, c; then the ratio: b (due 5000) before a
]


@pytest.mark.parametrize("rule, ranks, order", RANK_ORDERS)
def test_ranks_dispatch_in_the_hand_computed_order(rule, ranks, order):
    """The first rank decides and ties go to the next (the sequence number last): each rank
    and combination serves rank_model's lots in the order worked out by hand."""
    got = started_at(rank_model(rule, ranks))
    assert got == ["blocker", *order]


def test_ranks_hot_first_follows_fwlrank_not_priority():
    """rule hot_first with FWLRANK not led by rank_HP follows FWLRANK: a hot lot waits for
    an earlier one under rank_FIFO alone."""
    assert started_at(rank_model("hot_first", ("fifo",)))[1:3] == ["a", "c"]
    assert started_at(rank_model("hot_first", ("hp", "fifo")))[1:3] == ["d", "c"]


def test_ranks_order_a_batch_family_by_priority_and_arrival():
    """A batch family orders its lots by its ranks that depend on neither tool nor clock
    (hp, fifo, in the family's order): (fifo) takes the earliest lots, (hp, cr) the hot ones
    first, (setup) the sequence alone. w0 finds the tool idle and starts alone."""
    steps = [Step(number=1, family="B", per="batch", batch_min=25, batch_max=50, mean=1000.0)]
    wip = [
        WipLot(id=f"w{i}", lot_type="L", product="p", step=1, priority=p)
        for i, p in enumerate([10, 10, 10, 30, 20])
    ]
    got = {}
    for ranks in [("fifo",), ("hp", "cr"), ("setup",)]:
        m = line(steps, [fam("B", ranks=ranks)], count=0, wip=wip)
        got[ranks] = started_at(m, "B")
    assert got[("fifo",)] == ["w0", "w1", "w2", "w3", "w4"]
    assert got[("hp", "cr")] == ["w0", "w3", "w4", "w1", "w2"]
    assert got[("setup",)] == ["w0", "w1", "w2", "w3", "w4"]  # sequence alone


@pytest.mark.parametrize("ranks", [("edd",), ("hp", "hp"), ("\ud800",), ("hp",) * 10**5])
def test_unknown_ranks_are_refused_by_the_engine(ranks):
    """A model whose family lists an unknown or repeated rank does not run: InputError."""
    with pytest.raises(InputError, match="rank"):
        simulate(rank_model("hot_first", ranks), SimConfig(days=1))


def test_registered_rule_batch_family_orders_by_priority():
    """A batch family with a registered rule (no ranks of its own) still takes its lots by
    priority, then arrival, as before ranks existed."""
    register_rule("seq_test", lambda lot, tool, now, setup: (lot.seq,))
    steps = [Step(number=1, family="B", per="batch", batch_min=25, batch_max=50, mean=1000.0)]
    wip = [
        WipLot(id=f"w{i}", lot_type="L", product="p", step=1, priority=p)
        for i, p in enumerate([10, 10, 10, 30, 20])
    ]
    m = line(steps, [fam("B", rule="seq_test")], count=0, wip=wip)
    assert started_at(m, "B") == ["w0", "w3", "w4", "w1", "w2"]


# ---- PySCFabSim's rules (docs/whatif.md, "Agreement with PySCFabSim") ------------------------


def test_delay_transport_off_moves_into_and_out_of_delays_at_once():
    """delay_transport=False: no transport into or out of a delay step, the others keep it."""
    steps = [const(1, "A", 100.0), const(2, "Delay_32", 1000.0, is_delay=True),
             const(3, "A", 50.0), const(4, "A", 20.0)]  # fmt: skip
    fams = [fam("A"), fam("Delay_32", count=1, is_delay=True)]
    m = line(steps, fams, interval=10000.0, transport=Dist(kind="constant", mean=30.0))
    for flag, expected in ((True, 100 + 30 + 1000 + 30 + 50 + 30 + 20), (False, 1200.0)):
        res = simulate(m, SimConfig(days=1, delay_transport=flag))
        ct = np.asarray(res.lots.completion) - np.asarray(res.lots.release)
        assert len(ct) > 5 and np.allclose(ct, expected)
        assert np.allclose(np.asarray(res.lots.transport_time), expected - 1170.0)


def _unstarted_line(**kw):
    """B (10 s) then A (100 s, one tool); at 0: x, y, z wait for A (x finds it idle), w for B."""
    wip = [WipLot(id=i, lot_type="L", product="p", step=s, **kw.get(i, {}))
           for i, s in (("x", 2), ("y", 2), ("z", 2), ("w", 1))]  # fmt: skip
    steps = [const(1, "B", 10.0), const(2, "A", 100.0)]
    return line(steps, [fam("A"), fam("B")], count=0, wip=wip)


def _finish_order(m, **cfg):
    res = simulate(m, SimConfig(days=1, **cfg))
    return [(i, round(c)) for c, i in sorted(zip(res.lots.completion, res.lots.id))]


def test_unstarted_last_serves_lots_that_started_a_step_first():
    """unstarted_last: at t=100 A takes w (started a step at B, arrived at 10) before y and z
    (waiting since 0 for their first step of the run); without it arrival order holds."""
    m = _unstarted_line()
    assert _finish_order(m) == [("x", 100), ("y", 200), ("z", 300), ("w", 400)]
    assert _finish_order(m, unstarted_last=True) == [("x", 100), ("w", 200), ("y", 300),
                                                     ("z", 400)]  # fmt: skip


def test_unstarted_last_comes_before_priority():
    """unstarted_last ranks before the family's ranks: a hot lot that has not started a step
    waits behind a regular lot that has (and goes first without the option)."""
    m = _unstarted_line(z={"priority": 20})
    assert _finish_order(m) == [("x", 100), ("z", 200), ("y", 300), ("w", 400)]
    assert _finish_order(m, unstarted_last=True) == [("x", 100), ("w", 200), ("z", 300),
                                                     ("y", 400)]  # fmt: skip


def test_unstarted_last_orders_batches():
    """unstarted_last in a batch family: lots that started a step are taken first (full
    batches of two lots; d, e leave B at 10 and 20; the lot left over waits for a partner)."""
    wip = [WipLot(id=i, lot_type="L", product="p", step=s)
           for i, s in (("a", 2), ("b", 2), ("c", 2), ("d", 1), ("e", 1))]  # fmt: skip
    steps = [const(1, "B", 10.0), Step(number=2, family="A", dist="constant", mean=100.0,
                                       per="batch", batch_min=50, batch_max=50)]  # fmt: skip
    m = line(steps, [fam("A"), fam("B")], count=0, wip=wip)
    # a+b at 0-100; at 100 c (arrived 0, unstarted) with d (started, arrived 10), or d, e
    assert _finish_order(m, batch_wait="max") == [("a", 100), ("b", 100), ("c", 200),
                                                  ("d", 200)]  # fmt: skip
    assert _finish_order(m, batch_wait="max", unstarted_last=True) == [
        ("a", 100), ("b", 100), ("d", 200), ("e", 200)]  # fmt: skip


def _hold_line():
    """I (one tool): step 1 setup X (minimum run 2), step 3 setup Y; B (1000 s) in between.
    At 0: x0, x1 at step 1, y0..y2 at step 3, z1..z4 at step 2 (reach I at 1000..4000)."""
    steps = [const(1, "I", 60.0, setup="X"), const(2, "B", 1000.0),
             const(3, "I", 60.0, setup="Y")]  # fmt: skip
    wip = [WipLot(id=i, lot_type="L", product="p", step=s)
           for i, s in (("x0", 1), ("x1", 1), ("y0", 3), ("y1", 3), ("y2", 3), ("z1", 2),
                        ("z2", 2), ("z3", 2), ("z4", 2))]  # fmt: skip
    return line(steps, [fam("I"), fam("B")], count=0, wip=wip, min_runs={"X": 2},
                setup_times={(None, "X"): 600.0, (None, "Y"): 600.0})  # fmt: skip


def test_min_runs_hold_renews_the_debt_and_refuses_five_times():
    """min_runs="hold": x1's run renews X's debt (2 - 1 lot), so the tool refuses Y at 720
    (x1 done) and at the arrivals 1000..4000 (five refusals), and takes y0 at 5000 (x0
    arrives); "rank": x0's change owes 2 lots, x0 and x1 pay it, y0 starts at 720."""
    m = _hold_line()

    def first_y(rule):
        events, obs = recorder()
        simulate(m, SimConfig(days=1, min_runs=rule), observer=obs)
        return min(t for k, t, f in events if k == "track_in" and f["step"] == 3)

    assert first_y("rank") == 720.0
    assert first_y("hold") == 5000.0


def test_min_runs_hold_tries_every_idle_tool():
    """min_runs="hold": an arrival wakes every idle tool in turn until one starts work: z1
    (setup Y) reaches I at 1000; I#1 (first, owes X after x0) refuses it and I#2 takes it;
    "rank": I#1 takes it."""
    steps = [const(1, "I", 60.0, setup="X"), const(2, "B", 1000.0),
             const(3, "I", 60.0, setup="Y")]  # fmt: skip
    wip = [WipLot(id="x0", lot_type="L", product="p", step=1),
           WipLot(id="z1", lot_type="L", product="p", step=2)]  # fmt: skip
    m = line(steps, [fam("I", count=2), fam("B")], count=0, wip=wip, min_runs={"X": 2},
             setup_times={(None, "X"): 600.0, (None, "Y"): 600.0})  # fmt: skip

    def z1_start(rule):
        events, obs = recorder()
        simulate(m, SimConfig(days=1, min_runs=rule, wake="first"), observer=obs)
        return [(t, f["tool"]) for k, t, f in events if k == "track_in" and f["lot"] == "z1"][1]

    assert z1_start("rank") == (1000.0, "I#1")
    assert z1_start("hold") == (1000.0, "I#2")


def test_min_runs_rule_is_checked():
    """An unknown or hostile min_runs is refused, naming the accepted values."""
    for bad in ("\ud800", "x" * 10**5, None, 7):
        with pytest.raises(ConfigError) as exc:
            SimConfig(days=1, min_runs=bad)
        assert "rank, hold" in str(exc.value)
