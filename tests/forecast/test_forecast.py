"""twin.forecast: a forecast from the state in an event store, its intervals and lot ETAs, the
engines' per-lot records behind it, and `twin forecast` / `twin backtest` refusing bad input
before anything runs."""

from __future__ import annotations

import json
import math
import shutil

import numpy as np
import pytest

from tests.forecast.conftest import DEMO
from twin.cli import main
from twin.forecast import forecast
from twin.live.events import format_time, parse_time
from twin.whatif.runner import Serial

AT = "2026-01-04T12:00:00Z"


@pytest.fixture(scope="module")
def result(short_store):
    return forecast(
        short_store, DEMO, at=AT, horizon="2d", reps=12, engine="reference", seed=3,
        executor=Serial(),
    )  # fmt: skip


def test_result_has_a_band_per_day_and_an_eta_per_lot_in_wip(result, short_store):
    """Two days give two rows whose bands are ordered p05 <= p10 <= p50 <= p90 <= p95; every
    lot active at T has an ETA, ordered too, after T and inside the horizon when given."""
    from twin.live.store import SQLiteStore

    assert len(result.days) == 2 and result.replications == 12
    for d in result.days:
        for key in ("outs", "wip", "cycle_time_days"):
            b = d[key]
            assert b["p05"] <= b["p10"] <= b["p50"] <= b["p90"] <= b["p95"], (key, b)
    with SQLiteStore(short_store, readonly=True) as st:
        state = st.state_at(parse_time(AT))
    active = {x.id for x in state.lots.values() if x.status in ("queued", "processing", "hold")}
    ids = {e.id for e in result.lots}
    assert ids and ids <= active and len(active - ids) <= 2  # finished, not yet reported
    at, end = parse_time(AT), parse_time(AT) + 2 * 86400
    for e in result.lots:
        qs = [e.p05, e.p10, e.p50, e.p90, e.p95]
        given = [q for q in qs if q is not None]
        assert given == sorted(given) and all(at < q <= end for q in given)
        assert (e.p50 is None) == (e.finished_share <= 0.5)  # the median of an even n
        assert qs[: len(given)] == given  # a missing quantile is a later one ("> horizon")
    doc = result.to_json()
    assert doc["at"] == format_time(at) and "[p10, p90]" in doc["intervals"]
    assert (
        doc["bottleneck"]["family"] in {f for f in ("Litho_FE_3", "Diffusion_FE_1")}
        or doc["bottleneck"]["utilisation"]["p50"] > 0.5
    )


def test_bottleneck_utilisation_per_day(result):
    """Each day has the bottleneck's utilisation that day as a band over every replication
    (ordered, within 0..1), as do the top families; the text table shows it."""
    from twin.forecast.commands import format_forecast

    bn = result.bottleneck
    assert bn["family"] and len(bn["top"][0]["by_day"]) == len(result.days) == 2
    for k, d in enumerate(result.days):
        b = d["bottleneck_utilisation"]
        assert b["n"] == result.replications
        assert 0.0 <= b["p05"] <= b["p10"] <= b["p50"] <= b["p90"] <= b["p95"] <= 1.0, b
        assert b == bn["top"][0]["by_day"][k]
    # the horizon's utilisation lies between the days' (one hour past the horizon aside)
    means = [d["bottleneck_utilisation"]["mean"] for d in result.days]
    assert min(means) - 0.05 <= bn["utilisation"]["mean"] <= max(means) + 0.05
    text = format_forecast(result)
    assert (
        "bottleneck util." in text
        and f"{result.days[1]['bottleneck_utilisation']['p50']:.3f}" in text
    )


def test_day_outs_agree_with_the_lot_etas(result):
    """The outs of day 0 in each replication include every start lot that replication finished
    on day 0: the p50 of day-0 outs is at least the number of lots whose p90 is in day 0."""
    at = parse_time(AT)
    sure = sum(1 for e in result.lots if e.p90 is not None and e.p90 < at + 86400)
    assert result.days[0]["outs"]["p50"] >= sure


def test_kernel_forecast_equals_the_reference(short_store, result):
    """The kernel engine gives the same forecast (the engines agree exactly), through the
    same per-lot records (Replication.lots) and WIP samples."""
    k = forecast(
        short_store, DEMO, at=AT, horizon="2d", reps=12, engine="kernel", seed=3,
        executor=Serial(),
    )  # fmt: skip
    assert k.days == result.days
    assert [(e.id, e.p50) for e in k.lots] == [(e.id, e.p50) for e in result.lots]


def test_lot_records_only_when_asked():
    """Replication.lots is filled only with RunConfig(lot_records=True) (memory of long runs)."""
    from twin.process import load_model
    from twin.whatif.runner import RunConfig, run_whatif

    model = load_model(DEMO / "process")
    runs = [
        run_whatif(model, None, RunConfig(days=2, replications=1, lot_records=flag),
                   executor=Serial(), progress=False).replications["baseline"][0]
        for flag in (False, True)
    ]  # fmt: skip
    assert runs[0].lots == {}
    lots = runs[1].lots
    assert set(lots) == {"id", "product", "release", "completion"}
    assert len(lots["id"]) == runs[1].kpis["fab.lots_completed"] > 0
    assert np.all(np.diff(lots["completion"]) >= 0)


def test_forecast_cli_json(short_store, capsys):
    """`twin forecast --json` prints the result: days, lots with ISO times or "> horizon"."""
    argv = ["forecast", "--store", str(short_store), "--model", str(DEMO), "--at", AT,
            "--horizon", "36h", "-r", "3", "--workers", "1", "--json", "-q"]  # fmt: skip
    assert main(argv) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["horizon_days"] == 1.5 and len(doc["days"]) == 2
    assert doc["days"][1]["to_hours"] == 36.0
    assert all(lot["p50"] == "> horizon" or lot["p50"].endswith("Z") for lot in doc["lots"])


def _never_run(monkeypatch):
    import twin.whatif.runner as runner

    def boom(*a, **k):
        raise AssertionError("a simulation ran")

    monkeypatch.setattr(runner, "run_whatif", boom)


@pytest.mark.parametrize(
    ("extra", "says"),
    [
        (["--at", "2025-12-31T00:00:00Z"], "is before the first event"),
        (["--at", "garbage"], "--at garbage"),
        (["--at", "1e20"], "--at 1e20"),
        (["--at", "\ud800"], "--at \\ud800"),
        (["--at", "nan"], "--at nan"),
        (["--horizon", "garbage"], "--horizon garbage"),
        (["--horizon=-3d"], "more than 0 and at most 90 days"),
        (["--horizon", "1e300d"], "at most 90 days"),
        (["--horizon", "\ud800"], "--horizon \\ud800"),
        (["-r", "0"], "-r 0: replications"),
        (["-r", "1000000000"], "-r 1000000000"),
        (["--calibrated", "/nonexistent/dir"], "--calibrated /nonexistent/dir: no such folder"),
        (["--rules", "nope"], "nope"),
        (["--engine", "reference", "--seed", "-1"], "seed -1"),
    ],
)
def test_forecast_cli_refuses_bad_input_before_running(
    short_store, capsys, monkeypatch, extra, says
):
    """Bad --at (before the first event, garbage, huge, a lone surrogate, NaN, an empty fab),
    --horizon (garbage, negative, huge, a lone surrogate), -r (0, huge), --calibrated, --rules
    or --seed: exit 1 with the problem named, and no simulation runs."""
    _never_run(monkeypatch)
    argv = ["forecast", "--store", str(short_store), "--model", str(DEMO), "--workers", "1",
            "-q", *extra]  # fmt: skip
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert says in err, err


def test_cli_refuses_missing_and_empty_stores(tmp_path, capsys, monkeypatch):
    """A store that does not exist, holds no events, or holds no lot in WIP at T (a fab with
    too little history) is refused naming it."""
    from twin.live.events import Event
    from twin.live.store import SQLiteStore

    _never_run(monkeypatch)
    empty, idle = tmp_path / "empty.db", tmp_path / "idle.db"
    SQLiteStore(empty).close()
    with SQLiteStore(idle) as st:
        st.append([Event("mes:1", "mes", 1, parse_time(AT), "equipment.state", "DIF01",
                         {"state": "standby", "reason": "idle"})])  # fmt: skip
    for store, says in (
        (tmp_path / "none.db", "no such event store"),
        (empty, "no events"),
        (idle, "no lot is in WIP"),
    ):
        assert main(["forecast", "--store", str(store), "--model", str(DEMO), "-q"]) == 1
        assert says in capsys.readouterr().err


def test_model_whose_families_do_not_match_the_store_is_refused(
    short_store, tmp_path, capsys, monkeypatch
):
    """An SMT2020 folder whose tool counts differ from the store's catalog (one litho tool
    more) is refused naming the family; so is a calibrated folder of another model."""
    _never_run(monkeypatch)
    other = tmp_path / "process"
    shutil.copytree(DEMO / "process", other)
    tool = other / "tool.txt"
    lines = tool.read_text().splitlines()
    lines = [ln.replace("\t3.0\tLitho", "\t4.0\tLitho") for ln in lines]
    tool.write_text("\n".join(lines) + "\n")
    assert main(["forecast", "--store", str(short_store), "--model", str(other), "-q"]) == 1
    assert "Litho_FE_3" in capsys.readouterr().err
    argv = ["forecast", "--store", str(short_store), "--model", str(DEMO), "--calibrated",
            str(other), "-q"]  # fmt: skip
    assert main(argv) == 1
    assert "tool families differ" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("extra", "says"),
    [
        (["--horizon", "7d"], "too little history"),
        (["--origins", "0"], "--origins 0"),
        (["--origins", "100000"], "--origins 100000"),
        (["--truth", "/nonexistent.yaml"], "no such scenario file"),
    ],
)
def test_backtest_cli_refuses_bad_input(short_store, capsys, monkeypatch, extra, says):
    """A store too short for the origins and horizon asked (with the days needed and held),
    origins 0 or huge, a missing truth file: exit 1, nothing runs."""
    _never_run(monkeypatch)
    argv = ["backtest", "--store", str(short_store), "--model", str(DEMO), "--horizon", "1d",
            "-q", *extra]  # fmt: skip
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert says in err, err
    if says == "too little history":
        assert "9 days in all; the store spans 6.00 days" in err


def test_horizon_parsing():
    """7d, 36h, 90m and plain days are accepted; the bound is 90 days."""
    from twin.errors import InputError
    from twin.forecast.source import parse_horizon

    assert parse_horizon("7d") == 7.0 and parse_horizon("36h") == 1.5
    assert math.isclose(parse_horizon("90m"), 90 / 1440) and parse_horizon(2) == 2.0
    for bad in ("inf", "1e400d", True, None, [1], "7 days", "90.001d"):
        with pytest.raises(InputError):
            parse_horizon(bad)


RESIDUALS = {
    "outs": {"p05": -0.5, "p10": -0.4, "p90": 0.4, "p95": 0.5, "n": 50},
    "wip": {"p05": -0.3, "p10": -0.2, "p90": 0.2, "p95": 0.3, "n": 50},
    "eta": {"p05": -0.5, "p10": -0.3, "p90": 0.3, "p95": 0.5, "n": 500},
}


def test_widen_contains_the_model_bands(short_store, tmp_path, capsys):
    """`twin forecast --widen BACKTEST.json` widens each band of outs, WIP and lot ETAs to
    contain both the simulated band and the mean (p50) plus the backtest's residual quantiles;
    it never narrows one, and a bound past the horizon becomes "> horizon"."""
    argv = ["forecast", "--store", str(short_store), "--model", str(DEMO), "--at", AT,
            "--horizon", "2d", "-r", "4", "--workers", "1", "--json", "-q"]  # fmt: skip
    assert main(argv) == 0
    raw = json.loads(capsys.readouterr().out)
    bt = tmp_path / "bt.json"
    bt.write_text(json.dumps({"calibrated": {"residuals": RESIDUALS}}))
    assert main([*argv, "--widen", str(bt)]) == 0
    wide = json.loads(capsys.readouterr().out)
    for d0, d1 in zip(raw["days"], wide["days"], strict=True):
        for kind in ("outs", "wip"):
            a, b = d0[kind], d1[kind]
            assert b["p05"] <= a["p05"] and b["p95"] >= a["p95"]
            q10 = RESIDUALS[kind]["p10"]
            assert b["p10"] <= b["mean"] + q10 * max(b["mean"], 1) + 1e-9
    later = 0
    for a, b in zip(raw["lots"], wide["lots"], strict=True):
        assert b["p05"] <= a["p05"]  # ISO strings order as times
        later += (a["p95"] != "> horizon") and (b["p95"] == "> horizon" or b["p95"] > a["p95"])
    assert later > 0
    assert "widened" in " ".join(wide["notes"])


@pytest.mark.parametrize(
    ("content", "says"),
    [
        ("not json", "not a readable backtest JSON"),
        ("[" * 100_000 + "]" * 100_000, "not a readable backtest JSON"),
        (json.dumps({"design": {"residuals": RESIDUALS}}), "no 'calibrated.residuals'"),
        (json.dumps({"calibrated": {"residuals": {**RESIDUALS, "eta": {"p05": "x"}}}}),
         "residuals.eta"),
        (json.dumps({"calibrated": {"residuals": {**RESIDUALS, "wip": {
            "p05": 1e300, "p10": 0, "p90": 0, "p95": 0}}}}), "residuals.wip"),
    ],
)  # fmt: skip
def test_widen_refuses_a_bad_file_before_running(
    short_store, tmp_path, capsys, monkeypatch, content, says
):
    """--widen with a file that is no JSON, nested too deep, lacks the model's residuals, or
    holds a non-number or a huge one: exit 1 naming it, nothing runs."""
    _never_run(monkeypatch)
    bt = tmp_path / "bt.json"
    bt.write_text(content)
    argv = ["forecast", "--store", str(short_store), "--model", str(DEMO), "--at", AT,
            "--widen", str(bt), "-q"]  # fmt: skip
    assert main(argv) == 1
    assert says in capsys.readouterr().err
