"""The kernel as an engine: the runner and CLI give the reference's JSON, scenarios in one
launch share common random numbers, overflowing tables are reported or grown, device
statistics agree with the per-lot records, HVLM fits the memory budget, queueing theory."""

from __future__ import annotations

import io
import json
import math
from contextlib import redirect_stdout

import numpy as np
import pytest
from models import toy_fab
from scipy import stats

from twin.datasets import PROJECT_ROOT
from twin.errors import ConfigError
from twin.process import load_model
from twin.process.model import FabModel, Product, Release, Route, Step, ToolFamily
from twin.whatif.kernel import CapacityError, bytes_per_replication, simulate_batch
from twin.whatif.kernel.compile import compile_model, stack
from twin.whatif.reference import SimConfig, simulate
from twin.whatif.runner import RunConfig, Serial, run_whatif
from twin.whatif.scenarios import parse_scenarios

DEMO = PROJECT_ROOT / "scenes" / "demo-fab"
DAY = 86400.0
SCENARIOS = """
scenarios:
  - name: faster-litho
    changes:
      - processing_time: {area: Litho, factor: 0.8}
"""


def _strip(doc: dict) -> dict:
    """A what-if JSON without the fields that must differ (engine name, wall time)."""
    doc = json.loads(json.dumps(doc))
    doc.pop("engine")
    doc.pop("wall_seconds")
    for sc in doc["scenarios"].values():
        sc.pop("wall_seconds")
        sc["kpis"].pop("wall_seconds", None)
        sc.get("difference_vs_baseline", {}).pop("wall_seconds", None)
    return doc


def test_runner_json_is_the_references():
    """run_whatif with engine "kernel": the same JSON as the reference (baseline + scenario,
    paired differences included), apart from the engine's name and wall times."""
    model = load_model(DEMO)
    scs = parse_scenarios(SCENARIOS, model=model)
    cfg = RunConfig(days=5, warmup_days=1, replications=3, seed=4)
    ker = run_whatif(model, scs, cfg, engine="kernel", executor=Serial(), progress=False)
    ref = run_whatif(model, scs, cfg, engine="reference", executor=Serial(), progress=False)
    assert ker.engine == "kernel"
    assert _strip(ker.to_json()) == _strip(ref.to_json())


def test_cli_engine_kernel_device_cpu():
    """`twin whatif run ... --engine kernel --device cpu --json` prints the reference's KPIs."""
    from twin.cli import main

    out = {}
    for engine in ("kernel", "reference"):
        buf = io.StringIO()
        args = ["whatif", "run", str(DEMO), "--days", "3", "-r", "2", "--json", "-q",
                "--workers", "1", "--engine", engine]  # fmt: skip
        if engine == "kernel":
            args += ["--device", "cpu"]
        with redirect_stdout(buf):
            assert main(args) == 0
        out[engine] = json.loads(buf.getvalue())
    assert out["kernel"]["engine"] == "kernel"
    assert _strip(out["kernel"]) == _strip(out["reference"])


def test_common_random_numbers_across_scenarios_and_batches():
    """Streams are keyed by (seed, replication, purpose): a scenario copy in the same launch
    and a replication launched alone give identical results; a changed scenario differs."""
    model = toy_fab()
    scenario = parse_scenarios(SCENARIOS, model=model)[-1]
    assert scenario.name == "faster-litho"
    changed = scenario.apply(model)
    cfg = SimConfig(days=4, seed=8)
    a, b, c = simulate_batch([model, model, changed], cfg, [0, 1, 2], device="cpu")
    alone = simulate_batch([model], cfg, [2], device="cpu")[0][0]
    for r in range(3):
        assert a[r].result().lots.completion == b[r].result().lots.completion
    assert alone.result().lots.completion == a[2].result().lots.completion
    assert a[0].result().lots.completion != a[1].result().lots.completion
    assert c[0].result().lots.completion != a[0].result().lots.completion


def test_overflow_is_reported_or_grown():
    """A table too small is detected on the device: without growing, CapacityError names it;
    with growing (the default) the run is redone and agrees with the reference."""
    model = toy_fab()
    cfg = SimConfig(days=3, seed=1)
    for key, table in (("lots", "lot table"), ("heap", "event heap"), ("records", "record")):
        with pytest.raises(CapacityError, match=table):
            simulate_batch([model], cfg, [0], device="cpu", capacity={key: 8}, grow=False)
    kr = simulate_batch([model], cfg, [0], device="cpu", capacity={"lots": 8, "heap": 8})[0][0]
    assert kr.result().lots.completion == simulate(model, cfg).lots.completion


def test_hostile_replications_are_refused():
    """Replication numbers outside SimConfig's range (negative, 2**31 and beyond, not
    integers) are a ConfigError naming them; numpy integers are accepted."""
    model = toy_fab()
    cfg = SimConfig(days=1, seed=2)
    for bad in ([-1], [2**31], [10**40], ["3"], [True], [1.5], ["\ud800"], [[0]]):
        with pytest.raises(ConfigError, match="integer from 0 to 2147483647"):
            simulate_batch([model], cfg, bad, device="cpu")
    kr = simulate_batch([model], cfg, [np.int64(2**31 - 1)], device="cpu")[0][0]
    assert kr.replication == 2**31 - 1
    ref = simulate(model, SimConfig(days=1, seed=2, replication=2**31 - 1))
    assert kr.result().lots.completion == ref.lots.completion


def test_refused_options():
    """Plug-in dispatching rules and per-step records are refused, not silently ignored."""
    model = toy_fab()
    model.families["F"].rule = "my_rule"
    with pytest.raises(ConfigError, match="my_rule"):
        simulate_batch([model], SimConfig(days=1), [0], device="cpu")
    with pytest.raises(ConfigError, match="record_steps"):
        simulate_batch([toy_fab()], SimConfig(days=1, record_steps=True), [0], device="cpu")


def test_device_statistics_agree_with_records():
    """Without per-lot records, the KPIs come from device sums and histograms: counts and
    means equal the record-based ones; p50/p95 lie within one histogram bin of the two cycle
    times the record-based percentile interpolates between."""
    model = load_model(DEMO)
    cfg = SimConfig(days=20, warmup_days=5, seed=2)
    with_rec = simulate_batch([model], cfg, [0], device="cpu")[0][0]
    without = simulate_batch([model], cfg, [0], device="cpu", records=False)[0][0]
    a, b = with_rec.kpis(), without.kpis()
    width = float(with_rec.comp.tables["hist_w"][0])
    res = with_rec.result()
    comp, rel = np.asarray(res.lots.completion), np.asarray(res.lots.release)
    types = np.asarray(res.lots.lot_type, dtype=object)

    def near(lt: str, q: float, value: float) -> bool:
        ct = np.sort((comp - rel)[(types == lt) & (comp >= res.warmup_end)] / 86400.0)
        k = int(q / 100.0 * (len(ct) - 1))  # numpy interpolates between ct[k] and ct[k + 1]
        return ct[k] - width <= value <= ct[min(k + 1, len(ct) - 1)] + width

    assert a["fab"]["lots_completed"] == b["fab"]["lots_completed"] > 0
    assert b["fab"]["cycle_time_days"] == pytest.approx(a["fab"]["cycle_time_days"], rel=1e-12)
    for lt, v in a["lot_types"].items():
        w = b["lot_types"][lt]
        assert w["lots_completed"] == v["lots_completed"]
        if v["lots_completed"]:
            ct, cw = v["cycle_time_days"], w["cycle_time_days"]
            assert cw["mean"] == pytest.approx(ct["mean"], rel=1e-12)
            assert w["on_time_share"] == v["on_time_share"]
            assert near(lt, 50, cw["p50"]) and near(lt, 95, cw["p95"])
    assert a["families"] == b["families"]


def test_hvlm_memory_budget(hvlm):
    """Bytes per replication of HVLM for a year: 10,000 replications fit in 100 GB."""
    model = load_model(hvlm)
    tables, sizes = stack([compile_model(model, SimConfig(days=365))])
    sizes["n_pmw"] = max(1, tables["w_first"].shape[1])
    assert 10_000 * bytes_per_replication(sizes, records=True) < 100e9


def _station(servers: int, mean: float, interarrival: float) -> FabModel:
    step = Step(number=1, family="S", dist="exponential", mean=mean)
    return FabModel(
        families={"S": ToolFamily(name="S", count=servers, area="A", rule="fifo")},
        products={"p": Product(name="p", route="r")},
        routes={"r": Route(name="r", steps=[step])},
        releases=[
            Release(
                lot_type="L", product="p", dist="exponential", interval=interarrival, count=10**9
            )
        ],  # fmt: skip
    )


def _erlang_c(c: int, a: float) -> float:
    top = a**c / math.factorial(c) * c / (c - a)
    return top / (sum(a**k / math.factorial(k) for k in range(c)) + top)


@pytest.mark.parametrize("servers,interarrival", [(1, 75.0), (3, 25.0)], ids=["MM1", "MM3"])
def test_queueing_theory(device, servers, interarrival):
    """M/M/1 and M/M/3 at ρ = 0.8 (service 60 s): the mean wait of 10 replications, run in
    one launch, has the closed form (ρ/(μ-λ), Erlang C) inside its 99 % CI; Little's law."""
    model = _station(servers, 60.0, interarrival)
    days = 25000 * interarrival / DAY
    cfg = SimConfig(days=days, warmup_days=0.1 * days, seed=11)
    runs = simulate_batch([model], cfg, list(range(10)), device=device)[0]
    waits = []
    for kr in runs:
        res = kr.result()
        comp = np.asarray(res.lots.completion)
        waits.append(np.asarray(res.lots.queue_time)[comp >= res.warmup_end].mean())
        f = res.kpis()["families"]["S"]
        little = f["departures_per_day"] / DAY * f["mean_sojourn_hours"] * 3600
        assert f["mean_wip"] == pytest.approx(little, rel=0.03)
    lam, mu = 1 / interarrival, 1 / 60.0
    expected = _erlang_c(servers, lam / mu) / (servers * mu - lam)
    w = np.asarray(waits)
    half = stats.t.ppf(0.995, len(w) - 1) * w.std(ddof=1) / math.sqrt(len(w))
    assert abs(w.mean() - expected) <= half, (w.mean(), half, expected)
