"""Scenario changes: each kind of edit of a FabModel, and the family selection it applies to.

A change checks itself against a model (``check`` lists every problem with where it was written)
and edits a private copy in place (``apply``); ``Scenario.apply`` makes that copy.
"""

from __future__ import annotations

import copy
import dataclasses
import fnmatch
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, ClassVar

from twin.errors import close_matches
from twin.process.model import Attachment, FabModel
from twin.whatif.scenarios import limits as lim


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
                problems.append(
                    f"{where}: unknown family {pat!r}{did_you_mean(pat, model.families)}"
                )
        for area in self.areas:
            hits = [f for f in real if model.families[f].area == area]
            if not hits:
                problems.append(
                    f"{where}: unknown area {area!r}{did_you_mean(area, model.areas)}; "
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


def did_you_mean(word: str, known: Iterable[object]) -> str:
    """`` (did you mean 'a', 'b'?)`` for close matches of ``word`` in ``known``, else ``""``."""
    close = close_matches(word, known)
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
        bound = lim.MAX_TOOL_CHANGE
        for key, v, low in (("add", self.add, -bound), ("set", self.set, 1)):
            if v is not None and (not isinstance(v, int) or not low <= v <= bound):
                problems.append(f"{where}: '{key}' must be an integer in {low}..{bound}, got {v!r}")
        if problems:
            return problems
        total = sum(fam.count for fam in model.families.values() if not fam.is_delay)
        for f in self.select.resolve(model, problems, where):
            fam = model.families[f]
            new = self._new(fam.count)
            if fam.is_delay:
                problems.append(f"{where}: {f} is a delay, it has no tools")
            elif new < 1:
                problems.append(
                    f"{where}: {f} would have {new} tools (has {fam.count}); "
                    "a family needs at least 1"
                )
            elif new > lim.MAX_FAMILY_TOOLS:
                problems.append(
                    f"{where}: {f} would have {new:,} tools (has {fam.count}); a family may "
                    f"have 1..{lim.MAX_FAMILY_TOOLS:,}"
                )
            else:
                total += new - fam.count
        if total > lim.MAX_TOOLS:
            problems.append(
                f"{where}: the model would have {total:,} tools; at most {lim.MAX_TOOLS:,} in all "
                "families together"
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
        why = lim.factor_problem(self.factor)
        if why is not None:
            problems.append(f"{where}: {why}")
        if len(self.steps) > lim.MAX_STEPS:
            problems.append(f"{where}: {len(self.steps):,} steps; at most {lim.MAX_STEPS:,}")
            return problems
        if self.steps or self.route is not None:
            route = self._route(model)
            if route not in model.routes:
                known = [*model.routes, *model.products]
                problems.append(
                    f"{where}: unknown route or product {self.route!r}{did_you_mean(str(self.route), known)}"
                    f"; routes: {', '.join(model.routes)}"
                )
            elif self.steps:
                numbers = {s.number for s in model.routes[route].steps}
                missing = [n for n in self.steps if n not in numbers]
                if missing:
                    shown = ", ".join(map(str, missing[:10]))
                    more = f" and {len(missing) - 10:,} more" if len(missing) > 10 else ""
                    problems.append(
                        f"{where}: route {route} has no step {shown}{more} "
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
                f"{where}: unknown dispatching rule {self.rule!r}{did_you_mean(self.rule, rules)}"
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
        for key, f in self.factors:
            why = lim.factor_problem(f, zero=self.mix)
            if why is not None:
                problems.append(f"{where}: {key}: {why}")
            if key != "*" and key not in known:
                problems.append(
                    f"{where}: unknown lot type or product {key!r}{did_you_mean(key, known)}; "
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
        why = lim.factor_problem(self.factor)
        if why is not None:
            problems.append(f"{where}: {why}")
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
