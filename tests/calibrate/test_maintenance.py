"""PM durations and intervals, setup times and cascading runs, on hand-built event logs."""

from __future__ import annotations

import copy
import math

import pytest

from tests.calibrate.util import LITHO, Log
from twin.calibrate import calibrate
from twin.calibrate import stats as st
from twin.process import load_model

MODEL = load_model("scenes/demo-fab/process")
PM_MEAN = 8 * 3600.0  # Litho_FE_3_MN: uniform 8 h ± 1.6 h
IMPLANT = {"IMP01": "Implant_FE_7", "IMP02": "Implant_FE_7"}


def _cal(log: Log, equipment=LITHO, model=MODEL):
    evs = log.sorted()
    return calibrate(evs, model, equipment, since=evs[0].time, until=evs[-1].time)


def _pm_log(durations: list[float], gap: float = 200_000.0) -> Log:
    """PMs round-robin on the three Litho tools, each followed by a return to standby."""
    log = Log()
    for tool in LITHO:
        log.add(0, "equipment.state", tool, state="standby", reason="idle")
    for k, d in enumerate(durations):
        tool = f"LITH0{k % 3 + 1}"
        t = (k + 1) * gap
        log.add(t, "equipment.state", tool, state="scheduled_down", reason="pm")
        log.add(t + d, "equipment.state", tool, state="standby", reason="ready")
    return log


def test_pm_duration_is_the_mean_of_complete_pm_spells():
    """12 PMs of 1.5 x design: pm_duration is their mean with a t-interval covering it, drifted;
    the design is the calendar's expected duration (8 h)."""
    ds = [1.5 * PM_MEAN + 100.0 * k for k in range(12)]
    p = _cal(_pm_log(ds)).by_name()["pm_duration:Litho_FE_3"]
    assert p.design == PM_MEAN and p.n == 12 and p.interval == "t"
    assert p.estimate == pytest.approx(1.5 * PM_MEAN + 550.0)
    assert p.ci == pytest.approx(st.t_interval(ds)[1])
    assert p.ci[0] <= 1.5 * PM_MEAN + 550.0 <= p.ci[1] and p.drift


def test_pm_interval_is_exposure_over_pms():
    """pm_interval = tools x window / PMs begun (chi-square, time-truncated); with the design's
    30 days far from the 12 PMs in ~29 days on 3 tools, it drifts."""
    log = _pm_log([PM_MEAN] * 12)
    evs = log.sorted()
    span = evs[-1].time - evs[0].time
    p = _cal(log).by_name()["pm_interval:Litho_FE_3"]
    assert p.n == 12 and p.estimate == pytest.approx(3 * span / 12)
    assert p.ci == pytest.approx(st.exp_mean_interval(12, 3 * span)[1])
    assert p.design == 30 * 86400.0 and p.drift and p.interval == "chi-square"


def test_pm_cut_by_a_breakdown_or_begun_in_a_repair_is_left_out():
    """A PM spell ended by a breakdown (censored) or begun during a repair (it holds the rest
    of the repair) is no duration sample; both count as PMs begun and in ``skipped``."""
    log = _pm_log([PM_MEAN] * 10)
    t = 3_000_000.0
    log.add(t, "equipment.state", "LITH01", state="scheduled_down", reason="pm")
    log.add(t + 50, "equipment.state", "LITH01", state="unscheduled_down", reason="b")
    log.add(t + 9e5, "equipment.state", "LITH01", state="scheduled_down", reason="PM")
    log.add(t + 9e5 + 1e6, "equipment.state", "LITH01", state="standby", reason="ready")
    cal = _cal(log)
    p, q = cal.by_name()["pm_duration:Litho_FE_3"], cal.by_name()["pm_interval:Litho_FE_3"]
    assert p.n == 10 and p.estimate == pytest.approx(PM_MEAN) and not p.drift
    assert q.n == 12
    assert cal.skipped["PM spells cut short by a breakdown (censored)"] == 1
    assert cal.skipped["PM spells begun during a repair (they hold its rest)"] == 1


def test_few_pms_keep_the_design_value():
    """9 PMs (< 10): thin, factor 1, never drift."""
    p = _cal(_pm_log([2 * PM_MEAN] * 9)).by_name()["pm_duration:Litho_FE_3"]
    assert p.thin and "at least 10" in p.thin and not p.drift and p.factor == 1.0


def _setup_log(durations: list[float], product: str = "part_A") -> Log:
    """Implant runs on two tools, each beginning with a setup of the given length (steps 7, 17,
    27 in turn: SU_L1, SU_L2, SU_L3, 1,800 s from any setup), then 600 s of work."""
    log = Log()
    t = 0.0
    for k, d in enumerate(durations):
        lot, tool, step = f"S{k}", f"IMP0{k % 2 + 1}", (7, 17, 27)[k % 3]
        log.add(t, "lot.released", lot, product=product, priority=10)
        log.add(t + 1, "lot.track_in", lot, equipment=tool, step=step)
        log.add(t + 1, "equipment.state", tool, state="scheduled_down", reason="setup")
        # E10 as the emulator reports the end of a setup: through standby into production
        log.add(t + 1 + d, "equipment.state", tool, state="standby", reason="ready")
        log.add(t + 1 + d, "equipment.state", tool, state="productive", reason="processing")
        log.add(t + 601 + d, "lot.track_out", lot, equipment=tool, step=step)
        log.add(t + 601 + d, "equipment.state", tool, state="standby", reason="idle")
        t += 5000.0
    return log


def test_setup_time_is_the_mean_ratio_to_the_design_setup():
    """12 setups of 1.2 x the 1,800 s design: estimate 2,160 s + the mean offset, t-interval
    on the ratios, drifted."""
    ds = [1.2 * 1800.0 + 10.0 * k for k in range(12)]
    p = _cal(_setup_log(ds), IMPLANT).by_name()["setup_time:Implant_FE_7"]
    assert p.design == 1800.0 and p.n == 12
    assert p.estimate == pytest.approx(1.2 * 1800.0 + 55.0)
    lo, hi = st.t_interval([d / 1800.0 for d in ds])[1]
    assert p.ci == pytest.approx((lo * 1800.0, hi * 1800.0)) and p.drift


def test_setup_cut_by_a_down_is_left_out():
    """A setup spell ended by a breakdown is no sample (counted in ``skipped``)."""
    log = _setup_log([1800.0] * 11)
    log.add(80_000, "lot.released", "X", product="part_A", priority=10)
    log.add(80_001, "lot.track_in", "X", equipment="IMP01", step=7)
    log.add(80_001, "equipment.state", "IMP01", state="scheduled_down", reason="setup")
    log.add(80_500, "equipment.state", "IMP01", state="unscheduled_down", reason="b")
    cal = _cal(log, IMPLANT)
    p = cal.by_name()["setup_time:Implant_FE_7"]
    assert p.n == 11 and not p.drift
    assert cal.skipped["setups cut short by a down or the next run, or still open"] == 1


def test_setup_pairs_of_a_from_to_table():
    """With a from-to entry (SU_L1 -> SU_L2: 600 s), the pair has its own parameter; the first
    setup on each tool (previous setup unknown) is left out when its target has pairs."""
    model = copy.deepcopy(MODEL)
    model.setup_times[("SU_L1", "SU_L2")] = 600.0
    log = Log()
    t = 0.0
    for k in range(24):  # alternate SU_L1 (step 7) and SU_L2 (step 17) on one tool
        lot, step = f"P{k}", (7 if k % 2 == 0 else 17)
        d = 1800.0 if step == 7 else 900.0  # the pair runs 1.5 x its 600 s
        log.add(t, "lot.released", lot, product="part_A", priority=10)
        log.add(t + 1, "lot.track_in", lot, equipment="IMP01", step=step)
        log.add(t + 1, "equipment.state", "IMP01", state="scheduled_down", reason="setup")
        log.add(t + 1 + d, "equipment.state", "IMP01", state="productive", reason="processing")
        log.add(t + 601 + d, "lot.track_out", lot, equipment="IMP01", step=step)
        t += 5000.0
    params = _cal(log, IMPLANT, model).by_name()
    pair = params["setup_time:Implant_FE_7/SU_L1>SU_L2"]
    assert pair.n == 12 and pair.design == 600.0 and pair.estimate == pytest.approx(900.0)
    assert pair.drift and pair.key == ("SU_L1", "SU_L2")
    fam = params["setup_time:Implant_FE_7"]
    assert fam.n == 24  # the first SU_L1 has no pair entry: its design is 1,800 from any


def test_cascading_runs_are_measured_without_the_next_runs_setup():
    """On a cascading tool (capacity 2, part interval), a run's processing is out - in - its
    own setup - load/unload - part interval x (wafers - 1); another run's setup reported while
    it processes is not taken out. 40 runs at 1.25 x design are recovered."""
    model = copy.deepcopy(MODEL)
    model.families["Litho_FE_3"].capacity = 2
    for r in model.routes.values():
        for s in r.steps:
            if s.family == "Litho_FE_3":
                s.part_interval = 10.0
    first = 168.0  # s, per-piece PTIME: the first wafer; the other 24 add 10 s each
    log = Log()
    t = 0.0
    for k in range(40):
        lot = f"C{k}"
        log.add(t, "lot.released", lot, product="part_A", priority=10)
        log.add(t + 1, "lot.track_in", lot, equipment="LITH01", step=4)
        log.add(t + 1, "equipment.state", "LITH01", state="productive", reason="processing")
        end = t + 1 + 120 + 1.25 * first + 240.0
        # the next run's setup, reported while this one still processes
        log.add(end - 100, "equipment.state", "LITH01", state="scheduled_down", reason="setup")
        log.add(end - 50, "equipment.state", "LITH01", state="productive", reason="processing")
        log.add(end, "lot.track_out", lot, equipment="LITH01", step=4)
        t = end + 10
    cal = _cal(log, LITHO, model)
    p = cal.by_name()["processing_time:Litho_FE_3"]
    assert p.n == 40 and p.design == pytest.approx(first)
    assert p.estimate == pytest.approx(1.25 * first) and p.drift


def test_no_pm_parameters_for_families_without_pm_calendars():
    """Only families with a PM calendar get pm_* parameters; families with setups get setup_time."""
    names = set(_cal(_pm_log([PM_MEAN] * 3)).by_name())
    assert {n for n in names if n.startswith("pm_")} == {
        "pm_duration:Litho_FE_3", "pm_interval:Litho_FE_3",
        "pm_duration:Diffusion_FE_1", "pm_interval:Diffusion_FE_1",
    }  # fmt: skip
    assert {n for n in names if n.startswith("setup_time")} == {"setup_time:Implant_FE_7"}
    assert all(math.isfinite(p.design) for p in _cal(_pm_log([PM_MEAN])).parameters
               if p.kind != "transport")  # fmt: skip


def test_run_whose_setup_a_down_interrupted_is_left_out():
    """After a down that hits a setup, the rest of the setup is reported as productive: that
    run is no processing sample (counted in ``skipped``); the others are."""
    log = _setup_log([1800.0] * 12)
    log.add(90_000, "lot.released", "X", product="part_A", priority=10)
    log.add(90_001, "lot.track_in", "X", equipment="IMP01", step=27)
    log.add(90_001, "equipment.state", "IMP01", state="scheduled_down", reason="setup")
    log.add(90_500, "equipment.state", "IMP01", state="unscheduled_down", reason="b")
    log.add(91_500, "equipment.state", "IMP01", state="standby", reason="ready")
    log.add(91_500, "equipment.state", "IMP01", state="productive", reason="processing")
    log.add(93_400, "lot.track_out", "X", equipment="IMP01", step=27)
    cal = _cal(log, IMPLANT)
    assert cal.by_name()["processing_time:Implant_FE_7"].n == 12
    assert cal.skipped["runs whose setup a down interrupted"] == 1
