"""What-if scenarios: a base FabModel plus a list of changes, and the YAML file that names them.

``Scenario.apply(base)`` returns a NEW model (a deep copy with the changes applied in order);
the base is never touched, so every scenario and every replication starts from the same data.

A scenario file (documented with an example in docs/whatif.md)::

    scenarios:
      - name: more-litho
        changes:
          - tool_count: {area: Litho, add: 1}
    sweeps:
      - name: "speed-${f}"
        grid: {f: [0.9, 1.1]}
        changes:
          - processing_time: {families: ["DE_*"], factor: ${f}}

``load_scenarios(path, model)`` parses it and checks it against the model; every problem
(unknown key, bad value, unknown family with close matches) is reported at once with
``file:line``. The baseline (no changes) is always the first scenario returned.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import fnmatch
import itertools
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import yaml

from twin.errors import InputError
from twin.process.model import DISPATCH_RULES, Attachment, FabModel

BASELINE = "baseline"


# --- changes ---------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class Select:
    """Which tool families a change touches: names or glob patterns, and/or whole areas.

    Empty means every real (non-delay) family. Delay families are only selected by name.
    """

    families: tuple[str, ...] = ()
    areas: tuple[str, ...] = ()

    @property
    def everything(self) -> bool:
        return not self.families and not self.areas

    def resolve(self, model: FabModel, problems: list[str], where: str) -> list[str]:
        """Family names selected in ``model``; unknown names/areas/empty globs are problems."""
        real = [f for f, fam in model.families.items() if not fam.is_delay]
        if self.everything:
            return real
        chosen: dict[str, None] = {}
        for pat in self.families:
            if any(c in pat for c in "*?["):
                hits = [f for f in fnmatch.filter(model.families, pat) if f in real]
                if not hits:
                    problems.append(f"{where}: family pattern {pat!r} matches no family")
                chosen.update(dict.fromkeys(hits))
            elif pat in model.families:
                chosen[pat] = None
            else:
                problems.append(f"{where}: unknown family {pat!r}{_close(pat, model.families)}")
        for area in self.areas:
            hits = [f for f in real if model.families[f].area == area]
            if not hits:
                problems.append(
                    f"{where}: unknown area {area!r}{_close(area, model.areas)}; "
                    f"areas: {', '.join(model.areas)}"
                )
            chosen.update(dict.fromkeys(hits))
        return list(chosen)

    def describe(self) -> str:
        parts = [*self.families, *(f"area {a}" for a in self.areas)]
        return ", ".join(parts) if parts else "all families"


def dispatch_rules() -> list[str]:
    """The dispatching rules the engine knows now: built-in ones and those added with
    ``twin.whatif.reference.register_rule``."""
    # imported here: the reference package pulls in the engine, which this module must not
    from twin.whatif.reference import RULES

    return list(RULES)


def _close(word: str, known: object) -> str:
    close = difflib.get_close_matches(word, [str(k) for k in known], n=3)  # type: ignore[union-attr]
    return f" (did you mean {', '.join(map(repr, close))}?)" if close else ""


@dataclass(frozen=True, kw_only=True)
class Change:
    """One edit of a model. ``check`` lists problems; ``apply`` edits a private copy in place."""

    kind: ClassVar[str] = ""
    select: Select = field(default_factory=Select)
    line: int | None = None  # line in the scenario file, for messages

    def check(self, model: FabModel, where: str) -> list[str]:
        problems: list[str] = []
        self.select.resolve(model, problems, where)
        return problems

    def apply(self, model: FabModel) -> None:
        raise NotImplementedError

    def describe(self) -> str:
        return self.kind

    @property
    def label(self) -> str:
        """The change's key as written in a scenario file."""
        return self.kind


@dataclass(frozen=True, kw_only=True)
class ToolCount(Change):
    """Tools per family: ``add`` n (may be negative) or ``set`` to n."""

    kind: ClassVar[str] = "tool_count"
    add: int | None = None
    set: int | None = None

    def check(self, model: FabModel, where: str) -> list[str]:
        problems: list[str] = []
        if self.select.everything:
            problems.append(f"{where}: tool_count needs 'families' or 'area'")
        for f in self.select.resolve(model, problems, where):
            fam = model.families[f]
            if fam.is_delay:
                problems.append(f"{where}: {f} is a delay, it has no tools")
            elif self._new(fam.count) < 1:
                problems.append(
                    f"{where}: {f} would have {self._new(fam.count)} tools (has {fam.count}); "
                    "a family needs at least 1"
                )
        return problems

    def _new(self, count: int) -> int:
        return self.set if self.set is not None else count + (self.add or 0)

    def apply(self, model: FabModel) -> None:
        for f in self.select.resolve(model, [], ""):
            model.families[f].count = self._new(model.families[f].count)

    def describe(self) -> str:
        how = f"= {self.set}" if self.set is not None else f"{self.add:+d}"
        return f"tools of {self.select.describe()} {how}"


@dataclass(frozen=True, kw_only=True)
class ProcessingTime(Change):
    """Processing time (mean and spread) × factor, of steps on the selected families or of
    listed step numbers of one route."""

    kind: ClassVar[str] = "processing_time"
    factor: float
    route: str | None = None  # route (or product) name when ``steps`` are given
    steps: tuple[int, ...] = ()

    def _route(self, model: FabModel) -> str | None:
        if self.route in model.products:
            return model.products[self.route].route
        return self.route

    def check(self, model: FabModel, where: str) -> list[str]:
        problems = super().check(model, where)
        if self.steps or self.route is not None:
            route = self._route(model)
            if route not in model.routes:
                known = [*model.routes, *model.products]
                problems.append(
                    f"{where}: unknown route or product {self.route!r}{_close(str(self.route), known)}"
                    f"; routes: {', '.join(model.routes)}"
                )
            elif self.steps:
                numbers = {s.number for s in model.routes[route].steps}
                missing = [n for n in self.steps if n not in numbers]
                if missing:
                    problems.append(
                        f"{where}: route {route} has no step {', '.join(map(str, missing))} "
                        f"(steps {min(numbers)}..{max(numbers)})"
                    )
        return problems

    def apply(self, model: FabModel) -> None:
        if self.route is not None:
            wanted = set(self.steps)
            route = model.routes[self._route(model)]  # type: ignore[index]
            steps = [s for s in route.steps if not wanted or s.number in wanted]
            if not self.select.everything:
                fams = set(self.select.resolve(model, [], ""))
                steps = [s for s in steps if s.family in fams]
        else:
            fams = set(self.select.resolve(model, [], ""))
            steps = [s for r in model.routes.values() for s in r.steps if s.family in fams]
        for s in steps:
            s.mean *= self.factor
            s.spread *= self.factor

    def describe(self) -> str:
        where = self.select.describe()
        if self.route is not None:
            nums = ",".join(map(str, self.steps)) if self.steps else "all"
            where = f"route {self.route} steps {nums}" + (
                "" if self.select.everything else f" on {where}"
            )
        return f"processing time of {where} × {self.factor:g}"


@dataclass(frozen=True, kw_only=True)
class Dispatching(Change):
    """The dispatching rule of the selected families."""

    kind: ClassVar[str] = "dispatching"
    rule: str

    def check(self, model: FabModel, where: str) -> list[str]:
        problems = super().check(model, where)
        rules = dispatch_rules()
        if self.rule not in rules:
            problems.append(
                f"{where}: unknown dispatching rule {self.rule!r}{_close(self.rule, rules)}"
                f"; accepted: {', '.join(rules)}"
            )
        return problems

    def apply(self, model: FabModel) -> None:
        for f in self.select.resolve(model, [], ""):
            model.families[f].rule = self.rule

    def describe(self) -> str:
        return f"dispatching of {self.select.describe()} = {self.rule}"


@dataclass(frozen=True, kw_only=True)
class ReleaseRate(Change):
    """Release rate × factor (interval ÷ factor) of some lot types or products (default all).

    ``factors`` maps a lot type or product to its own factor (a product mix change); a factor
    of 0 stops that stream.
    """

    kind: ClassVar[str] = "release_rate"
    factors: tuple[tuple[str, float], ...] = ()  # (lot type or product, factor); ("*", f) = all
    mix: bool = False  # written as product_mix

    @property
    def label(self) -> str:
        return "product_mix" if self.mix else self.kind

    def check(self, model: FabModel, where: str) -> list[str]:
        problems: list[str] = []
        known = {r.lot_type for r in model.releases} | set(model.products)
        for key, _ in self.factors:
            if key != "*" and key not in known:
                problems.append(
                    f"{where}: unknown lot type or product {key!r}{_close(key, known)}; "
                    f"accepted: {', '.join(sorted(known))}"
                )
        return problems

    def _factor(self, lot_type: str, product: str) -> float:
        hits = [f for key, f in self.factors if key in ("*", lot_type, product)]
        if not hits:
            return 1.0
        if not self.mix:  # release_rate: one factor for every selected stream
            return hits[0]
        return math.prod(hits)  # product_mix: a lot type and its product both listed

    def apply(self, model: FabModel) -> None:
        for rel in model.releases:
            f = self._factor(rel.lot_type, rel.product)
            if f == 0:
                rel.count = 0  # switched off; kept in place so other streams keep their keys
            else:
                rel.interval /= f

    def describe(self) -> str:
        return "release rate " + ", ".join(
            ("all" if k == "*" else k) + f" × {f:g}" for k, f in self.factors
        )


@dataclass(frozen=True, kw_only=True)
class BatchSize(Change):
    """Minimum and/or maximum batch size (wafers) of the batch steps on the selected families."""

    kind: ClassVar[str] = "batch_size"
    min: int | None = None
    max: int | None = None

    def _steps(self, model: FabModel) -> list:
        fams = set(self.select.resolve(model, [], ""))
        return [
            s for r in model.routes.values() for s in r.steps if s.family in fams and s.is_batch
        ]

    def check(self, model: FabModel, where: str) -> list[str]:
        problems = super().check(model, where)
        if problems:
            return problems
        steps = self._steps(model)
        if not steps:
            problems.append(f"{where}: {self.select.describe()} run no batch step")
        for s in steps:
            lo = self.min if self.min is not None else s.batch_min
            hi = self.max if self.max is not None else s.batch_max
            if not 0 < lo <= hi:
                problems.append(
                    f"{where}: step {s.number} ({s.family}) would have batch sizes {lo}..{hi} "
                    "wafers; need 0 < min <= max"
                )
                break
        return problems

    def apply(self, model: FabModel) -> None:
        for s in self._steps(model):
            if self.min is not None:
                s.batch_min = self.min
            if self.max is not None:
                s.batch_max = self.max

    def describe(self) -> str:
        return f"batch size of {self.select.describe()} min={self.min} max={self.max} wafers"


@dataclass(frozen=True, kw_only=True)
class Calendars(Change):
    """Edits the breakdown / PM calendars of the selected families.

    ``what``: "pm_interval" (× factor), "mttr" (repair time × factor of the calendars in
    ``of``), "breakdowns_off" (remove the breakdown calendars).
    """

    kind: ClassVar[str] = "calendars"
    what: str
    factor: float = 1.0
    of: tuple[str, ...] = ("down",)  # "down" and/or "pm"

    def check(self, model: FabModel, where: str) -> list[str]:
        problems = super().check(model, where)
        if problems:
            return problems
        kinds = {"pm"} if self.what == "pm_interval" else set(self.of)
        fams = self.select.resolve(model, [], "")
        if not any(a.kind in kinds for f in fams for a in model.calendars_of(f)):
            problems.append(
                f"{where}: no {' or '.join(sorted(kinds))} calendar is attached to "
                f"{self.select.describe()}"
            )
        return problems

    def apply(self, model: FabModel) -> None:
        fams = self.select.resolve(model, [], "")
        if self.what == "breakdowns_off":
            _edit_calendars(model, fams, "down", None)
        elif self.what == "pm_interval":
            _edit_calendars(
                model, fams, "pm", lambda c: setattr(c, "interval", c.interval * self.factor)
            )
        else:
            for kind in self.of:
                _edit_calendars(model, fams, kind, self._scale_repair)

    @property
    def label(self) -> str:
        return "breakdowns" if self.what == "breakdowns_off" else self.what

    def _scale_repair(self, cal: Any) -> None:
        dist = cal.mttr if hasattr(cal, "mttr") else cal.duration
        dist.mean *= self.factor
        dist.spread *= self.factor

    def describe(self) -> str:
        if self.what == "breakdowns_off":
            return f"breakdowns off for {self.select.describe()}"
        if self.what == "pm_interval":
            return f"PM interval of {self.select.describe()} × {self.factor:g}"
        return f"MTTR ({'/'.join(self.of)}) of {self.select.describe()} × {self.factor:g}"


def _edit_calendars(
    model: FabModel, families: list[str], kind: str, edit: Callable[[Any], None] | None
) -> None:
    """Apply ``edit`` to private copies of the ``kind`` calendars of ``families``
    (None: detach them). Area attachments that cover only part of the selection are split
    into per-family attachments first, so that families outside the selection keep theirs."""
    chosen = set(families)
    table = model.downs if kind == "down" else model.pms
    out: list[Attachment] = []
    for a in model.attachments:
        if a.kind != kind:
            out.append(a)
            continue
        if a.target_kind == "family":
            covered = [a.target] if a.target in chosen else []
            others: list[str] = [] if covered else [a.target]
        else:
            members = [f for f, fam in model.families.items() if fam.area == a.target]
            covered = [f for f in members if f in chosen]
            others = [f for f in members if f not in chosen]
        if not covered:
            out.append(a)
            continue
        if others:  # split: the untouched families keep the original calendar
            out += [dataclasses.replace(a, target_kind="family", target=f) for f in others]
        if edit is None:
            continue
        new_name = f"{a.calendar}~{kind}~{len(table)}"
        cal = copy.deepcopy(table[a.calendar])
        cal.name = new_name
        edit(cal)
        table[new_name] = cal
        target = (
            {"target_kind": "family", "target": covered[0]} if a.target_kind == "family" else {}
        )
        if a.target_kind == "area" and others:
            out += [
                dataclasses.replace(a, calendar=new_name, target_kind="family", target=f)
                for f in covered
            ]
        else:
            out.append(dataclasses.replace(a, calendar=new_name, **target))
    model.attachments[:] = out


# --- scenarios -------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class Scenario:
    """A named list of changes to a base model."""

    name: str
    changes: tuple[Change, ...] = ()
    description: str = ""
    line: int | None = None  # where it is defined in the scenario file

    def check(self, model: FabModel, source: str = "<scenarios>") -> list[str]:
        """Every problem of applying this scenario to ``model``, each with ``file:line``."""
        problems: list[str] = []
        model = copy.deepcopy(model) if self.changes else model
        for c in self.changes:  # each change is checked on the model the earlier ones made
            where = f"{source}:{c.line or self.line or '?'}: scenario {self.name!r}, {c.label}"
            found = c.check(model, where)
            if not found:
                c.apply(model)
            problems += found
        return problems

    def apply(self, base: FabModel) -> FabModel:
        """A new model: a deep copy of ``base`` with the changes applied in order."""
        model = copy.deepcopy(base)
        for c in self.changes:
            c.apply(model)
        if self.changes:
            model.name = f"{base.name}+{self.name}"
        return model

    def describe(self) -> str:
        return "; ".join(c.describe() for c in self.changes) or "no change"


def baseline() -> Scenario:
    """The unchanged model, against which paired differences are taken."""
    return Scenario(name=BASELINE, description="the model as loaded")


def load_scenarios(path: str | Path | None, model: FabModel | None = None) -> list[Scenario]:
    """The baseline plus the scenarios of a YAML file (none: just the baseline).

    With ``model``, every change is also checked against it; all problems raise one InputError.
    """
    if path is None:
        return [baseline()]
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise InputError(f"scenario file {path}", [f"{path}: cannot read: {exc.strerror}"]) from exc
    return parse_scenarios(text, source=str(path), model=model)


def parse_scenarios(
    text: str, source: str = "<scenarios>", model: FabModel | None = None
) -> list[Scenario]:
    """Parse scenario YAML text; see the module docstring and docs/whatif.md for the format."""
    problems: list[str] = []
    try:
        doc = yaml.load(text, Loader=_LineLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        mark = getattr(exc, "context_mark", None) or getattr(exc, "problem_mark", None)
        line = f"{mark.line + 1}" if mark is not None else "?"
        why = ", ".join(
            x for x in (getattr(exc, "context", None), getattr(exc, "problem", None)) if x
        )
        raise InputError(
            f"scenario file {source}", [f"{source}:{line}: not valid YAML: {why or exc}"]
        ) from exc
    out = [baseline()]
    if doc is None:
        return out
    p = _Parser(source, problems)
    if not isinstance(doc, _Map):
        problems.append(f"{source}:1: expected a mapping with 'scenarios' and/or 'sweeps'")
    else:
        p.keys(doc, {"scenarios", "sweeps", "description"}, "top level")
        for item, line in p.items(doc, "scenarios"):
            sc = p.scenario(item, line)
            if sc is not None:
                out.append(sc)
        for item, line in p.items(doc, "sweeps"):
            out += p.sweep(item, line)
    seen: dict[str, int | None] = {}
    for sc in out:
        if sc.name in seen:
            what = (
                "is reserved for the unchanged model" if sc.name == BASELINE else "is defined twice"
            )
            problems.append(f"{source}:{sc.line}: scenario name {sc.name!r} {what}")
        seen[sc.name] = sc.line
    if model is not None and not problems:
        for sc in out:
            problems += sc.check(model, source)
    if problems:
        raise InputError(f"scenario file {source}", problems)
    return out


# YAML with line numbers: mappings and sequences remember where each entry is.


class _Map(dict):
    line: int = 0
    lines: dict[Any, int]


class _Seq(list):
    line: int = 0
    lines: list[int]


class _LineLoader(yaml.SafeLoader):
    pass


def _construct_map(loader: _LineLoader, node: yaml.MappingNode):  # type: ignore[no-untyped-def]
    m = _Map()
    m.line, m.lines = node.start_mark.line + 1, {}
    yield m
    loader.flatten_mapping(node)
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        m[key] = loader.construct_object(value_node, deep=True)
        m.lines[key] = key_node.start_mark.line + 1


def _construct_seq(loader: _LineLoader, node: yaml.SequenceNode):  # type: ignore[no-untyped-def]
    s = _Seq()
    s.line, s.lines = node.start_mark.line + 1, []
    yield s
    for child in node.value:
        s.append(loader.construct_object(child, deep=True))
        s.lines.append(child.start_mark.line + 1)


_LineLoader.add_constructor("tag:yaml.org,2002:map", _construct_map)
_LineLoader.add_constructor("tag:yaml.org,2002:seq", _construct_seq)


# How each change kind is written: its keys and what each accepts.
_SELECT_KEYS = {"family", "families", "area", "areas"}
CHANGE_KINDS: dict[str, str] = {
    "tool_count": "{families|area: ..., add: n} or {families|area: ..., set: n}",
    "processing_time": "{factor: x, families|area: ...} or {factor: x, route: r, steps: [..]}",
    "dispatching": f"{{families|area: ..., rule: {'|'.join(DISPATCH_RULES)}|a registered rule}}",
    "release_rate": "{factor: x, lot_types|products: [...] (default all)}",
    "product_mix": "{<product or lot type>: factor, ...}",
    "batch_size": "{families|area: ..., min: wafers, max: wafers}",
    "pm_interval": "{factor: x, families|area: ... (default all)}",
    "mttr": "{factor: x, of: breakdowns|pm|both (default breakdowns), families|area: ...}",
    "breakdowns": "off, or {enabled: false, families|area: ...}",
}
_PLACEHOLDER = re.compile(r"\$\{(\w+)\}")


class _Parser:
    """Turns the line-annotated YAML into Scenarios, collecting problems instead of raising."""

    def __init__(self, source: str, problems: list[str]):
        self.source = source
        self.problems = problems

    def at(self, line: int | None) -> str:
        return f"{self.source}:{line if line is not None else '?'}"

    def keys(self, m: _Map, accepted: set[str], what: str) -> None:
        for k in m:
            if k not in accepted:
                self.problems.append(
                    f"{self.at(m.lines.get(k))}: unknown key {k!r} in {what}{_close(str(k), accepted)}; "
                    f"accepted: {', '.join(sorted(accepted))}"
                )

    def items(self, m: _Map, key: str) -> list[tuple[Any, int]]:
        if key not in m or m[key] is None:
            return []
        value = m[key]
        if not isinstance(value, _Seq):
            self.problems.append(f"{self.at(m.lines[key])}: '{key}' must be a list")
            return []
        return list(zip(value, value.lines))

    def scenario(self, item: Any, line: int, name: str | None = None) -> Scenario | None:
        if not isinstance(item, _Map):
            self.problems.append(f"{self.at(line)}: a scenario is a mapping with name and changes")
            return None
        if name is None:  # a sweep checked its own keys
            self.keys(item, {"name", "description", "changes"}, "a scenario")
        name = name if name is not None else item.get("name")
        if not isinstance(name, str) or not name.strip():
            self.problems.append(f"{self.at(line)}: scenario needs a 'name' (text)")
            return None
        built = (self.change(c, ln) for c, ln in self.items(item, "changes"))
        changes = [c for c in built if c is not None]
        if "changes" not in item:
            self.problems.append(f"{self.at(line)}: scenario {name!r} has no 'changes'")
        return Scenario(
            name=name,
            changes=tuple(changes),
            description=str(item.get("description") or ""),
            line=line,
        )

    def sweep(self, item: Any, line: int) -> list[Scenario]:
        if not isinstance(item, _Map):
            self.problems.append(f"{self.at(line)}: a sweep is a mapping with name, grid, changes")
            return []
        self.keys(item, {"name", "description", "grid", "changes"}, "a sweep")
        grid = item.get("grid")
        if not isinstance(grid, _Map) or not grid:
            self.problems.append(
                f"{self.at(line)}: sweep needs a 'grid' mapping parameter -> list of values"
            )
            return []
        names = list(grid)
        values = []
        for k in names:
            v = grid[k]
            if not isinstance(v, list) or not v:
                self.problems.append(
                    f"{self.at(grid.lines[k])}: grid '{k}' must be a non-empty list"
                )
                return []
            values.append(v)
        template = item.get("name") or "sweep"
        if not isinstance(template, str):
            self.problems.append(f"{self.at(line)}: sweep 'name' must be text")
            return []
        used = set(_PLACEHOLDER.findall(yaml.safe_dump(_plain(item.get("changes")))))
        used |= set(_PLACEHOLDER.findall(template))
        for k in names:
            if k not in used:
                self.problems.append(
                    f"{self.at(grid.lines[k])}: grid parameter '{k}' is never used as ${{{k}}}"
                )
        for k in sorted(used - set(names)):
            self.problems.append(
                f"{self.at(line)}: ${{{k}}} is not a grid parameter ({', '.join(names)})"
            )
        if used - set(names):
            return []
        out = []
        for combo in itertools.product(*values):
            env = dict(zip(names, combo))
            if _PLACEHOLDER.search(template):
                name = _fill(template, env)
            else:
                name = f"{template}[" + ",".join(f"{k}={_fmt(v)}" for k, v in env.items()) + "]"
            sc = self.scenario(_substitute(item, env), line, name=name)
            if sc is not None:
                out.append(sc)
        return out

    def change(self, item: Any, line: int) -> Change | None:
        where = self.at(line)
        if not isinstance(item, _Map) or len(item) != 1:
            self.problems.append(
                f"{where}: a change is a mapping with one key, one of: {', '.join(CHANGE_KINDS)}"
            )
            return None
        ((kind, args),) = item.items()
        if kind not in CHANGE_KINDS:
            self.problems.append(
                f"{where}: unknown change {kind!r}{_close(str(kind), CHANGE_KINDS)}; "
                f"accepted: {', '.join(CHANGE_KINDS)}"
            )
            return None
        if kind == "breakdowns" and (args is False or args == "off"):
            return Calendars(what="breakdowns_off", line=line)
        if not isinstance(args, _Map):
            self.problems.append(f"{where}: {kind} takes {CHANGE_KINDS[kind]}")
            return None
        n = len(self.problems)
        change = self._build(kind, args, where, line)
        return change if len(self.problems) == n else None

    def _build(self, kind: str, a: _Map, where: str, line: int) -> Change | None:
        accepted = {
            "tool_count": _SELECT_KEYS | {"add", "set"},
            "processing_time": _SELECT_KEYS | {"factor", "route", "product", "steps"},
            "dispatching": _SELECT_KEYS | {"rule"},
            "release_rate": {"factor", "lot_types", "lot_type", "products", "product"},
            "batch_size": _SELECT_KEYS | {"min", "max"},
            "pm_interval": _SELECT_KEYS | {"factor"},
            "mttr": _SELECT_KEYS | {"factor", "of"},
            "breakdowns": _SELECT_KEYS | {"enabled"},
        }.get(kind)
        if accepted is not None:
            self.keys(a, accepted, kind)
        select = Select(
            families=self.names(a, "family", "families", where),
            areas=self.names(a, "area", "areas", where),
        )
        common: dict[str, Any] = {"select": select, "line": line}
        if kind == "tool_count":
            add, set_ = self.integer(a, "add", where, None), self.integer(a, "set", where, 1)
            if (add is None) == (set_ is None):
                self.problems.append(f"{where}: tool_count needs exactly one of 'add' or 'set'")
            return ToolCount(add=add, set=set_, **common)
        if kind == "processing_time":
            route = a.get("route", a.get("product"))
            steps = self.steps(a.get("steps"), where)
            if steps and route is None:
                self.problems.append(f"{where}: 'steps' need a 'route' (or 'product')")
            return ProcessingTime(factor=self.factor(a, where), route=route, steps=steps, **common)
        if kind == "dispatching":
            rule = a.get("rule")
            if not isinstance(rule, str):
                self.problems.append(
                    f"{where}: dispatching needs 'rule': one of {', '.join(dispatch_rules())}"
                )
            return Dispatching(rule=str(rule), **common)
        if kind == "release_rate":
            f = self.factor(a, where)
            keys = self.names(a, "lot_type", "lot_types", where) + self.names(
                a, "product", "products", where
            )
            return ReleaseRate(factors=tuple((k, f) for k in keys or ("*",)), line=line)
        if kind == "product_mix":
            factors = []
            for k, v in a.items():
                if (
                    not isinstance(v, int | float)
                    or isinstance(v, bool)
                    or v < 0
                    or not math.isfinite(v)
                ):
                    self.problems.append(
                        f"{self.at(a.lines[k])}: product_mix factor of {k!r} must be a number >= 0, got {v!r}"
                    )
                factors.append((str(k), float(v) if isinstance(v, int | float) else 1.0))
            return ReleaseRate(factors=tuple(factors), mix=True, line=line)
        if kind == "batch_size":
            lo, hi = self.integer(a, "min", where, 1), self.integer(a, "max", where, 1)
            if lo is None and hi is None:
                self.problems.append(f"{where}: batch_size needs 'min' and/or 'max' (wafers)")
            if select.everything:
                self.problems.append(f"{where}: batch_size needs 'families' or 'area'")
            return BatchSize(min=lo, max=hi, **common)
        if kind == "pm_interval":
            return Calendars(what="pm_interval", factor=self.factor(a, where), of=("pm",), **common)
        if kind == "mttr":
            of = {"breakdowns": ("down",), "pm": ("pm",), "both": ("down", "pm")}.get(
                a.get("of", "breakdowns")
            )
            if of is None:
                self.problems.append(
                    f"{where}: mttr 'of' is breakdowns, pm or both, got {a.get('of')!r}"
                )
            return Calendars(
                what="mttr", factor=self.factor(a, where), of=of or ("down",), **common
            )
        # breakdowns: {enabled: false, ...}
        if a.get("enabled", True) is not False:
            self.problems.append(f"{where}: breakdowns takes {CHANGE_KINDS['breakdowns']}")
        return Calendars(what="breakdowns_off", **common)

    def names(self, a: _Map, one: str, many: str, where: str) -> tuple[str, ...]:
        out: list[str] = []
        for key in (one, many):
            v = a.get(key)
            if v is None:
                continue
            items = v if isinstance(v, list) else [v]
            for x in items:
                if isinstance(x, str) and x:
                    out.append(x)
                else:
                    self.problems.append(
                        f"{self.at(a.lines[key])}: '{key}' takes names (text), got {x!r}"
                    )
        return tuple(out)

    def factor(self, a: _Map, where: str) -> float:
        v = a.get("factor")
        if v is None:
            self.problems.append(f"{where}: needs 'factor' (a number > 0)")
            return 1.0
        if isinstance(v, bool) or not isinstance(v, int | float) or not (0 < v < math.inf):
            line = a.lines.get("factor")
            self.problems.append(
                f"{self.at(line) if line else where}: 'factor' must be a number > 0, got {v!r}"
            )
            return 1.0
        return float(v)

    def integer(self, a: _Map, key: str, where: str, minimum: int | None) -> int | None:
        if key not in a:
            return None
        v = a[key]
        if isinstance(v, bool) or not isinstance(v, int) or (minimum is not None and v < minimum):
            floor = f" >= {minimum}" if minimum is not None else ""
            self.problems.append(
                f"{self.at(a.lines[key])}: '{key}' must be an integer{floor}, got {v!r}"
            )
            return None
        return v

    def steps(self, v: Any, where: str) -> tuple[int, ...]:
        """Step numbers: a list of integers and "a-b" ranges."""
        if v is None:
            return ()
        out: list[int] = []
        for x in v if isinstance(v, list) else [v]:
            if isinstance(x, int) and not isinstance(x, bool):
                out.append(x)
            elif isinstance(x, str) and re.fullmatch(r"\s*\d+\s*-\s*\d+\s*", x):
                lo, hi = (int(p) for p in x.split("-"))
                out += range(lo, hi + 1)
            else:
                self.problems.append(f"{where}: steps are numbers or 'a-b' ranges, got {x!r}")
        return tuple(out)


def _fmt(v: Any) -> str:
    return f"{v:g}" if isinstance(v, float) else str(v)


def _fill(text: str, env: dict[str, Any]) -> str:
    """``text`` with each ${name} of ``env`` replaced by its value's text."""
    return _PLACEHOLDER.sub(
        lambda m: _fmt(env[m.group(1)]) if m.group(1) in env else m.group(0), text
    )


def _plain(v: Any) -> Any:
    if isinstance(v, Mapping):
        return {str(k): _plain(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_plain(x) for x in v]
    return v


def _substitute(v: Any, env: dict[str, Any]) -> Any:
    """Replace ${name} by its grid value: the value itself when it is the whole scalar,
    its text inside longer strings. Line numbers are kept."""
    if isinstance(v, _Map):
        m = _Map({k: _substitute(x, env) for k, x in v.items()})
        m.line, m.lines = v.line, v.lines
        return m
    if isinstance(v, _Seq):
        s = _Seq(_substitute(x, env) for x in v)
        s.line, s.lines = v.line, v.lines
        return s
    if isinstance(v, str):
        whole = _PLACEHOLDER.fullmatch(v.strip())
        if whole:
            return env.get(whole.group(1), v)
        return _fill(v, env)
    return v
