"""SMAT2022 import: the workbook's own counts, ports on their rails, shortest paths, bad workbooks."""

from __future__ import annotations

import gc
import random

import numpy as np
import openpyxl
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import dijkstra

from twin.errors import InputError
from twin.scene import smat2022
from twin.scene.graph import translation
from twin.scene.smat2022 import SHEETS, build_scene, import_smat2022


@pytest.fixture(scope="module")
def smat(smat_xlsx):
    return import_smat2022(smat_xlsx)


@pytest.fixture(scope="module")
def raw(smat_xlsx):
    """The workbook's rows read directly (no importer code): address coordinates and rails."""
    wb = openpyxl.load_workbook(smat_xlsx, read_only=True)
    address = {r[0]: (r[2], r[3]) for r in wb["Address"].iter_rows(min_row=2, values_only=True)}
    rails = [(r[0], r[3], r[4]) for r in wb["Rail"].iter_rows(min_row=2, values_only=True)]
    wb.close()
    return address, rails


def plain_sheets(sheets: dict[str, list[tuple]]) -> dict[str, list[tuple[int, dict]]]:
    """The needed sheets' rows from openpyxl's own rows (no twin.scene.xlsx), as read_sheets gives."""
    out = {}
    for sheet, cols in SHEETS.items():
        header, *rows = sheets[sheet]
        idx = {c: [str(h).strip() if h is not None else "" for h in header].index(c) for c in cols}
        out[sheet] = [
            (n, {c: r[i] for c, i in idx.items()})
            for n, r in enumerate(rows, start=2)
            if r[idx[cols[0]]] is not None
        ]
    return out


def scene_facts(scene) -> dict:
    """Everything an import sets: nodes with exact transforms, rail graph, ports, metadata."""
    return {
        "nodes": [
            (n.id, n.kind, n.parent, n.family, n.area, n.bay, n.asset, n.size, n.attrs)
            for n in scene
        ],
        "transforms": [n.transform.tobytes() for n in scene],
        "children": {n.id: scene.children(n.id) for n in scene},
        "segments": scene.segments,
        "ports": scene.ports,
        "rail": (list(scene.rail.nodes), list(scene.rail.edges(data=True))),
        "vehicle_types": scene.vehicle_types,
        "metadata": scene.metadata,
    }


def test_fast_reader_builds_the_scene_openpyxl_rows_build(smat_xlsx, smat, smat_openpyxl_rows):
    """The import equals the scene built from openpyxl's own rows, transform bytes included."""
    plain = build_scene(plain_sheets(smat_openpyxl_rows), name=smat.name, source=smat_xlsx.name)
    assert scene_facts(smat) == scene_facts(plain)


finite = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False)
angle = st.one_of(st.just(0.0), st.just(-0.0), st.floats(min_value=-4.0, max_value=4.0))


@given(st.lists(st.tuples(finite, finite, finite, angle), max_size=20))
def test_block_transforms_are_translation_bit_for_bit(poses):
    """smat2022.transforms(poses)[i] has the bytes of translation(*poses[i]), -0.0 included."""
    block = smat2022.transforms(poses)
    assert block.shape == (len(poses), 4, 4)
    for got, pose in zip(block, poses):
        assert got.tobytes() == translation(*pose).tobytes()


def test_counts_match_the_workbook(smat):
    """2,858 rail nodes, 3,424 segments, 1,116 equipment, 22,120 ports, 500 vehicles, 43 bays."""
    s = smat.summary()
    assert (s["rail_nodes"], s["rail_segments"], s["ports"], s["vehicles"], s["bays"]) == (
        2858,
        3424,
        22120,
        500,
        43,
    )
    equipment = smat.nodes(("tool", "stocker", "station"))
    assert len(equipment) == 1116
    assert s["stockers"] == 40 and len(smat.nodes("station")) == 8 and s["tools"] == 1068


def test_units_are_metres(smat, raw):
    """Rail node positions are the workbook's millimetres divided by 1000."""
    address, _ = raw
    for name in list(address)[:50]:
        np.testing.assert_allclose(
            smat.world_position(name)[:2], np.array(address[name]) / 1000.0, rtol=1e-12
        )
    assert smat.vehicle_types["OHTV0"] == pytest.approx(
        {
            "length": 0.784,
            "max_speed": 1.5,
            "acceleration": 2.0,
            "deceleration": 3.0,
            "min_distance": 0.125,
        }
    )


def test_every_port_lies_on_its_segment(smat):
    """Each port's world position projects onto its segment at its offset (within 1 mm)."""
    for link in smat.ports.values():
        seg = smat.segments[link.segment]
        a, b = smat.world_position(seg.start)[:2], smat.world_position(seg.end)[:2]
        p = smat.world_position(link.port)[:2]
        along = float(np.dot(p - a, b - a) / np.linalg.norm(b - a))
        d, q = b - a, p - a
        across = float(abs(d[0] * q[1] - d[1] * q[0]) / np.linalg.norm(d))
        assert abs(along - link.offset) < 1e-3 and across < 1e-3, link
        assert 0 <= link.offset <= seg.length + 1e-9


def test_equipment_ports_belong_to_their_tool(smat):
    """Every equipment port lies within 2.5 m of its tool's footprint (the rail runs beside it)."""
    served = 0
    for link in smat.ports.values():
        if link.tool is None:
            continue
        box = smat.bbox(link.tool)[:, :2]
        p = smat.world_position(link.port)[:2]
        gap = np.linalg.norm(np.maximum(np.maximum(box[0] - p, p - box[1]), 0.0))
        assert gap < 2.5, (link, gap)
        served += 1
    assert served == 4360  # EQPPort + COMMIT + COMPLETE rows


def test_shortest_paths_agree_with_coordinates(smat, raw):
    """Rail shortest paths equal Dijkstra over the workbook's own coordinates (scipy, no networkx)."""
    address, rails = raw
    names = sorted(address)
    index = {n: i for i, n in enumerate(names)}
    rows = [index[a] for _, a, _ in rails]
    cols = [index[b] for _, _, b in rails]
    w = [
        np.hypot(address[a][0] - address[b][0], address[a][1] - address[b][1]) / 1000
        for _, a, b in rails
    ]
    dist = dijkstra(
        csr_matrix((w, (rows, cols)), shape=(len(names), len(names))),
        indices=list(range(0, len(names), 97)),
    )
    rng = random.Random(7)
    checked = 0
    for k, src in enumerate(range(0, len(names), 97)):
        for dst in rng.sample(range(len(names)), 5):
            if not np.isfinite(dist[k, dst]) or src == dst:
                continue
            path = smat.rail_path(names[src], names[dst])
            assert path.length == pytest.approx(dist[k, dst], rel=1e-9, abs=1e-9)
            again = sum(
                smat.segment_between(a, b).length for a, b in zip(path.nodes, path.nodes[1:])
            )
            assert again == pytest.approx(path.length)
            checked += 1
    assert checked > 100


def test_vehicles_start_on_their_rails(smat):
    """Every vehicle sits at its segment and offset, at the rail height."""
    for v in smat.nodes("vehicle"):
        expected = smat.point_on_segment(v.attrs["segment"], v.attrs["offset"])
        np.testing.assert_allclose(smat.world_position(v.id), expected, atol=1e-9)


def _workbook(path, drop_sheet=None, drop_col=None, rail_row=None, extra=()):
    wb = openpyxl.Workbook()
    wb.remove(wb.active)
    for sheet, cols in SHEETS.items():
        if sheet == drop_sheet:
            continue
        ws = wb.create_sheet(sheet)
        ws.append([c for c in cols if (sheet, c) != drop_col])
    ws = wb["Address"]
    ws.append(["n1", 0, 0, "z", "NONE"])
    ws.append(["n2", 1000, 0, "z", "NONE"])
    wb["Rail"].append(rail_row or ["r1", "B", "n1", "n2", 1, 0])
    wb["Bay"].append(["B", "INTRABAY", 0, ""])
    wb["VehicleType"].append(["V", 784, 1500, 2000, 3000, 125])
    for sheet, row in extra:
        wb[sheet].append(row)
    wb.save(path)
    return path


def test_tiny_valid_workbook_imports(tmp_path):
    """A minimal workbook with every sheet imports with a 1 m segment."""
    scene = import_smat2022(_workbook(tmp_path / "ok.xlsx"))
    assert scene.segment("r1").length == pytest.approx(1.0)
    assert scene.segment("r1").max_speed == pytest.approx(1.5)


@pytest.mark.parametrize("enabled", [True, False])
def test_import_pauses_the_garbage_collector_and_restores_it(tmp_path, monkeypatch, enabled):
    """The cyclic GC is off while the scene is built and as it was before once the import ends,
    also when the import fails."""
    seen = []
    real = smat2022.build_scene
    monkeypatch.setattr(
        smat2022, "build_scene", lambda *a, **k: seen.append(gc.isenabled()) or real(*a, **k)
    )
    was = gc.isenabled()
    try:
        gc.enable() if enabled else gc.disable()
        import_smat2022(_workbook(tmp_path / "ok.xlsx"))
        assert seen == [False] and gc.isenabled() is enabled
        bad = _workbook(tmp_path / "bad.xlsx", rail_row=["r1", "B", "n1", "n9", 1, 0])
        with pytest.raises(InputError):
            import_smat2022(bad)
        assert seen == [False, False] and gc.isenabled() is enabled
    finally:
        gc.enable() if was else gc.disable()


def test_ports_and_vehicles_beyond_their_rail_are_listed(tmp_path):
    """A port or a vehicle further along than its 1 m rail, or on an unknown rail, is reported."""
    extra = [
        ("Port", ["p1", "BUF", ",", "r1", 1500]),
        ("Port", ["p2", "BUF", ",", "r9", 10]),
        ("Vehicle", ["v1", "V", "r1", 2000]),
        ("Vehicle", ["v2", "W", "r1", 10]),
    ]
    with pytest.raises(InputError) as err:
        import_smat2022(_workbook(tmp_path / "far.xlsx", extra=extra))
    problems = err.value.problems
    assert "Port row 2 (p1): DISTANCE 1500 mm is beyond rail r1 (1000 mm)" in problems
    assert "Port row 3 (p2): RAILLINE_NAME 'r9' is not a Rail NAME" in problems
    assert "Vehicle row 2 (v1): DISTANCE 2000 mm is beyond rail r1 (1000 mm)" in problems
    assert any(
        p.startswith("Vehicle row 3 (v2): TYPE 'W' is not a VehicleType NAME") for p in problems
    )


def test_missing_sheet_and_column_are_listed(tmp_path):
    """A missing sheet and a missing column are each named, with the columns that are needed."""
    with pytest.raises(InputError) as err:
        import_smat2022(
            _workbook(tmp_path / "bad.xlsx", drop_sheet="Port", drop_col=("Rail", "TO_NODE"))
        )
    text = str(err.value)
    assert "missing sheet 'Port'" in text and "EQP_NAME" in text
    assert "sheet 'Rail' row 1: missing column TO_NODE" in text


def test_bad_rows_are_listed_with_sheet_and_row(tmp_path):
    """A rail naming an unknown node and a non-numeric speed are reported with their row."""
    with pytest.raises(InputError) as err:
        import_smat2022(
            _workbook(tmp_path / "bad.xlsx", rail_row=["r1", "B", "n1", "n9", "fast", 0])
        )
    text = str(err.value)
    assert "Rail row 2 (r1): TO_NODE names unknown Address 'n9'" in text
    assert "Rail row 2 (r1): MAX_SPEED must be a finite number, got 'fast'" in text


def test_corrupt_workbook_names_the_file(tmp_path):
    """A file that is not an .xlsx raises InputError naming it."""
    bad = tmp_path / "junk.xlsx"
    bad.write_bytes(b"PK not really")
    with pytest.raises(InputError, match="junk.xlsx"):
        import_smat2022(bad)
