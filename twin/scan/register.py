"""Whole-scan registration: bring a scan into the scene frame (open3d).

The scene's scannable surfaces are sampled into a reference cloud with exact face normals.
Global registration matches FPFH features of scan and reference by RANSAC, on the equipment only
(the floor plane has no distinctive features). Scanners on a site are levelled, so by default each
RANSAC hypothesis is a 4-DOF pose (x, y, z, yaw) fixed by two correspondences, which needs far
fewer samples than a 6-DOF one fixed by three; ``levelled=False`` uses open3d's 6-DOF RANSAC.
Multi-scale point-to-plane ICP with a Tukey kernel then refines the pose in 6 DOF, floor included.
"""

from __future__ import annotations

import math
import time
from typing import TYPE_CHECKING, Any

import numpy as np

from twin.scan.geometry import (
    floor_mesh,
    floor_z,
    raycasting_scene,
    sample_surface,
    solid_ids,
    world_mesh,
)
from twin.scene.graph import SceneGraph

if TYPE_CHECKING:
    from twin.scan.align import AlignConfig


def cloud(points: np.ndarray, normals: np.ndarray | None = None) -> Any:
    """An open3d point cloud of (n, 3) points and optional normals."""
    import open3d as o3d

    pc = o3d.geometry.PointCloud(
        o3d.utility.Vector3dVector(np.ascontiguousarray(points, dtype=np.float64))
    )
    if normals is not None:
        pc.normals = o3d.utility.Vector3dVector(np.ascontiguousarray(normals, dtype=np.float64))
    return pc


def voxel_down(points: np.ndarray, voxel: float) -> np.ndarray:
    """The centroid of the points in each occupied voxel (m); open3d's voxel_down_sample, faster.

    Sorting one int64 key per point and summing runs is about twice as fast as open3d's hash map
    on a million points, and this is the one pass that sees every point of a scan.
    """
    pts = np.asarray(points, dtype=np.float64)
    if len(pts) == 0:
        return pts.reshape(0, 3)
    k = np.floor((pts - pts.min(axis=0)) / voxel).astype(np.int64)
    span = k.max(axis=0) + 1
    key = (k[:, 0] * span[1] + k[:, 1]) * span[2] + k[:, 2]
    order = np.argsort(key, kind="stable")
    ks = key[order]
    start = np.flatnonzero(np.r_[True, ks[1:] != ks[:-1]])
    count = np.diff(np.r_[start, len(pts)])
    return np.add.reduceat(pts[order], start, axis=0) / count[:, None]


def reference_cloud(
    scene: SceneGraph, spacing: float, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Points, exact normals and an is-floor mask sampling the scannable scene surfaces.

    Undersides and the floor under equipment are left out (a scanner never sees them): floor
    samples are kept only where a ray dropped from above reaches the floor first.
    """
    import open3d as o3d

    rng = np.random.default_rng(seed)
    solids = [m for i in solid_ids(scene) if (m := world_mesh(scene, i)) is not None]
    out_p, out_n, out_f = [], [], []
    for meshes, is_floor in ((solids, False), ([floor_mesh(scene)], True)):
        count = int(sum(float(m.area) for m in meshes) / spacing**2)
        p, n, _ = sample_surface(meshes, count, rng, skip_down_faces=True)
        if is_floor and solids and len(p):
            top = float(max(m.bounds[1, 2] for m in solids)) + 1.0
            origin = np.column_stack([p[:, :2], np.full(len(p), top)])
            q = np.hstack([origin, np.tile([0.0, 0.0, -1.0], (len(p), 1))]).astype(np.float32)
            hit = raycasting_scene(solids).cast_rays(o3d.core.Tensor(q))["t_hit"].numpy()
            keep = ~(hit < top - p[:, 2] - 1e-3)
            p, n = p[keep], n[keep]
        out_p.append(p)
        out_n.append(n)
        out_f.append(np.full(len(p), is_floor))
    return np.concatenate(out_p), np.concatenate(out_n), np.concatenate(out_f)


def register(
    scan: np.ndarray, scene: SceneGraph, config: AlignConfig, timings: dict[str, float]
) -> tuple[np.ndarray, float, float, str]:
    """The 4×4 taking scan points into the scene frame, its fitness, RMSE (m) and winning start.

    Fitness is the share of the scan's equipment points (above the floor once registered) that
    lie within 3 ICP voxels of the scene's equipment: a wrong pose can match floor anywhere,
    but not the tools.
    """
    import open3d as o3d
    from scipy.spatial import cKDTree

    o3d.utility.set_verbosity_level(o3d.utility.VerbosityLevel.Error)
    o3d.utility.random.seed(config.seed)
    rng = np.random.default_rng(config.seed)
    v = config.voxel
    t0 = time.perf_counter()
    ref_p, ref_n, ref_floor = reference_cloud(scene, v / 2.0, config.seed)
    ref = cloud(ref_p, ref_n)
    sub = rng.permutation(len(ref_p))[: len(ref_p) // 4]  # a uniform subset, twice the spacing
    ref_coarse = cloud(ref_p[sub], ref_n[sub])
    ref_equipment = cloud(ref_p[~ref_floor], ref_n[~ref_floor])
    fit = _Fitness(cKDTree(ref_p[~ref_floor]), ref_n[~ref_floor], floor_z(scene), config)
    timings["reference"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    dense = cloud(voxel_down(scan, config.icp_voxel))
    coarse = _capped(dense.voxel_down_sample(v), config.icp_points // 2, rng)
    fine = _capped(dense, config.icp_points, rng)
    timings["downsample"] = time.perf_counter() - t0

    candidates: list[tuple[str, np.ndarray]] = []
    if config.init in ("auto", "identity"):
        candidates.append(("identity", np.eye(4)))
    if config.init in ("auto", "global"):
        t0 = time.perf_counter()
        candidates += global_registration(dense, ref_equipment, fit.floor, config, fit)
        timings["global"] = time.perf_counter() - t0

    # Score every start as it is, then run coarse ICP from the best distinct ones in turn until
    # one fits well: an ICP from a wrong start is the slowest thing here and never wins.
    t0 = time.perf_counter()
    pts = np.asarray(coarse.points)
    scored = sorted(((fit(pts, t, v)[0], name, t) for name, t in candidates), key=lambda x: -x[0])
    starts: list[tuple[str, np.ndarray]] = []
    for _, name, t in scored:
        if all(not _same_pose(t, u, v) for _, u in starts):
            starts.append((name, t))
    best: tuple[str, float, np.ndarray] | None = None
    for name, init in starts[:3]:
        t = init
        for dist in (2.0 * v, v):
            t = icp(coarse, ref_coarse, dist, t)
        score, _ = fit(pts, t, v)
        if best is None or score > best[1] + 1e-9:
            best = (name, score, t)
        if score >= 0.5:  # a wrong pose fits a few percent; the right one most
            break
    assert best is not None
    name, _, t = best
    for dist in (v / 2.0, 3.0 * config.icp_voxel):
        t = icp(fine, ref, dist, t)
    fitness, rmse = fit(np.asarray(fine.points), t, 3.0 * config.icp_voxel)
    timings["icp"] = time.perf_counter() - t0
    return t, fitness, rmse, name


def _same_pose(a: np.ndarray, b: np.ndarray, tol: float) -> bool:
    """Two 4×4 poses within ``tol`` metres and one degree of each other."""
    turn = np.clip((np.trace(a[:3, :3].T @ b[:3, :3]) - 1.0) / 2.0, -1.0, 1.0)
    return bool(np.linalg.norm(a[:3, 3] - b[:3, 3]) < tol and math.degrees(math.acos(turn)) < 1.0)


class _Fitness:
    """How well registered scan points fit the equipment (the floor matches a wrong pose too)."""

    def __init__(self, tree: Any, normals: np.ndarray, floor: float, config: AlignConfig):
        self.tree, self.normals, self.floor = tree, normals, floor
        self.clearance = config.floor_clearance

    def __call__(self, pts: np.ndarray, t: np.ndarray, dist: float) -> tuple[float, float]:
        """Share of above-floor points within ``dist`` of equipment; their point-to-plane RMSE."""
        pts = pts @ t[:3, :3].T + t[:3, 3]
        above = pts[pts[:, 2] > self.floor + self.clearance + dist]
        if len(above) == 0:
            return 0.0, 0.0
        d, idx = self.tree.query(above, distance_upper_bound=dist, workers=-1)
        ok = np.isfinite(d)
        if not ok.any():
            return 0.0, 0.0
        q = self.tree.data[idx[ok]]
        plane = np.einsum("ij,ij->i", above[ok] - q, self.normals[idx[ok]])
        return float(ok.mean()), float(np.sqrt(np.mean(plane**2)))


def _capped(pc: Any, cap: int, rng: np.random.Generator) -> Any:
    """At most ``cap`` points of a downsampled cloud, chosen uniformly (keeps ICP time bounded)."""
    n = len(pc.points)
    if n <= cap:
        return pc
    return pc.select_by_index(np.sort(rng.choice(n, cap, replace=False)).tolist())


def icp(src: Any, ref: Any, dist: float, init: np.ndarray) -> np.ndarray:
    """Point-to-plane ICP (the reference normals are exact) with a Tukey kernel of width ``dist``."""
    import open3d as o3d

    reg = o3d.pipelines.registration
    est = reg.TransformationEstimationPointToPlane(reg.TukeyLoss(k=dist))
    crit = reg.ICPConvergenceCriteria(relative_fitness=1e-6, relative_rmse=1e-6, max_iteration=25)
    return np.asarray(reg.registration_icp(src, ref, dist, init, est, crit).transformation).copy()


def _features(pc: Any, v: float) -> tuple[Any, Any]:
    import open3d as o3d

    if not pc.has_normals():
        pc.estimate_normals(o3d.geometry.KDTreeSearchParamHybrid(radius=2 * v, max_nn=30))
    f = o3d.pipelines.registration.compute_fpfh_feature(
        pc, o3d.geometry.KDTreeSearchParamHybrid(radius=5 * v, max_nn=100)
    )
    return pc, f


def global_registration(
    full: Any, ref_equipment: Any, ref_floor: float, config: AlignConfig, fit: _Fitness
) -> list[tuple[str, np.ndarray]]:
    """Candidate scan → scene poses, named by the method that found them, best first per method.

    ``auto`` runs the plan-view correlation (levelled scans) and falls back to FPFH + RANSAC
    only when its best pose fits less than half of the equipment; ``all`` runs both.
    """
    import open3d as o3d

    v = config.voxel
    full_pts = np.asarray(full.points)
    src = full.voxel_down_sample(v)
    src_floor = float(np.percentile(np.asarray(src.points)[:, 2], 1)) if len(src.points) else 0.0
    if len(src.points) > 50:
        plane, floor_idx = src.segment_plane(
            distance_threshold=v / 2, ransac_n=3, num_iterations=500
        )
        if len(floor_idx) > 0.2 * len(src.points):
            if abs(plane[2]) > 0.9:  # levelled: the floor plane gives the scan's floor height
                src_floor = float(np.asarray(src.points)[floor_idx, 2].mean())
            src = src.select_by_index(floor_idx, invert=True)
    ref = ref_equipment.voxel_down_sample(v)
    if len(src.points) < 10 or len(ref.points) < 10:
        return []
    src.estimate_normals(o3d.geometry.KDTreeSearchParamHybrid(radius=2 * v, max_nn=30))
    out: list[tuple[str, np.ndarray]] = []
    method = config.global_method
    if config.levelled and method in ("auto", "all", "footprint"):
        poses = global_footprint(
            np.asarray(src.points),
            np.asarray(src.normals),
            src_floor,
            np.asarray(ref.points),
            np.asarray(ref.normals),
            ref_floor,
            v,
        )
        out += [("footprint", t) for t in poses]
    sample = full_pts[:: max(1, len(full_pts) // 20_000)]
    weak = not out or max(fit(sample, t, v)[0] for _, t in out) < 0.5
    if method in ("all", "fpfh") or (method == "auto" and weak):
        src, f_src = _features(src, v)
        ref, f_ref = _features(ref, v)
        out += [("fpfh", t) for t in _fpfh_ransac(src, f_src, ref, f_ref, config)]
    return out


def _fpfh_ransac(
    src: Any, f_src: Any, ref: Any, f_ref: Any, config: AlignConfig
) -> list[np.ndarray]:
    import open3d as o3d

    reg = o3d.pipelines.registration
    dist = 1.5 * config.voxel
    if config.levelled:
        j = nearest_feature(np.asarray(f_src.data).T, np.asarray(f_ref.data).T)
        corr = np.column_stack([np.arange(len(j)), j])
        return ransac_levelled(
            np.asarray(src.points)[corr[:, 0]],
            np.asarray(ref.points)[corr[:, 1]],
            dist,
            config.ransac_iterations,
            np.random.default_rng(config.seed),
        )
    result = reg.registration_ransac_based_on_feature_matching(
        src,
        ref,
        f_src,
        f_ref,
        True,
        dist,
        reg.TransformationEstimationPointToPoint(False),
        3,
        [
            reg.CorrespondenceCheckerBasedOnEdgeLength(0.9),
            reg.CorrespondenceCheckerBasedOnDistance(dist),
        ],
        reg.RANSACConvergenceCriteria(config.ransac_iterations, 0.9999),
    )
    return [np.asarray(result.transformation).copy()]


def nearest_feature(a: np.ndarray, b: np.ndarray, chunk: int = 2048) -> np.ndarray:
    """Index of the nearest row of ``b`` for each row of ``a`` (brute force by matrix products).

    FPFH has 33 dimensions, where k-d trees degrade to brute force anyway; BLAS does it faster.
    """
    a = np.asarray(a, dtype=np.float32)
    b = np.asarray(b, dtype=np.float32)
    bb = np.einsum("ij,ij->i", b, b)
    out = np.empty(len(a), dtype=np.int64)
    for i in range(0, len(a), chunk):
        out[i : i + chunk] = np.argmin(bb[None, :] - 2.0 * (a[i : i + chunk] @ b.T), axis=1)
    return out


def ransac_levelled(
    s: np.ndarray,
    r: np.ndarray,
    tol: float,
    iterations: int,
    rng: np.random.Generator,
    keep: int = 3,
    batch: int = 1024,
) -> list[np.ndarray]:
    """4-DOF RANSAC over correspondences s[i] ↔ r[i]: the ``keep`` best poses, best first.

    Each hypothesis comes from two correspondences whose horizontal and vertical separations
    agree (a rigid, levelled motion keeps both); its score is the number of correspondences it
    maps within ``tol``, counted on a fixed random subset to keep each batch cheap.
    """
    n = len(s)
    if n < 2:
        return []
    score_idx = rng.choice(n, min(n, 1500), replace=False)
    ss, rs = s[score_idx], r[score_idx]
    found: list[tuple[int, np.ndarray]] = []
    for _ in range(max(1, math.ceil(iterations / batch))):
        a, b = rng.integers(0, n, batch), rng.integers(0, n, batch)
        ds, dr = s[b] - s[a], r[b] - r[a]
        ls, lr = np.hypot(ds[:, 0], ds[:, 1]), np.hypot(dr[:, 0], dr[:, 1])
        ok = (ls > 4 * tol) & (np.abs(ls - lr) < tol) & (np.abs(ds[:, 2] - dr[:, 2]) < tol)
        if not ok.any():
            continue
        a, b, ds, dr = a[ok], b[ok], ds[ok], dr[ok]
        yaw = np.arctan2(dr[:, 1], dr[:, 0]) - np.arctan2(ds[:, 1], ds[:, 0])
        c, sn = np.cos(yaw), np.sin(yaw)
        mid_s, mid_r = (s[a] + s[b]) / 2, (r[a] + r[b]) / 2
        tx = mid_r[:, 0] - (c * mid_s[:, 0] - sn * mid_s[:, 1])
        ty = mid_r[:, 1] - (sn * mid_s[:, 0] + c * mid_s[:, 1])
        tz = mid_r[:, 2] - mid_s[:, 2]
        # (h, m) residuals of every hypothesis on the scoring subset
        px = (
            c[:, None] * ss[None, :, 0]
            - sn[:, None] * ss[None, :, 1]
            + tx[:, None]
            - rs[None, :, 0]
        )
        py = (
            sn[:, None] * ss[None, :, 0]
            + c[:, None] * ss[None, :, 1]
            + ty[:, None]
            - rs[None, :, 1]
        )
        pz = ss[None, :, 2] + tz[:, None] - rs[None, :, 2]
        score = ((px * px + py * py + pz * pz) < tol * tol).sum(axis=1)
        for h in np.argsort(score)[::-1][:keep]:
            t = np.eye(4)
            t[:2, :2] = [[c[h], -sn[h]], [sn[h], c[h]]]
            t[:3, 3] = (tx[h], ty[h], tz[h])
            found.append((int(score[h]), t))
        found = sorted(found, key=lambda x: -x[0])[: keep * 4]
    # Hypotheses close to a better one are the same answer: keep distinct ones.
    out: list[np.ndarray] = []
    for _, t in found:
        if all(np.linalg.norm(t[:3, 3] - u[:3, 3]) > 2 * tol for u in out):
            out.append(t)
        if len(out) == keep:
            break
    return out


def global_footprint(
    src: np.ndarray,
    src_normals: np.ndarray,
    src_floor: float,
    ref: np.ndarray,
    ref_normals: np.ndarray,
    ref_floor: float,
    cell: float,
    keep: int = 3,
) -> list[np.ndarray]:
    """Candidate 4-DOF poses from the plan view: a yaw sweep with FFT cross-correlation.

    The walls of the equipment (points whose normal is horizontal) are rasterised seen from
    above; for each yaw the scan's raster is correlated with the scene's and the peak gives the
    shift. Coarse (2 cells, 2°) then fine (1 cell, 0.25°) around the best peaks; z comes from the
    two floor heights.
    """
    s_xy = src[np.abs(src_normals[:, 2]) < 0.5, :2]
    r_xy = ref[np.abs(ref_normals[:, 2]) < 0.5, :2]
    if len(s_xy) < 10 or len(r_xy) < 10:
        return []
    coarse = _sweep(s_xy, r_xy, 2 * cell, np.radians(np.arange(0.0, 360.0, 2.0)), keep)
    fine: list[tuple[float, float, np.ndarray]] = []
    for _, yaw, _ in coarse:
        fine += _sweep(s_xy, r_xy, cell, yaw + np.radians(np.arange(-2.0, 2.01, 0.25)), 1)
    fine.sort(key=lambda x: -x[0])
    out = []
    for _, yaw, shift in fine[:keep]:
        t = np.eye(4)
        c, s = math.cos(yaw), math.sin(yaw)
        t[:2, :2] = [[c, -s], [s, c]]
        t[:2, 3] = shift
        t[2, 3] = ref_floor - src_floor
        out.append(t)
    return out


def _raster(xy: np.ndarray, lo: np.ndarray, shape: tuple[int, int], cell: float) -> np.ndarray:
    ij = np.floor((xy - lo) / cell).astype(np.int64)
    ok = (ij[:, 0] >= 0) & (ij[:, 1] >= 0) & (ij[:, 0] < shape[0]) & (ij[:, 1] < shape[1])
    grid = np.zeros(shape, dtype=np.float32)
    grid[ij[ok, 0], ij[ok, 1]] = 1.0
    return grid


def _sweep(
    s_xy: np.ndarray, r_xy: np.ndarray, cell: float, yaws: np.ndarray, keep: int
) -> list[tuple[float, float, np.ndarray]]:
    """(score, yaw, shift) of the best ``keep`` yaws: shift maps rotated scan xy onto the scene."""
    from scipy import fft
    from scipy.ndimage import maximum_filter

    r_lo = r_xy.min(axis=0)
    r_shape = tuple(int(v) for v in np.ceil((r_xy.max(axis=0) - r_lo) / cell) + 1)
    ref_grid = maximum_filter(_raster(r_xy, r_lo, r_shape, cell), size=3)  # tolerate 1 cell
    centre = s_xy.mean(axis=0)
    radius = float(np.linalg.norm(s_xy - centre, axis=1).max())
    side = int(math.ceil(2 * radius / cell)) + 2
    shape = (r_shape[0] + side, r_shape[1] + side)
    f_ref = fft.rfft2(ref_grid, s=shape, workers=-1)
    results = []
    for yaw in yaws:
        c, s = math.cos(yaw), math.sin(yaw)
        rot = (s_xy - centre) @ np.array([[c, s], [-s, c]])  # rows rotated by +yaw
        s_lo = np.array([-radius - cell, -radius - cell])
        grid = _raster(rot, s_lo, (side, side), cell)
        corr = fft.irfft2(
            f_ref * np.conj(fft.rfft2(grid, s=shape, workers=-1)), s=shape, workers=-1
        )
        k = np.unravel_index(int(np.argmax(corr)), corr.shape)
        ki = np.array([k[0] if k[0] < shape[0] - side else k[0] - shape[0],
                       k[1] if k[1] < shape[1] - side else k[1] - shape[1]])  # fmt: skip
        # scan cell x lands on scene cell x + k: p_scene = R (p - centre) + (r_lo - s_lo + k cell)
        shift = r_lo - s_lo + ki * cell - np.array([[c, -s], [s, c]]) @ centre
        results.append((float(corr[k]), float(yaw), shift))
    results.sort(key=lambda x: -x[0])
    return results[:keep]
