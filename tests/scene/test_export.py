"""GLB export: a viewer-ready file whose geometry round-trips, with each asset stored once."""

from __future__ import annotations

import numpy as np
import pytest
import trimesh

from twin.datasets import PROJECT_ROOT
from twin.scene.assets import Y_UP_TO_Z_UP
from twin.scene.export import export_glb
from twin.scene.load import load_scene

DEMO = PROJECT_ROOT / "scenes" / "demo-fab"


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    scene = load_scene(DEMO)
    path = export_glb(scene, tmp_path_factory.mktemp("glb") / "demo.glb")
    return scene, trimesh.load(path, process=False)


def _world_bounds(loaded: trimesh.Scene, frame: str) -> np.ndarray:
    matrix, geom = loaded.graph.get(frame)
    corners = trimesh.bounds.corners(loaded.geometry[geom].bounds)
    t = Y_UP_TO_Z_UP @ matrix  # back from glTF's Y-up to the twin's Z-up
    pts = corners @ t[:3, :3].T + t[:3, 3]
    return np.array([pts.min(axis=0), pts.max(axis=0)])


def test_file_is_binary_gltf(tmp_path):
    """The file starts with the glTF magic and version 2."""
    path = export_glb(load_scene(DEMO), tmp_path / "x.glb")
    head = path.read_bytes()[:8]
    assert head[:4] == b"glTF" and int.from_bytes(head[4:8], "little") == 2


def test_each_asset_is_stored_once(exported):
    """30 tools and 2 stockers use 9 assets: the file holds 9 asset meshes plus one box per kind."""
    scene, loaded = exported
    names = sorted(loaded.geometry)
    assert sorted(n for n in names if n.startswith("asset:")) == sorted(
        f"asset:{a}" for a in scene.assets
    )
    assert len(names) == len(scene.assets) + 3  # port, vehicle and rail boxes
    assert len(loaded.graph.nodes_geometry) == 32 + len(scene.ports) + 12 + len(scene.segments)


def test_asset_geometry_round_trips(exported):
    """Every asset mesh comes back with the same vertex and face counts and the same bounds."""
    scene, loaded = exported
    for aid, asset in scene.assets.items():
        mesh = loaded.geometry[f"asset:{aid}"]
        assert len(mesh.vertices) == len(asset.mesh.vertices) and len(mesh.faces) == len(
            asset.mesh.faces
        )
        np.testing.assert_allclose(mesh.bounds, asset.mesh.bounds, atol=1e-5)


def test_every_node_lands_where_the_scene_puts_it(exported):
    """World bounds of every tool, stocker and port in the re-imported file equal the scene's."""
    scene, loaded = exported
    for node in scene.nodes(("tool", "stocker")):
        np.testing.assert_allclose(
            _world_bounds(loaded, f"{node.id}/geometry"), scene.bbox(node.id), atol=1e-5
        )
    for port in scene.ports:
        centre = _world_bounds(loaded, f"{port}/geometry").mean(axis=0)
        np.testing.assert_allclose(centre[:2], scene.world_position(port)[:2], atol=1e-5)


def test_rail_beams_join_their_nodes(exported):
    """Each rail beam spans its segment's two nodes (ends within half the beam width)."""
    scene, loaded = exported
    for seg in list(scene.segments.values())[:20]:
        box = _world_bounds(loaded, f"rail/{seg.id}")
        for end in (seg.start, seg.end):
            p = scene.world_position(end)
            assert np.all(p[:2] >= box[0][:2] - 0.07) and np.all(p[:2] <= box[1][:2] + 0.07)


def test_gltf_json_is_well_formed(tmp_path):
    """Read the GLB container by hand (no trimesh): glTF 2.0, one mesh per stored geometry, every
    node's mesh index valid, every node reachable from the scene's root, buffer sizes consistent."""
    import json
    import struct

    scene = load_scene(DEMO)
    data = export_glb(scene, tmp_path / "d.glb").read_bytes()
    magic, version, total = struct.unpack_from("<4sII", data, 0)
    assert (magic, version, total) == (b"glTF", 2, len(data))
    json_len, json_type = struct.unpack_from("<I4s", data, 12)
    assert json_type == b"JSON"
    gltf = json.loads(data[20 : 20 + json_len])
    bin_len, bin_type = struct.unpack_from("<I4s", data, 20 + json_len)
    assert bin_type == b"BIN\x00" and gltf["buffers"][0]["byteLength"] <= bin_len
    assert gltf["asset"]["version"] == "2.0"
    assert len(gltf["meshes"]) == len(scene.assets) + 3
    nodes = gltf["nodes"]
    assert all(0 <= n["mesh"] < len(gltf["meshes"]) for n in nodes if "mesh" in n)
    seen, stack = set(), list(gltf["scenes"][gltf.get("scene", 0)]["nodes"])
    while stack:
        i = stack.pop()
        seen.add(i)
        stack.extend(nodes[i].get("children", []))
    assert seen == set(range(len(nodes)))
    for view in gltf["bufferViews"]:
        assert view.get("byteOffset", 0) + view["byteLength"] <= gltf["buffers"][0]["byteLength"]
