"""The scene as a pybullet world: static equipment, kinematic vehicles, rails, and queries.

Each world owns a pybullet DIRECT client and passes ``physicsClientId`` on every call, so
several worlds live side by side in one process. Identical geometry shares one collision shape
(cached by asset id or box size) and equipment is created in batches (``batchPositions``) per
shape and orientation, which is what keeps the 1,116-tool SMAT2022 layout quick to build.

Bullet reports no contacts between two bodies without mass, and everything here is static or
kinematic, so contacts and clearances are answered with ``getClosestPoints`` (signed distance,
negative when penetrating), pre-filtered with axis-aligned bounding boxes.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from twin.errors import InputError, NotFoundError
from twin.physics.palette import family_colour, state_colour
from twin.scene.graph import SceneGraph
from twin.vocabulary import E10_STATES

if TYPE_CHECKING:
    from twin.scene.assets import Asset

EQUIPMENT_KINDS = ("tool", "stocker", "station")
RAIL_WIDTH = 0.12  # m, drawn and used for clearance
RAIL_DEPTH = 0.15  # m
VEHICLE_WIDTH = 0.5  # m
VEHICLE_HEIGHT = 0.6  # m, the vehicle body hangs under the rail
FLOOR_THICKNESS = 0.1  # m
# a unit cube: corners and outward-wound triangles
_UNIT_BOX_VERTICES = np.array(
    [[x, y, z] for x in (-0.5, 0.5) for y in (-0.5, 0.5) for z in (-0.5, 0.5)], dtype=float
)
_UNIT_BOX_FACES = np.array(
    [
        [0, 1, 3], [0, 3, 2], [4, 6, 7], [4, 7, 5], [0, 4, 5], [0, 5, 1],
        [2, 3, 7], [2, 7, 6], [0, 2, 6], [0, 6, 4], [1, 5, 7], [1, 7, 3],
    ]
)  # fmt: skip
RAY_BATCH = 8192  # rays per rayTestBatch call (pybullet drops rays past 16,383)
FLOOR_COLOUR = (0.82, 0.83, 0.85, 1.0)
RAIL_COLOUR = (0.25, 0.25, 0.3, 1.0)
VEHICLE_COLOUR = (0.95, 0.55, 0.1, 1.0)


@dataclass(frozen=True, slots=True)
class Proximity:
    """Closest points between two bodies: signed distance (m, < 0 when they overlap)."""

    a: str
    b: str
    distance: float
    point_a: tuple[float, float, float]
    point_b: tuple[float, float, float]


@dataclass(frozen=True, slots=True)
class Clearance:
    """Answer of ``can_place``: ``ok`` when nothing is closer than the margin."""

    ok: bool
    distance: float  # m to the nearest obstacle found within the search radius (inf: none)
    nearest: str | None
    blocking: tuple[str, ...]  # ids closer than the margin, nearest first


@dataclass(frozen=True, slots=True)
class RayHits:
    """Batched ray casts: per ray the id hit ('' for none), hit fraction, position, normal."""

    ids: list[str]
    fraction: np.ndarray  # (N,) 1.0 where nothing was hit
    position: np.ndarray  # (N, 3)
    normal: np.ndarray  # (N, 3)


def _pose(pose: Any) -> tuple[np.ndarray, float]:
    """A pose given as a 4×4 matrix or (x, y, z[, yaw]) → (position, yaw)."""
    arr = np.asarray(pose, dtype=float)
    if arr.shape == (4, 4):
        return arr[:3, 3].copy(), math.atan2(arr[1, 0], arr[0, 0])
    if arr.shape in ((3,), (4,)):
        return arr[:3].copy(), float(arr[3]) if arr.shape == (4,) else 0.0
    raise InputError("pose", [f"a pose is a 4×4 matrix or (x, y, z[, yaw]), got shape {arr.shape}"])


class PhysicsWorld:
    """A pybullet world built from a scene (see the module docstring)."""

    def __init__(self, scene: SceneGraph, *, concave_static: bool = False, vehicles: bool = True):
        import pybullet as p

        self._p = p
        self.scene = scene
        self.concave_static = concave_static
        self.client = p.connect(p.DIRECT)
        self._shapes: dict[tuple, int] = {}
        self._visuals: dict[tuple, int] = {}
        self.body: dict[str, int] = {}
        self.node_of: dict[int, str] = {}
        self.kind_of: dict[str, str] = {}
        self.states: dict[str, str] = {}
        try:
            self._build_floor()
            self._build_equipment()
            self._build_rails()
            self.vehicle_ids: list[str] = []
            self._vehicle_pos = np.zeros((0, 3))
            self._vehicle_quat = np.zeros((0, 4))
            if vehicles:
                self._build_vehicles()
        except Exception:
            self.close()
            raise

    # ------------------------------------------------------------ lifecycle
    def close(self) -> None:
        if self.client is not None and self.client >= 0:
            self._p.disconnect(physicsClientId=self.client)
        self.client = -1

    def __enter__(self) -> PhysicsWorld:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:  # a forgotten world should not leak its client
        try:
            self.close()
        except Exception:
            pass

    # ------------------------------------------------------------ building
    def _register(self, node_id: str, body: int, kind: str) -> None:
        self.body[node_id] = body
        self.node_of[body] = node_id
        self.kind_of[node_id] = kind

    def _shape(self, key: tuple, make) -> int:
        sid = self._shapes.get(key)
        if sid is None:
            sid = make()
            self._shapes[key] = sid
        return sid

    def _box_shapes(self, size: Sequence[float], colour: Sequence[float]) -> tuple[int, int]:
        p, c = self._p, self.client
        sx, sy, sz = (float(v) for v in size)
        half = [sx / 2, sy / 2, sz / 2]
        key = ("box", round(sx, 6), round(sy, 6), round(sz, 6))
        col = self._shape(
            key,
            lambda: p.createCollisionShape(
                p.GEOM_BOX,
                halfExtents=half,
                collisionFramePosition=[0, 0, sz / 2],
                physicsClientId=c,
            ),
        )
        vkey = (key, tuple(colour))
        vis = self._visuals.get(vkey)
        if vis is None:
            vis = p.createVisualShape(
                p.GEOM_BOX,
                halfExtents=half,
                visualFramePosition=[0, 0, sz / 2],
                rgbaColor=list(colour),
                physicsClientId=c,
            )
            self._visuals[vkey] = vis
        return col, vis

    def _asset_shapes(self, asset: Asset, colour: Sequence[float]) -> tuple[int, int]:
        p, c = self._p, self.client
        concave = self.concave_static and not asset.mesh.is_convex
        key = ("asset", asset.id, concave)
        mesh = asset.mesh
        if concave:
            make = lambda: p.createCollisionShape(  # noqa: E731
                p.GEOM_MESH,
                vertices=mesh.vertices.tolist(),
                indices=mesh.faces.reshape(-1).tolist(),
                flags=p.GEOM_FORCE_CONCAVE_TRIMESH,
                physicsClientId=c,
            )
        else:
            make = lambda: p.createCollisionShape(  # noqa: E731
                p.GEOM_MESH, vertices=asset.hull.vertices.tolist(), physicsClientId=c
            )
        col = self._shape(key, make)
        vkey = (key, tuple(colour))
        vis = self._visuals.get(vkey)
        if vis is None:
            vis = p.createVisualShape(
                p.GEOM_MESH,
                vertices=mesh.vertices.tolist(),
                indices=mesh.faces.reshape(-1).tolist(),
                rgbaColor=list(colour),
                physicsClientId=c,
            )
            self._visuals[vkey] = vis
        return col, vis

    def _build_floor(self) -> None:
        box = self.scene.scene_bbox()
        lo, hi = box[0] - 5.0, box[1] + 5.0
        size = (hi[0] - lo[0], hi[1] - lo[1], FLOOR_THICKNESS)
        col, vis = self._box_shapes(size, FLOOR_COLOUR)
        centre = [(lo[0] + hi[0]) / 2, (lo[1] + hi[1]) / 2, -FLOOR_THICKNESS]
        body = self._p.createMultiBody(
            0, col, vis, basePosition=centre, physicsClientId=self.client
        )
        self._register("__floor__", body, "floor")

    def _build_equipment(self) -> None:
        """Static bodies, batched per (shape, colour, orientation)."""
        p = self._p
        groups: dict[tuple, tuple[int, int, list[str], list[list[float]]]] = {}
        missing = [
            f"{n.kind} {n.id!r} uses asset {n.asset!r}, which the scene does not have "
            f"(assets: {sorted(self.scene.assets)[:10]})"
            for n in self.scene.nodes(EQUIPMENT_KINDS)
            if n.asset is not None and n.asset not in self.scene.assets
        ]
        if missing:
            raise InputError("physics world", missing)
        for node in self.scene.nodes(EQUIPMENT_KINDS):
            colour = family_colour(node.family or node.attrs.get("tool_group") or node.kind)
            if node.asset is not None and node.asset in self.scene.assets:
                col, vis = self._asset_shapes(self.scene.assets[node.asset], colour)
            elif node.size is not None:
                col, vis = self._box_shapes(node.size, colour)
            else:
                continue  # a tool without geometry has nothing to collide with
            t = self.scene.world_transform(node.id)
            quat = tuple(np.round(_quat_from_matrix(t[:3, :3]), 9))
            key = (col, vis, quat)
            if key not in groups:
                groups[key] = (col, vis, [], [])
            groups[key][2].append(node.id)
            groups[key][3].append(t[:3, 3].tolist())
        for (_, _, quat), (col, vis, ids, positions) in groups.items():
            bodies = p.createMultiBody(
                0,
                col,
                vis,
                baseOrientation=list(quat),
                batchPositions=positions,
                physicsClientId=self.client,
            )
            if isinstance(bodies, int):
                bodies = [bodies]
            for nid, body in zip(ids, bodies):
                self._register(nid, body, self.scene.node(nid).kind)

    def _build_rails(self) -> None:
        """All rail segments as one static triangle mesh (thin boxes along each segment)."""
        if not self.scene.segments:
            return
        p, c = self._p, self.client
        pos = {n: self.scene.world_position(n) for n in self.scene.rail.nodes}
        a = np.array([pos[s.start] for s in self.scene.segments.values()])
        b = np.array([pos[s.end] for s in self.scene.segments.values()])
        d = b - a
        length = np.linalg.norm(d, axis=1)
        keep = length > 1e-9
        a, d, length = a[keep], d[keep], length[keep]
        u = d / length[:, None]
        w = np.stack([-u[:, 1], u[:, 0], np.zeros(len(u))], axis=1)  # horizontal side
        w /= np.maximum(np.linalg.norm(w, axis=1), 1e-12)[:, None]
        z = np.array([0.0, 0.0, 1.0])
        uv = _UNIT_BOX_VERTICES  # corners in [-0.5, 0.5]³
        # corner = a + u·(x+0.5)·len + w·y·width + z·(y'·depth), the box hangs from the rail line
        verts = (
            a[:, None, :]
            + u[:, None, :] * ((uv[:, 0] + 0.5)[None, :, None] * length[:, None, None])
            + w[:, None, :] * (uv[:, 1][None, :, None] * RAIL_WIDTH)
            + z[None, None, :] * ((uv[:, 2] - 0.5)[None, :, None] * RAIL_DEPTH)
        ).reshape(-1, 3)
        faces = (_UNIT_BOX_FACES[None, :, :] + 8 * np.arange(len(a))[:, None, None]).reshape(-1, 3)
        col = p.createCollisionShape(
            p.GEOM_MESH,
            vertices=verts.tolist(),
            indices=faces.reshape(-1).tolist(),
            flags=p.GEOM_FORCE_CONCAVE_TRIMESH,
            physicsClientId=c,
        )
        vis = p.createVisualShape(
            p.GEOM_MESH,
            vertices=verts.tolist(),
            indices=faces.reshape(-1).tolist(),
            rgbaColor=list(RAIL_COLOUR),
            physicsClientId=c,
        )
        body = p.createMultiBody(0, col, vis, physicsClientId=c)
        self._register("__rails__", body, "rail")

    def _build_vehicles(self) -> None:
        p, c = self._p, self.client
        vehicles = self.scene.nodes("vehicle")
        if not vehicles:
            return
        problems = []
        for node in vehicles:
            seg = node.attrs.get("segment")
            if seg not in self.scene.segments:
                problems.append(f"vehicle {node.id!r}: unknown rail segment {seg!r}")
        if problems:
            raise InputError("vehicles", problems)
        lengths = [
            float(self.scene.vehicle_types.get(n.attrs.get("vehicle_type"), {}).get("length", 0.8))
            for n in vehicles
        ]
        self.vehicle_ids = [n.id for n in vehicles]
        self._vindex = {v: i for i, v in enumerate(self.vehicle_ids)}
        bodies: list[int] = []
        for length in sorted(set(lengths)):
            size = (length, VEHICLE_WIDTH, VEHICLE_HEIGHT)
            col, vis = self._box_shapes(size, VEHICLE_COLOUR)
            sel = [i for i, ln in enumerate(lengths) if ln == length]
            made = p.createMultiBody(
                0, col, vis, batchPositions=[[0.0, 0.0, 0.0]] * len(sel), physicsClientId=c
            )
            made = [made] if isinstance(made, int) else list(made)
            for i, body in zip(sel, made):
                bodies.append((i, body))
        bodies.sort()
        for i, body in bodies:
            self._register(self.vehicle_ids[i], body, "vehicle")
        self._vehicle_pos = np.zeros((len(vehicles), 3))
        self._vehicle_quat = np.tile([0.0, 0.0, 0.0, 1.0], (len(vehicles), 1))
        segs = [n.attrs["segment"] for n in vehicles]
        offs = [n.attrs.get("offset", 0.0) for n in vehicles]
        self.set_vehicle_poses(self.vehicle_ids, segs, offs)

    # ------------------------------------------------------------ updates
    def set_vehicle_pose(self, vehicle_id: str, segment: str, offset: float) -> None:
        """Put a vehicle at ``offset`` m along a rail segment (it hangs under the rail)."""
        self.set_vehicle_poses([vehicle_id], [segment], [offset])

    def set_vehicle_poses(
        self, vehicle_ids: Sequence[str], segments: Sequence[str], offsets: Iterable[float]
    ) -> None:
        """Many vehicles at once; every problem is reported and nothing moves if one is bad."""
        offsets = list(offsets)
        problems = []
        if not (len(vehicle_ids) == len(segments) == len(offsets)):
            raise InputError(
                "vehicle poses", ["vehicle ids, segments and offsets differ in length"]
            )
        for vid, seg, off in zip(vehicle_ids, segments, offsets):
            if vid not in getattr(self, "_vindex", {}):
                problems.append(f"unknown vehicle {vid!r}")
            if seg not in self.scene.segments:
                problems.append(f"vehicle {vid!r}: unknown rail segment {seg!r}")
                continue
            length = self.scene.segments[seg].length
            if not (
                isinstance(off, int | float | np.floating)
                and math.isfinite(off)
                and -1e-9 <= off <= length + 1e-9
            ):
                problems.append(
                    f"vehicle {vid!r}: offset {off!r} must be a finite number in 0..{length:.3f} m"
                )
        if problems:
            raise InputError("vehicle poses", problems)
        for vid, seg, off in zip(vehicle_ids, segments, offsets):
            s = self.scene.segments[seg]
            a, b = self.scene.world_position(s.start), self.scene.world_position(s.end)
            point = self.scene.point_on_segment(seg, float(off))
            self._place_vehicle(self._vindex[vid], point, math.atan2(b[1] - a[1], b[0] - a[0]))

    def set_vehicle_positions(self, positions: np.ndarray, yaws: np.ndarray) -> None:
        """All vehicles from arrays (N, 3) rail points and (N,) headings, in vehicle_ids order."""
        positions = np.asarray(positions, dtype=float)
        yaws = np.asarray(yaws, dtype=float)
        n = len(self.vehicle_ids)
        problems = []
        if positions.shape != (n, 3) or yaws.shape != (n,):
            problems.append(f"expected positions ({n}, 3) and yaws ({n},)")
        elif not (np.all(np.isfinite(positions)) and np.all(np.isfinite(yaws))):
            bad = np.nonzero(~np.isfinite(positions).all(axis=1) | ~np.isfinite(yaws))[0]
            problems.extend(f"vehicle {self.vehicle_ids[i]!r}: pose is not finite" for i in bad)
        if problems:
            raise InputError("vehicle poses", problems)
        for i in range(n):
            self._place_vehicle(i, positions[i], float(yaws[i]))

    def sync_oht(self, sim: Any) -> None:
        """Vehicle bodies to where an ``OhtSim`` has them now (poses pushed only when asked)."""
        pos, yaw = sim.positions()
        order = [self._vindex[v] for v in sim.ids]
        full_pos, full_yaw = self._vehicle_pos.copy(), self._yaws()
        full_pos[order] = pos
        full_pos[order, 2] = pos[:, 2]
        full_yaw[order] = yaw
        self.set_vehicle_positions(full_pos, full_yaw)

    def _yaws(self) -> np.ndarray:
        q = self._vehicle_quat
        return 2 * np.arctan2(q[:, 2], q[:, 3])

    def _place_vehicle(self, i: int, rail_point: np.ndarray, yaw: float) -> None:
        quat = [0.0, 0.0, math.sin(yaw / 2), math.cos(yaw / 2)]
        # the body's origin is the bottom centre of its box: hang it under the rail
        pos = [rail_point[0], rail_point[1], rail_point[2] - RAIL_DEPTH - VEHICLE_HEIGHT - 0.02]
        self._p.resetBasePositionAndOrientation(
            self.body[self.vehicle_ids[i]], pos, quat, physicsClientId=self.client
        )
        self._vehicle_pos[i] = rail_point
        self._vehicle_quat[i] = quat

    def set_equipment_state(self, tool_id: str, e10_state: str) -> None:
        """Colour a tool by its SEMI E10 state (productive, standby, engineering, ...)."""
        problems = []
        if tool_id not in self.body or self.kind_of.get(tool_id) not in EQUIPMENT_KINDS:
            raise NotFoundError(
                "equipment", tool_id, [k for k, v in self.kind_of.items() if v in EQUIPMENT_KINDS]
            )
        if e10_state not in E10_STATES:
            problems.append(f"unknown E10 state {e10_state!r}; accepted: {', '.join(E10_STATES)}")
        if problems:
            raise InputError("equipment state", problems)
        self._p.changeVisualShape(
            self.body[tool_id],
            -1,
            rgbaColor=list(state_colour(e10_state)),
            physicsClientId=self.client,
        )
        self.states[tool_id] = e10_state

    # ------------------------------------------------------------ queries
    def vehicle_poses(self) -> tuple[list[str], np.ndarray, np.ndarray]:
        """Vehicle ids, rail-point positions (N, 3) and quaternions (N, 4, xyzw)."""
        return list(self.vehicle_ids), self._vehicle_pos.copy(), self._vehicle_quat.copy()

    def _body(self, node_id: str) -> int:
        if node_id not in self.body:
            raise NotFoundError("body", node_id, self.body)
        return self.body[node_id]

    def closest(self, a: str, b: str, max_distance: float = 10.0) -> Proximity | None:
        """Closest points of two bodies within ``max_distance`` m (None when farther apart)."""
        pts = self._p.getClosestPoints(
            self._body(a), self._body(b), max_distance, physicsClientId=self.client
        )
        if not pts:
            return None
        best = min(pts, key=lambda q: q[8])
        return Proximity(a, b, float(best[8]), tuple(best[5]), tuple(best[6]))

    def contacts(self, node_id: str, *, margin: float = 0.0) -> list[Proximity]:
        """Every body touching (or within ``margin`` m of) a body, nearest first."""
        body = self._body(node_id)
        lo, hi = self._p.getAABB(body, physicsClientId=self.client)
        out = []
        for other in self._near(np.array(lo) - margin, np.array(hi) + margin):
            if other == body:
                continue
            prox = self.closest(node_id, self.node_of[other], margin)
            if prox is not None and prox.distance <= margin:
                out.append(prox)
        return sorted(out, key=lambda q: q.distance)

    def _near(self, lo: np.ndarray, hi: np.ndarray) -> list[int]:
        found = self._p.getOverlappingObjects(lo.tolist(), hi.tolist(), physicsClientId=self.client)
        return sorted({b for b, _ in found or [] if b in self.node_of})

    def can_place(
        self,
        asset_or_size: str | Sequence[float],
        pose: Any,
        margin: float = 0.0,
        *,
        search: float = 5.0,
        against: Sequence[str] = ("tool", "stocker", "station", "rail"),
    ) -> Clearance:
        """Can an asset (id) or a box (sx, sy, sz m, origin at the bottom centre) stand at a pose
        (4×4 or x, y, z[, yaw]) with at least ``margin`` m to tools, stockers and rails?"""
        problems = []
        pos, yaw = _pose(pose)
        if not (np.all(np.isfinite(pos)) and math.isfinite(yaw)):
            problems.append(f"pose must be finite, got position {pos.tolist()} yaw {yaw}")
        if not (isinstance(margin, int | float) and math.isfinite(margin) and margin >= 0):
            problems.append(f"margin must be a finite number >= 0 m, got {margin!r}")
        if isinstance(asset_or_size, str):
            if asset_or_size not in self.scene.assets:
                raise NotFoundError("asset", asset_or_size, self.scene.assets)
        else:
            size = np.asarray(asset_or_size, dtype=float)
            if size.shape != (3,) or not np.all(np.isfinite(size)) or np.any(size <= 0):
                problems.append(f"a box size is (sx, sy, sz) > 0 m, got {list(asset_or_size)}")
        if problems:
            raise InputError("can_place", problems)
        p, c = self._p, self.client
        if isinstance(asset_or_size, str):
            col, _ = self._asset_shapes(self.scene.assets[asset_or_size], (1, 1, 1, 1))
        else:
            col, _ = self._box_shapes(size, (1, 1, 1, 1))
        quat = [0.0, 0.0, math.sin(yaw / 2), math.cos(yaw / 2)]
        probe = p.createMultiBody(
            0, col, -1, basePosition=pos.tolist(), baseOrientation=quat, physicsClientId=c
        )
        try:
            radius = max(search, margin)
            lo, hi = p.getAABB(probe, physicsClientId=c)
            found = []
            for other in self._near(np.array(lo) - radius, np.array(hi) + radius):
                nid = self.node_of[other]
                if self.kind_of[nid] not in against:
                    continue
                pts = p.getClosestPoints(probe, other, radius, physicsClientId=c)
                if pts:
                    found.append((min(q[8] for q in pts), nid))
        finally:
            p.removeBody(probe, physicsClientId=c)
        found.sort()
        blocking = tuple(n for d, n in found if d < margin)
        dist, nearest = found[0] if found else (math.inf, None)
        return Clearance(not blocking, float(dist), nearest, blocking)

    def ray_cast(self, origins: np.ndarray, ends: np.ndarray) -> RayHits:
        """Cast many rays at once (pybullet rayTestBatch, in chunks of its batch limit)."""
        origins = np.asarray(origins, dtype=float)
        ends = np.asarray(ends, dtype=float)
        if origins.ndim != 2 or origins.shape[1] != 3 or origins.shape != ends.shape:
            raise InputError(
                "ray cast",
                [f"origins and ends must both be (N, 3), got {origins.shape} and {ends.shape}"],
            )
        if not (np.all(np.isfinite(origins)) and np.all(np.isfinite(ends))):
            raise InputError("ray cast", ["ray origins and ends must be finite"])
        rows = []
        for k in range(0, len(origins), RAY_BATCH):
            res = self._p.rayTestBatch(
                origins[k : k + RAY_BATCH].tolist(),
                ends[k : k + RAY_BATCH].tolist(),
                numThreads=1,
                physicsClientId=self.client,
            )
            if len(res) != len(origins[k : k + RAY_BATCH]):  # never silently lose a ray
                raise RuntimeError(f"rayTestBatch returned {len(res)} results for {RAY_BATCH} rays")
            rows.extend((h[0], h[2], *h[3], *h[4]) for h in res)
        arr = np.array(rows, dtype=float).reshape(len(origins), 8)
        names = {-1: ""} | self.node_of
        ids = [names.get(b, "") for b in arr[:, 0].astype(np.int64).tolist()]
        return RayHits(ids, arr[:, 1].copy(), arr[:, 2:5].copy(), arr[:, 5:8].copy())

    def camera_image(
        self,
        eye: Sequence[float],
        target: Sequence[float],
        *,
        width: int = 1280,
        height: int = 720,
        fov: float = 50.0,
        up: Sequence[float] = (0.0, 0.0, 1.0),
    ) -> np.ndarray:
        """An RGB image (height, width, 3) uint8 from pybullet's CPU renderer."""
        problems = []
        eye_a, tgt_a = np.asarray(eye, dtype=float), np.asarray(target, dtype=float)
        if eye_a.shape != (3,) or tgt_a.shape != (3,) or not np.all(np.isfinite([*eye_a, *tgt_a])):
            problems.append("camera and target must be finite (x, y, z) points in metres")
        elif np.allclose(eye_a, tgt_a):
            problems.append("camera and target must differ")
        if not (
            isinstance(width, int)
            and isinstance(height, int)
            and 0 < width <= 8192
            and 0 < height <= 8192
        ):
            problems.append(f"width and height must be integers in 1..8192, got {width}×{height}")
        if problems:
            raise InputError("camera", problems)
        p, c = self._p, self.client
        dist = float(np.linalg.norm(tgt_a - eye_a))
        box = self.scene.scene_bbox()
        extent = float(np.linalg.norm(box[1] - box[0])) + dist
        up_v = np.asarray(up, dtype=float)
        if abs(np.dot((tgt_a - eye_a) / dist, up_v / np.linalg.norm(up_v))) > 0.999:
            up_v = np.array([0.0, 1.0, 0.0])  # looking straight down: pick another up
        view = p.computeViewMatrix(eye_a.tolist(), tgt_a.tolist(), up_v.tolist(), physicsClientId=c)
        proj = p.computeProjectionMatrixFOV(
            fov, width / height, max(dist / 1000, 0.01), extent * 2, physicsClientId=c
        )
        _, _, rgba, _, _ = p.getCameraImage(
            width,
            height,
            view,
            proj,
            renderer=p.ER_TINY_RENDERER,
            lightDirection=[0.4, -0.5, 1.0],
            shadow=0,
            physicsClientId=c,
        )
        return np.asarray(rgba, dtype=np.uint8).reshape(height, width, 4)[:, :, :3]


def _quat_from_matrix(r: np.ndarray) -> np.ndarray:
    """Quaternion (x, y, z, w) of a rotation matrix (Shepperd's method; no scipy import)."""
    tr = r[0, 0] + r[1, 1] + r[2, 2]
    if tr > 0:
        k = 2.0 * math.sqrt(tr + 1.0)
        q = [(r[2, 1] - r[1, 2]) / k, (r[0, 2] - r[2, 0]) / k, (r[1, 0] - r[0, 1]) / k, k / 4]
    else:
        i = int(np.argmax(np.diag(r)))
        j, m = (i + 1) % 3, (i + 2) % 3
        k = 2.0 * math.sqrt(max(1.0 + r[i, i] - r[j, j] - r[m, m], 1e-300))
        q = [0.0, 0.0, 0.0, (r[m, j] - r[j, m]) / k]
        q[i] = k / 4
        q[j] = (r[j, i] + r[i, j]) / k
        q[m] = (r[m, i] + r[i, m]) / k
    q = np.asarray(q)
    return q / np.linalg.norm(q)
