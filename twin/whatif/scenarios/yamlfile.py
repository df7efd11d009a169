"""The scenario file: YAML with line numbers, parsed into Scenarios with every problem reported.

The format is documented, with an example, in docs/whatif.md and in the package docstring.
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from twin.errors import InputError
from twin.process.model import DISPATCH_RULES, FabModel
from twin.scene.yamlio import GuardedLoader, YamlLimits, load_guarded
from twin.whatif import presets
from twin.whatif.scenarios import limits as lim
from twin.whatif.scenarios.amhs import AMHS_KINDS, Amhs
from twin.whatif.scenarios.changes import (
    BatchSize,
    Calendars,
    Change,
    Dispatching,
    ProcessingTime,
    ReleaseRate,
    Select,
    ToolCount,
    did_you_mean,
    dispatch_rules,
)
from twin.whatif.scenarios.scenario import BASELINE, Scenario, baseline

# Scenario files accept no anchors or aliases: nothing in the format needs them (a sweep makes
# many similar scenarios), and refusing them outright is the simplest guard against alias bombs.
SCENARIO_YAML = YamlLimits(
    max_bytes=lim.MAX_FILE_BYTES, max_depth=lim.MAX_YAML_DEPTH, max_aliases=0, max_alias_nodes=0
)


@dataclass
class ScenarioFile:
    """What a scenario file says: its scenarios (the baseline first) and the rules it asks for
    (``rules:``, a preset name, and ``options:`` on top of it; None and {} when it names none)."""

    scenarios: list[Scenario]
    rules: str | None = None
    options: dict[str, Any] = field(default_factory=dict)


def load_scenarios(
    path: str | Path | None,
    model: FabModel | None = None,
    max_scenarios: int = lim.MAX_SCENARIOS,
) -> list[Scenario]:
    """The baseline plus the scenarios of a YAML file (none: just the baseline).

    With ``model``, every change is also checked against it; all problems raise one InputError.
    """
    return load_scenario_file(path, model, max_scenarios).scenarios


def load_scenario_file(
    path: str | Path | None,
    model: FabModel | None = None,
    max_scenarios: int = lim.MAX_SCENARIOS,
) -> ScenarioFile:
    """``load_scenarios`` with the file's ``rules:`` and ``options:`` (checked, with lines)."""
    if path is None:
        return ScenarioFile([baseline()])
    path = Path(path)
    try:
        size = path.stat().st_size
        if size > lim.MAX_FILE_BYTES:  # refused before it is read
            raise InputError(
                f"scenario file {path}",
                [f"{path}: {size:,} bytes, over the limit of {lim.MAX_FILE_BYTES:,} bytes"],
            )
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise InputError(f"scenario file {path}", [f"{path}: cannot read: {exc.strerror}"]) from exc
    except UnicodeDecodeError as exc:
        raise InputError(
            f"scenario file {path}",
            [f"{path}: not UTF-8 text (byte {exc.start + 1}: {exc.reason})"],
        ) from None
    return parse_scenario_file(text, source=str(path), model=model, max_scenarios=max_scenarios)


def parse_scenarios(
    text: str,
    source: str = "<scenarios>",
    model: FabModel | None = None,
    max_scenarios: int = lim.MAX_SCENARIOS,
) -> list[Scenario]:
    """Parse scenario YAML text; see the module docstring and docs/whatif.md for the format.

    At most ``max_scenarios`` scenarios with the baseline: sweeps are counted (the product of
    their grid's lengths) before they are expanded, and every other limit of ``limits`` is
    checked before the value it bounds is built."""
    return parse_scenario_file(text, source, model, max_scenarios).scenarios


def parse_scenario_file(
    text: str,
    source: str = "<scenarios>",
    model: FabModel | None = None,
    max_scenarios: int = lim.MAX_SCENARIOS,
) -> ScenarioFile:
    """``parse_scenarios`` with the file's ``rules:`` and ``options:`` (checked, with lines)."""
    problems: list[str] = []
    try:
        doc = load_guarded(text, source, _LineLoader, SCENARIO_YAML, f"scenario file {source}")
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
        return ScenarioFile(out)
    p = _Parser(source, problems, max_scenarios)
    rules: str | None = None
    options: dict[str, Any] = {}
    if not isinstance(doc, _Map):
        problems.append(f"{source}:1: expected a mapping with 'scenarios' and/or 'sweeps'")
    else:
        p.keys(doc, {"scenarios", "sweeps", "description", "rules", "options"}, "top level")
        rules, options = p.rules(doc)
        for item, line in p.items(doc, "scenarios"):
            if not p.room(1, line, "scenario"):
                break
            sc = p.scenario(item, line)
            if sc is not None:
                out.append(sc)
        for item, line in p.items(doc, "sweeps"):
            out += p.sweep(item, line)
            if p.full:
                break
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
    if problems:  # a sweep repeats its changes' problems in every scenario: once each, and
        problems = list(dict.fromkeys(problems))  # at most MAX_PROBLEMS lines
        if len(problems) > lim.MAX_PROBLEMS:
            more = len(problems) - lim.MAX_PROBLEMS
            problems = [*problems[: lim.MAX_PROBLEMS], f"... and {more:,} more problems"]
        raise InputError(f"scenario file {source}", problems)
    return ScenarioFile(out, rules, options)


# YAML with line numbers: mappings and sequences remember where each entry is.


class _Map(dict):
    line: int = 0
    lines: dict[Any, int]


class _Seq(list):
    line: int = 0
    lines: list[int]


class _LineLoader(GuardedLoader):  # type: ignore[misc, valid-type]
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
CHANGE_KINDS.update(AMHS_KINDS)  # transport, vehicles, vehicle_speed, vehicle_dispatch
_PLACEHOLDER = re.compile(r"\$\{(\w+)\}")


class _Parser:
    """Turns the line-annotated YAML into Scenarios, collecting problems instead of raising."""

    def __init__(self, source: str, problems: list[str], max_scenarios: int):
        self.source = source
        self.problems = problems
        self.left = max_scenarios - 1  # the baseline is one
        self.max_scenarios = max_scenarios
        self.full = False  # the limit was reached: stop reading scenarios

    def room(self, n: int, line: int, what: str) -> bool:
        """Whether ``n`` more scenarios fit under the limit; if not, one problem and stop."""
        if n <= self.left:
            self.left -= n
            return True
        if not self.full:
            self.problems.append(
                f"{self.at(line)}: {what} would take the file past {self.max_scenarios:,} "
                f"scenarios (with the baseline), the most one run accepts"
            )
        self.full = True
        return False

    def at(self, line: int | None) -> str:
        return f"{self.source}:{line if line is not None else '?'}"

    def keys(self, m: _Map, accepted: set[str], what: str) -> None:
        for k in m:
            if k not in accepted:
                self.problems.append(
                    f"{self.at(m.lines.get(k))}: unknown key {k!r} in {what}{did_you_mean(str(k), accepted)}; "
                    f"accepted: {', '.join(sorted(accepted))}"
                )

    def rules(self, doc: _Map) -> tuple[str | None, dict[str, Any]]:
        """The file's ``rules:`` (a preset name) and ``options:`` (option: value), checked."""
        name = doc.get("rules")
        if name is not None and (why := presets.preset_problem(name)) is not None:
            self.problems.append(f"{self.at(doc.lines.get('rules'))}: {why}")
            name = None
        options = doc.get("options")
        if options is None:
            return name, {}
        if not isinstance(options, _Map):
            self.problems.append(
                f"{self.at(doc.lines.get('options'))}: 'options' must be a mapping of rule "
                f"options to values; accepted options: {', '.join(presets.OPTIONS)}"
            )
            return name, {}
        good = {}
        for k, v in options.items():
            found = presets.option_problems({k: v})
            self.problems += [f"{self.at(options.lines.get(k))}: {f}" for f in found]
            if not found:
                good[k] = v
        return name, good

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
        items = self.items(item, "changes")
        if len(items) > lim.MAX_CHANGES:
            self.problems.append(
                f"{self.at(line)}: scenario {name!r} has {len(items)} changes; at most "
                f"{lim.MAX_CHANGES}"
            )
            items = []
        built = (self.change(c, ln) for c, ln in items)
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
        sizes = [len(v) for v in values]
        count = math.prod(sizes)  # counted before anything is expanded
        if not self.room(
            count, line, f"sweep grid {' × '.join(map(str, sizes))} = {count:,} scenarios"
        ):
            return []
        values_each = _count_values(item.get("changes"))
        if count * values_each > lim.MAX_SWEEP_VALUES:
            self.problems.append(
                f"{self.at(line)}: sweep grid {' × '.join(map(str, sizes))} = {count:,} "
                f"scenarios of {values_each:,} values each would be {count * values_each:,} "
                f"values; at most {lim.MAX_SWEEP_VALUES:,} (fewer grid values or changes)"
            )
            return []
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
                f"{where}: unknown change {kind!r}{did_you_mean(str(kind), CHANGE_KINDS)}; "
                f"accepted: {', '.join(CHANGE_KINDS)}"
            )
            return None
        if kind in AMHS_KINDS:
            return Amhs(
                what=kind, value=dict(args) if isinstance(args, Mapping) else args, line=line
            )
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
            bound = lim.MAX_TOOL_CHANGE
            add = self.integer(a, "add", where, -bound, bound)
            set_ = self.integer(a, "set", where, 1, bound)
            if ("add" in a) == ("set" in a):
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
                why = lim.factor_problem(v, "factor", zero=True)
                if why is not None:
                    self.problems.append(f"{self.at(a.lines[k])}: product_mix {k!r}: {why}")
                factors.append((str(k), float(v) if isinstance(v, int | float) else 1.0))
            return ReleaseRate(factors=tuple(factors), mix=True, line=line)
        if kind == "batch_size":
            lo, hi = (
                self.integer(a, "min", where, 1, 10**6),
                self.integer(a, "max", where, 1, 10**6),
            )
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
            self.problems.append(
                f"{where}: needs 'factor' (a number in {lim.FACTOR_MIN:g}..{lim.FACTOR_MAX:g})"
            )
            return 1.0
        why = lim.factor_problem(v)
        if why is not None:
            line = a.lines.get("factor")
            self.problems.append(f"{self.at(line) if line else where}: {why}")
            return 1.0
        return float(v)

    def integer(self, a: _Map, key: str, where: str, low: int, high: int) -> int | None:
        if key not in a:
            return None
        v = a[key]
        if isinstance(v, bool) or not isinstance(v, int) or not low <= v <= high:
            self.problems.append(
                f"{self.at(a.lines[key])}: '{key}' must be an integer in {low}..{high}, "
                f"got {lim._short(v)}"
            )
            return None
        return v

    def steps(self, v: Any, where: str) -> tuple[int, ...]:
        """Step numbers: a list of integers and "a-b" ranges."""
        if v is None:
            return ()
        items = v if isinstance(v, list) else [v]
        count = lim.count_steps(items)  # ranges counted before they are built
        if count is not None and count > lim.MAX_STEPS:
            self.problems.append(
                f"{where}: 'steps' name {count:,} step numbers or more; at most "
                f"{lim.MAX_STEPS:,} (ranges 'a-b' count every number in them)"
            )
            return ()
        out: list[int] = []
        for x in items:
            if isinstance(x, int) and not isinstance(x, bool) and 0 <= x <= 10**9:
                out.append(x)
            elif isinstance(x, str) and re.fullmatch(r"\s*\d{1,9}\s*-\s*\d{1,9}\s*", x):
                lo, hi = (int(p) for p in x.split("-"))
                if lo > hi:
                    self.problems.append(
                        f"{where}: step range {x!r} runs backwards; write 'a-b' with a <= b"
                    )
                out += range(lo, hi + 1)
            else:
                self.problems.append(
                    f"{where}: steps are numbers in 0..1000000000 or 'a-b' ranges, got "
                    f"{lim._short(x)}"
                )
        return tuple(out)


def _count_values(v: Any) -> int:
    """Values in a parsed YAML tree (mappings and lists count one each, with what they hold)."""
    if isinstance(v, dict):
        return 1 + sum(_count_values(k) + _count_values(x) for k, x in v.items())
    if isinstance(v, list):
        return 1 + sum(_count_values(x) for x in v)
    return 1


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
