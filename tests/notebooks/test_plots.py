"""The notebooks' pictures (twin.notebook) draw exactly what the scene holds."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import trimesh

from twin.notebook import (
    _box_mesh,
    e10_timeline,
    family_colours,
    floor_plan,
    project_root,
    rail_lines,
    scene_figure,
)
from twin.physics.palette import state_colour
from twin.scene.load import load_scene

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def scene():
    return load_scene(ROOT / "scenes" / "demo-fab")


def test_floor_plan_draws_every_rail_and_footprint(scene) -> None:
    """One line per rail segment between its nodes, one rectangle per tool/stocker bbox."""
    import matplotlib

    matplotlib.use("agg")
    import matplotlib.pyplot as plt

    path = scene.rail_path("DIF01_P1", "MET03_P1")
    fig, ax = plt.subplots()
    floor_plan(scene, ax, path=path, candidates=[(5.0, 5.0, 2.0, 3.0, True)])
    rails, boxes, drawn_path = ax.collections
    segs = np.asarray(rails.get_segments())
    first = scene.segments[next(iter(scene.segments))]
    assert len(segs) == len(scene.segments)
    assert np.allclose(segs[0][0], scene.world_position(first.start)[:2])
    assert np.allclose(segs[0][1], scene.world_position(first.end)[:2])
    nodes = list(scene.nodes("tool")) + list(scene.nodes("stocker"))
    assert len(boxes.get_paths()) == len(nodes)
    corners = boxes.get_paths()[0].vertices
    bb = scene.bbox(nodes[0].id)
    assert np.allclose(corners.min(axis=0), bb[0, :2]) and np.allclose(
        corners.max(axis=0), bb[1, :2]
    )
    colours = family_colours(scene)
    assert len(set(colours.values())) == len(scene.families())
    lit = matplotlib.colors.to_hex(boxes.get_facecolors()[0])
    assert lit == colours[nodes[0].family]
    assert len(drawn_path.get_segments()) == len(path.segments)
    assert np.allclose(drawn_path.get_segments(), rail_lines(scene, path.segments)[:, :, :2])
    (candidate,) = ax.patches
    assert candidate.get_xy() == (
        4.0,
        3.5,
    ) and candidate.get_edgecolor() == matplotlib.colors.to_rgba("green")
    plt.close(fig)


def test_box_mesh_is_a_closed_box_of_the_right_volume() -> None:
    """Each box becomes 8 corners and 12 outward triangles: a watertight mesh of its volume."""
    boxes = np.array([[[0, 0, 0], [1, 2, 3]], [[5, 5, 0], [6, 7, 0.5]]], dtype=float)
    verts, faces = _box_mesh(boxes)
    assert verts.shape == (16, 3) and faces.shape == (24, 3)
    for k, box in enumerate(boxes):
        mesh = trimesh.Trimesh(verts[8 * k : 8 * k + 8], faces[12 * k : 12 * k + 12] - 8 * k)
        assert mesh.is_watertight
        assert mesh.volume == pytest.approx(np.prod(box[1] - box[0]))  # positive: faces outward


def test_scene_figure_boxes_match_the_scene(scene) -> None:
    """The 3D view has one trace per family holding exactly that family's bounding boxes."""
    fig = scene_figure(scene)
    meshes = {t.name: t for t in fig.data if t.type == "mesh3d"}
    assert set(meshes) == set(scene.families()) | {"stocker"}
    for fam, n in scene.families().items():
        pts = np.column_stack([meshes[fam].x, meshes[fam].y, meshes[fam].z])
        boxes = np.array([scene.bbox(t.id) for t in scene.tools(fam)])
        assert len(pts) == 8 * n
        assert np.allclose(pts.min(axis=0), boxes[:, 0].min(axis=0))
        assert np.allclose(pts.max(axis=0), boxes[:, 1].max(axis=0))
    (rail,) = [t for t in fig.data if t.name == "rail"]
    assert len(rail.x) == 3 * len(scene.segments)  # start, end, gap per segment


def test_e10_timeline_colours_each_tool_and_sample() -> None:
    """Cell (tool, sample) has the E10 state's colour; tools not reported yet are white."""
    import matplotlib

    matplotlib.use("agg")
    states = [{"A": None, "B": "standby"}, {"A": "productive", "B": "unscheduled_down"}]
    ax = e10_timeline([0.0, 1.0], states)
    grid = ax.images[0].get_array()
    assert grid.shape == (2, 2, 4)
    assert np.allclose(grid[0, 0], 1.0)  # A, first sample: unknown
    assert np.allclose(grid[0, 1], state_colour("productive"))
    assert np.allclose(grid[1, 1], state_colour("unscheduled_down"))


def test_project_root_found_from_inside_and_refused_outside(tmp_path: Path) -> None:
    """project_root walks up to the folder with pyproject.toml and scenes/, else says so."""
    assert project_root(ROOT / "notebooks") == ROOT
    assert project_root(ROOT / "twin" / "scene") == ROOT
    with pytest.raises(FileNotFoundError, match="pyproject.toml"):
        project_root(tmp_path)
