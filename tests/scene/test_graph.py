"""Scene-graph queries users rely on, checked against brute force on the demo and SMAT2022 scenes."""

from __future__ import annotations

import numpy as np
import pytest

from twin.datasets import PROJECT_ROOT
from twin.errors import InputError
from twin.scene.load import load_scene

DEMO = PROJECT_ROOT / "scenes" / "demo-fab"


@pytest.fixture(scope="module")
def demo():
    return load_scene(DEMO)


def test_nodes_by_kind_family_and_bay(demo):
    """Filters agree with a plain scan of every node."""
    every = list(demo)
    assert {n.id for n in demo.nodes("tool", bay="BAY1")} == {
        n.id for n in every if n.kind == "tool" and n.bay == "BAY1"
    }
    assert [n.id for n in demo.tools("Litho_FE_3")] == ["LITH01", "LITH02", "LITH03"]
    assert len(demo.nodes(("tool", "stocker"))) == 32
    assert sum(demo.families().values()) == len(demo.tools())


def test_bbox_is_the_transformed_mesh_bounds(demo):
    """A tool's world box equals the bounds of its asset mesh moved by its world transform."""
    for tool in demo.tools()[::5]:
        mesh = demo.assets[tool.asset].mesh.copy()
        mesh.apply_transform(demo.world_transform(tool.id))
        np.testing.assert_allclose(
            demo.bbox(tool.id), mesh.bounds, atol=1e-9
        )  # yaws are multiples of 90°


def test_nearest_rail_node_matches_brute_force(demo):
    """The k-d tree answer equals the closest rail node found by scanning all of them."""
    rng = np.random.default_rng(3)
    ids = [n.id for n in demo.nodes("rail_node")]
    pts = np.array([demo.world_position(i) for i in ids])
    for q in rng.uniform([-5, -5, 0], [40, 55, 5], size=(50, 3)):
        nid, dist = demo.nearest_rail_node(q)
        d = np.linalg.norm(pts - q, axis=1)
        assert dist == pytest.approx(d.min()) and nid == ids[int(d.argmin())]


def test_closing_a_segment_reroutes_or_fails(demo):
    """Closing the segment a route uses gives a longer route, or an error naming the closure."""
    a, b = "ETCH01_P1", "CMP02_P1"
    path = demo.rail_path(a, b)
    inner = path.segments[1:-1]
    closed = [inner[len(inner) // 2]]
    try:
        detour = demo.rail_path(a, b, closed=closed)
    except InputError as err:
        assert closed[0] in str(err)
    else:
        assert detour.length > path.length and closed[0] not in detour.segments


def test_same_segment_stops_are_a_straight_hop(demo):
    """Two ports on one segment, in driving order, are offset-difference apart."""
    by_seg: dict[str, list] = {}
    for link in demo.ports.values():
        by_seg.setdefault(link.segment, []).append(link)
    links = sorted(next(v for v in by_seg.values() if len(v) >= 2), key=lambda link: link.offset)
    path = demo.rail_path(links[0].port, links[-1].port)
    assert path.length == pytest.approx(links[-1].offset - links[0].offset) and path.segments == (
        links[0].segment,
    )


def test_summary_counts_match_the_nodes(demo):
    """summary() counts equal counts taken from the node list and the relations."""
    s = demo.summary()
    kinds = [n.kind for n in demo]
    assert (
        s["nodes"] == len(kinds)
        and s["tools"] == kinds.count("tool")
        and s["vehicles"] == kinds.count("vehicle")
    )
    assert s["rail_nodes"] == kinds.count("rail_node") and s["ports"] == kinds.count("port")
    box = np.array([s["bbox"]["min"], s["bbox"]["max"]])
    for n in demo.nodes(("tool", "stocker")):
        b = demo.bbox(n.id)
        assert np.all(b[0] >= box[0] - 1e-3) and np.all(b[1] <= box[1] + 1e-3)


def test_add_many_equals_add_and_lists_every_problem():
    """add_many builds the same graph as repeated add, and rejects a batch listing all its problems."""
    from twin.scene.graph import Node, SceneGraph, translation

    def batch():
        return [Node(id="f", kind="fab")] + [
            Node(id=f"t{i}", kind="tool", parent="f", transform=translation(i, 2 * i, 0, 0.1 * i))
            for i in range(50)
        ]

    one, many = SceneGraph(), SceneGraph()
    for n in batch():
        one.add(n)
    many.add_many(batch())
    for i in range(50):
        np.testing.assert_array_equal(one.world_transform(f"t{i}"), many.world_transform(f"t{i}"))
    assert many.children("f") == one.children("f")
    bad = [
        Node(id="t1", kind="tool", parent="f"),
        Node(id="x", kind="tool", parent="nowhere"),
        Node(id="y", kind="tool", transform=np.full((4, 4), np.nan)),
    ]
    with pytest.raises(InputError) as err:
        many.add_many(bad)
    assert len(err.value.problems) == 3 and "x" not in many and "y" not in many
