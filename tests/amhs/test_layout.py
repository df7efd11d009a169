"""Layout meets process: family placement on a layout and its reconciliation."""

from __future__ import annotations

import pytest

from twin.amhs.layout import LayoutConfig, place
from twin.errors import ConfigError, InputError
from twin.process import load_model
from twin.scene.load import BUILTIN_SCENES, load_scene


@pytest.fixture(scope="module")
def demo():
    return load_scene("demo-fab"), load_model(BUILTIN_SCENES / "demo-fab" / "process")


@pytest.fixture(scope="module")
def smat(smat_xlsx, hvlm):
    return load_scene(smat_xlsx), load_model(hvlm)


def test_demo_counts_match(demo):
    """A layout whose counts equal STNQTY places every family with 'same count'."""
    p = place(*demo)
    rows = p.reconciliation()
    assert len(rows) == 8
    assert all(r["action"] == "same count" and r["process"] == r["layout"] for r in rows)
    assert all(p.port_of[t] in demo[0].ports for f in p.families.values() for t in f.tools)


def test_hvlm_on_smat_reconciles_every_family(smat):
    """HVLM on SMAT2022: every tool family is placed; the delay family needs no tool."""
    p = place(*smat)
    assert len(p.families) == 105
    assert p.delays == frozenset({"Delay_32"})
    row = next(r for r in p.reconciliation() if r["family"] == "DE_BE_11")
    assert (row["process"], row["layout"], row["destinations"]) == (10, 12, 12)
    assert "DE_BE_11" in p.table()


def test_case_insensitive_family_match(smat):
    """A family spelt differently in case (DefMEt_FE_118 / DefMet_FE_118) is matched and said so."""
    p = place(*smat)
    fam = p.families["DefMEt_FE_118"]
    assert fam.layout_family == "DefMet_FE_118"
    assert "spells it" in fam.action


def test_model_rule_gives_stnqty_destinations(smat):
    """count_rule 'model': STNQTY destinations, process tool k at layout tool k mod L."""
    p = place(*smat, LayoutConfig(count_rule="model"))
    for f in p.families.values():
        assert len(f.tools) == f.process_count
    f = p.families["DE_BE_13"]  # 21 in the model, 16 in the layout
    assert f.tools[16] == f.tools[0] and "share" in f.action


def test_strict_rule_refuses_differences(smat):
    """count_rule 'strict': every count difference is listed in one error."""
    with pytest.raises(InputError) as e:
        place(*smat, LayoutConfig(count_rule="strict"))
    assert "DE_BE_11" in str(e.value) and len(e.value.problems) > 10


def test_family_without_layout_tool_is_an_error(demo):
    """A family the routes use with no tool in the layout is a clear error naming it."""
    scene, model = load_scene("demo-fab"), demo[1]
    for tool in scene.tools("Litho_FE_3"):
        tool.family = "Somewhere_Else"
    with pytest.raises(InputError, match="family Litho_FE_3 .*has no tool in the layout"):
        place(scene, model)


@pytest.mark.parametrize("rule", ["", "LAYOUT", "\ud800", None, 3, "x" * 10_000])
def test_bad_count_rule(demo, rule):
    """An unknown count rule is refused with the accepted ones named."""
    with pytest.raises(ConfigError, match="layout, model, strict"):
        place(*demo, LayoutConfig(count_rule=rule))


def test_relocate_uses_free_ports_of_the_bay(smat):
    """relocate (family, bay): the family's tools are served at free ports of that bay."""
    from twin.amhs.layout import relocate

    scene, model = smat
    p = place(scene, model)
    n = len(set(p.families["DE_FE_1"].tools))
    relocate(p, scene, (("DE_FE_1", "A10"),))
    fam = p.families["DE_FE_1"]
    ports = [p.port_of[t] for t in fam.tools]
    assert len(set(ports)) == n and "relocated to bay A10" in fam.action
    for port in ports:
        link = scene.ports[port]
        assert link.tool is None and scene.segments[link.segment].bay == "A10"


def test_relocate_errors(demo):
    """Relocation to a bay without free ports, an unknown bay or family: one clear error."""
    from twin.amhs.layout import relocate

    scene, model = demo
    p = place(scene, model)
    with pytest.raises(InputError) as e:
        relocate(p, scene, (("Litho_FE_3", "BAY2"), ("Litho_FE_3", "MARS"), ("\ud800", "BAY1")))
    text = str(e.value)
    assert "3 tools need free ports, the bay has 0" in text
    assert "no bay 'MARS'" in text and "unknown family" in text
