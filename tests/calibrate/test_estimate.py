"""Calibration's intervals and estimators on samples and event logs whose truth is known."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tests.calibrate.util import LITHO, T0, Log, litho_runs
from twin.calibrate import MIN_N, CalibrationError, calibrate
from twin.calibrate import stats as st
from twin.process import load_model

MODEL = load_model("scenes/demo-fab/process")


def _cal(log: Log, equipment=LITHO, **kw):
    evs = log.sorted()
    return calibrate(evs, MODEL, equipment, since=evs[0].time, until=evs[-1].time, **kw)


def test_t_interval_closed_form():
    """The t-interval of 1..5 is 3 ± t(0.975, 4) × s / √5 = 3 ± 1.9632."""
    mean, (lo, hi) = st.t_interval([1.0, 2.0, 3.0, 4.0, 5.0])
    assert mean == 3.0
    assert (lo, hi) == pytest.approx((3 - 1.963243, 3 + 1.963243), abs=1e-5)


@pytest.mark.parametrize("complete", [True, False])
def test_exponential_interval_covers_95_percent(complete):
    """The chi-square interval of an exponential mean covers the true mean in ~95 % of samples
    (complete samples: exact; time-truncated: at least 95 %)."""
    rng = np.random.default_rng(7)
    hits = 0
    for _ in range(2000):
        xs = rng.exponential(5.0, size=12)
        if complete:
            _, (lo, hi) = st.exp_mean_interval(12, float(xs.sum()), complete=True)
        else:  # failures within a fixed exposure of 60: a Poisson count
            r = int(rng.poisson(60.0 / 5.0))
            _, (lo, hi) = st.exp_mean_interval(r, 60.0)
        hits += lo <= 5.0 <= hi
    assert (0.935 if complete else 0.945) <= hits / 2000 <= (0.965 if complete else 0.99)


def test_poisson_interval_of_zero_events():
    """No event in a span: rate 0, the interval [0, 3.689 / span] (Garwood)."""
    rate, (lo, hi) = st.poisson_rate_interval(0, 2.0)
    assert rate == 0.0 and lo == 0.0 and hi == pytest.approx(3.68888 / 2.0, abs=1e-4)


def test_clopper_pearson_closed_form_at_the_ends():
    """0 of 10: [0, 1 - 0.025^(1/10)]; 10 of 10: [0.025^(1/10), 1]; no trial: (nan, [0, 1])."""
    rate, ci = st.proportion_interval(0, 10)
    assert rate == 0.0 and ci == pytest.approx((0.0, 1 - 0.025**0.1))
    rate, ci = st.proportion_interval(10, 10)
    assert rate == 1.0 and ci == pytest.approx((0.025**0.1, 1.0))
    rate, ci = st.proportion_interval(0, 0)
    assert math.isnan(rate) and ci == (0.0, 1.0)


def test_processing_time_recovered_without_setup_down_load_unload():
    """Litho runs 15 % slower: the estimate is 1.15 × design (setup, breakdown, load and unload
    taken out), its interval covers it, and it is flagged as drift."""
    cal = _cal(litho_runs(60, 1.15))
    p = cal.by_name()["processing_time:Litho_FE_3"]
    assert p.n == 60 and p.design == 168.0 * 25
    assert p.ci[0] <= 1.15 * p.design <= p.ci[1]
    assert abs(p.estimate / p.design - 1.15) < 0.01
    assert p.drift and not p.thin and p.interval == "t"


def test_unchanged_family_is_not_drift():
    """Runs at the design time give an interval covering the design: no drift."""
    p = _cal(litho_runs(60, 1.0)).by_name()["processing_time:Litho_FE_3"]
    assert p.ci[0] <= p.design <= p.ci[1] and not p.drift


def test_thin_data_keeps_design_and_says_why():
    """Fewer runs than the threshold: flagged thin with the threshold, never drift, factor 1."""
    n = MIN_N["processing_time"] - 1
    p = _cal(litho_runs(n, 1.5)).by_name()["processing_time:Litho_FE_3"]
    assert p.thin and f"at least {MIN_N['processing_time']}" in p.thin and str(n) in p.thin
    assert not p.drift and p.factor == 1.0
    other = _cal(litho_runs(n, 1.5)).by_name()["processing_time:DE_FE_6"]
    assert other.n == 0 and other.thin and math.isnan(other.estimate)


def test_repair_times_from_unscheduled_down_spells():
    """TTR is the mean length of complete unscheduled-down spells; a spell open at the end of
    the window is not a repair; TTF is up time over failures."""
    log = Log()
    for k in range(12):
        t = k * 10_000.0
        log.add(t, "equipment.state", "LITH01", state="standby", reason="idle")
        log.add(t + 5000, "equipment.state", "LITH01", state="unscheduled_down", reason="b")
    log.add(12 * 10_000.0, "equipment.state", "LITH01", state="standby", reason="idle")
    log.add(12 * 10_000.0 + 10, "equipment.state", "LITH01", state="unscheduled_down", reason="b")
    log.add(12 * 10_000.0 + 20, "lot.track_out", "x", equipment="LITH01")
    params = _cal(log).by_name()
    ttr, ttf = params["ttr:Litho_FE_3"], params["ttf:Litho_FE_3"]
    assert ttr.n == 12 and ttr.estimate == pytest.approx(5000.0) and ttr.interval == "chi-square"
    assert ttf.n == 13 and ttf.estimate == pytest.approx((12 * 5000.0 + 10) / 13)


def test_release_rate_per_product():
    """Lots released per day over the window, with Garwood's interval; only model products."""
    log = Log()
    for k in range(40):
        log.add(k * 8640.0, "lot.released", f"A{k}", product="part_A", priority=10)
    log.add(40 * 8640.0, "lot.released", "Z", product="\ud800", priority=10)
    cal = _cal(log)
    p = cal.by_name()["release_rate:part_A"]
    assert p.n == 40 and p.estimate == pytest.approx(40 / (40 * 8640.0 / 86400.0))
    assert p.ci[0] <= p.design <= p.ci[1]
    assert cal.skipped["lots released of products the model lacks"] == 1


def test_equipment_not_in_model_is_one_clear_error():
    """Runs on tools the equipment map puts in a family the model lacks: one error naming the
    tools, the family and the model's families."""
    log = litho_runs(3, 1.0)
    with pytest.raises(CalibrationError, match=r"LITH0.*Stepper_9.*model's families: DE_FE_6"):
        _cal(log, equipment={k: "Stepper_9" for k in LITHO})
    with pytest.raises(CalibrationError, match=r"\(\\ud800\) are not in the equipment catalog"):
        bad = Log()
        bad.add(0, "lot.track_in", "a", equipment="\ud800", step=4)
        bad.add(9, "lot.track_out", "a", equipment="\ud800", step=4)
        _cal(bad)


def test_malformed_event_data_is_counted_not_fatal():
    """Events whose data lack fields or nest deeply are left out and counted, not a crash."""
    log = litho_runs(31, 1.0)
    deep: object = 1
    for _ in range(200):
        deep = [deep]
    log.add(10.0, "lot.track_in", "bad", equipment=deep, step="4")
    log.add(11.0, "lot.track_out", "bad", step=1e300)
    cal = _cal(log)
    malformed = {k: n for k, n in cal.skipped.items() if "lack the fields" in k}
    assert sum(malformed.values()) == 2
    assert cal.by_name()["processing_time:Litho_FE_3"].n == 31


def test_empty_window_is_refused():
    """since >= until: an error naming both."""
    with pytest.raises(CalibrationError, match="not before"):
        calibrate([], MODEL, LITHO, since=T0, until=T0)


def test_uniform_cut_at_zero_has_a_larger_design_mean():
    """A uniform whose spread exceeds its mean is cut at 0 (support 0 .. mean + spread): the
    design value is the mean of that support, so runs drawn from it are not drift."""
    import copy
    import random

    model = copy.deepcopy(MODEL)
    for r in model.routes.values():
        for s in r.steps:
            if s.family == "Litho_FE_3":
                s.spread = 2 * s.mean  # support 0 .. 3 x mean: expected 1.5 x mean
    rng = random.Random(3)
    log = Log()
    for k in range(200):
        log.add(k * 1e5, "lot.released", f"L{k}", product="part_A", priority=10)
        log.add(k * 1e5 + 1, "lot.track_in", f"L{k}", equipment="LITH01", step=4)
        proc = rng.uniform(0, 3 * 168.0) * 25
        log.add(k * 1e5 + 121 + proc, "lot.track_out", f"L{k}", equipment="LITH01", step=4)
    evs = log.sorted()
    cal = calibrate(evs, model, LITHO, since=evs[0].time, until=evs[-1].time)
    p = cal.by_name()["processing_time:Litho_FE_3"]
    assert p.design == pytest.approx(1.5 * 168.0 * 25)
    assert p.ci[0] <= p.design <= p.ci[1] and not p.drift


def test_breakdown_queued_behind_a_pm_or_cut_by_one():
    """A breakdown reported during a PM (repaired after it) is no repair sample; a repair cut
    short by a PM's report is censored: TTR = repair time / complete repairs."""
    log = Log()
    add = log.add
    add(0, "equipment.state", "LITH01", state="standby", reason="idle")
    add(100, "equipment.state", "LITH01", state="unscheduled_down", reason="b")  # complete
    add(1100, "equipment.state", "LITH01", state="standby", reason="ready")
    add(2000, "equipment.state", "LITH01", state="scheduled_down", reason="pm")
    add(3000, "equipment.state", "LITH01", state="unscheduled_down", reason="b")  # queued: out
    add(9000, "equipment.state", "LITH01", state="standby", reason="ready")
    add(10000, "equipment.state", "LITH01", state="unscheduled_down", reason="b")  # censored
    add(10500, "equipment.state", "LITH01", state="scheduled_down", reason="pm")
    add(12000, "equipment.state", "LITH01", state="standby", reason="ready")
    add(12001, "lot.track_out", "x", equipment="LITH01")
    ttr = _cal(log).by_name()["ttr:Litho_FE_3"]
    assert ttr.n == 1 and ttr.estimate == pytest.approx((1000 + 500) / 1)
    ttf = _cal(log).by_name()["ttf:Litho_FE_3"]
    assert ttf.n == 3
