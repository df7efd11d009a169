"""A small, seeded generator of realistic, valid event streams (for tests, benchmarks, demos).

It builds a compact fab (tool families with load ports, a stocker, a rail loop with OHT vehicles)
and walks lots along re-entrant routes: carrier transfers by vehicles with position reports,
track-in/out with E10 productive/standby changes, breakdowns with alarms, PMs, holds, reworks and
scrap. Events come from two sources, ``mes`` (equipment and lots) and ``amhs`` (carriers and
vehicles), each with its own seq. The same seed gives the same stream. It is not the fab emulator
(``twin emulate`` drives the process model); it is a self-contained stream for checking the pipe.
"""

from __future__ import annotations

import bisect
import random
from dataclasses import dataclass

from twin.live.catalog import Catalog, RouteStep
from twin.live.events import Event
from twin.scene.graph import Node, SceneGraph, translation

FAMILIES = {"LITHO": 3, "ETCH": 2, "DIFF": 2, "IMPL": 2, "CMP": 1}
ROUTES = {
    "P1": ("DIFF", "LITHO", "ETCH", None, "IMPL", "LITHO", "ETCH", "CMP"),
    "P2": ("LITHO", "ETCH", "DIFF", "LITHO", None, "ETCH", "CMP"),
}
SEG_LEN = 10.0  # m, each rail loop segment
N_SEGMENTS = 12
STOCKER = "STK1"


def synthetic_scene(n_vehicles: int = 4) -> SceneGraph:
    """Tools (one port each) around a rail loop, a stocker, and ``n_vehicles`` vehicles."""
    g = SceneGraph("synthetic-fab")
    g.add(Node(id="fab", kind="fab"))
    g.add(Node(id="bay1", kind="bay", parent="fab"))
    for i in range(N_SEGMENTS):
        g.add_rail_node(f"R{i}", i * SEG_LEN, 0.0, 4.0, parent="fab")
    for i in range(N_SEGMENTS):
        g.add_segment(f"S{i}", f"R{i}", f"R{(i + 1) % N_SEGMENTS}", max_speed=3.0, length=SEG_LEN)
    g.vehicle_types["oht"] = {
        "length": 0.9, "max_speed": 3.0, "acceleration": 1.0, "deceleration": 1.0,
        "min_distance": 1.5,
    }  # fmt: skip
    k = 0
    for fam, count in FAMILIES.items():
        for j in range(count):
            tid = f"{fam}_{j + 1}"
            g.add(Node(id=tid, kind="tool", parent="bay1", family=fam, area=fam, size=(2, 3, 2),
                       transform=translation(k * 4.0, 3.0)))  # fmt: skip
            g.add(Node(id=f"{tid}.P1", kind="port", parent=tid))
            g.link_port(f"{tid}.P1", tool=tid, segment=f"S{k % N_SEGMENTS}", offset=5.0)
            k += 1
    g.add(Node(id=STOCKER, kind="stocker", parent="bay1", size=(4, 4, 4)))
    g.add(Node(id=f"{STOCKER}.P1", kind="port", parent=STOCKER))
    g.link_port(f"{STOCKER}.P1", tool=STOCKER, segment="S0", offset=1.0)
    for v in range(n_vehicles):
        g.add(Node(id=f"V{v + 1}", kind="vehicle", parent="fab",
                   attrs={"vehicle_type": "oht", "segment": f"S{v}", "offset": 0.0}))  # fmt: skip
    return g


def synthetic_catalog(n_vehicles: int = 4) -> Catalog:
    cat = Catalog.from_scene(synthetic_scene(n_vehicles))
    cat.products = {
        p: tuple(RouteStep(10 * (i + 1), f, f is None) for i, f in enumerate(fams))
        for p, fams in ROUTES.items()
    }
    return cat


@dataclass(kw_only=True)
class StreamConfig:
    lots: int = 50
    seed: int = 0
    start: float = 1_800_000_000.0  # s, UTC epoch of the first event
    release_gap: float = 600.0  # s between lot releases (mean)
    process_time: float = 1800.0  # s per step (mean)
    p_breakdown: float = 0.05  # per track-out
    p_pm: float = 0.02  # per track-out
    p_hold: float = 0.03
    p_rework: float = 0.02
    p_scrap: float = 0.005
    position_every: float = 2.0  # s between vehicle position reports while moving
    vehicles: int = 4


class _Timeline:
    """Busy intervals of one tool or vehicle; a reservation takes the earliest free slot."""

    def __init__(self) -> None:
        self.starts: list[float] = []
        self.ends: list[float] = []

    def reserve(self, t: float, duration: float, margin: float = 0.05) -> float:
        i = bisect.bisect_right(self.ends, t)  # intervals ending after t may block
        start = t
        while i < len(self.starts):
            if start + duration + margin <= self.starts[i]:
                break
            start = max(start, self.ends[i] + margin)
            i += 1
        j = bisect.bisect_left(self.starts, start)
        self.starts.insert(j, start)
        self.ends.insert(j, start + duration)
        return start


class _Gen:
    def __init__(self, cfg: StreamConfig, catalog: Catalog) -> None:
        self.cfg, self.cat = cfg, catalog
        self.rng = random.Random(cfg.seed)
        self.raw: list[tuple[float, int, str, str, str, dict]] = []
        self.n = 0
        self.tools: dict[str, list[str]] = {}
        for eid, fam in sorted(catalog.equipment.items()):
            if fam is not None:
                self.tools.setdefault(fam, []).append(eid)
        self.tool_busy = {t: _Timeline() for ts in self.tools.values() for t in ts}
        self.vehicles = sorted(catalog.vehicles)
        self.veh_busy = {v: _Timeline() for v in self.vehicles}
        self.port = {p_tool: p for p, p_tool in sorted(catalog.ports.items()) if p_tool}
        self.transfers = 0

    def emit(self, t: float, source: str, type: str, subject: str, **data: object) -> None:
        self.raw.append((t, self.n, source, type, subject, data))
        self.n += 1

    def run(self) -> list[Event]:
        cfg, rng = self.cfg, self.rng
        for tools in self.tools.values():
            for t in tools:
                self.emit(cfg.start, "mes", "equipment.state", t, state="standby", reason="idle")
        for v in self.vehicles:
            self.emit(cfg.start, "amhs", "vehicle.state", v, state="idle")
        # Lots are walked one at a time in release order; tools and vehicles are reserved on
        # timelines, so every entity's events are consistent whatever the interleaving.
        t_rel = cfg.start + 10.0
        for i in range(cfg.lots):
            products = sorted(self.cat.products)
            self._lot(f"L{i + 1:05d}", products[i % len(products)], t_rel)
            t_rel += rng.expovariate(1.0 / cfg.release_gap)
        self.raw.sort(key=lambda r: (r[0], r[1]))
        seqs: dict[str, int] = {}
        out = []
        for t, _, src, ty, subj, data in self.raw:
            seqs[src] = seqs.get(src, 0) + 1
            out.append(Event(f"{src}:{seqs[src]}", src, seqs[src], round(t, 6), ty, subj, data))
        return out

    def _lot(self, lot: str, product: str, t: float) -> None:
        cfg, rng = self.cfg, self.rng
        route = self.cat.products[product]
        carrier = f"C-{lot}"
        self.emit(t, "mes", "lot.released", lot, product=product, wafers=25)
        where = f"{STOCKER}.P1"
        i, reworked = 0, False
        while i < len(route):
            step = route[i]
            if step.is_delay:
                t += 300.0
                i += 1
                continue
            tool = self.tools[step.family][rng.randrange(len(self.tools[step.family]))]
            dest = self.port[tool]
            t = self._transfer(carrier, lot, where, dest, t)
            where = dest
            run = rng.uniform(0.5, 1.5) * cfg.process_time
            down = self._pick_downtime()
            start = self.tool_busy[tool].reserve(t + 1.0, run + 0.01 + down[1]) + 0.002
            self.emit(
                start - 0.002, "mes", "equipment.state", tool, state="productive", reason="run"
            )
            self.emit(start, "mes", "lot.track_in", lot, equipment=tool, step=step.number)
            end = start + run
            self.emit(end, "mes", "lot.track_out", lot, equipment=tool, step=step.number)
            self.emit(end + 0.002, "mes", "equipment.state", tool, state="standby", reason="idle")
            self._downtime(tool, end + 0.005, down)
            t = end + 0.01
            r = rng.random()
            if r < cfg.p_scrap:
                self.emit(t, "mes", "lot.scrap", lot, reason="defect")
                return
            if r < cfg.p_scrap + cfg.p_hold:
                self.emit(t, "mes", "lot.hold", lot, reason="spc")
                t += rng.uniform(300, 3600)
                self.emit(t, "mes", "lot.hold_released", lot, reason="dispositioned")
            elif not reworked and r < cfg.p_scrap + cfg.p_hold + cfg.p_rework:
                self.emit(t, "mes", "lot.rework", lot, step=step.number, reason="overlay")
                reworked = True
                t += 0.01
                continue  # repeat this step
            i += 1
        t = self._transfer(carrier, lot, where, f"{STOCKER}.P1", t)
        self.emit(t + 0.01, "mes", "lot.completed", lot)

    def _pick_downtime(self) -> tuple[str, float]:
        """After a run: nothing, a breakdown (repair + 600 s qualification) or a 2 h PM."""
        rng, cfg = self.rng, self.cfg
        r = rng.random()
        if r < cfg.p_breakdown:
            return "breakdown", rng.expovariate(1 / 3600.0) + 600.0
        if r < cfg.p_breakdown + cfg.p_pm:
            return "pm", 7200.0
        return "", 0.0

    def _downtime(self, tool: str, t: float, down: tuple[str, float]) -> None:
        kind, duration = down
        if kind == "breakdown":
            self.emit(
                t, "mes", "equipment.state", tool, state="unscheduled_down", reason="breakdown"
            )
            self.emit(t + 0.001, "mes", "alarm.set", tool, alarm="E042", severity="error",
                      text="chamber fault")  # fmt: skip
            t += duration - 600.0
            self.emit(t, "mes", "alarm.cleared", tool, alarm="E042")
            self.emit(
                t + 0.001,
                "mes",
                "equipment.state",
                tool,
                state="engineering",
                reason="qualification",
            )
            self.emit(t + 600.0, "mes", "equipment.state", tool, state="standby", reason="idle")
        elif kind == "pm":
            self.emit(t, "mes", "equipment.state", tool, state="scheduled_down", reason="PM")
            self.emit(t + duration, "mes", "equipment.state", tool, state="standby", reason="idle")

    def _transfer(self, carrier: str, lot: str, src: str, dst: str, t: float) -> float:
        """A carrier moved by the first free vehicle; returns the delivery time."""
        rng, cfg = self.rng, self.cfg
        self.transfers += 1
        xfer = f"T{self.transfers:06d}"
        self.emit(t, "amhs", "carrier.transfer_requested", carrier, transfer=xfer,
                  **{"from": src, "to": dst}, lot=lot)  # fmt: skip
        v = self.vehicles[rng.randrange(len(self.vehicles))]
        legs = rng.randint(3, 8)  # segments travelled to the source, then to the destination
        duration = 2 * (legs * 2 * cfg.position_every + 15.0) + 0.01
        t = self.veh_busy[v].reserve(t + 0.5, duration)
        self.emit(t, "amhs", "carrier.vehicle_assigned", carrier, transfer=xfer, vehicle=v)
        self.emit(t + 0.001, "amhs", "vehicle.state", v, state="moving")
        seg = rng.randrange(N_SEGMENTS)
        for phase in ("acquire", "deposit"):
            for _ in range(legs):
                for off in (0.0, SEG_LEN / 2):
                    t += cfg.position_every
                    self.emit(
                        t, "amhs", "vehicle.position", v, segment=f"S{seg}", offset=off, speed=2.5
                    )
                seg = (seg + 1) % N_SEGMENTS
            t += 15.0  # hoist
            if phase == "acquire":
                self.emit(t, "amhs", "carrier.picked_up", carrier, transfer=xfer, vehicle=v)
        self.emit(t, "amhs", "carrier.delivered", carrier, transfer=xfer, vehicle=v)
        self.emit(t + 0.002, "amhs", "vehicle.state", v, state="idle")
        return t + 0.01


def synthetic_stream(
    cfg: StreamConfig | None = None, catalog: Catalog | None = None
) -> list[Event]:
    """A valid, time-ordered event stream for ``catalog`` (default: ``synthetic_catalog()``)."""
    cfg = cfg or StreamConfig()
    return _Gen(cfg, catalog or synthetic_catalog(cfg.vehicles)).run()
