"""Import the SMAT2022 layout workbook (a 300 mm fab with its AMHS) into a SceneGraph.

Sheets and columns used (units in the workbook: mm, mm/s, mm/s²; the twin is SI):

- ``Address`` NAME, POSITION_X, POSITION_Y, ZCU_NAME, ZCU_TYPE → rail nodes at the rail height
- ``Rail`` NAME, BAY_NAME, FROM_NODE, TO_NODE, MAX_SPEED, CURVE → directed segments whose length
  is the distance between their nodes. MAX_SPEED is 1 on every row: it is read as a fraction of
  the vehicle type's top speed (1 mm/s would stop the fab), so a segment's limit in m/s is
  MAX_SPEED × the fastest VehicleType MAX_SPEED.
- ``Bay`` NAME, TYPE, RETICLE, NEIGHBOR_BAY → bay nodes under the fab
- ``Equipment`` NAME, TOOL_GROUP, BAY, WIDTH, HEIGHT, POSITION_X, POSITION_Y → boxes of
  WIDTH (x) × HEIGHT (y) centred on the position (ports sit along the footprint's edge, which
  is how the centre convention was checked); TOOL_GROUP STOCKER → stocker, COMMIT/COMPLETE →
  station, anything else a tool of family TOOL_GROUP
- ``Port`` NAME, PORT_TYPE, EQP_NAME, RAILLINE_NAME, DISTANCE → ports at DISTANCE mm along the
  rail segment named RAILLINE_NAME (EQP_NAME "," means a rail-side buffer, not equipment)
- ``VehicleType`` NAME, SIZE, MAX_SPEED, ACCELERATION, DECELERATION, MIN_DISTANCE
- ``Vehicle`` NAME, TYPE, RAILLINE_NAME, DISTANCE → vehicles at their start position

Reading: openpyxl opens the package; the cell values come from :mod:`twin.scene.xlsx` (the same
values as openpyxl's ``iter_rows``, at a fraction of the cost). :func:`read_sheets` gives the
rows, :func:`build_scene` the scene.
"""

from __future__ import annotations

import gc
import math
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from twin.errors import InputError
from twin.scene.graph import Node, SceneGraph, translation

MM = 0.001  # m per mm
SHEETS: dict[str, tuple[str, ...]] = {
    "Address": ("NAME", "POSITION_X", "POSITION_Y", "ZCU_NAME", "ZCU_TYPE"),
    "Rail": ("NAME", "BAY_NAME", "FROM_NODE", "TO_NODE", "MAX_SPEED", "CURVE"),
    "Bay": ("NAME", "TYPE", "RETICLE", "NEIGHBOR_BAY"),
    "Equipment": ("NAME", "TOOL_GROUP", "BAY", "WIDTH", "HEIGHT", "POSITION_X", "POSITION_Y"),
    "Port": ("NAME", "PORT_TYPE", "EQP_NAME", "RAILLINE_NAME", "DISTANCE"),
    "VehicleType": ("NAME", "SIZE", "MAX_SPEED", "ACCELERATION", "DECELERATION", "MIN_DISTANCE"),
    "Vehicle": ("NAME", "TYPE", "RAILLINE_NAME", "DISTANCE"),
}
RAIL_HEIGHT = 3.9  # m: the OHT track runs above the tallest tool
# Box heights (m) by the family's leading word; real tools of these kinds are about this tall.
HEIGHTS = {
    "Diffusion": 3.6, "Litho": 2.9, "LithoTrack": 2.6, "Implant": 2.6, "EPI": 2.6, "DE": 2.4,
    "WE": 2.3, "TF": 2.4, "Dielectric": 2.4, "Planar": 2.3, "DefMet": 2.1, "LithoMet": 2.1,
    "STOCKER": 3.4, "COMMIT": 1.2, "COMPLETE": 1.2,
}  # fmt: skip
DEFAULT_HEIGHT = 2.4  # m
PORT_HEIGHT = 0.9  # m: equipment load ports (SEMI E15)
BUFFER_DROP = 0.6  # m: side-track and under-track buffers hang this far below the rail
MAX_LISTED = 200  # problems listed in one error before summarising the rest


def import_smat2022(
    path: str | Path, *, areas: dict[str, str] | None = None, name: str | None = None
) -> SceneGraph:
    """The SMAT2022 workbook as a SceneGraph (metres, Z up); one InputError lists every problem.

    The workbook has no areas: ``areas`` (family -> SMT2020 STNGRP, e.g. from a process model)
    fills ``Node.area`` of the tools; without it their area stays None.
    """
    path = Path(path)
    with _gc_paused():
        sheets = read_sheets(path)
        return build_scene(sheets, name=name or path.stem, source=path.name, areas=areas)


@contextmanager
def _gc_paused() -> Iterator[None]:
    """The cyclic garbage collector off while the import allocates ~400k small objects.

    None of them is garbage until the import ends, yet every 700 allocations the collector
    scans the young ones and, as they pile up, the whole heap again and again. Reference
    counting still frees everything as usual; the collector's previous state is restored.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def build_scene(
    sheets: dict[str, list[tuple[int, dict[str, Any]]]],
    *,
    name: str,
    source: str,
    areas: dict[str, str] | None = None,
) -> SceneGraph:
    """The SceneGraph of a workbook's rows as :func:`read_sheets` returns them."""
    problems: list[str] = []
    scene = SceneGraph(name)
    root = scene.name
    scene.add(Node(id=root, kind="fab"))
    scene.metadata.update(source=source, importer="smat2022", rail_height=RAIL_HEIGHT)
    areas = areas or {}
    stage = _Stager(scene, problems)

    vtypes = _vehicle_types(sheets["VehicleType"], problems)
    scene.vehicle_types.update(vtypes)
    top_speed = max((v["max_speed"] for v in vtypes.values()), default=1.5)

    for row, r in sheets["Bay"]:
        neighbours = [b for b in str(r["NEIGHBOR_BAY"] or "").split(",") if b]
        attrs = {"type": r["TYPE"], "reticle": bool(r["RETICLE"]), "neighbours": neighbours}
        stage(
            f"Bay row {row}",
            Node(id=str(r["NAME"]), kind="bay", parent=root, bay=str(r["NAME"]), attrs=attrs),
        )

    xy: dict[str, tuple[float, float]] = {}
    for row, r in sheets["Address"]:
        x, y = _nums(problems, f"Address row {row} ({r['NAME']})", r, "POSITION_X", "POSITION_Y")
        if x is None:
            continue
        nid = str(r["NAME"])
        attrs = {"zcu": r["ZCU_NAME"], "zcu_type": r["ZCU_TYPE"]}
        node = Node(
            id=nid,
            kind="rail_node",
            parent=root,
            transform=_PENDING,
            attrs=attrs,
        )
        if stage(f"Address row {row}", node, (x * MM, y * MM, RAIL_HEIGHT, 0.0)):
            xy[nid] = (x * MM, y * MM)
    stage.flush()
    scene.rail.add_nodes_from(xy)

    for row, r in sheets["Rail"]:
        sid, a, b = str(r["NAME"]), r["FROM_NODE"], r["TO_NODE"]
        where = f"Rail row {row} ({sid})"
        bad = [
            f"{where}: {col} names unknown Address {v!r}"
            for col, v in (("FROM_NODE", a), ("TO_NODE", b))
            if v not in xy
        ]
        (speed,) = _nums(problems, where, r, "MAX_SPEED")
        if bad or speed is None:
            problems.extend(bad)
            continue
        if sid in scene.segments:
            problems.append(f"{where}: duplicate rail segment name")
            continue
        (xa, ya), (xb, yb) = xy[a], xy[b]
        scene.add_segment(
            sid, a, b, max_speed=speed * top_speed, length=math.hypot(xb - xa, yb - ya),
            curve=bool(r["CURVE"]), bay=r["BAY_NAME"],
        )  # fmt: skip

    centres: dict[str, tuple[float, float]] = {}  # equipment (m); its ports are placed from it
    for row, r in sheets["Equipment"]:
        eid, group, bay = str(r["NAME"]), str(r["TOOL_GROUP"]), r["BAY"]
        where = f"Equipment row {row} ({eid})"
        w, h, x, y = _nums(problems, where, r, "WIDTH", "HEIGHT", "POSITION_X", "POSITION_Y")
        if x is None or w is None or h is None:
            continue
        if bay not in scene:
            problems.append(f"{where}: BAY {bay!r} is not in the Bay sheet")
            continue
        word = group.split("_")[0]
        kind = (
            "stocker"
            if group == "STOCKER"
            else "station"
            if group in ("COMMIT", "COMPLETE")
            else "tool"
        )
        height = HEIGHTS.get(word, DEFAULT_HEIGHT)
        node = Node(
            id=eid, kind=kind, parent=bay, bay=bay, transform=_PENDING,
            size=(w * MM, h * MM, height), family=group if kind == "tool" else None,
            area=areas.get(group) if kind == "tool" else None,
            attrs={"tool_group": group} if kind != "tool" else {},
        )  # fmt: skip
        if stage(where, node, (x * MM, y * MM, 0.0, 0.0)):
            centres[eid] = (x * MM, y * MM)
    stage.flush()

    links: list[tuple[str, str | None, str, float]] = []
    for row, r in sheets["Port"]:
        pid, eqp, sid = str(r["NAME"]), r["EQP_NAME"], r["RAILLINE_NAME"]
        where = f"Port row {row} ({pid})"
        (dist,) = _nums(problems, where, r, "DISTANCE")
        seg = scene.segments.get(sid)
        tool = None if eqp in (None, "", ",") else str(eqp)
        if seg is None:
            problems.append(f"{where}: RAILLINE_NAME {sid!r} is not a Rail NAME")
        if tool is not None and tool not in centres:
            problems.append(f"{where}: EQP_NAME {tool!r} is not in the Equipment sheet")
        if seg is None or dist is None or (tool is not None and tool not in centres):
            continue
        offset = _offset_on(problems, where, seg, dist)
        if offset is None:
            continue
        (xa, ya), (xb, yb) = xy[seg.start], xy[seg.end]
        f = offset / seg.length if seg.length > 0 else 0.0
        px, py = xa + (xb - xa) * f, ya + (yb - ya) * f
        yaw = math.atan2(yb - ya, xb - xa)
        if tool is not None:
            parent, z = tool, PORT_HEIGHT
            tx, ty = centres[tool]  # equipment sits directly in its bay
            pose = (px - tx, py - ty, z, yaw)
        else:
            parent = seg.bay if seg.bay in scene else root
            pose = (px, py, RAIL_HEIGHT - BUFFER_DROP, yaw)
        attrs = {"port_type": r["PORT_TYPE"]}
        node = Node(
            id=pid, kind="port", parent=parent, bay=seg.bay, transform=_PENDING, attrs=attrs
        )
        if stage(where, node, pose):
            links.append((pid, tool, sid, offset))
    stage.flush()
    for pid, tool, sid, offset in links:
        scene.link_port(pid, tool=tool, segment=sid, offset=offset)

    for row, r in sheets["Vehicle"]:
        vid, vtype, sid = str(r["NAME"]), r["TYPE"], r["RAILLINE_NAME"]
        where = f"Vehicle row {row} ({vid})"
        (dist,) = _nums(problems, where, r, "DISTANCE")
        seg = scene.segments.get(sid)
        if seg is None:
            problems.append(f"{where}: RAILLINE_NAME {sid!r} is not a Rail NAME")
        if vtype not in vtypes:
            problems.append(f"{where}: TYPE {vtype!r} is not a VehicleType NAME ({sorted(vtypes)})")
        if seg is None or dist is None or vtype not in vtypes:
            continue
        offset = _offset_on(problems, where, seg, dist)
        if offset is None:
            continue
        point = scene.point_on_segment(sid, offset)
        (xa, ya), (xb, yb) = xy[seg.start], xy[seg.end]
        attrs = {"vehicle_type": vtype, "segment": sid, "offset": offset}
        node = Node(
            id=vid,
            kind="vehicle",
            parent=root,
            transform=translation(*point, yaw=math.atan2(yb - ya, xb - xa)),
            attrs=attrs,
        )
        stage(where, node)
    stage.flush()

    if problems:
        raise InputError(f"SMAT2022 workbook {source}", _capped(problems))
    return scene


def read_sheets(path: Path) -> dict[str, list[tuple[int, dict[str, Any]]]]:
    """Rows of every needed sheet as (Excel row number, {column: value}); checks sheets/columns."""
    from twin.scene.xlsx import XlsxError, open_workbook

    if not path.is_file():
        raise InputError("SMAT2022 workbook", [f"{path}: file not found"])
    try:
        wb = open_workbook(path)
    except Exception as exc:  # zip/xml errors of a corrupt file: name the file
        raise InputError(
            "SMAT2022 workbook", [f"{path}: not a readable .xlsx workbook: {exc}"]
        ) from None
    problems: list[str] = []
    try:
        out = {sheet: rows for sheet, rows in _sheet_rows(path, wb, problems)}
    except XlsxError as exc:
        raise InputError(f"SMAT2022 workbook {path.name}", [str(exc)]) from None
    finally:
        wb.close()
    if problems:
        raise InputError(f"SMAT2022 workbook {path.name}", problems)
    return out


def _sheet_rows(path: Path, wb: Any, problems: list[str]):
    from twin.scene.xlsx import iter_values

    for sheet, columns in SHEETS.items():
        if sheet not in wb.sheetnames:
            problems.append(
                f"{path.name}: missing sheet {sheet!r} (needs columns {', '.join(columns)})"
            )
            continue
        rows = iter_values(wb[sheet])
        first = next(rows, None)
        header = [
            str(h).strip() if h is not None else ""
            for h in (first[1] if first is not None and first[0] == 1 else ())
        ]
        missing = [c for c in columns if c not in header]
        if missing:
            problems.append(
                f"{path.name} sheet {sheet!r} row 1: missing column{'s' if len(missing) > 1 else ''} "
                f"{', '.join(missing)} (found {', '.join(h for h in header if h) or 'no header'})"
            )
            continue
        idx = [(c, header.index(c)) for c in columns]
        key = idx[0][1]
        yield (
            sheet,
            [
                (n, {c: (r[i] if i < len(r) else None) for c, i in idx})
                for n, r in rows
                if len(r) > key and r[key] is not None  # skip blank trailing rows
            ],
        )


def _offset_on(problems: list[str], where: str, seg: Any, dist: float) -> float | None:
    """DISTANCE (mm) along a rail as metres, or None (reported) when it lies beyond the rail."""
    offset = dist * MM
    if 0.0 <= offset <= seg.length + 1e-6:
        return offset
    problems.append(
        f"{where}: DISTANCE {dist:g} mm is beyond rail {seg.id} ({seg.length / MM:.0f} mm)"
    )
    return None


def _vehicle_types(
    rows: list[tuple[int, dict[str, Any]]], problems: list[str]
) -> dict[str, dict[str, float]]:
    out = {}
    for row, r in rows:
        cols = ("SIZE", "MAX_SPEED", "ACCELERATION", "DECELERATION", "MIN_DISTANCE")
        vals = _nums(problems, f"VehicleType row {row} ({r['NAME']})", r, *cols)
        if None in vals:
            continue
        size, speed, acc, dec, gap = (v * MM for v in vals)
        out[str(r["NAME"])] = {
            "length": size,
            "max_speed": speed,
            "acceleration": acc,
            "deceleration": dec,
            "min_distance": gap,
        }
    return out


def _nums(
    problems: list[str], where: str, r: dict[str, Any], *cols: str
) -> tuple[float | None, ...]:
    out = []
    for c in cols:
        v = r[c]
        if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
            problems.append(f"{where}: {c} must be a finite number, got {v!r}")
            out.append(None)
        else:
            out.append(float(v))
    return tuple(out)


def transforms(poses: list[tuple[float, float, float, float]]) -> np.ndarray:
    """(n, 4, 4): ``translation(x, y, z, yaw)`` of each (x, y, z, yaw), bit for bit, as one array.

    ``translation`` builds each matrix from nested lists (~5 µs): for the import's 26k nodes
    that was a third of the scene build; here numpy fills whole columns at once.
    """
    out = np.zeros((len(poses), 4, 4))
    if not poses:
        return out
    x, y, z, yaw = zip(*poses)
    # the cosines as translation() takes them: math, not numpy's vectorised cos, and exactly
    # (1, 0) for yaw 0 (so that -s is -0.0 there, as in translation)
    c = [1.0 if a == 0.0 else math.cos(a) for a in yaw]
    s = np.array([0.0 if a == 0.0 else math.sin(a) for a in yaw])
    out[:, 0, 0] = out[:, 1, 1] = c
    out[:, 0, 1] = -s
    out[:, 1, 0] = s
    out[:, 0, 3], out[:, 1, 3], out[:, 2, 3] = x, y, z
    out[:, 2, 2] = out[:, 3, 3] = 1.0
    return out


_PENDING = np.eye(4)  # the transform of a staged node until _Stager.flush() sets its pose
_PENDING.flags.writeable = False


class _Stager:
    """Checks nodes row by row (duplicates, parents) and adds them in one ``add_many`` call;
    nodes staged with a pose get their transforms then, all from one :func:`transforms`."""

    def __init__(self, scene: SceneGraph, problems: list[str]) -> None:
        self.scene, self.problems = scene, problems
        self.nodes: list[Node] = []
        self.ids: set[str] = set()
        self.posed: list[Node] = []
        self.poses: list[tuple[float, float, float, float]] = []

    def __call__(
        self, where: str, node: Node, pose: tuple[float, float, float, float] | None = None
    ) -> bool:
        if node.id in self.scene or node.id in self.ids:
            self.problems.append(f"{where}: duplicate name {node.id!r}")
            return False
        if (
            node.parent is not None
            and node.parent not in self.scene
            and node.parent not in self.ids
        ):
            self.problems.append(f"{where}: parent {node.parent!r} does not exist")
            return False
        self.nodes.append(node)
        self.ids.add(node.id)
        if pose is not None:
            self.posed.append(node)
            self.poses.append(pose)
        return True

    def flush(self) -> None:
        block, self.poses = transforms(self.poses), []  # poses freed before the views exist
        for node, transform in zip(self.posed, block):
            node.transform = transform
        self.scene.add_many(self.nodes)
        self.nodes, self.ids, self.posed, self.poses = [], set(), [], []


def _capped(problems: list[str]) -> list[str]:
    if len(problems) <= MAX_LISTED:
        return problems
    return problems[:MAX_LISTED] + [
        f"... and {len(problems) - MAX_LISTED} more problems of the same kinds"
    ]
