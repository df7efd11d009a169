"""The SMT2020 loader against the facts counted from the HVLM files, and its error reporting."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from twin.errors import InputError, UnsupportedFormatError
from twin.process import DELAY_FAMILY, load_model
from twin.process.model import uniform_bounds


@pytest.fixture(scope="module")
def model(hvlm):
    return load_model(hvlm)


def test_products_and_routes(model):
    """HVLM has 2 products: part_3 with 583 steps and part_4 with 343 steps."""
    assert set(model.products) == {"part_3", "part_4"}
    assert len(model.route_of("part_3").steps) == 583
    assert len(model.route_of("part_4").steps) == 343


def test_families_and_areas(model):
    """105 tool families plus the Delay_32 pseudo family; 12 STNGRP values (11 real areas)."""
    real = [f for f in model.families.values() if not f.is_delay]
    assert len(real) == 105
    assert model.families[DELAY_FAMILY].is_delay
    assert len({f.area for f in model.families.values()}) == 12
    assert len(model.areas) == 11 and "Litho" in model.areas
    assert model.families["Litho_FE_92"].count == 33
    assert model.families["DE_FE_86"].count == 135


def test_delay_steps_are_delays(model):
    """Steps on Delay_32 are delays, every other step names a real family."""
    steps = [s for r in model.routes.values() for s in r.steps]
    assert all(s.is_delay == (s.family == DELAY_FAMILY) for s in steps)
    assert any(s.is_delay for s in steps)


def test_wip_and_releases(model):
    """2,255 WIP lots; 5 release streams; regular lots every 51.69 min (in seconds)."""
    assert len(model.wip) == 2255
    types = {w.lot_type for w in model.wip}
    assert types == {"Lot_3", "Lot_4", "HotLot_3", "HotLot_4", "SuperHotLot_3"}
    rel = {r.lot_type: r for r in model.releases}
    assert len(rel) == 5
    assert rel["Lot_3"].interval == pytest.approx(51.69 * 60)
    assert rel["HotLot_4"].interval == pytest.approx(2016 * 60)
    assert rel["Lot_3"].wafers == 25 and rel["Lot_3"].priority == 10
    assert rel["SuperHotLot_3"].priority == 30 and rel["HotLot_3"].hot
    # DUE - START of Lot_4: 01/31/18 07:29:20 - 01/01/18 00:00:00
    assert rel["Lot_4"].due_offset == 30 * 86400 + 7 * 3600 + 29 * 60 + 20
    regular = rel["Lot_3"].rate_per_day + rel["Lot_4"].rate_per_day
    assert regular == pytest.approx(55.7, abs=0.05)


def test_step_features(model):
    """Batching, cascading, setups, rework, sampling and CQT of known steps, in SI units."""
    r3 = model.route_of("part_3")
    s1 = r3.steps[r3.index_of(1)]
    assert s1.per == "batch" and (s1.batch_min, s1.batch_max) == (125, 150)
    assert s1.mean == pytest.approx(501.33 * 60) and s1.spread == pytest.approx(25.0665 * 60)
    s2 = r3.steps[r3.index_of(2)]
    assert s2.per == "piece" and s2.part_interval == pytest.approx(0.639 * 60)
    s12 = r3.steps[r3.index_of(12)]
    assert s12.setup == "SU015_3" and s12.setup_time == pytest.approx(8 * 60)
    s67 = r3.steps[r3.index_of(67)]
    assert s67.rework_step == 65 and s67.rework_prob == pytest.approx(0.017)
    s81 = r3.steps[r3.index_of(81)]
    assert s81.sampling_percent == 41
    s30 = r3.steps[r3.index_of(30)]
    assert s30.cqt_step == 31 and s30.cqt_limit == pytest.approx(2 * 3600)
    s13 = r3.steps[r3.index_of(13)]
    assert s13.same_tool_step == 113


def test_setups_and_calendars(model):
    """Setup table, minimum runs, 11 breakdown calendars and wafer-count and time PMs."""
    assert model.setup_times[("DE_BE_13_1", "DE_BE_13_2")] == 7 * 60
    assert model.setup_times[(None, "SU128_1")] == 72 * 60
    assert model.min_runs["SU91_2"] == 7
    assert model.setup_groups["Implant_Gas"][0] == "SU128_1"
    assert len(model.downs) == 11
    assert model.downs["BREAK_Litho"].mttr.mean == pytest.approx(705.59 * 60)
    assert {p.by for p in model.pms.values()} == {"time", "wafers"}
    assert model.pms["DE_BE_11_WK"].interval == 2000
    assert model.pms["DefMet_BE_33_MN"].interval == 30 * 86400
    wk = [a for a in model.attachments if a.calendar == "DE_BE_11_WK"][0]
    assert wk.first.mean == 1880 and wk.target_kind == "family"
    litho = model.calendars_of("Litho_FE_92")
    assert any(a.kind == "down" and a.target == "Litho" for a in litho)
    assert model.transport.mean == 450 and model.transport.spread == 150


def test_spread_mode_parameter(hvlm):
    """ptime_spread_mode picks the uniform support: mean ± PTIME2 or mean ± PTIME2/2."""
    half = load_model(hvlm, ptime_spread_mode="half")
    assert half.ptime_spread_mode == "half"
    assert uniform_bounds(100.0, 10.0, "full") == (90.0, 110.0)
    assert uniform_bounds(100.0, 10.0, "half") == (95.0, 105.0)
    with pytest.raises(InputError, match="ptime_spread_mode"):
        load_model(hvlm, ptime_spread_mode="quarter")


def _copy(hvlm: Path, tmp_path: Path) -> Path:
    dst = tmp_path / "m"
    shutil.copytree(hvlm, dst)
    for f in dst.iterdir():
        f.chmod(0o644)
    return dst


def test_errors_name_file_line_column_and_list_all(hvlm, tmp_path):
    """Two bad values in two files give one InputError naming both file:line:column."""
    dst = _copy(hvlm, tmp_path)
    lines = (dst / "route_4.txt").read_text().splitlines()
    parts = lines[3].split("\t")
    parts[5] = "fast"  # PTIME, column 6
    lines[3] = "\t".join(parts)
    (dst / "route_4.txt").write_text("\n".join(lines) + "\n")
    tools = (dst / "tool.txt.1l").read_text().splitlines()
    t = tools[2].split("\t")
    t[12] = "-3"  # STNQTY, column 13
    tools[2] = "\t".join(t)
    (dst / "tool.txt.1l").write_text("\n".join(tools) + "\n")
    with pytest.raises(InputError) as err:
        load_model(dst)
    text = str(err.value)
    assert "route_4.txt:4:6 (PTIME): 'fast' is not a number" in text
    assert "tool.txt.1l:3:13 (STNQTY)" in text
    assert len(err.value.problems) == 2


def test_unknown_family_is_reported(hvlm, tmp_path):
    """A step naming a family missing from tool.txt.1l is reported with route and step."""
    dst = _copy(hvlm, tmp_path)
    text = (dst / "route_3.txt").read_text().replace("\tTF_Met_FE_45\t", "\tTF_Met_FE_999\t", 1)
    (dst / "route_3.txt").write_text(text)
    with pytest.raises(InputError, match=r"route r_3 step 4: family 'TF_Met_FE_999'"):
        load_model(dst)


def test_not_a_model_folder(tmp_path):
    """A folder without part.txt is not a process model."""
    with pytest.raises(UnsupportedFormatError):
        load_model(tmp_path)


def test_scene_folder_process_subfolder(hvlm, tmp_path):
    """A scene folder's process/ subfolder is loaded like the folder itself."""
    shutil.copytree(hvlm, tmp_path / "scene" / "process")
    model = load_model(tmp_path / "scene")
    assert len(model.wip) == 2255


def test_wip_release_dates(model, hvlm):
    """WIP lots are released at DUE minus the lot type's due offset ("due") or at START."""
    offsets = {r.lot_type: r.due_offset for r in model.releases}
    lot = model.wip[0]  # Init_Lot_3_2, due 01/02/18 06:19:32
    assert lot.due == 86400 + 6 * 3600 + 19 * 60 + 32
    assert lot.release == lot.due - offsets["Lot_3"] < 0
    start = load_model(hvlm, wip_release="start")
    assert all(w.release == 0 for w in start.wip)


def test_tool_table_is_read_as_tool_txt_1l_or_tool_txt(tmp_path):
    """The tool table is tool.txt.1l (AutoSched export) or, when only that exists, tool.txt."""
    demo = Path(__file__).resolve().parents[2] / "scenes" / "demo-fab" / "process"
    plain = load_model(demo)
    assert (demo / "tool.txt").exists() and plain.families
    copy = tmp_path / "process"
    shutil.copytree(demo, copy)
    (copy / "tool.txt").rename(copy / "tool.txt.1l")
    renamed = load_model(copy)
    assert {f: v.count for f, v in renamed.families.items()} == {
        f: v.count for f, v in plain.families.items()
    }


# ---- dispatching ranks (FWLRANK) and wake rules (WAKERESRANK) ------------------------------

TOOL_HEADER = "STNFAM\tRULE\tFWLRANK\tWAKERESRANK\tSTNQTY\tSTNGRP"


def _tools(*rows: str) -> tuple[dict, list[str]]:
    from twin.process.smt2020 import parse_tools

    problems: list[str] = []
    text = "\n".join([TOOL_HEADER, *rows]) + "\n"
    return parse_tools(text, "tool.txt", problems), problems


def test_hvlm_ranks_are_read(model):
    """HVLM lists rank_HP;rank_RSETUP;rank_FIFO on every family (rule_LSSU ones too)."""
    real = [f for f in model.families.values() if not f.is_delay]
    assert {f.ranks for f in real} == {("hp", "setup", "fifo")}
    assert sum(f.rule == "least_setup" for f in real) == 3
    assert sum(f.wake_least_setup for f in real) == 9


def test_every_format_rank_is_read_in_order():
    """FWLRANK's four ranks map to hp/setup/fifo/cr in the order given, any case, blanks
    and empty items skipped; an empty FWLRANK gives no ranks."""
    fams, problems = _tools(
        "A\trule_HotLotFIRST\trank_HP;rank_RSETUP;rank_CR\t\t1\tX",
        "B\trule_HotLotFIRST\t RANK_cr ; rank_fifo;;\twake_leastsetuptime\t1\tX",
        "C\trule_LSSU\t\t\t1\tX",
        "D\trule_FIFO\trank_FIFO\t\t1\tX",
        "E\trule_CR\trank_HP;rank_CR;rank_FIFO\t\t1\tX",
    )
    assert problems == []
    assert fams["A"].ranks == ("hp", "setup", "cr") and not fams["A"].wake_least_setup
    assert fams["B"].ranks == ("cr", "fifo") and fams["B"].wake_least_setup
    assert fams["C"].ranks == () and fams["D"].ranks == ("fifo",)
    assert fams["E"].ranks == ("hp", "cr", "fifo")


@pytest.mark.parametrize(
    "fwlrank, wake, expect",
    [
        ("rank_HP;rank_EDD", "", "tool.txt:2:3 (FWLRANK): rank 'rank_EDD' unknown; accepted:"),
        ("rank_HP;rank_hp", "", "tool.txt:2:3 (FWLRANK): rank 'rank_hp' listed twice"),
        ("\ud800", "", "rank '\\ud800' unknown"),
        ("rank_" * 20000, "", "...' (100000 characters) unknown; accepted: rank_HP, rank_RSETUP"),
        ("[[[[[[rank_HP]]]]]]", "", "rank '[[[[[[rank_HP]]]]]]' unknown"),
        ("rank_HP", "wake_Random", "tool.txt:2:4 (WAKERESRANK): 'wake_Random'; accepted:"),
        ("rank_HP", "\ud800", "(WAKERESRANK): '\\ud800'; accepted: wake_LeastSetupTime"),
    ],
)
def test_unknown_rank_or_wake_rule_is_refused(fwlrank, wake, expect):
    """An unknown, repeated or garbage rank or wake rule is a problem naming file, line,
    column and the accepted values; the family is not made."""
    fams, problems = _tools(f"A\trule_HotLotFIRST\t{fwlrank}\t{wake}\t1\tX")
    assert fams == {}
    assert any(expect in p for p in problems), problems
    assert all(len(p) < 300 for p in problems)  # a huge value is cut in the message


@pytest.mark.parametrize("rule", ["rule_FIFO", "rule_CR"])
def test_whole_order_rules_refuse_other_ranks(rule):
    """rule_FIFO and rule_CR are whole orders: FWLRANK ranks they would not use are refused
    (naming the order the rule keeps), not dropped."""
    fams, problems = _tools(f"A\t{rule}\trank_RSETUP;rank_HP\t\t1\tX")
    assert fams == {}
    assert len(problems) == 1 and "tool.txt:2:3 (FWLRANK)" in problems[0]
    assert "rule_HotLotFIRST, which follows FWLRANK" in problems[0]


def test_bad_rank_in_a_model_folder_is_an_input_error(tmp_path):
    """load_model raises InputError naming tool.txt, line and column of a bad FWLRANK."""
    demo = Path(__file__).resolve().parents[2] / "scenes" / "demo-fab" / "process"
    copy = tmp_path / "process"
    shutil.copytree(demo, copy)
    text = (copy / "tool.txt").read_text()
    (copy / "tool.txt").write_text(text.replace("rank_FIFO", "rank_SPT", 1))
    with pytest.raises(InputError, match=r"tool.txt:2:4 \(FWLRANK\): rank 'rank_SPT' unknown"):
        load_model(copy)


def test_model_validation_refuses_bad_ranks():
    """A model built in code with an unknown or repeated rank, or ranks not in a tuple, is
    refused by FabModel.validate (and so by both engines)."""
    from twin.process.model import FabModel, ToolFamily

    fams = {
        "A": ToolFamily(name="A", count=1, area="X", ranks=("hp", "edd")),
        "B": ToolFamily(name="B", count=1, area="X", ranks=("fifo", "fifo")),
        "C": ToolFamily(name="C", count=1, area="X", ranks=["hp"]),
    }
    problems = FabModel(families=fams).validate()
    assert "family A: rank 'edd': unknown; accepted: hp, setup, fifo, cr" in problems
    assert "family B: rank 'fifo' listed twice" in problems
    assert any(p.startswith("family C: ranks ['hp']: must be a tuple") for p in problems)
    deep: list = []
    for _ in range(100_000):  # deep nesting: the message is cut, not a RecursionError
        deep = [deep]
    fams = {"D": ToolFamily(name="D", count=1, area="X", ranks=(deep, "x" * 10**6))}
    problems = FabModel(families=fams).validate()
    assert len(problems) == 2 and all(len(p) < 200 for p in problems)
