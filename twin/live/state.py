"""The twin state and the function that applies one event to it.

``apply(state, event)`` depends only on (state, event) and is deterministic; it updates the state
in place and returns it, because copying a fab's state per event would cap the rate far below the
200,000 events/s target. Take ``state.copy()`` first when an untouched original is needed.
Duplicates and replays are no-ops: each source's highest applied ``seq`` is kept, and an event
at or below it changes nothing. ``apply`` assumes the event passed ``validate`` (the synchroniser
guarantees it) but never raises on one that did not.

Every entity carries ``rev``, the number of events that changed it; ``state.revision`` counts
every applied event. Each event type's effect is declared with its fields and validation in
``twin.live.types`` (``twin.live.registry``); ``apply`` looks it up there.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from twin.live.catalog import Catalog, RouteStep

if TYPE_CHECKING:
    from twin.live.events import Event

LOT_ACTIVE = frozenset({"queued", "processing", "hold"})
TRANSFER_ACTIVE = frozenset({"requested", "assigned", "in_transit"})
MOVE_WINDOW_MIN = 60  # moves-per-hour window, in minute buckets


class _Record:
    """Slots-based mutable record with dict round trip (cheap attribute access, no copies)."""

    __slots__ = ()

    def to_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__slots__}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Any:
        obj = cls.__new__(cls)
        for k in cls.__slots__:
            setattr(obj, k, d[k])
        return obj

    def __eq__(self, other: object) -> bool:
        return type(self) is type(other) and self.to_dict() == other.to_dict()  # type: ignore[attr-defined]

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.to_dict()})"


class Equipment(_Record):
    __slots__ = ("id", "family", "state", "reason", "since", "time_in", "lots", "setup", "rev")

    def __init__(self, id: str, family: str | None) -> None:
        self.id, self.family = id, family
        self.state: str | None = None  # E10 state; None until the first report
        self.reason = ""
        self.since = 0.0  # s, event time of the last state change
        self.time_in: dict[str, float] = {}  # E10 state -> s spent in it (closed intervals)
        self.lots: list[str] = []
        self.setup: str | None = None
        self.rev = 0


class Lot(_Record):
    __slots__ = (
        "id", "product", "step", "index", "status", "location", "hold_reason",
        "released", "updated", "completed", "moves", "rev",
    )  # fmt: skip

    def __init__(self, id: str, product: str, released: float) -> None:
        self.id, self.product = id, product
        self.step: int | None = None  # route step number the lot is at (next or in process)
        self.index = 0  # position in the route (when the route is known)
        self.status = "queued"  # queued | processing | hold | completed | scrapped
        self.location: str | None = None  # equipment while processing
        self.hold_reason = ""
        self.released = released
        self.updated = released
        self.completed: float | None = None
        self.moves = 0
        self.rev = 0


class Carrier(_Record):
    __slots__ = (
        "id", "transfer", "status", "source", "dest", "vehicle", "location", "lot",
        "requested", "updated", "rev",
    )  # fmt: skip

    def __init__(self, id: str) -> None:
        self.id = id
        self.transfer: str | None = None
        self.status = "idle"  # idle | requested | assigned | in_transit | delivered | failed
        self.source: str | None = None
        self.dest: str | None = None
        self.vehicle: str | None = None
        self.location: str | None = None
        self.lot: str | None = None
        self.requested = 0.0
        self.updated = 0.0
        self.rev = 0


class Vehicle(_Record):
    __slots__ = ("id", "segment", "offset", "speed", "state", "carrier", "updated", "rev")

    def __init__(self, id: str) -> None:
        self.id = id
        self.segment: str | None = None
        self.offset = 0.0  # m along segment
        self.speed = 0.0  # m/s
        self.state = "idle"
        self.carrier: str | None = None
        self.updated = 0.0
        self.rev = 0


class TwinState:
    """Everything the twin knows now. Mutated only by ``apply``."""

    def __init__(self, catalog: Catalog | None = None) -> None:
        self.catalog = catalog or Catalog()
        self.equipment: dict[str, Equipment] = {
            eid: Equipment(eid, fam) for eid, fam in self.catalog.equipment.items()
        }
        self.lots: dict[str, Lot] = {}
        self.carriers: dict[str, Carrier] = {}
        self.vehicles: dict[str, Vehicle] = {v: Vehicle(v) for v in sorted(self.catalog.vehicles)}
        self.alarms: dict[str, dict[str, Any]] = {}  # "<subject>/<alarm>" -> alarm
        self.last_seq: dict[str, int] = {}  # source -> highest applied seq
        self.revision = 0  # events applied
        self.clock = 0.0  # s, latest event time seen
        self.wip_by_step: dict[int | None, int] = {}
        self.wip_by_family: dict[str | None, int] = {}
        self.moves = 0  # track-outs
        self.moves_by_minute: dict[int, int] = {}
        self.lots_completed = 0
        self.lots_scrapped = 0
        self.cycle_time_sum = 0.0  # s over completed lots
        self.gaps: list[dict[str, Any]] = []

    # ------------------------------------------------------------- queries
    def route(self, product: str) -> tuple[RouteStep, ...] | None:
        return self.catalog.products.get(product)

    def moves_per_hour(self) -> int:
        """Track-outs whose event time lies in the hour before the clock."""
        now = int(self.clock // 60)
        return sum(n for m, n in self.moves_by_minute.items() if m > now - MOVE_WINDOW_MIN)

    def utilisation_by_family(self) -> dict[str, float]:
        """E10 utilisation per family: productive time / observed time, up to the clock."""
        prod: dict[str, float] = {}
        total: dict[str, float] = {}
        for e in self.equipment.values():
            if e.family is None or e.state is None:
                continue
            open_s = max(0.0, self.clock - e.since)
            p = e.time_in.get("productive", 0.0) + (open_s if e.state == "productive" else 0.0)
            t = sum(e.time_in.values()) + open_s
            prod[e.family] = prod.get(e.family, 0.0) + p
            total[e.family] = total.get(e.family, 0.0) + t
        return {f: (prod[f] / total[f] if total[f] > 0 else 0.0) for f in sorted(total)}

    def wip(self) -> int:
        return sum(self.wip_by_step.values())

    def mean_cycle_time(self) -> float | None:
        return self.cycle_time_sum / self.lots_completed if self.lots_completed else None

    def kpis(self) -> dict[str, Any]:
        return {
            "wip": self.wip(),
            "wip_by_step": {str(k): v for k, v in sorted(self.wip_by_step.items(), key=_k) if v},
            "wip_by_family": {
                str(k): v for k, v in sorted(self.wip_by_family.items(), key=_k) if v
            },
            "moves": self.moves,
            "moves_per_hour": self.moves_per_hour(),
            "utilisation_by_family": self.utilisation_by_family(),
            "lots_completed": self.lots_completed,
            "lots_scrapped": self.lots_scrapped,
            "mean_cycle_time_s": self.mean_cycle_time(),
            "gaps": len(self.gaps),
        }

    # ----------------------------------------------------- (de)serialising
    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready snapshot; ``from_dict(to_dict())`` equals the original."""
        return {
            "catalog": self.catalog.to_dict(),
            "equipment": [e.to_dict() for e in self.equipment.values()],
            "lots": [x.to_dict() for x in self.lots.values()],
            "carriers": [x.to_dict() for x in self.carriers.values()],
            "vehicles": [x.to_dict() for x in self.vehicles.values()],
            "alarms": self.alarms,
            "last_seq": self.last_seq,
            "revision": self.revision,
            "clock": self.clock,
            "wip_by_step": [[k, v] for k, v in self.wip_by_step.items()],
            "wip_by_family": [[k, v] for k, v in self.wip_by_family.items()],
            "moves": self.moves,
            "moves_by_minute": [[k, v] for k, v in self.moves_by_minute.items()],
            "lots_completed": self.lots_completed,
            "lots_scrapped": self.lots_scrapped,
            "cycle_time_sum": self.cycle_time_sum,
            "gaps": self.gaps,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TwinState:
        s = cls(Catalog.from_dict(d["catalog"]))
        s.equipment = {x["id"]: Equipment.from_dict(x) for x in d["equipment"]}
        s.lots = {x["id"]: Lot.from_dict(x) for x in d["lots"]}
        s.carriers = {x["id"]: Carrier.from_dict(x) for x in d["carriers"]}
        s.vehicles = {x["id"]: Vehicle.from_dict(x) for x in d["vehicles"]}
        s.alarms = dict(d["alarms"])
        s.last_seq = dict(d["last_seq"])
        s.revision, s.clock = d["revision"], d["clock"]
        s.wip_by_step = {k: v for k, v in d["wip_by_step"]}
        s.wip_by_family = {k: v for k, v in d["wip_by_family"]}
        s.moves = d["moves"]
        s.moves_by_minute = {k: v for k, v in d["moves_by_minute"]}
        s.lots_completed, s.lots_scrapped = d["lots_completed"], d["lots_scrapped"]
        s.cycle_time_sum = d["cycle_time_sum"]
        s.gaps = list(d["gaps"])
        return s

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> TwinState:
        return cls.from_dict(json.loads(text))

    def copy(self) -> TwinState:
        return TwinState.from_dict(json.loads(self.to_json()))

    def fingerprint(self) -> dict[str, Any]:
        """Everything except bookkeeping that depends on snapshot timing; for equality tests."""
        d = json.loads(self.to_json())
        for key in ("equipment", "lots", "carriers", "vehicles"):
            d[key] = sorted(d[key], key=lambda x: x["id"])
        d["wip_by_step"] = sorted((str(k), v) for k, v in d["wip_by_step"] if v)
        d["wip_by_family"] = sorted((str(k), v) for k, v in d["wip_by_family"] if v)
        d["moves_by_minute"] = sorted(d["moves_by_minute"])
        return d

    def summary(self) -> dict[str, Any]:
        """What ``twin state --json`` prints."""
        return {
            "revision": self.revision,
            "events_applied": self.revision,
            "clock": self.clock,
            **self.kpis(),
            "equipment": {
                e.id: {"state": e.state, "reason": e.reason, "lots": list(e.lots), "rev": e.rev}
                for e in self.equipment.values()
            },
            "lots": {"total": len(self.lots)},
            "vehicles": {
                v.id: {"segment": v.segment, "offset": v.offset, "state": v.state, "rev": v.rev}
                for v in self.vehicles.values()
            },
            "alarms": sorted(self.alarms),
        }


def _k(item: tuple[Any, int]) -> str:
    return str(item[0])


# ---------------------------------------------------------------- apply
def apply(state: TwinState, ev: Event) -> TwinState:
    """Apply one event; a duplicate or replayed (source, seq) changes nothing."""
    src = ev.source
    if ev.seq <= state.last_seq.get(src, 0):
        return state
    handler = _HANDLERS.get(ev.type)
    if handler is None:
        handler = _handler(ev.type)
    handler(state, ev)
    state.last_seq[src] = ev.seq
    state.revision += 1
    if ev.time > state.clock:
        state.clock = ev.time
    return state


def apply_all(state: TwinState, events: Any) -> TwinState:
    for ev in events:
        apply(state, ev)
    return state


def equipment_record(s: TwinState, eid: str) -> Equipment:
    e = s.equipment.get(eid)
    if e is None:
        e = s.equipment[eid] = Equipment(eid, s.catalog.equipment.get(eid))
    return e


def vehicle_record(s: TwinState, vid: str) -> Vehicle:
    v = s.vehicles.get(vid)
    if v is None:
        v = s.vehicles[vid] = Vehicle(vid)
    return v


def carrier_record(s: TwinState, cid: str) -> Carrier:
    c = s.carriers.get(cid)
    if c is None:
        c = s.carriers[cid] = Carrier(cid)
    return c


def _lot_family(s: TwinState, lot: Lot) -> str | None:
    if lot.status == "processing" and lot.location is not None:
        e = s.equipment.get(lot.location)
        return e.family if e is not None else None
    route = s.catalog.products.get(lot.product)
    if route is not None and lot.index < len(route):
        return route[lot.index].family
    return None


def count_wip(s: TwinState, lot: Lot, delta: int) -> None:
    if lot.status not in LOT_ACTIVE:
        return
    s.wip_by_step[lot.step] = s.wip_by_step.get(lot.step, 0) + delta
    fam = _lot_family(s, lot)
    s.wip_by_family[fam] = s.wip_by_family.get(fam, 0) + delta


def first_process_index(route: tuple[RouteStep, ...], start: int) -> int:
    """The first non-delay step at or after ``start`` (delays hold no tool and emit no events)."""
    while start < len(route) and route[start].is_delay:
        start += 1
    return start


_HANDLERS: dict[str, Callable[[TwinState, Event], None]] = {}  # filled from the registry


def _handler(etype: str) -> Callable[[TwinState, Event], None]:
    """The effect of ``etype`` (or its deprecated alias), from the registry on first use; an
    unknown type (which ``validate`` refuses) changes nothing but the stream position."""
    if not _HANDLERS:
        from twin.live.registry import registry

        _HANDLERS.update(registry().effects())
    return _HANDLERS.get(etype, _no_effect)


def _no_effect(s: TwinState, ev: Event) -> None:
    return None
