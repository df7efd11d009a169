"""OpenUSD export: the stage read back with pxr matches the scene graph and the event log."""

from __future__ import annotations

import math

import numpy as np
import pytest

pxr = pytest.importorskip("pxr", reason="usd-core is not installed (pip install 'twin[usd]')")
from pxr import Gf, Usd, UsdGeom  # noqa: E402

from twin.cli import main  # noqa: E402
from twin.datasets import PROJECT_ROOT  # noqa: E402
from twin.errors import InputError, UnsupportedFormatError  # noqa: E402
from twin.live.events import format_time, make_event  # noqa: E402
from twin.live.store import MemoryStore, SQLiteStore  # noqa: E402
from twin.physics.palette import state_colour  # noqa: E402
from twin.scene.graph import Node, SceneGraph, translation  # noqa: E402
from twin.scene.load import load_scene  # noqa: E402
from twin.scene.usd import (  # noqa: E402
    MAX_SPAN,
    animation_from_store,
    export_usd,
    prim_paths,
)

DEMO = PROJECT_ROOT / "scenes" / "demo-fab"


@pytest.fixture(scope="module")
def scene():
    return load_scene(DEMO)


@pytest.fixture(scope="module")
def stage(scene, tmp_path_factory):
    path = export_usd(scene, tmp_path_factory.mktemp("usd") / "demo.usda")
    return Usd.Stage.Open(str(path))


@pytest.fixture(scope="module")
def events():
    """About 50 minutes of the demo fab from the emulator (vehicles moving, tools changing)."""
    from twin.emulator.emulator import load_emulator

    return list(load_emulator(str(DEMO), hours=2, seed=1).events())


@pytest.fixture(scope="module")
def store_path(events, tmp_path_factory):
    path = tmp_path_factory.mktemp("store") / "events.db"
    with SQLiteStore(path) as store:
        store.write(events)
    return path


@pytest.fixture(scope="module")
def animated(scene, store_path, tmp_path_factory):
    out = tmp_path_factory.mktemp("anim") / "anim.usdc"
    assert main(["scene", "export", str(DEMO), str(out), "--animate", str(store_path)]) == 0
    return Usd.Stage.Open(str(out))


def _world(prim, time=Usd.TimeCode.Default()) -> np.ndarray:
    """The prim's local-to-world matrix in the twin's convention (column vectors)."""
    m = UsdGeom.Xformable(prim).ComputeLocalToWorldTransform(time)
    return np.array(m).T


def _colour(prim, time=Usd.TimeCode.Default()) -> tuple[float, ...]:
    geom = prim if prim.IsInstance() else prim.GetChild("geometry")
    value = UsdGeom.PrimvarsAPI(geom).GetPrimvar("displayColor").Get(time)
    return tuple(round(float(c), 5) for c in value[0])


def _errors(stage) -> list[str]:
    """What usdchecker reports as errors: every registered validator (usd-core 25+, which ships
    no usdchecker script), or the older UsdUtils ComplianceChecker."""
    try:
        from pxr import UsdValidation
    except ImportError:  # usd-core 24: the compliance checker usdchecker ran then
        from pxr.UsdUtils.complianceChecker import ComplianceChecker

        checker = ComplianceChecker()
        checker.CheckCompliance(stage.GetRootLayer().realPath)
        return list(checker.GetErrors()) + list(checker.GetFailedChecks())
    validators = UsdValidation.ValidationRegistry().GetOrLoadAllValidators()
    errors = UsdValidation.ValidationContext(validators).Validate(stage)
    kind = UsdValidation.ValidationErrorType.Error
    return [e.GetMessage() for e in errors if e.GetType() == kind]


def test_stage_declares_metres_and_z_up(stage):
    """The stage says metersPerUnit 1 and upAxis Z, and /World is its default prim."""
    assert UsdGeom.GetStageMetersPerUnit(stage) == 1.0
    assert UsdGeom.GetStageUpAxis(stage) == UsdGeom.Tokens.z
    assert stage.GetDefaultPrim().GetPath() == "/World"


def test_one_prim_per_scene_node_in_the_graphs_hierarchy(scene, stage):
    """Every scene node is exactly one prim, under the prim of its parent node."""
    prims = dict(prim_paths(stage))
    assert len(prims) == len(scene) and set(prims) == {n.id for n in scene}
    for node in scene:
        parent = prims[node.id].GetParent()
        if node.parent is None:
            assert parent.GetPath() == "/World"
        else:
            assert parent.GetAttribute("twin:id").Get() == node.parent


def test_world_transforms_match_to_a_micrometre(scene, stage):
    """Each node prim's world transform equals the scene graph's within 1e-6 m."""
    for nid, prim in prim_paths(stage):
        np.testing.assert_allclose(_world(prim), scene.world_transform(nid), atol=1e-6)


def test_custom_attributes_carry_family_area_kind(scene, stage):
    """twin:kind, twin:family, twin:area and twin:bay are the node's fields (absent when None)."""
    tools = 0
    for nid, prim in prim_paths(stage):
        node = scene.node(nid)
        for key in ("kind", "family", "area", "bay"):
            attr = prim.GetAttribute(f"twin:{key}")
            assert (attr.Get() if attr else None) == getattr(node, key), (nid, key)
            assert not attr or attr.IsCustom()
        tools += node.kind == "tool" and node.family is not None
    assert tools == 30


def test_meshes_are_instanced_not_copied(scene, stage):
    """One prototype per asset and per kind/size of box; 30 tools, 2 stockers, 72 ports, 12
    vehicles and the rail segments are instances of them; the file holds one mesh per prototype."""
    layer = stage.GetRootLayer()
    meshes = []
    layer.Traverse(
        "/",
        lambda p: (
            meshes.append(p)
            if layer.GetPrimAtPath(p) and layer.GetPrimAtPath(p).typeName == "Mesh"
            else None
        ),
    )
    assert all(str(p).startswith("/Prototypes/") for p in meshes)
    digests = {a.digest for a in scene.assets.values()}
    assert len(meshes) == len(digests) + 3  # + the vehicle, port and rail beam boxes
    instances = [p for p in stage.Traverse() if p.IsInstance()]
    assert len(instances) == 32 + len(scene.ports) + 12 + len(scene.segments)
    assert len(stage.GetPrototypes()) == len(meshes)


def test_instance_geometry_bounds_match_the_scene(scene, stage):
    """Each tool's instanced geometry spans the scene graph's world bounding box (1e-5 m)."""
    cache = UsdGeom.BBoxCache(Usd.TimeCode.Default(), [UsdGeom.Tokens.default_])
    prims = dict(prim_paths(stage))
    for node in scene.nodes(("tool", "stocker")):
        box = cache.ComputeWorldBound(prims[node.id].GetChild("geometry")).ComputeAlignedRange()
        got = np.array([list(box.GetMin()), list(box.GetMax())])
        np.testing.assert_allclose(got, scene.bbox(node.id), atol=1e-5)


def test_validators_find_no_errors(stage):
    """usd-core's validators (what usdchecker runs) report no error on the exported stage."""
    assert _errors(stage) == []


@pytest.mark.parametrize("suffix", [".usdc", ".usdz"])
def test_binary_and_package_formats_hold_the_same_stage(scene, stage, tmp_path, suffix):
    """.usdc and .usdz hold the same node prims as .usda and pass the validators."""
    path = export_usd(scene, tmp_path / f"fab{suffix}")
    other = Usd.Stage.Open(str(path))
    assert sorted(i for i, _ in prim_paths(other)) == sorted(i for i, _ in prim_paths(stage))
    assert _errors(other) == []
    if suffix == ".usdz":
        assert path.read_bytes()[:2] == b"PK"


def test_unknown_suffix_names_the_supported_formats(scene, tmp_path):
    """Writing fab.obj through export_usd is refused with the formats it can write."""
    with pytest.raises(UnsupportedFormatError, match="usda, usdc, usdz"):
        export_usd(scene, tmp_path / "fab.obj")


def test_odd_ids_become_unique_valid_prim_names(tmp_path):
    """Ids with dashes, dots, digits first, non-ASCII or a lone surrogate become distinct
    valid prim names; twin:id keeps the id (a lone surrogate as a backslash escape)."""
    g = SceneGraph("odd")
    g.add(Node(id="fab", kind="fab"))
    ids = ["a-b", "a_b", "a.b", "1x", "é", "\ud800", "geometry", "World", ""]
    for i, nid in enumerate(ids):
        g.add(Node(id=nid, kind="tool", parent="fab", transform=translation(i, 0), size=(1, 1, 1)))
    stage = Usd.Stage.Open(str(export_usd(g, tmp_path / "odd.usda")))
    prims = dict(prim_paths(stage))
    assert set(prims) == {"fab", *ids[:5], "\\ud800", *ids[6:]}
    names = [p.GetName() for p in stage.GetPrimAtPath("/World/fab").GetChildren()]
    assert len(set(names)) == len(names) == len(ids)
    assert _errors(stage) == []


def test_deep_nesting_exports_without_recursion(tmp_path):
    """A chain of 400 nested groups exports (no recursion limit) and keeps its world offset."""
    g = SceneGraph("deep")
    parent = None
    for i in range(400):
        g.add(Node(id=f"g{i}", kind="group", parent=parent, transform=translation(0.01, 0, 0)))
        parent = f"g{i}"
    stage = Usd.Stage.Open(str(export_usd(g, tmp_path / "deep.usdc")))
    prims = dict(prim_paths(stage))
    assert len(prims) == 400
    np.testing.assert_allclose(_world(prims["g399"])[:3, 3], [4.0, 0, 0], atol=1e-9)


# ------------------------------------------------------------------------------ animation
def _expected_positions(events, since=-math.inf, until=math.inf):
    """(vehicle, time) -> (segment, offset) of the last position event at that time."""
    out = {}
    for ev in events:
        if ev.type == "vehicle.position" and since < ev.time <= until:
            out[(ev.subject, ev.time)] = (ev.data["segment"], ev.data["offset"])
    return out


def _pose(scene, seg_id, offset):
    seg = scene.segment(seg_id)
    a, b = scene.world_position(seg.start), scene.world_position(seg.end)
    return translation(
        *scene.point_on_segment(seg_id, offset), yaw=math.atan2(b[1] - a[1], b[0] - a[0])
    )


def test_animation_time_range_and_origin(animated, events):
    """Time code 0 is the first event, the end is the last, one code per second."""
    layer = animated.GetRootLayer()
    assert layer.customLayerData["twin:timeOrigin"] == format_time(events[0].time)
    assert animated.GetStartTimeCode() == 0.0
    assert animated.GetEndTimeCode() == pytest.approx(max(e.time for e in events) - events[0].time)
    assert animated.GetTimeCodesPerSecond() == 1.0


def test_vehicle_poses_follow_every_position_event(scene, animated, events):
    """At each vehicle.position event's time the vehicle's world pose is on its segment at its
    offset, facing along it (1e-6 m); and every such event has a sample."""
    prims = dict(prim_paths(animated))
    t0 = events[0].time
    expected = _expected_positions(events, since=t0)
    assert len(expected) > 100
    for (vid, t), (seg, off) in expected.items():
        got = _world(prims[vid], Usd.TimeCode(t - t0))
        np.testing.assert_allclose(got, _pose(scene, seg, off), atol=1e-6, err_msg=vid)
    moved = {vid for vid, _ in expected}
    for vid in moved:
        op = prims[vid].GetAttribute("xformOp:translate")
        codes = set(op.GetTimeSamples())
        assert {round(t - t0, 6) for v, t in expected if v == vid} <= {round(c, 6) for c in codes}


def test_turns_interpolate_as_turns(scene, animated):
    """Between two samples a vehicle stays rigid (no shrinking matrix blend) and yaw never
    jumps by more than 180 degrees between samples."""
    turning = 0
    for vid, prim in prim_paths(animated):
        if scene.node(vid).kind != "vehicle" or not prim.GetAttribute("twin:state"):
            continue
        turn = prim.GetAttribute("xformOp:rotateZ")
        codes = turn.GetTimeSamples()
        turning += len(set(turn.Get(c) for c in codes)) > 1
        yaws = [turn.Get(c) for c in codes]
        assert all(abs(b - a) <= 180.0 + 1e-9 for a, b in zip(yaws, yaws[1:]))
        for a, b in zip(codes, codes[1:]):
            m = _world(prim, Usd.TimeCode((a + b) / 2))[:3, :3]
            np.testing.assert_allclose(m @ m.T, np.eye(3), atol=1e-9)
    assert turning >= 3


def test_tool_states_and_colours_follow_the_log(scene, animated, events):
    """After each equipment.state event the tool's twin:state is that state and its colour the
    E10 colour; halfway to the next change the colour is still the old one (held, not blended)."""
    prims = dict(prim_paths(animated))
    t0 = events[0].time
    by_tool: dict[str, list] = {}
    for ev in events:
        if ev.type == "equipment.state":
            by_tool.setdefault(ev.subject, []).append((ev.time, ev.data["state"]))
    assert sum(len(v) for v in by_tool.values()) > 10
    for tid, changes in by_tool.items():
        prim = prims[tid]
        for i, (t, state) in enumerate(changes):
            code = Usd.TimeCode(t - t0)
            if i + 1 < len(changes) and changes[i + 1][0] == t:
                continue  # a later event at the same time wins
            assert prim.GetAttribute("twin:state").Get(code) == state
            want = tuple(round(c, 5) for c in state_colour(state)[:3])
            assert _colour(prim, code) == want
            if i + 1 < len(changes) and changes[i + 1][0] - t > 0.01:
                assert _colour(prim, Usd.TimeCode((t + changes[i + 1][0]) / 2 - t0)) == want


def test_loaded_vehicles_are_told_apart(animated, events):
    """Between picked_up and delivered a vehicle's twin:carrier names the carrier."""
    prims = dict(prim_paths(animated))
    t0 = events[0].time
    picks = [e for e in events if e.type == "carrier.picked_up"]
    assert picks
    for ev in picks:
        prim = prims[ev.data["vehicle"]]
        assert prim.GetAttribute("twin:carrier").Get(Usd.TimeCode(ev.time - t0)) == ev.subject


def test_animated_stage_passes_the_validators(animated):
    """The animated stage has no validator errors either."""
    assert _errors(animated) == []


def test_window_starts_from_the_state_at_from(scene, store_path, events, tmp_path):
    """With --from/--to, code 0 shows state_at(--from) and no sample lies outside the window."""
    times = sorted({e.time for e in events if e.type == "vehicle.position"})
    since, until = times[len(times) // 3], times[2 * len(times) // 3]
    out = tmp_path / "w.usda"
    argv = ["scene", "export", str(DEMO), str(out), "--animate", str(store_path)]
    argv += ["--from", format_time(since), "--to", repr(until)]
    assert main(argv) == 0
    stage = Usd.Stage.Open(str(out))
    assert stage.GetEndTimeCode() == pytest.approx(until - since)
    with SQLiteStore(store_path, readonly=True) as store:
        state = store.state_at(since)
    prims = dict(prim_paths(stage))
    checked = 0
    for vid, v in state.vehicles.items():
        if v.segment is not None:
            got = _world(prims[vid], Usd.TimeCode(0))
            np.testing.assert_allclose(got, _pose(scene, v.segment, v.offset), atol=1e-6)
            checked += 1
    assert checked
    for _, prim in prim_paths(stage):
        for attr in prim.GetAttributes():
            codes = attr.GetTimeSamples()
            assert all(-1e-9 <= c <= until - since + 1e-9 for c in codes), attr.GetPath()


def test_events_for_things_the_scene_lacks_are_skipped_and_counted(scene):
    """Position events of unknown vehicles or on unknown segments are counted, not drawn."""
    store = MemoryStore()
    seg = next(iter(scene.segments))
    store.write(
        [
            make_event(
                "amhs", 1, 100.0, "vehicle.position", "GHOST", segment=seg, offset=0.0, speed=1.0
            ),
            make_event(
                "amhs",
                2,
                101.0,
                "vehicle.position",
                "OHT_BAY1_1",
                segment="nowhere",
                offset=1.0,
                speed=1.0,
            ),
            make_event("mes", 1, 102.0, "equipment.state", "NO_TOOL", state="standby", reason=""),
        ]
    )
    anim = animation_from_store(scene, store, 99.0, 200.0)
    assert anim.events == 3 and sum(anim.skipped.values()) == 3 and not anim.poses


# ------------------------------------------------------------------------- hostile input
@pytest.mark.parametrize(
    "option, value, says",
    [
        ("--from", "yesterday", "is not ISO 8601"),
        ("--from", "\ud800", "is not ISO 8601"),
        ("--to", "1e300", "epoch seconds from 0"),
        ("--to", "nan", "epoch seconds from 0"),
        ("--from", "-5", "epoch seconds from 0"),
        ("--to", "inf", "epoch seconds from 0"),
        ("--from", "99999-01-01T00:00:00Z", "is not ISO 8601"),
        ("--to", "2026-01-01T00:00:00+02:00", "must be UTC"),
        ("--from", "9" * 5000, "epoch seconds from 0"),
    ],
)
def test_garbage_times_are_refused(store_path, tmp_path, capsys, option, value, says):
    """Unparseable, non-finite, negative, non-UTC or out-of-range times: exit 1, the option named."""
    argv = ["scene", "export", str(DEMO), str(tmp_path / "x.usda"), "--animate", str(store_path)]
    assert main([*argv, option, value]) == 1
    err = capsys.readouterr().err
    assert f"{option}:" in err and says in err and not (tmp_path / "x.usda").exists()


@pytest.mark.parametrize(
    "extra, says",
    [
        (["--from", "2026-01-02T00:00:00Z", "--to", "2026-01-01T00:00:00Z"], "is before --from"),
        (["--from", "0", "--to", str(MAX_SPAN + 1)], "at most 31 days"),
        (["--from", "0"], "more than 31 days after --from"),
    ],
)
def test_reversed_or_huge_windows_are_refused(store_path, tmp_path, capsys, extra, says):
    """A window ending before it starts, or longer than 31 days, is refused with the bound."""
    argv = ["scene", "export", str(DEMO), str(tmp_path / "x.usda"), "--animate", str(store_path)]
    assert main([*argv, *extra]) == 1
    assert says in capsys.readouterr().err


def test_sample_bound_is_enforced_and_named(scene, store_path):
    """A window needing more time samples than the bound is refused, naming the bound."""
    with SQLiteStore(store_path, readonly=True) as store:
        with pytest.raises(InputError, match="more than 50 time samples"):
            animation_from_store(scene, store, max_samples=50)


@pytest.mark.parametrize(
    "argv_tail, says",
    [
        (["x.glb", "--animate", "STORE"], "--animate needs a USD output"),
        (["x.usda", "--from", "0"], "give --animate too"),
        (["x.usda", "--animate", "missing.db"], "no such event store file"),
        (["x.obj"], "unsupported format 'obj'"),
        (["x.usda", "--animate", "NOTASTORE"], "event store"),
        (["x\ud800.usda"], "not a file name this system can use"),
        (["x.usda", "--animate", "s\ud800.db"], "not a file name this system can use"),
        (["x\udcff.usda"], "needs a file name that is valid UTF-8"),
    ],
)
def test_bad_option_combinations_are_refused(store_path, tmp_path, capsys, argv_tail, says):
    """--animate with .glb, --from without --animate, a missing or damaged store, an unknown
    suffix: exit 1 with a message that says what would be accepted."""
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"\x00garbage" * 100)
    tail = [
        str(store_path) if a == "STORE" else str(junk) if a == "NOTASTORE" else a for a in argv_tail
    ]
    tail[0] = str(tmp_path / tail[0])
    assert main(["scene", "export", str(DEMO), *tail]) == 1
    assert says in capsys.readouterr().err


def test_states_before_the_first_sample_are_unknown(scene, tmp_path):
    """Before a tool's or vehicle's first event its twin:state is "" (unknown): players would
    otherwise hold the first sample backwards and show a state from the future."""
    store = MemoryStore()
    store.write(
        [
            make_event("mes", 1, 100.0, "equipment.state", "LITH01", state="productive", reason=""),
            make_event("amhs", 1, 120.0, "vehicle.state", "OHT_BAY1_1", state="moving"),
        ]
    )
    anim = animation_from_store(scene, store, 50.0, 200.0)
    stage = Usd.Stage.Open(str(export_usd(scene, tmp_path / "a.usda", animation=anim)))
    prims = dict(prim_paths(stage))
    tool, vehicle = (
        prims["LITH01"].GetAttribute("twin:state"),
        prims["OHT_BAY1_1"].GetAttribute("twin:state"),
    )
    assert [tool.Get(c) for c in (0, 49, 50, 150)] == ["", "", "productive", "productive"]
    assert [vehicle.Get(c) for c in (0, 69, 70)] == ["", "", "moving"]
    assert _colour(prims["LITH01"], Usd.TimeCode(49)) != _colour(prims["LITH01"], Usd.TimeCode(50))


def test_empty_store_is_refused(scene):
    """Animating from a store with no events says so."""
    with pytest.raises(InputError, match="holds no events"):
        animation_from_store(scene, MemoryStore())


@pytest.mark.slow
def test_smat2022_exports_with_every_node(smat_xlsx, tmp_path):
    """The SMAT2022 fab (26,638 nodes) exports as .usdc with one prim per node and no
    validator errors."""
    scene = load_scene(smat_xlsx)
    stage = Usd.Stage.Open(str(export_usd(scene, tmp_path / "smat.usdc")))
    assert sum(1 for _ in prim_paths(stage)) == len(scene) == 26638
    assert _errors(stage) == []
    assert Gf.IsClose(UsdGeom.GetStageMetersPerUnit(stage), 1.0, 1e-12)
