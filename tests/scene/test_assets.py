"""Mesh assets: loaders per format, unit/up normalisation, sharing, and meshes made by others."""

from __future__ import annotations

import os
import struct

import numpy as np
import pytest
import trimesh

from twin.errors import InputError, UnsupportedFormatError
from twin.scene.assets import LOADERS, Y_UP_TO_Z_UP, AssetLibrary, load_mesh


def _box(tmp_path, name: str, extents=(1.0, 2.0, 3.0)) -> str:
    mesh = trimesh.creation.box(extents)
    mesh.apply_translation((0, 0, extents[2] / 2))
    path = tmp_path / name
    mesh.export(path)
    return path


@pytest.mark.parametrize("fmt", ["obj", "stl", "ply"])
def test_every_format_loads_with_its_bounds(tmp_path, fmt):
    """Each registered format reads back a box with the bounds it was written with."""
    mesh = load_mesh(_box(tmp_path, f"b.{fmt}"))
    np.testing.assert_allclose(mesh.bounds, [[-0.5, -1, 0], [0.5, 1, 3]], atol=1e-6)


def test_glb_is_read_as_y_up_by_default(tmp_path):
    """A glTF file is Y-up by its specification, so its +Y becomes the twin's +Z."""
    mesh = trimesh.creation.box((1.0, 2.0, 3.0))  # extents along x, y, z of the file
    path = tmp_path / "b.glb"
    mesh.export(path)
    np.testing.assert_allclose(load_mesh(path).extents, [1.0, 3.0, 2.0], atol=1e-6)
    np.testing.assert_allclose(load_mesh(path, up="z").extents, [1.0, 2.0, 3.0], atol=1e-6)


@pytest.mark.parametrize(
    ("unit", "factor"), [("mm", 0.001), ("cm", 0.01), ("in", 0.0254), ("m", 1.0)]
)
def test_units_scale_to_metres(tmp_path, unit, factor):
    """A mesh in mm/cm/in/m is scaled by the unit's length in metres."""
    mesh = load_mesh(_box(tmp_path, "b.stl", (100.0, 200.0, 300.0)), unit=unit)
    np.testing.assert_allclose(mesh.extents, np.array([100.0, 200.0, 300.0]) * factor, rtol=1e-9)


def test_y_up_rotation_is_a_proper_rotation():
    """The Y-up to Z-up change of frame is a rotation (det +1) sending +Y to +Z."""
    r = Y_UP_TO_Z_UP[:3, :3]
    assert np.isclose(np.linalg.det(r), 1.0)
    np.testing.assert_allclose(r @ [0, 1, 0], [0, 0, 1])


def test_unsupported_format_names_the_supported_ones(tmp_path):
    """An unknown extension raises UnsupportedFormatError listing every registered format."""
    path = tmp_path / "tool.fbx"
    path.write_bytes(b"x")
    with pytest.raises(UnsupportedFormatError) as err:
        load_mesh(path)
    assert "fbx" in str(err.value) and all(f in str(err.value) for f in LOADERS)


def test_missing_and_corrupt_files_name_the_file(tmp_path):
    """A missing file and a corrupt file each raise InputError naming that file."""
    with pytest.raises(InputError, match="nothere.obj"):
        load_mesh(tmp_path / "nothere.obj")
    bad = tmp_path / "broken.glb"
    bad.write_bytes(b"glTF\x02\x00\x00\x00garbage")
    with pytest.raises(InputError, match="broken.glb"):
        load_mesh(bad)
    empty = tmp_path / "empty.obj"
    empty.write_text("# nothing\n")
    with pytest.raises(InputError, match="empty.obj"):
        load_mesh(empty)


def test_library_shares_geometry(tmp_path):
    """Same file+options, or a copy with the same bytes, share one mesh; other options do not."""
    a = _box(tmp_path, "a.stl")
    b = tmp_path / "copy.stl"
    b.write_bytes(a.read_bytes())
    lib = AssetLibrary()
    x, y, z = lib.load("x", a), lib.load("y", b), lib.load("z", a, unit="mm")
    assert x.mesh is y.mesh and x.hull is y.hull
    assert z.mesh is not x.mesh
    assert (x.id, y.id) == ("x", "y")
    assert lib.loads == 2 and len(lib) == 2


def test_hull_contains_the_mesh(tmp_path):
    """The convex hull is convex and its bounds equal the mesh's bounds."""
    asset = AssetLibrary().load("a", _box(tmp_path, "a.ply"))
    assert asset.hull.is_convex
    np.testing.assert_allclose(asset.hull.bounds, asset.bounds, atol=1e-9)


# ------------------------------------------------------- meshes made by others (pybullet_data)
def _obj_vertex_bounds(path) -> np.ndarray:
    rows = [line.split()[1:4] for line in open(path, encoding="latin-1") if line.startswith("v ")]
    v = np.array(rows, dtype=float)
    return np.array([v.min(axis=0), v.max(axis=0)])


def _binary_stl_bounds(path) -> np.ndarray:
    data = open(path, "rb").read()
    (n,) = struct.unpack_from("<I", data, 80)
    rec = np.frombuffer(
        data,
        dtype=np.dtype([("n", "<f4", 3), ("v", "<f4", (3, 3)), ("a", "<u2")]),
        count=n,
        offset=84,
    )
    v = rec["v"].reshape(-1, 3).astype(float)
    return np.array([v.min(axis=0), v.max(axis=0)])


@pytest.fixture(scope="module")
def pybullet_data_dir():
    pybullet_data = pytest.importorskip("pybullet_data")
    return pybullet_data.getDataPath()


@pytest.mark.parametrize(
    "name", ["cube.obj", "duck.obj", "teddy2_VHACD_CHs.obj", "sphere_smooth.obj", "bunny.obj"]
)
def test_pybullet_obj_bounds(pybullet_data_dir, name):
    """OBJ meshes shipped with pybullet load with the bounds of their own 'v' lines."""
    path = os.path.join(pybullet_data_dir, name)
    mesh = load_mesh(path, up="z")
    np.testing.assert_allclose(mesh.bounds, _obj_vertex_bounds(path), atol=1e-5)


@pytest.mark.parametrize("name", ["l_finger.stl", "l_finger_tip.stl", "l_finger_collision.stl"])
def test_pybullet_stl_bounds(pybullet_data_dir, name):
    """Binary STL meshes shipped with pybullet load with the bounds of their raw triangles."""
    path = os.path.join(pybullet_data_dir, name)
    np.testing.assert_allclose(load_mesh(path).bounds, _binary_stl_bounds(path), atol=1e-5)
