"""What the event validator knows about the fab: equipment, ports, vehicles, rails, routes.

A ``Catalog`` is plain data built from a ``SceneGraph`` (and optionally a process model); the
validator and the twin state read it and never touch the scene itself.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class RouteStep:
    """One step of a product's route: the tool family that serves it (none for a delay)."""

    number: int
    family: str | None
    is_delay: bool = False


@dataclass(kw_only=True)
class Catalog:
    """Known ids. An empty mapping means "not known": references of that kind are not checked."""

    equipment: dict[str, str | None] = field(default_factory=dict)  # id -> family (None: stocker)
    ports: dict[str, str | None] = field(default_factory=dict)  # port -> equipment it serves
    vehicles: set[str] = field(default_factory=set)
    segments: dict[str, float] = field(default_factory=dict)  # rail segment -> length (m)
    products: dict[str, tuple[RouteStep, ...]] = field(default_factory=dict)

    @classmethod
    def from_scene(cls, scene: Any, model: Any = None) -> Catalog:
        """Tools, stockers, ports, vehicles and rail segments of a scene; routes from a model.

        ``model`` follows the process contract: ``model.products[p].route`` names a route in
        ``model.routes`` whose ``steps`` have ``number``, ``family`` and ``is_delay``.
        """
        equipment: dict[str, str | None] = {}
        vehicles: set[str] = set()
        for node in scene.nodes(("tool", "stocker", "station", "vehicle")):
            if node.kind == "vehicle":
                vehicles.add(node.id)
            else:
                equipment[node.id] = node.family if node.kind == "tool" else None
        ports = {p: link.tool for p, link in scene.ports.items()}
        for node in scene.nodes("port"):
            ports.setdefault(node.id, node.parent if node.parent in equipment else None)
        segments = {sid: seg.length for sid, seg in scene.segments.items()}
        products = cls._routes(model) if model is not None else {}
        return cls(
            equipment=equipment,
            ports=ports,
            vehicles=vehicles,
            segments=segments,
            products=products,
        )

    @staticmethod
    def _routes(model: Any) -> dict[str, tuple[RouteStep, ...]]:
        out: dict[str, tuple[RouteStep, ...]] = {}
        for name, product in model.products.items():
            route = model.routes[product.route]
            out[name] = tuple(
                RouteStep(
                    int(s.number),
                    None if getattr(s, "is_delay", False) else s.family,
                    bool(getattr(s, "is_delay", False)),
                )
                for s in route.steps
            )
        return out

    def knows_location(self, loc: str) -> bool:
        """A carrier can be at equipment, at a port, or on a vehicle."""
        if not (self.equipment or self.ports or self.vehicles):
            return True
        return loc in self.equipment or loc in self.ports or loc in self.vehicles

    def to_dict(self) -> dict[str, Any]:
        return {
            "equipment": self.equipment,
            "ports": self.ports,
            "vehicles": sorted(self.vehicles),
            "segments": self.segments,
            "products": {
                p: [[s.number, s.family, s.is_delay] for s in steps]
                for p, steps in self.products.items()
            },
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Catalog:
        return cls(
            equipment=dict(d.get("equipment", {})),
            ports=dict(d.get("ports", {})),
            vehicles=set(d.get("vehicles", ())),
            segments={k: float(v) for k, v in d.get("segments", {}).items()},
            products={
                p: tuple(RouteStep(int(n), f, bool(dl)) for n, f, dl in steps)
                for p, steps in d.get("products", {}).items()
            },
        )
