"""The calibrated model, in the SMT2020 format it was read from, so every engine runs it unchanged.

The design model's folder is copied; in the tables whose parameters were calibrated only the
numbers change: route files' PTIME and PTIME2 (processing time, mean and spread, × the family's
estimated factor) and downcal.txt's MTTR and MTTF (× the factor of the calendar's families; a
calendar shared by several families takes their factors' mean weighted by their samples). Parameters on thin data keep the design
value; release rates are reported, not written (order.txt's schedule is a plan, not a rate).
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
    return dest


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
