"""Replications × scenarios with common random numbers, on a pluggable engine and executor.

``run_whatif(base, scenarios, RunConfig(...), engine=..., executor=...)`` validates the run,
cuts it into work items (one scenario × ``engine.batch_size`` replications), has the executor
run them, shows a progress bar on stderr and returns a ``WhatIfResult`` with per-scenario KPI
estimates and paired differences against the baseline. The pieces live one concept a module:

- ``twin.whatif.engines``: the ``Engine`` interface, ``ReferenceEngine`` and the registry
  (``register_engine``, ``engine_names``, ``get_engine``);
- ``twin.whatif.executors``: ``WorkItem``, ``Job``, ``run_item``, the ``Executor`` interface,
  ``Serial`` and ``LocalProcessPool`` with its worker hygiene (``twin.whatif.ray_executor``: Ray);
- ``twin.whatif.results``: ``Replication`` and ``WhatIfResult`` with its JSON and CSV tables.

This module keeps ``RunConfig`` and ``run_whatif`` and re-exports the names above, so that
``from twin.whatif.runner import X`` works for all of them.
"""

from __future__ import annotations

import dataclasses
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from twin.errors import ConfigError, InputError
from twin.process.model import FabModel
from twin.whatif.engines import (
    _ENGINES,  # noqa: F401  (the registry itself: tests patch it through this module)
    _PLANNED,  # noqa: F401
    Engine,
    Progress,
    ReferenceEngine,
    engine_names,
    get_engine,
    register_engine,
)
from twin.whatif.executors import (
    DEFAULT_WORKER_MEMORY_MB,
    Executor,
    ItemProgress,
    Job,
    LocalProcessPool,
    RunCancelled,
    Serial,
    WorkItem,
    die_with_parent,
    limit_memory,
    run_item,
    terminate_workers,
)
from twin.whatif.presets import DEFAULT as DEFAULT_RULES
from twin.whatif.presets import OPTIONS, RuleSet, option_problems, preset_problem, resolve
from twin.whatif.results import Replication, WhatIfResult
from twin.whatif.scenarios import Scenario, baseline
from twin.whatif.scenarios.limits import run_problems
from twin.whatif.stats import DEFAULT_CONFIDENCE

__all__ = [
    "DEFAULT_WORKER_MEMORY_MB",
    "Engine",
    "Executor",
    "ItemProgress",
    "Job",
    "LocalProcessPool",
    "Progress",
    "ReferenceEngine",
    "Replication",
    "RunCancelled",
    "RunConfig",
    "Serial",
    "WhatIfResult",
    "WorkItem",
    "die_with_parent",
    "engine_names",
    "get_engine",
    "limit_memory",
    "register_engine",
    "run_item",
    "run_whatif",
    "terminate_workers",
]


@dataclass(kw_only=True)
class RunConfig:
    """How long and how often to simulate each scenario."""

    days: float = 30.0  # simulated days per replication (after time 0 of the model)
    warmup_days: float = 0.0  # days whose completions are deleted from the statistics
    replications: int = 5  # replications per scenario; replication r shares its streams
    seed: int = 1  # base seed; the streams of replication r are keyed by (seed, r)
    confidence: float = DEFAULT_CONFIDENCE  # of every interval reported
    # the rule preset (twin.whatif.presets): its name, a RuleSet the caller resolved (the
    # CLI's, with its options and how it was chosen), or None: presets.DEFAULT ("twin")
    rules: str | RuleSet | None = None
    # options on top of the preset: those of presets.OPTIONS (e.g. transport=False,
    # batch_wait="max") are checked here; any other is passed to the engine as it is
    options: dict[str, Any] = field(default_factory=dict)
    # each Replication carries its completed lots (Replication.lots): what a forecast needs
    # for lot ETAs and daily outs; off by default (a long run's lots cost memory and pickling)
    lot_records: bool = False

    def validate(self) -> None:
        """Every problem at once: days, replications, seed and the engine's sampling options
        within the documented limits (docs/whatif.md, "Limits"), warm-up inside the run."""
        problems = run_problems(
            self.days, self.warmup_days, self.replications, self.seed, self.options
        )
        days_ok = not any(p.startswith("days") for p in problems)
        if not any(p.startswith("warmup") for p in problems) and (
            self.warmup_days < 0 or (days_ok and self.warmup_days >= self.days)
        ):
            problems.append(f"warmup_days {self.warmup_days} must be in [0, days={self.days})")
        if not isinstance(self.confidence, int | float) or not 0 < self.confidence < 1:
            problems.append(f"confidence {self.confidence} must be in (0, 1)")
        rules = self.rules
        name = (
            rules.preset
            if isinstance(rules, RuleSet)
            else DEFAULT_RULES
            if rules is None
            else rules
        )
        if (p := preset_problem(name)) is not None:
            problems.append(p)
        # wip_sample_days: run_problems above has checked it
        problems += option_problems(
            {k: v for k, v in self._known_options().items() if k != "wip_sample_days"}
        )
        if problems:
            raise ConfigError("what-if run config", problems)

    def _known_options(self) -> dict[str, Any]:
        return {k: v for k, v in (self.options or {}).items() if k in OPTIONS}

    def rule_set(self) -> RuleSet:
        """The effective rules: the preset with ``options`` (those of presets.OPTIONS) on top."""
        r = self.rules
        if isinstance(r, RuleSet):
            return resolve(r.preset, r.overrides, self._known_options(), chosen_by=r.chosen_by)
        return resolve(r, self._known_options())

    def engine_options(self, rules: RuleSet | None = None) -> dict[str, Any]:
        """What the engine is given: every SimConfig option of the rules, and the options
        that are not presets' (passed through: the engine takes or refuses them)."""
        rules = rules or self.rule_set()
        other = {k: v for k, v in (self.options or {}).items() if k not in OPTIONS}
        return {**rules.sim_options, **other}


def run_whatif(
    base: FabModel,
    scenarios: Sequence[Scenario] | None = None,
    config: RunConfig | None = None,
    *,
    engine: str | Engine = "reference",
    executor: Executor | None = None,
    start: Any = None,
    progress: bool = True,
) -> WhatIfResult:
    """Run ``config.replications`` replications of every scenario with common random numbers.

    ``scenarios`` should start with the baseline (``load_scenarios`` does that); without it, it
    is added. The result pairs replication r of every scenario with replication r of the
    baseline.
    """
    from tqdm import tqdm

    config = config or RunConfig()
    config.validate()
    scs = list(scenarios or [])
    if not scs or scs[0].changes:
        scs.insert(0, baseline())
    names = [s.name for s in scs]
    problems = [
        f"scenario name {n!r} is used twice" for n in sorted(set(names)) if names.count(n) > 1
    ]
    for sc in scs:  # cheap next to simulating; catches scenarios built in code
        problems += sc.check(base, source="<scenarios>")
    if problems:
        raise InputError(f"scenarios for model {base.name}", problems)
    eng = get_engine(engine) if isinstance(engine, str) else engine
    rules = config.rule_set()
    # the engine gets every option of the rules, and a model with their spread
    run_config = dataclasses.replace(config, options=config.engine_options(rules))
    job = Job(base=rules.model(base), scenarios=scs, engine=eng, config=run_config, start=start)
    items = list(_work_items(len(scs), config.replications, max(1, eng.batch_size)))
    executor = executor or LocalProcessPool()
    results: dict[str, dict[int, Replication]] = {s.name: {} for s in scs}
    t0 = time.perf_counter()
    bar = tqdm(
        total=len(scs) * config.replications,
        unit="rep",
        desc=f"what-if {len(scs)} scenario{'s' * (len(scs) != 1)}",
        file=sys.stderr,
        disable=None if progress else True,  # None: a bar only when stderr is a terminal
        dynamic_ncols=True,
        bar_format="{l_bar}{bar}| {n:.1f}/{total_fmt} [{elapsed}<{remaining}]",
    )
    running: dict[tuple[int, int], float] = {}  # (scenario, replication) -> fraction done

    def advance(scenario: int, replication: int, fraction: float) -> None:
        if (scenario, replication) in finished:
            return
        before = running.get((scenario, replication), 0.0)
        running[(scenario, replication)] = max(before, min(fraction, 1.0))
        bar.update(running[(scenario, replication)] - before)

    finished: set[tuple[int, int]] = set()
    index = {s.name: i for i, s in enumerate(scs)}
    with bar:
        for reps in executor.map(job, items, advance if progress else None):
            for r in reps:
                results[r.scenario][r.replication] = r
                key = (index[r.scenario], r.replication)
                bar.update(1.0 - running.pop(key, 0.0))
                finished.add(key)
        bar.n = bar.total  # not a float sum's 5.9999
        bar.refresh()
    wall = time.perf_counter() - t0
    return WhatIfResult(
        model=base.name,
        engine=eng.name,
        config=config,
        scenarios=scs,
        replications={
            name: [by_rep[i] for i in sorted(by_rep)] for name, by_rep in results.items()
        },
        wall_seconds=wall,
        rules=rules,
    )


def _work_items(n_scenarios: int, replications: int, batch: int) -> Iterable[WorkItem]:
    """Replication-major order, so every scenario's early replications finish early."""
    for lo in range(0, replications, batch):
        reps = tuple(range(lo, min(lo + batch, replications)))
        for s in range(n_scenarios):
            yield WorkItem(s, reps)
