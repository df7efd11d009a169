"""Property tests: transform composition in the scene graph and the scene-file parser."""

from __future__ import annotations

import math

import numpy as np
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from twin.errors import InputError
from twin.scene.folder import load_folder, parse_scene, save_folder
from twin.scene.graph import Node, SceneGraph, translation

coord = st.floats(-1e4, 1e4, allow_nan=False)
angle = st.floats(-math.pi, math.pi, allow_nan=False)


def _rotation(axis: np.ndarray, theta: float) -> np.ndarray:
    """Rodrigues' formula: a rotation written independently of the graph code."""
    axis = axis / np.linalg.norm(axis)
    k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    t = np.eye(4)
    t[:3, :3] = np.eye(3) + math.sin(theta) * k + (1 - math.cos(theta)) * k @ k
    return t


pose = st.builds(
    lambda x, y, z, yaw, ax, theta: translation(x, y, z, yaw) @ _rotation(np.array(ax), theta),
    coord, coord, coord, angle,
    st.tuples(st.floats(0.1, 1), st.floats(-1, 1), st.floats(-1, 1)), angle,
)  # fmt: skip


@given(st.lists(pose, min_size=1, max_size=6), st.tuples(coord, coord, coord))
def test_world_is_parent_times_local(poses, point):
    """In a chain of nodes, world = parent world @ local, and a point maps like the product."""
    g = SceneGraph()
    parent = None
    for i, t in enumerate(poses):
        g.add(Node(id=f"n{i}", kind="group", parent=parent, transform=t))
        parent = f"n{i}"
    product = np.eye(4)
    for t in poses:
        product = product @ t
    world = g.world_transform(parent)
    np.testing.assert_allclose(world, product, atol=1e-6 * (1 + np.abs(product).max()))
    for i in range(1, len(poses)):
        np.testing.assert_allclose(
            g.world_transform(f"n{i}"), g.world_transform(f"n{i - 1}") @ poses[i], atol=1e-6 * 1e4
        )
    p = np.append(point, 1.0)
    back = np.linalg.inv(world) @ (world @ p)
    np.testing.assert_allclose(back, p, atol=1e-6 * (1 + np.abs(world).max()) * 10)


@given(st.lists(pose, min_size=2, max_size=5), pose)
def test_set_transform_invalidates_the_subtree(poses, new):
    """Changing an ancestor's local transform moves every descendant's cached world pose."""
    g = SceneGraph()
    for i, t in enumerate(poses):
        g.add(Node(id=f"n{i}", kind="group", parent=f"n{i - 1}" if i else None, transform=t))
    last = f"n{len(poses) - 1}"
    g.world_transform(last)  # fill the cache
    g.set_transform("n0", new)
    expected = new
    for t in poses[1:]:
        expected = expected @ t
    np.testing.assert_allclose(
        g.world_transform(last), expected, atol=1e-6 * (1 + np.abs(expected).max())
    )


# ------------------------------------------------------------------------- scene parser
ident = st.text("abcdefghijklmnopqrstuvwxyz0123456789_-", min_size=1, max_size=8)
small = st.floats(-500, 500, allow_nan=False).map(lambda v: round(v, 6))
positive = st.floats(0.05, 20, allow_nan=False).map(lambda v: round(v, 6))


@st.composite
def scenes(draw) -> dict:
    """A valid scene.yaml document: bays, tools, a rail chain, ports on it, vehicles."""
    ids = draw(
        st.lists(ident, min_size=6, max_size=30, unique=True).filter(lambda xs: "fab" not in xs)
    )
    n_rail = max(2, len(ids) // 4)
    rail_ids, rest = ids[:n_rail], ids[n_rail:]
    nodes = {r: [draw(small), draw(small)] for r in rail_ids}
    segs = []
    for i, (a, b) in enumerate(zip(rail_ids, rail_ids[1:])):
        if nodes[a] == nodes[b]:
            nodes[b] = [nodes[b][0] + 1.0, nodes[b][1]]
        segs.append(
            {
                "id": f"seg{i}",
                "from": a,
                "to": b,
                "max_speed": draw(positive),
                "curve": draw(st.booleans()),
            }
        )
    bays = [{"id": rest[0], "at": [draw(small), draw(small)], "yaw": draw(small)}]
    tools, ports, vehicles = [], [], []
    for tid in rest[1:]:
        kind = draw(st.sampled_from(["tool", "port", "vehicle"]))
        if kind == "tool" or not tools:
            tools.append({"id": tid, "family": draw(ident), "bay": rest[0], "size": [draw(positive) for _ in range(3)],
                          "at": [draw(small), draw(small), 0.0], "yaw": draw(small)})  # fmt: skip
            continue
        seg = draw(st.sampled_from(segs))
        a, b = np.array(nodes[seg["from"]]), np.array(nodes[seg["to"]])
        offset = round(draw(st.floats(0, 1)) * float(np.linalg.norm(b - a)) * 0.999, 6)
        if kind == "port":
            ports.append(
                {
                    "id": tid,
                    "tool": draw(st.sampled_from(tools))["id"],
                    "segment": seg["id"],
                    "offset": offset,
                }
            )
        else:
            vehicles.append({"id": tid, "type": "OHT", "segment": seg["id"], "offset": offset})
    return {
        "name": "fab",
        "vehicle_types": {"OHT": {"length": 0.8, "max_speed": 1.5, "acceleration": 2, "deceleration": 3, "min_distance": 0.1}},
        "rail": {"nodes": nodes, "segments": segs},
        "bays": bays, "tools": tools, "ports": ports, "vehicles": vehicles,
    }  # fmt: skip


def _snapshot(scene: SceneGraph) -> dict:
    return {
        "summary": scene.summary(),
        "kinds": {n.id: (n.kind, n.parent, n.family, n.bay, n.size) for n in scene},
        "segments": {
            s.id: (s.start, s.end, round(s.length, 9), s.max_speed, s.curve)
            for s in scene.segments.values()
        },
        "ports": {p.port: (p.tool, p.segment, p.offset) for p in scene.ports.values()},
        "attrs": {n.id: n.attrs for n in scene.nodes("vehicle")},
    }


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(scenes())
def test_saved_scene_loads_back_identical(tmp_path, doc):
    """A valid scene parses; saving it and loading the folder gives the same graph."""
    scene = parse_scene(yaml.safe_dump(doc))
    assert scene.summary()["tools"] == len(doc["tools"])
    folder = tmp_path / "rt"
    save_folder(scene, folder)
    back = load_folder(folder)
    assert _snapshot(back) == _snapshot(scene)
    for n in scene:
        np.testing.assert_allclose(
            back.world_transform(n.id), scene.world_transform(n.id), atol=1e-9
        )


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=300))
def test_garbage_text_raises_input_error_only(text):
    """Arbitrary text either parses as a scene or raises InputError, never another exception."""
    try:
        parse_scene(text)
    except InputError:
        pass


yaml_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3)
    ),
    max_leaves=6,
)


@settings(max_examples=150, deadline=None)
@given(scenes(), st.data())
def test_mutated_scenes_raise_input_error_only(doc, data):
    """A valid scene with any one value replaced by junk parses or raises InputError only."""
    section = data.draw(
        st.sampled_from(
            [
                "rail",
                "bays",
                "tools",
                "ports",
                "vehicles",
                "vehicle_types",
                "name",
                "units",
                "assets",
                "metadata",
                "nodes",
            ]
        )
    )
    junk = data.draw(yaml_values)
    target = doc.get(section)
    if isinstance(target, list) and target and all(isinstance(e, dict) for e in target):
        entry = data.draw(st.sampled_from(target))
        entry[data.draw(st.sampled_from(sorted(entry) + ["extra"]))] = junk
    elif isinstance(target, dict) and target:
        target[data.draw(st.sampled_from(sorted(target)))] = junk
    else:
        doc[section] = junk
    try:
        parse_scene(yaml.safe_dump(doc))
    except InputError:
        pass
