"""Small scenes built directly with the SceneGraph API for the physics tests."""

from __future__ import annotations

from twin.scene.graph import Node, SceneGraph, translation

# The SMAT2022 vehicle type in SI units (length, m/s, m/s², m/s², m).
OHT = {
    "length": 0.784,
    "max_speed": 1.5,
    "acceleration": 2.0,
    "deceleration": 3.0,
    "min_distance": 0.125,
}
GAP = OHT["length"] + OHT["min_distance"]


def _port(scene: SceneGraph, port: str, segment: str, offset: float) -> None:
    scene.add(Node(id=port, kind="port", transform=translation(0, 0, 0)))
    scene.link_port(port, tool=None, segment=segment, offset=offset)


def line_scene(
    lengths: list[float],
    speeds: list[float] | None = None,
    curves: list[bool] | None = None,
) -> SceneGraph:
    """A one-way straight rail of segments s0, s1, ...; ports p_start / p_end at its two ends and
    a vehicle v0 standing at the start."""
    scene = SceneGraph("line")
    scene.vehicle_types["OHT"] = dict(OHT)
    speeds = speeds or [10.0] * len(lengths)
    curves = curves or [False] * len(lengths)
    x = 0.0
    scene.add_rail_node("n0", 0.0, 0.0, 3.9)
    for i, seg_len in enumerate(lengths):
        x += seg_len
        scene.add_rail_node(f"n{i + 1}", x, 0.0, 3.9)
        scene.add_segment(f"s{i}", f"n{i}", f"n{i + 1}", max_speed=speeds[i], curve=curves[i])
    _port(scene, "p_start", "s0", 0.0)
    _port(scene, "p_end", f"s{len(lengths) - 1}", lengths[-1])
    scene.add(
        Node(
            id="v0",
            kind="vehicle",
            attrs={"vehicle_type": "OHT", "segment": "s0", "offset": 0.0},
        )
    )
    return scene


def loop_scene(
    side: float = 20.0, per_side: int = 5, vehicles: int = 8, shortcut: bool = True
) -> SceneGraph:
    """A one-way square loop (curved corners) with an optional slower shortcut across it, which
    makes one diverge and one merge. A port in the middle of every segment; vehicles evenly
    spaced on the loop."""
    scene = SceneGraph("loop")
    scene.vehicle_types["OHT"] = dict(OHT)
    corners = [(0.0, 0.0), (side, 0.0), (side, side), (0.0, side)]
    pts = []
    for c in range(4):
        (x0, y0), (x1, y1) = corners[c], corners[(c + 1) % 4]
        for k in range(per_side):
            pts.append((x0 + (x1 - x0) * k / per_side, y0 + (y1 - y0) * k / per_side))
    for i, (x, y) in enumerate(pts):
        scene.add_rail_node(f"n{i}", x, y, 3.9)
    m = len(pts)
    for i in range(m):
        corner = i % per_side == per_side - 1
        scene.add_segment(f"s{i}", f"n{i}", f"n{(i + 1) % m}", max_speed=1.5, curve=corner)
    if shortcut:
        a, b = per_side // 2, 2 * per_side + per_side // 2
        scene.add_segment("cut", f"n{a}", f"n{b}", max_speed=1.0)
    for seg_id, seg in list(scene.segments.items()):
        _port(scene, f"port_{seg_id}", seg_id, seg.length / 2)
    step = side / per_side
    for k in range(vehicles):
        pos = 4 * side * k / vehicles
        seg_i = min(int(pos // step), m - 1)
        scene.add(
            Node(
                id=f"v{k}",
                kind="vehicle",
                attrs={"vehicle_type": "OHT", "segment": f"s{seg_i}", "offset": pos - seg_i * step},
            )
        )
    return scene
