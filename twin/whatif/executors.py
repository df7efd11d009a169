"""What-if executors: where work items (one scenario × a few replications) run.

An **executor** runs work items and yields their replications as they finish
(``Executor.map(job, items, progress)``); every executor calls ``run_item(job, item)`` in
whatever process it uses. ``Serial`` runs in this process; ``LocalProcessPool`` (the default)
uses one process per core, ships the ``Job`` (base model, scenarios, engine, run config) to each
worker once, and keeps its workers on a leash: they die with their parent (``die_with_parent``),
may map at most ``memory_mb`` (``limit_memory``) and are terminated when the run is cancelled or
fails (``terminate_workers``). ``twin.whatif.ray_executor.RayExecutor`` implements the same
``map`` on a Ray cluster.

The worker functions (``_init_worker``, ``_run_in_worker``) stay at module level: the
forkserver and spawn start methods import them by qualified name.
"""

from __future__ import annotations

import functools
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from twin.errors import TwinError
from twin.process.model import FabModel
from twin.whatif.engines import Engine
from twin.whatif.results import Replication
from twin.whatif.scenarios import Scenario

if TYPE_CHECKING:  # runner imports this module
    from twin.whatif.runner import RunConfig


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
