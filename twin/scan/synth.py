"""Synthetic as-built scans of a scene: what a terrestrial laser scanner would record.

The surfaces of tools, stockers and the floor are sampled uniformly; a sample is kept only if
one of the scan positions sees it (a ray from the scanner reaches it before any other surface,
within the scanner's range); the range is then perturbed with gaussian noise along that ray.
A few tools can be moved by known translations and yaws first, and the whole cloud can be
expressed in the scanner's own frame, so the as-built check has a ground truth to recover.
Everything is deterministic for a seed.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from twin.errors import ConfigError, InputError, close_matches
from twin.scan.geometry import (
    floor_mesh,
    floor_z,
    moved_pose,
    raycasting_scene,
    sample_surface,
    solid_ids,
    world_mesh,
)
from twin.scan.io import write_scan
from twin.scene.graph import SceneGraph, translation


@dataclass(frozen=True, slots=True)
class Move:
    """A known displacement of one tool: shift (m) of its origin and turn (deg) about it."""

    tool: str
    dx: float = 0.0  # m
    dy: float = 0.0  # m
    dyaw: float = 0.0  # deg, counter-clockwise seen from above

    @classmethod
    def parse(cls, text: str) -> Move:
        """``TOOL:dx,dy,yaw`` (m, m, deg), as the command line takes it."""
        tool, sep, rest = text.rpartition(":")
        try:
            dx, dy, dyaw = (float(v) for v in rest.split(","))
            if not sep or not tool:
                raise ValueError
        except ValueError:
            raise InputError(
                "--move", [f"{text!r} is not TOOL:dx,dy,yaw (metres, metres, degrees)"]
            ) from None
        return cls(tool, dx, dy, dyaw)


@dataclass(kw_only=True)
class ScanConfig:
    """How the synthetic scan is taken."""

    points: int = 200_000  # points in the scan
    noise_mm: float = 3.0  # standard deviation of the range noise (mm)
    positions: list[tuple[float, float]] | None = (
        None  # scanner x, y (m); None: a grid over the fab
    )
    cell: float = 15.0  # m; the automatic grid puts one scanner per cell of this size
    height: float = 1.6  # m above the floor, of the scanner's optical centre
    max_range: float = 60.0  # m
    # m; a scanner with a fixed angular step lays points at a density ∝ cos(incidence) / range²:
    # full density up to this range at normal incidence, thinning beyond. None: uniform density.
    full_density_range: float | None = 8.0
    outliers: float = 0.0  # fraction of extra stray points (people, carts, dust) in the fab's box
    frame: tuple[float, float, float, float] = (
        0.0,
        0.0,
        0.0,
        0.0,
    )  # scanner frame: dx, dy, dz (m), yaw (deg)
    seed: int = 0

    def validate(self) -> None:
        problems = []
        if self.points <= 0:
            problems.append(f"points must be > 0, got {self.points}")
        if not (self.noise_mm >= 0 and math.isfinite(self.noise_mm)):
            problems.append(f"noise_mm must be a finite number >= 0, got {self.noise_mm}")
        if not self.cell > 0:
            problems.append(f"cell must be > 0 m, got {self.cell}")
        if self.full_density_range is not None and not self.full_density_range > 0:
            problems.append(
                f"full_density_range must be > 0 m or None, got {self.full_density_range}"
            )
        if not self.max_range > 0:
            problems.append(f"max_range must be > 0 m, got {self.max_range}")
        if not 0 <= self.outliers < 1:
            problems.append(f"outliers must be a fraction in [0, 1), got {self.outliers}")
        if self.positions is not None and len(self.positions) == 0:
            problems.append("positions, when given, must name at least one scanner position")
        if len(self.frame) != 4 or not all(math.isfinite(v) for v in self.frame):
            problems.append(f"frame must be 4 finite numbers dx, dy, dz, yaw, got {self.frame}")
        if problems:
            raise ConfigError("scan config", problems)


@dataclass
class SyntheticScan:
    """A synthetic scan and the truth it was made from."""

    points: np.ndarray  # (n, 3) m, in the scanner frame
    moves: dict[str, Move]
    scan_to_scene: np.ndarray  # 4×4: maps scan points into the scene frame
    positions: np.ndarray  # (k, 3) scanner positions in the scene frame (m)
    meta: dict[str, float] = field(default_factory=dict)

    def truth(self) -> dict:
        """The ground truth as plain JSON data."""
        return {
            "moves": {
                t: {"dx": m.dx, "dy": m.dy, "dyaw_deg": m.dyaw}
                for t, m in sorted(self.moves.items())
            },
            "scan_to_scene": self.scan_to_scene.round(9).tolist(),
            "positions": self.positions.round(6).tolist(),
            "points": len(self.points),
            **self.meta,
        }

    def write(self, path: str | Path) -> tuple[Path, Path]:
        """Write the cloud (PLY/PCD/XYZ by extension) and ``<stem>.truth.json`` beside it."""
        path = write_scan(path, self.points)
        truth = path.with_name(path.stem + ".truth.json")
        truth.write_text(json.dumps(self.truth(), indent=2) + "\n")
        return path, truth


def scanner_positions(scene: SceneGraph, config: ScanConfig) -> np.ndarray:
    """Scanner positions (k, 3): the given ones, or one per grid cell, moved out of equipment."""
    z = floor_z(scene) + config.height
    boxes = np.array([b for i in solid_ids(scene) if (b := scene.bbox(i)) is not None])
    if config.positions is not None:
        return np.array([[x, y, z] for x, y in config.positions], dtype=float)
    if len(boxes) == 0:
        return np.array([[0.0, 0.0, z]])
    lo, hi = boxes[:, 0, :2].min(axis=0), boxes[:, 1, :2].max(axis=0)
    nx, ny = (max(1, math.ceil((hi[k] - lo[k]) / config.cell)) for k in (0, 1))
    out = []
    for i in range(nx):
        for j in range(ny):
            p = lo + (hi - lo) * np.array([(i + 0.5) / nx, (j + 0.5) / ny])
            out.append(_free_spot(p, boxes))
    return np.array([[x, y, z] for x, y in out])


def _free_spot(p: np.ndarray, boxes: np.ndarray, clearance: float = 0.3) -> np.ndarray:
    """The nearest point to ``p`` on a spiral that is outside every equipment footprint."""
    for r in np.arange(0.0, 30.0, 0.25):
        for a in np.linspace(0, 2 * math.pi, max(1, int(8 * r) + 1), endpoint=False):
            q = p + r * np.array([math.cos(a), math.sin(a)])
            inside = np.all(
                (boxes[:, 0, :2] - clearance <= q) & (q <= boxes[:, 1, :2] + clearance), axis=1
            )
            if not inside.any():
                return q
    return p


def check_moves(moves: list[Move], known: list[str]) -> list[str]:
    """Every problem with a list of moves: unknown tools, tools moved twice, non-finite values."""
    problems, seen, known_set = [], set(), set(known)
    for m in moves:
        if m.tool not in known_set:
            close = close_matches(m.tool, known)
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            problems.append(f"move names unknown tool {m.tool!r}{hint}")
        if m.tool in seen:
            problems.append(f"tool {m.tool!r} is moved twice")
        if not all(math.isfinite(v) for v in (m.dx, m.dy, m.dyaw)):
            problems.append(f"move of {m.tool!r} has a non-finite value")
        seen.add(m.tool)
    return problems


def synthesize(
    scene: SceneGraph, config: ScanConfig | None = None, moves: list[Move] | None = None
) -> SyntheticScan:
    """Scan ``scene`` with some tools moved; returns the points and the truth."""
    import open3d as o3d

    config = config or ScanConfig()
    config.validate()
    moves = list(moves or [])
    known = solid_ids(scene)
    problems = check_moves(moves, known)
    if problems:
        raise InputError("scan moves", problems)
    rng = np.random.default_rng(config.seed)
    by_tool = {m.tool: m for m in moves}
    meshes = []
    for node_id in known:
        m = by_tool.get(node_id)
        pose = scene.world_transform(node_id)
        if m is not None:
            pose = moved_pose(pose, m.dx, m.dy, math.radians(m.dyaw))
        mesh = world_mesh(scene, node_id, pose)
        if mesh is not None:
            meshes.append(mesh)
    meshes.append(floor_mesh(scene))
    positions = scanner_positions(scene, config)

    rays = raycasting_scene(meshes)

    n_clean = int(round(config.points * (1.0 - config.outliers)))
    r0 = config.full_density_range
    kept_pts, kept_dirs, have, rounds, batch = [], [], 0, 0, max(n_clean, 1000) * 2
    while have < n_clean and rounds < 8:
        pts, normals, _ = sample_surface(meshes, batch, rng, skip_down_faces=True)
        density = np.zeros(len(pts))  # relative point density summed over the scanners
        best = np.zeros(len(pts))  # largest single-scanner share: that ray gets the noise
        ray_dir = np.zeros_like(pts)
        for pos in positions:
            d = pts - pos
            dist = np.linalg.norm(d, axis=1)
            unit = d / np.maximum(dist, 1e-9)[:, None]
            query = np.hstack([np.repeat(pos[None], len(pts), axis=0), unit]).astype(np.float32)
            hit = rays.cast_rays(o3d.core.Tensor(query))["t_hit"].numpy()
            seen = (hit >= dist - 2e-4 - 2e-5 * dist) & (dist <= config.max_range)
            if r0 is None:
                part = seen.astype(float)
            else:
                cos = np.abs(np.einsum("ij,ij->i", unit, normals))
                part = np.where(seen, (r0 / np.maximum(dist, 1e-9)) ** 2 * cos, 0.0)
            density += part
            better = part > best
            best[better], ray_dir[better] = part[better], unit[better]
        keep = rng.random(len(pts)) < np.minimum(density, 1.0)
        ok = keep & (best > 0)
        kept_pts.append(pts[ok])
        kept_dirs.append(ray_dir[ok])
        have += int(ok.sum())
        rounds += 1
        frac = max(ok.mean(), 0.01)
        batch = int(min(max((n_clean - have) / frac * 1.2, 1000), 20_000_000))
    pts = np.concatenate(kept_pts)
    dirs = np.concatenate(kept_dirs)
    if len(pts) == 0:
        raise InputError("scan synthesis", ["no surface is visible from the scan positions"])
    pick = rng.permutation(len(pts))[: min(n_clean, len(pts))]
    pts, dirs = pts[pick], dirs[pick]
    pts = pts + dirs * rng.normal(0.0, config.noise_mm / 1000.0, size=(len(pts), 1))
    n_out = config.points - n_clean
    if n_out > 0:
        lo, hi = (
            np.min([m.bounds[0] for m in meshes], axis=0),
            np.max([m.bounds[1] for m in meshes], axis=0),
        )
        pts = np.vstack([pts, lo + rng.random((n_out, 3)) * (hi - lo)])
        pts = pts[rng.permutation(len(pts))]

    dx, dy, dz, yaw = config.frame
    scene_to_scan = translation(dx, dy, dz, math.radians(yaw))
    pts = pts @ scene_to_scan[:3, :3].T + scene_to_scan[:3, 3]
    return SyntheticScan(
        points=pts,
        moves=by_tool,
        scan_to_scene=np.linalg.inv(scene_to_scan),
        positions=positions,
        meta={"noise_mm": config.noise_mm, "seed": config.seed, "outliers": config.outliers},
    )
