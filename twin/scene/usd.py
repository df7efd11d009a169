"""The scene as an OpenUSD stage (``usd-core``), optionally animated from the event log.

Layout of the stage (metres, Z up, both declared in the stage metadata)::

    /World                      Xform, the default prim
      /<fab>/<bay>/<tool>/...   one Xform per scene node, the scene graph's hierarchy and local
                                transforms (``xformOp:transform``); prim names are the node ids
                                made valid identifiers, the id itself is ``twin:id``
        .../<tool>/geometry     an instance of the tool's prototype (nodes with children)
        .../<port>              ports and vehicles are instances themselves (they have no children)
      /Rail/<segment>           one instanced unit beam per rail segment, scaled to its length
    /Prototypes                 class prim: one prototype per asset mesh and per kind and size
                                of box; instances reference them and are ``instanceable``

Every node prim carries ``twin:id``, ``twin:kind`` and, when known, ``twin:family``,
``twin:area`` and ``twin:bay`` (custom string attributes). Colours are the constant primvar
``displayColor``: on the instance prims of tools, stockers and vehicles (their prototype meshes
author none and inherit it, so it can be animated per instance), on the prototype meshes of
ports and rail beams (never animated).

``Animation`` (built by :func:`animation_from_store`) adds time samples: vehicle transforms from
``vehicle.position`` events, ``twin:state`` and ``twin:carrier`` of vehicles, and each tool's
E10 state (``twin:state``) and colour. Time code 0 is the start of the window (its UTC time is
``twin:timeOrigin`` in the layer's customLayerData), one time code per second.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from twin.errors import InputError, UnsupportedFormatError
from twin.scene.graph import Node, SceneGraph, translation

if TYPE_CHECKING:
    from twin.live.store import EventStore

USD_FORMATS = (".usda", ".usdc", ".usdz")
MAX_SAMPLES = 1_000_000  # time samples one export may author (about 7 s and 100 MB of usdc)
MAX_SPAN = 31 * 86400.0  # s, the longest --from/--to window
HOLD = 1e-3  # s before a state change: the old colour is held up to there (no blending)
COLOURS = {  # kind -> RGB (0..1), the glTF export's colours
    "tool": (0.471, 0.549, 0.667),
    "stocker": (0.784, 0.667, 0.353),
    "station": (0.431, 0.667, 0.431),
    "rail": (0.235, 0.235, 0.235),
    "vehicle": (0.902, 0.471, 0.157),
    "port": (0.353, 0.627, 0.863),
}
ASSET_COLOUR = (0.686, 0.725, 0.784)
LOADED_COLOUR = (0.6, 0.2, 0.7)  # a vehicle carrying a carrier
ATTRS = ("id", "kind", "family", "area", "bay")  # the node fields written as twin:<name>


@dataclass(kw_only=True)
class Animation:
    """Time samples for the stage, taken from an event log.

    ``origin`` and ``end`` are UTC epoch seconds (time codes 0 and end - origin); samples are
    keyed by epoch seconds. Vehicle poses are local transforms (4×4, under the node's parent).
    """

    origin: float
    end: float
    poses: dict[str, dict[float, np.ndarray]] = field(default_factory=dict)
    vehicle_states: dict[str, dict[float, str]] = field(default_factory=dict)
    carriers: dict[str, dict[float, str]] = field(default_factory=dict)  # "" when empty
    tool_states: dict[str, dict[float, str]] = field(default_factory=dict)  # "" when unknown
    events: int = 0  # events read from the window
    skipped: dict[str, int] = field(default_factory=dict)  # why -> events not drawn

    def samples(self) -> int:
        """Time samples the stage will hold: a pose 2 (translate, rotateZ), a vehicle state 1,
        a carrier or tool state 3 (text, colour, and the colour held until the change)."""
        n = sum(2 * len(v) for v in self.poses.values())
        n += sum(len(v) for v in self.vehicle_states.values())
        n += sum(3 * len(v) for v in self.carriers.values())
        return n + sum(3 * len(v) for v in self.tool_states.values())


# ------------------------------------------------------------------------------ animation
def animation_from_store(
    scene: SceneGraph,
    store: EventStore,
    since: float | None = None,
    until: float | None = None,
    *,
    max_samples: int = MAX_SAMPLES,
) -> Animation:
    """Vehicle poses and tool states from ``store`` over ``since`` .. ``until`` (epoch s).

    The state at ``since`` comes from ``store.state_at`` (snapshots and replay, as in
    ``twin state --at``); every later event is applied to it with ``twin.live.state.apply`` and
    the entities it changed are sampled at its time. Defaults: from the first stored event to
    the last. Raises InputError for an empty store, a window that is reversed or longer than
    ``MAX_SPAN``, or one that needs more than ``max_samples`` samples.
    """
    from twin.live.events import format_time
    from twin.live.state import apply

    problems = []
    if since is None:
        first = next(store.read_positioned(limit=1), None)
        if first is None:
            raise InputError("scene export --animate", ["the event store holds no events"])
        since = min(first[1].time, until) if until is not None else first[1].time
    if until is not None and until < since:
        problems.append(
            f"--to {format_time(until)} is before --from {format_time(since)}; "
            "give a window that ends after it starts"
        )
    elif until is not None and until - since > MAX_SPAN:
        problems.append(
            f"--from/--to span {(until - since) / 86400:.1f} days; at most "
            f"{MAX_SPAN / 86400:.0f} days can be animated (narrow the window)"
        )
    if problems:
        raise InputError("scene export --animate", problems)
    limit = until if until is not None else since + MAX_SPAN
    if until is None and next(
        store.read_positioned(since=math.nextafter(limit, math.inf), limit=1), None
    ):
        raise InputError(
            "scene export --animate",
            [
                f"the store holds events more than {MAX_SPAN / 86400:.0f} days after --from "
                f"{format_time(since)}; give --to (at most {MAX_SPAN / 86400:.0f} days later)"
            ],
        )
    state = store.state_at(since)
    anim = Animation(origin=since, end=since if until is None else until)
    tools = {n.id for n in scene.nodes(("tool", "stocker", "station"))}
    vehicles = {n.id for n in scene.nodes("vehicle")}
    budget = _Budget(max_samples, since, limit)

    def sample_vehicle(vid: str, t: float, event_type: str) -> None:
        v = state.vehicles.get(vid)
        if v is None:
            return
        if event_type == "vehicle.position" and v.segment is not None:
            if v.segment in scene.segments:
                pose = vehicle_pose(scene, vid, v.segment, v.offset)
                _put(anim.poses, vid, t, pose, budget, 2)
            else:
                skip("vehicle on a rail segment the scene lacks")
        if event_type == "vehicle.state":
            _put(anim.vehicle_states, vid, t, str(v.state), budget, 1)
        _put(anim.carriers, vid, t, v.carrier or "", budget, 3)

    def skip(why: str) -> None:
        anim.skipped[why] = anim.skipped.get(why, 0) + 1

    def sample_tool(tid: str, t: float) -> None:
        e = state.equipment.get(tid)
        _put(anim.tool_states, tid, t, "" if e is None or e.state is None else e.state, budget, 3)

    for vid in sorted(vehicles):
        if vid in state.vehicles and state.vehicles[vid].rev:
            for etype in ("vehicle.position", "vehicle.state"):
                sample_vehicle(vid, since, etype)
    for tid in sorted(tools):
        if tid in state.equipment and state.equipment[tid].state is not None:
            sample_tool(tid, since)
    for ev in store.read(since=since, until=limit):
        if ev.time <= since:
            continue  # already in state_at(since)
        apply(state, ev)
        anim.events += 1
        anim.end = max(anim.end, ev.time)
        kind = ev.type.partition(".")[0]
        if kind == "vehicle" or ev.type in ("carrier.picked_up", "carrier.delivered"):
            vid = ev.subject if kind == "vehicle" else str(ev.data.get("vehicle"))
            if vid in vehicles:
                sample_vehicle(vid, ev.time, ev.type)
            else:
                skip("vehicle not in the scene")
        elif ev.type == "equipment.state":
            if ev.subject in tools:
                sample_tool(ev.subject, ev.time)
            else:
                skip("equipment not in the scene")
    return anim


class _Budget:
    """Counts authored samples and refuses the export past ``limit`` (names the bound)."""

    def __init__(self, limit: int, since: float, until: float) -> None:
        self.limit, self.used, self.since, self.until = limit, 0, since, until

    def take(self, n: int) -> None:
        self.used += n
        if self.used > self.limit:
            from twin.live.events import format_time

            raise InputError(
                "scene export --animate",
                [
                    f"the window {format_time(self.since)} .. {format_time(self.until)} needs "
                    f"more than {self.limit:,} time samples (the most one export authors); "
                    "narrow it with --from/--to"
                ],
            )


def _put(
    table: dict[str, dict[float, Any]], key: str, t: float, value: Any, budget: _Budget, cost: int
) -> None:
    samples = table.setdefault(key, {})
    if not samples and isinstance(value, str) and not value:
        return  # nothing known yet and nothing to show: the default holds
    if samples:
        last_t = next(reversed(samples))
        if not isinstance(value, np.ndarray) and samples[last_t] == value:
            return  # unchanged: held anyway
    if t not in samples:
        budget.take(cost)
    samples[t] = value


def vehicle_pose(scene: SceneGraph, vid: str, segment: str, offset: float) -> np.ndarray:
    """A vehicle's local transform (under its parent) at ``offset`` m along ``segment``, facing
    along it: the pose the scene loaders give a parked vehicle."""
    seg = scene.segment(segment)
    a, b = scene.world_position(seg.start), scene.world_position(seg.end)
    off = float(offset) if math.isfinite(offset) else 0.0
    world = translation(
        *scene.point_on_segment(segment, off), yaw=math.atan2(b[1] - a[1], b[0] - a[0])
    )
    parent = scene.node(vid).parent
    return world if parent is None else np.linalg.solve(scene.world_transform(parent), world)


# ---------------------------------------------------------------------------------- stage
def export_usd(
    scene: SceneGraph,
    out: str | Path,
    *,
    animation: Animation | None = None,
    rail: bool = True,
    vehicles: bool = True,
    ports: bool = True,
) -> Path:
    """Write the scene as .usda, .usdc or .usdz (by the suffix of ``out``); returns its path."""
    out = Path(out)
    suffix = out.suffix.lower()
    if suffix not in USD_FORMATS:
        raise UnsupportedFormatError(suffix or out.name, [s[1:] for s in USD_FORMATS], out)
    try:
        str(out.resolve()).encode("utf-8")
    except UnicodeEncodeError:
        raise InputError(
            "scene export", [f"{str(out)!r}: usd-core needs a file name that is valid UTF-8"]
        ) from None
    layer = build_layer(scene, animation=animation, rail=rail, vehicles=vehicles, ports=ports)
    out.parent.mkdir(parents=True, exist_ok=True)
    if suffix == ".usdz":
        import tempfile

        from pxr import UsdUtils

        with tempfile.TemporaryDirectory(prefix="twin-usdz-") as tmp:
            inner = Path(tmp) / f"{out.stem or 'fab'}.usdc"
            _export(layer, inner)
            if not UsdUtils.CreateNewUsdzPackage(str(inner), str(out)):
                raise InputError("scene export", [f"{out}: usd-core could not write the package"])
    else:
        _export(layer, out)
    return out


def _export(layer: Any, path: Path) -> None:
    if not layer.Export(str(path)):
        raise InputError("scene export", [f"{path}: usd-core could not write the file"])


def build_layer(
    scene: SceneGraph,
    *,
    animation: Animation | None = None,
    rail: bool = True,
    vehicles: bool = True,
    ports: bool = True,
) -> Any:
    """An anonymous ``Sdf.Layer`` holding the stage (see the module docstring)."""
    from pxr import Sdf

    layer = Sdf.Layer.CreateAnonymous("twin.usda")
    with Sdf.ChangeBlock():
        _Writer(layer, scene, animation, rail=rail, vehicles=vehicles, ports=ports).write()
    return layer


def open_stage(path: str | Path) -> Any:
    """The exported file as a ``Usd.Stage`` (for tests and notebooks)."""
    from pxr import Usd

    return Usd.Stage.Open(str(path))


class _Writer:
    """Builds the layer with the Sdf API (much faster than Usd's per-prim calls)."""

    def __init__(
        self, layer: Any, scene: SceneGraph, anim: Animation | None, **options: bool
    ) -> None:
        from pxr import Gf, Sdf, Vt

        self.Gf, self.Sdf, self.Vt, self.T = Gf, Sdf, Vt, Sdf.ValueTypeNames
        self.layer, self.scene, self.anim, self.options = layer, scene, anim, options
        self.prototypes: dict[Any, str] = {}
        self.prim_of: dict[str, str] = {}  # node id -> prim path
        self.order = Vt.TokenArray(["xformOp:transform"])

    # ------------------------------------------------------------------ writing
    def write(self) -> None:
        Sdf, layer = self.Sdf, self.layer
        root = layer.pseudoRoot
        root.SetInfo("upAxis", "Z")
        root.SetInfo("metersPerUnit", 1.0)
        layer.defaultPrim = "World"
        data = {"twin:scene": _text(self.scene.name), "twin:units": "m"}
        if self.anim is not None:
            from twin.live.events import format_time

            layer.startTimeCode = 0.0
            layer.endTimeCode = max(self.anim.end - self.anim.origin, 0.0)
            layer.timeCodesPerSecond = 1.0
            layer.framesPerSecond = 1.0
            data["twin:timeOrigin"] = format_time(self.anim.origin)
        layer.customLayerData = data
        self.protos = Sdf.PrimSpec(layer, "Prototypes", Sdf.SpecifierClass)
        world = Sdf.PrimSpec(layer, "World", Sdf.SpecifierDef, "Xform")
        world.kind = "assembly"
        self._children(world, None)
        if self.options["rail"] and self.scene.segments:
            self._rail(world)
        if self.anim is not None:
            self._animate()

    def _children(self, parent_spec: Any, parent_id: str | None) -> None:
        """Prims for the children of ``parent_id`` (depth first, an explicit stack)."""
        Sdf = self.Sdf
        stack: list[tuple[Any, str | None]] = [(parent_spec, parent_id)]
        taken: dict[str, set[str]] = {}
        while stack:
            spec, nid = stack.pop()
            names = taken.setdefault(
                str(spec.path), {"Rail", "geometry"} if nid is None else {"geometry"}
            )
            for cid in self.scene.children(nid):
                node = self.scene.node(cid)
                if (node.kind == "vehicle" and not self.options["vehicles"]) or (
                    node.kind == "port" and not self.options["ports"]
                ):
                    continue
                name = _unique(_identifier(cid), names)
                prim = Sdf.PrimSpec(spec, name, Sdf.SpecifierDef, "Xform")
                self.prim_of[cid] = str(prim.path)
                self._xform(prim, node.transform)
                self._attrs(prim, node)
                self._geometry(prim, node)
                stack.append((prim, cid))

    def _geometry(self, prim: Any, node: Node) -> None:
        proto, colour = self._prototype(node)
        if proto is None:
            return
        if node.kind in ("port", "vehicle") and not self.scene.children(node.id):
            target = prim  # a leaf: the node prim is the instance
        else:
            target = self.Sdf.PrimSpec(prim, "geometry", self.Sdf.SpecifierDef, "Xform")
        target.instanceable = True
        target.referenceList.Prepend(self.Sdf.Reference("", proto))
        if colour is not None:
            self._colour(target, colour)

    def _prototype(self, node: Node) -> tuple[str | None, tuple[float, float, float] | None]:
        """The prototype path for a node's geometry (made on first use) and the colour its
        instance shows (None: the prototype's own colour, for kinds that are never animated)."""
        scene = self.scene
        if node.asset is not None and node.asset in scene.assets:
            asset = scene.assets[node.asset]
            key: Any = ("asset", asset.digest)
            if key not in self.prototypes:
                mesh = asset.mesh
                self.prototypes[key] = self._mesh_proto(
                    f"asset_{_identifier(node.asset)}",
                    np.asarray(mesh.vertices),
                    np.asarray(mesh.faces),
                )
            return self.prototypes[key], ASSET_COLOUR
        if node.kind == "bay":
            return None, (0, 0, 0)
        if node.size is not None:
            size = tuple(round(float(v), 6) for v in node.size)
            lo, hi = (-size[0] / 2, -size[1] / 2, 0.0), (size[0] / 2, size[1] / 2, size[2])
            return self._box(("box", node.kind, size), f"box_{node.kind}", lo, hi), COLOURS.get(
                node.kind, COLOURS["tool"]
            )
        if node.kind == "vehicle":
            from twin.scene.export import RAIL_DEPTH, VEHICLE_HEIGHT, VEHICLE_WIDTH

            vtype = node.attrs.get("vehicle_type")
            length = float(self.scene.vehicle_types.get(vtype, {}).get("length", 0.8))
            top = -RAIL_DEPTH
            lo = (-length / 2, -VEHICLE_WIDTH / 2, top - VEHICLE_HEIGHT)
            hi = (length / 2, VEHICLE_WIDTH / 2, top)
            return self._box(("vehicle", length), "vehicle", lo, hi), COLOURS["vehicle"]
        if node.kind == "port":
            from twin.scene.export import PORT_SIZE

            sx, sy, sz = PORT_SIZE
            lo, hi = (-sx / 2, -sy / 2, 0.0), (sx / 2, sy / 2, sz)
            return self._box(("port",), "port", lo, hi, COLOURS["port"]), None
        return None, (0, 0, 0)

    def _box(self, key: Any, stem: str, lo: tuple, hi: tuple, colour: tuple | None = None) -> str:
        if key not in self.prototypes:
            x0, y0, z0 = lo
            x1, y1, z1 = hi
            pts = np.array(
                [[x, y, z] for z in (z0, z1) for y in (y0, y1) for x in (x0, x1)], dtype=float
            )
            quads = np.array(
                [[0, 2, 3, 1], [4, 5, 7, 6], [0, 1, 5, 4], [2, 6, 7, 3], [0, 4, 6, 2], [1, 3, 7, 5]]
            )
            self.prototypes[key] = self._mesh_proto(stem, pts, quads, colour)
        return self.prototypes[key]

    def _mesh_proto(
        self, stem: str, points: np.ndarray, faces: np.ndarray, colour: tuple | None = None
    ) -> str:
        Sdf, T, Vt, Gf = self.Sdf, self.T, self.Vt, self.Gf
        name = _unique(stem, {c.name for c in self.protos.nameChildren})
        proto = Sdf.PrimSpec(self.protos, name, Sdf.SpecifierDef, "Xform")
        mesh = Sdf.PrimSpec(proto, "mesh", Sdf.SpecifierDef, "Mesh")
        pts = np.ascontiguousarray(points, dtype=np.float32)
        _attr(mesh, "points", T.Point3fArray, Vt.Vec3fArray.FromNumpy(pts))
        _attr(mesh, "faceVertexCounts", T.IntArray, Vt.IntArray([faces.shape[1]] * len(faces)))
        _attr(
            mesh,
            "faceVertexIndices",
            T.IntArray,
            Vt.IntArray.FromNumpy(np.ascontiguousarray(faces.reshape(-1), dtype=np.int32)),
        )
        lo, hi = pts.min(axis=0), pts.max(axis=0)
        _attr(
            mesh,
            "extent",
            T.Float3Array,
            Vt.Vec3fArray([Gf.Vec3f(*lo.tolist()), Gf.Vec3f(*hi.tolist())]),
        )
        _attr(mesh, "subdivisionScheme", T.Token, "none", uniform=True)
        if colour is not None:
            self._colour(mesh, colour)
        return str(proto.path)

    def _rail(self, world: Any) -> None:
        from twin.scene.export import RAIL_DEPTH, RAIL_WIDTH

        Sdf = self.Sdf
        group = Sdf.PrimSpec(world, "Rail", Sdf.SpecifierDef, "Xform")
        proto = self._box(
            ("rail",), "rail_beam", (0.0, -0.5, -1.0), (1.0, 0.5, 0.0), COLOURS["rail"]
        )
        names: set[str] = set()
        for seg in self.scene.segments.values():
            a = self.scene.world_position(seg.start)
            b = self.scene.world_position(seg.end)
            d = b - a
            length = float(np.linalg.norm(d[:2]))
            if length <= 0:
                continue
            # a unit beam (x 0..1, top face at z 0) stretched along the segment, below the rail
            beam = translation(*a, yaw=math.atan2(d[1], d[0])) @ np.diag(
                [length, RAIL_WIDTH, RAIL_DEPTH, 1.0]
            )
            prim = Sdf.PrimSpec(
                group, _unique(_identifier(seg.id), names), Sdf.SpecifierDef, "Xform"
            )
            self._xform(prim, beam)
            _attr(prim, "twin:id", self.T.String, _text(seg.id), custom=True)
            _attr(prim, "twin:kind", self.T.String, "rail_segment", custom=True)
            prim.instanceable = True
            prim.referenceList.Prepend(Sdf.Reference("", proto))

    def _xform(self, prim: Any, matrix: np.ndarray) -> Any:
        a = _attr(prim, "xformOp:transform", self.T.Matrix4d, _matrix(self.Gf, matrix))
        _attr(prim, "xformOpOrder", self.T.TokenArray, self.order, uniform=True)
        return a

    def _attrs(self, prim: Any, node: Node) -> None:
        for key in ATTRS:
            value = getattr(node, key)
            if value is not None:
                _attr(prim, f"twin:{key}", self.T.String, _text(value), custom=True)

    def _colour(self, prim: Any, rgb: tuple[float, float, float]) -> Any:
        a = _attr(
            prim,
            "primvars:displayColor",
            self.T.Color3fArray,
            self.Vt.Vec3fArray([self.Gf.Vec3f(*rgb)]),
        )
        a.SetInfo("interpolation", "constant")
        return a

    # ---------------------------------------------------------------- animation
    def _animate(self) -> None:
        anim, layer, T = self.anim, self.layer, self.T
        assert anim is not None
        for vid, poses in anim.poses.items():
            path = self.prim_of.get(vid)
            if path is not None:
                self._poses(layer.GetPrimAtPath(path), vid, poses)
        for table, name in ((anim.vehicle_states, "twin:state"), (anim.carriers, "twin:carrier")):
            for vid, samples in table.items():
                path = self.prim_of.get(vid)
                if path is not None and samples:
                    attr = _attr(layer.GetPrimAtPath(path), name, T.String, None, custom=True)
                    self._strings(attr, samples)
        for vid, samples in anim.carriers.items():
            path = self.prim_of.get(vid)
            if path is not None and samples:
                self._step_colours(
                    layer.GetPrimAtPath(path),
                    {t: LOADED_COLOUR if c else COLOURS["vehicle"] for t, c in samples.items()},
                    COLOURS["vehicle"],
                )
        from twin.physics.palette import state_colour

        for tid, samples in anim.tool_states.items():
            path = self.prim_of.get(tid)
            if path is None:
                continue
            spec = layer.GetPrimAtPath(path)
            self._strings(_attr(spec, "twin:state", T.String, None, custom=True), samples)
            geom = spec if spec.instanceable else spec.nameChildren.get("geometry")
            if geom is None:
                continue
            kind = self.scene.node(tid).kind
            default = COLOURS.get(kind, COLOURS["tool"])
            colours = {t: state_colour(s)[:3] if s in _E10 else default for t, s in samples.items()}
            self._step_colours(geom, colours, default)

    def _strings(self, attr: Any, samples: dict[float, str]) -> None:
        """Time-sampled text; "" (unknown, or no carrier) from code 0 up to the first sample,
        which players would otherwise hold backwards."""
        t0 = self.anim.origin  # type: ignore[union-attr]
        if min(samples) > t0:
            self.layer.SetTimeSample(attr.path, 0.0, "")
        for t, value in samples.items():
            self.layer.SetTimeSample(attr.path, t - t0, _text(value))

    def _poses(self, spec: Any, vid: str, poses: dict[float, np.ndarray]) -> None:
        """Time-sampled pose of a vehicle. Poses that only turn about Z (every rail pose) become
        ``xformOp:translate`` + ``xformOp:rotateZ`` (degrees, unwrapped), so that players
        interpolate a turn as a turn; any other pose is sampled as ``xformOp:transform``."""
        layer, t0, Gf, Vt, T = self.layer, self.anim.origin, self.Gf, self.Vt, self.T  # type: ignore[union-attr]
        samples = [] if t0 in poses else [(0.0, self.scene.node(vid).transform)]
        samples += [(t - t0, m) for t, m in sorted(poses.items())]
        if not all(_turns_about_z(m) for _, m in samples):
            attr = spec.attributes["xformOp:transform"]
            for code, m in samples:
                layer.SetTimeSample(attr.path, code, _matrix(Gf, m))
            return
        spec.RemoveProperty(spec.attributes["xformOp:transform"])
        base = self.scene.node(vid).transform
        move = _attr(spec, "xformOp:translate", T.Double3, Gf.Vec3d(*base[:3, 3].tolist()))
        turn = _attr(spec, "xformOp:rotateZ", T.Double, math.degrees(_yaw(base)))
        spec.attributes["xformOpOrder"].default = Vt.TokenArray(
            ["xformOp:translate", "xformOp:rotateZ"]
        )
        previous = None
        for code, m in samples:
            yaw = math.degrees(_yaw(m))
            if previous is not None:  # the turn closest to the last one: no spin through 360
                yaw = previous + ((yaw - previous + 180.0) % 360.0 - 180.0)
            layer.SetTimeSample(move.path, code, Gf.Vec3d(*m[:3, 3].tolist()))
            layer.SetTimeSample(turn.path, code, yaw)
            previous = yaw

    def _step_colours(self, spec: Any, colours: dict[float, tuple], default: tuple) -> None:
        """Time-sampled displayColor that steps at each change (a sample ``HOLD`` s before
        holds the old colour, so players do not blend colours over the interval)."""
        layer, t0, Vt, Gf = self.layer, self.anim.origin, self.Vt, self.Gf  # type: ignore[union-attr]
        attr = spec.attributes.get("primvars:displayColor") or self._colour(spec, default)
        previous, prev_t = default, None
        for t, rgb in sorted(colours.items()):
            code = t - t0
            if prev_t is None and code > 0:
                layer.SetTimeSample(attr.path, 0.0, Vt.Vec3fArray([Gf.Vec3f(*previous)]))
            if prev_t is not None and code - HOLD > prev_t:
                layer.SetTimeSample(attr.path, code - HOLD, Vt.Vec3fArray([Gf.Vec3f(*previous)]))
            layer.SetTimeSample(attr.path, code, Vt.Vec3fArray([Gf.Vec3f(*rgb)]))
            previous, prev_t = rgb, code


_E10 = frozenset(
    ("productive", "standby", "engineering", "scheduled_down", "unscheduled_down", "non_scheduled")
)


def _yaw(m: np.ndarray) -> float:
    return math.atan2(m[1, 0], m[0, 0])


def _turns_about_z(m: np.ndarray) -> bool:
    """A rigid 4×4 that rotates only about Z (and translates)."""
    c, s = math.cos(_yaw(m)), math.sin(_yaw(m))
    rz = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
    return bool(np.allclose(m[:3, :3], rz, atol=1e-9) and np.allclose(m[3], (0, 0, 0, 1)))


def _attr(
    prim: Any,
    name: str,
    type_name: Any,
    value: Any,
    *,
    uniform: bool = False,
    custom: bool = False,
) -> Any:
    Sdf = _sdf()
    variability = Sdf.VariabilityUniform if uniform else Sdf.VariabilityVarying
    attr = Sdf.AttributeSpec(prim, name, type_name, variability, declaresCustom=custom)
    if value is not None:
        attr.default = value
    return attr


@functools.cache
def _sdf() -> Any:
    from pxr import Sdf

    return Sdf


def _matrix(Gf: Any, m: np.ndarray) -> Any:
    """A twin 4×4 (column vectors) as Gf.Matrix4d (row vectors: the transpose)."""
    return Gf.Matrix4d(*np.asarray(m, dtype=float).T.reshape(-1).tolist())


def _text(value: Any) -> str:
    """A string usd-core can store: lone surrogates become backslash escapes."""
    s = str(value)
    try:
        s.encode("utf-8")
    except UnicodeEncodeError:
        s = s.encode("utf-8", "backslashreplace").decode("utf-8")
    return s


def _identifier(node_id: str) -> str:
    """A valid prim name for a node id (ASCII letters, digits, _; not starting with a digit)."""
    out = "".join(c if (c.isascii() and (c.isalnum() or c == "_")) else "_" for c in node_id)
    if not out or out[0].isdigit():
        out = "_" + out
    return out[:200]


def _unique(name: str, taken: set[str]) -> str:
    """``name``, or ``name_2``, ``name_3``... whichever is not in ``taken`` (then taken)."""
    out, i = name, 1
    while out in taken:
        i += 1
        out = f"{name}_{i}"
    taken.add(out)
    return out


def prim_paths(stage: Any) -> Iterator[tuple[str, Any]]:
    """(twin:id, prim) for every node prim of an opened stage (rail segments excluded)."""
    for prim in stage.Traverse():
        kind = prim.GetAttribute("twin:kind")
        if kind and kind.Get() != "rail_segment":
            yield prim.GetAttribute("twin:id").Get(), prim
