"""Generate the demo fab: ``python -m twin.scene.demo scenes/demo-fab``.

Two bays off an OHT loop. Each bay has an intrabay spur that leaves the loop's westbound lane,
runs north above the load ports of the east row of tools, crosses in front of the bay's stocker,
and comes back south above the west row. 30 tools in 8 families (batch diffusion furnaces and
lithography cells included), 2 stockers, 12 vehicles, and a process model in SMT2020 format
(:mod:`twin.scene.demo_process`) whose tool counts match the layout.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from twin.scene.assets import Z_UP_TO_Y_UP
from twin.scene.equipment import SHAPES
from twin.scene.yamlio import dump_yaml

RAIL_HEIGHT = 3.9  # m, above the tallest tool
AISLE = 1.8  # m from a bay's centre line to each rail line (the load ports sit under it)
SLOTS = 8  # tool slots per row
PITCH = 5.0  # m between slot centres along a bay
FIRST_SLOT = 8.0  # m, y of slot 0's centre
SPINE_EAST_Y, SPINE_WEST_Y = 0.0, 3.0  # m, the loop's two lanes
LOOP_X = (0.0, 33.0)  # m, where the lanes turn
TOP_Y = 47.5  # m, the crossing in front of the stocker
STRAIGHT_SPEED, CURVE_SPEED = 1.5, 0.8  # m/s
# Load-port centre of each shape in its own frame (y, negative = in front); the rail runs above.
PORT_Y = {
    "furnace": -2.475, "litho_cell": -2.975, "etcher": -2.225, "cvd": -2.225, "wet_bench": -1.325,
    "implanter": -2.425, "cmp": -2.225, "metrology": -1.125,
}  # fmt: skip
PORT_X = {  # x of each load port in the shape's frame (see equipment._load_ports)
    "furnace": [-0.6, 0.6], "litho_cell": [-1.2, 0.0, 1.2], "etcher": [-1.2, 0.0, 1.2],
    "cvd": [-1.2, 0.0, 1.2], "wet_bench": [-0.6, 0.6], "implanter": [-0.6, 0.6],
    "cmp": [-0.6, 0.6], "metrology": [0.0],
}  # fmt: skip
# family, area, asset for each tool prefix
FAMILIES = {
    "DIF": ("Diffusion_FE_1", "Diffusion", "furnace"),
    "TF": ("TF_FE_2", "TF", "cvd"),
    "LITH": ("Litho_FE_3", "Litho", "litho_cell"),
    "MET": ("DefMet_FE_4", "Def_Met", "metrology"),
    "WET": ("WE_FE_5", "Wet_Etch", "wet_bench"),
    "ETCH": ("DE_FE_6", "Dry_Etch", "etcher"),
    "IMP": ("Implant_FE_7", "Implant", "implanter"),
    "CMP": ("Planar_FE_8", "Planar", "cmp"),
}
# bay id -> (centre x, east row, west row); a row lists tool ids by slot (None = free slot)
BAYS: dict[str, tuple[float, list[str | None], list[str | None]]] = {
    "BAY1": (
        8.0,
        ["DIF01", "DIF02", "DIF03", "DIF04", "DIF05", "LITH01", "LITH02", "LITH03"],
        ["TF01", "TF02", "TF03", "TF04", "MET01", "MET02", None, None],
    ),
    "BAY2": (
        24.0,
        ["ETCH01", "ETCH02", "ETCH03", "ETCH04", "IMP01", "IMP02", "IMP03", "IMP04"],
        ["WET01", "WET02", "WET03", "WET04", "CMP01", "CMP02", "CMP03", "MET03"],
    ),
}
VEHICLE_TYPE = {  # the SMAT2022 OHT (VehicleType OHTV0), in SI units
    "length": 0.784, "max_speed": 1.5, "acceleration": 2.0, "deceleration": 3.0, "min_distance": 0.125,
}  # fmt: skip


def family_of(tool_id: str) -> tuple[str, str, str]:
    """(family, area, asset) of a demo tool id such as ``LITH02``."""
    return FAMILIES[tool_id.rstrip("0123456789")]


def tool_counts() -> dict[str, int]:
    """Tools per family in the demo layout (the process model's STNQTY must match)."""
    counts: dict[str, int] = {}
    for _, east, west in BAYS.values():
        for tid in east + west:
            if tid is not None:
                fam = family_of(tid)[0]
                counts[fam] = counts.get(fam, 0) + 1
    return counts


def _slot_y(k: int) -> float:
    return FIRST_SLOT + PITCH * k


def _boundary_y(k: int) -> float:
    return FIRST_SLOT - PITCH / 2 + PITCH * k  # k = 0..SLOTS


def build_layout() -> dict[str, Any]:
    """The scene.yaml document of the demo fab (metres, degrees)."""
    nodes: dict[str, list[float]] = {}
    segs: list[dict[str, Any]] = []

    def seg(a: str, b: str, *, curve: bool = False, bay: str | None = None) -> str:
        sid = f"{a}-{b}"
        entry = {
            "id": sid,
            "from": a,
            "to": b,
            "max_speed": CURVE_SPEED if curve else STRAIGHT_SPEED,
            "curve": curve,
        }
        segs.append(entry | ({"bay": bay} if bay else {}))
        return sid

    # the loop: eastbound lane, east turn, westbound lane (with the bay branch/merge nodes), west turn
    x0, x1 = LOOP_X
    east_xs = [x0, 8.0, 16.0, 24.0, x1]
    for i, x in enumerate(east_xs):
        nodes[f"LE{i}"] = [x, SPINE_EAST_Y]
    nodes["TURN_E"] = [x1 + 1.5, (SPINE_EAST_Y + SPINE_WEST_Y) / 2]
    nodes["TURN_W"] = [x0 - 1.5, (SPINE_EAST_Y + SPINE_WEST_Y) / 2]
    west_stops = [(x1, "LW_E")]
    for bay, (cx, _, _) in sorted(BAYS.items(), key=lambda kv: -kv[1][0]):
        west_stops += [(cx + AISLE, f"{bay}_IN"), (cx - AISLE, f"{bay}_OUT")]
    west_stops.append((x0, "LW_W"))
    for x, name in west_stops:
        nodes[name] = [x, SPINE_WEST_Y]
    for a, b in zip(east_xs, east_xs[1:]):
        seg(f"LE{east_xs.index(a)}", f"LE{east_xs.index(b)}", bay="LOOP")
    seg(f"LE{len(east_xs) - 1}", "TURN_E", curve=True, bay="LOOP")
    seg("TURN_E", "LW_E", curve=True, bay="LOOP")
    for (_, a), (_, b) in zip(west_stops, west_stops[1:]):
        seg(a, b, bay="LOOP")
    seg("LW_W", "TURN_W", curve=True, bay="LOOP")
    seg("TURN_W", "LE0", curve=True, bay="LOOP")

    bays, tools, stockers, ports, vehicles = [], [], [], [], []
    for bay, (cx, east, west) in BAYS.items():
        ex, wx = cx + AISLE, cx - AISLE
        bays.append(
            {"id": bay, "at": [cx, 0.0], "attrs": {"extent": [15.0, 52.0], "type": "INTRABAY"}}
        )
        up = [f"{bay}_IN"] + [f"{bay}_E{k}" for k in range(SLOTS + 1)]
        down = [f"{bay}_W{k}" for k in range(SLOTS, -1, -1)] + [f"{bay}_OUT"]
        for k in range(SLOTS + 1):
            nodes[f"{bay}_E{k}"] = [ex, _boundary_y(k)]
            nodes[f"{bay}_W{k}"] = [wx, _boundary_y(k)]
        nodes[f"{bay}_TE"], nodes[f"{bay}_TW"] = [cx + 1.0, TOP_Y], [cx - 1.0, TOP_Y]
        north = [seg(a, b, bay=bay) for a, b in zip(up, up[1:])]  # north[k + 1] passes slot k
        seg(up[-1], f"{bay}_TE", curve=True, bay=bay)
        top = seg(f"{bay}_TE", f"{bay}_TW", bay=bay)
        seg(f"{bay}_TW", down[0], curve=True, bay=bay)
        south = [
            seg(a, b, bay=bay) for a, b in zip(down, down[1:])
        ]  # south[SLOTS-1-k] passes slot k
        for side, row in (("east", east), ("west", west)):
            for k, tid in enumerate(row):
                if tid is None:
                    continue
                family, area, asset = family_of(tid)
                depth = -PORT_Y[asset]  # the tool's centre sits this far behind the rail line
                if side == "east":
                    at, yaw, sid = [AISLE + depth, _slot_y(k)], -90.0, north[k + 1]
                    offsets = [_slot_y(k) - x - _boundary_y(k) for x in PORT_X[asset]]
                else:
                    at, yaw, sid = [-AISLE - depth, _slot_y(k)], 90.0, south[SLOTS - 1 - k]
                    offsets = [_boundary_y(k + 1) - (_slot_y(k) + x) for x in PORT_X[asset]]
                tools.append(
                    {
                        "id": tid,
                        "family": family,
                        "area": area,
                        "bay": bay,
                        "asset": asset,
                        "at": at,
                        "yaw": yaw,
                    }
                )
                for j, off in enumerate(sorted(offsets)):
                    ports.append(
                        {
                            "id": f"{tid}_P{j + 1}",
                            "tool": tid,
                            "segment": sid,
                            "offset": round(off, 6),
                        }
                    )
        stk = f"STK_{bay}"
        stockers.append(
            {"id": stk, "bay": bay, "asset": "stocker", "at": [0.0, TOP_Y + 1.75], "yaw": 0.0}
        )
        ports += [
            {
                "id": f"{stk}_IN",
                "tool": stk,
                "segment": top,
                "offset": 0.5,
                "attrs": {"port_type": "stocker_in"},
            },
            {
                "id": f"{stk}_OUT",
                "tool": stk,
                "segment": top,
                "offset": 1.5,
                "attrs": {"port_type": "stocker_out"},
            },
        ]
        # four vehicles per bay: two on each row, mid-segment, away from each other
        for j, s in enumerate((north[2], north[6], south[1], south[5])):
            vehicles.append(
                {"id": f"OHT_{bay}_{j + 1}", "type": "OHT", "segment": s, "offset": 2.5}
            )
    for j, s in enumerate(("LE0-LE1", "LE2-LE3", "LW_E-BAY2_IN", "BAY1_OUT-LW_W")):
        vehicles.append({"id": f"OHT_LOOP_{j + 1}", "type": "OHT", "segment": s, "offset": 1.0})

    return {
        "format": "twin-scene/1",
        "name": "demo-fab",
        "units": "m",
        "process": "process",
        "metadata": {
            "description": "Demo fab: two bays, 30 tools in 8 families, OHT loop with bay spurs",
            "generator": "python -m twin.scene.demo",
        },
        "assets": {name: {"file": f"assets/{name}.glb", "unit": "m", "up": "y"} for name in SHAPES},
        "vehicle_types": {"OHT": dict(VEHICLE_TYPE)},
        "rail": {"height": RAIL_HEIGHT, "nodes": nodes, "segments": segs},
        "bays": bays,
        "tools": tools,
        "stockers": stockers,
        "ports": ports,
        "vehicles": vehicles,
    }


def write_assets(folder: Path) -> list[Path]:
    """Write every equipment shape as a GLB (glTF is Y-up, so the Z-up mesh is turned)."""
    (folder / "assets").mkdir(parents=True, exist_ok=True)
    out = []
    for name, make in SHAPES.items():
        mesh = make()
        mesh.apply_transform(Z_UP_TO_Y_UP)
        path = folder / "assets" / f"{name}.glb"
        mesh.export(path, file_type="glb")
        out.append(path)
    return out


def generate(folder: str | Path) -> Path:
    """Write the whole demo fab (scene.yaml, assets/, process/) into ``folder``."""
    from twin.scene.demo_process import write_process

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    write_assets(folder)
    doc = build_layout()
    header = "# Generated by `python -m twin.scene.demo`; edit the generator, not this file.\n"
    (folder / "scene.yaml").write_text(header + dump_yaml(doc), encoding="utf-8")
    write_process(folder / "process", tool_counts())
    return folder / "scene.yaml"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m twin.scene.demo", description=__doc__.splitlines()[0]
    )
    parser.add_argument("folder", nargs="?", default="scenes/demo-fab", help="output scene folder")
    args = parser.parse_args(argv)
    path = generate(args.folder)
    print(f"wrote {path} (+ assets/, process/)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
