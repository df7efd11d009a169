"""Mesh assets: one loader per file format, unit and up-axis normalisation, shared geometry.

Every asset inside the twin is in metres with Z up. Loaders return a plain ``trimesh.Trimesh``
in the file's own units and axes; :func:`normalise` converts it; :class:`AssetLibrary` owns the
resulting :class:`Asset` objects and shares one mesh between every asset that names the same
file with the same options, or a file with the same bytes (instancing, not copies).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import trimesh

from twin.errors import InputError, UnsupportedFormatError

# Length of one file unit in metres.
UNITS: dict[str, float] = {"m": 1.0, "cm": 0.01, "mm": 0.001, "in": 0.0254, "ft": 0.3048}
UP_AXES = ("z", "y")
# Y-up → Z-up: +Y becomes +Z, +Z becomes -Y (a +90° turn about X), keeps the frame right-handed.
Y_UP_TO_Z_UP = np.array(
    [[1.0, 0.0, 0.0, 0.0], [0.0, 0.0, -1.0, 0.0], [0.0, 1.0, 0.0, 0.0], [0.0, 0.0, 0.0, 1.0]]
)
Z_UP_TO_Y_UP = np.linalg.inv(Y_UP_TO_Z_UP)


@dataclass(slots=True, eq=False)
class Asset:
    """A mesh in metres, Z up, with its bounds and convex hull (both in the asset's frame)."""

    id: str
    mesh: trimesh.Trimesh
    bounds: np.ndarray  # (2, 3) m
    hull: trimesh.Trimesh
    source: str | None = None  # file the mesh came from, as written in the scene file
    path: str | None = None  # that file, resolved (used to re-reference it when saving)
    unit: str = "m"  # unit of that file
    up: str = "z"  # up axis of that file
    digest: str = ""  # sha256 of the normalised geometry

    @classmethod
    def from_mesh(cls, asset_id: str, mesh: trimesh.Trimesh, **source: str | None) -> Asset:
        """Wrap a mesh that is already in metres, Z up."""
        mesh = _checked(mesh, asset_id)
        return cls(
            id=asset_id,
            mesh=mesh,
            bounds=np.asarray(mesh.bounds, dtype=float).copy(),
            hull=mesh.convex_hull,
            digest=_geometry_digest(mesh),
            **source,
        )

    def renamed(self, asset_id: str) -> Asset:
        """The same geometry (shared, not copied) under another id."""
        return Asset(
            id=asset_id,
            mesh=self.mesh,
            bounds=self.bounds,
            hull=self.hull,
            source=self.source,
            path=self.path,
            unit=self.unit,
            up=self.up,
            digest=self.digest,
        )


# ------------------------------------------------------------------ loaders (one per format)
def _load_with_trimesh(path: Path, file_type: str) -> trimesh.Trimesh:
    """Read a file and flatten its scene graph (node transforms applied) into one mesh."""
    loaded = trimesh.load(str(path), file_type=file_type, force="mesh", process=False)
    if not isinstance(loaded, trimesh.Trimesh):
        raise ValueError(f"holds no triangle mesh (got {type(loaded).__name__})")
    return loaded


def load_glb(path: Path) -> trimesh.Trimesh:
    return _load_with_trimesh(path, "glb")


def load_gltf(path: Path) -> trimesh.Trimesh:
    return _load_with_trimesh(path, "gltf")


def load_obj(path: Path) -> trimesh.Trimesh:
    return _load_with_trimesh(path, "obj")


def load_stl(path: Path) -> trimesh.Trimesh:
    return _load_with_trimesh(path, "stl")


def load_ply(path: Path) -> trimesh.Trimesh:
    return _load_with_trimesh(path, "ply")


LOADERS: dict[str, Callable[[Path], trimesh.Trimesh]] = {
    "glb": load_glb,
    "gltf": load_gltf,
    "obj": load_obj,
    "stl": load_stl,
    "ply": load_ply,
}
# glTF is Y-up by its specification; the others carry no convention, so Z-up unless told.
DEFAULT_UP = {"glb": "y", "gltf": "y", "obj": "z", "stl": "z", "ply": "z"}


def file_format(path: str | Path) -> str:
    """The registry key of a file (its lower-case extension)."""
    return Path(path).suffix.lower().lstrip(".")


def normalise(mesh: trimesh.Trimesh, *, unit: str = "m", up: str = "z") -> trimesh.Trimesh:
    """A copy of ``mesh`` in metres with Z up."""
    problems = []
    if unit not in UNITS:
        problems.append(f"unit {unit!r} is not one of {', '.join(UNITS)}")
    if up not in UP_AXES:
        problems.append(f"up axis {up!r} is not one of {', '.join(UP_AXES)}")
    if problems:
        raise InputError("asset options", problems)
    out = mesh.copy()
    if unit != "m":
        out.apply_scale(UNITS[unit])
    if up == "y":
        out.apply_transform(Y_UP_TO_Z_UP)
    return out


def load_mesh(path: str | Path, *, unit: str = "m", up: str | None = None) -> trimesh.Trimesh:
    """Load one mesh file through the registry and normalise it to metres, Z up."""
    path = Path(path)
    fmt = file_format(path)
    loader = LOADERS.get(fmt)
    if loader is None:
        raise UnsupportedFormatError(fmt or "(no extension)", LOADERS, path)
    if not path.is_file():
        raise InputError("asset", [f"{path}: mesh file not found"])
    try:
        raw = loader(path)
    except Exception as exc:  # trimesh raises many types on corrupt files; name the file
        raise InputError(
            "asset", [f"{path}: cannot read as {fmt.upper()}: {type(exc).__name__}: {exc}"]
        ) from exc
    mesh = normalise(raw, unit=unit, up=up or DEFAULT_UP[fmt])
    return _checked(mesh, str(path))


def _checked(mesh: trimesh.Trimesh, where: str) -> trimesh.Trimesh:
    problems = []
    if len(mesh.faces) == 0:
        problems.append(f"{where}: mesh has no triangles")
    elif not np.all(np.isfinite(mesh.vertices)):
        problems.append(f"{where}: mesh has non-finite vertex coordinates")
    if problems:
        raise InputError("asset", problems)
    return mesh


def _geometry_digest(mesh: trimesh.Trimesh) -> str:
    h = hashlib.sha256()
    h.update(np.ascontiguousarray(mesh.vertices, dtype=np.float64).tobytes())
    h.update(np.ascontiguousarray(mesh.faces, dtype=np.int64).tobytes())
    return h.hexdigest()


@dataclass
class AssetLibrary:
    """Loads assets once: same file and options, or same file bytes, share one mesh."""

    _by_options: dict[tuple[str, str, str], Asset] = field(default_factory=dict)
    _by_content: dict[tuple[str, str, str], Asset] = field(default_factory=dict)
    loads: int = 0  # files actually parsed (the rest were shared)

    def load(
        self,
        asset_id: str,
        path: str | Path,
        *,
        unit: str = "m",
        up: str | None = None,
        source: str | None = None,
    ) -> Asset:
        """The asset ``asset_id`` for a mesh file; geometry is shared with earlier equal loads."""
        path = Path(path)
        fmt = file_format(path)
        if fmt not in LOADERS:
            raise UnsupportedFormatError(fmt or "(no extension)", LOADERS, path)
        up = up or DEFAULT_UP[fmt]
        key = (str(path.resolve()), unit, up)
        shared = self._by_options.get(key)
        if shared is None and path.is_file():
            content_key = (hashlib.sha256(path.read_bytes()).hexdigest() + fmt, unit, up)
            shared = self._by_content.get(content_key)
            if shared is None:
                mesh = load_mesh(path, unit=unit, up=up)
                self.loads += 1
                shared = Asset.from_mesh(asset_id, mesh, unit=unit, up=up, path=key[0])
                self._by_content[content_key] = shared
            self._by_options[key] = shared
        elif shared is None:
            load_mesh(path, unit=unit, up=up)  # raises the not-found error
        asset = shared.renamed(asset_id)
        asset.source = source if source is not None else str(path)
        return asset

    def __len__(self) -> int:
        return len(self._by_content)
