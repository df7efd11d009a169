"""Replications × scenarios: CRN pairing, executors, engine registry, result export.

The engine here is a small but real one (an M/M/1 station by Lindley's recursion) so that the
runner can be checked against queueing theory without the reference engine.
"""

from __future__ import annotations

import csv
import json
import math

import numpy as np
import pytest

from twin.errors import ConfigError, TwinError
from twin.process.model import FabModel, Product, Release, Route, Step, ToolFamily
from twin.whatif.runner import (
    LocalProcessPool,
    Replication,
    RunConfig,
    Serial,
    WhatIfResult,
    get_engine,
    run_whatif,
)
from twin.whatif.scenarios import parse_scenarios

H = 3600.0


class LindleyEngine:
    """M/M/1: exponential inter-releases (mean = release interval) and service (mean = step 1);
    customers' sojourn by Lindley's recursion; streams keyed by (seed, replication)."""

    name = "lindley"
    batch_size = 2

    def run(self, model, replications, config, start=None):
        out = []
        rel = model.releases[0]
        service = model.routes["r"].steps[0].mean
        n = int(config.days * 86400 / rel.interval)
        for r in replications:
            arrivals = np.random.default_rng([config.seed, r, 1]).exponential(1.0, n) * rel.interval
            # service draws scale with the mean: the same uniforms under every scenario (CRN)
            services = np.random.default_rng([config.seed, r, 2]).exponential(1.0, n) * service
            wait, total = 0.0, np.empty(n)
            for i in range(n):
                if i:
                    wait = max(0.0, wait + services[i - 1] - arrivals[i])
                total[i] = wait + services[i]
            keep = total[int(n * config.warmup_days / config.days) :]
            out.append(
                Replication(
                    scenario=model.name,
                    replication=r,
                    kpis={"lot_types.Lot.cycle_time_days.mean": keep.mean() / 86400},
                    events=2 * n,
                )
            )
        return out


def mm1_model(rho: float = 0.5) -> FabModel:
    """One tool, one step of 1 h mean, releases every 1/rho h."""
    return FabModel(
        name="mm1",
        families={"T": ToolFamily(name="T", count=1, area="A")},
        products={"p": Product(name="p", route="r")},
        routes={"r": Route(name="r", steps=[Step(number=1, family="T", mean=H)])},
        releases=[Release(lot_type="Lot", product="p", interval=H / rho, count=10**9)],
    )


SCENARIOS = """
scenarios:
  - name: faster
    changes:
      - processing_time: {family: T, factor: 0.9}
"""
KEY = "lot_types.Lot.cycle_time_days.mean"


def run(executor, replications=8, days=200.0):
    model = mm1_model()
    cfg = RunConfig(days=days, warmup_days=10, replications=replications, seed=3)
    scs = parse_scenarios(SCENARIOS, model=model)
    return run_whatif(model, scs, cfg, engine=LindleyEngine(), executor=executor, progress=False)


def test_baseline_matches_mm1_closed_form_and_crn_tightens_the_difference():
    """Baseline sojourn ≈ 1/(μ−λ) within its CI; the paired CI is tighter than the spread."""
    res = run(Serial())
    base = res.estimates("baseline")[KEY]
    assert base.n == 8
    assert base.contains(2 * H / 86400)  # W = 1/(μ-λ) = 2 h at ρ = 0.5
    diff = res.differences("faster")[KEY]
    exact = (1 / (1 / 0.9 - 0.5) - 2) * H / 86400  # 0.9 h service: W = 1/(1/0.9 − 0.5) h
    assert diff.contains(exact)
    assert diff.excludes_zero() and diff.mean < 0
    assert diff.half_width < 0.5 * base.half_width


def test_process_pool_gives_the_serial_results():
    """The process pool runs the same replications as in-process: identical numbers."""
    a, b = run(Serial(), replications=4, days=60), run(LocalProcessPool(workers=2), 4, 60)
    for name in ("baseline", "faster"):
        assert [r.kpis for r in a.replications[name]] == [r.kpis for r in b.replications[name]]
        assert [r.replication for r in b.replications[name]] == [0, 1, 2, 3]


def test_json_and_csv_exports(tmp_path):
    """JSON nests estimates like the KPIs (mean, ci) and has differences; CSV has every KPI."""
    res = run(Serial(), replications=3, days=30)
    doc = json.loads(json.dumps(res.to_json()))
    ct = doc["scenarios"]["baseline"]["kpis"]["lot_types"]["Lot"]["cycle_time_days"]
    assert ct["ci"][0] < ct["mean"] < ct["ci"][1] and ct["n"] == 3
    d = doc["scenarios"]["faster"]["difference_vs_baseline"]["lot_types"]["Lot"]
    assert d["cycle_time_days"]["mean"] < 0
    assert doc["events"] == res.events > 0 and doc["replications"] == 3
    assert doc["scenarios"]["faster"]["changes"] == ["processing time of T × 0.9"]
    res.write_csv(tmp_path / "r.csv")
    rows = list(csv.DictReader(open(tmp_path / "r.csv")))
    assert {(r["scenario"], r["kpi"]) for r in rows} == {("baseline", KEY), ("faster", KEY)}
    assert all(r["ci_low"] and r["ci_low"] != "nan" for r in rows)
    faster = next(r for r in rows if r["scenario"] == "faster")
    assert float(faster["diff_mean"]) == pytest.approx(d["cycle_time_days"]["mean"])


def test_engine_registry_refuses_planned_and_unknown_engines(monkeypatch):
    """Absent planned engines are 'not implemented yet', unknown ones list the available."""
    from twin.whatif import runner

    monkeypatch.setitem(
        runner._PLANNED, "warp9", ("twin.whatif.no_such_engine", "warp9 is not implemented yet")
    )
    with pytest.raises(TwinError, match="engine 'warp9': warp9 is not implemented yet"):
        get_engine("warp9")
    with pytest.raises(TwinError, match="unknown engine 'nope'.*reference"):
        get_engine("nope")
    with pytest.raises(TwinError, match="CPU only"):
        get_engine("reference", device="cuda:0")
    monkeypatch.setitem(runner._ENGINES, "lindley", LindleyEngine)
    assert get_engine("lindley").name == "lindley"
    with pytest.raises(TwinError, match="does not take"):
        get_engine("lindley", device="cpu")


def test_run_config_lists_every_problem():
    """A bad RunConfig raises one error naming each problem."""
    with pytest.raises(ConfigError) as err:
        RunConfig(days=0, warmup_days=-1, replications=0, seed=-1).validate()
    assert len(err.value.problems) == 4


def test_missing_values_do_not_count_as_zero():
    """NaN replications are left out, not zeros; no value at all is empty CSV / null JSON."""
    res = run(Serial(), replications=3, days=30)
    res.replications["baseline"][0].kpis[KEY] = math.nan
    assert res.estimates("baseline")[KEY].n == 2
    for r in res.replications["baseline"]:
        r.kpis["none"] = math.nan
    row = next(r for r in res.csv_rows() if r["kpi"] == "none")
    assert (row["mean"], row["ci_low"], row["n"]) == ("", "", 0)
    assert res.to_json()["scenarios"]["baseline"]["kpis"]["none"]["mean"] is None


def test_suggested_warmup_from_the_baseline_wip_series():
    """MSER-5 on the mean fab WIP over replications finds the end of a filling transient."""
    rng = np.random.default_rng(1)
    days = np.arange(200.0)
    reps = []
    for r in range(4):
        wip = np.minimum(days * 10, 400) + rng.normal(0, 5, days.size)  # fills in 40 days
        series = {"wip.lots": wip.tolist(), "wip.times_days": days.tolist()}
        reps.append(Replication(scenario="baseline", replication=r, kpis={}, series=series))
    res = WhatIfResult(
        model="m",
        engine="e",
        config=RunConfig(days=200),
        scenarios=parse_scenarios(""),
        replications={"baseline": reps},
        wall_seconds=0.0,
    )
    assert 35 <= res.suggested_warmup_days() <= 60
    assert res.to_json()["warmup_mser5_days"] == res.suggested_warmup_days()


class FailingEngine(LindleyEngine):
    """Rejects the model the way a real engine does: with an InputError listing problems."""

    def run(self, model, replications, config, start=None):
        from twin.errors import InputError

        raise InputError(f"process model {model.name}", ["family T: count 0 must be >= 1"])


def test_engine_errors_in_workers_reach_the_caller_readably():
    """A TwinError raised in a worker process arrives as a TwinError with its message."""
    cfg = RunConfig(days=5, replications=2)
    with pytest.raises(TwinError, match="family T: count 0 must be >= 1"):
        run_whatif(
            mm1_model(),
            None,
            cfg,
            engine=FailingEngine(),
            progress=False,
            executor=LocalProcessPool(workers=2),
        )


def test_scenarios_built_in_code_are_checked_before_running():
    """run_whatif refuses duplicate names and changes that do not fit the model, up front."""
    from twin.errors import InputError
    from twin.whatif.scenarios import Scenario, Select, ToolCount

    bad = Scenario(name="x", changes=(ToolCount(select=Select(families=("Q",)), add=1),))
    with pytest.raises(InputError) as err:
        run_whatif(
            mm1_model(),
            [bad, bad],
            RunConfig(days=5),
            engine=LindleyEngine(),
            executor=Serial(),
            progress=False,
        )
    msg = str(err.value)
    assert "scenario name 'x' is used twice" in msg and "unknown family 'Q'" in msg


def test_progress_reaches_the_caller_from_worker_processes():
    """Within-replication progress from the reference engine arrives from the pool, rising."""
    from twin.datasets import PROJECT_ROOT
    from twin.process import load_model
    from twin.whatif.runner import Job, WorkItem

    model = load_model(PROJECT_ROOT / "scenes" / "demo-fab")
    job = Job(
        base=model,
        scenarios=parse_scenarios(""),
        engine=get_engine("reference"),
        config=RunConfig(days=20, replications=2),
    )
    heard: list[tuple[int, int, float]] = []
    items = [WorkItem(0, (0,)), WorkItem(0, (1,))]
    done = list(LocalProcessPool(workers=2).map(job, items, lambda *a: heard.append(a)))
    assert sorted(r.replication for reps in done for r in reps) == [0, 1]
    for rep in (0, 1):
        fr = [f for s, r, f in heard if r == rep]
        assert len(fr) >= 10 and fr == sorted(fr) and fr[-1] > 0.9


def test_crn_makes_paired_intervals_tighter_on_the_reference_engine():
    """Demo fab, 5 % faster litho: the paired (CRN) CI is narrower than Welch's unpaired CI."""
    from twin.datasets import PROJECT_ROOT
    from twin.process import load_model
    from twin.whatif.stats import welch_difference

    model = load_model(PROJECT_ROOT / "scenes" / "demo-fab")
    text = (
        "scenarios:\n  - name: f\n    changes:\n"
        "      - processing_time: {family: Litho_FE_3, factor: 0.95}\n"
    )
    res = run_whatif(
        model,
        parse_scenarios(text, model=model),
        RunConfig(days=30, warmup_days=10, replications=5),
        progress=False,
        executor=LocalProcessPool(workers=2),
    )
    key = "families.Litho_FE_3.mean_queue_hours"
    a = [r.kpis[key] for r in res.replications["f"]]
    b = [r.kpis[key] for r in res.replications["baseline"]]
    paired, welch = res.differences("f")[key], welch_difference(a, b)
    assert paired.mean == pytest.approx(welch.mean)
    assert paired.mean < 0 and paired.excludes_zero()
    assert paired.half_width < welch.half_width


# --- rule presets ----------------------------------------------------------------------------


class SpyEngine(LindleyEngine):
    """Records the options and the model's spread mode each call was given."""

    seen: list = []

    def run(self, model, replications, config, start=None):
        SpyEngine.seen.append((dict(config.options), model.ptime_spread_mode))
        return super().run(model, replications, config, start)


def test_engines_get_every_option_of_the_rules_and_their_spread():
    """The engine is given every SimConfig option of the preset with the run's options on top,
    and a model with the preset's spread; the base model keeps its own; JSON records them."""
    from twin.whatif import presets

    model = mm1_model()
    SpyEngine.seen = []
    cfg = RunConfig(days=20, replications=2, rules="pyscfabsim", options={"transport": False})
    res = run_whatif(model, None, cfg, engine=SpyEngine(), executor=Serial(), progress=False)
    options, spread = SpyEngine.seen[0]
    assert options == {**presets.sim_options("pyscfabsim"), "transport": False}
    assert spread == "half" and model.ptime_spread_mode == "full"
    rules = json.loads(json.dumps(res.to_json()))["rules"]
    assert rules == {
        "preset": "pyscfabsim",
        "chosen_by": "given",
        "options": {**presets.PRESETS["pyscfabsim"].options, "transport": False},
        "overrides": {"transport": False},
    }
    # a RuleSet resolved by the caller keeps how it was chosen; options still go on top
    chosen = presets.resolve("smt2020", {"wake": "recent"}, chosen_by="--rules")
    cfg = RunConfig(days=20, replications=1, rules=chosen, options={"pms": False})
    got = run_whatif(model, None, cfg, engine=SpyEngine(), executor=Serial(), progress=False)
    assert got.to_json()["rules"]["chosen_by"] == "--rules"
    assert got.rule_set.overrides == {"wake": "recent", "pms": False}


def test_run_config_refuses_bad_rules_with_its_other_problems():
    """An unknown preset and bad rule option values are listed with the run's other problems;
    an option no preset knows passes through to the engine, which refuses it."""
    with pytest.raises(ConfigError) as err:
        RunConfig(
            days=0, rules="nope", options={"wake": "\ud800", "transport": 1, "spread": 2.0}
        ).validate()
    text = "\n".join(err.value.problems)
    assert len(err.value.problems) == 5 and "days 0" in text
    assert "rules 'nope': unknown rule preset; accepted: twin, pyscfabsim, smt2020" in text
    assert "options.wake = '\\ud800': accepted recent, first" in text
    assert "options.spread = 2.0: accepted full, half" in text
    cfg = RunConfig(days=1, replications=1, options={"no_such_option": 1})
    cfg.validate()
    with pytest.raises(TypeError, match="no_such_option"):
        run_whatif(mm1_model(), None, cfg, engine="reference", executor=Serial(), progress=False)
