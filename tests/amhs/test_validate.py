"""The fast model against the physics world's OhtSim on SMAT2022 (reduced size).

500 vehicles saturated by random transfers for 2 simulated hours (20 minutes of warm-up), seeds
0 and 1; the issue's targets: mean transfer time within 5 %, p95 within 10 %, utilisation within
5 points. Measured with the default AmhsConfig (docs/amhs.md): seed 0 +3.0 %, -4.8 %, +0.8
points; seed 1 +3.8 %, -2.1 %, +1.9 points.
"""

from __future__ import annotations

import pytest

from twin.amhs.model import AmhsConfig
from twin.amhs.validate import compare
from twin.scene.load import load_scene

pytestmark = pytest.mark.slow  # two 2-hour OhtSim runs of 500 vehicles (about 15 CPU s each)

_RUNS: dict[int, dict] = {}


@pytest.fixture(scope="module")
def smat(smat_xlsx):
    return load_scene(smat_xlsx)


def _run(smat, seed):
    if seed not in _RUNS:
        _RUNS[seed] = compare(smat, vehicles=500, seconds=7200.0, warmup=1200.0, seed=seed)
    r = _RUNS[seed]
    assert r["physics"]["transfers"] > 5000
    return r


@pytest.mark.parametrize("seed", [0, 1])
def test_mean_transfer_time_within_5_percent(smat, seed):
    """Mean transfer time of the fast model within 5 % of the vehicle-level physics."""
    r = _run(smat, seed)
    assert abs(r["mean_rel"]) <= 0.05, r


@pytest.mark.parametrize("seed", [0, 1])
def test_p95_transfer_time_within_10_percent(smat, seed):
    """p95 transfer time of the fast model within 10 % of the vehicle-level physics."""
    r = _run(smat, seed)
    assert abs(r["p95_rel"]) <= 0.10, r


@pytest.mark.parametrize("seed", [0, 1])
def test_utilisation_within_5_points(smat, seed):
    """Fleet utilisation of the fast model within 5 points of the vehicle-level physics."""
    r = _run(smat, seed)
    assert abs(r["utilisation_points"]) <= 5.0, r


def test_merge_queues_carry_the_tail(smat):
    """Without the merge queues (merge_headway 0) the p95 misses by more than 10 %: they matter."""
    r = compare(
        smat,
        vehicles=500,
        seconds=1800.0,
        warmup=600.0,
        seed=0,
        config=AmhsConfig(merge_headway=0.0),
    )
    assert r["p95_rel"] < -0.10, r
