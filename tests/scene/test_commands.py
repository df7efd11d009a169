"""`twin scene ...` commands, run through the real CLI entry point."""

from __future__ import annotations

import json
import shutil

import pytest

from twin.cli import main
from twin.datasets import PROJECT_ROOT

DEMO = PROJECT_ROOT / "scenes" / "demo-fab"


def test_info_json_has_the_documented_keys(capsys):
    """`twin scene info SRC --json` prints nodes, tools, bays, rail, ports, vehicles and bbox."""
    assert main(["scene", "info", str(DEMO), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    for key in (
        "nodes",
        "tools",
        "bays",
        "rail_nodes",
        "rail_segments",
        "ports",
        "vehicles",
        "bbox",
    ):
        assert key in data
    assert data["tools"] == 30 and set(data["bbox"]) == {"min", "max"}
    assert sum(data["families_tools"].values()) == 30


def test_info_text_lists_families(capsys):
    """The human output names every family with its tool count."""
    assert main(["scene", "info", str(DEMO)]) == 0
    out = capsys.readouterr().out
    assert "Litho_FE_3" in out and "rail length" in out


def test_check_passes_on_the_demo_and_fails_on_a_broken_copy(tmp_path, capsys):
    """The demo checks clean (exit 0); a copy whose litho tools lost their family exits 1."""
    assert main(["scene", "check", str(DEMO)]) == 0
    assert "0 errors" in capsys.readouterr().out
    broken = tmp_path / "broken"
    shutil.copytree(DEMO, broken)
    text = (broken / "scene.yaml").read_text().replace("family: Litho_FE_3", "family: Litho_X")
    (broken / "scene.yaml").write_text(text)
    assert main(["scene", "check", str(broken), "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["errors"] == 1 and report["findings"][0]["code"] == "family-without-tools"


def test_bad_source_exits_1_with_the_problem(tmp_path, capsys):
    """A malformed scene file exits 1 and prints file:line on stderr."""
    (tmp_path / "scene.yaml").write_text("tools: [\n")
    assert main(["scene", "info", str(tmp_path)]) == 1
    assert "scene.yaml:2" in capsys.readouterr().err


def test_export_writes_a_glb(tmp_path, capsys):
    """`twin scene export SRC OUT.glb` writes a glTF 2 binary."""
    out = tmp_path / "fab.glb"
    assert main(["scene", "export", str(DEMO), str(out)]) == 0
    assert out.read_bytes()[:4] == b"glTF"


def test_render_writes_a_png(tmp_path):
    """`twin scene render` draws the demo through the physics renderer into a PNG."""
    pytest.importorskip("pybullet")
    pytest.importorskip("twin.physics.render")
    out = tmp_path / "fab.png"
    assert (
        main(
            [
                "scene",
                "render",
                str(DEMO),
                str(out),
                "--width",
                "320",
                "--height",
                "240",
                "--camera",
                "17,-30,30",
                "--target",
                "17,25,0",
            ]
        )
        == 0
    )
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
