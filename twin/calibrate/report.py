"""The drift report: every parameter as an estimate, its 95 % interval, n and the design value,
drifted ones first, ordered by their effect on cycle time (a proxy: docs/forecast.md)."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from typing import Any

from .estimate import Calibration, Parameter

UNITS = {
    "processing_time": "s", "ttr": "s", "ttf": "s", "release_rate": "lots/d",
    "pm_duration": "s", "pm_interval": "s", "setup_time": "s", "transport": "s",
    "rework_rate": "share", "sampling_rate": "share", "scrap_rate": "share",
}  # fmt: skip


def ordered(cal: Calibration) -> list[Parameter]:
    """Drifted first, then the rest; each group by effect (largest first), then by name."""
    return sorted(cal.parameters, key=lambda p: (not p.drift, -p.effect, p.name))


def as_json(cal: Calibration, extra: dict[str, Any] | None = None) -> str:
    params = ordered(cal)
    doc = {
        "since": _iso(cal.since),
        "until": _iso(cal.until),
        "level": 0.95,
        "parameters": [p.as_dict() for p in params],
        "drift": [p.name for p in params if p.drift],
        "thin": [{"name": p.name, "n": p.n, "reason": p.thin} for p in params if p.thin],
        "skipped": cal.skipped,
        **(extra or {}),
    }
    return json.dumps(doc, indent=2, allow_nan=False)


def as_text(cal: Calibration) -> str:
    params = ordered(cal)
    drifted = [p for p in params if p.drift]
    lines = [
        f"calibration {_iso(cal.since)} .. {_iso(cal.until)}: {len(params)} parameters, "
        f"{len(drifted)} drifted (95 % interval excludes the design value)",
        f"{'parameter':<34} {'design':>11} {'estimate':>11} {'95 % interval':>25} {'n':>6}  drift",
    ]
    for p in params:
        ci = f"[{_num(p.ci[0])}, {_num(p.ci[1])}]"
        mark = "DRIFT" if p.drift else ("thin" if p.thin else "")
        lines.append(
            f"{_show(p.name)[:34]:<34} {_num(p.design):>11} {_num(p.estimate):>11} {ci:>25} {p.n:>6}  "
            f"{mark} {p.unit or UNITS[p.kind]}"
        )
    thin = [p for p in params if p.thin]
    if thin:
        lines.append("thin data (design value kept):")
        lines += [f"  {_show(p.name)}: {p.thin}" for p in thin]
    for why, n in sorted(cal.skipped.items()):
        lines.append(f"left out: {n} {why}")
    return "\n".join(lines)


def _show(text: str) -> str:
    """A name safe to print (a lone surrogate from an event is shown escaped)."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def _num(x: float) -> str:
    if not math.isfinite(x):
        return "-" if math.isnan(x) else "inf"
    return f"{x:.4g}" if abs(x) < 1e4 else f"{x:.0f}"


def _iso(t: float) -> str:
    try:
        return datetime.fromtimestamp(t, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
    except (ValueError, OverflowError, OSError):  # beyond years 1..9999: the epoch seconds
        return repr(t)
