"""The as-built check recovers known moves and the scanner's frame from a synthetic scan."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tests.scan.fabs import small_fab
from twin.errors import ConfigError, InputError
from twin.scan.align import AlignConfig, align_scan, measure_tools
from twin.scan.geometry import moved_pose, yaw_of
from twin.scan.register import ransac_levelled
from twin.scan.synth import Move, ScanConfig, synthesize

MOVES = [Move("T01", 0.20, -0.10, 3.0), Move("T12", -0.15, 0.0, -2.0), Move("S1", 0.0, 0.30, 0.0)]
FRAME = (6.0, -4.0, 0.3, 35.0)  # the scanner's frame: shifted and turned against the fab's


@pytest.fixture(scope="module")
def case():
    """One noisy, occluded scan (3 mm noise, 2 % stray points) of the small fab, and its check."""
    scene = small_fab()
    config = ScanConfig(points=150_000, noise_mm=3.0, outliers=0.02, cell=12.0, frame=FRAME, seed=5)
    scan = synthesize(scene, config, MOVES)
    result = align_scan(scan.points, scene, AlignConfig())
    return scene, scan, result


def test_global_registration_recovers_the_scan_frame(case):
    """The scan → scene transform matches the scanner frame the scan was made in."""
    _, scan, result = case
    t, truth = result.scan_to_scene, scan.scan_to_scene
    assert np.linalg.norm(t[:3, 3] - truth[:3, 3]) < 0.02
    turn = math.degrees(math.acos(np.clip((np.trace(t[:3, :3].T @ truth[:3, :3]) - 1) / 2, -1, 1)))
    assert turn < 0.2
    assert result.init != "identity", "a 35° turn cannot be fixed by ICP from the identity"
    assert result.fitness > 0.8


def test_known_moves_are_recovered(case):
    """Each moved tool's shift is found within 3 cm and its turn within 0.5°, and it is flagged."""
    _, _, result = case
    by_id = {t.id: t for t in result.tools}
    for m in MOVES:
        t = by_id[m.tool]
        assert t.status == "moved", t
        assert math.hypot(t.dx - m.dx, t.dy - m.dy) < 0.03, t
        assert abs(t.dyaw_deg - m.dyaw) < 0.5, t


def test_unmoved_tools_are_not_flagged(case):
    """Every tool that was not moved is measured as in place (within tolerance)."""
    scene, _, result = case
    moved = {m.tool for m in MOVES}
    rest = [t for t in result.tools if t.id not in moved]
    assert len(rest) == len(scene.tools()) + len(scene.nodes("stocker")) - len(moved)
    assert all(t.status in ("ok", "unobserved") for t in rest), [
        t for t in rest if t.status == "moved"
    ]
    seen = [t for t in rest if t.status == "ok"]
    assert len(seen) >= len(rest) - 2, "nearly every tool is observed from the grid of scanners"
    assert max(t.distance for t in seen) < 0.02
    assert max(abs(t.dyaw_deg) for t in seen) < 0.3


def test_corrected_poses_written_back(case, tmp_path):
    """Applying the result moves flagged tools to their true poses; the scene folder keeps them."""
    from twin.scene.folder import save_folder
    from twin.scene.load import load_scene

    scene, _, result = case
    scene = small_fab()  # a fresh copy: the fixture's scene stays as planned
    before = {m.tool: scene.world_transform(m.tool).copy() for m in MOVES}
    assert result.apply(scene) == len(MOVES)
    back = load_scene(save_folder(scene, tmp_path / "as-built"))
    for m in MOVES:
        truth = moved_pose(before[m.tool], m.dx, m.dy, math.radians(m.dyaw))
        for s in (scene, back):
            pose = s.world_transform(m.tool)
            assert np.linalg.norm(pose[:2, 3] - truth[:2, 3]) < 0.03
            assert abs(math.degrees(yaw_of(pose) - yaw_of(truth))) < 0.5


def test_a_scan_of_something_else_is_refused():
    """A cloud that does not match the scene (random points) is an error, not a bogus report."""
    scene = small_fab()
    junk = np.random.default_rng(0).uniform([-5, -5, 0], [35, 30, 4], size=(2_000, 3))
    with pytest.raises(InputError, match="does not match scene 'small-fab'"):
        align_scan(junk, scene, AlignConfig(global_method="footprint"))


def test_bad_scan_file_named(tmp_path):
    """A bad scan file reaches the user as an InputError naming it."""
    path = tmp_path / "scan.ply"
    path.write_bytes(b"")
    with pytest.raises(InputError, match="scan.ply"):
        align_scan(path, small_fab())


def test_bad_config_lists_every_problem():
    """An align config with several bad fields names all of them."""
    with pytest.raises(ConfigError) as err:
        AlignConfig(voxel=0, tolerance_mm=-1, init="guess", global_method="magic").validate()
    assert len(err.value.problems) == 4


def test_levelled_ransac_finds_a_pose_among_outliers():
    """4-DOF RANSAC recovers a known x, y, z, yaw from correspondences that are 90 % wrong."""
    rng = np.random.default_rng(2)
    src = rng.uniform(-20, 20, size=(2000, 3))
    yaw, shift = math.radians(-70.0), np.array([3.0, -8.0, 0.5])
    c, s = math.cos(yaw), math.sin(yaw)
    rot = np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])
    ref = src @ rot.T + shift
    wrong = rng.random(len(src)) < 0.9
    ref[wrong] = rng.uniform(-30, 30, size=(wrong.sum(), 3))
    ref[~wrong] += rng.normal(0, 0.02, size=((~wrong).sum(), 3))
    best = ransac_levelled(src, ref, 0.1, 20_000, np.random.default_rng(0))[0]
    assert np.allclose(best[:3, 3], shift, atol=0.1)
    assert abs(math.degrees(yaw_of(best) - yaw)) < 0.5


def test_nan_scan_array_refused():
    """An array scan with only NaN points is an InputError before any registration."""
    with pytest.raises(InputError, match="NaN"):
        align_scan(np.full((100, 3), np.nan), small_fab())


def test_one_visible_face_is_reported_as_weak():
    """A tool seen on one face only is measured along that face's normal and marked unconstrained."""
    from tests.scan.fabs import one_box

    scene = one_box()
    config = ScanConfig(points=40_000, noise_mm=2.0, positions=[(-3.0, 0.0)], seed=2)
    scan = synthesize(scene, config, [Move("T", 0.2, 0.0, 0.0)])
    # The tool fit alone (the scan is in fab coordinates): with one box in view, whole-scan
    # registration could not tell a moved tool from a moved scanner.
    (t,) = measure_tools(scan.points, scene, AlignConfig())
    assert t.status == "moved"
    assert abs(t.dx - 0.2) < 0.01
    assert not t.constrained
