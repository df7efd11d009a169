"""`twin calibrate` and `twin emulate --truth` from the command line: reports and clear errors."""

from __future__ import annotations

import json

import pytest

from tests.calibrate.util import DEMO, litho_runs, store_of
from twin.cli import main
from twin.emulator.truth import truth_model
from twin.errors import InputError
from twin.process import load_model


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """A store of 40 Litho runs 15 % slower than designed."""
    path = tmp_path_factory.mktemp("cal") / "events.db"
    return store_of(path, litho_runs(40, 1.15).sorted())


def _run(capsys, *args):
    rc = main(["calibrate", *map(str, args)])
    out, err = capsys.readouterr()
    return rc, out, err


def test_json_report_lists_parameters_with_the_six_keys(store, capsys):
    """--json: ``parameters`` is a list of {name, design, estimate, ci, n, drift}, drift first."""
    rc, out, _ = _run(capsys, "--store", store, "--model", DEMO, "--json")
    doc = json.loads(out)
    assert rc == 0
    assert all(
        set(p) == {"name", "design", "estimate", "ci", "n", "drift"} for p in doc["parameters"]
    )
    # the log releases one part_A lot per run, ~20 times the design rate: drift too, and the
    # larger relative change comes first
    assert doc["drift"] == ["release_rate:part_A", "processing_time:Litho_FE_3"]
    assert [p["drift"] for p in doc["parameters"][:3]] == [True, True, False]
    litho = doc["parameters"][1]
    assert litho["ci"][0] <= 1.15 * litho["design"] <= litho["ci"][1]
    assert any(t["name"] == "processing_time:DE_FE_6" and "at least 30" in t["reason"]
               for t in doc["thin"])  # fmt: skip


def test_text_report_marks_drift_and_thin(store, capsys):
    """The text report: one line per parameter, DRIFT on the drifted one, thin data explained."""
    rc, out, _ = _run(capsys, "--store", store, "--model", DEMO)
    lines = out.splitlines()
    assert rc == 0 and "2 drifted" in lines[0]
    assert lines[3].startswith("processing_time:Litho_FE_3") and "DRIFT" in lines[3]
    assert "DRIFT" not in lines[4]
    assert "thin data (design value kept):" in out


def test_calibrated_model_scales_only_the_drifted_family(store, tmp_path, capsys):
    """--out writes an SMT2020 folder the loader reads: Litho steps × the estimated factor
    (mean and spread), other families as designed; the reference engine runs it."""
    from twin.whatif.reference import SimConfig
    from twin.whatif.reference.engine import simulate

    rc, out, _ = _run(capsys, "--store", store, "--model", DEMO, "--out", tmp_path / "o", "--json")
    assert rc == 0
    factor = json.loads(out)["parameters"][1]
    factor = factor["estimate"] / factor["design"]
    design, cal = load_model(DEMO / "process"), load_model(tmp_path / "o" / "process")
    for r in design.routes:
        for a, b in zip(design.routes[r].steps, cal.routes[r].steps, strict=True):
            f = factor if a.family == "Litho_FE_3" else 1.0
            assert b.mean == pytest.approx(a.mean * f) and b.spread == pytest.approx(a.spread * f)
    assert (tmp_path / "o" / "drift.json").exists()
    res = simulate(cal, SimConfig(days=2, seed=1))
    assert res is not None
    rc, _, err = _run(capsys, "--store", store, "--model", DEMO, "--out", tmp_path / "o")
    assert rc == 1 and "exists; choose a new folder" in err


@pytest.mark.parametrize(
    "bad, why",
    [
        ("garbage", "not ISO 8601"),
        ("1e20", "epoch seconds from 0 to"),
        ("-5", "epoch seconds from 0 to"),
        ("nan", "not ISO 8601"),
        ("\ud800", "not ISO 8601"),
        ("2026-01-01T00:00:00+02:00", "must be UTC"),
        ("x" * 100_000, "not ISO 8601"),
    ],
)
def test_bad_window_is_a_clear_error(store, capsys, bad, why):
    """--since/--until garbage, huge, negative, NaN, lone surrogates, non-UTC: exit 1, one line
    naming the option and what is accepted."""
    for opt in ("--since", "--until"):
        rc, out, err = _run(capsys, "--store", store, "--model", DEMO, opt, bad)
        assert rc == 1 and out == ""
        assert opt in err and why in err and "accepted: ISO 8601 UTC or epoch seconds" in err
        assert len(err) < 600


def test_since_after_until_is_refused(store, capsys):
    """A window that ends before it starts is refused, naming both bounds."""
    rc, _, err = _run(capsys, "--store", store, "--model", DEMO, "--since",
                      "2026-01-02T00:00:00Z", "--until", "2026-01-01T00:00:00Z")  # fmt: skip
    assert rc == 1 and "must be before --until" in err


def test_too_little_history(tmp_path, capsys):
    """A store with fewer track-outs than the threshold in every family: says the threshold and
    how many the store has."""
    path = store_of(tmp_path / "few.db", litho_runs(5, 1.0).sorted())
    rc, _, err = _run(capsys, "--store", path, "--model", DEMO)
    assert rc == 1
    assert "needs at least 30 track-outs per family; the store has 5 in the window" in err
    rc, _, err = _run(capsys, "--store", path, "--model", DEMO, "--since", "2030-01-01T00:00:00Z")
    assert rc == 1 and "no lot.track_out in the window" in err


def test_store_and_model_that_cannot_be_used(tmp_path, store, capsys):
    """A missing store, a file that is no store, a model that is not a folder, and an SMT2020
    folder with no catalog to map tools: each one clear error."""
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"\x00garbage" * 100)
    cases = [
        (["--store", tmp_path / "none.db", "--model", DEMO], "no such file"),
        (["--store", junk, "--model", DEMO], "junk.db"),
        (["--store", store, "--model", tmp_path / "nothing"], "not a folder"),
        (["--store", store, "--model", DEMO / "process"], "no map of tools to families"),
    ]
    for args, why in cases:
        rc, _, err = _run(capsys, *args)
        assert rc == 1 and why in err, err


def _truth(tmp_path, text):
    path = tmp_path / "truth.yaml"
    path.write_text(text)
    return path


def test_truth_applies_its_one_scenario(tmp_path):
    """--truth: the emulator's model is the design model with the truth's changes applied."""
    model = load_model(DEMO / "process")
    truth = truth_model(model, str(_truth(tmp_path, (
        "scenarios:\n  - name: t\n    changes:\n"
        "      - processing_time: {family: Litho_FE_3, factor: 1.12}\n"
        "      - mttr: {area: Litho, factor: 1.5}\n"))))  # fmt: skip
    for r in model.routes:
        for a, b in zip(model.routes[r].steps, truth.routes[r].steps, strict=True):
            assert b.mean == pytest.approx(a.mean * (1.12 if a.family == "Litho_FE_3" else 1.0))
    (att,) = [a for a in truth.calendars_of("Litho_FE_3") if a.kind == "down"]
    assert truth.downs[att.calendar].mttr.mean == 1.5 * model.downs["BREAK_Litho"].mttr.mean
    assert model.downs["BREAK_Litho"].mttr.mean == 14400.0  # the design is untouched


@pytest.mark.parametrize(
    "text, why",
    [
        ("scenarios: []\n", "0 scenarios; a truth file holds exactly one"),
        (
            "scenarios:\n  - {name: a, changes: [{dispatching: {rule: fifo}}]}\n"
            "  - {name: b, changes: [{dispatching: {rule: fifo}}]}\n",
            "2 scenarios",
        ),
        (
            "scenarios:\n  - name: a\n    changes:\n      - tool_count: {family: Litho_FE_3, add: 1}\n",
            "the scene's tools are fixed",
        ),
        (
            "scenarios:\n  - name: a\n    changes:\n      - processing_time: {family: Lith, factor: 2}\n",
            "unknown family 'Lith'",
        ),
        ('scenarios:\n  - name: "\\ud800"\n', ""),
        ("[" * 5000, ""),
    ],
)
def test_bad_truth_is_a_clear_error(tmp_path, capsys, text, why):
    """A truth file that is not exactly one scenario the scene can run: exit 1, a clear error."""
    rc = main(["emulate", str(DEMO), "--hours", "0.01", "--truth", str(_truth(tmp_path, text))])
    _, err = capsys.readouterr()
    assert rc == 1 and err.startswith("twin: error:") and why in err, err
    with pytest.raises(InputError):
        truth_model(load_model(DEMO / "process"), str(tmp_path / "truth.yaml"))


def test_extreme_but_valid_window(store, capsys):
    """--since 0 and --until the last representable instant (9999-12-31T23:59:59Z) are a valid
    window: the report covers the store's events."""
    rc, out, _ = _run(capsys, "--store", store, "--model", DEMO, "--since", "0",
                      "--until", "9999-12-31T23:59:59Z", "--json")  # fmt: skip
    doc = json.loads(out)
    assert rc == 0 and doc["since"] == "1970-01-01T00:00:00Z"
    assert doc["until"].startswith("9999-12-31")
    assert "processing_time:Litho_FE_3" in doc["drift"]


def test_calibrated_downcal_scales_repair_time(tmp_path, capsys):
    """12 Litho repairs of twice the design MTTR: ttr:Litho_FE_3 drifts and the calibrated
    downcal.txt has BREAK_Litho's MTTR at the estimate; other calendars are as designed."""
    log = litho_runs(40, 1.0)
    t = log.sorted()[-1].time - 1_767_225_600.0 + 100
    for k in range(12):
        log.add(t + k * 100_000, "equipment.state", "LITH01", state="unscheduled_down", reason="b")
        log.add(t + k * 100_000 + 28_800, "equipment.state", "LITH01", state="standby", reason="r")
    path = store_of(tmp_path / "downs.db", log.sorted())
    rc, out, _ = _run(capsys, "--store", path, "--model", DEMO, "--out", tmp_path / "o", "--json")
    doc = json.loads(out)
    assert rc == 0 and "ttr:Litho_FE_3" in doc["drift"]
    design, cal = load_model(DEMO / "process"), load_model(tmp_path / "o" / "process")
    # with litho_runs' one 1,000 s breakdown: 13 repairs
    assert cal.downs["BREAK_Litho"].mttr.mean == pytest.approx((12 * 28_800.0 + 1000) / 13)
    for name, d in design.downs.items():
        if name != "BREAK_Litho":
            assert cal.downs[name].mttr.mean == d.mttr.mean and cal.downs[name].mttf == d.mttf


def test_json_and_text_carry_the_new_kinds(tmp_path, capsys):
    """A store with PMs and transfers: --json lists pm_duration/pm_interval and transport with
    the six keys (a per-area transport's design is null, never drift); the text report prints
    the per-area row with '-' as its design."""
    log = litho_runs(40, 1.0)
    t = log.sorted()[-1].time - 1_767_225_600.0 + 100
    for k in range(12):
        tool = f"LITH0{k % 3 + 1}"
        log.add(t + k * 1e5, "equipment.state", tool, state="scheduled_down", reason="pm")
        log.add(t + k * 1e5 + 28_800, "equipment.state", tool, state="standby", reason="ready")
    for k in range(40):
        log.add(k * 1000.0 + 5, "carrier.transfer_requested", f"C{k}", transfer=f"T{k}",
                **{"from": "LITH01", "to": "LITH02"})  # fmt: skip
        log.add(k * 1000.0 + 305, "carrier.delivered", f"C{k}", transfer=f"T{k}")
    path = store_of(tmp_path / "pm.db", log.sorted())
    rc, out, _ = _run(capsys, "--store", path, "--model", DEMO, "--json")
    doc = json.loads(out)
    by = {p["name"]: p for p in doc["parameters"]}
    assert rc == 0 and set(by["pm_duration:Litho_FE_3"]) == {
        "name", "design", "estimate", "ci", "n", "drift"}  # fmt: skip
    assert by["pm_duration:Litho_FE_3"]["n"] == 12
    pair = by["transport:Litho>Litho"]
    assert pair["design"] is None and not pair["drift"] and pair["estimate"] == 300.0
    assert by["transport:all"]["design"] == 300.0
    rc, out, _ = _run(capsys, "--store", path, "--model", DEMO)
    row = next(line for line in out.splitlines() if line.startswith("transport:Litho>Litho"))
    assert row.split()[1] == "-"
