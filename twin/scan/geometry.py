"""Scene geometry as the scanner sees it: world meshes of tools, stockers and the floor.

Shared by the scan synthesiser and the as-built check so that both read the geometry contract
the same way: a node with ``asset`` uses that asset's mesh in its own frame, a node with ``size``
and no asset is a box whose origin is the centre of its footprint on the floor.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import trimesh

from twin.scene.graph import SceneGraph

SOLID_KINDS = ("tool", "stocker")
FLOOR_MARGIN = 2.0  # m of floor beyond the equipment's footprint when the scene has no floor


def local_mesh(scene: SceneGraph, node_id: str) -> trimesh.Trimesh | None:
    """The node's own geometry in its frame (m), or None if it has none."""
    node = scene.node(node_id)
    if node.asset is not None and node.asset in scene.assets:
        return scene.assets[node.asset].mesh
    if node.size is not None:
        sx, sy, sz = (float(v) for v in node.size)
        box = trimesh.creation.box(extents=(sx, sy, sz))
        box.apply_translation((0.0, 0.0, sz / 2.0))
        return box
    return None


def solid_ids(scene: SceneGraph, kinds: Iterable[str] = SOLID_KINDS) -> list[str]:
    """Ids of the nodes of these kinds that have geometry, in scene order."""
    return [n.id for n in scene.nodes(tuple(kinds)) if scene.local_bounds(n.id) is not None]


def world_mesh(
    scene: SceneGraph, node_id: str, pose: np.ndarray | None = None
) -> trimesh.Trimesh | None:
    """The node's geometry placed at ``pose`` (4×4 world), by default its scene pose."""
    mesh = local_mesh(scene, node_id)
    if mesh is None:
        return None
    out = mesh.copy()
    out.apply_transform(scene.world_transform(node_id) if pose is None else pose)
    return out


def floor_z(scene: SceneGraph) -> float:
    """Height of the floor: the lowest base of any equipment (0 for an empty scene)."""
    zs = [b[0, 2] for i in solid_ids(scene) if (b := scene.bbox(i)) is not None]
    floors = [b[1, 2] for n in scene.nodes("floor") if (b := scene.bbox(n.id)) is not None]
    return float(max(floors)) if floors else float(min(zs)) if zs else 0.0


def floor_mesh(scene: SceneGraph) -> trimesh.Trimesh:
    """The floor: the scene's floor nodes, or a plane under the equipment with a margin."""
    meshes = [m for n in scene.nodes("floor") if (m := world_mesh(scene, n.id)) is not None]
    if meshes:
        return trimesh.util.concatenate(meshes)
    boxes = [b for i in solid_ids(scene) if (b := scene.bbox(i)) is not None]
    if boxes:
        lo = np.min([b[0] for b in boxes], axis=0) - FLOOR_MARGIN
        hi = np.max([b[1] for b in boxes], axis=0) + FLOOR_MARGIN
    else:
        lo, hi = np.array([-FLOOR_MARGIN] * 3), np.array([FLOOR_MARGIN] * 3)
    z = floor_z(scene)
    verts = np.array([[lo[0], lo[1], z], [hi[0], lo[1], z], [hi[0], hi[1], z], [lo[0], hi[1], z]])
    return trimesh.Trimesh(verts, np.array([[0, 1, 2], [0, 2, 3]]), process=False)


def moved_pose(world: np.ndarray, dx: float, dy: float, dyaw: float) -> np.ndarray:
    """A world pose turned by ``dyaw`` (rad) about its own vertical axis, then shifted (m).

    This is how a tool moves on the floor: its origin (the footprint centre for a box) goes
    from p to p + (dx, dy, 0) and its heading turns by dyaw.
    """
    c, s = math.cos(dyaw), math.sin(dyaw)
    rz = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
    out = np.array(world, dtype=float, copy=True)
    out[:3, :3] = rz @ out[:3, :3]
    out[:3, 3] += (dx, dy, 0.0)
    return out


def sample_surface(
    meshes: Mapping[str, trimesh.Trimesh] | list[trimesh.Trimesh],
    count: int,
    rng: np.random.Generator,
    *,
    skip_down_faces: bool = False,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Area-uniform surface samples: points (n,3), unit normals (n,3), source mesh index (n,).

    ``skip_down_faces`` leaves out faces whose normal points down: the underside of equipment
    standing on the floor can never be scanned.
    """
    items = list(meshes.values()) if isinstance(meshes, Mapping) else list(meshes)
    tris, norms, owner = [], [], []
    for k, m in enumerate(items):
        t = np.asarray(m.triangles, dtype=float)
        n = np.asarray(m.face_normals, dtype=float)
        if skip_down_faces:
            keep = n[:, 2] > -0.5
            t, n = t[keep], n[keep]
        tris.append(t)
        norms.append(n)
        owner.append(np.full(len(t), k, dtype=np.int64))
    if not tris or count <= 0:
        return np.zeros((0, 3)), np.zeros((0, 3)), np.zeros(0, dtype=np.int64)
    tri = np.concatenate(tris)
    nrm = np.concatenate(norms)
    own = np.concatenate(owner)
    area = 0.5 * np.linalg.norm(np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]), axis=1)
    if area.sum() <= 0:
        return np.zeros((0, 3)), np.zeros((0, 3)), np.zeros(0, dtype=np.int64)
    face = rng.choice(len(tri), size=count, p=area / area.sum())
    u, v = rng.random(count), rng.random(count)
    flip = u + v > 1.0
    u[flip], v[flip] = 1.0 - u[flip], 1.0 - v[flip]
    t = tri[face]
    pts = t[:, 0] + u[:, None] * (t[:, 1] - t[:, 0]) + v[:, None] * (t[:, 2] - t[:, 0])
    return pts, nrm[face], own[face]


def raycasting_scene(meshes: Iterable[trimesh.Trimesh]) -> Any:
    """An open3d RaycastingScene holding the given trimesh meshes."""
    import open3d as o3d

    rays = o3d.t.geometry.RaycastingScene()
    for m in meshes:
        rays.add_triangles(
            o3d.core.Tensor(np.asarray(m.vertices, dtype=np.float32)),
            o3d.core.Tensor(np.asarray(m.faces, dtype=np.uint32)),
        )
    return rays


def yaw_of(pose: np.ndarray) -> float:
    """Heading (rad) of a 4×4 pose: the angle of its local X axis in the floor plane."""
    return math.atan2(pose[1, 0], pose[0, 0])
