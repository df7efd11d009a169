"""`twin whatif run` end to end on a tiny SMT2020-format fab written in a tmp folder."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest

from twin.cli import main

TAB = "\t"


def _table(path: Path, header: str, rows: list[str]) -> None:
    path.write_text(
        "\n".join([header.replace(" ", TAB), *(r.replace(" ", TAB) for r in rows)]) + "\n"
    )


ROUTE_HEAD = "ROUTE STEP DESC STNFAM PDIST PTIME PTIME2 PTUNITS PTPER BATCHMN BATCHMX"


@pytest.fixture(scope="module")
def tiny_fab(tmp_path_factory) -> Path:
    """Three families (one batching), two products, a hot lot stream, Litho breakdowns."""
    d = tmp_path_factory.mktemp("tiny_fab")
    _table(
        d / "part.txt",
        "PARTGRP PARTFAM PART ROUTEFILE ROUTE",
        ["Saleable product_1 part_1 route_1.txt r_1", "Saleable product_2 part_2 route_2.txt r_2"],
    )
    _table(
        d / "route_1.txt",
        ROUTE_HEAD,
        [
            "r_1 1 furnace FURN uniform 180 9 min per_batch 50 100",
            "r_1 2 litho LITHO uniform 30 1.5 min per_lot",
            "r_1 3 etch ETCH uniform 1 0.05 min per_piece",
            "r_1 4 litho LITHO uniform 30 1.5 min per_lot",
        ],
    )
    _table(
        d / "route_2.txt",
        ROUTE_HEAD,
        [
            "r_2 1 litho LITHO uniform 30 1.5 min per_lot",
            "r_2 2 etch ETCH uniform 1 0.05 min per_piece",
        ],
    )
    _table(
        d / "tool.txt.1l",
        "STNFAM STN RULE FWLRANK STNQTY STNGRP",
        [
            "LITHO LITHO rule_HotLotFIRST rank_HP;rank_FIFO 2 Litho",
            "ETCH ETCH rule_HotLotFIRST rank_HP;rank_FIFO 2 Dry_Etch",
            "FURN FURN rule_HotLotFIRST rank_HP;rank_FIFO 2 Diffusion",
        ],
    )
    head = "LOT PART PRIOR PIECES START RDIST REPEAT RUNITS RPT# LOTSPERRPT DUE ORDER HOTLOT"
    start, due = "01/01/18_00:00:00", "01/04/18_00:00:00"
    rows = [
        f"Lot_1 part_1 10 25 {start} constant 120 min 100000 1 {due} O_1 no",
        f"Lot_2 part_2 10 25 {start} constant 180 min 100000 1 {due} O_2 no",
        f"HotLot_1 part_1 20 25 {start} constant 1440 min 10000 1 {due} O_3 no",
    ]
    _table(d / "order.txt", head, rows)
    (d / "order.txt").write_text((d / "order.txt").read_text().replace("_00:00:00", " 00:00:00"))
    _table(
        d / "downcal.txt",
        "DOWNCALNAME DOWNCALTYPE MTTFDIST MTTF MTTFUNITS MTTRDIST MTTR MTTRUNITS",
        ["BREAK_Litho mttf_by_cal exponential 2880 min exponential 60 min"],
    )
    _table(
        d / "attach.txt",
        "CALNAME CALTYPE RESTYPE RESNAME FOADIST FOA FOAUNITS",
        ["BREAK_Litho down stngrp Litho exponential 2880 min"],
    )
    return d


SCENARIOS = """\
scenarios:
  - name: more-lots
    description: 25 % more regular Lot_1 releases
    changes:
      - release_rate: {lot_types: [Lot_1], factor: 1.25}
  - name: no-breakdowns
    changes:
      - breakdowns: off
"""


def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(["whatif", "run", *argv])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_json_run_reports_kpis_with_cis_and_paired_differences(tiny_fab, tmp_path, capsys):
    """JSON holds the issue's KPIs with CIs and paired differences; throughput = release rate."""
    sc = tmp_path / "s.yaml"
    sc.write_text(SCENARIOS)
    code, out, err = run_cli(
        capsys,
        str(tiny_fab),
        "--scenarios",
        str(sc),
        "--days",
        "40",
        "--warmup-days",
        "10",
        "--replications",
        "3",
        "--seed",
        "7",
        "--workers",
        "2",
        "--json",
        "--csv",
        str(tmp_path / "r.csv"),
    )
    assert code == 0, err
    doc = json.loads(out)
    assert doc["events"] > 0 and doc["wall_seconds"] > 0 and doc["replications"] == 3
    assert list(doc["scenarios"]) == ["baseline", "more-lots", "no-breakdowns"]
    base = doc["scenarios"]["baseline"]["kpis"]
    lot1 = base["lot_types"]["Lot_1"]
    ct = lot1["cycle_time_days"]
    assert ct["ci"][0] <= ct["mean"] <= ct["ci"][1] and ct["mean"] > 0
    # steady state: throughput = release rate (12 Lot_1 and 8 Lot_2 lots a day)
    assert lot1["throughput_per_day"]["mean"] == pytest.approx(12, rel=0.1)
    assert base["lot_types"]["Lot_2"]["throughput_per_day"]["mean"] == pytest.approx(8, rel=0.1)
    assert lot1["lots_completed"]["mean"] == pytest.approx(12 * 30, rel=0.1)
    assert 0 < base["families"]["LITHO"]["utilisation"]["mean"] < 1
    more = doc["scenarios"]["more-lots"]["difference_vs_baseline"]
    assert more["lot_types"]["Lot_1"]["throughput_per_day"]["mean"] == pytest.approx(3, rel=0.15)
    assert more["families"]["LITHO"]["utilisation"]["mean"] > 0
    nobrk = doc["scenarios"]["no-breakdowns"]
    assert nobrk["kpis"]["families"]["LITHO"]["down_share"]["mean"] == 0
    assert base["families"]["LITHO"]["down_share"]["mean"] > 0
    rows = list(csv.DictReader(open(tmp_path / "r.csv")))
    assert {r["scenario"] for r in rows} == {"baseline", "more-lots", "no-breakdowns"}
    assert any(r["kpi"] == "lot_types.Lot_1.cycle_time_days.mean" for r in rows)


def test_same_seed_same_numbers_across_worker_counts(tiny_fab, capsys):
    """A run is deterministic for a seed, in-process or in a pool (CRN by replication)."""
    args = (str(tiny_fab), "--days", "10", "--replications", "2", "--json", "-q")
    _, a, _ = run_cli(capsys, *args, "--workers", "1")
    _, b, _ = run_cli(capsys, *args, "--workers", "2")
    ka = json.loads(a)["scenarios"]["baseline"]["kpis"]
    kb = json.loads(b)["scenarios"]["baseline"]["kpis"]
    assert ka["lot_types"] == kb["lot_types"] and ka["fab"] == kb["fab"]


def test_table_output_and_progress_bar(tiny_fab, tmp_path, capsys, monkeypatch):
    """Without --json a table lists each scenario and lot type; the progress bar is on stderr
    when stderr is a terminal, and absent when it is redirected (a file, a pipe)."""
    import io
    import sys

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    sc = tmp_path / "s.yaml"
    sc.write_text(SCENARIOS)
    code, out, err = run_cli(
        capsys,
        str(tiny_fab),
        "--scenarios",
        str(sc),
        "--days",
        "8",
        "--replications",
        "2",
        "--workers",
        "1",
    )
    assert code == 0
    assert "cycle time d" in out and "Δ vs base" in out
    for name in ("baseline", "more-lots", "no-breakdowns"):
        assert name in out
    assert "more-lots: release rate Lot_1 × 1.25" in out
    assert "LITHO" in out and "6.0/6" not in err  # captured stderr is no terminal: no bar
    tty = Terminal()
    monkeypatch.setattr(sys, "stderr", tty)
    code, out, _ = run_cli(capsys, str(tiny_fab), "--days", "8", "--replications", "2",
                           "--workers", "1")  # fmt: skip
    assert code == 0 and "2.0/2" in tty.getvalue()


def test_unavailable_engine_is_rejected_with_a_clear_message(tiny_fab, capsys, monkeypatch):
    """An absent planned engine is refused as 'not implemented yet'; reference is CPU only."""
    from twin.whatif import runner

    monkeypatch.setitem(
        runner._PLANNED, "warp9", ("twin.whatif.no_such_engine", "warp9 is not implemented yet")
    )
    code, out, err = run_cli(capsys, str(tiny_fab), "--engine", "warp9")
    assert code == 1 and out == ""
    assert "not implemented yet" in err and "reference" in err
    code, out, err = run_cli(capsys, str(tiny_fab), "--device", "cuda")
    assert code == 1 and "CPU only" in err


def test_bad_scenario_file_lists_problems_with_lines(tiny_fab, tmp_path, capsys):
    """A scenario naming unknown families fails before simulating, with file:line and hints."""
    sc = tmp_path / "bad.yaml"
    sc.write_text(
        "scenarios:\n  - name: x\n    changes:\n      - tool_count: {family: LITO, add: 1}\n"
    )
    code, out, err = run_cli(capsys, str(tiny_fab), "--scenarios", str(sc))
    assert code == 1
    assert f"{sc}:4:" in err and "unknown family 'LITO'" in err and "'LITHO'" in err


def test_bad_arguments_and_missing_model(tmp_path, capsys):
    """Bad numbers and a missing model folder are errors naming what is wrong."""
    code, _, err = run_cli(capsys, str(tmp_path / "nope"), "--days", "5")
    assert code == 1 and "nope" in err
    code, _, err = run_cli(capsys, str(tmp_path), "--days", "5", "--warmup-days", "6")
    assert code == 1 and "warmup_days" in err


def test_console_script_runs(tiny_fab):
    """`python -m twin.cli whatif run` works as a separate process."""
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "twin.cli",
            "whatif",
            "run",
            str(tiny_fab),
            "--days",
            "5",
            "--replications",
            "2",
            "--workers",
            "1",
            "--json",
            "-q",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["scenarios"]["baseline"]["replications"] == 2


def test_a_no_op_scenario_differs_by_exactly_zero(tiny_fab, tmp_path, capsys):
    """CRN end to end: a scenario that changes nothing effective reproduces the baseline."""
    sc = tmp_path / "noop.yaml"
    sc.write_text(
        "scenarios:\n  - name: same\n    changes:\n"
        "      - processing_time: {factor: 1.0}\n"
        "      - dispatching: {area: Litho, rule: hot_first}\n"
    )
    code, out, err = run_cli(
        capsys,
        str(tiny_fab),
        "--scenarios",
        str(sc),
        "--days",
        "15",
        "--warmup-days",
        "5",
        "-r",
        "3",
        "--json",
        "-q",
    )
    assert code == 0, err
    doc = json.loads(out)
    diff = doc["scenarios"]["same"]["difference_vs_baseline"]
    for lt in ("Lot_1", "Lot_2", "HotLot_1"):
        d = diff["lot_types"][lt]["cycle_time_days"]
        assert d["mean"] == 0 and d["ci"] == [0, 0]
    assert doc["scenarios"]["same"]["events"] == doc["scenarios"]["baseline"]["events"]


@pytest.mark.slow
def test_hvlm_run_with_a_scenario(hvlm, tmp_path, capsys):
    """HVLM: every lot type and family is reported; twice the litho tools lower their
    utilisation beyond the interval (three more did not: the family is saturated at the start,
    about 94 % busy, so its change was noise around 0)."""
    sc = tmp_path / "s.yaml"
    sc.write_text(
        "scenarios:\n  - name: litho\n    changes:\n"
        "      - tool_count: {family: Litho_FE_92, add: 33}\n"
    )
    code, out, err = run_cli(
        capsys,
        str(hvlm),
        "--scenarios",
        str(sc),
        "--days",
        "3",
        "-r",
        "2",
        "--workers",
        "2",
        "--json",
        "-q",
    )
    assert code == 0, err
    doc = json.loads(out)
    kpis = doc["scenarios"]["baseline"]["kpis"]
    assert set(kpis["lot_types"]) >= {"Lot_3", "Lot_4", "HotLot_3", "HotLot_4"}
    assert len(kpis["families"]) == 105
    assert kpis["lot_types"]["Lot_3"]["lots_completed"]["mean"] > 0
    util = doc["scenarios"]["litho"]["difference_vs_baseline"]["families"]["Litho_FE_92"]
    assert util["utilisation"]["ci"][1] < 0  # the whole interval below the baseline
    assert doc["scenarios"]["litho"]["kpis"]["families"]["Litho_FE_92"]["tools"]["mean"] == 66


def test_warm_start_state_reaches_every_replication(tiny_fab):
    """run_whatif(start=...) starts each replication (in worker processes) from that state."""
    from twin.process import load_model
    from twin.whatif.reference import LotState, StartState
    from twin.whatif.runner import LocalProcessPool, RunConfig, run_whatif

    model = load_model(tiny_fab)
    lots = [
        LotState(id=f"W{i}", product="part_1", lot_type="Lot_1", step=2, status="queued")
        for i in range(40)
    ]
    cfg = RunConfig(days=1.5, replications=2)
    pool = LocalProcessPool(workers=2)
    cold = run_whatif(model, None, cfg, executor=pool, progress=False)
    warm = run_whatif(model, None, cfg, executor=pool, start=StartState(lots=lots), progress=False)
    key = "lot_types.Lot_1.lots_completed"
    extra = warm.estimates("baseline")[key].mean - cold.estimates("baseline")[key].mean
    assert extra == pytest.approx(40, abs=4)  # the 40 started lots finish within the horizon


def test_dry_run_lists_expanded_scenarios_without_simulating(tiny_fab, tmp_path, capsys):
    """--dry-run checks and lists every scenario (sweeps expanded) and runs nothing."""
    sc = tmp_path / "s.yaml"
    sc.write_text(
        SCENARIOS + "sweeps:\n  - name: f\n    grid: {n: [1, 3]}\n    changes:\n"
        "      - tool_count: {family: FURN, set: '${n}'}\n"
    )
    code, out, err = run_cli(capsys, str(tiny_fab), "--scenarios", str(sc), "-r", "4", "--dry-run")
    assert code == 0 and err == ""
    assert "5 scenarios × 4 replications of 30 days = 20 runs on engine reference" in out
    assert "  f[n=3]: tools of FURN = 3" in out and "  baseline: no change" in out


# --- rule presets (--rules, --option, the scenario file's rules: and options:) ---------------


def _rules_run(capsys, model, *argv):
    code, out, err = run_cli(
        capsys, str(model), "--days", "6", "-r", "1", "--workers", "1", "--json", "-q", *argv
    )
    assert code == 0, err
    return json.loads(out)


def test_rules_and_options_reach_the_engine_and_the_json(tiny_fab, tmp_path, capsys):
    """--rules and --option choose the rules; the JSON records the preset, how it was chosen,
    every option and the overrides; the preset changes the results."""
    twin = _rules_run(capsys, tiny_fab, "--rules", "twin")
    pys = _rules_run(capsys, tiny_fab, "--rules", "pyscfabsim", "--option", "transport=off")
    assert twin["rules"]["preset"] == "twin" and twin["rules"]["chosen_by"] == "--rules"
    rules = pys["rules"]
    assert rules["preset"] == "pyscfabsim" and rules["overrides"] == {"transport": False}
    assert rules["options"]["batch_wait"] == "max" and rules["options"]["spread"] == "half"
    assert rules["options"]["transport"] is False
    assert twin["events"] != pys["events"]
    lot1 = "lot_types", "Lot_1", "cycle_time_days", "mean"
    a, b = twin["scenarios"]["baseline"]["kpis"], pys["scenarios"]["baseline"]["kpis"]
    for k in lot1:
        a, b = a[k], b[k]
    assert a != b


def test_scenario_file_rules_and_command_line_precedence(tiny_fab, tmp_path, capsys):
    """The file's rules: and options: apply; --rules replaces the preset, --option wins per key
    over the file's options; the table and --dry-run print the rules."""
    sc = tmp_path / "r.yaml"
    sc.write_text("rules: smt2020\noptions: {transport: off, wake: recent}\n" + SCENARIOS)
    doc = _rules_run(capsys, tiny_fab, "--scenarios", str(sc))
    assert doc["rules"]["preset"] == "smt2020"
    assert doc["rules"]["chosen_by"] == "the scenario file"
    assert doc["rules"]["overrides"] == {"transport": False, "wake": "recent"}
    doc = _rules_run(
        capsys, tiny_fab, "--scenarios", str(sc), "--rules", "twin", "--option", "transport=on"
    )
    assert doc["rules"]["preset"] == "twin" and doc["rules"]["overrides"] == {}
    code, out, _ = run_cli(capsys, str(tiny_fab), "--scenarios", str(sc), "--dry-run")
    assert code == 0
    assert "rules smt2020 with wake=recent, transport=off (the scenario file)" in out
    code, out, _ = run_cli(capsys, str(tiny_fab), "--days", "2", "-r", "1", "--workers", "1")
    assert code == 0 and "rules pyscfabsim (default for an SMT2020 folder)" in out


def test_default_rules_by_input(tiny_fab, capsys):
    """Without --rules an SMT2020 folder on its own runs pyscfabsim; the demo fab scene twin."""
    code, out, _ = run_cli(capsys, str(tiny_fab), "--dry-run")
    assert code == 0 and "rules pyscfabsim (default for an SMT2020 folder)" in out
    demo = Path(__file__).resolve().parents[2] / "scenes" / "demo-fab"
    code, out, _ = run_cli(capsys, str(demo), "--dry-run")
    assert code == 0 and "rules twin (default for a scene)" in out


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["--rules", "PySCFabSim"], "unknown rule preset; accepted: twin, pyscfabsim, smt2020"),
        (["--rules", "\udcff" * 5000], "--rules '\\udcff\\udcff"),
        (["--option", "batchwait=max"], "unknown option 'batchwait'; accepted: batch_wait"),
        (["--option", "transport"], "write KEY=VALUE"),
        (["--option", "transport=2"], "transport accepts true or false (on/off)"),
        (["--option", "wip_sample_days=nan"], "wip_sample_days accepts a number of days"),
        (["--option", "wip_sample_days=1e309"], "wip_sample_days accepts a number of days"),
        (["--option", "wip_sample_days=" + "9" * 10_000], "wip_sample_days accepts a number"),
        (["--option", "wake=\ud800"], "wake accepts recent, first"),
        (["--option", "seed=3"], "the run's own settings"),
    ],
)
def test_bad_rules_and_options_are_one_clear_error(tmp_path, capsys, argv, expected):
    """Unknown presets and options, and hostile values (NaN, huge, lone surrogates) in
    --option and --rules, fail at once (before the model is read) with the accepted values."""
    code, out, err = run_cli(capsys, str(tmp_path / "no-model"), *argv)
    assert code == 1 and out == ""
    assert expected in err and "no such folder" not in err
    assert len(err) < 1000


def test_bad_rules_in_the_scenario_file_name_their_lines(tiny_fab, tmp_path, capsys):
    """A scenario file's unknown preset, unknown option and bad values are listed with their
    lines, all at once, before anything runs."""
    sc = tmp_path / "bad.yaml"
    sc.write_text(
        "rules: fast\n"
        "options:\n"
        "  transport: 3\n"
        "  bogus: on\n"
        "  wip_sample_days: .nan\n"
        "  wake: [[[[[[first]]]]]]\n" + SCENARIOS
    )
    code, out, err = run_cli(capsys, str(tiny_fab), "--scenarios", str(sc))
    assert code == 1 and out == ""
    assert f"{sc}:1: rules 'fast': unknown rule preset; accepted: twin" in err
    assert f"{sc}:3: options.transport = 3: accepted true or false" in err
    assert f"{sc}:4: options: unknown option 'bogus'" in err
    assert f"{sc}:5: options.wip_sample_days = nan" in err
    assert f"{sc}:6: options.wake = a list: accepted recent, first" in err
    sc.write_text("rules: [twin]\noptions: on\n")
    code, _, err = run_cli(capsys, str(tiny_fab), "--scenarios", str(sc))
    assert code == 1 and f"{sc}:1: rules a list" in err and f"{sc}:2: 'options' must be" in err
