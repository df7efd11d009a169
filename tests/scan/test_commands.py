"""`twin scan synth` and `twin scan align` end to end on a scene folder."""

from __future__ import annotations

import json

import pytest

from tests.scan.fabs import small_fab
from twin.cli import main
from twin.scene.folder import save_folder
from twin.scene.load import load_scene


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """The small fab written as a scene folder."""
    out = tmp_path_factory.mktemp("scene") / "small-fab"
    save_folder(small_fab(), out)
    return out


def test_synth_then_align_json_and_write_scene(folder, tmp_path, capsys):
    """A moved tool is found through the CLI, and --write-scene stores its as-built pose."""
    scan = tmp_path / "scan.ply"
    rc = main(["scan", "synth", str(folder), str(scan), "--points", "80000", "--seed", "2",
               "--move", "T11:0.3,-0.2,4", "--frame", "2,1,0,-15"])  # fmt: skip
    assert rc == 0 and scan.exists() and (tmp_path / "scan.truth.json").exists()
    truth = json.loads((tmp_path / "scan.truth.json").read_text())
    assert truth["moves"] == {"T11": {"dx": 0.3, "dy": -0.2, "dyaw_deg": 4.0}}
    capsys.readouterr()
    out_dir = tmp_path / "as-built"
    rc = main(["scan", "align", str(folder), str(scan), "--json", "--write-scene", str(out_dir)])
    report = json.loads(capsys.readouterr().out)
    assert rc == 0
    assert report["flagged"] == ["T11"]
    t11 = next(t for t in report["tools"] if t["id"] == "T11")
    assert abs(t11["dx_m"] - 0.3) < 0.03 and abs(t11["dy_m"] + 0.2) < 0.03
    assert abs(t11["dyaw_deg"] - 4.0) < 0.5
    before, after = load_scene(folder), load_scene(out_dir)
    shift = after.world_position("T11") - before.world_position("T11")
    assert abs(shift[0] - 0.3) < 0.03 and abs(shift[1] + 0.2) < 0.03
    assert (after.world_position("T12") == before.world_position("T12")).all()


def test_align_table_output(folder, tmp_path, capsys):
    """Without --json the report is a table that names the flagged tools."""
    scan = tmp_path / "scan.pcd"
    assert main(["scan", "synth", str(folder), str(scan), "--points", "60000",
                 "--move", "T02:0,0.25,0", "--position", "5,4", "--position", "20,13"]) == 0  # fmt: skip
    capsys.readouterr()
    assert main(["scan", "align", str(folder), str(scan), "--init", "identity"]) == 0
    out = capsys.readouterr().out
    assert "flagged beyond 50 mm / 1 deg: T02" in out


def test_bad_scan_and_bad_move_exit_1(folder, tmp_path, capsys):
    """A garbage scan file and an unknown tool in --move are user errors: exit 1, clear message."""
    junk = tmp_path / "junk.ply"
    junk.write_bytes(b"not a point cloud")
    assert main(["scan", "align", str(folder), str(junk)]) == 1
    err = capsys.readouterr().err
    assert "junk.ply" in err and "not a PLY file" in err
    assert main(["scan", "synth", str(folder), str(tmp_path / "x.ply"), "--move", "T99:1,0,0"]) == 1
    assert "unknown tool 'T99'" in capsys.readouterr().err
    assert main(["scan", "synth", str(folder), str(tmp_path / "x.ply"), "--position", "3"]) == 1
    assert "'3' is not X,Y" in capsys.readouterr().err
