"""Where calibration's inputs come from: an event store, a model folder and a window."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from twin.errors import InputError

from .estimate import MIN_N, TYPES, Calibration, CalibrationError, calibrate


def parse_when(text: Any, option: str) -> float | None:
    """``--since``/``--until``: ISO 8601 UTC or epoch seconds (0 .. year 9999); None passes."""
    from twin.live.events import EventFormatError, parse_time

    if text is None:
        return None
    value: Any = text
    if isinstance(text, str):
        try:
            value = float(text)
        except ValueError:
            value = text
        if isinstance(value, float) and not math.isfinite(value):
            value = text
    try:
        return parse_time(value)
    except EventFormatError as exc:
        shown = ascii(str(text)[:40])
        raise InputError(
            "twin calibrate",
            [f"{option} {shown}: {exc.reason}; accepted: ISO 8601 UTC or epoch seconds"],
        ) from None


def load_model_and_equipment(path: str | Path, store: Any = None) -> tuple[Any, dict]:
    """The model of a scene folder (its process model) or of an SMT2020 folder, and the tool id ->
    family map: the store's recorded catalog when it has one, else the scene's."""
    from twin.process import load_model

    path = Path(path)
    scene = None
    if (path / "scene.yaml").is_file():
        from twin.scene.load import load_scene

        scene = load_scene(str(path))
        process = scene.metadata.get("process_dir")
        if process is None:
            raise InputError("twin calibrate", [f"{path}: the scene names no process model"])
        model = load_model(process)
    elif path.is_dir():
        model = load_model(str(path))
    else:
        raise InputError(
            "twin calibrate", [f"--model {path}: not a folder; a scene or SMT2020 folder"]
        )
    catalog = store.catalog() if store is not None else None
    equipment = dict(catalog.equipment) if catalog is not None and catalog.equipment else {}
    if not equipment and scene is not None:
        from twin.live.catalog import Catalog

        equipment = Catalog.from_scene(scene, model).equipment
    if not equipment:
        raise CalibrationError(
            f"no map of tools to families: the store recorded no catalog and {path} is not a "
            "scene folder; pass --model a scene folder whose tools the events name"
        )
    return model, equipment


def load_ports(path: str | Path, store: Any = None) -> dict[str, str | None]:
    """Load port -> its tool or stocker: the store's recorded catalog, else the scene's (empty
    for an SMT2020 folder and a store without a catalog: transfers then count in
    ``transport:all`` only)."""
    catalog = store.catalog() if store is not None else None
    if catalog is not None and catalog.ports:
        return dict(catalog.ports)
    path = Path(path)
    if (path / "scene.yaml").is_file():
        from twin.live.catalog import Catalog
        from twin.scene.load import load_scene

        return dict(Catalog.from_scene(load_scene(str(path))).ports)
    return {}


def calibrate_store(
    store_path: str | Path,
    model_path: str | Path,
    since: float | None = None,
    until: float | None = None,
) -> tuple[Calibration, Any]:
    """Calibrate the model at ``model_path`` from the events of an SQLite store; returns the
    calibration and the design model."""
    from twin.live.store import is_url, open_store

    if not is_url(store_path) and not Path(store_path).exists():
        raise InputError("twin calibrate", [f"--store {store_path}: no such file"])
    store = open_store(store_path, readonly=True)
    try:
        model, equipment = load_model_and_equipment(model_path, store)
        ports = load_ports(model_path, store)
        rows = [pe for t in TYPES for pe in store.read_positioned(since, until, type=t)]
        rows.sort(key=lambda pe: (pe[1].time, pe[0]))  # time order, arrival order within
        events = [ev for _, ev in rows]
        products = {
            ev.subject: str(ev.data.get("product"))
            for ev in store.read(until=since, type="lot.released")
        } if since is not None else {}  # fmt: skip
    finally:
        store.close()
    outs = [ev for ev in events if ev.type == "lot.track_out"]
    if not outs:
        raise CalibrationError(
            f"the store {store_path} has no lot.track_out in the window; calibration needs at "
            f"least {MIN_N['processing_time']} track-outs per family"
        )
    lo = since if since is not None else events[0].time
    hi = until if until is not None else max(ev.time for ev in events)
    if not lo < hi:
        raise CalibrationError(f"the window is empty: since {lo} is not before until {hi}")
    cal = calibrate(events, model, equipment, since=lo, until=hi, products=products, ports=ports)
    pts = [p for p in cal.parameters if p.kind == "processing_time"]
    if pts and all(p.thin for p in pts):
        best = max(pts, key=lambda p: p.n)
        raise CalibrationError(
            f"too little history: calibration needs at least {MIN_N['processing_time']} "
            f"track-outs per family; the store has {len(outs)} in the window, at most {best.n} "
            f"runs of one family ({best.target}); choose a longer window or wait for more"
        )
    return cal, model
