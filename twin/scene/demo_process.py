"""The demo fab's process model, written in the SMT2020 file format (tab-separated, as HVLM).

Two products share one layer recipe: clean → diffusion (batch furnace) → deposition → litho →
metrology → etch → implant (setup per layer) → clean → CMP → metrology. Product A makes three
layers (30 steps), product B two (20 steps): re-entrant flows through the same families.
Releases (one A and one B lot every 144 min, a hot A lot every 2 days) load the lithography
cells, the bottleneck, to about 86 % busy before breakdowns and PMs (see
:func:`twin.scene.consistency.offered_load`).
"""

from __future__ import annotations

from pathlib import Path

EPOCH = "01/01/18 00:00:00"  # SMT2020 date format mm/dd/yy
ACTLIST = "Custom_actlist_ASISemiOpersDuringSetupAndAdditionalLoadUnload"
# family -> (area, rule, wake rank, batch criterion, setup group)
TOOLS = {
    "Diffusion_FE_1": ("Diffusion", "rule_HotLotFIRST", "", "crit_sameroutestep", ""),
    "TF_FE_2": ("TF", "rule_HotLotFIRST", "", "", ""),
    "Litho_FE_3": ("Litho", "rule_HotLotFIRST", "", "", ""),
    "DefMet_FE_4": ("Def_Met", "rule_HotLotFIRST", "", "", ""),
    "WE_FE_5": ("Wet_Etch", "rule_HotLotFIRST", "", "", ""),
    "DE_FE_6": ("Dry_Etch", "rule_HotLotFIRST", "", "", ""),
    "Implant_FE_7": ("Implant", "rule_LSSU", "wake_LeastSetupTime", "", "Implant_Species"),
    "Planar_FE_8": ("Planar", "rule_HotLotFIRST", "", "", ""),
}
# One layer: (description, family, PTIME min, PTPER, batch min/max wafers, needs a setup)
LAYER = [
    ("Clean", "WE_FE_5", 40.0, "per_lot", None, False),
    ("Oxidation", "Diffusion_FE_1", 300.0, "per_batch", (75, 150), False),
    ("Deposition", "TF_FE_2", 3.2, "per_piece", None, False),
    ("Litho", "Litho_FE_3", 2.8, "per_piece", None, False),
    ("Overlay_CD", "DefMet_FE_4", 25.0, "per_lot", None, False),
    ("Etch", "DE_FE_6", 2.8, "per_piece", None, False),
    ("Implant", "Implant_FE_7", 60.0, "per_lot", None, True),
    ("Clean", "WE_FE_5", 40.0, "per_lot", None, False),
    ("CMP", "Planar_FE_8", 2.6, "per_piece", None, False),
    ("Inspect", "DefMet_FE_4", 25.0, "per_lot", None, False),
]
PRODUCTS = {"part_A": ("product_A", "r_A", 3), "part_B": ("product_B", "r_B", 2)}  # layers
RELEASE_MIN = 144.0  # min between regular lots of each product
SETUP_MIN = 30.0  # min to change the implanter's species
MIN_RUN = 3  # lots run per setup before a change is allowed
# area -> MTTR in minutes (exponential); MTTF is one week (exponential) everywhere, as in SMT2020
MTTR = {"Diffusion": 180, "TF": 240, "Litho": 240, "Def_Met": 40, "Wet_Etch": 120, "Dry_Etch": 200, "Implant": 300, "Planar": 180}  # fmt: skip

ROUTE_HEADER = (
    "ROUTE STEP DESC STNFAM PDIST PTIME PTIME2 PTUNITS PTPER BATCHMN BATCHMX SETUP WHEN STIME "
    "STUNITS SVESTN FORSTEP BatchInterval BatchIntUnits PartInterval PartIntUnits RWKSTEP REWORK "
    "RWKTYPE StepPercent STEP_CQT CQT CQTUNITS IGNORE"
).split()
TOOL_HEADER = (
    "STNFAM STN RULE FWLRANK WAKERESRANK BATCHCRITF BATCHPER LTIME LTUNITS ULTIME ULTUNITS STNCAP "
    "STNQTY STNGRP STNFAMSTEP_ACTLIST STNFAMLOC PRERULERWL SETUPGRP"
).split()


def _table(header: list[str], rows: list[dict[str, object]]) -> str:
    lines = ["\t".join(header)]
    lines += ["\t".join(str(r.get(h, "")) for h in header) for r in rows]
    return "\n".join(lines) + "\n"


def route_rows(route: str, layers: int) -> list[dict[str, object]]:
    rows = []
    for layer in range(1, layers + 1):
        for desc, family, ptime, per, batch, setup in LAYER:
            n = len(rows) + 1
            row: dict[str, object] = {
                "ROUTE": route, "STEP": n, "DESC": f"{n:03d}_L{layer}_{desc}", "STNFAM": family,
                "PDIST": "uniform", "PTIME": ptime, "PTIME2": round(ptime * 0.05, 4), "PTUNITS": "min",
                "PTPER": per, "IGNORE": TOOLS[family][0],
            }  # fmt: skip
            if batch:
                row["BATCHMN"], row["BATCHMX"] = batch
            if setup:
                row["SETUP"], row["WHEN"] = f"SU_L{layer}", "need"
            rows.append(row)
    return rows


def write_process(folder: str | Path, counts: dict[str, int]) -> list[Path]:
    """Write part/route/tool/order/WIP/setup/setupgrp/downcal/pmcal/attach/fromto files."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    files: dict[str, str] = {}
    files["part.txt"] = _table(
        ["PARTGRP", "PARTFAM", "PART", "ROUTEFILE", "ROUTE"],
        [{"PARTGRP": "Saleable", "PARTFAM": fam, "PART": part, "ROUTEFILE": f"route_{part[-1]}.txt", "ROUTE": route}
         for part, (fam, route, _) in PRODUCTS.items()],
    )  # fmt: skip
    for part, (_, route, layers) in PRODUCTS.items():
        files[f"route_{part[-1]}.txt"] = _table(ROUTE_HEADER, route_rows(route, layers))
    files["tool.txt"] = _table(
        TOOL_HEADER,
        [{"STNFAM": fam, "STN": fam, "RULE": rule, "FWLRANK": "rank_HP;rank_RSETUP;rank_FIFO",
          "WAKERESRANK": wake, "BATCHCRITF": crit, "BATCHPER": "piece" if crit else "",
          "LTIME": 1.0, "LTUNITS": "min", "ULTIME": 1.0, "ULTUNITS": "min",
          "STNQTY": float(counts[fam]), "STNGRP": area, "STNFAMSTEP_ACTLIST": ACTLIST,
          "STNFAMLOC": "Fab", "PRERULERWL": "no", "SETUPGRP": group}
         for fam, (area, rule, wake, crit, group) in TOOLS.items()],
    )  # fmt: skip
    files["order.txt"] = _table(
        "LOT PART PRIOR PIECES START RDIST REPEAT RUNITS RPT# LOTSPERRPT DUE ORDER HOTLOT".split(),
        [
            {"LOT": "Lot_A", "PART": "part_A", "PRIOR": 10, "PIECES": 25, "START": EPOCH, "RDIST": "constant",
             "REPEAT": RELEASE_MIN, "RUNITS": "min", "RPT#": 100000, "LOTSPERRPT": 1,
             "DUE": "01/07/18 00:00:00", "ORDER": "O_Lot_A", "HOTLOT": "no"},
            {"LOT": "Lot_B", "PART": "part_B", "PRIOR": 10, "PIECES": 25, "START": EPOCH, "RDIST": "constant",
             "REPEAT": RELEASE_MIN, "RUNITS": "min", "RPT#": 100000, "LOTSPERRPT": 1,
             "DUE": "01/05/18 00:00:00", "ORDER": "O_Lot_B", "HOTLOT": "no"},
            {"LOT": "HotLot_A", "PART": "part_A", "PRIOR": 20, "PIECES": 25, "START": EPOCH, "RDIST": "constant",
             "REPEAT": 2880, "RUNITS": "min", "RPT#": 10000, "LOTSPERRPT": 1,
             "DUE": "01/04/18 00:00:00", "ORDER": "O_HotLot_A", "HOTLOT": "no"},
        ],
    )  # fmt: skip
    wip = []
    for part, (_, _, layers) in PRODUCTS.items():
        steps = layers * len(LAYER)
        for i, step in enumerate(range(2, steps + 1, 3)):  # one lot every third step
            wip.append({"LOT": f"Init_Lot_{part[-1]}_{i + 1}", "PART": part, "PRIOR": 10, "PIECES": 25,
                        "START": EPOCH, "CURSTEP": step, "DUE": "01/04/18 00:00:00", "ORDER": "O_Init_WIP"})  # fmt: skip
    files["WIP.txt"] = _table(
        "LOT PART PRIOR PIECES START CURSTEP DUE ORDER HOTLOT TRACE".split(), wip
    )
    layers = max(n for _, _, n in PRODUCTS.values())
    files["setup.txt"] = _table(
        "CURSETUP NEWSETUP STIME STUNITS IGNORE".split(),
        [{"NEWSETUP": f"SU_L{k}", "STIME": SETUP_MIN, "STUNITS": "min", "IGNORE": "Implant_FE_7"} for k in range(1, layers + 1)],
    )  # fmt: skip
    files["setupgrp.txt"] = _table(
        "SETUPGRP SETUP MINRUN IGNORE".split(),
        [{"SETUPGRP": "Implant_Species" if k == 1 else "", "SETUP": f"SU_L{k}", "MINRUN": MIN_RUN, "IGNORE": "Implant_FE_7"}
         for k in range(1, layers + 1)],
    )  # fmt: skip
    files["downcal.txt"] = _table(
        "DOWNCALNAME DOWNCALTYPE MTTFDIST MTTF MTTFUNITS MTTRDIST MTTR MTTRUNITS IGNORE".split(),
        [{"DOWNCALNAME": f"BREAK_{a}", "DOWNCALTYPE": "mttf_by_cal", "MTTFDIST": "exponential", "MTTF": 10080,
          "MTTFUNITS": "min", "MTTRDIST": "exponential", "MTTR": m, "MTTRUNITS": "min", "IGNORE": a}
         for a, m in MTTR.items()],
    )  # fmt: skip
    pms = [
        ("Litho_FE_3_MN", "Litho_FE_3", "Litho", 30, 8.0),
        ("Diffusion_FE_1_MN", "Diffusion_FE_1", "Diffusion", 30, 12.0),
    ]
    files["pmcal.txt"] = _table(
        "PMCALNAME PMCALTYPE MTBPM MTBPMUNITS MTTRDIST MTTR MTTR2 MTTRUNITS IGNORE".split(),
        [{"PMCALNAME": n, "PMCALTYPE": "mtbpm_by_cal", "MTBPM": days, "MTBPMUNITS": "day", "MTTRDIST": "uniform",
          "MTTR": hours, "MTTR2": hours / 5, "MTTRUNITS": "hr", "IGNORE": area} for n, _, area, days, hours in pms],
    )  # fmt: skip
    files["attach.txt"] = _table(
        "CALNAME CALTYPE RESTYPE RESNAME FOADIST FOA FOAUNITS".split(),
        [{"CALNAME": f"BREAK_{a}", "CALTYPE": "down", "RESTYPE": "stngrp", "RESNAME": a, "FOADIST": "exponential",
          "FOA": 10080, "FOAUNITS": "min"} for a in MTTR]
        + [{"CALNAME": n, "CALTYPE": "pm", "RESTYPE": "stnfam", "RESNAME": fam, "FOADIST": "constant", "FOA": 15,
            "FOAUNITS": "day"} for n, fam, _, _, _ in pms],
    )  # fmt: skip
    files["fromto.txt"] = _table(
        "FROMLOC TOLOC DDIST DTIME DTIME2 DUNITS".split(),
        [
            {
                "FROMLOC": "Fab",
                "TOLOC": "Fab",
                "DDIST": "uniform",
                "DTIME": 5,
                "DTIME2": 2,
                "DUNITS": "min",
            }
        ],
    )
    out = []
    for name, text in files.items():
        (folder / name).write_text(text, encoding="utf-8")
        out.append(folder / name)
    return out
