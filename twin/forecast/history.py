"""A fab's MES history without the OHT: the reference engine run as the "real" fab, its lot
and E10 events written to an event store (for backtests, tests and benches).

``twin emulate`` is the faithful stream (AMHS and vehicles too) but costs about 25 s of CPU
per fab day on the demo fab, most of it the OHT; a backtest over 20 origins needs weeks of
history. This writes what a forecast and calibration read: ``lot.released``,
``lot.track_in``, ``lot.track_out``, ``lot.completed`` and ``equipment.state`` (setups as
E10 scheduled down until they end, as the emulator reports them, through the engine's public
hooks ``set_hooks(on_start=...)`` and ``schedule``), with the tools named by the
one tool-id map (the scene's ids) and the catalog recorded as ``twin ingest`` leaves it. The
truth (a scenario applied to the model) is what the "real" fab runs; the twin keeps the
design model. Transport is the model's (fromto.txt), not the OHT's. The model's initial WIP
(``initial_wip``) is announced by a ``lot.released`` at the start (the stream has no event
that places a lot mid-route): the state knows such a lot at its first step until its first
track-in places it, so a state taken before every initial lot has moved once misplaces some.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

EPOCH = 1_767_225_600.0  # 2026-01-01T00:00:00Z, as the emulator starts
GRID = 64.0  # event times on a 1/64 s grid, as the emulator's


def truth_model(model: Any, path: str | Path) -> Any:
    """``model`` with the one scenario of a truth file (``twin emulate --truth``) applied."""
    from twin.errors import InputError
    from twin.whatif.scenarios import load_scenarios

    found = load_scenarios(str(path), model)[1:]  # the baseline comes first
    if len(found) != 1:
        raise InputError(
            "truth", [f"--truth {path}: {len(found)} scenarios; a truth file holds exactly one"]
        )
    return found[0].apply(model)


def write_history(
    store_path: str | Path,
    model: Any,
    tool_map: Any,
    *,
    days: float,
    seed: int = 0,
    initial_wip: bool = True,
    start: float = EPOCH,
) -> int:
    """Run ``model`` (the truth) for ``days`` and write its MES events to a new SQLite store;
    returns the number of events."""
    from twin.live.catalog import Catalog
    from twin.live.events import Event
    from twin.live.store import SQLiteStore
    from twin.whatif.reference import SimConfig
    from twin.whatif.reference.engine import Engine

    names = tool_map.to_twin
    out: list[Event] = []
    families: dict[str, str] = {}

    def emit(t: float, typ: str, subject: str, data: dict) -> None:
        n = len(out) + 1
        tt = start + int(t * GRID) / GRID
        out.append(Event(f"mes:{n}", "mes", n, tt, typ, subject, data))

    pending: dict[str, bool] = {}  # tool -> tracked in, no state reported since

    def obs(kind: str, t: float, **f: Any) -> None:
        if kind in ("track_in", "track_out"):
            tid = names[f["tool"]]
            families[tid] = f["family"]
            pending[f["tool"]] = kind == "track_in"
            emit(t, f"lot.{kind}", f["lot"], {"equipment": tid, "step": int(f["step"])})
        elif kind == "tool_state":
            tid = names[f["tool"]]
            families[tid] = f["family"]
            pending[f["tool"]] = False
            emit(t, "equipment.state", tid, {"state": f["state"], "reason": f["reason"]})
        elif kind == "lot_released":
            emit(t, "lot.released", f["lot"],
                 {"product": f["product"], "priority": int(f["priority"])})  # fmt: skip
        elif kind == "lot_completed":
            emit(t, "lot.completed", f["lot"], {})

    # E10 around setups as the emulator reports them, through the engine's public hooks
    def on_start(tool: Any, lots: list, st: Any, t: float) -> None:
        if pending.get(tool.id) and tool.state[0] not in ("productive", "standby"):
            # the engine reports no change when a setup follows a setup whose end it never
            # reported (the tool went down meanwhile): a new setup spell begins at the track-in
            obs("tool_state", t, tool=tool.id, family=tool.fam.name, state=tool.state[0],
                reason=tool.state[1])  # fmt: skip
        job = tool.jobs[-1]
        if job.setup > 0:
            engine.schedule(t + job.setup, lambda now: setup_end(tool, job, now))

    def setup_end(tool: Any, job: Any, t: float) -> None:
        """The end of a setup: productive, unless the tool went down or the run ended."""
        if job in tool.jobs and tool.state == ("scheduled_down", "setup") and tool.down_until <= t:
            tool.state = ("productive", "processing")
            obs("tool_state", t, tool=tool.id, family=tool.fam.name, state="productive",
                reason="processing")  # fmt: skip

    if initial_wip:  # announced at the start: the state places each at its first track-in
        for w in model.wip:
            emit(0.0, "lot.released", w.id, {"product": w.product, "priority": int(w.priority)})
    cfg = SimConfig(days=days, seed=seed, initial_wip=initial_wip, wip_sample_days=days)
    engine = Engine(model, cfg, None, obs)
    engine.set_hooks(on_start=on_start)
    engine.run()
    for eng_id, tid in names.items():  # every tool known from the start
        families.setdefault(tid, eng_id.rsplit("#", 1)[0])
    store = SQLiteStore(Path(store_path), synchronous="NORMAL")
    try:
        # routes too: the state advances a lot's step at its track-out by them
        catalog = Catalog(equipment=dict(families), products=Catalog._routes(model))
        store.put_meta("catalog", json.dumps(catalog.to_dict()))
        for i in range(0, len(out), 20_000):
            store.append(out[i : i + 20_000])
    finally:
        store.close()
    return len(out)
