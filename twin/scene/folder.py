"""Scene folders: ``scenes/<name>/scene.yaml`` + ``assets/`` + ``process/`` (SMT2020 files).

The file format is documented in ``docs/scene-format.md``. Reading (:mod:`twin.scene.scenefile`)
collects every problem (with file:line and id) and raises one :class:`~twin.errors.InputError`;
writing produces a file that reads back to the same scene.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from twin.errors import InputError
from twin.scene.assets import Z_UP_TO_Y_UP, AssetLibrary
from twin.scene.graph import SceneGraph
from twin.scene.scenefile import FORMAT, SCENE_FILE, SECTIONS, build_scene, parse_scene
from twin.scene.yamlio import dump_yaml


def load_folder(folder: str | Path, *, library: AssetLibrary | None = None) -> SceneGraph:
    """Load ``folder/scene.yaml`` (with its assets) into a SceneGraph."""
    folder = Path(folder)
    path = folder / SCENE_FILE if folder.is_dir() else folder
    if not path.is_file():
        raise InputError(
            "scene", [f"{path}: no scene file; expected a folder holding {SCENE_FILE}"]
        )
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError("scene file", [f"{path}: cannot read: {exc}"]) from None
    return parse_scene(text, file=str(path), base_dir=path.parent, library=library)


def scene_to_dict(scene: SceneGraph, asset_files: dict[str, dict[str, str]]) -> dict[str, Any]:
    """Plain data for scene.yaml (metres); ``asset_files`` maps asset id -> {file, unit, up}."""
    root = scene.name
    out: dict[str, Any] = {"format": FORMAT, "name": scene.name, "units": "m"}
    meta = {k: v for k, v in scene.metadata.items() if k != "process_dir"}
    if meta:
        out["metadata"] = meta
    if asset_files:
        out["assets"] = asset_files
    if scene.vehicle_types:
        out["vehicle_types"] = {k: dict(v) for k, v in scene.vehicle_types.items()}
    if scene.rail.number_of_nodes():
        out["rail"] = {
            "nodes": {n.id: scene.world_position(n.id).tolist() for n in scene.nodes("rail_node")},
            "segments": [
                {"id": s.id, "from": s.start, "to": s.end, "max_speed": s.max_speed, "length": s.length,
                 "curve": s.curve, **({"bay": s.bay} if s.bay else {})}
                for s in scene.segments.values()
            ],
        }  # fmt: skip
    sections: dict[str, list] = {k: [] for k in SECTIONS}
    for n in scene:
        if n.kind in ("fab", "rail_node") and (n.kind == "rail_node" or n.id == root):
            continue
        section = next((k for k, v in SECTIONS.items() if v == n.kind), "nodes")
        e: dict[str, Any] = {"id": n.id}
        if section == "nodes":
            e["kind"] = n.kind
        attrs = dict(n.attrs)
        if section == "vehicles":
            e["type"] = attrs.pop("vehicle_type", None)
            e["segment"] = attrs.pop("segment", None)
            e["offset"] = attrs.pop("offset", 0.0)
        else:
            for key in ("family", "area", "asset"):
                if getattr(n, key) is not None:
                    e[key] = getattr(n, key)
            if n.bay is not None and not (n.kind == "bay" and n.bay == n.id):
                e["bay"] = n.bay
            if n.size is not None:
                e["size"] = list(n.size)
            e.update(_pose_dict(n.transform))
        if section == "ports" and n.id in scene.ports:
            link = scene.ports[n.id]
            e.update({k: v for k, v in (("tool", link.tool), ("segment", link.segment)) if v})
            e["offset"] = link.offset
        default = (e.get("tool") if section == "ports" else None) or (
            e.get("bay") if n.kind != "bay" else None
        )
        if n.parent != root and n.parent != default:
            e["parent"] = n.parent
        elif n.parent == root and default is not None:
            e["parent"] = root  # explicit: differs from the default parent
        if attrs:
            e["attrs"] = attrs
        sections[section].append(e)
    out.update({k: v for k, v in sections.items() if v})
    return out


def _pose_dict(t: np.ndarray) -> dict[str, Any]:
    """``at`` + ``yaw`` when the transform is a turn about Z plus a shift, else the 4×4 matrix."""
    yaw = math.atan2(t[1, 0], t[0, 0])
    c, s = math.cos(yaw), math.sin(yaw)
    # plain float comparisons: numpy's allclose costs more than the rest of saving a node
    expected = ((c, -s, 0.0, None), (s, c, 0.0, None), (0.0, 0.0, 1.0, None), (0.0, 0.0, 0.0, 1.0))
    flat = t.tolist()
    if all(
        e is None or abs(v - e) <= 1e-12
        for row, erow in zip(flat, expected)
        for v, e in zip(row, erow)
    ):
        return {"at": [flat[0][3], flat[1][3], flat[2][3]], "yaw": math.degrees(yaw)}
    return {"transform": flat}


def save_folder(scene: SceneGraph, folder: str | Path) -> Path:
    """Write ``folder/scene.yaml``; assets not already in the folder are written as GLB there."""
    folder = Path(folder)
    (folder / "assets").mkdir(parents=True, exist_ok=True)
    files: dict[str, dict[str, str]] = {}
    written: dict[str, str] = {}
    for aid, asset in scene.assets.items():
        src = Path(asset.path) if asset.path else None
        if src is not None and src.is_file() and folder.resolve() in src.resolve().parents:
            files[aid] = {
                "file": src.resolve().relative_to(folder.resolve()).as_posix(),
                "unit": asset.unit,
                "up": asset.up,
            }
            continue
        if asset.digest not in written:
            rel = f"assets/{aid}.glb"
            mesh = asset.mesh.copy()
            mesh.apply_transform(Z_UP_TO_Y_UP)  # glTF is Y-up
            mesh.export(folder / rel, file_type="glb")
            written[asset.digest] = rel
        files[aid] = {"file": written[asset.digest], "unit": "m", "up": "y"}
    path = folder / SCENE_FILE
    path.write_text(dump_yaml(_plain(scene_to_dict(scene, files))), encoding="utf-8")
    return path


def _plain(obj: Any) -> Any:
    """Convert numpy scalars and tuples so the safe YAML dumper accepts them."""
    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_plain(v) for v in obj]
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    return obj


__all__ = [
    "FORMAT",
    "SCENE_FILE",
    "build_scene",
    "load_folder",
    "parse_scene",
    "save_folder",
    "scene_to_dict",
]
