"""Rule presets (twin.whatif.presets): one definition of every rule set, layered options,
hostile values refused with one clear problem each, and a preset that changes results."""

from __future__ import annotations

import argparse
import dataclasses
import math
from pathlib import Path

import pytest

from twin.errors import ConfigError
from twin.process import load_model
from twin.whatif import presets
from twin.whatif.reference.config import SimConfig

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "scenes" / "demo-fab"
RULES = ("batch_wait", "batch_by", "pm_first", "pm_interval_from", "idle_downs", "wake", "spread")


def test_every_simconfig_option_is_a_preset_option():
    """Every SimConfig field but the run's own (days, warm-up, seed, replication, record_steps)
    is an option every preset sets, and every option but spread is a SimConfig field."""
    fields = {f.name for f in dataclasses.fields(SimConfig)} - presets.NOT_OPTIONS
    assert fields == set(presets.OPTIONS) - presets.MODEL_OPTIONS
    for p in presets.PRESETS.values():
        assert set(p.options) == set(presets.OPTIONS), p.name
        assert presets.option_problems(dict(p.options)) == [], p.name


def test_accepted_values_are_the_engines():
    """The values presets accept are those SimConfig, the loader and the limits accept."""
    from twin.process import model as m
    from twin.whatif.reference import config as c
    from twin.whatif.scenarios import limits

    names = ("BATCH_WAITS", "BATCH_BYS", "PM_FIRSTS", "PM_INTERVALS_FROM", "IDLE_DOWNS", "WAKES",
             "MIN_RUNS")  # fmt: skip
    for k in names:
        assert getattr(presets, k) == getattr(c, k), k
    assert presets.SPREAD_MODES == m.SPREAD_MODES
    assert (presets.MIN_SAMPLE_DAYS, presets.MAX_DAYS) == (limits.MIN_SAMPLE_DAYS, limits.MAX_DAYS)
    choices = {"batch_wait": c.BATCH_WAITS, "wake": c.WAKES, "spread": m.SPREAD_MODES,
               "min_runs": c.MIN_RUNS}  # fmt: skip
    for k, v in choices.items():
        assert presets.OPTIONS[k] == v


def test_command_line_imports_no_engine():
    """Building the CLI's parser (which adds --rules and --option) imports no engine."""
    import subprocess
    import sys

    code = (
        "import sys, twin.cli; twin.cli.build_parser(); "
        "print(any(m.startswith(('twin.whatif.reference', 'twin.whatif.scenarios')) "
        "for m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_twin_preset_is_the_engine_and_loader_defaults():
    """`twin` is SimConfig()'s defaults and the loader's default spread (mean ± PTIME2)."""
    default = SimConfig(days=1)
    twin = presets.PRESETS["twin"].options
    for k, v in presets.sim_options("twin").items():
        assert getattr(default, k) == v, k
    assert twin["spread"] == load_model(DEMO).ptime_spread_mode == "full"


def test_pyscfabsim_preset_is_the_published_reproductions_rules():
    """`pyscfabsim` is the rule set under which HVLM gave 69.3 / 40.0 d (docs/whatif.md)."""
    assert {k: presets.PRESETS["pyscfabsim"].options[k] for k in (*RULES, "dedication")} == {
        "batch_wait": "max",
        "batch_by": "operation",
        "pm_first": "same",
        "pm_interval_from": "end",
        "idle_downs": "skip",
        "wake": "first",
        "spread": "half",
        "dedication": True,
    }


def test_smt2020_differs_from_both_and_documents_each_rule():
    """`smt2020` (the format read literally) differs from `twin` and from `pyscfabsim`, and
    says why for every rule it sets."""
    lit, twin, pys = (presets.PRESETS[n].options for n in ("smt2020", "twin", "pyscfabsim"))
    assert any(lit[k] != twin[k] for k in RULES) and any(lit[k] != pys[k] for k in RULES)
    assert set(presets.SMT2020_WHY) == {*RULES, "dedication"}
    docs = (ROOT / "docs" / "whatif.md").read_text()
    assert "## Rule presets" in docs
    for k in presets.SMT2020_WHY:
        assert f"`{k}`" in docs.split("## Rule presets")[1], k


def test_layers_apply_in_order_and_are_recorded():
    """Options apply on top of the preset, later layers last; the record lists every option
    and, as overrides, those that differ from the preset."""
    r = presets.resolve("pyscfabsim", {"transport": False, "wake": "recent"}, {"wake": "first"})
    assert r.preset == "pyscfabsim" and r.options["transport"] is False
    assert r.options["wake"] == "first" and r.overrides == {"transport": False}
    assert set(r.to_json()["options"]) == set(presets.OPTIONS)
    assert "spread" not in r.sim_options and r.spread == "half"
    assert presets.resolve(None).preset == presets.DEFAULT == "twin"
    assert r.describe() == "pyscfabsim with transport=off"


def test_unknown_names_are_refused_listing_the_accepted_ones():
    """An unknown preset or option is one problem each, listing what is accepted."""
    with pytest.raises(ConfigError) as err:
        presets.resolve("PySCFabSim", {"batchwait": "max", "days": 3})
    problems = err.value.problems
    assert len(problems) == 3
    assert (
        "rules 'PySCFabSim': unknown rule preset; accepted: twin, pyscfabsim, smt2020" in problems
    )
    assert "unknown option 'batchwait'; accepted: batch_wait, batch_by" in problems[1]
    assert "the run's own settings" in problems[2]


HOSTILE = [
    ("batch_wait", "\ud800"),  # a lone surrogate
    ("batch_wait", "x" * 1_000_000),
    ("wake", ["first"]),
    ("spread", {"half": 1}),
    ("transport", "yes"),  # a text is not a yes/no value (the CLI converts its own)
    ("transport", 1),
    ("dedication", None),
    ("wip_sample_days", math.nan),
    ("wip_sample_days", math.inf),
    ("wip_sample_days", 10**5000),
    ("wip_sample_days", True),
    ("wip_sample_days", 1e-9),
    ("wip_sample_days", "1"),
    ("pms", [[[[[[[[[[[]]]]]]]]]]]),  # deep nesting
]


@pytest.mark.parametrize(
    ("key", "value"), HOSTILE, ids=[f"{k}-{i}" for i, (k, _) in enumerate(HOSTILE)]
)
def test_hostile_option_values_are_one_short_problem(key, value):
    """Huge, NaN, infinite, wrong-typed, deeply nested and lone-surrogate values are one
    problem each, short, naming the option and what it accepts, with no raw surrogate."""
    problems = presets.option_problems({key: value})
    assert len(problems) == 1
    assert problems[0].startswith(f"options.{key} = ") and "accepted" in problems[0]
    assert len(problems[0]) < 300
    problems[0].encode("utf-8")  # a lone surrogate would raise here
    with pytest.raises(ConfigError):
        presets.resolve("twin", {key: value})


@pytest.mark.parametrize(
    "name", [5, 10**5000, "\ud800" * 10_000, ["twin"], {"a": 1}, ""], ids=[str(i) for i in range(6)]
)
def test_hostile_preset_names_are_one_short_problem(name):
    """A preset name of the wrong type, huge or a lone surrogate is one short problem."""
    problem = presets.preset_problem(name)
    assert problem is not None and "accepted: twin, pyscfabsim, smt2020" in problem
    assert len(problem) < 200
    problem.encode("utf-8")


def test_option_keys_of_any_type_are_refused():
    """A non-text, huge or lone-surrogate option name is one problem; a non-mapping is one."""
    for key in (1, None, "\ud800", "k" * 100_000, (1, 2)):
        (p,) = presets.option_problems({key: True})
        assert "unknown option" in p and len(p) < 400
        p.encode("utf-8")
    assert presets.option_problems([("wake", "first")]) == [
        "options a list: must be a mapping of option names to values"
    ]


def test_command_line_option_text():
    """--option KEY=VALUE: yes/no words for switches, numbers for days, texts for choices;
    anything else one error naming the text and what is accepted."""
    assert presets.parse_option("transport=off") == ("transport", False)
    assert presets.parse_option(" dedication = YES ") == ("dedication", True)
    assert presets.parse_option("wip_sample_days=0.5") == ("wip_sample_days", 0.5)
    assert presets.parse_option("batch_wait=max") == ("batch_wait", "max")
    for text, expect in [
        ("transport", "write KEY=VALUE"),
        ("=off", "write KEY=VALUE"),
        ("nope=1", "unknown option 'nope'"),
        ("transport=maybe", "transport accepts true or false (on/off)"),
        ("wip_sample_days=nan", "wip_sample_days accepts a number of days"),
        ("wip_sample_days=1e999", "wip_sample_days accepts a number of days"),
        ("wip_sample_days=" + "9" * 5000, "wip_sample_days accepts a number of days"),
        ("batch_wait=\ud800", "batch_wait accepts min, max"),
        ("\udcff=1", "unknown option '\\udcff'"),
    ]:
        with pytest.raises(ConfigError) as err:
            presets.parse_option(text)
        assert expect in str(err.value), text
        assert len(str(err.value)) < 400
        str(err.value).encode("utf-8")


def _args(rules=None, option=()):
    return argparse.Namespace(rules=rules, option=list(option))


def test_command_line_rules_file_rules_and_default(tmp_path):
    """--rules beats the scenario file's rules:, which beats the input's default; the file's
    options, then --option, apply on top; each record says how the preset was chosen."""
    r = presets.from_arguments(_args(), DEMO, "smt2020", {"transport": False})
    assert (r.preset, r.chosen_by, r.overrides) == (
        "smt2020",
        "the scenario file",
        {"transport": False},
    )
    r = presets.from_arguments(
        _args("pyscfabsim", ["transport=on", "wake=recent"]), DEMO, "smt2020", {"transport": False}
    )
    assert (r.preset, r.chosen_by) == ("pyscfabsim", "--rules")
    assert r.overrides == {"wake": "recent"} and r.options["transport"] is True
    assert presets.from_arguments(_args(), DEMO).preset == "twin"
    with pytest.raises(ConfigError) as err:
        presets.from_arguments(_args("nope", ["a=1", "wake=x"]), DEMO)
    assert len(err.value.problems) == 3


def test_default_preset_by_input(tmp_path):
    """A scene (its folder or the process folder it names) defaults to `twin`; an SMT2020
    folder on its own, a benchmark dataset, to `pyscfabsim`; so does the API's setting."""
    from twin_api.jobs import default_rules

    assert presets.default_preset(DEMO)[0] == "twin"
    assert presets.default_preset(DEMO / "process")[0] == "twin"
    bare = tmp_path / "HVLM"
    bare.mkdir()
    (bare / "part.txt").write_text("")
    assert presets.default_preset(bare) == ("pyscfabsim", "default for an SMT2020 folder")
    assert default_rules(argparse.Namespace(process=None))[0] == "twin"
    assert default_rules(argparse.Namespace(process=str(bare)))[0] == "pyscfabsim"
    assert default_rules(argparse.Namespace(process=str(DEMO / "process")))[0] == "twin"


def test_rules_set_the_model_spread_on_a_copy():
    """A preset's spread reaches the engine as the model's ptime_spread_mode, on a copy: the
    base model is never changed."""
    model = load_model(DEMO)
    half = presets.resolve("pyscfabsim").model(model)
    assert half is not model and half.ptime_spread_mode == "half"
    assert model.ptime_spread_mode == "full"
    assert presets.resolve("twin").model(model) is model


def test_a_preset_changes_results():
    """The demo fab over 10 days gives other lots and events under `pyscfabsim` than under
    `twin`, and the half spread alone changes the numbers too; `twin` is the old default."""
    from twin.whatif.runner import RunConfig, Serial, run_whatif

    model = load_model(DEMO)

    def run(**kw):
        cfg = RunConfig(days=10, replications=1, seed=3, **kw)
        res = run_whatif(model, None, cfg, executor=Serial(), progress=False).to_json()
        kpis = res["scenarios"]["baseline"]["kpis"]
        return res["events"], (kpis["lot_types"], kpis["fab"]), res["rules"]

    twin, pys, spread = run(rules="twin"), run(rules="pyscfabsim"), run(options={"spread": "half"})
    assert run()[:2] == twin[:2]  # RunConfig's default is twin
    assert twin[0] != pys[0] and twin[1] != pys[1]
    assert spread[1] != twin[1] and spread[2]["overrides"] == {"spread": "half"}
    assert pys[2]["preset"] == "pyscfabsim" and pys[2]["options"]["batch_wait"] == "max"


def test_a_preset_spread_equals_loading_with_it():
    """Setting a preset's spread on a loaded model simulates exactly as loading the model with
    that spread does (what bench/bench_reference.py does)."""
    from twin.whatif.reference import simulate

    rules = presets.resolve("pyscfabsim")
    cfg = SimConfig(days=5, seed=2, **rules.sim_options)
    a = simulate(rules.model(load_model(DEMO)), cfg)
    b = simulate(load_model(DEMO, ptime_spread_mode="half"), cfg)
    assert a.events == b.events and list(a.lots.completion) == list(b.lots.completion)
    assert list(a.lots.id) == list(b.lots.id)


def test_pyscfabsim_sets_the_peer_rules():
    """The pyscfabsim preset sets PySCFabSim's three further rules; twin and smt2020 do not."""
    on = {"unstarted_last": True, "delay_transport": False, "min_runs": "hold"}
    assert {k: presets.PRESETS["pyscfabsim"].options[k] for k in on} == on
    for name in ("twin", "smt2020"):
        assert {k: presets.PRESETS[name].options[k] for k in on} == {
            "unstarted_last": False, "delay_transport": True, "min_runs": "rank"}  # fmt: skip


def test_new_options_refuse_hostile_values():
    """The new options accept only their values: bools, rank/hold; garbage is named."""
    bad = {"unstarted_last": "\ud800", "delay_transport": 10**400, "min_runs": "hold" * 10**5}
    problems = presets.option_problems(bad)
    assert len(problems) == 3
    assert any("rank, hold" in p for p in problems)
    assert presets.parse_option("min_runs=hold") == ("min_runs", "hold")
    assert presets.parse_option("unstarted_last=off") == ("unstarted_last", False)
