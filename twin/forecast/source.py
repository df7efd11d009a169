"""What a forecast or a backtest reads: the model and its tool map, the twin state at a time,
and what the event log says happened (outs, WIP, lot completions)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from twin.errors import InputError

DAY = 86400.0
HOUR = 3600.0
MAX_HORIZON_DAYS = 90.0  # a forecast's horizon; longer is a what-if, not a forecast
MAX_REPLICATIONS = 10_000
LOT_DONE = ("lot.completed", "lot.scrap")


def safe(x: Any, width: int = 60) -> str:
    """Any value as printable text (a lone surrogate escaped), cut to ``width`` characters."""
    text = str(x).encode("utf-8", "backslashreplace").decode("utf-8")
    return text if len(text) <= width else text[: width - 3] + "..."


def parse_horizon(value: Any, option: str = "--horizon") -> float:
    """``7d``, ``36h``, ``90m`` or a number of days -> days (> 0, at most MAX_HORIZON_DAYS)."""
    problem = (
        f"{option} {safe(value)!s}: a duration such as 7d, 36h or 90m (or days as a number), "
        f"more than 0 and at most {MAX_HORIZON_DAYS:g} days"
    )
    if isinstance(value, bool):
        raise InputError("forecast", [problem])
    if isinstance(value, int | float):
        days = float(value)
    elif isinstance(value, str):
        text = value.strip().lower()
        unit = {"d": 1.0, "h": 1 / 24, "m": 1 / 1440}.get(text[-1:], None)
        num = text[:-1] if unit is not None else text
        try:
            days = float(num) * (unit or 1.0)
        except (ValueError, OverflowError):
            raise InputError("forecast", [problem]) from None
    else:
        raise InputError("forecast", [problem])
    if not (math.isfinite(days) and 0 < days <= MAX_HORIZON_DAYS):
        raise InputError("forecast", [problem])
    return days


def parse_at(value: Any, option: str = "--at") -> float | None:
    """ISO 8601 UTC or epoch seconds (0 .. year 9999) -> epoch s; None passes."""
    from twin.live.events import EventFormatError, parse_time

    if value is None:
        return None
    v: Any = value
    if isinstance(value, str):
        try:
            v = float(value)
        except ValueError:
            v = value
    try:
        return parse_time(v)
    except (EventFormatError, TypeError) as exc:
        reason = getattr(exc, "reason", str(exc))
        raise InputError(
            "forecast",
            [f"{option} {safe(value)}: {safe(reason, 200)}; accepted: ISO 8601 UTC or epoch "
             "seconds"],
        ) from None  # fmt: skip


def check_replications(reps: Any, option: str = "-r") -> int:
    if isinstance(reps, bool) or not isinstance(reps, int) or not 1 <= reps <= MAX_REPLICATIONS:
        raise InputError(
            "forecast",
            [f"{option} {safe(reps)}: replications, an integer from 1 to {MAX_REPLICATIONS:,} "
             "(the prediction intervals need about 20 or more)"],
        )  # fmt: skip
    return reps


def load_models(model_path: str | Path) -> tuple[Any, Any]:
    """The design model of a scene or SMT2020 folder, and the scene (None for a folder)."""
    from twin.process import load_model

    path = Path(model_path)
    try:
        is_scene = (path / "scene.yaml").is_file()
        is_dir = path.is_dir()
    except (OSError, ValueError):
        is_scene = is_dir = False
    if is_scene:
        from twin.scene.load import load_scene

        scene = load_scene(str(path))
        process = scene.metadata.get("process_dir")
        if process is None:
            raise InputError("forecast", [f"--model {safe(path)}: the scene names no process"])
        model = load_model(process)
        model.name = path.resolve().name
        return model, scene
    if not is_dir:
        raise InputError(
            "forecast", [f"--model {safe(path)}: no such folder; a scene or SMT2020 folder"]
        )
    return load_model(str(path)), None


def load_calibrated(path: str | Path, design: Any) -> Any:
    """A calibrated model folder (``twin calibrate --out DIR``: DIR or DIR/process); its
    families must be the design's, with the same tool counts."""
    from twin.process import load_model

    p = Path(path)
    try:
        if (p / "process").is_dir():
            p = p / "process"
        ok = p.is_dir()
    except (OSError, ValueError):
        ok = False
    if not ok:
        raise InputError(
            "forecast", [f"--calibrated {safe(path)}: no such folder (twin calibrate --out DIR)"]
        )
    model = load_model(str(p))
    check_same_families(design, model, f"--calibrated {safe(path)}")
    model.name = f"{design.name} (calibrated)"
    return model


def check_same_families(design: Any, other: Any, what: str) -> None:
    a = {f: fam.count for f, fam in design.families.items()}
    b = {f: fam.count for f, fam in other.families.items()}
    if a != b:
        diff = sorted(set(a) ^ set(b)) or sorted(f for f in a if a[f] != b[f])
        raise InputError(
            "forecast",
            [f"{what}: its tool families differ from the design model's "
             f"({', '.join(diff[:5])}); calibrate the same model"],
        )  # fmt: skip


@dataclass
class Snapshot:
    """The store's twin at ``at``: its state and the time span of the store."""

    state: Any
    tool_map: Any
    first: float  # s, epoch of the store's first event
    last: float  # s, epoch of its last event
    at: float  # s, epoch of the state


def open_store(store_path: str | Path) -> Any:
    from twin.live.store import SQLiteStore

    p = Path(store_path)
    try:
        ok = p.is_file()
    except (OSError, ValueError):
        ok = False
    if not ok:
        raise InputError("forecast", [f"--store {safe(store_path)}: no such event store"])
    return SQLiteStore(p, readonly=True)


def span(store: Any, where: str) -> tuple[float, float]:
    """(first, last) event time of a store; an empty store is refused."""
    first = next(store.read_positioned(limit=1), None)
    if first is None:
        raise InputError("forecast", [f"{where}: the store holds no events"])
    n = store.count()
    tail = next(store.read_positioned(after=max(0, n - 1), limit=1), None)
    last = max(first[1].time, tail[1].time if tail is not None else first[1].time)
    return first[1].time, last


def tool_map_for(model: Any, scene: Any, store: Any, where: str) -> Any:
    """The one tool-id map: by the scene's tools, else by the store's recorded catalog."""
    from twin.process.toolmap import ToolIdMap

    if scene is not None:
        return ToolIdMap.from_scene(scene, model)
    catalog = store.catalog()
    if catalog is not None and catalog.equipment:
        return ToolIdMap.from_families(catalog.equipment, model, where=f"{where} catalog")
    raise InputError(
        "forecast",
        [f"{where} records no equipment catalog: give the scene folder as --model to map tools"],
    )


def snapshot(store: Any, at: float | None, model: Any, scene: Any, where: str) -> Snapshot:
    """The state at ``at`` (None: the last event), checked: ``at`` inside the store's span."""
    from twin.live.events import format_time

    first, last = span(store, where)
    if at is not None and at < first:
        raise InputError(
            "forecast",
            [f"--at {format_time(at)} is before the first event of {where} (the first stored "
             f"event is at {format_time(first)})"],
        )  # fmt: skip
    when = last if at is None else at
    state = store.state_at(when)
    tool_map = tool_map_for(model, scene, store, where)
    return Snapshot(state=state, tool_map=tool_map, first=first, last=last, at=when)


@dataclass
class Actuals:
    """What the log says about a window after ``at``: per day outs (by product) and WIP at
    each day's end, and every lot's completion time (epoch s)."""

    outs: list[dict[str, int]] = field(default_factory=list)  # per day: product -> lots
    wip: list[int] = field(default_factory=list)  # lots in WIP at each day's end
    completion: dict[str, float] = field(default_factory=dict)  # lot -> epoch s


# "lot.release": the deprecated name of lot.hold_released, which stores written before the
# rename hold (docs/events.md, "Renamed types")
LOT_TYPES = (
    "lot.released", "lot.track_in", "lot.track_out", "lot.hold", "lot.hold_released",
    "lot.release", "lot.rework", "lot.scrap", "lot.completed",
)  # fmt: skip


def lot_events(store: Any, until: float | None = None) -> list[tuple[float, int, str, str, str]]:
    """Every lot event (time, position, type, lot, product or ""), in time order; read once
    by the store's type index."""
    rows = []
    for typ in LOT_TYPES:
        for pos, ev in store.read_positioned(until=until, type=typ):
            prod = str(ev.data.get("product", "")) if typ == "lot.released" else ""
            rows.append((ev.time, pos, typ, ev.subject, prod))
    rows.sort()
    return rows


def actuals(events: list[tuple[float, int, str, str, str]], at: float, days: int) -> Actuals:
    """Outs and WIP per day of ``days`` after ``at``, from the lot events of the log
    (``lot_events``). A lot is in WIP from its first event until its ``lot.completed`` or
    ``lot.scrap``; its completion time is that of ``lot.completed``."""
    product: dict[str, str] = {}
    active: set[str] = set()
    done: set[str] = set()
    out = Actuals(outs=[{} for _ in range(days)], wip=[0] * days)
    end = at + days * DAY
    edges = [at + (k + 1) * DAY for k in range(days)]
    k = 0
    for t, _, typ, lot, prod in events:
        if t > end:
            break
        while k < days and t > edges[k]:
            out.wip[k] = len(active)
            k += 1
        if prod:
            product[lot] = prod
        if typ in LOT_DONE:
            if lot in active:
                active.discard(lot)
                done.add(lot)
                if typ == "lot.completed" and t > at:
                    day = min(int((t - at) // DAY), days - 1)
                    p = product.get(lot, "?")
                    out.outs[day][p] = out.outs[day].get(p, 0) + 1
                    out.completion[lot] = t
        elif lot not in done:
            active.add(lot)
    while k < days:
        out.wip[k] = len(active)
        k += 1
    return out
