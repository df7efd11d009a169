"""The reference engine against queueing theory: M/M/1, M/M/c (Erlang C), M/G/1 (Kingman /
Pollaczek-Khinchine) and Little's law, on small models built directly with the dataclasses."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from twin.process.model import Dist, FabModel, Product, Release, Route, Step, ToolFamily
from twin.whatif.reference import SimConfig, simulate

DAY = 86400.0


def station(servers: int, service: Dist, interarrival: float, arrivals: str = "exponential"):
    """One family of ``servers`` tools, one single-step product, Poisson (or constant) arrivals."""
    step = Step(number=1, family="S", dist=service.kind, mean=service.mean, spread=service.spread)
    return FabModel(
        name="station",
        families={"S": ToolFamily(name="S", count=servers, area="A", rule="fifo")},
        products={"p": Product(name="p", route="r")},
        routes={"r": Route(name="r", steps=[step])},
        releases=[
            Release(lot_type="L", product="p", dist=arrivals, interval=interarrival, count=10**9)
        ],
    )


def mean_waits(model, customers: int, reps: int = 5, warm_share: float = 0.1) -> np.ndarray:
    """Mean queue time (s) of each replication, lots completed after the warm-up."""
    rel = model.releases[0].interval
    days = customers * rel / DAY
    out = []
    for r in range(reps):
        cfg = SimConfig(days=days, warmup_days=warm_share * days, seed=11, replication=r)
        res = simulate(model, cfg)
        comp = np.asarray(res.lots.completion)
        q = np.asarray(res.lots.queue_time)[comp >= res.warmup_end]
        out.append(q.mean())
    return np.asarray(out)


def assert_in_ci(samples: np.ndarray, expected: float, level: float = 0.99) -> None:
    """Student-t confidence interval of the replication means must contain ``expected``."""
    n = len(samples)
    half = stats.t.ppf(0.5 + level / 2, n - 1) * samples.std(ddof=1) / math.sqrt(n)
    assert abs(samples.mean() - expected) <= half, (samples.mean(), half, expected)


def erlang_c(c: int, a: float) -> float:
    """Probability of waiting in an M/M/c queue with offered load a = λ/μ."""
    top = a**c / math.factorial(c) * c / (c - a)
    return top / (sum(a**k / math.factorial(k) for k in range(c)) + top)


def test_mm1_waiting_time():
    """M/M/1 at ρ = 0.8: mean wait in queue ρ/(μ - λ) inside the 99 % CI of 5 replications."""
    model = station(1, Dist(kind="exponential", mean=60.0), interarrival=75.0)
    lam, mu = 1 / 75.0, 1 / 60.0
    assert_in_ci(mean_waits(model, 30000), (lam / mu) / (mu - lam))


def test_mmc_erlang_c():
    """M/M/3 at ρ = 0.8: mean wait C(c, a) / (cμ - λ) (Erlang C) inside the 99 % CI."""
    model = station(3, Dist(kind="exponential", mean=60.0), interarrival=25.0)
    lam, mu = 1 / 25.0, 1 / 60.0
    expected = erlang_c(3, lam / mu) / (3 * mu - lam)
    assert_in_ci(mean_waits(model, 30000), expected)


def test_mg1_uniform_kingman():
    """M/U/1 at ρ = 0.8: Kingman's ρ/(1-ρ)·(ca²+cs²)/2·E[S] (exact here, P-K) inside the CI."""
    model = station(1, Dist(kind="uniform", mean=60.0, spread=30.0), interarrival=75.0)
    rho, cs2 = 0.8, (60.0**2 / 12) / 60.0**2  # U(30, 90): variance 60²/12
    assert_in_ci(mean_waits(model, 30000), rho / (1 - rho) * (1 + cs2) / 2 * 60.0)


def test_du1_near_kingman():
    """D/U/1 (constant arrivals) at ρ = 0.95: within 15 % of Kingman (exact in heavy traffic)."""
    model = station(1, Dist(kind="uniform", mean=60.0, spread=60.0), 63.16, "constant")
    rho, cs2 = 60.0 / 63.16, 1 / 3  # U(0, 120): variance 120²/12
    kingman = rho / (1 - rho) * (0 + cs2) / 2 * 60.0
    got = mean_waits(model, 20000, reps=3).mean()
    assert got == pytest.approx(kingman, rel=0.15)


def test_littles_law_per_family_and_fab():
    """L = λ·W per family and for the fab, in a re-entrant two-family line with transport."""
    steps = [
        Step(number=1, family="A", dist="exponential", mean=50.0),
        Step(number=2, family="B", dist="uniform", mean=100.0, spread=40.0),
        Step(number=3, family="A", dist="exponential", mean=50.0),
    ]
    model = FabModel(
        families={
            "A": ToolFamily(name="A", count=2, area="X"),
            "B": ToolFamily(name="B", count=2, area="Y"),
        },
        products={"p": Product(name="p", route="r")},
        routes={"r": Route(name="r", steps=steps)},
        releases=[Release(lot_type="L", product="p", dist="exponential", interval=60, count=10**9)],
        transport=Dist(kind="uniform", mean=30.0, spread=10.0),
    )
    res = simulate(model, SimConfig(days=20.0, warmup_days=2.0, seed=3))
    k = res.kpis()
    for fam in ("A", "B"):
        f = k["families"][fam]
        little = f["departures_per_day"] / DAY * f["mean_sojourn_hours"] * 3600
        assert f["mean_wip"] == pytest.approx(little, rel=0.03)
    fab = k["fab"]
    assert fab["wip_mean"] == pytest.approx(
        fab["throughput_per_day"] * fab["cycle_time_days"], rel=0.03
    )
    # utilisation of B = λ·E[S] / c
    assert k["families"]["B"]["utilisation"] == pytest.approx(100 / 60 / 2, rel=0.03)
