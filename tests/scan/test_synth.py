"""The scan synthesiser against closed forms on a single box: surfaces, occlusion, noise, moves."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tests.scan.fabs import one_box
from twin.errors import ConfigError, InputError
from twin.scan.synth import Move, ScanConfig, synthesize

SCANNER = (-2.5, 0.5)  # in front of the box's -X face, lower than its top
HEIGHT = 1.6
BOX = (2.0, 3.0, 2.5)  # x in [-1, 1], y in [-1.5, 1.5], z in [0, 2.5]


def _scan(**kw):
    cfg = dict(points=20_000, noise_mm=0.0, positions=[SCANNER], height=HEIGHT, seed=3)
    cfg.update(kw)
    moves = cfg.pop("moves", [])
    return synthesize(one_box(BOX), ScanConfig(**cfg), moves)


def _box_gap(local: np.ndarray, size=BOX) -> np.ndarray:
    """Signed distance-like gap of local points to the box surface (0 on the surface)."""
    hx, hy, hz = size[0] / 2, size[1] / 2, size[2]
    return np.max(
        [np.abs(local[:, 0]) - hx, np.abs(local[:, 1]) - hy, local[:, 2] - hz, -local[:, 2]],
        axis=0,
    )


def test_points_lie_on_visible_surfaces_only():
    """Without noise every point is on the floor or on the one box face the scanner faces."""
    pts = _scan().points
    on_floor = np.abs(pts[:, 2]) < 1e-5
    box = pts[~on_floor]
    assert on_floor.sum() > 1000 and len(box) > 1000
    assert np.allclose(box[:, 0], -1.0, atol=1e-3), "only the -X face is visible (to float32 rays)"
    assert np.all(np.abs(box[:, 1]) <= 1.5 + 1e-5) and np.all(box[:, 2] <= 2.5 + 1e-5)


def test_occlusion_shadows_the_floor_behind_the_box():
    """Floor under and right behind the box (seen from the scanner) holds no points."""
    floor = _scan().points
    floor = floor[np.abs(floor[:, 2]) < 1e-5]
    under = (np.abs(floor[:, 0]) < 1.0) & (np.abs(floor[:, 1]) < 1.5)
    behind = (floor[:, 0] > 1.0) & (np.abs(floor[:, 1] - SCANNER[1]) < 0.5)
    assert not under.any() and not behind.any()
    beside = (floor[:, 0] > 1.0) & (np.abs(floor[:, 1]) > 2.8)  # visible past the box's sides
    assert beside.any()


def test_range_noise_has_the_configured_sigma():
    """Points on the visible face are off their true ray hit by N(0, sigma) in range."""
    sigma = 0.005
    pts = _scan(points=40_000, noise_mm=sigma * 1000).points
    face = pts[(np.abs(pts[:, 0] + 1.0) < 0.05) & (pts[:, 2] > 0.05)]
    s = np.array([*SCANNER, HEIGHT])
    d = face - s
    hit = s + d * ((-1.0 - s[0]) / d[:, 0])[:, None]  # where the same ray meets the face plane
    err = np.linalg.norm(d, axis=1) - np.linalg.norm(hit - s, axis=1)
    assert len(face) > 5000
    assert abs(err.mean()) < 0.0005
    assert err.std() == pytest.approx(sigma, rel=0.1)


def test_moved_tool_and_scanner_frame():
    """A moved tool is scanned at its new pose; scan_to_scene maps the cloud back to the fab."""
    move = Move("T", dx=0.5, dy=-0.2, dyaw=10.0)
    scan = _scan(moves=[move], frame=(4.0, -3.0, 0.2, 25.0))
    pts = scan.points @ scan.scan_to_scene[:3, :3].T + scan.scan_to_scene[:3, 3]
    box = pts[np.abs(pts[:, 2]) > 1e-5]
    yaw = math.radians(move.dyaw)
    rot = np.array(
        [[math.cos(yaw), -math.sin(yaw), 0], [math.sin(yaw), math.cos(yaw), 0], [0, 0, 1]]
    )
    local = (box - [move.dx, move.dy, 0.0]) @ rot
    assert len(box) > 1000
    assert np.abs(_box_gap(local)).max() < 1e-4
    assert scan.truth()["moves"] == {"T": {"dx": 0.5, "dy": -0.2, "dyaw_deg": 10.0}}


def test_deterministic_for_a_seed():
    """The same seed gives the same cloud; another seed a different one."""
    a, b, c = (
        _scan(noise_mm=2.0).points,
        _scan(noise_mm=2.0).points,
        _scan(noise_mm=2.0, seed=4).points,
    )
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)


def test_outliers_are_off_the_surfaces():
    """The outlier fraction adds that share of stray points, the count stays as asked."""
    pts = _scan(points=10_000, outliers=0.2).points
    assert len(pts) == 10_000
    on_floor = np.abs(pts[:, 2]) < 1e-5
    on_face = np.abs(pts[:, 0] + 1.0) < 1e-3
    stray = (~on_floor & ~on_face).mean()
    assert stray == pytest.approx(0.2, abs=0.02)


def test_bad_moves_listed_together():
    """Unknown tools and tools moved twice are all reported in one error."""
    with pytest.raises(InputError) as err:
        _scan(moves=[Move("X"), Move("T", 1.0), Move("T", 2.0)])
    assert len(err.value.problems) == 2
    assert "unknown tool 'X'" in str(err.value)


def test_bad_config_lists_every_problem():
    """A scan config with several bad fields names all of them."""
    with pytest.raises(ConfigError) as err:
        ScanConfig(points=0, noise_mm=-1, outliers=2, positions=[]).validate()
    assert len(err.value.problems) == 4


def test_move_parse():
    """TOOL:dx,dy,yaw parses; anything else is an InputError showing the expected form."""
    assert Move.parse("LITH01:0.25,-0.1,2") == Move("LITH01", 0.25, -0.1, 2.0)
    with pytest.raises(InputError, match="TOOL:dx,dy,yaw"):
        Move.parse("LITH01:0.25")


def test_density_falls_with_range_and_incidence():
    """Floor point density follows cos(incidence) / range² (a fixed angular step), in closed form."""
    from twin.scene.graph import Node, SceneGraph, translation

    scene = SceneGraph("strip")
    for k, x in enumerate((-20.0, 20.0)):  # two small tools: the floor spans x in [-22.5, 22.5]
        scene.add(
            Node(id=f"T{k}", kind="tool", size=(1.0, 1.0, 1.0), transform=translation(x, 0.0))
        )
    config = ScanConfig(points=80_000, noise_mm=0.0, positions=[(0.0, 0.0)], height=HEIGHT, seed=1)
    pts = synthesize(scene, config).points
    floor = pts[np.abs(pts[:, 2]) < 1e-5]

    def expected(lo: float, hi: float) -> float:
        """Integral of h / r³ over the strips lo <= |x| <= hi, |y| <= 2 (midpoint rule)."""
        x = np.linspace(lo, hi, 401)[:-1] + (hi - lo) / 800
        y = np.linspace(-2, 2, 801)[:-1] + 4 / 1600
        gx, gy = np.meshgrid(x, y)
        r = np.sqrt(gx**2 + gy**2 + HEIGHT**2)
        return 2 * float((HEIGHT / r**3).sum()) * (hi - lo) / 400 * 4 / 800

    def counted(lo: float, hi: float) -> int:
        ax = np.abs(floor[:, 0])
        return int(((ax >= lo) & (ax < hi) & (np.abs(floor[:, 1]) <= 2)).sum())

    assert counted(8, 10) > 1000
    ratio = counted(8, 10) / counted(14, 16)
    assert ratio == pytest.approx(expected(8, 10) / expected(14, 16), rel=0.1)
