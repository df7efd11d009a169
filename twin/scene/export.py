"""The whole scene as one GLB that any glTF viewer opens (trimesh writes it).

Geometry is instanced: each distinct asset mesh and one unit box per kind of thing are stored
once, and every node refers to them through its transform (boxes are scaled unit boxes). The
node hierarchy of the scene is kept (fab → bay → tool → port), with the geometry on a child
node ``<id>/geometry`` so that a box's scale does not reach its children. The rail is a group
of thin beams, one per segment, and vehicles hang below it. glTF is Y-up: a root node turns the
twin's Z-up frame into it, so re-importing and undoing that turn gives the twin's coordinates.

Each scene node's glTF node carries the node's metadata in ``extras``: ``id``, ``kind`` and,
when known, ``family``, ``area`` and ``bay`` (the ``twin:*`` attributes of the USD export);
rail beams carry ``id`` (the segment) and ``kind`` ``"rail_segment"``.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import trimesh

from twin.scene.assets import Z_UP_TO_Y_UP
from twin.scene.graph import Node, SceneGraph, translation

ROOT = "world"
RAIL_WIDTH, RAIL_DEPTH = 0.12, 0.08  # m, cross-section of the drawn rail beam
VEHICLE_WIDTH, VEHICLE_HEIGHT = 0.5, 0.6  # m, an OHT body below the rail
COLOURS = {  # RGBA per kind of box
    "tool": (120, 140, 170, 255),
    "stocker": (200, 170, 90, 255),
    "station": (110, 170, 110, 255),
    "rail": (60, 60, 60, 255),
    "vehicle": (230, 120, 40, 255),
    "port": (90, 160, 220, 255),
    "bay": (210, 210, 210, 255),
}
ASSET_COLOUR = (175, 185, 200, 255)
PORT_SIZE = (0.5, 0.45, 0.05)  # m, a thin plate marking each load port's hand-off point


def _unit_box(kind: str) -> trimesh.Trimesh:
    """A 1 m cube whose bottom face is centred on the origin, coloured for ``kind``."""
    box = trimesh.creation.box((1.0, 1.0, 1.0))
    box.apply_translation((0, 0, 0.5))
    box.visual.face_colors = COLOURS.get(kind, COLOURS["tool"])
    return box


def _scale(sx: float, sy: float, sz: float) -> np.ndarray:
    return np.diag([sx, sy, sz, 1.0])


def build_trimesh_scene(
    scene: SceneGraph, *, rail: bool = True, vehicles: bool = True, ports: bool = True
) -> trimesh.Scene:
    """A trimesh.Scene mirroring the scene graph, with shared geometry (Y-up root)."""
    out = trimesh.Scene(base_frame=ROOT)
    geom_of_digest: dict[str, str] = {}
    asset_geom: dict[str, str] = {}
    for aid, asset in scene.assets.items():
        name = geom_of_digest.get(asset.digest)
        if name is None:
            mesh = asset.mesh.copy()
            mesh.visual.face_colors = ASSET_COLOUR
            name = f"asset:{aid}"
            out.geometry[name] = mesh
            geom_of_digest[asset.digest] = name
        asset_geom[aid] = name
    boxes: dict[str, str] = {}

    def box(kind: str) -> str:
        if kind not in boxes:
            boxes[kind] = f"box:{kind}"
            out.geometry[boxes[kind]] = _unit_box(kind)
        return boxes[kind]

    fab = "fab-frame"
    out.graph.update(frame_from=ROOT, frame_to=fab, matrix=Z_UP_TO_Y_UP)
    for node in _parents_first(scene):
        if node.kind == "vehicle" and not vehicles:
            continue
        if node.kind == "port" and not ports:
            continue
        if node.kind == "rail_node":
            continue  # drawn through the segments
        out.graph.update(
            frame_from=node.parent or fab,
            frame_to=node.id,
            matrix=node.transform,
            metadata=node_extras(node),
        )
        if node.asset is not None and node.asset in asset_geom:
            out.graph.update(
                frame_from=node.id,
                frame_to=f"{node.id}/geometry",
                matrix=np.eye(4),
                geometry=asset_geom[node.asset],
            )
        elif node.size is not None and node.kind != "bay":
            out.graph.update(
                frame_from=node.id,
                frame_to=f"{node.id}/geometry",
                matrix=_scale(*node.size),
                geometry=box(node.kind),
            )
        elif node.kind == "vehicle":
            length = scene.vehicle_types.get(node.attrs.get("vehicle_type"), {}).get("length", 0.8)
            hang = translation(0, 0, -VEHICLE_HEIGHT - RAIL_DEPTH) @ _scale(
                length, VEHICLE_WIDTH, VEHICLE_HEIGHT
            )
            out.graph.update(
                frame_from=node.id,
                frame_to=f"{node.id}/geometry",
                matrix=hang,
                geometry=box("vehicle"),
            )
        elif node.kind == "port":
            out.graph.update(
                frame_from=node.id,
                frame_to=f"{node.id}/geometry",
                matrix=_scale(*PORT_SIZE),
                geometry=box("port"),
            )
    if rail and scene.segments:
        out.graph.update(frame_from=fab, frame_to="rail", matrix=np.eye(4))
        for seg in scene.segments.values():
            a, b = scene.world_position(seg.start), scene.world_position(seg.end)
            d = b - a
            length = float(np.linalg.norm(d[:2]))
            if length <= 0:
                continue
            beam = (
                translation(*a, yaw=math.atan2(d[1], d[0]))
                @ translation(length / 2, 0, 0)
                @ _scale(length, RAIL_WIDTH, RAIL_DEPTH)
            )
            out.graph.update(
                frame_from="rail",
                frame_to=f"rail/{seg.id}",
                matrix=beam,
                geometry=box("rail"),
                metadata={"id": seg.id, "kind": "rail_segment"},
            )
    return out


def node_extras(node: Node) -> dict[str, str]:
    """The metadata a glTF node keeps in ``extras`` (the same fields as USD's ``twin:*``)."""
    return {
        key: value
        for key in ("id", "kind", "family", "area", "bay")
        if (value := getattr(node, key)) is not None
    }


def _parents_first(scene: SceneGraph):
    stack = list(reversed(scene.roots()))
    while stack:
        nid = stack.pop()
        yield scene.node(nid)
        stack.extend(reversed(scene.children(nid)))


def export_glb(scene: SceneGraph, out: str | Path, **options: bool) -> Path:
    """Write the scene as one binary glTF file; returns its path."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    data = build_trimesh_scene(scene, **options).export(file_type="glb")
    out.write_bytes(data)
    return out
