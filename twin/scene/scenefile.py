"""Reading ``scene.yaml``: schema checks that collect every problem with file:line and id.

The format is documented in ``docs/scene-format.md``; :mod:`twin.scene.folder` loads and saves
whole scene folders through this module.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from twin.errors import InputError, TwinError
from twin.scene.assets import UNITS, AssetLibrary
from twin.scene.graph import Node, SceneGraph, translation
from twin.scene.yamlio import line_of, load_yaml

SCENE_FILE = "scene.yaml"
FORMAT = "twin-scene/1"
TOP_KEYS = {
    "format", "name", "units", "process", "metadata", "assets", "vehicle_types", "rail",
    "bays", "tools", "stockers", "stations", "nodes", "ports", "vehicles",
}  # fmt: skip
# Section → node kind (``nodes`` entries say their own kind).
SECTIONS = {
    "bays": "bay",
    "tools": "tool",
    "stockers": "stocker",
    "stations": "station",
    "nodes": None,
    "ports": "port",
    "vehicles": "vehicle",
}
NODE_KEYS = {
    "id",
    "kind",
    "parent",
    "at",
    "yaw",
    "transform",
    "family",
    "area",
    "bay",
    "asset",
    "size",
    "attrs",
}
PORT_KEYS = NODE_KEYS | {"tool", "segment", "offset"}
VEHICLE_KEYS = {"id", "type", "segment", "offset", "parent", "attrs"}
SEGMENT_KEYS = {"id", "from", "to", "max_speed", "length", "curve", "bay"}
VEHICLE_TYPE_KEYS = ("length", "max_speed", "acceleration", "deceleration", "min_distance")
PORT_HEIGHT = 0.9  # m: SEMI E15 load-port hand-off height, used when a port gives no `at`
RAIL_HEIGHT = 3.6  # m: default height of rail nodes given as [x, y]


class _Problems(list):
    def __init__(self, file: str) -> None:
        super().__init__()
        self.file = file

    def add(self, obj: Any, msg: str, key: Any = None) -> None:
        self.append(f"{self.file}:{line_of(obj, key)}: {msg}")


def parse_scene(
    text: str,
    *,
    file: str = SCENE_FILE,
    base_dir: Path | None = None,
    library: AssetLibrary | None = None,
) -> SceneGraph:
    """Build a SceneGraph from scene-file text; one InputError lists every problem."""
    data = load_yaml(text, file)
    return build_scene(data, file=file, base_dir=base_dir or Path("."), library=library)


def build_scene(
    data: Any, *, file: str, base_dir: Path, library: AssetLibrary | None = None
) -> SceneGraph:
    p = _Problems(file)
    if not isinstance(data, dict):
        raise InputError(
            "scene file", [f"{file}:1: top level must be a mapping with keys {sorted(TOP_KEYS)}"]
        )
    _dupes(p, data, "top level")
    for key in data:
        if key not in TOP_KEYS:
            p.add(data, f"unknown key {key!r}; accepted: {', '.join(sorted(TOP_KEYS))}", key)
    if data.get("format", FORMAT) != FORMAT:
        p.add(
            data, f"format {data.get('format')!r} is not supported; expected {FORMAT!r}", "format"
        )
    name = data.get("name", base_dir.resolve().name or "fab")
    if not isinstance(name, str) or not name:
        p.add(data, "name must be a non-empty string", "name")
        name = "fab"
    unit = data.get("units", "m")
    if not isinstance(unit, str) or unit not in UNITS:
        p.add(data, f"units {unit!r} is not one of {', '.join(UNITS)}", "units")
        unit = "m"
    scale = UNITS[unit]
    scene = SceneGraph(name)
    library = library or AssetLibrary()
    _read_assets(p, data.get("assets"), scene, base_dir, library)
    _read_vehicle_types(p, data.get("vehicle_types"), scene, scale)
    meta = data.get("metadata", {})
    if not isinstance(meta, dict):
        p.add(data, "metadata must be a mapping", "metadata")
    else:
        scene.metadata.update(meta)
    process = data.get("process", "process")
    if not isinstance(process, str):
        p.add(data, "process must be a folder path relative to the scene file", "process")
    elif (base_dir / process).is_dir():
        scene.metadata["process_dir"] = str((base_dir / process).resolve())

    rail_nodes, segments = _read_rail(p, data.get("rail"), scale)
    specs = _read_nodes(p, data, scale)
    ids: dict[str, int] = {}
    for nid, line in [(n, ln) for n, (_, ln) in rail_nodes.items()] + [
        (s["id"], s["_line"]) for s in specs
    ]:
        if nid == name:
            p.append(f"{file}:{line}: id {nid!r} is the fab root's id (the scene name)")
        elif nid in ids:
            p.append(f"{file}:{line}: duplicate id {nid!r} (first at line {ids[nid]})")
        else:
            ids[nid] = line
    _check_references(p, data, scene, specs, rail_nodes, segments)
    order = _parent_order(p, specs, set(rail_nodes) | {name})
    if p:
        raise InputError("scene file", p)

    scene.add(Node(id=name, kind="fab"))
    for nid, (xyz, _) in rail_nodes.items():
        scene.add_rail_node(nid, *xyz, parent=name)
    try:
        for s in segments:
            scene.add_segment(
                s["id"], s["from"], s["to"], max_speed=s["max_speed"], length=s.get("length"),
                curve=s["curve"], bay=s.get("bay"),
            )  # fmt: skip
        for spec in order:
            _add_node(scene, spec, name)
    except (TwinError, np.linalg.LinAlgError) as exc:  # checked above; report what is left
        raise InputError("scene file", [f"{file}: {exc}"]) from None
    return scene


def _dupes(p: _Problems, obj: Any, where: str) -> None:
    for key, line in getattr(obj, "duplicates", []):
        p.append(f"{p.file}:{line}: duplicate key {key!r} in {where}")


def _num(p: _Problems, obj: Any, key: str, *, positive: bool = False, default: Any = None) -> Any:
    value = obj.get(key, default)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        p.add(obj, f"{key} must be a finite number, got {value!r}", key)
        return None
    if positive and value <= 0:
        p.add(obj, f"{key} must be > 0, got {value!r}", key)
        return None
    return float(value)


def _vec(
    p: _Problems, obj: Any, key: str, sizes: tuple[int, ...], who: str = ""
) -> list[float] | None:
    value = obj.get(key)
    ok = isinstance(value, list) and len(value) in sizes
    ok = ok and all(
        not isinstance(v, bool) and isinstance(v, int | float) and math.isfinite(v) for v in value
    )
    if not ok:
        want = " or ".join(str(n) for n in sizes)
        p.add(obj, f"{who}{key} must be a list of {want} finite numbers, got {value!r}", key)
        return None
    return [float(v) for v in value]


def _entries(p: _Problems, data: Any, key: str) -> list[Any]:
    value = data.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        p.add(data, f"{key} must be a list of mappings", key)
        return []
    good = []
    for item in value:
        if isinstance(item, dict):
            good.append(item)
        else:
            p.add(value, f"{key}: every entry must be a mapping, got {item!r}")
    return good


def _read_assets(
    p: _Problems, assets: Any, scene: SceneGraph, base: Path, lib: AssetLibrary
) -> None:
    if assets is None:
        return
    if not isinstance(assets, dict):
        p.append(f"{p.file}:{line_of(assets)}: assets must be a mapping id -> {{file, unit, up}}")
        return
    _dupes(p, assets, "assets")
    for aid, spec in assets.items():
        if isinstance(spec, str):
            spec = {"file": spec}
        if not isinstance(spec, dict) or not isinstance(spec.get("file"), str):
            p.add(assets, f"asset {aid!r}: needs file: <path relative to the scene folder>", aid)
            continue
        unit, up = spec.get("unit", "m"), spec.get("up")
        if not isinstance(unit, str) or unit not in UNITS or up not in (None, "y", "z"):
            p.add(spec, f"asset {aid!r}: unit must be one of {', '.join(UNITS)} and up one of y, z")
            continue
        try:
            scene.assets[str(aid)] = lib.load(
                str(aid), base / spec["file"], unit=spec.get("unit", "m"), up=spec.get("up"),
                source=spec["file"],
            )  # fmt: skip
        except TwinError as exc:
            p.add(assets, f"asset {aid!r}: {exc}", aid)
        except (OSError, ValueError) as exc:
            p.add(assets, f"asset {aid!r}: cannot open {spec['file']!r}: {exc}", aid)


def _read_vehicle_types(p: _Problems, types: Any, scene: SceneGraph, scale: float) -> None:
    if types is None:
        return
    if not isinstance(types, dict):
        p.append(f"{p.file}:{line_of(types)}: vehicle_types must be a mapping name -> parameters")
        return
    for name, spec in types.items():
        if not isinstance(spec, dict):
            p.add(types, f"vehicle type {name!r} needs {', '.join(VEHICLE_TYPE_KEYS)}", name)
            continue
        values = {}
        for key in VEHICLE_TYPE_KEYS:
            if key not in spec:
                p.add(spec, f"vehicle type {name!r}: missing {key}")
            elif (v := _num(p, spec, key, positive=True)) is not None:
                values[key] = v * scale
        scene.vehicle_types[str(name)] = values


def _read_rail(
    p: _Problems, rail: Any, scale: float
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    nodes: dict[str, Any] = {}
    segments: list[dict[str, Any]] = []
    if rail is None:
        return nodes, segments
    if not isinstance(rail, dict):
        p.append(
            f"{p.file}:{line_of(rail)}: rail must be a mapping with height, max_speed, nodes, segments"
        )
        return nodes, segments
    height = _num(p, rail, "height", default=RAIL_HEIGHT / scale) or 0.0
    default_speed = _num(p, rail, "max_speed", positive=True)
    raw_nodes = rail.get("nodes") or {}
    if not isinstance(raw_nodes, dict):
        p.add(rail, "rail.nodes must be a mapping id -> [x, y] or [x, y, z]", "nodes")
        raw_nodes = {}
    _dupes(p, raw_nodes, "rail.nodes")
    for nid, xyz in raw_nodes.items():
        line = line_of(raw_nodes, nid)
        ok = isinstance(xyz, list) and len(xyz) in (2, 3)
        ok = ok and all(
            not isinstance(v, bool) and isinstance(v, int | float) and math.isfinite(v) for v in xyz
        )
        if not isinstance(nid, str) or not ok:
            p.append(
                f"{p.file}:{line}: rail node {nid!r}: position must be [x, y] or [x, y, z] finite numbers"
            )
            continue
        pos = [float(v) for v in xyz] + ([height] if len(xyz) == 2 else [])
        nodes[nid] = ([v * scale for v in pos], line)
    seen: set[str] = set()
    for s in _entries(p, rail, "segments"):
        for key in s:
            if key not in SEGMENT_KEYS:
                p.add(
                    s,
                    f"rail segment: unknown key {key!r}; accepted: {', '.join(sorted(SEGMENT_KEYS))}",
                    key,
                )
        sid = s.get("id")
        if not isinstance(sid, str) or not sid:
            p.add(s, "rail segment needs a string id")
            continue
        if sid in seen:
            p.add(s, f"duplicate rail segment id {sid!r}")
        seen.add(sid)
        for end in ("from", "to"):
            if not isinstance(s.get(end), str) or s.get(end) not in nodes:
                p.add(s, f"rail segment {sid!r}: {end} names unknown rail node {s.get(end)!r}", end)
        speed = _num(p, s, "max_speed", positive=True)
        speed = speed if speed is not None else default_speed
        if speed is None:
            p.add(s, f"rail segment {sid!r}: needs max_speed (here or in rail.max_speed)")
        length = _num(p, s, "length", positive=True)
        curve = s.get("curve", False)
        if not isinstance(curve, bool):
            p.add(s, f"rail segment {sid!r}: curve must be true or false", "curve")
        bay = s.get("bay")
        if bay is not None and not isinstance(bay, str):
            p.add(s, f"rail segment {sid!r}: bay must be a bay id", "bay")
        segments.append({
            "id": sid, "from": s.get("from"), "to": s.get("to"), "curve": curve is True, "bay": bay,
            "max_speed": (speed or 1.0) * scale, "length": None if length is None else length * scale,
            "_line": line_of(s),
        })  # fmt: skip
    return nodes, segments


def _read_nodes(p: _Problems, data: Any, scale: float) -> list[dict[str, Any]]:
    specs = []
    for section, kind in SECTIONS.items():
        keys = (
            PORT_KEYS
            if section == "ports"
            else VEHICLE_KEYS
            if section == "vehicles"
            else NODE_KEYS
        )
        for e in _entries(p, data, section):
            _dupes(p, e, section)
            for key in e:
                if key not in keys:
                    p.add(
                        e,
                        f"{section}: unknown key {key!r}; accepted: {', '.join(sorted(keys))}",
                        key,
                    )
            nid = e.get("id")
            if not isinstance(nid, str) or not nid:
                p.add(e, f"{section}: every entry needs a non-empty string id, got {nid!r}")
                continue
            spec: dict[str, Any] = {"id": nid, "_line": line_of(e), "_entry": e, "section": section}
            spec["kind"] = kind or e.get("kind")
            if kind is None and spec["kind"] not in (
                "group",
                "floor",
                "fab",
                "bay",
                "tool",
                "stocker",
                "station",
            ):
                p.add(
                    e,
                    f"node {nid!r}: kind must be one of group, floor, bay, tool, stocker, station",
                    "kind",
                )
            for key in ("parent", "family", "area", "bay", "asset", "tool", "segment", "type"):
                if key in e and not isinstance(e[key], str):
                    p.add(e, f"{section} {nid!r}: {key} must be a string id, got {e[key]!r}", key)
                spec[key] = e.get(key) if isinstance(e.get(key), str) else None
            attrs = e.get("attrs", {})
            if not isinstance(attrs, dict):
                p.add(e, f"{section} {nid!r}: attrs must be a mapping", "attrs")
                attrs = {}
            spec["attrs"] = dict(attrs)
            spec["transform"] = _pose(p, e, nid, scale) if section != "vehicles" else None
            if (
                "size" in e
                and (size := _vec(p, e, "size", (3,), f"{section} {nid!r}: ")) is not None
            ):
                if min(size) <= 0:
                    p.add(e, f"{section} {nid!r}: size must be positive [dx, dy, dz]", "size")
                spec["size"] = tuple(v * scale for v in size)
            if section in ("ports", "vehicles"):
                spec["offset"] = (_num(p, e, "offset", default=0.0) or 0.0) * scale
                if section == "vehicles" and spec["segment"] is None:
                    p.add(e, f"vehicle {nid!r}: needs segment and offset")
            specs.append(spec)
    return specs


def _pose(p: _Problems, e: Any, nid: str, scale: float) -> np.ndarray | None:
    if "transform" in e:
        t = e["transform"]
        ok = (
            isinstance(t, list)
            and len(t) == 4
            and all(isinstance(r, list) and len(r) == 4 for r in t)
        )
        ok = ok and all(
            not isinstance(v, bool) and isinstance(v, int | float) for r in t for v in r
        )
        if not ok:
            p.add(e, f"node {nid!r}: transform must be a 4x4 list of numbers", "transform")
            return None
        m = np.array(t, dtype=float)
        if not np.all(np.isfinite(m)):
            p.add(
                e,
                f"node {nid!r}: non-finite transform {t!r}; every entry must be finite",
                "transform",
            )
            return None
        if not np.allclose(m[3], [0, 0, 0, 1]) or abs(np.linalg.det(m[:3, :3])) < 1e-12:
            p.add(
                e,
                f"node {nid!r}: transform must be affine (last row 0 0 0 1) and invertible",
                "transform",
            )
            return None
        m[:3, 3] *= scale
        return m
    if "at" not in e and "yaw" not in e:
        return None
    at = _vec(p, e, "at", (2, 3), who=f"node {nid!r}: ") if "at" in e else [0.0, 0.0]
    yaw = _num(p, e, "yaw", default=0.0)  # degrees
    if at is None or yaw is None:
        return None
    at = at + [0.0] * (3 - len(at))
    return translation(at[0] * scale, at[1] * scale, at[2] * scale, math.radians(yaw))


def _check_references(
    p: _Problems, data: Any, scene: SceneGraph, specs: list, rail_nodes: dict, segments: list
) -> None:
    seg_by_id = {g["id"]: g for g in segments}
    node_ids = {s["id"] for s in specs}
    bays = {s["id"] for s in specs if s["kind"] == "bay"}
    for s in specs:
        e, nid = s["_entry"], s["id"]
        if s["asset"] is not None and s["asset"] not in scene.assets:
            p.add(
                e, f"{nid!r}: unknown asset {s['asset']!r}; known: {sorted(scene.assets)}", "asset"
            )
        if s["bay"] is not None and s["bay"] not in bays:
            p.add(e, f"{nid!r}: unknown bay {s['bay']!r}; known: {sorted(bays)}", "bay")
        if s["tool"] is not None and s["tool"] not in node_ids:
            p.add(e, f"port {nid!r}: names unknown tool {s['tool']!r}", "tool")
        if s["segment"] is not None:
            seg = seg_by_id.get(s["segment"])
            if seg is None:
                p.add(e, f"{nid!r}: is on missing rail segment {s['segment']!r}", "segment")
            elif seg["from"] in rail_nodes and seg["to"] in rail_nodes:
                length = seg["length"]
                if length is None:
                    a, b = np.array(rail_nodes[seg["from"]][0]), np.array(rail_nodes[seg["to"]][0])
                    length = float(np.linalg.norm(b - a))
                if not (-1e-9 <= s["offset"] <= length + 1e-6):
                    p.add(
                        e,
                        f"{nid!r}: offset {s['offset']} m is outside segment {seg['id']!r} (0..{length:.3f} m)",
                        "offset",
                    )
        if s["section"] == "vehicles" and s["type"] not in scene.vehicle_types:
            p.add(
                e,
                f"vehicle {nid!r}: unknown type {s['type']!r}; known: {sorted(scene.vehicle_types)}",
                "type",
            )


def _parent_order(
    p: _Problems, specs: list[dict[str, Any]], fixed: set[str]
) -> list[dict[str, Any]]:
    """Specs sorted so that parents come first; reports unknown parents and cycles."""
    by_id = {s["id"]: s for s in specs}
    for s in specs:
        parent = s["parent"] or (s["tool"] if s["section"] == "ports" else None) or s["bay"]
        if s["kind"] == "bay" and s["parent"] is None:
            parent = None
        s["_parent"] = parent
        if parent is not None and parent not in by_id and parent not in fixed:
            p.add(s["_entry"], f"{s['id']!r}: unknown parent {parent!r}", "parent")
            s["_parent"] = None
    order, state = [], {}  # state: 1 = visiting, 2 = done
    for s in specs:
        chain = []
        cur = s
        while cur is not None and state.get(cur["id"]) is None:
            state[cur["id"]] = 1
            chain.append(cur)
            cur = by_id.get(cur["_parent"])
        if cur is not None and state.get(cur["id"]) == 1:  # walked back into this chain: a cycle
            cycle = [c["id"] for c in chain[[c["id"] for c in chain].index(cur["id"]) :]]
            p.append(f"{p.file}:{cur['_line']}: parent cycle {' -> '.join(cycle + [cur['id']])}")
        for c in chain:
            state[c["id"]] = 2
        order.extend(reversed(chain))
    return order


def _add_node(scene: SceneGraph, s: dict[str, Any], root: str) -> None:
    parent = s["_parent"] or root
    t = s["transform"]
    attrs = s["attrs"]
    if s["section"] == "vehicles":
        attrs.update(vehicle_type=s["type"], segment=s["segment"], offset=s["offset"])
        t = _on_segment(scene, s["segment"], s["offset"], parent, z=None)
    elif s["section"] == "ports" and t is None and s["segment"] is not None:
        t = _on_segment(scene, s["segment"], s["offset"], parent, z=PORT_HEIGHT)
    node = Node(
        id=s["id"], kind=s["kind"], parent=parent, transform=np.eye(4) if t is None else t,
        family=s["family"], area=s["area"], bay=s["bay"] or (s["id"] if s["kind"] == "bay" else None),
        asset=s["asset"], size=s.get("size"), attrs=attrs,
    )  # fmt: skip
    scene.add(node)
    if s["section"] == "ports":
        scene.link_port(s["id"], tool=s["tool"], segment=s["segment"], offset=s["offset"])


def _on_segment(
    scene: SceneGraph, seg_id: str, offset: float, parent: str, z: float | None
) -> np.ndarray:
    """Local transform (under ``parent``) of a point on a segment, facing along it."""
    seg = scene.segment(seg_id)
    point = scene.point_on_segment(seg_id, offset)
    if z is not None:
        point[2] = z
    d = scene.world_position(seg.end) - scene.world_position(seg.start)
    world = translation(*point, yaw=math.atan2(d[1], d[0]))
    return np.linalg.inv(scene.world_transform(parent)) @ world
