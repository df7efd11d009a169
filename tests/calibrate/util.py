"""Synthetic event logs for calibration tests: runs of one family with known durations."""

from __future__ import annotations

import random
from pathlib import Path

from twin.live.events import Event
from twin.live.store import SQLiteStore

DEMO = Path(__file__).resolve().parents[2] / "scenes" / "demo-fab"
T0 = 1_767_225_600.0  # 2026-01-01T00:00:00Z
LITHO = {"LITH01": "Litho_FE_3", "LITH02": "Litho_FE_3", "LITH03": "Litho_FE_3"}


class Log:
    """Events in the order they are added, numbered per source."""

    def __init__(self) -> None:
        self.events: list[Event] = []

    def add(self, t: float, type: str, subject: str, **data: object) -> None:
        n = len(self.events) + 1
        self.events.append(Event(f"mes:{n}", "mes", n, T0 + t, type, subject, data))

    def sorted(self) -> list[Event]:
        return sorted(self.events, key=lambda e: (e.time, e.seq))


def litho_runs(n: int, factor: float, *, seed: int = 1, spread: float = 0.05) -> Log:
    """``n`` Litho runs of 25-wafer part_A lots, processing ``factor`` x design (168 s/wafer)
    with a uniform ±spread noise, load and unload 60 s each; run 3 has a 1,800 s setup and
    run 5 a 1,000 s breakdown in the middle, which calibration must not count."""
    rng = random.Random(seed)
    log = Log()
    t = 0.0
    for k in range(n):
        lot, tool = f"L{k}", f"LITH0{k % 3 + 1}"
        log.add(t, "lot.released", lot, product="part_A", priority=10)
        log.add(t + 1, "lot.track_in", lot, equipment=tool, step=4)
        proc = 168.0 * 25 * factor * (1 + rng.uniform(-spread, spread))
        extra = 0.0
        if k == 3:
            log.add(t + 1, "equipment.state", tool, state="scheduled_down", reason="setup")
            log.add(t + 1801, "equipment.state", tool, state="productive", reason="processing")
            extra = 1800.0
        else:
            log.add(t + 1, "equipment.state", tool, state="productive", reason="processing")
        if k == 5:
            log.add(t + 1000, "equipment.state", tool, state="unscheduled_down", reason="x")
            log.add(t + 2000, "equipment.state", tool, state="standby", reason="ready")
            log.add(t + 2000, "equipment.state", tool, state="productive", reason="processing")
            extra = 1000.0
        end = t + 1 + extra + 120.0 + proc
        log.add(end, "lot.track_out", lot, equipment=tool, step=4)
        log.add(end, "equipment.state", tool, state="standby", reason="idle")
        t = end + 10.0
    return log


def store_of(path: Path, events: list[Event]) -> Path:
    """An SQLite event store holding ``events``."""
    store = SQLiteStore(path, synchronous="NORMAL")
    try:
        for i in range(0, len(events), 5000):
            store.append(events[i : i + 5000])
    finally:
        store.close()
    return path


def engine_events(model, days: float, seed: int) -> tuple[list[Event], dict[str, str]]:
    """The MES events of one reference-engine run of ``model`` (E10 around setups as the
    emulator reports them: productive from the end of a setup), and its tool -> family map."""
    from twin.whatif.reference import SimConfig
    from twin.whatif.reference.engine import ARRIVE, Engine

    out: list[Event] = []
    tools: dict[str, str] = {}

    def obs(kind: str, t: float, **f) -> None:
        n = len(out) + 1
        if kind in ("track_in", "track_out", "tool_state"):
            tools[f["tool"]] = f["family"]
        if kind in ("track_in", "track_out"):
            data = {"equipment": f["tool"], "step": int(f["step"])}
            out.append(Event(f"mes:{n}", "mes", n, T0 + t, f"lot.{kind}", f["lot"], data))
        elif kind == "tool_state":
            data = {"state": f["state"], "reason": f["reason"]}
            out.append(Event(f"mes:{n}", "mes", n, T0 + t, "equipment.state", f["tool"], data))
        elif kind == "lot_released":
            data = {"product": f["product"], "priority": int(f["priority"])}
            out.append(Event(f"mes:{n}", "mes", n, T0 + t, "lot.released", f["lot"], data))
        elif kind == "lot_completed":
            out.append(Event(f"mes:{n}", "mes", n, T0 + t, "lot.completed", f["lot"], {}))

    class _Engine(Engine):
        def _arrive(self, lot, t):
            if type(lot) is not tuple:
                return super()._arrive(lot, t)
            tool, job = lot
            if job in tool.jobs and tool.state == ("scheduled_down", "setup"):
                if tool.down_until <= t:
                    self._state(tool, t, "productive", "processing")

        def _start(self, tool, lots, st, t):
            if tool.state[0] not in ("productive", "standby"):
                tool.state = ("standby", "ready")
            super()._start(tool, lots, st, t)
            job = tool.jobs[-1]
            if job.setup > 0:
                self._push(t + job.setup, ARRIVE, (tool, job))

    _Engine(model, SimConfig(days=days, seed=seed, wip_sample_days=days), None, obs).run()
    out.sort(key=lambda e: (e.time, e.seq))
    return out, tools
