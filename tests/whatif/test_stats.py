"""Replication statistics against scipy.stats and against the CRN property."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats as sps

from twin.whatif.stats import (
    estimate,
    flatten_kpis,
    flatten_series,
    mser5,
    paired_difference,
    summarize,
    summarize_differences,
    truncate_warmup,
    unflatten,
    welch_difference,
)

finite = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False, allow_infinity=False)


@settings(max_examples=60, deadline=None)
@given(st.lists(finite, min_size=2, max_size=40), st.sampled_from([0.9, 0.95, 0.99]))
def test_estimate_matches_scipy_t_interval(xs, confidence):
    """The CI is scipy's Student-t interval of the mean at the same confidence."""
    e = estimate(xs, confidence)
    x = np.asarray(xs)
    sem = sps.sem(x)
    assert e.n == len(xs)
    assert e.mean == pytest.approx(x.mean(), rel=1e-12, abs=1e-9)
    if sem == 0:
        assert e.half_width == pytest.approx(0.0, abs=1e-9)
        return
    lo, hi = sps.t.interval(confidence, len(xs) - 1, loc=x.mean(), scale=sem)
    assert e.low == pytest.approx(lo, rel=1e-9, abs=1e-6)
    assert e.high == pytest.approx(hi, rel=1e-9, abs=1e-6)


def test_estimate_skips_nan_and_reports_missing_spread():
    """NaN replications are left out; one value has no interval; none has no mean."""
    e = estimate([1.0, math.nan, 3.0])
    assert (e.n, e.mean) == (2, 2.0)
    assert math.isnan(estimate([5.0]).half_width) and estimate([5.0]).mean == 5.0
    assert estimate([]).n == 0 and math.isnan(estimate([]).mean)
    assert estimate([5.0]).to_dict()["ci"] == [None, None]


def test_paired_difference_matches_scipy_paired_t_test():
    """The paired CI excludes zero exactly when scipy's paired t-test rejects at 5 %."""
    rng = np.random.default_rng(7)
    for shift in (0.0, 0.05, 0.2, 1.0):
        base = rng.normal(10, 2, size=12)
        other = base + shift + rng.normal(0, 0.3, size=12)
        d = paired_difference(other, base)
        p = sps.ttest_rel(other, base).pvalue
        assert d.excludes_zero() == (p < 0.05)
        assert d.mean == pytest.approx(float(np.mean(other - base)))


def test_welch_difference_matches_scipy_welch_test():
    """The unpaired CI is Welch's: it excludes zero exactly when scipy's Welch test rejects."""
    rng = np.random.default_rng(11)
    for shift in (0.0, 0.5, 2.0):
        a = rng.normal(5 + shift, 1.0, size=8)
        b = rng.normal(5, 3.0, size=15)
        d = welch_difference(a, b)
        p = sps.ttest_ind(a, b, equal_var=False).pvalue
        assert d.excludes_zero() == (p < 0.05)


def test_paired_ci_narrower_than_unpaired_under_common_random_numbers():
    """With shared streams, the paired CI of a difference is much narrower than Welch's."""
    # Replication r of both "scenarios" averages the same 200 service draws; the scenario
    # scales them by 1.03: the two outputs are strongly correlated, as CRN makes them.
    rng = np.random.default_rng(3)
    streams = rng.exponential(1.0, size=(20, 200))
    base = streams.mean(axis=1)
    faster = (streams * 1.03).mean(axis=1)
    paired = paired_difference(faster, base)
    unpaired = welch_difference(faster, base)
    assert paired.half_width < 0.5 * unpaired.half_width
    assert paired.excludes_zero() and not unpaired.excludes_zero()


def test_paired_difference_rejects_unequal_replications():
    """Pairing is by replication index: different counts are an error, not a silent cut."""
    with pytest.raises(ValueError, match="one value per replication"):
        paired_difference([1.0, 2.0], [1.0])


def test_flatten_round_trips_and_skips_non_numbers():
    """Nested KPI dicts flatten to dotted numeric leaves and unflatten back."""
    kpis = {
        "lot_types": {"Lot_3": {"cycle_time_days": {"mean": 60.0, "p95": 70}, "name": "x"}},
        "events": 12,
        "ok": True,
        "missing": None,
    }
    flat = flatten_kpis(kpis)
    assert flat["lot_types.Lot_3.cycle_time_days.mean"] == 60.0
    assert flat["events"] == 12.0 and math.isnan(flat["missing"])
    assert "ok" not in flat and "lot_types.Lot_3.name" not in flat
    assert unflatten(flat)["lot_types"]["Lot_3"]["cycle_time_days"]["p95"] == 70.0


def test_summaries_over_replications():
    """summarize/summarize_differences compute one estimate per KPI key."""
    reps = [{"a": 1.0, "b": 2.0}, {"a": 3.0, "b": 2.0}]
    base = [{"a": 0.0, "b": 2.0}, {"a": 2.0, "b": 2.0}]
    s = summarize(reps)
    assert s["a"].mean == 2.0 and s["b"].half_width == 0.0
    d = summarize_differences(reps, base)
    assert d["a"].mean == 1.0 and d["a"].half_width == 0.0 and d["b"].mean == 0.0


def test_truncate_warmup_keeps_observations_from_the_warmup_on():
    """Observations before the warm-up time are deleted; the rest are kept in order."""
    t, v = truncate_warmup([0, 1, 2, 3], [10, 11, 12, 13], warmup=2)
    assert t.tolist() == [2, 3] and v.tolist() == [12, 13]


def test_mser5_finds_an_initial_transient():
    """MSER-5 deletes (about) the transient of a series that starts far from steady state."""
    rng = np.random.default_rng(5)
    transient = np.linspace(50, 10, 200)  # decays into steady state at 10
    steady = 10 + rng.normal(0, 1, size=1800)
    cut = mser5(np.concatenate([transient, steady]))
    assert 150 <= cut <= 400
    assert mser5(10 + rng.normal(0, 1, size=1000)) < 250  # stationary: little to delete


def test_flatten_series_keeps_numeric_lists_only():
    """Time series (lists of numbers) are collected by dotted path; other leaves are not."""
    kpis = {"wip": {"times_days": [0, 1], "lots": [3, 4]}, "names": ["a"], "n": 1}
    assert flatten_series(kpis) == {"wip.times_days": [0.0, 1.0], "wip.lots": [3.0, 4.0]}
