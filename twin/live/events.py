"""Fab events: one immutable envelope, a versioned schema, JSON in and out.

The envelope is ``{id, source, seq, time, type, subject, data}``: ``seq`` increases by one per
``source`` starting at 1, ``time`` is UTC (ISO 8601 with ``Z`` in JSON, float seconds since the
Unix epoch inside the twin), ``subject`` is the id of the entity the event is about (equipment,
lot, carrier, vehicle) and ``data`` carries the type's fields. The reference page is
``docs/events.md``; ``EVENT_TYPES`` below is the machine-readable form of it.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from twin.live import codec

SCHEMA_VERSION = 1

# SEMI E10 basic equipment states.
E10_STATES = (
    "productive",
    "standby",
    "engineering",
    "scheduled_down",
    "unscheduled_down",
    "non_scheduled",
)
UP_STATES = frozenset({"productive", "standby", "engineering"})

# Legal E10 transitions. A tool never goes from a down or non-scheduled state straight to
# productive (it is repaired/qualified into standby or engineering first), and a planned
# shutdown (non-scheduled) is entered from an idle or down tool, never from a running one.
E10_TRANSITIONS: dict[str, frozenset[str]] = {
    "productive": frozenset(
        {"productive", "standby", "engineering", "scheduled_down", "unscheduled_down"}
    ),
    "standby": frozenset(E10_STATES),
    "engineering": frozenset(E10_STATES),
    "scheduled_down": frozenset(
        {"standby", "engineering", "scheduled_down", "unscheduled_down", "non_scheduled"}
    ),
    "unscheduled_down": frozenset(
        {"standby", "engineering", "scheduled_down", "unscheduled_down", "non_scheduled"}
    ),
    "non_scheduled": frozenset(
        {"standby", "engineering", "scheduled_down", "unscheduled_down", "non_scheduled"}
    ),
}

VEHICLE_STATES = ("idle", "moving", "acquiring", "depositing", "parked", "down")
ALARM_SEVERITIES = ("info", "warning", "error", "critical")

_STR = (str,)
_INT = (int,)
_NUM = (int, float)

# type -> (required fields, optional fields), each field -> accepted Python types.
EVENT_TYPES: dict[str, tuple[dict[str, tuple[type, ...]], dict[str, tuple[type, ...]]]] = {
    "equipment.state": ({"state": _STR, "reason": _STR}, {"setup": _STR}),
    "lot.released": ({"product": _STR}, {"wafers": _INT, "priority": _INT}),
    "lot.track_in": ({"equipment": _STR, "step": _INT}, {"setup": _STR}),
    "lot.track_out": ({"equipment": _STR, "step": _INT}, {}),
    "lot.hold": ({"reason": _STR}, {}),
    "lot.release": ({}, {"reason": _STR}),
    "lot.rework": ({"step": _INT}, {"reason": _STR}),
    "lot.scrap": ({"reason": _STR}, {}),
    "lot.completed": ({}, {}),
    "carrier.transfer_requested": (
        {"transfer": _STR, "from": _STR, "to": _STR},
        {"lot": _STR, "priority": _INT},
    ),
    "carrier.vehicle_assigned": ({"transfer": _STR, "vehicle": _STR}, {}),
    "carrier.picked_up": ({"transfer": _STR, "vehicle": _STR}, {}),
    "carrier.delivered": ({"transfer": _STR, "vehicle": _STR}, {}),
    "carrier.transfer_failed": ({"transfer": _STR, "reason": _STR}, {}),
    "vehicle.position": ({"segment": _STR, "offset": _NUM, "speed": _NUM}, {}),
    "vehicle.state": ({"state": _STR}, {"carrier": _STR, "reason": _STR}),
    "alarm.set": ({"alarm": _STR, "severity": _STR}, {"text": _STR}),
    "alarm.cleared": ({"alarm": _STR}, {}),
    # Emitted by the twin itself when a sequence gap does not close within the reorder window.
    "stream.gap": ({"from_seq": _INT, "to_seq": _INT}, {}),
}

_loads = json.JSONDecoder().decode
ENVELOPE_KEYS = ("id", "source", "seq", "time", "type", "subject", "data")


class EventFormatError(ValueError):
    """A payload that is not a well-formed event; ``reason`` says what is wrong and what fits."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Event:
    """One immutable fact from the fab. ``time`` is UTC seconds since the epoch."""

    id: str
    source: str
    seq: int
    time: float
    type: str
    subject: str
    data: dict[str, Any] = field(default_factory=dict)
    schema: int = SCHEMA_VERSION

    @property
    def key(self) -> tuple[str, int]:
        """The event's identity in the stream: (source, seq) is unique."""
        return (self.source, self.seq)

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": self.schema,
            "id": self.id,
            "source": self.source,
            "seq": self.seq,
            "time": format_time(self.time),
            "type": self.type,
            "subject": self.subject,
            "data": self.data,
        }

    def to_json(self) -> str:
        return codec.dumps(self.to_dict())


def format_time(t: float) -> str:
    """UTC ISO 8601 with microseconds and a ``Z`` suffix."""
    # isoformat is faster than strftime; "+00:00" -> "Z"
    return _fromts(t, UTC).isoformat(timespec="microseconds")[:-6] + "Z"


_fromts = datetime.fromtimestamp


def parse_time(value: Any) -> float:
    """ISO 8601 (must say UTC: ``Z`` or ``+00:00``) or epoch seconds -> epoch seconds."""
    if isinstance(value, bool):
        raise EventFormatError("'time' must be an ISO 8601 UTC string or epoch seconds, got bool")
    if isinstance(value, int | float):
        t = float(value)
        if not math.isfinite(t) or t < 0:
            raise EventFormatError(f"'time' must be finite epoch seconds >= 0, got {value!r}")
        return t
    if not isinstance(value, str):
        raise EventFormatError(
            f"'time' must be an ISO 8601 UTC string or epoch seconds, got {type(value).__name__}"
        )
    try:
        dt = datetime.fromisoformat(value)
    except ValueError:
        raise EventFormatError(
            f"'time' {value[:40]!r} is not ISO 8601 (e.g. 2026-01-31T08:00:00.000Z)"
        ) from None
    off = dt.utcoffset()
    if off is None or off.total_seconds() != 0:
        raise EventFormatError(f"'time' {value[:40]!r} must be UTC (end in Z or +00:00)")
    return dt.timestamp()


def make_event(source: str, seq: int, time: float, type: str, subject: str, **data: Any) -> Event:
    """Build an event with a deterministic id ``<source>:<seq>`` (checked like parsed ones)."""
    ev = Event(f"{source}:{seq}", source, seq, float(time), type, subject, data)
    check_event(ev)
    return ev


def check_event(ev: Event) -> None:
    """Shape and types of an event; raises EventFormatError with every problem found."""
    spec = _SPECS.get(ev.type)
    if spec is None:
        raise EventFormatError(f"unknown event type {ev.type!r}; known: {', '.join(EVENT_TYPES)}")
    required, allowed, n_required = spec
    data = ev.data
    # fast path: exact types (bool is not int here); ``v - v`` is 0.0 only for a finite float
    for name, types in required:
        v = data.get(name, _MISSING)
        t = type(v)
        if t not in types or (t is float and v - v != 0.0):
            raise EventFormatError("; ".join(_problems(ev)))
    if len(data) != n_required:
        for name, v in data.items():
            types = allowed.get(name)
            t = type(v)
            if types is None or t not in types or (t is float and v - v != 0.0):
                raise EventFormatError("; ".join(_problems(ev)))


_MISSING = object()
# type -> (((name, exact types), ...) required, {name: exact types} of every accepted field,
# number of required fields)
_SPECS = {
    t: (
        tuple((n, ts) for n, ts in req.items()),
        {**req, **opt},
        len(req),
    )
    for t, (req, opt) in EVENT_TYPES.items()
}


def _problems(ev: Event) -> list[str]:
    problems = []
    required, optional = EVENT_TYPES[ev.type]
    data = ev.data
    for name, types in required.items():
        if name not in data:
            problems.append(f"{ev.type}: data.{name} is required")
        elif not _is(data[name], types):
            problems.append(_type_problem(ev.type, name, data[name], types))
    for name, value in data.items():
        if name in required:
            continue
        types = optional.get(name)
        if types is None:
            accepted = ", ".join([*required, *optional]) or "none"
            problems.append(
                f"{ev.type}: unknown field data.{str(name)[:30]} (accepted: {accepted})"
            )
        elif not _is(value, types):
            problems.append(_type_problem(ev.type, name, value, types))
    return problems


def _is(value: Any, types: tuple[type, ...]) -> bool:
    if type(value) not in types:  # exact: bool is an int in Python, never in the schema
        return False
    return not (isinstance(value, float) and not math.isfinite(value))


def _type_problem(etype: str, name: str, value: Any, types: tuple[type, ...]) -> str:
    want = "/".join("number" if t is float else t.__name__ for t in types)
    if types == _NUM:
        want = "finite number"
    return f"{etype}: data.{name} must be {want}, got {type(value).__name__} {str(value)[:30]!r}"


def parse_event(raw: str | bytes | dict[str, Any]) -> Event:
    """One JSON payload (text, bytes or an already-decoded dict) -> a checked Event.

    Raises EventFormatError naming the offending key and what would be accepted.
    """
    if type(raw) is str or type(raw) is bytes:
        try:
            raw = _fast_loads(raw)
        except ValueError:
            raw = _decode(raw)  # the standard parser decides: it accepts a little more, and
            # explains what it refuses
    elif isinstance(raw, str | bytes | bytearray):
        raw = _decode(raw)
    if not isinstance(raw, dict):
        raise EventFormatError(f"payload must be a JSON object, got {type(raw).__name__}")
    # fast path for a well-formed envelope; the slow path explains what is wrong
    try:
        i, src, seq, tm = raw["id"], raw["source"], raw["seq"], raw["time"]
        ty, subj, data = raw["type"], raw["subject"], raw["data"]
        n = len(raw)
        if (
            type(seq) is int
            and seq >= 1
            and type(i) is str
            and type(src) is str
            and type(ty) is str
            and type(subj) is str
            and type(data) is dict
            and i
            and src
            and subj
            and (
                n == 7
                or (n == 8 and type(sch := raw.get("schema")) is int and sch == SCHEMA_VERSION)
            )
        ):
            if type(tm) is str and tm[-1:] == "Z":
                t = _fromiso(tm).timestamp()  # "Z" is UTC in Python >= 3.11
            else:
                t = parse_time(tm)
            # Event(...) for the hot path: a frozen dataclass sets each field through
            # object.__setattr__; plain slot stores on a same-layout twin, then the class
            # switch, cost about half as much (same object: tests/live/test_events.py)
            ev = _new(_Unfrozen)
            ev.id = i
            ev.source = src
            ev.seq = seq
            ev.time = t
            ev.type = ty
            ev.subject = subj
            ev.data = data
            ev.schema = SCHEMA_VERSION
            ev.__class__ = Event
            check_event(ev)
            return ev
    except (KeyError, EventFormatError, TypeError, ValueError, OverflowError):
        pass
    problems = _envelope_problems(raw)
    if problems:
        raise EventFormatError("; ".join(problems))
    seq, t = raw["seq"], parse_time(raw["time"])
    ev = Event(raw["id"], raw["source"], seq, t, raw["type"], raw["subject"], raw["data"])
    check_event(ev)
    return ev


def _decode(raw: str | bytes | bytearray) -> Any:
    """The standard library's reading of a payload, with the reason when it is refused."""
    if isinstance(raw, bytes | bytearray):
        try:
            raw = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise EventFormatError("payload is not UTF-8") from None
    try:
        value = _loads(raw)
    except (ValueError, RecursionError) as exc:
        raise EventFormatError(f"payload is not JSON: {str(exc)[:80]}") from None
    try:  # json reads an escaped lone surrogate ("\ud800"); no store can hold it as text
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        raise EventFormatError("payload holds an unpaired surrogate: not valid Unicode") from None
    except (ValueError, TypeError, RecursionError):
        pass  # the checks below name what is wrong with it
    return value


class _Unfrozen:
    """Event's slots without the frozen ``__setattr__``; becomes an Event once filled."""

    __slots__ = Event.__slots__  # the same layout, so ``__class__`` may be switched


_new = object.__new__


_fromiso = datetime.fromisoformat
_fast_loads = codec.fast_loads


def _envelope_problems(raw: dict[str, Any]) -> list[str]:
    problems = []
    schema = raw.get("schema", SCHEMA_VERSION)
    if schema != SCHEMA_VERSION or isinstance(schema, bool):
        problems.append(
            f"schema version {str(schema)[:20]!r} is not supported (this twin reads {SCHEMA_VERSION})"
        )
    missing = [k for k in ENVELOPE_KEYS if k not in raw]
    if missing:
        problems.append(f"missing envelope keys {missing} (envelope: {', '.join(ENVELOPE_KEYS)})")
    extra = [k for k in raw if k not in ENVELOPE_KEYS and k != "schema"]
    if extra:
        problems.append(f"unknown envelope keys {[str(k)[:20] for k in extra][:5]}")
    for key in ("id", "source", "type", "subject"):
        if key in raw and (not isinstance(raw[key], str) or not raw[key]):
            problems.append(f"'{key}' must be a non-empty string, got {str(raw[key])[:40]!r}")
    seq = raw.get("seq")
    if "seq" in raw and (isinstance(seq, bool) or not isinstance(seq, int) or seq < 1):
        problems.append(f"'seq' must be an integer >= 1, got {str(seq)[:40]!r}")
    if "data" in raw and not isinstance(raw["data"], dict):
        problems.append(f"'data' must be an object, got {type(raw['data']).__name__}")
    if "time" in raw:
        try:
            parse_time(raw["time"])
        except EventFormatError as exc:
            problems.append(exc.reason)
    return problems
