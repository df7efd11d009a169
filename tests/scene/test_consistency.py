"""Consistency between a scene and a process model, and validation of a scene on its own."""

from __future__ import annotations

import dataclasses

import pytest

from twin.datasets import PROJECT_ROOT
from twin.scene.consistency import check_consistency, reconcile_counts, utilisation, validate_scene
from twin.scene.folder import parse_scene
from twin.scene.graph import Node, translation
from twin.scene.load import load_scene

DEMO = PROJECT_ROOT / "scenes" / "demo-fab"


@pytest.fixture()
def pair():
    from twin.process import load_model

    return load_scene(DEMO), load_model(DEMO)


def _codes(findings):
    return sorted((f.code, f.family) for f in findings)


def test_missing_family_extra_tools_and_unknown_family(pair):
    """Removing a family's tools is an error; an extra tool and an unknown family are warnings."""
    scene, model = pair
    litho = [t.id for t in scene.tools("Litho_FE_3")]
    for tid in litho:  # re-label instead of deleting: the scene graph has no remove
        scene.node(tid).family = "Litho_FE_99"
    scene.node("TF01").family = "WE_FE_5"
    findings = check_consistency(scene, model)
    assert ("family-without-tools", "Litho_FE_3") in _codes(findings)
    assert ("unknown-family", "Litho_FE_99") in _codes(findings)
    assert ("count-differs", "WE_FE_5") in _codes(findings) and (
        "count-differs",
        "TF_FE_2",
    ) in _codes(findings)
    assert [f for f in findings if f.severity == "error"] == [
        f for f in findings if f.code == "family-without-tools"
    ]


def test_unused_family_is_reported(pair):
    """A family with tools that no route step uses is reported."""
    scene, model = pair
    model.families["Spare_1"] = dataclasses.replace(
        model.families["WE_FE_5"], name="Spare_1", count=1
    )
    scene.add(
        Node(
            id="SPARE",
            kind="tool",
            family="Spare_1",
            parent="BAY1",
            size=(1, 1, 1),
            transform=translation(0, 30),
        )
    )
    assert ("family-unused", "Spare_1") in _codes(check_consistency(scene, model))


def test_reconciliation_counts_sum_to_the_layout(smat_xlsx, hvlm):
    """SMAT2022 vs HVLM: layout counts sum to the 1,068 tools, model counts to the STNQTY total,
    and the one family spelt differently (DefMEt_FE_118 / DefMet_FE_118) is found."""
    from twin.process import load_model

    scene, model = load_scene(smat_xlsx), load_model(hvlm)
    rows = reconcile_counts(scene, model)
    assert sum(r.layout for r in rows) == 1068
    assert sum(r.model or 0 for r in rows) == sum(
        f.count for f in model.families.values() if not f.is_delay
    )
    findings = check_consistency(scene, model)
    errors = [f for f in findings if f.severity == "error"]
    assert [(f.code, f.family) for f in errors] == [("family-without-tools", "DefMEt_FE_118")]
    assert any("DefMEt_FE_118 (spelt differently)" in f.message for f in findings)
    differing = [r for r in rows if r.model is not None and r.layout and r.difference]
    assert len(differing) == sum(f.code == "count-differs" for f in findings) > 0


def test_validation_finds_overlaps_portless_tools_and_unreachable_rail():
    """Two boxes on the same spot, a tool with no port, and a dead-end rail are reported."""
    scene = parse_scene(
        """
        vehicle_types: {OHT: {length: 1, max_speed: 1, acceleration: 1, deceleration: 1, min_distance: 0.1}}
        rail:
          max_speed: 1
          nodes: {a: [0, 0], b: [5, 0]}
          segments: [{id: s, from: a, to: b}]
        tools:
          - {id: T1, family: F, size: [2, 2, 2], at: [1, 1]}
          - {id: T2, family: F, size: [2, 2, 2], at: [2, 1]}
        ports:
          - {id: P, tool: T1, segment: s, offset: 1}
        """.replace("\n        ", "\n")
    )
    codes = {f.code: f for f in validate_scene(scene)}
    assert set(codes) == {"overlap", "no-ports", "rail-unreachable"}
    assert "T1/T2" in codes["overlap"].message and "T2" in codes["no-ports"].message


def test_utilisation_matches_a_hand_calculation(pair):
    """Litho load equals (lots/day × passes × minutes per lot) / (tools × minutes per day) / availability."""
    _, model = pair
    lots_per_day = {"A": 1440 / 144 + 1440 / 2880, "B": 1440 / 144}
    passes = {"A": 3, "B": 2}
    minutes = 2.8 * 25 + 1 + 1  # per-piece time × wafers + load + unload
    busy = sum(lots_per_day[p] * passes[p] for p in "AB") * minutes / (3 * 1440)
    availability = (10080 / (10080 + 240)) * (1 - 8 / (30 * 24))
    assert utilisation(model)["Litho_FE_3"] == pytest.approx(busy / availability, rel=1e-9)
