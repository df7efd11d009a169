"""Fab events: one immutable envelope, a versioned schema, JSON in and out.

The envelope is ``{id, source, seq, time, type, subject, data}``: ``seq`` increases by one per
``source`` starting at 1, ``time`` is UTC (ISO 8601 with ``Z`` in JSON, float seconds since the
Unix epoch inside the twin), ``subject`` is the id of the entity the event is about (equipment,
lot, carrier, vehicle) and ``data`` carries the type's fields. The reference page is
``docs/events.md``; the types are declared in ``twin.live.types`` and registered in
``twin.live.registry``, from which ``EVENT_TYPES`` is derived. The envelope is a CloudEvents
1.0 event: ``specversion`` is accepted on ingest ("1.0" only) and written on every event the
twin emits (``to_dict``); it is not stored, so the store's hashes do not cover it.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from twin.errors import TwinError
from twin.live import codec

# The E10 and vehicle vocabulary (twin.vocabulary, shared with physics and the emulator),
# re-exported for the schema's readers.
from twin.vocabulary import (  # noqa: F401
    ALARM_SEVERITIES,
    E10_STATES,
    E10_TRANSITIONS,
    UP_STATES,
    VEHICLE_STATES,
)

SCHEMA_VERSION = 1

SPECVERSION = "1.0"  # CloudEvents: the envelope is a CloudEvent (docs/events.md)

_NUM = (int, float)
_INT = (int,)

# The event types (fields, validation, effect) are declared in twin.live.types and registered
# in twin.live.registry; ``EVENT_TYPES`` (type -> (required fields, optional fields), each field
# -> accepted Python types) is derived from there on first use (module ``__getattr__`` below).


def __getattr__(name: str) -> Any:
    if name == "EVENT_TYPES":
        from twin.live.registry import registry

        table = globals()["EVENT_TYPES"] = registry().field_table()
        return table
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


_loads = json.JSONDecoder().decode
ENVELOPE_KEYS = ("id", "source", "seq", "time", "type", "subject", "data")
OPTIONAL_KEYS = ("schema", "specversion")  # absent: schema 1; CloudEvents specversion 1.0

# Input is bounded at the door: what the store (SQLite: signed 64-bit integers, UTF-8 text)
# and the formatters (datetime: years 1..9999) can hold. docs/events.md lists these limits.
MAX_INT = 2**63 - 1  # seq and every integer field: signed 64-bit
MIN_INT = -(2**63)
MAX_NAME = 256  # characters of id, source, type, subject
MAX_TEXT = 4096  # characters of a string field in data
MAX_DEPTH = 16  # nesting of a payload (an event needs 2: envelope -> data -> values)
# The last representable instant (9999-12-31T23:59:59.999999Z, which a float rounds up to
# year 10000 for some fractions): later times are refused, so every stored time formats.
MAX_TIME = 253_402_300_799.0
RESERVED_SOURCE_PREFIXES = ("gap:", "reset:")  # sources the twin itself writes
RESERVED_TYPES = frozenset({"stream.gap", "stream.reset"})  # types only the twin writes


class EventFormatError(TwinError, ValueError):
    """A payload that is not a well-formed event; ``reason`` says what is wrong and what fits.

    A TwinError like every error the twin raises on purpose; still a ValueError for callers
    that treat it as one."""

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
            "specversion": SPECVERSION,
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
    """UTC ISO 8601 with microseconds and a ``Z`` suffix. Never raises: a time outside what
    ``parse_time`` accepts (only a store written before the limits can hold one) is clamped
    to the first or last representable instant, so reads keep answering."""
    # isoformat is faster than strftime; "+00:00" -> "Z"
    try:
        return _fromts(t, UTC).isoformat(timespec="microseconds")[:-6] + "Z"
    except (ValueError, OverflowError, OSError, TypeError):
        if isinstance(t, int | float) and t > 0:  # beyond year 9999 (or +inf)
            return "9999-12-31T23:59:59.999999Z"
        return "1970-01-01T00:00:00.000000Z"  # NaN, negative or not a number


_fromts = datetime.fromtimestamp


def parse_time(value: Any) -> float:
    """ISO 8601 (must say UTC: ``Z`` or ``+00:00``) or epoch seconds -> epoch seconds."""
    if isinstance(value, bool):
        raise EventFormatError("'time' must be an ISO 8601 UTC string or epoch seconds, got bool")
    if isinstance(value, int | float):
        try:
            t = float(value)
        except OverflowError:  # an integer past a double's range
            t = math.inf
        if not math.isfinite(t) or t < 0 or t > MAX_TIME:
            raise EventFormatError(
                f"'time' must be epoch seconds from 0 to {MAX_TIME:.0f} "
                f"(9999-12-31T23:59:59Z), got {_short(value)}"
            )
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
    return _bounded(dt.timestamp(), value)


def _bounded(t: float, value: Any) -> float:
    """An ISO time's epoch seconds, refused before 1970 or after 9999-12-31T23:59:59Z."""
    if 0.0 <= t <= MAX_TIME:
        return t
    raise EventFormatError(
        f"'time' {str(value)[:40]!r} is outside 1970-01-01T00:00:00Z .. 9999-12-31T23:59:59Z"
    )


def make_event(source: str, seq: int, time: float, type: str, subject: str, **data: Any) -> Event:
    """Build an event with a deterministic id ``<source>:<seq>`` (checked like parsed ones)."""
    ev = Event(f"{source}:{seq}", source, seq, float(time), type, subject, data)
    check_event(ev)
    if type in _CANONICAL:  # a deprecated name: the event carries the current one
        ev = replace(ev, type=_CANONICAL[type])
    return ev


def check_event(ev: Event) -> None:
    """Shape, types and bounds of an event; raises EventFormatError with every problem found.

    Bounds: the envelope's names are non-empty UTF-8 text of at most MAX_NAME characters, seq
    and integer fields fit signed 64 bits, the time is within 1970 .. 9999, data strings are
    UTF-8 text (no lone surrogates) of at most MAX_TEXT characters."""
    spec = _SPECS.get(ev.type)
    if spec is None:
        spec = _spec(ev.type)
    i, src, subj, seq, tm = ev.id, ev.source, ev.subject, ev.seq, ev.time
    # fast path: ASCII names (isascii is a flag test), in range; the slow path explains
    if not (
        type(i) is str
        and type(src) is str
        and type(subj) is str
        and i.isascii()
        and src.isascii()
        and subj.isascii()
        and 0 < len(i) <= MAX_NAME
        and 0 < len(src) <= MAX_NAME
        and 0 < len(subj) <= MAX_NAME
        and type(seq) is int
        and 1 <= seq <= MAX_INT
        and type(tm) is float
        and 0.0 <= tm <= MAX_TIME
    ):
        problems = _envelope_bounds(ev)
        if problems:
            raise EventFormatError("; ".join(problems))
    required, allowed, n_required, _, _ = spec
    data = ev.data
    # fast path: exact types (bool is not int here); ``v - v`` is 0.0 only for a finite float
    for name, types in required:
        v = data.get(name, _MISSING)
        t = type(v)
        if (
            t not in types
            or (t is float and v - v != 0.0)
            or (t is int and not MIN_INT <= v <= MAX_INT)
            or (t is str and not (v.isascii() and len(v) <= MAX_TEXT) and _bad_text(v))
        ):
            raise EventFormatError("; ".join(_problems(ev)))
    if len(data) != n_required:
        for name, v in data.items():
            types = allowed.get(name)
            t = type(v)
            if (
                types is None
                or t not in types
                or (t is float and v - v != 0.0)
                or (t is int and not MIN_INT <= v <= MAX_INT)
                or (t is str and not (v.isascii() and len(v) <= MAX_TEXT) and _bad_text(v))
            ):
                raise EventFormatError("; ".join(_problems(ev)))


def _bad_text(v: str, limit: int = MAX_TEXT) -> bool:
    """Too long, or not encodable as UTF-8 (a lone surrogate such as "\\ud800")."""
    if len(v) > limit:
        return True
    try:
        v.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _text_problem(what: str, v: str, limit: int) -> str | None:
    if len(v) > limit:
        return f"{what} is {len(v):,} characters; at most {limit:,} are accepted"
    if _bad_text(v, limit):
        return f"{what} holds an unpaired surrogate: not valid Unicode (UTF-8 text is accepted)"
    return None


def _envelope_bounds(ev: Event) -> list[str]:
    problems = []
    for key in ("id", "source", "subject"):
        v = getattr(ev, key)
        if type(v) is not str or not v:
            problems.append(f"'{key}' must be a non-empty string, got {_short(v)}")
        elif p := _text_problem(f"'{key}'", v, MAX_NAME):
            problems.append(p)
    seq = ev.seq
    if type(seq) is not int or not 1 <= seq <= MAX_INT:
        problems.append(f"'seq' must be an integer from 1 to 2^63-1, got {_short(seq)}")
    tm = ev.time
    if type(tm) not in (int, float) or not 0.0 <= tm <= MAX_TIME:  # NaN fails too
        problems.append(
            f"'time' must be epoch seconds from 0 to {MAX_TIME:.0f} (9999-12-31T23:59:59Z), "
            f"got {_short(tm)}"
        )
    return problems


def _short(value: Any) -> str:
    """A short, printable, never-raising description of any value (for reasons)."""
    if isinstance(value, dict | list | tuple | set):
        return f"{type(value).__name__} of {len(value)}"
    if isinstance(value, str):
        return repr(value[:40])  # repr escapes lone surrogates and control characters
    if isinstance(value, int) and not isinstance(value, bool) and not MIN_INT <= value <= MAX_INT:
        return f"an integer of {value.bit_length()} bits"
    try:
        return repr(value)[:40]
    except Exception:  # a hostile object's __repr__
        return type(value).__name__


def _name(key: Any) -> str:
    """A field name as written, when it is short printable text; else its safe description."""
    return key if isinstance(key, str) and len(key) <= 30 and key.isprintable() else _short(key)


def too_deep(value: Any, limit: int = MAX_DEPTH) -> bool:
    """Is ``value`` nested deeper than ``limit`` containers? Iterative: never recurses."""
    stack = [(value, 1)]
    while stack:
        v, d = stack.pop()
        if isinstance(v, dict):
            v = v.values()
        elif not isinstance(v, list | tuple):
            continue
        if d > limit:
            return True
        stack.extend((x, d + 1) for x in v if isinstance(x, dict | list | tuple))
    return False


_MISSING = object()
# type or deprecated alias -> (((name, exact types), ...) required, {name: exact types} of every
# accepted field, number of required fields, {required name: types}, {optional name: types});
# filled from the registry on first use (``_spec``)
_SPECS: dict[str, tuple[Any, ...]] = {}
_CANONICAL: dict[str, str] = {}  # deprecated alias -> current name


def _spec(etype: Any) -> tuple[Any, ...]:
    """The field spec of ``etype``, loading the registry's tables on first use; an unknown
    type raises EventFormatError naming the known ones."""
    if not _SPECS:
        from twin.live.registry import registry

        reg = registry()
        table = reg.field_table()
        _CANONICAL.update(reg.aliases)
        for name in [*table, *_CANONICAL]:
            req, opt = table[_CANONICAL.get(name, name)]
            _SPECS[name] = (tuple(req.items()), {**req, **opt}, len(req), req, opt)
    spec = _SPECS.get(etype) if isinstance(etype, str) else None
    if spec is None:
        known = ", ".join(n for n in _SPECS if n not in _CANONICAL)
        raise EventFormatError(f"unknown event type {_short(etype)}; known: {known}")
    return spec


def _problems(ev: Event) -> list[str]:
    problems = []
    _, _, _, required, optional = _spec(ev.type)
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
            problems.append(f"{ev.type}: unknown field data.{_name(name)} (accepted: {accepted})")
        elif not _is(value, types):
            problems.append(_type_problem(ev.type, name, value, types))
    return problems


def _is(value: Any, types: tuple[type, ...]) -> bool:
    if type(value) not in types:  # exact: bool is an int in Python, never in the schema
        return False
    if type(value) is int:
        return MIN_INT <= value <= MAX_INT
    if type(value) is str:
        return not _bad_text(value)
    return not (isinstance(value, float) and not math.isfinite(value))


def _type_problem(etype: str, name: str, value: Any, types: tuple[type, ...]) -> str:
    if type(value) is str and type(value) in types:
        return f"{etype}: " + str(_text_problem(f"data.{name}", value, MAX_TEXT))
    want = "/".join("number" if t is float else t.__name__ for t in types)
    if types == _NUM:
        want = "finite number"
    elif types == _INT:
        want = "integer from -2^63 to 2^63-1"
    return f"{etype}: data.{name} must be {want}, got {type(value).__name__} {_short(value)}"


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
            and (n == 7 or _optional_keys_ok(raw, n))
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
            check_event(ev)  # on the unfrozen twin: a deprecated type is renamed below
            if ty in _CANONICAL:
                ev.type = _CANONICAL[ty]
            ev.__class__ = Event
            return ev
    except (KeyError, EventFormatError, TypeError, ValueError, OverflowError):
        pass
    if too_deep(raw):
        raise EventFormatError(
            f"payload is nested deeper than {MAX_DEPTH} levels (an event needs 2: envelope, data)"
        )
    problems = _envelope_problems(raw)
    if problems:
        raise EventFormatError("; ".join(problems))
    seq, t = raw["seq"], parse_time(raw["time"])
    ev = Event(raw["id"], raw["source"], seq, t, raw["type"], raw["subject"], raw["data"])
    check_event(ev)
    if ev.type in _CANONICAL:
        ev = replace(ev, type=_CANONICAL[ev.type])
    return ev


def _optional_keys_ok(raw: dict[str, Any], n: int) -> bool:
    """Besides the 7 envelope keys, only ``schema`` (1) and ``specversion`` ("1.0")."""
    k = 7
    if "schema" in raw:
        sch = raw["schema"]
        if type(sch) is not int or sch != SCHEMA_VERSION:
            return False
        k += 1
    if "specversion" in raw:
        if raw["specversion"] != SPECVERSION:
            return False
        k += 1
    return n == k


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
            f"schema version {_short(schema)} is not supported (this twin reads {SCHEMA_VERSION})"
        )
    missing = [k for k in ENVELOPE_KEYS if k not in raw]
    if missing:
        problems.append(f"missing envelope keys {missing} (envelope: {', '.join(ENVELOPE_KEYS)})")
    if "specversion" in raw and (
        type(raw["specversion"]) is not str or raw["specversion"] != SPECVERSION
    ):
        problems.append(
            f"'specversion' {_short(raw['specversion'])} is not supported: the envelope is a "
            f'CloudEvents {SPECVERSION} event (send "{SPECVERSION}" or leave it out)'
        )
    extra = [k for k in raw if k not in ENVELOPE_KEYS and k not in OPTIONAL_KEYS]
    if extra:
        problems.append(f"unknown envelope keys {[_short(k) for k in extra[:5]]}")
    for key in ("id", "source", "type", "subject"):
        if key not in raw:
            continue
        v = raw[key]
        if not isinstance(v, str) or not v:
            problems.append(f"'{key}' must be a non-empty string, got {_short(v)}")
        elif p := _text_problem(f"'{key}'", v, MAX_NAME):
            problems.append(p)
    seq = raw.get("seq")
    if "seq" in raw and (
        isinstance(seq, bool) or not isinstance(seq, int) or not 1 <= seq <= MAX_INT
    ):
        problems.append(f"'seq' must be an integer from 1 to 2^63-1, got {_short(seq)}")
    if "data" in raw and not isinstance(raw["data"], dict):
        problems.append(f"'data' must be an object, got {type(raw['data']).__name__}")
    if "time" in raw:
        try:
            parse_time(raw["time"])
        except EventFormatError as exc:
            problems.append(exc.reason)
    return problems
