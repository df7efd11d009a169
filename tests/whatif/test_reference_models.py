"""The reference engine on real process models: the demo fab and SMT2020 HVLM (slow)."""

from __future__ import annotations

from pathlib import Path

import pytest

from twin.datasets import PROJECT_ROOT
from twin.process import load_model
from twin.whatif.reference import SimConfig, simulate

DEMO = PROJECT_ROOT / "scenes" / "demo-fab"


def _release_rate(model) -> float:
    return sum(r.rate_per_day for r in model.releases)


def test_demo_fab_steady_state():
    """Demo fab: throughput equals the release rate after warm-up; Little's law for the fab."""
    if not (Path(DEMO) / "process" / "part.txt").exists():
        pytest.skip("scenes/demo-fab has no process model")
    model = load_model(DEMO)
    res = simulate(model, SimConfig(days=60, warmup_days=10, seed=1))
    k = res.kpis()
    fab = k["fab"]
    assert fab["throughput_per_day"] == pytest.approx(_release_rate(model), rel=0.05)
    assert fab["wip_mean"] == pytest.approx(
        fab["throughput_per_day"] * fab["cycle_time_days"], rel=0.05
    )
    for lt, v in k["lot_types"].items():
        assert v["x_factor"] > 1.0, lt  # waiting and transport on top of raw processing


@pytest.mark.slow
def test_hvlm_sanity(hvlm):
    """HVLM 60 days from the initial WIP: throughput near the release rate after 30 days,
    litho near saturation, hot lots faster than regular ones, WIP stable."""
    model = load_model(hvlm)
    res = simulate(model, SimConfig(days=60, warmup_days=30, seed=0))
    k = res.kpis()
    rate = _release_rate(model)
    assert k["fab"]["throughput_per_day"] == pytest.approx(rate, rel=0.1)
    litho = [v for v in k["families"].values() if v["area"] == "Litho"]
    busiest = max(v["utilisation"] + v["down_share"] + v["pm_share"] for v in litho)
    assert busiest > 0.85
    assert all(v["utilisation"] <= 1.0 + 1e-9 for v in k["families"].values())
    lt = k["lot_types"]
    # hot lots released after time 0 overtake the initial regular WIP: smaller X-factor
    assert lt["HotLot_4"]["x_factor"] < lt["Lot_4"]["x_factor"]
    assert 0.8 * len(model.wip) < k["fab"]["wip_end"] < 1.6 * len(model.wip)
    assert k["queue_time_checks"] > 0
    assert k["events"] > 1_000_000
