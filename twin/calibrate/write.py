"""The calibrated model, in the SMT2020 format it was read from, so every engine runs it unchanged.

The design model's folder is copied; in the tables whose parameters were calibrated only the
numbers change: route files' PTIME and PTIME2 (processing time, mean and spread, × the family's
estimated factor) and downcal.txt's MTTR and MTTF (× the factor of the calendar's families; a
calendar shared by several families takes their factors' mean weighted by their samples),
pmcal.txt's MTTR/MTTR2 (PM duration) and MTBPM (PM interval) the same way, setup times (route
files' STIME, setup.txt's STIME), route files' REWORK and StepPercent (the estimated rate) and
fromto.txt's DTIME/DTIME2 (× the ``transport:all`` factor). Parameters on thin data keep the
design value; release rates are reported, not written (order.txt's schedule is a plan, not a
rate); scrap rates and per-area transport times are reported only (the format has no field).
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from twin.errors import InputError

from .estimate import Calibration


def write_calibrated(model: Any, cal: Calibration, model_path: str | Path, out: str | Path) -> Path:
    """Write the calibrated process folder under ``out/process``; returns its path."""
    src = _process_dir(Path(model_path))
    dest = Path(out) / "process"
    if dest.exists():
        raise InputError("twin calibrate", [f"--out {out}: {dest} exists; choose a new folder"])
    shutil.copytree(src, dest)
    ptime = {p.target: p.factor for p in cal.parameters if p.kind == "processing_time"}
    for f in sorted(dest.glob("route*.txt")):
        _scale(f, "STNFAM", ptime, ("PTIME", "PTIME2"))
    # a calendar shared by several families (attached to their area) takes the mean of their
    # factors weighted by their samples (a thin family counts with factor 1)
    pooled: dict[tuple[str, str], list[tuple[float, int]]] = {}
    for p in cal.parameters:
        if p.kind in ("ttr", "ttf"):
            col = "MTTR" if p.kind == "ttr" else "MTTF"
            for a in model.calendars_of(p.target):
                if a.kind == "down":
                    pooled.setdefault((col, a.calendar), []).append((p.factor, max(p.n, 1)))
    by_cal: dict[str, dict[str, float]] = {"MTTR": {}, "MTTF": {}}
    for (col, name), fs in pooled.items():
        by_cal[col][name] = sum(f * n for f, n in fs) / sum(n for _, n in fs)
    if (dest / "downcal.txt").exists():
        for col, factors in by_cal.items():
            _scale(dest / "downcal.txt", "DOWNCALNAME", factors, (col,))
    _pms(model, cal, dest)
    _setups(model, cal, dest)
    _rates(cal, dest)
    moved = [p.factor for p in cal.parameters if p.name == "transport:all"]
    if moved and (dest / "fromto.txt").exists():
        _scale(dest / "fromto.txt", "FROMLOC", {"Fab": moved[0]}, ("DTIME", "DTIME2"))
    return dest


def _pooled(model: Any, cal: Calibration, kinds: dict[str, str], of: str) -> dict:
    """Per (column, calendar): the factor of the families it is attached to, weighted by their
    samples (a thin family counts with factor 1)."""
    pooled: dict[tuple[str, str], list[tuple[float, int]]] = {}
    for p in cal.parameters:
        if p.kind in kinds:
            for a in model.calendars_of(p.target):
                if a.kind == of:
                    pooled.setdefault((kinds[p.kind], a.calendar), []).append(
                        (p.factor, max(p.n, 1))
                    )
    out: dict[str, dict[str, float]] = {}
    for (col, name), fs in pooled.items():
        out.setdefault(col, {})[name] = sum(f * n for f, n in fs) / sum(n for _, n in fs)
    return out


def _pms(model: Any, cal: Calibration, dest: Path) -> None:
    """pmcal.txt: MTTR and MTTR2 (PM duration) x the duration factor, MTBPM x the interval's."""
    if not (dest / "pmcal.txt").exists():
        return
    kinds = {"pm_duration": "MTTR", "pm_interval": "MTBPM"}
    for col, factors in _pooled(model, cal, kinds, "pm").items():
        cols = ("MTTR", "MTTR2") if col == "MTTR" else (col,)
        _scale(dest / "pmcal.txt", "PMCALNAME", factors, cols)


def _setups(model: Any, cal: Calibration, dest: Path) -> None:
    """Route files' STIME x the family's setup factor; setup.txt's STIME x the pair's factor
    (where the pair has its own parameter on enough data), else the family's."""
    fam = {p.target: p.factor for p in cal.parameters if p.kind == "setup_time" and not p.key}
    pair = {p.key: p.factor for p in cal.parameters if p.kind == "setup_time" and p.key}
    if not any(f != 1.0 for f in [*fam.values(), *pair.values()]):
        return
    for f in sorted(dest.glob("route*.txt")):
        _scale(f, "STNFAM", fam, ("STIME",))
    fams_of: dict[str, set[str]] = {}
    for route in model.routes.values():
        for s in route.steps:
            if s.setup is not None:
                fams_of.setdefault(s.setup, set()).add(s.family)
    path = dest / "setup.txt"
    if not path.exists():
        return

    def factor(parts: list[str], k: dict[str, int]) -> float:
        cur, new = parts[k["CURSETUP"]].strip(), parts[k["NEWSETUP"]].strip()
        if cur and pair.get((cur, new), 1.0) != 1.0:
            return pair[(cur, new)]
        fs = [fam.get(f, 1.0) for f in sorted(fams_of.get(new, ()))]
        return sum(fs) / len(fs) if fs else 1.0

    _edit(path, ("CURSETUP", "NEWSETUP", "STIME"), lambda parts, k: _times(parts, k, factor))


def _times(parts: list[str], k: dict[str, int], factor) -> list[str]:
    f = factor(parts, k)
    if f != 1.0 and parts[k["STIME"]].strip():
        parts[k["STIME"]] = repr(float(parts[k["STIME"]]) * f)
    return parts


def _rates(cal: Calibration, dest: Path) -> None:
    """Route files' REWORK and StepPercent (percentages) of each step whose rate was estimated
    on enough data: the estimate."""
    cols = {"rework_rate": "REWORK", "sampling_rate": "StepPercent"}
    new = {(p.key, cols[p.kind]): p.estimate * 100 for p in cal.parameters
           if p.kind in cols and not p.thin}  # fmt: skip
    if not new:
        return

    def edit(parts: list[str], k: dict[str, int]) -> list[str]:
        key = (parts[k["ROUTE"]].strip(), parts[k["STEP"]].strip())
        for col in ("REWORK", "StepPercent"):
            v = new.get((key, col))
            if v is not None and col in k:
                parts[k[col]] = repr(v)
        return parts

    for f in sorted(dest.glob("route*.txt")):
        _edit(f, ("ROUTE", "STEP"), edit)


def _edit(path: Path, need: tuple[str, ...], edit) -> None:
    """Rewrite each data line of a tab-separated table whose header has the ``need`` columns."""
    lines = path.read_text(encoding="utf-8").splitlines()
    if not lines:
        return
    header = [h.strip() for h in lines[0].split("\t")]
    if not all(c in header for c in need):
        return
    k = {h: i for i, h in enumerate(header)}
    for n, line in enumerate(lines[1:], start=1):
        parts = line.split("\t")
        if len(parts) < len(header):
            parts += [""] * (len(header) - len(parts))
        lines[n] = "\t".join(edit(parts, k))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def _process_dir(path: Path) -> Path:
    if (path / "scene.yaml").is_file():
        from twin.scene.load import load_scene

        return Path(load_scene(str(path)).metadata["process_dir"])
    return path


def _scale(path: Path, key: str, factors: dict[str, float], cols: tuple[str, ...]) -> None:
    lines = path.read_text(encoding="utf-8").splitlines()
    if not lines or not any(f != 1.0 for f in factors.values()):
        return
    header = [h.strip() for h in lines[0].split("\t")]
    if key not in header:
        return
    k = header.index(key)
    idx = [header.index(c) for c in cols if c in header]
    for n, line in enumerate(lines[1:], start=1):
        parts = line.split("\t")
        f = factors.get(parts[k].strip()) if k < len(parts) else None
        if f is None or f == 1.0:
            continue
        for i in idx:
            if i < len(parts) and parts[i].strip():
                parts[i] = repr(float(parts[i]) * f)
        lines[n] = "\t".join(parts)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
