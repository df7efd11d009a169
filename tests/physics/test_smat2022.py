"""The SMAT2022 layout: world build time and an hour of random transfers with its 500 vehicles."""

from __future__ import annotations

import json
import time

import pytest

from twin.physics.oht import OhtConfig, OhtSim

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def smat_scene(smat_xlsx):
    from twin.scene.load import load_scene

    return load_scene(smat_xlsx)


def test_smat_world_builds_within_five_seconds(smat_scene):
    """The full layout (1,116 tools, 40 stockers, rails, 500 vehicles) is a world in ≤ 5 s."""
    pytest.importorskip("pybullet")
    from twin.physics.world import PhysicsWorld

    start = time.perf_counter()
    with PhysicsWorld(smat_scene) as world:
        elapsed = time.perf_counter() - start
        kinds = list(world.kind_of.values())
        assert kinds.count("tool") == len(smat_scene.tools())
        assert kinds.count("vehicle") == 500
        assert kinds.count("stocker") == len(smat_scene.nodes("stocker"))
        # distinct tool footprints share collision shapes: far fewer shapes than bodies
        assert len(world._shapes) < len(world.body) / 10
    assert elapsed <= 5.0


def test_smat_hour_of_random_transfers_without_deadlock(smat_scene):
    """500 vehicles from their start positions run 3,600 s of random transfers: no deadlock, the
    headway always kept, no emergency braking, transfers completed throughout."""
    sim = OhtSim(smat_scene, OhtConfig(), seed=2022, random_transfers=True)
    assert sim.n == 500
    completed = []
    for _ in range(6):
        sim.advance(600.0)
        completed.append(sim.summary()["transfers_completed"])
    out = sim.summary()
    assert out["deadlocks"] == 0, out["deadlocked_vehicles"]
    assert out["emergency_brakes"] == 0
    assert out["min_headway_m"] >= out["min_allowed_headway_m"] - 1e-9
    assert all(b > a for a, b in zip(completed, completed[1:]))  # still flowing at the end
    assert out["sim_seconds"] == pytest.approx(3600.0)


def test_cli_physics_run_prints_the_figures(smat_xlsx, capsys):
    """`twin physics run SRC --vehicles N --seconds T --seed S --json` prints the promised keys."""
    from twin.cli import main

    code = main(
        [
            "physics",
            "run",
            str(smat_xlsx),
            "--vehicles",
            "40",
            "--seconds",
            "120",
            "--seed",
            "3",
            "--json",
        ]
    )
    assert code == 0
    out = json.loads(capsys.readouterr().out)
    for key in (
        "sim_seconds",
        "wall_seconds",
        "realtime_factor",
        "transfers_completed",
        "min_headway_m",
        "deadlocks",
    ):
        assert key in out
    assert out["vehicles"] == 40 and out["sim_seconds"] == pytest.approx(120.0)
    assert out["deadlocks"] == 0
