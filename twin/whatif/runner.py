"""Replications × scenarios with common random numbers, on a pluggable engine and executor.

Three small interfaces keep the pieces apart:

- an **engine** simulates one model for a list of replication indices and returns one KPI dict
  per replication (``Engine.run``). Replication ``r`` is seeded by ``(seed, r)`` whatever the
  scenario: that is what makes the scenarios' random numbers common. ``ReferenceEngine`` wraps
  ``twin.whatif.reference.simulate``. A batched engine (the Warp kernel of issue 6) runs many
  replications per call: it sets ``batch_size`` and registers itself with
  ``register_engine("kernel", factory)`` when ``twin.whatif.kernel`` is imported.
- an **executor** runs work items (one scenario × a few replications) somewhere and yields their
  results as they finish (``Executor.map``). ``Serial`` runs in this process;
  ``LocalProcessPool`` (the default) uses one process per core and ships the base model and the
  scenarios to each worker once. A Ray executor implements the same ``map``: ``ray.put(job)``
  once, one ``ray.remote`` call of ``run_item(job, item)`` per item, yield with ``ray.wait``.
- ``run_whatif`` ties them together, shows a progress bar on stderr and returns a
  ``WhatIfResult`` with per-scenario KPI estimates and paired differences against the baseline.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
import math
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from typing import Any, Protocol

from twin.errors import ConfigError, InputError, TwinError
from twin.process.model import FabModel
from twin.whatif.presets import DEFAULT as DEFAULT_RULES
from twin.whatif.presets import OPTIONS, RuleSet, option_problems, preset_problem, resolve
from twin.whatif.scenarios import Scenario, baseline
from twin.whatif.scenarios.limits import run_problems
from twin.whatif.stats import (
    DEFAULT_CONFIDENCE,
    Estimate,
    flatten_kpis,
    flatten_series,
    mser5,
    summarize,
    summarize_differences,
    unflatten,
)


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


@dataclass
class Replication:
    """One replication's outcome: flat KPIs (see ``stats.flatten_kpis``) and its cost."""

    scenario: str
    replication: int
    kpis: dict[str, float]
    events: int = 0
    wall_seconds: float = 0.0
    series: dict[str, list[float]] = field(default_factory=dict)  # e.g. "wip.lots" per sample


# --- engines ---------------------------------------------------------------------------------


# progress(replication, fraction of its horizon simulated); engines that set
# ``reports_progress = True`` accept it as the ``progress`` keyword of ``run``.
Progress = Callable[[int, float], None]


class Engine(Protocol):
    """Simulates a model; ``batch_size`` replications per call suit it best."""

    name: str
    batch_size: int

    def run(
        self, model: FabModel, replications: Sequence[int], config: RunConfig, start: Any = None
    ) -> list[Replication]: ...


class ReferenceEngine:
    """The readable event-by-event engine of ``twin.whatif.reference``, one replication a call."""

    name = "reference"
    batch_size = 1
    reports_progress = True
    limit_address_space = True  # pure CPU: a worker's memory limit can be its address space

    def __init__(self, device: str | None = None):
        if device not in (None, "cpu"):
            raise TwinError(
                f"the reference engine runs on the CPU only, not on {device!r}; "
                "use --engine kernel for a GPU"
            )

    def run(
        self,
        model: FabModel,
        replications: Sequence[int],
        config: RunConfig,
        start: Any = None,
        progress: Progress | None = None,
    ) -> list[Replication]:
        from twin.whatif.reference import SimConfig, simulate

        out = []
        for r in replications:
            t0 = time.perf_counter()
            sim = SimConfig(
                days=config.days,
                warmup_days=config.warmup_days,
                seed=config.seed,
                replication=r,
                **config.options,
            )
            tick = None if progress is None else functools.partial(progress, r)
            kpis = simulate(model, sim, start=start, progress=tick).kpis()
            wall = time.perf_counter() - t0
            out.append(
                Replication(
                    scenario=model.name,
                    replication=r,
                    kpis=flatten_kpis(kpis),
                    events=int(kpis.get("events", 0) or 0),
                    wall_seconds=float(kpis.get("wall_seconds") or wall),
                    series=flatten_series(kpis),
                )
            )
        return out


_ENGINES: dict[str, Callable[[], Engine]] = {"reference": ReferenceEngine}
# Engines that are planned but may not be installed: name -> (module that registers it, why).
_PLANNED = {
    "kernel": (
        "twin.whatif.kernel",
        "the batched Warp kernel engine (what-if part 2, issue 6) is not implemented yet",
    ),
}


def register_engine(name: str, factory: Callable[[], Engine]) -> None:
    """Make an engine available to ``get_engine`` and ``twin whatif run --engine NAME``."""
    _ENGINES[name] = factory


def engine_names() -> list[str]:
    """Every engine name the CLI accepts (installed or planned)."""
    return sorted(set(_ENGINES) | set(_PLANNED))


def get_engine(name: str, **options: Any) -> Engine:
    """The engine called ``name``, built with ``options`` (e.g. ``device="cuda:0"``); a planned
    engine's module is imported on first use, which registers it."""
    if name not in _ENGINES and name in _PLANNED:
        module, why = _PLANNED[name]
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name is None or not module.startswith(exc.name):
                raise TwinError(
                    f"engine {name!r} needs the package {exc.name!r}, which is not installed "
                    f"(pip install 'twin[{name}]')"
                ) from exc
        if name not in _ENGINES:
            raise TwinError(f"engine {name!r}: {why}; available: {', '.join(sorted(_ENGINES))}")
    if name not in _ENGINES:
        raise TwinError(f"unknown engine {name!r}; available: {', '.join(engine_names())}")
    options = {k: v for k, v in options.items() if v is not None}
    try:
        return _ENGINES[name](**options)
    except TypeError as exc:
        raise TwinError(f"engine {name!r} does not take {sorted(options)}: {exc}") from exc


# --- executors -------------------------------------------------------------------------------


@dataclass(frozen=True)
class WorkItem:
    """Some replications of one scenario (index into ``Job.scenarios``)."""

    scenario: int
    replications: tuple[int, ...]


@dataclass
class Job:
    """Everything a worker needs, shipped once per worker: the base model, the scenarios, the
    engine and the run config (plus an optional start state for warm starts)."""

    base: FabModel
    scenarios: list[Scenario]
    engine: Engine
    config: RunConfig
    start: Any = None
    _models: dict[int, FabModel] = field(default_factory=dict, repr=False)

    def model(self, scenario: int) -> FabModel:
        """The scenario's model, built once per process."""
        if scenario not in self._models:
            self._models[scenario] = self.scenarios[scenario].apply(self.base)
        return self._models[scenario]


def run_item(
    job: Job, item: WorkItem, progress: Callable[[int, int, float], None] | None = None
) -> list[Replication]:
    """Run one work item (what every executor calls, in whatever process it lives);
    ``progress(scenario, replication, fraction)`` if given and the engine reports it."""
    name = job.scenarios[item.scenario].name
    extra = {}
    if progress is not None and getattr(job.engine, "reports_progress", False):
        extra["progress"] = functools.partial(progress, item.scenario)
    model = job.model(item.scenario)
    reps = job.engine.run(model, item.replications, job.config, job.start, **extra)
    for r in reps:
        r.scenario = name
    return reps


ItemProgress = Callable[[int, int, float], None]  # (scenario index, replication, fraction)


class Executor(Protocol):
    """Runs work items and yields each item's replications as soon as they are done;
    ``progress`` (optional) hears how far running replications are, from any process."""

    def map(
        self, job: Job, items: Sequence[WorkItem], progress: ItemProgress | None = None
    ) -> Iterator[list[Replication]]: ...


class Serial:
    """Everything in this process, in order (debugging, tiny runs, notebooks)."""

    def map(
        self, job: Job, items: Sequence[WorkItem], progress: ItemProgress | None = None
    ) -> Iterator[list[Replication]]:
        for item in items:
            yield run_item(job, item, progress)


_WORKER_JOB: Job | None = None
_WORKER_QUEUE: Any = None
_WORKER_MEMORY_MB: int | None = None
_LAST_SENT: dict[tuple[int, int], float] = {}

# Memory (MiB) a pool worker may map, unless the pool says otherwise (None or 0: no limit).
# Measured (docs/whatif.md, "Limits"): one HVLM reference replication peaks at 48 MiB resident,
# 164 MiB mapped over 10 days, 84 MiB and 196 MiB over 730 (the kernel engine on the CPU: 225
# MiB resident, 172 MiB of data over 730 days); the limit leaves 20x that and stops a runaway
# replication long before the machine runs short.
DEFAULT_WORKER_MEMORY_MB = 4096
_PR_SET_PDEATHSIG = 1  # linux/prctl.h


def _init_worker(
    job: Job, queue: Any = None, memory_mb: int | None = None, owner: int | None = None
) -> None:
    global _WORKER_JOB, _WORKER_QUEUE, _WORKER_MEMORY_MB
    die_with_parent(owner)
    limit_memory(memory_mb, job.engine)
    _WORKER_JOB, _WORKER_QUEUE, _WORKER_MEMORY_MB = job, queue, memory_mb


def die_with_parent(owner: int | None = None, every: float = 1.0) -> None:
    """End this process when its parent dies (Linux: ``prctl(PR_SET_PDEATHSIG, SIGKILL)``),
    and, as a fallback everywhere, when a thread checking every ``every`` seconds finds it
    re-parented or ``owner`` (the process that made the pool) gone. A worker must never outlive
    the server that started it."""
    parent = os.getppid()
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        except (OSError, AttributeError):  # no libc symbol: the thread below still watches
            pass
    if os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(1)

    def watch() -> None:
        while True:
            time.sleep(every)
            if os.getppid() != parent or (owner is not None and not _alive(owner)):
                os._exit(1)

    threading.Thread(target=watch, name="twin-parent-watch", daemon=True).start()


def _alive(pid: int) -> bool:
    """Whether process ``pid`` runs (a zombie, killed but not yet reaped, does not)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            return fh.read().rsplit(b")", 1)[1].split()[0] not in (b"Z", b"X")
    except OSError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def limit_memory(memory_mb: int | None, engine: Any = None) -> None:
    """Cap this process's memory at ``memory_mb`` MiB (None or 0: leave it): its address space
    (``RLIMIT_AS``) for engines that say ``limit_address_space = True`` (the reference engine);
    for others, which may load a GPU driver that reserves address space it never fills, its
    data segment (``RLIMIT_DATA``: writable private memory). Past the limit an allocation
    fails with MemoryError, which fails the work item, not the server."""
    if not memory_mb:
        return
    import resource

    whole = getattr(engine, "limit_address_space", False) is True
    kind = resource.RLIMIT_AS if whole else resource.RLIMIT_DATA
    _soft, hard = resource.getrlimit(kind)
    limit = int(memory_mb) * 1024 * 1024
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    resource.setrlimit(kind, (limit, hard))


def _send_progress(scenario: int, replication: int, fraction: float) -> None:
    """Forward progress to the parent, at most every 1 % of a replication."""
    last = _LAST_SENT.get((scenario, replication), -1.0)
    if fraction - last >= 0.01 or fraction >= 1.0:
        _LAST_SENT[(scenario, replication)] = fraction
        _WORKER_QUEUE.put((scenario, replication, fraction))


def _run_in_worker(item: WorkItem) -> list[Replication]:
    assert _WORKER_JOB is not None, "worker not initialised"
    try:
        return run_item(_WORKER_JOB, item, _send_progress if _WORKER_QUEUE is not None else None)
    except MemoryError:
        name = _WORKER_JOB.scenarios[item.scenario].name
        raise TwinError(
            f"scenario {name!r}, replication(s) {', '.join(map(str, item.replications))}: "
            f"the worker ran out of memory (its limit is {_WORKER_MEMORY_MB} MiB; a smaller "
            "scenario, fewer days or a larger limit: --worker-memory, TWIN_WHATIF_WORKER_MEMORY_MB)"
        ) from None
    except TwinError as exc:
        # Our errors take several constructor arguments and would not unpickle in the parent
        # (which then sees a broken pool); pass the message on in a plain TwinError instead.
        raise TwinError(str(exc)) from None


class RunCancelled(Exception):
    """A run stopped because its executor's ``cancelled()`` said so."""


@dataclass(kw_only=True)
class LocalProcessPool:
    """One process per core (``workers``; default: the CPUs this process may use)."""

    workers: int | None = None
    # multiprocessing start method. None: "forkserver" where there is one (never fork a
    # process that may run threads: tqdm's monitor, a web server, a notebook kernel), else the
    # platform's default. Workers then receive the job pickled, once each.
    start_method: str | None = None
    # asked every 0.2 s while items run: once it returns True, queued items are dropped, the
    # worker processes terminated at once (a replication may run for minutes) and
    # RunCancelled raised from ``map``
    cancelled: Callable[[], bool] | None = None
    # MiB each worker may use (see ``limit_memory``); None or 0: no limit
    memory_mb: int | None = DEFAULT_WORKER_MEMORY_MB

    def map(
        self, job: Job, items: Sequence[WorkItem], progress: ItemProgress | None = None
    ) -> Iterator[list[Replication]]:
        import multiprocessing
        import queue as queue_mod

        n = min(self.workers or _cpu_count(), len(items)) or 1
        method = self.start_method
        if method is None and "forkserver" in multiprocessing.get_all_start_methods():
            method = "forkserver"
        ctx = multiprocessing.get_context(method)
        q = ctx.Queue() if progress is not None else None
        cancelled = self.cancelled
        poll = 0.2 if cancelled is not None else 0.5 if q is not None else None

        def drain() -> None:
            while q is not None:
                try:
                    progress(*q.get_nowait())  # type: ignore[misc]
                except queue_mod.Empty:
                    return

        with ProcessPoolExecutor(
            n,
            mp_context=ctx,
            initializer=_init_worker,
            initargs=(job, q, self.memory_mb, os.getpid()),
        ) as ex:
            pending = {ex.submit(_run_in_worker, it) for it in items}
            finished = False
            try:
                while pending:
                    if cancelled is not None and cancelled():
                        # the executor has no public way to stop running work: end its workers;
                        # it then fails every pending future itself (cancelling them as well
                        # races with that in Python 3.11), and leaving `with` joins it
                        terminate_workers(ex)
                        left, pending = len(pending), set()
                        raise RunCancelled(f"cancelled with {left} work item(s) left")
                    done, pending = wait(pending, timeout=poll, return_when=FIRST_COMPLETED)
                    drain()
                    for fut in done:
                        try:
                            result = fut.result()
                        except BrokenProcessPool:
                            limit = (
                                f"past its memory limit of {self.memory_mb} MiB"
                                if self.memory_mb
                                else "out of memory"
                            )
                            raise TwinError(
                                "a what-if worker process died while simulating (killed, or "
                                f"{limit}); {len(pending)} other work item(s) were not run"
                            ) from None
                        yield result
                finished = True
            finally:
                for fut in pending:
                    fut.cancel()
                if not finished:  # an item failed or the caller stopped: do not wait for the rest
                    terminate_workers(ex)
                if q is not None:
                    q.close()


def terminate_workers(executor: ProcessPoolExecutor) -> None:
    """SIGTERM every worker process of ``executor`` (they run no cleanup worth waiting for)."""
    for p in list((getattr(executor, "_processes", None) or {}).values()):
        p.terminate()


def _cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


# --- the run ---------------------------------------------------------------------------------


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
        disable=not progress,
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


# --- the result ------------------------------------------------------------------------------


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
