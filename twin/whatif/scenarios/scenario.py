"""A named scenario: a base model plus an ordered list of changes, and the baseline."""

from __future__ import annotations

import copy
from dataclasses import dataclass

from twin.process.model import FabModel
from twin.whatif.scenarios import limits as lim
from twin.whatif.scenarios.changes import Change

BASELINE = "baseline"


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
        if len(self.changes) > lim.MAX_CHANGES:
            return [
                f"{source}:{self.line or '?'}: scenario {self.name!r} has {len(self.changes)} "
                f"changes; at most {lim.MAX_CHANGES}"
            ]
        base, model = model, copy.deepcopy(model) if self.changes else model
        for c in self.changes:  # each change is checked on the model the earlier ones made
            where = f"{source}:{c.line or self.line or '?'}: scenario {self.name!r}, {c.label}"
            found = c.check(model, where)
            if not found:
                c.apply(model)
            problems += found
        for old, new in zip(base.releases, model.releases, strict=True):
            # each factor is in range, but several changes multiply: so must their product
            if new.count and new.interval > 0 and old.interval / new.interval > lim.FACTOR_MAX:
                problems.append(
                    f"{source}:{self.line or '?'}: scenario {self.name!r}: its changes together "
                    f"release {old.lot_type} ({old.product}) {old.interval / new.interval:,.0f} "
                    f"times as often; at most {lim.FACTOR_MAX:g} times"
                )
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
