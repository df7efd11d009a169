"""The fab emulator: the scene's process model driven event by event, published as a live stream.

``Emulator(scene, model, seed=, hours=)`` runs the reference what-if engine
(``twin.whatif.reference``) over the scene's process model and the OHT simulator
(``twin.physics.oht``) over its rails, side by side on one clock, and turns what happens into
fab events (``twin.live.events``) in time order:

- ``mes`` source: ``equipment.state`` (E10; breakdowns and PMs from the model's calendars),
  ``alarm.set``/``alarm.cleared`` around breakdowns, ``lot.released``, ``lot.track_in``,
  ``lot.track_out``, ``lot.completed``;
- ``amhs`` source: ``carrier.transfer_requested`` -> ``vehicle_assigned`` -> ``picked_up`` ->
  ``delivered`` for every move of a lot's carrier, ``vehicle.position`` every
  ``position_every`` s of a moving vehicle (and where it stops) and ``vehicle.state``.

The OHT replaces the model's transport times: when a lot leaves a step, its carrier is sent
from where it is to a load port of the tool chosen for the next step (the lot is then
dedicated to that tool, like a push dispatch), or to the bay stocker for batch families (the
furnace is chosen when the batch forms); the lot joins the step's queue when the carrier is
delivered. New lots start at a stocker; finished lots go back to one. The run starts from the
model's initial WIP (SMT2020 ``WIP.txt``; ``EmulatorConfig.initial_wip``): each of its lots is
announced at time 0 by ``lot.placed`` (queued at its step, ``released`` its real release time)
and its carrier leaves a stocker at once, so lots near the end of their routes complete within
the first simulated hour instead of after a whole cycle time.
Vehicles are chosen nearest-idle-first; an idle vehicle parked in the way of a carrier move is
sent on past that move's destination (the OHT simulator never moves idle vehicles). While every
vehicle stands idle the OHT clock is not run, only shifted, which is exact (nothing moves).

E10 states come from the engine (standby/productive, setup as scheduled down until the setup
ends, PMs as scheduled down, breakdowns as unscheduled down with an alarm); a tool coming back
up passes through standby, as E10 requires. The emulator's KPIs are its own, from what it
published (so a run stopped early describes exactly its stream): lots placed, released and
completed, WIP = placed + released - completed, carrier transfers requested, utilisation =
productive time / time in a known state per family, up to its last event.

Times: ``start`` (UTC epoch s) + simulated seconds, rounded down to 1/64 s. That grid keeps
every time exact in JSON (microseconds) and every sum of durations exact in float64, so a
replay reproduces the emulator's KPIs to the last bit.

API (what ``twin emulate`` and ``twin up`` use)::

    emu = Emulator(scene, model, seed=1, hours=8)
    for event in emu.events(): ...        # a generator, in time order; or
    emu.run(sink, speed=60.0)             # publish into a sink (Bus, JsonlSink, MqttSink);
                                          # speed = sim s per wall s, None = as fast as possible
    emu.kpis()                            # lots completed, WIP, E10 utilisation by family, ...

The same seed gives the same stream, byte for byte.
"""

from __future__ import annotations

import heapq
import math
import time as _time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from twin.emulator.amhs import AmhsMixin, Move
from twin.errors import InputError
from twin.live.events import Event
from twin.live.sources import Sink
from twin.physics.oht import OhtConfig, OhtSim
from twin.physics.routing import port_stop
from twin.process.model import FabModel
from twin.process.toolmap import ToolIdMap
from twin.scene.graph import SceneGraph
from twin.vocabulary import UP_STATES
from twin.whatif.reference import SimConfig
from twin.whatif.reference.engine import Engine

EPOCH = 1_767_225_600.0  # 2026-01-01T00:00:00Z, the default start of the stream
GRID = 64  # event times are multiples of 1/GRID s (exact in JSON and in float sums)
# events counted as they are published (the KPIs describe exactly the stream sent)
_COUNTED = {
    "lot.released": "released",
    "lot.placed": "placed",
    "lot.completed": "completed",
    "carrier.transfer_requested": "transfers",
}


@dataclass(kw_only=True)
class EmulatorConfig:
    seed: int = 0  # seeds the engine's random streams (the OHT is deterministic)
    hours: float = 8.0  # h of fab time to emulate
    start: float = EPOCH  # s, UTC epoch of simulated time 0 (an integer)
    position_every: float = 5.0  # s of fab time between position reports of a moving vehicle
    # 2 s decisions (plans are exact in between) with the lookahead that tick needs
    oht: OhtConfig = field(default_factory=lambda: OhtConfig(tick=2.0, lookahead=5.0))
    breakdowns: bool = True  # the model's down calendars
    pms: bool = True  # the model's PM calendars
    initial_wip: bool = True  # start from the model's WIP.txt lots (lot.placed at time 0)

    def check(self) -> None:
        problems = []
        if not (
            isinstance(self.hours, int | float) and math.isfinite(self.hours) and self.hours > 0
        ):
            problems.append(f"hours = {self.hours!r}: must be a number > 0")
        if not (isinstance(self.seed, int) and self.seed >= 0):
            problems.append(f"seed = {self.seed!r}: must be an integer >= 0")
        if not (float(self.start).is_integer() and self.start >= 0):
            problems.append(f"start = {self.start!r}: must be whole epoch seconds >= 0")
        if not (self.position_every > 0 and math.isfinite(self.position_every)):
            problems.append(f"position_every = {self.position_every!r}: must be > 0 s")
        if not isinstance(self.initial_wip, bool):
            problems.append(f"initial_wip = {self.initial_wip!r}: must be True or False")
        if problems:
            raise InputError("emulator config", problems)


def tool_map(scene: SceneGraph, model: FabModel) -> dict[str, str]:
    """Engine tool ids (``"<family>#<n>"``) -> scene tool ids: ``ToolIdMap.from_scene``'s
    ``to_twin`` (twin.process.toolmap, the one map of the emulator, the API and the what-if
    start). Every family must have exactly STNQTY tools in the scene; one error lists every
    family that does not."""
    return ToolIdMap.from_scene(scene, model).to_twin


class Emulator(AmhsMixin):
    """A fab's event stream from its process model and its OHT; see the module docstring."""

    def __init__(
        self,
        scene: SceneGraph,
        model: FabModel,
        *,
        seed: int = 0,
        hours: float = 8.0,
        config: EmulatorConfig | None = None,
    ) -> None:
        cfg = config or EmulatorConfig(seed=seed, hours=hours)
        cfg.check()
        self.cfg, self.scene, self.model = cfg, scene, model
        self.tools = ToolIdMap.from_scene(scene, model).to_twin
        self.ports: dict[str, list[str]] = {}
        for pid, link in sorted(scene.ports.items()):
            if link.segment is not None:
                self.ports.setdefault(link.tool, []).append(pid)
        self._stocker_ports()
        missing = sorted(t for t in self.tools.values() if t not in self.ports)
        if missing:
            raise InputError(
                f"scene {scene.name}", [f"tool {t!r} has no load port on the rail" for t in missing]
            )
        self._used = False
        self._stats: dict[str, Any] = {}

    def _stocker_ports(self) -> None:
        """Stocker in/out ports by bay; lots start at an out port and end at an in port."""
        self.stk_in: dict[str | None, str] = {}
        self.stk_out: dict[str | None, str] = {}
        for node in sorted(self.scene.nodes("stocker"), key=lambda n: n.id):
            bay = node.parent
            for pid in self.ports.get(node.id, []):
                kind = self._port_type(pid)
                if kind != "stocker_in":
                    self.stk_out.setdefault(bay, pid)
                if kind != "stocker_out":
                    self.stk_in.setdefault(bay, pid)
        if not self.stk_in or not self.stk_out:
            raise InputError(
                f"scene {self.scene.name}",
                ["the emulator needs a stocker with a load port on the rail (lots start there)"],
            )

    def _port_type(self, pid: str) -> str:
        try:
            return str(self.scene.node(pid).attrs.get("port_type", ""))
        except Exception:  # a port without a node of its own
            return ""

    # ------------------------------------------------------------------ public API
    def events(self) -> Iterator[Event]:
        """The stream, in time order (one pass: an Emulator runs once)."""
        if self._used:
            raise InputError("emulator", ["events() runs once; make a new Emulator to run again"])
        self._used = True
        cfg = self.cfg
        self.sim = OhtSim(self.scene, cfg.oht)
        self.veh = list(self.sim.ids)
        self._all_ports = [p for ps in self.ports.values() for p in ps]
        self._stops = {p: port_stop(self.scene, self.sim.rail, p) for p in self._all_ports}
        seg, off, _, _ = self.sim.state()
        self._last_pos = [(int(seg[i]), float(off[i])) for i in range(self.sim.n)]
        self._vstate = ["" for _ in self.veh]
        self._pending: dict[str, deque[Move]] = {v: deque() for v in self.veh}
        self._done_seen = 0
        self._ticking = False
        self._off = 0.0  # s, fab time minus OHT time (the OHT clock skips idle spells)
        self._enroute: dict[str, int] = {}
        self._ready: dict[str, int] = {}  # lot -> route index its carrier was delivered for
        self._where: dict[str, str] = {}  # carrier -> port it stands at
        self._xfers = 0
        self._port_turn: dict[str, int] = {}
        self._out: list[tuple] = []  # heap (grid time, sim time, n, source, type, subject, data)
        self._n = 0
        self._tool_state: dict[str, str] = {}
        sim_cfg = SimConfig(
            days=cfg.hours / 24.0,
            seed=cfg.seed,
            transport=False,
            initial_wip=cfg.initial_wip,
            breakdowns=cfg.breakdowns,
            pms=cfg.pms,
            wip_sample_days=max(cfg.hours / 24.0, 1e-6),
        )
        # the engine's public hooks: arrivals wait for the carrier; a run that begins with a
        # setup is reported as setup (E10 scheduled down) until the setup ends
        eng = Engine(self.model, sim_cfg, observer=self._observe)
        eng.set_hooks(on_arrive=self._carrier_there, on_start=self._on_start)
        self.engine = eng
        self._seq = {"mes": 0, "amhs": 0}
        self._acc: dict[str, list[Any]] = {}  # tool -> [state, since, productive, total]
        self._counts = {"released": 0, "placed": 0, "completed": 0, "events": 0, "transfers": 0}
        self._counts["clock"] = cfg.start
        if cfg.initial_wip:
            self._place_wip()
        end = eng.end
        for t in eng.steps():
            yield from self._flush(self._grid(t), end)
        yield from self._flush(math.inf, end)

    def run(
        self,
        sink: Sink,
        speed: float | None = None,
        *,
        stop: Callable[[], bool] | None = None,
    ) -> dict[str, Any]:
        """Publish the stream into ``sink``; ``speed``: fab s per wall s (None: at once).

        ``stop()`` is asked after each event and while waiting for the next one (every 0.2 s
        at most); when it says True the run ends after publishing the event in hand, so
        ``kpis()`` (returned) describe exactly what was published.
        """
        if speed is not None and not (speed > 0 and math.isfinite(speed)):
            raise InputError("emulator", [f"speed must be > 0 (or None for max), got {speed!r}"])
        wall0 = t0 = None
        for ev in self.events():
            if speed is not None:
                if wall0 is None:
                    wall0, t0 = _time.monotonic(), ev.time
                due = wall0 + (ev.time - t0) / speed
                while (wait := due - _time.monotonic()) > 0:
                    if stop is not None and stop():
                        break  # publish this one early: the KPIs count what was drawn
                    _time.sleep(min(wait, 0.2))
            sink.publish(ev)
            if stop is not None and stop():
                break
        return self.kpis()

    def kpis(self) -> dict[str, Any]:
        """The emulator's own KPIs, from the events it published: lot and transfer counts, and
        the E10 states it reported (utilisation = productive time / time with a known state, up to the last event
        published). Meaningful once ``events()`` or ``run()`` has produced the stream."""
        if not self._used:
            raise InputError("emulator", ["kpis() come from a run: call events() or run() first"])
        c = self._counts
        clock = c["clock"]
        prod: dict[str, float] = {}
        total: dict[str, float] = {}
        for tid, (state, since, p, tot) in self._acc.items():
            fam = self.scene.node(tid).family
            open_s = max(0.0, clock - since)
            prod[fam] = prod.get(fam, 0.0) + p + (open_s if state == "productive" else 0.0)
            total[fam] = total.get(fam, 0.0) + tot + open_s
        return {
            "sim_hours": self.cfg.hours,
            "seed": self.cfg.seed,
            "events": self._counts["events"],
            "lots_released": c["released"],
            "lots_placed": c["placed"],
            "lots_completed": c["completed"],
            "wip": c["placed"] + c["released"] - c["completed"],
            "transfers": self._counts["transfers"],
            "utilisation_by_family": {
                f: (prod[f] / total[f] if total[f] > 0 else 0.0) for f in sorted(total)
            },
        }

    # ------------------------------------------------------------------ stream
    def _grid(self, t: float) -> float:
        return self.cfg.start + math.floor(t * GRID) / GRID

    def _emit(self, t: float, source: str, type: str, subject: str, **data: Any) -> None:
        self._n += 1
        heapq.heappush(self._out, (self._grid(t), t, self._n, source, type, subject, data))

    def _flush(self, before: float, end: float) -> Iterator[Event]:
        """Events whose grid time is < ``before`` (nothing produced later can precede them)."""
        out, seq, counts = self._out, self._seq, self._counts
        while out and out[0][0] < before:
            gt, t, _, source, type, subject, data = heapq.heappop(out)
            if t > end:
                continue
            seq[source] += 1
            n = seq[source]
            ev = Event(f"{source}:{n}", source, n, gt, type, subject, data)
            counts["events"] += 1
            counts["clock"] = gt
            if type in _COUNTED:
                counts[_COUNTED[type]] += 1
            if type == "equipment.state":
                self._account(subject, data["state"], gt)
            yield ev

    def _account(self, tool: str, state: str, t: float) -> None:
        acc = self._acc.get(tool)
        if acc is None:
            self._acc[tool] = [state, t, 0.0, 0.0]
            return
        dur = t - acc[1]
        if acc[0] == "productive":
            acc[2] += dur
        acc[3] += dur
        acc[0], acc[1] = state, t

    # ------------------------------------------------------------------ engine side
    def _place_wip(self) -> None:
        """The model's initial WIP, as the engine starts it: ``lot.placed`` at time 0, each lot
        queued at its step (its carrier then goes from a stocker to the step's tool)."""
        for w in self.model.wip:
            released = max(0.0, self._grid(min(w.release, 0.0)))
            self._emit(0.0, "mes", "lot.placed", w.id, product=w.product, step=int(w.step),
                       wafers=int(w.wafers), priority=int(w.priority), released=released)  # fmt: skip

    def _observe(self, kind: str, t: float, **f: Any) -> None:
        if kind == "tool_state":
            self._equipment(self.tools[f["tool"]], t, f["state"], f["reason"])
        elif kind == "track_in":
            tid = self.tools[f["tool"]]
            if self._tool_state.get(tid, "standby") not in UP_STATES:
                # the next job starts straight after a setup run: the tool is ready (E10
                # standby) in between, and the engine must report this job's state afresh
                self._equipment(tid, t, "standby", "ready")
                self.engine.tools[f["tool"]].state = ("standby", "ready")
            self._emit(t, "mes", "lot.track_in", f["lot"], equipment=tid, step=int(f["step"]))
        elif kind == "track_out":
            self._emit(t, "mes", "lot.track_out", f["lot"], equipment=self.tools[f["tool"]],
                       step=int(f["step"]))  # fmt: skip
        elif kind == "lot_released":
            self._emit(t, "mes", "lot.released", f["lot"], product=f["product"],
                       priority=int(f["priority"]))  # fmt: skip
        elif kind == "lot_completed":
            self._emit(t, "mes", "lot.completed", f["lot"])
            carrier = f"C-{f['lot']}"
            src = self._where.get(carrier)
            if src is not None:
                bay = self._bay_of_port(src)
                self._transfer(
                    carrier, f["lot"], None, src, self._stocker(self.stk_in, bay), t, None
                )

    def _equipment(self, tid: str, t: float, state: str, reason: str) -> None:
        old = self._tool_state.get(tid)
        if old == "unscheduled_down" and state != old:
            self._emit(t, "mes", "alarm.cleared", tid, alarm="BREAKDOWN")
        if state == "productive" and old is not None and old not in UP_STATES:
            # E10: a tool comes back up through standby, never straight into production
            self._emit(t, "mes", "equipment.state", tid, state="standby", reason="ready")
        self._emit(t, "mes", "equipment.state", tid, state=state, reason=reason)
        if state == "unscheduled_down" and old != state:
            self._emit(t, "mes", "alarm.set", tid, alarm="BREAKDOWN", severity="error",
                       text=f"{tid} down: {reason}")  # fmt: skip
        self._tool_state[tid] = state

    def _on_start(self, tool: Any, lots: list, st: Any, t: float) -> None:
        job = tool.jobs[-1]
        if job.setup > 0:
            self.engine.schedule(t + job.setup, lambda now: self._setup_end(tool, job, now))

    def _setup_end(self, tool: Any, job: Any, t: float) -> None:
        """The end of a setup: the tool now processes the lots (E10 productive)."""
        if job in tool.jobs and tool.state == ("scheduled_down", "setup") and tool.down_until <= t:
            tool.state = ("productive", "processing")
            self._equipment(self.tools[tool.id], t, "productive", "processing")

    def _carrier_there(self, lot: Any, t: float) -> bool:
        """False if the lot may join its queue now; True if a transfer was started for it."""
        if lot.step.delay or self._ready.get(lot.id) == lot.idx:
            self._ready.pop(lot.id, None)
            return False
        carrier = f"C-{lot.id}"
        fam = lot.step.fam
        first_tool = self.tools[fam.tools[0].id]
        bay = self.scene.node(first_tool).parent
        src = self._where.get(carrier) or self._stocker(self.stk_out, bay)
        tool = None
        if fam.batching:
            dest = self._stocker(self.stk_in, bay)  # staged; the batch picks its furnace later
        else:
            tool = (lot.dedic or {}).get(lot.idx) or min(
                fam.tools,
                key=lambda tl: (tl.down_until > t, len(tl.jobs) + len(tl.ded)
                                + self._enroute.get(tl.id, 0)),
            )  # fmt: skip
            if lot.dedic is None:
                lot.dedic = {}
            lot.dedic[lot.idx] = tool
            scene_tool = self.tools[tool.id]
            if src in self.ports[scene_tool]:
                return False  # already at a port of that tool
            ports = self.ports[scene_tool]
            k = self._port_turn.get(scene_tool, 0)
            self._port_turn[scene_tool] = k + 1
            dest = ports[k % len(ports)]
            self._enroute[tool.id] = self._enroute.get(tool.id, 0) + 1
        if src == dest:
            return False
        self._transfer(carrier, lot.id, lot, src, dest, t, tool)
        return True

    def _stocker(self, ports: dict[str | None, str], bay: str | None) -> str:
        return ports.get(bay) or next(iter(ports.values()))

    def _bay_of_port(self, port: str) -> str | None:
        return self.scene.node(self.scene.ports[port].tool).parent


def load_emulator(src: str, *, process: str | None = None, **kw: Any) -> Emulator:
    """An emulator for a scene folder (its ``process/`` model) or a scene plus ``process``."""
    from twin.process import load_model
    from twin.scene.load import load_scene

    scene = load_scene(src)
    process = process or scene.metadata.get("process_dir")
    if process is None:
        raise InputError(
            "twin emulate",
            [f"{src}: the scene names no process model (scene.yaml 'process:'); pass --process"],
        )
    return Emulator(scene, load_model(process), **kw)
