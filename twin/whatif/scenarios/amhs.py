"""Scenario changes of the AMHS (twin.amhs): transport kind, fleet size, speed, vehicle dispatch.

Written in a scenario file as::

    - transport: amhs            # or table
    - vehicles: {count: 400}     # or {add: -100}
    - vehicle_speed: 1.2         # factor on every speed cap
    - vehicle_dispatch: nearest  # or first_free
    - rail_speed: {bay: A16, factor: 0.5}  # the bay's rail speed caps × factor
    - relocate: {family: Litho_FE_92, bay: B3}  # its tools at free ports of that bay

They need the run's layout (``twin whatif run MODEL --layout SCENE_OR_XLSX``); a fleet of 0 or
fewer vehicles, or a layout that misses a family, is refused before anything runs.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, ClassVar

from twin.process.model import FabModel
from twin.whatif.scenarios.changes import Change

AMHS_KINDS: dict[str, str] = {
    "transport": "table or amhs (amhs needs the run's --layout)",
    "vehicles": "{count: n} or {add: n} (the fleet, > 0 vehicles)",
    "vehicle_speed": "a factor in (0, 100] on every vehicle speed cap",
    "vehicle_dispatch": "nearest or first_free",
    "rail_speed": "{bay: name, factor: x in (0, 100]} (a bay of the layout)",
    "relocate": "{family: name, bay: name} (the bay needs a free port per tool)",
}


@dataclass(frozen=True, kw_only=True)
class Amhs(Change):
    """One AMHS setting of a scenario: ``what`` is a key of AMHS_KINDS, ``value`` its value."""

    kind: ClassVar[str] = "amhs"
    what: str = "transport"
    value: Any = None

    @property
    def label(self) -> str:
        return self.what

    def _spec(self, model: FabModel):
        spec = getattr(model, "amhs", None)
        if spec is None:
            return None
        w, v = self.what, self.value
        if w == "transport":
            return dataclasses.replace(spec, enabled=v == "amhs")
        if w == "vehicles":
            (key, n), *_ = v.items()
            if key == "count":
                return dataclasses.replace(spec, vehicles=n, add=0)
            return dataclasses.replace(spec, add=spec.add + n)
        if w == "vehicle_speed":
            return dataclasses.replace(spec, vehicle_speed=spec.vehicle_speed * v)
        if w == "rail_speed":
            return dataclasses.replace(spec, rail_speed=(*spec.rail_speed, (v["bay"], v["factor"])))
        if w == "relocate":
            return dataclasses.replace(spec, relocate=(*spec.relocate, (v["family"], v["bay"])))
        return dataclasses.replace(spec, dispatch_rule=v)

    def check(self, model: FabModel, where: str) -> list[str]:
        from twin.amhs.transport import _scene_and_placement
        from twin.errors import TwinError

        w, v = self.what, self.value
        if w == "transport" and v not in ("table", "amhs"):
            return [f"{where}: transport is table or amhs, got {v!r}"]
        if w == "transport" and v == "table" and getattr(model, "amhs", None) is None:
            return []
        if getattr(model, "amhs", None) is None:
            return [f"{where}: {w} needs the AMHS layout: run with --layout SCENE_OR_XLSX"]
        if w == "vehicles":
            ok = isinstance(v, dict) and len(v) == 1 and next(iter(v)) in ("count", "add")
            n = next(iter(v.values())) if ok else None
            if not ok or isinstance(n, bool) or not isinstance(n, int):
                return [f"{where}: vehicles takes {AMHS_KINDS['vehicles']}, got {v!r}"]
        if w == "vehicle_speed" and not (
            isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) and v > 0
        ):
            return [f"{where}: vehicle_speed takes {AMHS_KINDS['vehicle_speed']}, got {v!r}"]
        if w == "rail_speed":
            ok = isinstance(v, dict) and set(v) == {"bay", "factor"} and isinstance(v["bay"], str)
            f = v.get("factor") if ok else None
            if not ok or isinstance(f, bool) or not isinstance(f, int | float):
                return [f"{where}: rail_speed takes {AMHS_KINDS['rail_speed']}, got {v!r:.200}"]
            if not (math.isfinite(f) and 0 < f <= 100):
                return [f"{where}: rail_speed takes {AMHS_KINDS['rail_speed']}, got {v!r:.200}"]
        if w == "relocate" and not (
            isinstance(v, dict)
            and set(v) == {"family", "bay"}
            and all(isinstance(x, str) for x in v.values())
        ):
            return [f"{where}: relocate takes {AMHS_KINDS['relocate']}, got {v!r:.200}"]
        spec = self._spec(model)
        problems = [f"{where}: {p}" for p in spec.problems()]
        if problems:
            return problems
        try:
            scene, _ = _scene_and_placement(spec, model)
        except TwinError as exc:
            return [f"{where}: {exc}"]
        if w == "rail_speed":
            bays = sorted({seg.bay for seg in scene.segments.values() if seg.bay})
            if v["bay"] not in bays:
                return [
                    f"{where}: rail_speed: no bay {v['bay']!r:.100} in the layout; bays: "
                    + ", ".join(bays[:50])
                ]
        n = spec.fleet(len(scene.nodes("vehicle")))
        if n <= 0:
            return [f"{where}: vehicle count must be > 0, got {n}"]
        if n > 100_000:
            return [f"{where}: vehicle count {n} is more than 100000"]
        return []

    def apply(self, model: FabModel) -> None:
        model.amhs = self._spec(model)

    def describe(self) -> str:
        return f"{self.what} {self.value}"
