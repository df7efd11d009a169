"""The as-built check: register a scan against the scene, then measure where each tool really is.

Registration (whole scan → scene frame) lives in :mod:`twin.scan.register`. Then, per tool: the
registered scan points nearest to the tool's expected box (within a margin, off the floor) are
fitted to the tool's exact mesh by ICP restricted to a translation in the floor plane and a yaw
(tools stand on the floor), with point-to-plane and point-to-point terms against exact closest
points on the mesh and Tukey weights against clutter and neighbours. The fitted motion is the
tool's deviation; tools beyond a tolerance are flagged and can be moved in the scene.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from twin.errors import ConfigError, InputError
from twin.scan.geometry import floor_z, raycasting_scene, solid_ids, world_mesh, yaw_of
from twin.scan.io import read_scan
from twin.scan.register import register, voxel_down
from twin.scene.graph import SceneGraph

INITS = ("auto", "global", "identity")
GLOBAL_METHODS = ("auto", "all", "footprint", "fpfh")


@dataclass(kw_only=True)
class AlignConfig:
    """How a scan is registered and how tools are measured."""

    voxel: float = 0.25  # m; voxel of the global registration (features, RANSAC)
    icp_voxel: float = 0.08  # m; voxel of the finest whole-scan ICP level
    tool_voxel: float = 0.05  # m; spacing of the scan points used in the per-tool fits
    tool_points: int = 4000  # at most this many points per tool fit (a uniform subset)
    margin: float = 1.0  # m around a tool's expected box where its points are looked for
    floor_clearance: float = 0.05  # m; scan points this close to the floor belong to the floor
    tolerance_mm: float = 50.0  # a tool whose origin moved more than this is flagged
    tolerance_deg: float = 1.0  # a tool turned more than this is flagged
    min_points: int = 40  # points a tool needs to be measured at all
    min_fitness: float = 0.7  # share of the scan's equipment points that must match the scene
    init: str = "auto"  # "auto", "global" (feature matching) or "identity" (scan in fab frame)
    # "footprint" (plan-view correlation), "fpfh" (FPFH + RANSAC), "all" (both) or "auto"
    # (footprint, then FPFH only when the footprint pose fits less than half the equipment)
    global_method: str = "auto"
    levelled: bool = True  # the scanner was levelled: global hypotheses are x, y, z, yaw only
    ransac_iterations: int = 60_000  # RANSAC hypotheses drawn
    icp_points: int = 30_000  # at most this many scan points per whole-scan ICP level
    tool_iterations: int = 40
    seed: int = 0

    def validate(self) -> None:
        problems = []
        for name in ("voxel", "icp_voxel", "tool_voxel", "margin", "tolerance_mm", "tolerance_deg"):
            v = getattr(self, name)
            if not (math.isfinite(v) and v > 0):
                problems.append(f"{name} must be a finite number > 0, got {v}")
        if not 0 <= self.min_fitness <= 1:
            problems.append(f"min_fitness must be in [0, 1], got {self.min_fitness}")
        if self.init not in INITS:
            problems.append(f"init must be one of {', '.join(INITS)}, got {self.init!r}")
        if self.global_method not in GLOBAL_METHODS:
            problems.append(
                f"global_method must be one of {', '.join(GLOBAL_METHODS)}, got {self.global_method!r}"
            )
        if self.min_points < 3:
            problems.append(f"min_points must be >= 3, got {self.min_points}")
        if problems:
            raise ConfigError("align config", problems)


@dataclass
class ToolDeviation:
    """Where the scan shows a tool, relative to where the scene puts it."""

    id: str
    kind: str
    status: str  # "ok", "moved" (beyond tolerance) or "unobserved" (too few points)
    points: int  # scan points used
    dx: float = 0.0  # m, fab frame
    dy: float = 0.0  # m
    dyaw_deg: float = 0.0  # deg, counter-clockwise
    rmse_mm: float = 0.0  # fit residual of the inliers
    constrained: bool = True  # False: the visible faces leave a direction poorly observed
    pose: np.ndarray | None = None  # 4×4 corrected world pose

    @property
    def distance(self) -> float:
        return math.hypot(self.dx, self.dy)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind,
            "status": self.status,
            "points": self.points,
            "dx_m": round(self.dx, 4),
            "dy_m": round(self.dy, 4),
            "distance_m": round(self.distance, 4),
            "dyaw_deg": round(self.dyaw_deg, 3),
            "rmse_mm": round(self.rmse_mm, 2),
            "constrained": self.constrained,
        }


@dataclass
class AlignResult:
    """The registration of a scan and the deviation of every tool."""

    scan_to_scene: np.ndarray  # 4×4
    fitness: float  # share of the scan's equipment points within 3 ICP voxels of the scene's
    rmse_mm: float
    init: str  # which start won: "global" or "identity"
    points: int  # points in the scan
    tools: list[ToolDeviation]
    timings: dict[str, float] = field(default_factory=dict)  # s per stage

    @property
    def flagged(self) -> list[ToolDeviation]:
        return [t for t in self.tools if t.status == "moved"]

    def to_dict(self) -> dict[str, Any]:
        return {
            "points": self.points,
            "init": self.init,
            "fitness": round(self.fitness, 4),
            "rmse_mm": round(self.rmse_mm, 2),
            "scan_to_scene": self.scan_to_scene.round(6).tolist(),
            "flagged": [t.id for t in self.flagged],
            "unobserved": [t.id for t in self.tools if t.status == "unobserved"],
            "tools": [t.to_dict() for t in self.tools],
            "timings_s": {k: round(v, 3) for k, v in self.timings.items()},
        }

    def apply(self, scene: SceneGraph) -> int:
        """Move every flagged tool of ``scene`` to where the scan shows it; returns the count."""
        n = 0
        for t in self.flagged:
            if t.pose is None:
                continue
            node = scene.node(t.id)
            parent = np.eye(4) if node.parent is None else scene.world_transform(node.parent)
            scene.set_transform(t.id, np.linalg.inv(parent) @ t.pose)
            n += 1
        return n


# ----------------------------------------------------------------------------- per tool
def measure_tools(
    points: np.ndarray, scene: SceneGraph, config: AlignConfig
) -> list[ToolDeviation]:
    """The deviation of every tool and stocker, from scan points already in the scene frame.

    ``points`` should be thinned to about ``tool_voxel`` spacing (``align_scan`` does it once).
    """
    from scipy.spatial import cKDTree

    pts = np.asarray(points, dtype=np.float64)
    pts = pts[pts[:, 2] > floor_z(scene) + config.floor_clearance]
    ids = solid_ids(scene)
    rng = np.random.default_rng(config.seed)
    best_d = np.full(len(pts), np.inf)
    best_k = np.full(len(pts), -1)
    tree = cKDTree(pts[:, :2]) if len(pts) else None
    for k, node_id in enumerate(ids):
        if tree is None:
            break
        w = scene.world_transform(node_id)
        lb = scene.local_bounds(node_id)
        centre = w[:3, :3] @ lb.mean(axis=0) + w[:3, 3]
        radius = 0.5 * float(np.hypot(*(lb[1, :2] - lb[0, :2]))) + config.margin
        idx = np.asarray(tree.query_ball_point(centre[:2], radius), dtype=np.int64)
        if len(idx) == 0:
            continue
        local = (pts[idx] - w[:3, 3]) @ w[:3, :3]
        d = np.linalg.norm(np.maximum(np.maximum(lb[0] - local, local - lb[1]), 0.0), axis=1)
        better = (d <= config.margin) & (d < best_d[idx])
        best_d[idx[better]] = d[better]
        best_k[idx[better]] = k
    order = np.argsort(best_k, kind="stable")
    starts = np.searchsorted(best_k[order], np.arange(len(ids) + 1))
    out = []
    for k, node_id in enumerate(ids):
        mine = pts[order[starts[k] : starts[k + 1]]]
        kind = scene.node(node_id).kind
        if len(mine) > config.tool_points:
            mine = mine[rng.choice(len(mine), config.tool_points, replace=False)]
        if len(mine) < config.min_points:
            out.append(ToolDeviation(id=node_id, kind=kind, status="unobserved", points=len(mine)))
            continue
        out.append(_fit_tool(scene, node_id, kind, mine, config))
    return out


def _fit_tool(
    scene: SceneGraph, node_id: str, kind: str, pts: np.ndarray, config: AlignConfig
) -> ToolDeviation:
    """ICP in (x, y, yaw) of the scan points onto the tool's mesh at its expected pose."""
    import open3d as o3d

    w = scene.world_transform(node_id)
    mesh = world_mesh(scene, node_id)
    rays = raycasting_scene([mesh])
    origin = w[:3, 3]
    # Lever arm that makes the yaw column commensurate with the translation columns.
    lever = max(float(np.linalg.norm(pts[:, :2] - origin[:2], axis=1).mean()), 0.1)
    e = np.eye(4)  # maps scan points onto the model
    cur = pts.copy()
    c = config.margin
    c_min = 0.05  # m; final Tukey width: well above sensor noise, below the gap to neighbours
    p2p = 0.1  # weight of the point-to-point rows: they pin sliding along a single visible face
    constrained, rmse = True, 0.0
    for _ in range(config.tool_iterations):
        hit = rays.compute_closest_points(o3d.core.Tensor(cur.astype(np.float32)))
        q = hit["points"].numpy().astype(np.float64)
        n = hit["primitive_normals"].numpy().astype(np.float64)
        r = cur - q
        dist = np.linalg.norm(r, axis=1)
        wt = np.where(dist < c, (1.0 - (dist / c) ** 2) ** 2, 0.0)  # Tukey biweight
        if wt.sum() < 3:
            break
        arm = np.column_stack([-(cur[:, 1] - origin[1]), cur[:, 0] - origin[0]]) / lever
        a_pl = np.column_stack([n[:, 0] * arm[:, 0] + n[:, 1] * arm[:, 1], n[:, 0], n[:, 1]])
        b_pl = -np.einsum("ij,ij->i", n, r)
        a_x = np.column_stack([arm[:, 0], np.ones(len(cur)), np.zeros(len(cur))])
        a_y = np.column_stack([arm[:, 1], np.zeros(len(cur)), np.ones(len(cur))])
        a = np.vstack([a_pl, p2p * a_x, p2p * a_y])
        b = np.concatenate([b_pl, -p2p * r[:, 0], -p2p * r[:, 1]])
        ww = np.concatenate([wt, wt, wt])
        h = a.T @ (a * ww[:, None])
        g = a.T @ (b * ww)
        try:
            x = np.linalg.solve(h + 1e-9 * np.eye(3), g)
        except np.linalg.LinAlgError:
            break
        phi, tx, ty = x[0] / lever, x[1], x[2]
        cs, sn = math.cos(phi), math.sin(phi)
        inc = np.eye(4)
        inc[:2, :2] = [[cs, -sn], [sn, cs]]
        inc[:2, 3] = origin[:2] - inc[:2, :2] @ origin[:2] + (tx, ty)
        e = inc @ e
        cur = pts @ e[:3, :3].T + e[:3, 3]
        inl = wt > 0
        rmse = float(np.sqrt(np.mean(np.einsum("ij,ij->i", n[inl], r[inl]) ** 2)))
        hp = a_pl[:, 1:].T @ (a_pl[:, 1:] * wt[:, None])
        ev = np.linalg.eigvalsh(hp)
        constrained = bool(ev[0] > 0.05 * ev[1])
        small = abs(phi) * lever < 1e-4 and math.hypot(tx, ty) < 1e-4  # 0.1 mm
        if small and c <= c_min:
            break
        c = max(c * 0.5, c_min)
    d = np.linalg.inv(e)  # the tool's move: expected pose → scanned pose
    pose = d @ w
    dx, dy = pose[0, 3] - w[0, 3], pose[1, 3] - w[1, 3]
    dyaw = math.degrees(math.remainder(yaw_of(pose) - yaw_of(w), 2 * math.pi))
    moved = math.hypot(dx, dy) * 1000.0 > config.tolerance_mm or abs(dyaw) > config.tolerance_deg
    return ToolDeviation(
        id=node_id,
        kind=kind,
        status="moved" if moved else "ok",
        points=len(pts),
        dx=float(dx),
        dy=float(dy),
        dyaw_deg=float(dyaw),
        rmse_mm=rmse * 1000.0,
        constrained=constrained,
        pose=pose,
    )


# ----------------------------------------------------------------------------- entry point
def align_scan(
    scan: str | Path | np.ndarray, scene: SceneGraph, config: AlignConfig | None = None
) -> AlignResult:
    """Register a scan (a PLY/PCD/XYZ file or an (n, 3) array) against ``scene`` and measure tools."""
    config = config or AlignConfig()
    config.validate()
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    where = str(scan) if isinstance(scan, str | Path) else "scan array"
    pts = read_scan(scan) if isinstance(scan, str | Path) else np.asarray(scan, dtype=np.float64)
    if pts.ndim != 2 or pts.shape[1] != 3 or len(pts) == 0:
        raise InputError(
            "scan", [f"{where}: need a non-empty (n, 3) array of points, got shape {pts.shape}"]
        )
    finite = np.all(np.isfinite(pts), axis=1)
    if not finite.any():
        raise InputError(
            "scan", [f"{where}: all {len(pts)} points have NaN or infinite coordinates"]
        )
    if not finite.all():
        pts = pts[finite]  # a few bad returns are dropped, as read_scan does for files
    timings["read"] = time.perf_counter() - t0
    if not solid_ids(scene):
        raise InputError(
            "scene",
            [f"scene {scene.name!r} has no tools or stockers with geometry to align against"],
        )
    t0 = time.perf_counter()
    # One voxel pass over the whole scan; every later step works on this thinner cloud.
    thin = voxel_down(pts, config.tool_voxel)
    timings["thin"] = time.perf_counter() - t0
    t, fitness, rmse, init = register(thin, scene, config, timings)
    if fitness < config.min_fitness:
        raise InputError(
            "scan",
            [
                f"{where}: does not match scene {scene.name!r}: after registration only "
                f"{fitness:.0%} of its points above the floor lie within {3 * config.icp_voxel:.2f} m "
                f"of the scene's equipment (need {config.min_fitness:.0%}); is it a scan of this fab, in metres?"
            ],
        )
    t0 = time.perf_counter()
    in_scene = thin @ t[:3, :3].T + t[:3, 3]
    tools = measure_tools(in_scene, scene, config)
    timings["tools"] = time.perf_counter() - t0
    timings["total"] = sum(timings.values())
    return AlignResult(
        scan_to_scene=t,
        fitness=fitness,
        rmse_mm=rmse * 1000.0,
        init=init,
        points=len(pts),
        tools=tools,
        timings=timings,
    )
