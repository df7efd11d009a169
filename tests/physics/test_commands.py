"""`twin physics run` on the demo fab, and extra vehicles placed on free rail."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.physics.scenes import GAP, loop_scene
from twin.cli import main
from twin.errors import InputError
from twin.physics.fleet import add_vehicles
from twin.physics.oht import OhtSim

DEMO = Path(__file__).resolve().parents[2] / "scenes" / "demo-fab"


@pytest.fixture
def demo() -> Path:
    if not (DEMO / "scene.yaml").exists():
        pytest.skip("the demo fab scene folder is not there")
    return DEMO


def test_run_prints_the_promised_figures_as_json(demo, capsys):
    """--json prints sim/wall seconds, realtime factor, transfers, min headway and deadlocks."""
    code = main(
        [
            "physics",
            "run",
            str(demo),
            "--vehicles",
            "20",
            "--seconds",
            "240",
            "--seed",
            "5",
            "--json",
        ]
    )
    assert code == 0
    out = json.loads(capsys.readouterr().out)
    assert out["vehicles"] == 20 and out["sim_seconds"] == pytest.approx(240.0)
    assert out["transfers_completed"] > 0
    assert out["min_headway_m"] >= out["min_allowed_headway_m"] - 1e-9
    assert out["deadlocks"] == 0 and out["realtime_factor"] > 0
    assert out["wall_seconds"] > 0


def test_run_is_reproducible_with_a_seed(demo, capsys):
    """The same seed gives the same transfers."""
    outs = []
    for _ in range(2):
        main(["physics", "run", str(demo), "--seconds", "200", "--seed", "9", "--json"])
        outs.append(json.loads(capsys.readouterr().out)["transfers_completed"])
    assert outs[0] == outs[1]


def test_bad_arguments_are_errors(demo, capsys):
    """Non-positive seconds or vehicles exit with status 1 and a message."""
    assert main(["physics", "run", str(demo), "--seconds", "-5"]) == 1
    assert main(["physics", "run", str(demo), "--vehicles", "0"]) == 1
    assert "--vehicles" in capsys.readouterr().err


def test_added_vehicles_start_a_gap_apart():
    """Vehicles added on free rail keep length + min distance to every other vehicle."""
    scene = loop_scene(vehicles=2)
    ids = add_vehicles(scene, 30, seed=1)
    assert len(ids) == 30 and len(set(ids)) == 30
    sim = OhtSim(scene)  # refuses vehicles that start closer than the gap
    from tests.physics.test_oht import pairwise_gaps

    assert pairwise_gaps(sim) >= GAP - 1e-9
    with pytest.raises(InputError, match="room for"):
        add_vehicles(scene, 10_000)


def test_place_answers_clearance_from_the_command_line(demo, capsys):
    """`twin physics place` says a box in the open fits and one on a tool does not (exit 3)."""
    from twin.scene.load import load_scene

    scene = load_scene(demo)
    tool = scene.tools()[0]
    x, y, _ = scene.world_position(tool.id)
    code = main(["physics", "place", str(demo), "--size", "1,1,1", "--at", f"{x},{y}", "--json"])
    out = json.loads(capsys.readouterr().out)
    assert code == 3 and not out["ok"] and tool.id in out["blocking"]
    box = scene.scene_bbox()
    far = f"{box[1][0] + 20},{box[1][1] + 20}"
    code = main(
        ["physics", "place", str(demo), "--size", "1,1,1", "--at", far, "--margin", "0.5", "--json"]
    )
    out = json.loads(capsys.readouterr().out)
    assert code == 0 and out["ok"] and out["blocking"] == []


def test_place_yaw_is_in_degrees(demo, capsys):
    """`--at x,y,yaw` takes degrees: a 40 m long bar beside the fab fits along y (yaw 0, and
    yaw 1.5708 read as degrees) and reaches into the fab at yaw 90."""
    from twin.scene.load import load_scene

    scene = load_scene(demo)
    east = max(scene.tools(), key=lambda t: scene.world_position(t.id)[0])  # nearest the edge
    x, y = scene.scene_bbox()[1][0] + 3.0, scene.world_position(east.id)[1]
    answers = {}
    for yaw in ("0", "1.5707963", "90"):
        code = main(
            ["physics", "place", str(demo), "--size", "0.2,40,1", "--at", f"{x},{y},{yaw}",
             "--json"]
        )  # fmt: skip
        answers[yaw] = (code, json.loads(capsys.readouterr().out)["ok"])
    assert answers == {"0": (0, True), "1.5707963": (0, True), "90": (3, False)}
