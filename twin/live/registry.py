"""The registry of event types: each type's fields, validation and effect, declared once.

An ``EventType`` names its fields (kind, required, range, allowed values, description), the
rule that says whether an event of the type may be applied to a state now (``validate``), the
change it makes to the state (``effect``), a description and an example. The families live in
``twin.live.types`` (one module per family: equipment, lot, carrier, vehicle, alarm, stream).

Everything else is derived from ``registry()``: the field table of ``twin.live.events``
(``EVENT_TYPES``), the rules of ``twin.live.validate``, the effects of ``twin.live.state``, the
JSON Schema and the AsyncAPI document (``twin.live.contract``). ``Registry.register`` refuses an
incomplete type, so a type cannot exist without its validation or its effect;
``tests/live/test_registry.py`` checks that every type is complete and that docs/events.md has a
section naming each type's fields.

A renamed type keeps its old name as a deprecated alias (``EventType.aliases``): events sent
under it are accepted and normalised to the new name on ingest (docs/events.md, "Renamed types").
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING, Any

from twin.errors import TwinError

if TYPE_CHECKING:
    from twin.live.events import Event
    from twin.live.state import TwinState

# A field's kind -> the exact Python types a decoded JSON value of it may have (bool is never a
# number). docs/events.md ("Bounds") says how each is bounded.
KINDS: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
}
NAME_RE = re.compile(r"^[a-z][a-z0-9]*\.[a-z][a-z0-9_]*$")  # family.action
FIELD_RE = re.compile(r"^[a-z][a-z0-9_]*$")
SUBJECTS = ("equipment", "lot", "carrier", "vehicle", "equipment or vehicle", "source")
PRODUCERS = ("fab", "twin")  # "twin": only the twin writes it (refused on ingest)

Rule = Callable[["Event", "TwinState"], "str | None"]
Effect = Callable[["TwinState", "Event"], None]


class RegistryError(TwinError):
    """An event type that cannot be registered; the message lists every problem."""

    def __init__(self, name: object, problems: Iterable[str]):
        self.problems = list(problems)
        super().__init__(f"event type {name!r} cannot be registered: " + "; ".join(self.problems))


@dataclass(frozen=True, kw_only=True)
class Field:
    """One field of an event's ``data``."""

    name: str
    kind: str  # one of KINDS
    description: str
    required: bool = True
    enum: tuple[str, ...] = ()  # allowed values of a string field (empty: any text)
    minimum: float | None = None  # inclusive bounds of a number or integer field
    maximum: float | None = None
    unit: str = ""  # SI unit of a number ("m", "m/s", "s since the epoch")

    def problems(self) -> list[str]:
        out = []
        if not isinstance(self.name, str) or not FIELD_RE.match(self.name):
            out.append(f"field name {self.name!r} must match {FIELD_RE.pattern}")
        if self.kind not in KINDS:
            out.append(f"field {self.name!r}: kind {self.kind!r} (accepted: {', '.join(KINDS)})")
        if not isinstance(self.description, str) or not self.description.strip():
            out.append(f"field {self.name!r} has no description")
        if self.enum and self.kind != "string":
            out.append(f"field {self.name!r}: only a string field has allowed values")
        if (self.minimum is not None or self.maximum is not None) and self.kind == "string":
            out.append(f"field {self.name!r}: a string field has no numeric bounds")
        return out

    def accepts(self, value: Any) -> bool:
        """Kind, allowed values and bounds (what the JSON Schema checks too)."""
        if type(value) not in KINDS.get(self.kind, ()):
            return False
        if self.enum and value not in self.enum:
            return False
        if self.minimum is not None and value < self.minimum:
            return False
        return self.maximum is None or value <= self.maximum


def required(name: str, kind: str, description: str, **kw: Any) -> Field:
    return Field(name=name, kind=kind, description=description, required=True, **kw)


def optional(name: str, kind: str, description: str, **kw: Any) -> Field:
    return Field(name=name, kind=kind, description=description, required=False, **kw)


@dataclass(frozen=True, kw_only=True)
class EventType:
    """One event type: its fields, its validation, its effect, and how to explain it."""

    name: str  # "family.action"
    description: str  # what happened, and when the twin refuses it (docs/events.md)
    subject: str  # what the envelope's subject names: one of SUBJECTS
    fields: tuple[Field, ...]
    validate: Rule  # (event, state) -> None when it may be applied, else the reason
    effect: Effect  # (state, event) -> None: the change applying it makes
    example: dict[str, Any]  # {"subject": ..., "data": {...}}: a valid event's body
    aliases: tuple[str, ...] = ()  # deprecated names, accepted and normalised on ingest
    producer: str = "fab"  # "twin": written by the twin itself only

    @property
    def required_fields(self) -> tuple[Field, ...]:
        return tuple(f for f in self.fields if f.required)

    @property
    def optional_fields(self) -> tuple[Field, ...]:
        return tuple(f for f in self.fields if not f.required)

    def problems(self) -> list[str]:
        """Everything that keeps the type from being complete (empty: complete)."""
        out = []
        if not isinstance(self.name, str) or not NAME_RE.match(self.name):
            out.append(f"name must match {NAME_RE.pattern} (family.action)")
        for alias in self.aliases:
            if not isinstance(alias, str) or not NAME_RE.match(alias):
                out.append(f"alias {alias!r} must match {NAME_RE.pattern}")
        if not isinstance(self.description, str) or not self.description.strip():
            out.append("no description")
        if self.subject not in SUBJECTS:
            out.append(f"subject {self.subject!r} (accepted: {', '.join(SUBJECTS)})")
        if self.producer not in PRODUCERS:
            out.append(f"producer {self.producer!r} (accepted: {', '.join(PRODUCERS)})")
        if not callable(self.validate):
            out.append("no validation (validate must be a function (event, state) -> reason)")
        if not callable(self.effect):
            out.append("no effect (effect must be a function (state, event) -> None)")
        names = [f.name for f in self.fields]
        if len(set(names)) != len(names):
            out.append(f"duplicate field names in {names}")
        for f in self.fields:
            out.extend(f.problems())
        out.extend(self._example_problems())
        return out

    def _example_problems(self) -> list[str]:
        ex = self.example
        if not isinstance(ex, dict) or set(ex) != {"subject", "data"}:
            return ["no example ({'subject': ..., 'data': {...}})"]
        if not isinstance(ex["subject"], str) or not ex["subject"]:
            return ["example subject must be a non-empty string"]
        data = ex["data"]
        if not isinstance(data, dict):
            return ["example data must be an object"]
        by_name = {f.name: f for f in self.fields}
        out = [
            f"example lacks required data.{f.name}"
            for f in self.fields
            if f.required and f.name not in data
        ]
        for k, v in data.items():
            f = by_name.get(k)
            if f is None:
                out.append(f"example has unknown data.{k}")
            elif not f.accepts(v):
                out.append(f"example data.{k} = {v!r} does not fit its field")
        return out


class Registry:
    """Event types by name (and by deprecated alias); the derived tables."""

    def __init__(self, types: Iterable[EventType] = ()) -> None:
        self._types: dict[str, EventType] = {}
        self._aliases: dict[str, str] = {}
        for t in types:
            self.register(t)

    def register(self, t: EventType) -> EventType:
        """Add ``t``; RegistryError naming every problem when it is incomplete or clashes."""
        if not isinstance(t, EventType):
            raise RegistryError(t, [f"not an EventType: {type(t).__name__}"])
        problems = t.problems()
        for name in (t.name, *t.aliases):
            if name in self._types or name in self._aliases:
                problems.append(f"{name!r} is already registered")
        if problems:
            raise RegistryError(t.name, problems)
        self._types[t.name] = t
        for alias in t.aliases:
            self._aliases[alias] = t.name
        return t

    # ------------------------------------------------------------------ lookups
    def __iter__(self):  # noqa: ANN204
        return iter(self._types.values())

    def __len__(self) -> int:
        return len(self._types)

    def __contains__(self, name: object) -> bool:
        return name in self._types or name in self._aliases

    def get(self, name: str) -> EventType | None:
        """The type called ``name`` or whose deprecated alias it is."""
        t = self._types.get(name)
        if t is None and name in self._aliases:
            t = self._types[self._aliases[name]]
        return t

    @property
    def names(self) -> tuple[str, ...]:
        """The current names, in registration order (aliases not included)."""
        return tuple(self._types)

    @property
    def aliases(self) -> dict[str, str]:
        """Deprecated name -> current name."""
        return dict(self._aliases)

    # ------------------------------------------------------------------ derived tables
    def _by_every_name(self) -> Iterable[tuple[str, EventType]]:
        yield from self._types.items()
        for alias, name in self._aliases.items():
            yield alias, self._types[name]

    def field_table(
        self,
    ) -> dict[str, tuple[dict[str, tuple[type, ...]], dict[str, tuple[type, ...]]]]:
        """type -> (required fields, optional fields), each field -> accepted Python types:
        ``twin.live.events.EVENT_TYPES`` (current names only)."""
        return {
            n: (
                {f.name: KINDS[f.kind] for f in t.required_fields},
                {f.name: KINDS[f.kind] for f in t.optional_fields},
            )
            for n, t in self._types.items()
        }

    def rules(self) -> dict[str, Rule]:
        """type or alias -> its validation (``twin.live.validate``)."""
        return {n: t.validate for n, t in self._by_every_name()}

    def effects(self) -> dict[str, Effect]:
        """type or alias -> its effect (``twin.live.state.apply``)."""
        return {n: t.effect for n, t in self._by_every_name()}

    def reserved(self) -> frozenset[str]:
        """Types only the twin writes."""
        return frozenset(n for n, t in self._types.items() if t.producer == "twin")


@cache
def registry() -> Registry:
    """The twin's registry, built from ``twin.live.types`` on first use."""
    from twin.live.types import TYPES

    return Registry(TYPES)
