"""Scene folders: scene.yaml reading, writing, and errors that list every problem with file:line."""

from __future__ import annotations

import textwrap

import numpy as np
import pytest
import trimesh

from twin.errors import InputError
from twin.scene.folder import load_folder, parse_scene, save_folder

BASE = """\
name: t
vehicle_types:
  OHT: {length: 0.8, max_speed: 1.5, acceleration: 2, deceleration: 3, min_distance: 0.1}
rail:
  max_speed: 1.5
  nodes: {a: [0, 0], b: [10, 0], c: [10, 10]}
  segments:
    - {id: s1, from: a, to: b}
    - {id: s2, from: b, to: c, curve: true}
bays:
  - {id: B1, at: [5, 5]}
tools:
  - {id: T1, family: F, bay: B1, size: [1, 2, 3], at: [1, 1], yaw: 90}
ports:
  - {id: P1, tool: T1, segment: s1, offset: 4}
vehicles:
  - {id: V1, type: OHT, segment: s2, offset: 3}
"""


def _problems(text: str) -> list[str]:
    with pytest.raises(InputError) as err:
        parse_scene(textwrap.dedent(text), file="scene.yaml")
    return err.value.problems


def test_base_scene_builds_the_expected_graph():
    """Nodes, parents, world poses, rail lengths and port stops follow the file."""
    scene = parse_scene(BASE)
    assert scene.summary()["tools"] == 1 and scene.summary()["rail_segments"] == 2
    assert scene.node("T1").parent == "B1" and scene.node("P1").parent == "T1"
    np.testing.assert_allclose(scene.world_position("T1"), [6, 6, 0])
    np.testing.assert_allclose(scene.bbox("T1"), [[5, 5.5, 0], [7, 6.5, 3]], atol=1e-12)  # yaw 90
    np.testing.assert_allclose(scene.world_position("P1")[:2], [4, 0])
    np.testing.assert_allclose(scene.world_position("V1"), [10, 3, 3.6])
    assert scene.segment("s1").length == 10.0 and scene.segment("s2").curve
    assert scene.node("V1").attrs == {"vehicle_type": "OHT", "segment": "s2", "offset": 3.0}
    assert scene.rail_path("P1", "c").length == pytest.approx(6 + 10)


def test_units_convert_every_length():
    """units: mm scales positions, sizes, offsets and speeds to metres."""
    text = BASE.replace("name: t", "name: t\nunits: mm")
    scene = parse_scene(text)
    assert scene.segment("s1").length == pytest.approx(0.01)
    assert scene.node("T1").size == pytest.approx((0.001, 0.002, 0.003))
    assert scene.vehicle_types["OHT"]["max_speed"] == pytest.approx(0.0015)


def test_malformed_yaml_gives_line():
    """Malformed YAML is one InputError at file:line."""
    problems = _problems("name: t\ntools:\n  - {id: T1, at: [1, 2}\n")
    assert len(problems) == 1 and problems[0].startswith("scene.yaml:3")


def test_every_problem_is_listed_with_line_and_id():
    """Duplicate ids, a parent cycle, a non-finite pose, an unknown rail node, a port on a
    missing segment, and an unknown key are all reported in one error with their lines."""
    text = BASE + textwrap.dedent("""\
        stockers:
          - {id: T1, size: [1, 1, 1]}
        nodes:
          - {id: g1, kind: group, parent: g2}
          - {id: g2, kind: group, parent: g1}
          - {id: g3, kind: group, at: [.nan, 0]}
          - {id: g4, kind: group, colour: red}
        """)
    text = text.replace(
        "- {id: s2, from: b, to: c, curve: true}", "- {id: s2, from: b, to: zz, curve: true}"
    )
    text = text.replace(
        "- {id: P1, tool: T1, segment: s1, offset: 4}",
        "- {id: P1, tool: T1, segment: s9, offset: 4}",
    )
    problems = "\n".join(_problems(text))
    for needle in (
        "scene.yaml:9: rail segment 's2': to names unknown rail node 'zz'",
        "scene.yaml:15: 'P1': is on missing rail segment 's9'",
        "scene.yaml:19: duplicate id 'T1' (first at line 13)",
        "scene.yaml:21: parent cycle g1 -> g2 -> g1",
        "scene.yaml:23: node 'g3': at must be a list of 2 or 3 finite numbers, got [nan, 0]",
        "scene.yaml:24: nodes: unknown key 'colour'",
    ):
        assert needle in problems, f"{needle!r} not in\n{problems}"


def test_missing_and_unsupported_meshes_are_reported(tmp_path):
    """A missing mesh, a corrupt mesh and an unsupported format are each named in one error."""
    (tmp_path / "bad.glb").write_bytes(b"not a glb at all")
    (tmp_path / "scene.yaml").write_text(
        "assets:\n  a: {file: gone.obj}\n  b: {file: bad.glb}\n  c: {file: tool.fbx}\n"
    )
    with pytest.raises(InputError) as err:
        load_folder(tmp_path)
    text = str(err.value)
    assert err.value.problems[0].endswith("mesh file not found") and ":2:" in err.value.problems[0]
    assert "bad.glb" in text and "cannot read as GLB" in text
    assert "unsupported format 'fbx'" in text and "glb, gltf, obj, ply, stl" in text


def test_port_offset_beyond_segment_is_rejected():
    """A port offset longer than its segment is reported with the segment's length."""
    problems = _problems(BASE.replace("offset: 4}", "offset: 40}"))
    assert any("outside segment 's1' (0..10.000 m)" in p for p in problems)


def test_save_then_load_round_trips_with_assets(tmp_path):
    """A scene with a mesh asset saves to a folder and loads back with the same geometry."""
    mesh = trimesh.creation.cylinder(radius=0.5, height=2.0)
    mesh.export(tmp_path / "cyl.stl")
    (tmp_path / "src").mkdir()
    text = BASE.replace(
        "name: t", f"name: t\nassets:\n  cyl: {{file: {tmp_path / 'cyl.stl'}, unit: m}}"
    )
    text = text.replace("size: [1, 2, 3]", "asset: cyl")
    scene = parse_scene(text)
    save_folder(scene, tmp_path / "out")
    back = load_folder(tmp_path / "out")
    assert back.summary() == scene.summary()
    np.testing.assert_allclose(back.bbox("T1"), scene.bbox("T1"), atol=1e-9)
    got = back.assets["cyl"].mesh
    assert len(got.faces) == len(mesh.faces)
    assert len(np.unique(got.vertices.round(9), axis=0)) == len(mesh.vertices)


def test_documented_example_loads(tmp_path):
    """The complete example in docs/scene-format.md is a valid scene."""
    import re

    from twin.datasets import PROJECT_ROOT

    doc = (PROJECT_ROOT / "docs" / "scene-format.md").read_text(encoding="utf-8")
    (tmp_path / "assets").mkdir()
    trimesh.creation.box((1, 1, 1)).export(tmp_path / "assets" / "furnace.glb")
    trimesh.creation.box((1, 1, 1)).export(tmp_path / "assets" / "robot.stl")
    (tmp_path / "scene.yaml").write_text(re.findall(r"```yaml\n(.*?)```", doc, re.S)[0])
    scene = load_folder(tmp_path)
    assert scene.summary()["tools"] == 2 and scene.ports["F1_P2"].offset == 4.6
    np.testing.assert_allclose(
        scene.world_position("F1_P2"),
        scene.world_transform("F1")[:3, :3] @ [0, -2.5, 0.9] + scene.world_position("F1"),
    )
