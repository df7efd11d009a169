"""The demo fab: what the issue asks of it, checked on the committed folder and the generator."""

from __future__ import annotations

import filecmp
from pathlib import Path

import networkx as nx
import numpy as np
import pytest

from twin.datasets import PROJECT_ROOT
from twin.scene.consistency import (
    check_consistency,
    overlapping_equipment,
    utilisation,
    validate_scene,
)
from twin.scene.demo import generate
from twin.scene.load import load_scene

DEMO = PROJECT_ROOT / "scenes" / "demo-fab"


@pytest.fixture(scope="module")
def demo():
    return load_scene(DEMO)


@pytest.fixture(scope="module")
def model():
    from twin.process import load_model

    return load_model(DEMO)


def test_committed_demo_is_what_the_generator_writes(tmp_path):
    """Regenerating the demo fab reproduces the committed scene.yaml, process files and assets."""
    generate(tmp_path / "demo")
    for rel in ["scene.yaml", *[f"process/{p.name}" for p in (DEMO / "process").iterdir()]]:
        assert filecmp.cmp(tmp_path / "demo" / rel, DEMO / rel, shallow=False), rel
    for glb in (DEMO / "assets").glob("*.glb"):
        assert filecmp.cmp(tmp_path / "demo" / "assets" / glb.name, glb, shallow=False), glb.name


def test_demo_has_what_the_issue_asks(demo):
    """2+ bays, 30+ tools in 6+ families (furnace and litho included), stockers, 10+ vehicles, ports."""
    s = demo.summary()
    assert s["bays"] >= 2 and s["tools"] >= 30 and s["families"] >= 6
    assert s["stockers"] >= 1 and s["vehicles"] >= 10 and s["ports"] >= s["tools"]
    assets = {t.asset for t in demo.tools()}
    assert {"furnace", "litho_cell"} <= assets
    assert all(len(demo.ports_of(t.id)) >= 1 for t in demo.nodes(("tool", "stocker")))


def test_demo_geometry_is_sound(demo):
    """No equipment overlaps, the rail is one strongly connected loop, every check passes."""
    assert overlapping_equipment(demo) == []
    assert nx.is_strongly_connected(demo.rail)
    assert validate_scene(demo) == []
    assert any(s.curve for s in demo.segments.values())


def test_ports_are_under_the_rail_in_front_of_their_tool(demo):
    """Each port hangs under its rail stop, at most 0.5 m outside its tool's footprint."""
    for link in demo.ports.values():
        stop = demo.point_on_segment(link.segment, link.offset)
        p = demo.world_position(link.port)
        np.testing.assert_allclose(p[:2], stop[:2], atol=1e-9)
        box = demo.bbox(link.tool)[:, :2]
        gap = np.linalg.norm(np.maximum(np.maximum(box[0] - p[:2], p[:2] - box[1]), 0.0))
        assert gap < 0.5, (link.port, gap)


def test_ports_reach_each_other(demo):
    """A vehicle can drive between ports (72 pairs); path lengths add up from the segments."""
    ports = sorted(demo.ports)
    for a, b in zip(ports, ports[7:] + ports[:7]):
        path = demo.rail_path(a, b)
        inner = sum(demo.segment_between(u, v).length for u, v in zip(path.nodes, path.nodes[1:]))
        la, lb = demo.ports[a], demo.ports[b]
        if len(path.segments) > 1:
            head = demo.segment(la.segment).length - la.offset
            assert path.length == pytest.approx(head + inner + lb.offset)


def test_process_model_matches_the_layout(demo, model):
    """The SMT2020 files load, match every tool count, and use every family."""
    assert check_consistency(demo, model) == []
    assert len(model.products) >= 2
    for route in model.routes.values():
        fams = [s.family for s in route.steps]
        assert 20 <= len(fams) <= 40
        assert len(set(fams)) < len(fams)  # re-entrant
    steps = [s for r in model.routes.values() for s in r.steps]
    assert any(s.is_batch for s in steps) and any(s.setup for s in steps)
    assert model.downs and model.attachments and model.setup_times


def test_litho_is_the_bottleneck_at_85_to_90_percent(model):
    """Closed-form load (mean work × release rate / tools / availability): litho 85-90 %, the rest below."""
    util = utilisation(model)
    top = max(util, key=util.get)
    assert top == "Litho_FE_3" and 0.85 <= util[top] <= 0.90
    assert all(u < util[top] for f, u in util.items() if f != top)


def test_cli_demo_writes_a_loadable_folder(tmp_path: Path):
    """`twin scene demo DIR` writes a folder that loads with the same summary as the committed one."""
    from twin.cli import main

    assert main(["scene", "demo", str(tmp_path / "d")]) == 0
    assert load_scene(tmp_path / "d").summary() == load_scene(DEMO).summary()
