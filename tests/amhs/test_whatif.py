"""The AMHS inside the what-if: engine hook, CLI options, scenario changes, bad input."""

from __future__ import annotations

import json

import pytest

from twin.amhs.transport import AmhsSpec, attach
from twin.cli import main
from twin.errors import ConfigError, InputError
from twin.process import load_model
from twin.scene.load import BUILTIN_SCENES
from twin.whatif.reference import SimConfig, simulate
from twin.whatif.reference.engine import Engine

DEMO = BUILTIN_SCENES / "demo-fab"


@pytest.fixture
def model():
    return load_model(DEMO / "process")


def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(["whatif", "run", str(DEMO), "--workers", "1", "-q", *argv])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_unset_transport_is_the_table(model):
    """Without an AMHS spec the engine has no transport object and draws from fromto.txt."""
    eng = Engine(model, SimConfig(days=1, seed=1))
    assert eng.amhs is None and eng.tr_uniform is not None


def test_amhs_moves_every_lot(model):
    """With the AMHS every move between tool steps goes through the fleet; KPIs under 'amhs'."""
    attach(model, AmhsSpec(layout="demo-fab"))
    eng = Engine(model, SimConfig(days=6, seed=1))
    k = eng.run().kpis()
    a = k["amhs"]
    assert eng.amhs.model.moves > 100 and a["moves"] == eng.amhs.model.moves
    assert 0 < a["utilisation"] <= 1 and a["delivery_p99_s"] >= a["delivery_p95_s"] > 0
    assert 0 < a["transport_share"] < 1 and 0 <= a["wait_share"] <= a["transport_share"]
    assert k["fab"]["lots_completed"] > 0


def test_amhs_is_deterministic(model):
    """Same seed and replication, same AMHS figures."""
    attach(model, AmhsSpec(layout="demo-fab"))
    a = simulate(model, SimConfig(days=3, seed=4)).kpis()["amhs"]
    b = simulate(model, SimConfig(days=3, seed=4)).kpis()["amhs"]
    assert a == b


def test_disabled_spec_is_the_table(model):
    """A layout given without --transport amhs leaves the table transport in place."""
    attach(model, AmhsSpec(layout="demo-fab", enabled=False))
    assert Engine(model, SimConfig(days=1, seed=1)).amhs is None


@pytest.mark.parametrize(
    "kw,match",
    [
        ({"vehicles": 0}, "vehicle count must be > 0"),
        ({"vehicles": -5}, "vehicle count must be > 0"),
        ({"vehicles": True}, "whole number"),
        ({"add": -12}, "vehicle count must be > 0"),
        ({"vehicle_speed": float("nan")}, "vehicle_speed"),
        ({"dispatch_rule": "\ud800"}, "dispatch_rule"),
        ({"count_rule": "closest"}, "count_rule"),
    ],
)
def test_bad_spec(model, kw, match):
    """Bad AMHS settings are refused with the field named, before anything runs."""
    with pytest.raises(ConfigError, match=match):
        attach(model, AmhsSpec(layout="demo-fab", **kw))


def test_family_without_layout_tool(model):
    """A process family with no tool in the layout is a clear error naming it."""
    model.families["Litho_FE_3"].name = "Litho_FE_3"
    fam = model.families.pop("Litho_FE_3")
    fam.name = "Litho_NOWHERE"
    model.families["Litho_NOWHERE"] = fam
    for r in model.routes.values():
        for s in r.steps:
            if s.family == "Litho_FE_3":
                s.family = "Litho_NOWHERE"
    with pytest.raises(InputError, match="family Litho_NOWHERE .*has no tool in the layout"):
        attach(model, AmhsSpec(layout="demo-fab"))


def test_cli_amhs_scenarios(capsys, tmp_path):
    """--transport amhs --layout: AMHS KPIs with CIs per scenario; vehicles and transport changes."""
    sc = tmp_path / "s.yaml"
    sc.write_text(
        "scenarios:\n"
        "  - name: few\n    changes:\n      - vehicles: {count: 3}\n"
        "  - name: table\n    changes:\n      - transport: table\n"
        "  - name: slow\n    changes:\n      - rail_speed: {bay: LOOP, factor: 0.25}\n"
    )
    code, out, err = run_cli(
        capsys,
        *("--layout", "demo-fab", "--transport", "amhs", "--scenarios", str(sc)),
        *("--days", "4", "-r", "2", "--json"),
    )
    assert code == 0, err
    res = json.loads(out)
    amhs = [res["scenarios"][n]["kpis"].get("amhs") for n in ("baseline", "few", "table")]
    assert amhs[0]["delivery_mean_s"]["n"] == 2 and "ci" in amhs[0]["delivery_p95_s"]
    assert amhs[1]["vehicles"]["mean"] == 3
    assert amhs[1]["wait_mean_s"]["mean"] > amhs[0]["wait_mean_s"]["mean"]
    assert amhs[2] is None  # transport: table
    slow = res["scenarios"]["slow"]["kpis"]["amhs"]
    assert slow["loaded_travel_mean_s"]["mean"] > amhs[0]["loaded_travel_mean_s"]["mean"]


@pytest.mark.parametrize(
    "change,match",
    [
        ("vehicles: {count: 0}", "vehicle count must be > 0"),
        ("vehicles: {count: -1}", "vehicle count must be > 0"),
        ("vehicles: {add: -99}", "vehicle count must be > 0"),
        ("vehicles: {many: 3}", "vehicles takes"),
        ("vehicles: 7", "vehicles takes"),
        ("vehicle_speed: 0", "vehicle_speed takes"),
        ("vehicle_speed: .nan", "vehicle_speed takes"),
        ("vehicle_dispatch: teleport", "dispatch_rule"),
        ("transport: rocket", "transport is table or amhs"),
        ("vehicles: {count: 1000000000000}", "more than 100000"),
        ("vehicles: {count: {a: {b: {c: [1]}}}}", "vehicles takes"),
        ('vehicle_dispatch: "\\ud800"', "not valid YAML"),
        ("vehicle_speed: 1e308", "vehicle_speed"),
        ("rail_speed: {bay: NOWHERE, factor: 0.5}", "no bay 'NOWHERE' in the layout"),
        ("rail_speed: {bay: BAY1, factor: 0}", "rail_speed takes"),
        ("rail_speed: {bay: BAY1}", "rail_speed takes"),
        ("rail_speed: 0.5", "rail_speed takes"),
        ("relocate: {family: Litho_FE_3, bay: BAY2}", "the bay has 0"),
        ("relocate: {family: Litho_FE_3}", "relocate takes"),
        ("relocate: {family: Nope_1, bay: BAY2}", "unknown family"),
    ],
)
def test_bad_scenario_changes(capsys, tmp_path, change, match):
    """Bad AMHS scenario changes are refused with file:line, and nothing runs."""
    sc = tmp_path / "s.yaml"
    sc.write_text(f"scenarios:\n  - name: bad\n    changes:\n      - {change}\n")
    code, out, err = run_cli(
        capsys, "--layout", "demo-fab", "--transport", "amhs", "--scenarios", str(sc)
    )
    assert code == 1 and match in err and "s.yaml:" in err and out == ""


def test_amhs_change_needs_layout(capsys, tmp_path):
    """An AMHS change or --transport amhs without --layout says what is missing."""
    sc = tmp_path / "s.yaml"
    sc.write_text("scenarios:\n  - name: x\n    changes:\n      - vehicles: {count: 3}\n")
    code, _, err = run_cli(capsys, "--scenarios", str(sc))
    assert code == 1 and "--layout" in err
    code, _, err = run_cli(capsys, "--transport", "amhs")
    assert code == 1 and "need --layout" in err


@pytest.mark.parametrize("layout", ["no/such/place.xlsx", "\ud800", "x" * 5000])
def test_bad_layout(capsys, layout):
    """A layout that does not load is a clear error."""
    code, _, err = run_cli(capsys, "--layout", layout, "--transport", "amhs")
    assert code == 1 and err


def test_dry_run_prints_reconciliation(capsys):
    """--dry-run with --layout prints the family reconciliation (process, layout, action)."""
    code, out, err = run_cli(capsys, "--layout", "demo-fab", "--transport", "amhs", "--dry-run")
    assert code == 0, err
    assert "Litho_FE_3" in out and "same count" in out


@pytest.mark.parametrize(
    "value,match", [("0", "must be > 0"), ("-4", "must be > 0"), ("10" * 8, "more than 100000")]
)
def test_bad_vehicles_option(capsys, value, match):
    """--vehicles that is no positive fleet size is refused before anything runs."""
    code, out, err = run_cli(
        capsys, "--layout", "demo-fab", "--transport", "amhs", "--vehicles", value
    )
    assert code == 1 and match in err and out == ""


def test_the_kernel_refuses_amhs_transport_instead_of_ignoring_it():
    """The kernel has no AMHS model: a model asking for it is refused naming the reference
    engine, never run silently with table transport."""
    import types

    import pytest as _pytest

    from twin.errors import InputError
    from twin.whatif.kernel.engine import KernelEngine

    model = types.SimpleNamespace(amhs=types.SimpleNamespace(enabled=True))
    config = types.SimpleNamespace(days=1.0, warmup_days=0.0, seed=1, options={})
    with _pytest.raises(InputError, match="reference engine only"):
        KernelEngine().run(model, [0], config)
