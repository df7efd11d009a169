"""Reading and writing point-cloud scans: one checker per format, then open3d does the I/O.

open3d reads an empty, truncated or garbage file as an empty (or zero-filled) cloud and only
prints a warning, so every file is checked here first and a bad one raises one
:class:`~twin.errors.InputError` naming the file, what is wrong and the formats accepted.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from twin.errors import InputError, UnsupportedFormatError

ACCEPTED = "PLY (ascii or binary, vertex x/y/z), PCD (ascii or binary, fields x y z), XYZ (ascii, x y z per line)"
_PLY_SIZES = {
    "char": 1, "uchar": 1, "int8": 1, "uint8": 1, "short": 2, "ushort": 2, "int16": 2,
    "uint16": 2, "int": 4, "uint": 4, "int32": 4, "uint32": 4, "float": 4, "float32": 4,
    "double": 8, "float64": 8,
}  # fmt: skip
_HEADER_LIMIT = 1 << 16  # bytes: any real header is far shorter


def _problem(path: Path, what: str) -> InputError:
    return InputError("scan", [f"{path}: {what}; accepted: {ACCEPTED}"])


def _header(path: Path, end: bytes) -> tuple[list[str], int]:
    """The header lines up to and including the line starting with ``end``, and its byte size."""
    with path.open("rb") as fh:
        head = fh.read(_HEADER_LIMIT)
    lines, pos = [], 0
    while pos < len(head):
        nl = head.find(b"\n", pos)
        if nl < 0:
            break
        raw = head[pos:nl]
        pos = nl + 1
        try:
            line = raw.decode("ascii").strip()
        except UnicodeDecodeError:
            raise _problem(path, "header is not text") from None
        lines.append(line)
        if line.startswith(end.decode()):
            return lines, pos
    raise _problem(path, f"header has no '{end.decode()}' line")


def check_ply(path: Path) -> int:
    """Check a PLY header against the file size; returns the vertex count it declares."""
    with path.open("rb") as fh:
        if fh.read(3) != b"ply":
            raise _problem(path, "not a PLY file (it does not start with 'ply')")
    lines, start = _header(path, b"end_header")
    fmt, elements = None, []  # [(name, count, [(prop, size or None)])]
    for i, line in enumerate(lines, start=1):
        words = line.split()
        if not words:
            continue
        if words[0] == "format" and len(words) >= 2:
            fmt = words[1]
        elif words[0] == "element" and len(words) == 3:
            try:
                elements.append((words[1], int(words[2]), []))
            except ValueError:
                raise _problem(path, f"header line {i}: bad element count {words[2]!r}") from None
        elif words[0] == "property" and elements:
            size = None if words[1] == "list" else _PLY_SIZES.get(words[1])
            elements[-1][2].append((words[-1], size))
    vertex = next((e for e in elements if e[0] == "vertex"), None)
    problems = []
    if fmt not in ("ascii", "binary_little_endian", "binary_big_endian"):
        problems.append(f"unknown PLY format {fmt!r}")
    if vertex is None:
        problems.append("no 'element vertex' in the header")
    elif not {"x", "y", "z"} <= {p for p, _ in vertex[2]}:
        problems.append("vertex element lacks x, y, z properties")
    elif vertex[1] <= 0:
        problems.append("the header declares 0 vertices (an empty scan)")
    if problems:
        raise InputError("scan", [f"{path}: {p}; accepted: {ACCEPTED}" for p in problems])
    count = vertex[1]
    size = path.stat().st_size - start
    if fmt == "ascii":
        with path.open("rb") as fh:
            fh.seek(start)
            rows = sum(1 for row in fh if row.strip())
        if rows < count:
            raise _problem(
                path, f"truncated: header declares {count} vertices, file has {rows} data rows"
            )
    else:
        need = 0  # bytes up to the end of the vertex element, when every row has a fixed size
        for name, n, props in elements:
            if any(s is None for _, s in props):
                break
            need += n * sum(s for _, s in props)
            if name == "vertex":
                if size < need:
                    raise _problem(
                        path, f"truncated: {count} vertices need {need} bytes, file has {size}"
                    )
                break
    return count


def check_pcd(path: Path) -> int:
    """Check a PCD header; returns the point count it declares."""
    lines, start = _header(path, b"DATA")
    fields: dict[str, list[str]] = {}
    for line in lines:
        words = line.split()
        if words and not words[0].startswith("#"):
            fields[words[0].upper()] = words[1:]
    problems = []
    names = fields.get("FIELDS", [])
    if not {"x", "y", "z"} <= set(names):
        problems.append(f"FIELDS {' '.join(names) or '(none)'} lacks x y z")
    try:
        count = int(fields.get("POINTS", ["0"])[0])
    except ValueError:
        count = 0
    if count <= 0:
        problems.append("the header declares 0 points (an empty scan)")
    data = (fields.get("DATA") or ["?"])[0]
    if data not in ("ascii", "binary", "binary_compressed"):
        problems.append(f"unknown DATA kind {data!r}")
    if problems:
        raise InputError("scan", [f"{path}: {p}; accepted: {ACCEPTED}" for p in problems])
    if data == "binary":
        try:
            row = sum(
                int(s) * int(c)
                for s, c in zip(fields["SIZE"], fields.get("COUNT", ["1"] * len(names)))
            )
        except (KeyError, ValueError):
            raise _problem(path, "binary PCD without a valid SIZE/COUNT line") from None
        size = path.stat().st_size - start
        if size < row * count:
            raise _problem(
                path, f"truncated: {count} points need {row * count} bytes, file has {size}"
            )
    return count


def check_xyz(path: Path) -> int:
    """Check that the first row of an XYZ file holds three numbers; returns 0 (count unknown)."""
    with path.open("rb") as fh:
        for raw in fh:
            if raw.strip():
                try:
                    values = [float(w) for w in raw.decode("ascii").split()]
                except (UnicodeDecodeError, ValueError):
                    values = []
                if len(values) < 3:
                    raise _problem(path, f"first row {raw[:40]!r} is not 'x y z' numbers")
                return 0
    raise _problem(path, "the file holds no points (an empty scan)")


CHECKERS: dict[str, Callable[[Path], int]] = {"ply": check_ply, "pcd": check_pcd, "xyz": check_xyz}


def scan_format(path: str | Path) -> str:
    """The registry key of a scan file (its lower-case extension); raises for unknown ones."""
    path = Path(path)
    fmt = path.suffix.lower().lstrip(".")
    if fmt not in CHECKERS:
        raise UnsupportedFormatError(fmt or "(no extension)", CHECKERS, path)
    return fmt


def read_scan(path: str | Path) -> np.ndarray:
    """The finite points (n, 3) of a scan file, float64 metres; raises InputError if unusable."""
    import open3d as o3d

    path = Path(path)
    fmt = scan_format(path)
    if not path.is_file():
        raise InputError("scan", [f"{path}: scan file not found; accepted: {ACCEPTED}"])
    if path.stat().st_size == 0:
        raise _problem(path, "the file is empty")
    CHECKERS[fmt](path)
    o3d.utility.set_verbosity_level(o3d.utility.VerbosityLevel.Error)
    cloud = o3d.io.read_point_cloud(str(path), format=fmt)
    pts = np.asarray(cloud.points, dtype=np.float64)
    if len(pts) == 0:
        raise _problem(path, "open3d read no points from it")
    finite = np.all(np.isfinite(pts), axis=1)
    if not finite.any():
        raise _problem(path, f"all {len(pts)} points have NaN or infinite coordinates")
    return pts[finite] if not finite.all() else pts


def write_scan(path: str | Path, points: np.ndarray, *, binary: bool = True) -> Path:
    """Write points (n, 3) in the format named by the extension (PLY, PCD or XYZ)."""
    import open3d as o3d

    path = Path(path)
    scan_format(path)
    pts = np.asarray(points, dtype=np.float64)
    if pts.ndim != 2 or pts.shape[1] != 3 or len(pts) == 0:
        raise InputError("scan", [f"{path}: need a non-empty (n, 3) array, got shape {pts.shape}"])
    path.parent.mkdir(parents=True, exist_ok=True)
    cloud = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(pts))
    if not o3d.io.write_point_cloud(str(path), cloud, write_ascii=not binary):
        raise InputError("scan", [f"{path}: open3d could not write the file"])
    return path
