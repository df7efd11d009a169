"""What a what-if run returns: each replication's KPIs, and the run's estimates and tables.

A ``Replication`` is one engine run of one scenario (flat KPIs, events, wall time, series).
``WhatIfResult`` holds every replication of every scenario and computes, on demand, per-KPI
estimates with confidence intervals and paired differences against the baseline (replication
``r`` of a scenario against replication ``r`` of the baseline: common random numbers), MSER-5's
warm-up, and the JSON and CSV tables of ``twin whatif run``.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from twin.whatif.presets import RuleSet
from twin.whatif.scenarios import Scenario
from twin.whatif.stats import Estimate, mser5, summarize, summarize_differences, unflatten

if TYPE_CHECKING:  # runner imports this module
    from twin.whatif.runner import RunConfig


@dataclass
class Replication:
    """One replication's outcome: flat KPIs (see ``stats.flatten_kpis``) and its cost."""

    scenario: str
    replication: int
    kpis: dict[str, float]
    events: int = 0
    wall_seconds: float = 0.0
    series: dict[str, list[float]] = field(default_factory=dict)  # e.g. "wip.lots" per sample
    # the completed lots, when the run asked for them (RunConfig.lot_records): columns
    # ``id``, ``product``, ``release`` and ``completion`` (s on the engine clock), one entry
    # per lot in completion order; lots of the start keep their ids (twin.forecast's ETAs)
    lots: dict[str, list] = field(default_factory=dict)


@dataclass
class WhatIfResult:
    """Every replication of every scenario, with estimates and paired differences on demand."""

    model: str
    engine: str
    config: RunConfig
    scenarios: list[Scenario]
    replications: dict[str, list[Replication]]  # scenario name -> by replication index
    wall_seconds: float  # elapsed time of the whole run
    rules: RuleSet | None = None  # the effective rules (None: those of ``config``)

    @property
    def rule_set(self) -> RuleSet:
        return self.rules if self.rules is not None else self.config.rule_set()

    @property
    def baseline(self) -> str:
        return self.scenarios[0].name

    @property
    def events(self) -> int:
        """Events simulated, all scenarios and replications together."""
        return sum(r.events for reps in self.replications.values() for r in reps)

    def estimates(self, scenario: str) -> dict[str, Estimate]:
        """Per-KPI mean and CI over the scenario's replications."""
        return summarize([r.kpis for r in self.replications[scenario]], self.config.confidence)

    def differences(self, scenario: str) -> dict[str, Estimate]:
        """Per-KPI paired difference (scenario − baseline) over common replications."""
        reps = {r.replication: r.kpis for r in self.replications[scenario]}
        base = {r.replication: r.kpis for r in self.replications[self.baseline]}
        common = sorted(set(reps) & set(base))
        return summarize_differences(
            [reps[i] for i in common], [base[i] for i in common], self.config.confidence
        )

    def suggested_warmup_days(
        self, series: str = "wip.lots", times: str = "wip.times_days"
    ) -> float | None:
        """Warm-up that MSER-5 picks on the baseline's fab WIP averaged over replications
        (None when the engine reports no such series or it is too short)."""
        reps = [r for r in self.replications[self.baseline] if r.series.get(series)]
        if not reps or not reps[0].series.get(times):
            return None
        n = min(len(r.series[series]) for r in reps)
        if n < 10:
            return None
        mean = [sum(r.series[series][i] for r in reps) / len(reps) for i in range(n)]
        cut = mser5(mean)
        return float(reps[0].series[times][min(cut, n - 1)])

    def to_json(self) -> dict[str, Any]:
        """JSON-ready dict: run facts, then per scenario its KPI estimates (nested like the
        engine's KPIs; each leaf ``{mean, ci, half_width, std, n}``) and paired differences."""
        scenarios = {}
        for sc in self.scenarios:
            reps = self.replications[sc.name]
            entry: dict[str, Any] = {
                "changes": [c.describe() for c in sc.changes],
                "description": sc.description,
                "replications": len(reps),
                "events": sum(r.events for r in reps),
                "wall_seconds": sum(r.wall_seconds for r in reps),
                "kpis": _nest(self.estimates(sc.name)),
            }
            if sc.name != self.baseline:
                entry["difference_vs_baseline"] = _nest(self.differences(sc.name))
            scenarios[sc.name] = entry
        c = self.config
        return {
            "model": self.model,
            "engine": self.engine,
            "rules": self.rule_set.to_json(),
            "days": c.days,
            "warmup_days": c.warmup_days,
            "warmup_mser5_days": self.suggested_warmup_days(),
            "replications": c.replications,
            "seed": c.seed,
            "confidence": c.confidence,
            "common_random_numbers": True,
            "baseline": self.baseline,
            "events": self.events,
            "wall_seconds": self.wall_seconds,
            "scenarios": scenarios,
        }

    def csv_rows(self) -> list[dict[str, Any]]:
        """One row per scenario and KPI: estimate, CI and the paired difference with its CI."""
        rows = []
        for sc in self.scenarios:
            est = self.estimates(sc.name)
            diff = self.differences(sc.name) if sc.name != self.baseline else {}
            for key, e in est.items():
                d = diff.get(key)
                rows.append(
                    {
                        "scenario": sc.name,
                        "kpi": key,
                        "mean": _cell(e.mean),
                        "ci_low": _cell(e.low),
                        "ci_high": _cell(e.high),
                        "n": e.n,
                        "diff_mean": _cell(d.mean) if d else "",
                        "diff_ci_low": _cell(d.low) if d else "",
                        "diff_ci_high": _cell(d.high) if d else "",
                    }
                )
        return rows

    def write_csv(self, path: str | os.PathLike[str]) -> None:
        """Write ``csv_rows()`` with a header line."""
        import csv

        rows = self.csv_rows()
        with open(path, "w", newline="", encoding="utf-8") as fh:
            writer = csv.DictWriter(fh, fieldnames=list(rows[0]) if rows else ["scenario", "kpi"])
            writer.writeheader()
            writer.writerows(rows)


def lot_columns(records: Any) -> dict[str, list]:
    """``Replication.lots`` of an engine's ``LotRecords``."""
    return {
        "id": list(records.id),
        "product": list(records.product),
        "release": [float(x) for x in records.release],
        "completion": [float(x) for x in records.completion],
    }


def _cell(x: float) -> float | str:
    """A CSV cell: empty where there is no finite value (no lot finished, one replication)."""
    return x if math.isfinite(x) else ""


def _nest(estimates: dict[str, Estimate]) -> dict[str, Any]:
    """Dotted KPI keys back to the engine's nesting, each leaf an estimate dict. A group whose
    ``mean`` is a leaf (cycle_time_days: {mean, p50, p95}) also gets that mean's ``ci`` at its
    own level, so ``cycle_time_days.mean`` and ``cycle_time_days.ci`` read naturally."""
    nested = unflatten({k: e.to_dict() for k, e in estimates.items()})

    def lift(node: Any) -> Any:
        if not isinstance(node, dict) or "ci" in node and "n" in node:
            return node
        out = {k: lift(v) for k, v in node.items()}
        m = out.get("mean")
        if isinstance(m, dict) and "ci" in m and "n" in m:
            out["mean"], out["ci"] = m["mean"], m["ci"]
            out.setdefault("half_width", m["half_width"])
            out.setdefault("n", m["n"])
        return out

    return lift(nested)
