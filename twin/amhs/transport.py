"""The AMHS as the reference engine's transport: the object the engine calls for every move.

A model that should move lots with the AMHS carries an enabled ``AmhsSpec`` as ``model.amhs``
(set by ``attach``: the CLI's ``--layout`` and ``--transport amhs``, then a scenario's
``transport: amhs|table``, ``vehicles``, ``vehicle_speed``, ``vehicle_dispatch``,
``rail_speed``, ``relocate``). The
reference engine then builds one ``AmhsTransport`` per replication and asks it, for every move
between steps, when the lot arrives (``transport(lot, t)``) instead of drawing from
``fromto.txt``.

Where a lot goes: the engine queues a lot at a family and only later picks the tool, so the
carrier goes to one of the family's layout tools (``twin.amhs.layout``, drawn uniformly, seeded
per replication) and the lot's next move starts there. A lot whose position is not known yet
(initial WIP, the first move after release) starts at a random tool of the family of the step
before. A move into a pure delay step (no tool) costs nothing: the lot waits where it stands.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any

import numpy as np

from twin.amhs.layout import COUNT_RULES, LayoutConfig, Placement, place, relocate
from twin.amhs.model import DISPATCH_RULES, AmhsConfig, AmhsModel
from twin.errors import ConfigError

if TYPE_CHECKING:
    from twin.process import FabModel

TRANSPORTS = ("table", "amhs")


@dataclass(frozen=True, kw_only=True)
class AmhsSpec:
    """What a run or scenario asks of the AMHS (plain values: it is deep-copied with models)."""

    layout: str  # scene folder, scene file, SMAT2022 workbook or shipped scene name
    enabled: bool = True  # False: the layout is known but lots move by the table
    vehicles: int | None = None  # fleet size (None: the layout's vehicles)
    add: int = 0  # vehicles added to (or, negative, taken from) the fleet
    vehicle_speed: float = 1.0  # factor on every speed cap
    rail_speed: tuple[tuple[str, float], ...] = ()  # (bay, factor) on the bay's rail caps
    relocate: tuple[tuple[str, str], ...] = ()  # (family, bay): served at free ports there
    dispatch_rule: str = "nearest"
    count_rule: str = "layout"
    congestion: float = AmhsConfig().congestion

    def problems(self) -> list[str]:
        """Every bad field, said for people (an empty list: fine)."""
        out = []
        if not isinstance(self.layout, str) or not self.layout or len(self.layout) > 4096:
            out.append(f"layout must name a scene or workbook, got {self.layout!r:.200}")
        elif not self.layout.isprintable() or _unencodable(self.layout):
            out.append(f"layout {self.layout!r:.200} is not a valid path (odd characters)")
        for name in ("vehicles", "add"):
            v = getattr(self, name)
            if v is not None and (isinstance(v, bool) or not isinstance(v, int)):
                out.append(f"{name} must be a whole number, got {v!r}")
        if isinstance(self.vehicles, int) and not isinstance(self.vehicles, bool):
            if self.vehicles <= 0:
                out.append(f"vehicle count must be > 0, got {self.vehicles}")
            elif self.vehicles > 100_000:
                out.append(f"vehicle count {self.vehicles} is more than 100000")
        if isinstance(self.add, int) and abs(self.add) > 100_000:
            out.append(f"add {self.add}: at most 100000 either way")
        for name in ("vehicle_speed", "congestion"):
            v = getattr(self, name)
            ok = isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)
            if not ok or not (0 <= v <= 100) or (name == "vehicle_speed" and v == 0):
                out.append(f"{name} must be a number in (0, 100], got {v!r}")
        if self.dispatch_rule not in DISPATCH_RULES:
            out.append(
                f"dispatch_rule {self.dispatch_rule!r}: use one of {', '.join(DISPATCH_RULES)}"
            )
        if self.count_rule not in COUNT_RULES:
            out.append(f"count_rule {self.count_rule!r}: use one of {', '.join(COUNT_RULES)}")
        return out

    def fleet(self, layout_vehicles: int) -> int:
        return (self.vehicles if self.vehicles is not None else layout_vehicles) + self.add


def _unencodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


SPEC_KEYS = tuple(f.name for f in fields(AmhsSpec))


def _scene_and_placement(spec: AmhsSpec, model: FabModel):
    """The layout (loaded once per process) and the model's families placed on it."""
    from twin.scene.load import load_scene

    scene = _SCENES.get(spec.layout)
    if scene is None:
        if len(_SCENES) >= 4:
            _SCENES.clear()
        scene = _SCENES[spec.layout] = load_scene(spec.layout)
    placement = place(scene, model, LayoutConfig(count_rule=spec.count_rule))
    relocate(placement, scene, spec.relocate)
    return scene, placement


_SCENES: dict[str, Any] = {}


def attach(model: FabModel, spec: AmhsSpec | None) -> Placement | None:
    """Make ``model`` move lots with the AMHS of ``spec`` (None: back to the table); checks
    the spec, the layout and the family placement first, raising with every problem.
    Returns the placement (its ``table()`` is the family reconciliation)."""
    if spec is None:
        model.amhs = None
        return None
    problems = spec.problems()
    if problems:
        raise ConfigError("AMHS transport", problems)
    scene, placement = _scene_and_placement(spec, model)
    n = spec.fleet(len(scene.nodes("vehicle")))
    if n <= 0:
        raise ConfigError("AMHS transport", [f"vehicle count must be > 0, got {n}"])
    model.amhs = spec
    return placement


class AmhsTransport:
    """One replication's AMHS: ``self(lot, t)`` is the time the lot arrives at its step."""

    def __init__(self, model: FabModel, spec: AmhsSpec, seed: int, replication: int):
        scene, placement = _scene_and_placement(spec, model)
        n = spec.fleet(len(scene.nodes("vehicle")))
        self.model = AmhsModel(
            scene,
            AmhsConfig(
                vehicles=n,
                vehicle_speed=spec.vehicle_speed,
                rail_speed=spec.rail_speed,
                dispatch_rule=spec.dispatch_rule,
                congestion=spec.congestion,
                seed=seed,
            ),
        )
        m = self.model
        self.dest = {
            f: [m.stop_of_port(placement.port_of[t]) for t in fp.tools]
            for f, fp in placement.families.items()
        }
        self.rng = random.Random(f"amhs/{seed}/{replication}")
        self.where: dict[str, int] = {}  # lot id -> stop where it stands

    def __call__(self, lot: Any, t: float) -> float:
        dests = self.dest.get(lot.step.fam.name)
        if dests is None:  # a pure delay step: the lot waits where it stands
            return t
        dst = dests[int(self.rng.random() * len(dests))]
        src = self.where.get(lot.id)
        if src is None:
            src = self._start(lot)
        self.where[lot.id] = dst
        if src == dst or src is None:
            return t
        return self.model.move(t, src, dst)

    def _start(self, lot: Any) -> int | None:
        route = lot.route
        for i in range(lot.idx - 1, -1, -1):
            dests = self.dest.get(route[i].fam.name)
            if dests:
                return dests[int(self.rng.random() * len(dests))]
        return None

    def kpis(self, warm: float, end: float, records: Any = None) -> dict[str, Any]:
        """The AMHS KPIs of moves requested in [warm, end]."""
        m = self.model
        out = m.kpis(max(end - warm, 1e-9), since=warm)
        req = np.asarray(m.stats.request)
        keep = req >= warm
        done = req[keep] + np.asarray(m.stats.delivery)[keep]
        start = req[keep] + np.asarray(m.stats.wait)[keep]
        span = max(end - warm, 1e-9)
        out["utilisation"] = float((np.minimum(done, end) - start).clip(0).sum() / (m.n * span))
        out["congested_segments"] = {s["segment"]: s["delay_s"] for s in out["congested_segments"]}
        if records is not None and len(records.completion):
            comp = np.asarray(records.completion, dtype=float)
            sel = comp >= warm
            ct = comp[sel] - np.asarray(records.release, dtype=float)[sel]
            tt = np.asarray(records.transport_time, dtype=float)[sel]
            total = float(ct.sum())
            if total > 0:
                out["transport_share"] = float(tt.sum()) / total
                dm = out.get("delivery_mean_s") or 0.0
                wait = (out.get("wait_mean_s") or 0.0) + (out.get("empty_travel_mean_s") or 0.0)
                out["wait_share"] = out["transport_share"] * (wait / dm if dm > 0 else 0.0)
        return out
