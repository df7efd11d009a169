"""Recognisable equipment shapes built from trimesh primitives (for the demo fab's GLB assets).

Every shape shares one frame: metres, Z up, origin at the centre of its footprint on the floor,
width along local X, depth along local Y, and the front (where the load ports are) facing -Y.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import trimesh


def _box(
    w: float, d: float, h: float, x: float = 0.0, y: float = 0.0, z: float = 0.0
) -> trimesh.Trimesh:
    """A box of size w × d × h whose bottom centre is at (x, y, z)."""
    m = trimesh.creation.box((w, d, h))
    m.apply_translation((x, y, z + h / 2))
    return m


def _cyl(
    r: float,
    h: float,
    x: float = 0.0,
    y: float = 0.0,
    z: float = 0.0,
    axis: str = "z",
    sections: int = 24,
) -> trimesh.Trimesh:
    """A cylinder of radius r and length h; for axis z its bottom centre is at (x, y, z)."""
    m = trimesh.creation.cylinder(radius=r, height=h, sections=sections)
    if axis == "x":
        m.apply_transform(trimesh.transformations.rotation_matrix(np.pi / 2, (0, 1, 0)))
        m.apply_translation((x, y, z))
    elif axis == "y":
        m.apply_transform(trimesh.transformations.rotation_matrix(np.pi / 2, (1, 0, 0)))
        m.apply_translation((x, y, z))
    else:
        m.apply_translation((x, y, z + h / 2))
    return m


def _load_ports(width: float, front_y: float, n: int = 2) -> list[trimesh.Trimesh]:
    """SEMI E15 load ports: 0.5 m wide stands, FOUP hand-off at 0.9 m, on the front face."""
    xs = np.linspace(-(n - 1) * 0.6, (n - 1) * 0.6, n) if n > 1 else [0.0]
    parts = []
    for x in xs:
        parts.append(_box(0.5, 0.45, 0.9, x, front_y - 0.225))
        parts.append(_box(0.42, 0.36, 0.33, x, front_y - 0.225, 0.9))  # a FOUP sitting on it
    return parts


def furnace() -> trimesh.Trimesh:
    """Vertical batch diffusion furnace: FOUP stocker/load area in front, two tube towers behind."""
    w, d = 1.8, 4.5
    front = -d / 2
    parts = [_box(w, 1.6, 2.8, 0, front + 0.8)]  # load/FOUP store
    parts += [_box(w, d - 1.6, 1.0, 0, front + 1.6 + (d - 1.6) / 2)]  # boat elevator base
    parts += [_cyl(0.45, 2.6, x, front + 3.2, 1.0) for x in (-0.45, 0.45)]  # quartz tube heaters
    parts += [_box(w, 1.0, 3.6, 0, front + d - 0.5)]  # gas cabinet
    return trimesh.util.concatenate(parts + _load_ports(w, front, 2))


def litho_cell() -> trimesh.Trimesh:
    """Lithography cell: coater/developer track in front, the exposure scanner behind it."""
    d = 5.5
    front = -d / 2
    track = _box(4.4, 1.6, 2.3, 0, front + 0.8)
    scanner = _box(3.2, 3.7, 2.9, 0.3, front + 1.6 + 0.2 + 1.85)
    column = _cyl(0.35, 0.5, 0.3, front + 3.6, 2.9)  # projection-lens housing above the stage
    return trimesh.util.concatenate([track, scanner, column, *_load_ports(4.4, front, 3)])


def _cluster(n_chambers: int, chamber_r: float, height: float) -> trimesh.Trimesh:
    """Cluster tool: equipment front end (EFEM) with load ports, polygonal transfer chamber, chambers."""
    efem = _box(2.4, 1.0, 2.2, 0, -2.0 + 0.5)
    hub = _cyl(0.9, 1.2, 0, 0.2, 0.0, sections=8)
    load_lock = _box(1.0, 0.8, 1.1, 0, -0.9)
    chambers = []
    for k in range(n_chambers):
        a = np.pi * (0.15 + 0.7 * k / max(n_chambers - 1, 1))  # fan out behind the hub
        chambers.append(_cyl(chamber_r, height, -1.5 * np.cos(a), 0.2 + 1.5 * np.sin(a), 0.0))
    return trimesh.util.concatenate([efem, hub, load_lock, *chambers, *_load_ports(2.4, -2.0, 3)])


def etcher() -> trimesh.Trimesh:
    """Dry-etch cluster tool with four process chambers."""
    return _cluster(4, 0.55, 1.9)


def cvd() -> trimesh.Trimesh:
    """Thin-film (CVD/PVD) cluster tool with five smaller chambers."""
    return _cluster(5, 0.45, 1.7)


def wet_bench() -> trimesh.Trimesh:
    """Wet bench: long cabinet of chemical baths with exhaust ducts on the roof."""
    w, d = 4.2, 2.2
    parts = [_box(w, d, 2.1, 0, 0)]
    parts += [_cyl(0.15, 0.8, x, 0.6, 2.1) for x in (-1.4, 0.0, 1.4)]
    parts += [_box(w - 0.4, 0.3, 0.2, 0, -d / 2 + 0.15, 1.0)]  # bath rim/window sill
    return trimesh.util.concatenate(parts + _load_ports(w, -d / 2, 2))


def implanter() -> trimesh.Trimesh:
    """Ion implanter: terminal/source box, horizontal beamline, end station with load ports."""
    end_station = _box(2.4, 1.6, 2.2, 0, -2.2 + 0.8)
    beamline = _cyl(0.3, 2.2, 0.0, 0.3, 1.2, axis="y")
    source = _box(2.6, 2.0, 2.4, 0, 1.4 + 1.0 - 0.8)
    return trimesh.util.concatenate([end_station, beamline, source, *_load_ports(2.4, -2.2, 2)])


def cmp_tool() -> trimesh.Trimesh:
    """CMP polisher: cleaner/EFEM in front, polishing table with three platens behind."""
    efem = _box(3.0, 1.4, 2.0, 0, -2.0 + 0.7)
    table = _box(3.0, 2.4, 1.0, 0, 0.5 + 0.2)
    platens = [_cyl(0.5, 0.12, x, 0.7, 1.0) for x in (-0.95, 0.0, 0.95)]
    hood = _box(3.0, 0.4, 2.0, 0, 1.9 - 0.2 + 0.1)
    return trimesh.util.concatenate([efem, table, hood, *platens, *_load_ports(3.0, -2.0, 2)])


def metrology() -> trimesh.Trimesh:
    """Metrology/inspection tool: compact cabinet with a monitor arm."""
    body = _box(1.6, 1.8, 1.9, 0, 0)
    screen = _box(0.6, 0.05, 0.4, 0.5, -0.95, 1.4)
    return trimesh.util.concatenate([body, screen, *_load_ports(1.6, -0.9, 1)])


def stocker() -> trimesh.Trimesh:
    """Automated stocker: tall storage cabinet with an OHT input/output shelf on the front."""
    body = _box(6.0, 3.0, 3.4, 0, 0)
    shelves = [_box(0.6, 0.5, 0.1, x, -1.75, 3.0) for x in (-0.5, 0.5)]  # under the rail
    return trimesh.util.concatenate([body, *shelves])


SHAPES: dict[str, Callable[[], trimesh.Trimesh]] = {
    "furnace": furnace,
    "litho_cell": litho_cell,
    "etcher": etcher,
    "cvd": cvd,
    "wet_bench": wet_bench,
    "implanter": implanter,
    "cmp": cmp_tool,
    "metrology": metrology,
    "stocker": stocker,
}
