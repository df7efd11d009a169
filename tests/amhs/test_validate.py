"""The fast model against the physics world's OhtSim on SMAT2022 (reduced size).

500 vehicles saturated by random transfers for 30 simulated minutes (10 of warm-up); the issue's
targets: mean transfer time within 5 %, p95 within 10 %, utilisation within 5 points. Where the
model misses a target today the case is an xfail with the figure measured, so that it shows.
"""

from __future__ import annotations

import pytest

from twin.amhs.validate import compare
from twin.scene.load import load_scene

pytestmark = pytest.mark.slow  # two 30-minute OhtSim runs of 500 vehicles

_RUNS: dict[int, dict] = {}


@pytest.fixture(scope="module")
def smat(smat_xlsx):
    return load_scene(smat_xlsx)


def _run(smat, seed):
    if seed not in _RUNS:
        _RUNS[seed] = compare(smat, vehicles=500, seconds=1800.0, warmup=600.0, seed=seed)
    r = _RUNS[seed]
    assert r["physics"]["transfers"] > 500
    return r


@pytest.mark.parametrize("seed", [0, 1])
def test_mean_transfer_time_within_5_percent(smat, seed):
    """Mean transfer time of the fast model within 5 % of the vehicle-level physics."""
    r = _run(smat, seed)
    assert abs(r["mean_rel"]) <= 0.05, r


@pytest.mark.parametrize(
    "seed",
    [
        pytest.param(
            0,
            marks=pytest.mark.xfail(reason="open: p95 is 15 % short (thin tail)", strict=True),
        ),
        pytest.param(
            1,
            marks=pytest.mark.xfail(reason="open: p95 is 11 % short (thin tail)", strict=True),
        ),
    ],
)
def test_p95_transfer_time_within_10_percent(smat, seed):
    """p95 transfer time of the fast model within 10 % of the vehicle-level physics."""
    r = _run(smat, seed)
    assert abs(r["p95_rel"]) <= 0.10, r


@pytest.mark.parametrize(
    "seed",
    [
        pytest.param(0, marks=pytest.mark.xfail(reason="open: 5.1 points low", strict=True)),
        1,
    ],
)
def test_utilisation_within_5_points(smat, seed):
    """Fleet utilisation of the fast model within 5 points of the vehicle-level physics."""
    r = _run(smat, seed)
    assert abs(r["utilisation_points"]) <= 5.0, r
