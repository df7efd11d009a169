"""glTF export: the Khronos glTF validator finds no errors, and node extras keep the metadata."""

from __future__ import annotations

import json
import shutil
import struct
import subprocess

import pytest

from twin.datasets import PROJECT_ROOT
from twin.scene.export import build_trimesh_scene, export_glb
from twin.scene.load import load_scene

DEMO = PROJECT_ROOT / "scenes" / "demo-fab"
SCRIPT = PROJECT_ROOT / "tests" / "scene" / "gltf_validate.cjs"
MODULES = PROJECT_ROOT / "node_modules"


def validate(path) -> list[dict]:
    """The Khronos validator's messages for one file (skips when it is not installed)."""
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed: the glTF validator runs on Node.js")
    if not (MODULES / "gltf-validator" / "package.json").exists():
        pytest.skip(f"{MODULES}/gltf-validator is missing: run `npm ci` (scripts/setup.sh)")
    proc = subprocess.run(
        [node, str(SCRIPT), str(path), str(MODULES)], capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)["messages"]


def errors(messages: list[dict]) -> list[str]:
    return [
        f"{m['code']} at {m.get('pointer')}: {m['message']}" for m in messages if m["severity"] == 0
    ]


def gltf_json(data: bytes) -> dict:
    """The JSON chunk of a GLB."""
    magic, version, _ = struct.unpack_from("<4sII", data, 0)
    assert magic == b"glTF" and version == 2
    length, kind = struct.unpack_from("<I4s", data, 12)
    assert kind == b"JSON"
    return json.loads(data[20 : 20 + length])


@pytest.fixture(scope="module")
def scene():
    return load_scene(DEMO)


@pytest.mark.parametrize(
    "options",
    [{}, {"rail": False}, {"vehicles": False, "ports": False}],
    ids=["all", "no-rail", "no-vehicles-no-ports"],
)
def test_export_passes_the_khronos_validator(scene, tmp_path, options):
    """`scene export .glb` (with or without rail, vehicles, ports) has no validator errors."""
    path = export_glb(scene, tmp_path / "demo.glb", **options)
    assert errors(validate(path)) == []


def test_scene_glb_route_bytes_pass_the_validator(scene, tmp_path):
    """The bytes /scene.glb serves (build_trimesh_scene(...).export) have no validator errors."""
    path = tmp_path / "route.glb"
    path.write_bytes(build_trimesh_scene(scene).export(file_type="glb"))
    assert errors(validate(path)) == []


def test_validator_catches_a_broken_file(tmp_path):
    """The check can fail: a GLB whose JSON names a missing buffer view is reported as an error."""
    good = build_trimesh_scene(load_scene(DEMO)).export(file_type="glb")
    tree = gltf_json(good)
    tree["accessors"][0]["bufferView"] = 10**6
    text = json.dumps(tree).encode()
    text += b" " * (-len(text) % 4)
    old_len = struct.unpack_from("<I", good, 12)[0]
    rest = good[20 + old_len :]
    body = struct.pack("<I4s", len(text), b"JSON") + text + rest
    bad = struct.pack("<4sII", b"glTF", 2, 12 + len(body)) + body
    path = tmp_path / "bad.glb"
    path.write_bytes(bad)
    assert errors(validate(path))


def test_node_extras_keep_id_kind_family_area_bay(scene):
    """Every scene node (rail nodes excepted: drawn as beams) is a glTF node whose extras hold
    its id, kind and, when known, family, area and bay; rail beams name their segment."""
    tree = gltf_json(build_trimesh_scene(scene).export(file_type="glb"))
    by_name = {n["name"]: n for n in tree["nodes"]}
    checked = 0
    for node in scene:
        if node.kind == "rail_node":
            continue
        extras = by_name[node.id]["extras"]
        want = {"id": node.id, "kind": node.kind}
        want.update({k: getattr(node, k) for k in ("family", "area", "bay") if getattr(node, k)})
        assert extras == want
        checked += 1
    assert checked == len(scene) - len(scene.nodes("rail_node"))
    tool = by_name["LITH01"]["extras"]
    assert set(tool) == {"id", "kind", "family", "area", "bay"}
    for seg in scene.segments:
        assert by_name[f"rail/{seg}"]["extras"] == {"id": seg, "kind": "rail_segment"}


def test_scene_glb_endpoint_carries_the_extras():
    """GET /scene.glb returns nodes with extras (the API serves the same export)."""
    pytest.importorskip("fastapi", reason="the api extra is not installed")
    from fastapi.testclient import TestClient

    from twin_api.app import create_app
    from twin_api.settings import Settings

    token = "read-token-0123456789abcdef"
    app = create_app(Settings(tokens={token: ["read"]}, physics=False, whatif_workers=1))
    with TestClient(app) as client:
        r = client.get("/scene.glb", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 200
    nodes = gltf_json(r.content)["nodes"]
    tools = [n for n in nodes if n.get("extras", {}).get("kind") == "tool"]
    assert len(tools) == 30 and all(n["extras"]["family"] for n in tools)


def test_smat2022_glb_passes_the_validator(smat_xlsx, tmp_path):
    """The SMAT2022 fab's GLB (26,638 nodes) has no validator errors."""
    path = export_glb(load_scene(smat_xlsx), tmp_path / "smat.glb")
    assert errors(validate(path)) == []
