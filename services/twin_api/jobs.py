"""What-if jobs: ``run_whatif`` on a background thread with a cancellable process pool.

A job is queued, then run (at most ``whatif_max_running`` at once, ``whatif_max_queued``
waiting); its progress is the replications finished so far, counted as the executor yields
them, plus the simulated share of running ones. Cancelling a queued job drops it; cancelling a
running one terminates its worker processes at once (``LocalProcessPool(cancelled=...)``).
A job may start from the process model's initial WIP or from the live twin state
(``twin.whatif.start.start_from_twin`` with the scene's ``ToolIdMap``: lots at their steps,
processing lots on their tools for the mean time left, down tools for the mean repair or PM
time left; a tool or lot that does not map is refused, HTTP 422). It runs under a rule preset
(``rules``, ``twin.whatif.presets``; by default the served model's: ``default_rules``) with
``options`` on top; its result records the effective rules.

With ``ray_address`` (``TWIN_RAY_ADDRESS``) the what-if and forecast jobs run on Ray
(``twin.whatif.ray_executor.RayExecutor``) instead of local processes: the service connects once
at start (``connect_ray``; a cluster it cannot reach stops the start with one line), cancels a
running job's Ray tasks at once, and ``/ready`` asks Ray whether it answers (``ray_state``).

Limits (docs/whatif.md, "Limits"): a request is counted before anything is built (sweep grids
multiplied, step ranges counted, runs = scenarios × replications) and refused with every
problem (HTTP 422); each worker process may use ``whatif_worker_memory_mb`` and dies with the
server; ``shutdown`` (SIGTERM) cancels queued jobs and terminates running workers at once.
"""

from __future__ import annotations

import json
import threading
import time as _time
import uuid
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from twin.errors import ConfigError, InputError, TwinError

ACTIVE = ("queued", "running")


class CapExceeded(TwinError):
    """Too many jobs queued and running (HTTP 429)."""


@dataclass
class WhatIfJob:
    id: str
    request: dict[str, Any]
    total: int  # replications, all scenarios
    scenarios: list[Any]
    config: Any
    start: Any
    status: str = "queued"  # queued | running | completed | failed | cancelled
    done: int = 0
    created: float = field(default_factory=_time.time)
    started: float | None = None
    finished: float | None = None
    result: dict[str, Any] | None = None
    error: str | None = None
    cancel: threading.Event = field(default_factory=threading.Event)
    running: dict[tuple[int, int], float] = field(default_factory=dict)  # share simulated

    def running_at(self, scenario: int, replication: int, fraction: float) -> None:
        self.running[(scenario, replication)] = min(1.0, max(0.0, fraction))

    def replications_done(self, keys: list[tuple[int, int]]) -> None:
        """Replications done: (scenario index, replication) as ``running_at`` names them."""
        for key in keys:
            self.running.pop(key, None)
        self.done += len(keys)

    def public(self) -> dict[str, Any]:
        partial = sum(list(self.running.values())) if self.status == "running" else 0.0
        return {
            "id": self.id,
            "status": self.status,
            "progress": {
                "replications_done": self.done,
                "replications_total": self.total,
                "fraction": min(1.0, (self.done + partial) / self.total) if self.total else 1.0,
            },
            "scenarios": [s.name for s in self.scenarios],
            # ISO 8601 UTC, as every time the API writes
            "created": _iso(self.created),
            "started": _iso(self.started),
            "finished": _iso(self.finished),
            "request": self.request,
            "error": self.error,
            "result": self.result,
        }


class JobPool:
    """The executor of a job (``job_executor``: local processes or Ray, stopped by the job's
    cancel event), telling the job how far running replications are and which are done."""

    def __init__(self, settings: Any, job: WhatIfJob) -> None:
        self.job = job
        self.pool = job_executor(settings, job.cancel)

    def map(self, job: Any, items: Sequence[Any], progress: Any = None) -> Iterator[list[Any]]:
        index = {s.name: i for i, s in enumerate(job.scenarios)}  # replications carry names
        for reps in self.pool.map(job, items, self.job.running_at):
            self.job.replications_done([(index[r.scenario], r.replication) for r in reps])
            yield reps


class Dispatcher:
    """What the what-if and forecast job queues share: start queued jobs, oldest first, each in
    a thread, while fewer than ``whatif_max_running`` run (``_run`` is the queue's own); look
    a job up, cancel it, and stop them all."""

    cancelled = 0  # jobs cancelled (while queued here; while running, by ``_run``)

    def get(self, job_id: str) -> Any:
        return self.jobs.get(job_id)

    def cancel(self, job_id: str) -> Any:
        job = self.jobs.get(job_id)
        if job is None:
            return None
        with self._lock:
            if job.status == "queued":
                job.status, job.finished = "cancelled", _time.time()
                self.cancelled += 1
        job.cancel.set()
        return job

    def shutdown(self, timeout: float = 10.0) -> None:
        """Stop at once (SIGTERM, Ctrl-C): nothing new starts, queued jobs are cancelled and
        running ones terminate their worker processes (the pools look every 0.2 s); waits at
        most ``timeout`` seconds in all for the job threads."""
        with self._lock:
            self.closed = True
        for j in list(self.jobs.values()):
            if j.status in ACTIVE:
                self.cancel(j.id)
        deadline = _time.monotonic() + timeout
        for t in self._threads:
            t.join(timeout=max(0.0, deadline - _time.monotonic()))

    def _dispatch(self) -> None:
        with self._lock:
            if self.closed:
                return
            running = sum(j.status == "running" for j in self.jobs.values())
            for job in self.jobs.values():
                if running >= self.settings.whatif_max_running:
                    break
                if job.status == "queued":
                    job.status, job.started = "running", _time.time()
                    t = threading.Thread(target=self._run, args=(job,), daemon=True)
                    self._threads.append(t)
                    t.start()
                    running += 1


class JobManager(Dispatcher):
    def __init__(self, runtime: Any) -> None:
        self.rt = runtime
        self.settings = runtime.settings
        self.jobs: OrderedDict[str, WhatIfJob] = OrderedDict()
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self.completed = 0
        self.failed = 0
        self.cancelled = 0
        self.closed = False  # shutdown began: nothing new is accepted or started
        self._tool_map: Any = None
        if self.settings.ray_address:  # before any job: an unreachable cluster stops the start
            connect_ray(self.settings)
        from twin_api.forecasts import ForecastJobs

        self.forecasts = ForecastJobs(runtime)  # POST /forecast (services/twin_api/forecasts.py)

    # ------------------------------------------------------------ submit
    def submit(self, req: dict[str, Any]) -> WhatIfJob:
        """Check a request (raises InputError listing every problem) and queue it."""
        from twin.whatif import presets
        from twin.whatif.runner import RunConfig, engine_names, get_engine
        from twin.whatif.scenarios import parse_scenarios
        from twin.whatif.start import start_from_twin

        s = self.settings
        model = self.rt.model
        if self.closed:
            raise CapExceeded("the service is stopping; retry when it is back")
        if model is None:
            raise InputError("what-if request", ["this twin has no process model to simulate"])
        problems: list[str] = []
        reps, days = req["replications"], req["days"]
        if isinstance(reps, int) and reps > s.whatif_max_runs:
            problems.append(
                f"replications {reps}: at most {s.whatif_max_runs} runs per job "
                f"(scenarios with the baseline × replications)"
            )
        doc = {k: req[k] for k in ("scenarios", "sweeps") if req.get(k)}
        try:  # counted before expanded: never more scenarios than the runs a job may have
            scenarios = parse_scenarios(
                json.dumps(doc, indent=1),
                source="request",
                model=model,
                max_scenarios=s.whatif_max_runs,
            )
        except InputError as exc:
            problems += exc.problems
            scenarios = []
        runs = max(1, len(scenarios)) * reps
        if scenarios and runs > s.whatif_max_runs:
            problems.append(
                f"{len(scenarios)} scenarios (with the baseline) × {reps} replications = {runs} "
                f"runs; at most {s.whatif_max_runs} per job"
            )
        if not days <= s.whatif_max_days:
            problems.append(f"days {days:g} is over the limit of {s.whatif_max_days:g}")
        if req["engine"] not in engine_names():
            problems.append(
                f"engine {req['engine']!r} unknown (accepted: {', '.join(engine_names())})"
            )
        options = dict(req.get("options") or {})
        # an option no preset knows is refused here (RunConfig passes those to the engine)
        problems += presets.option_problems(
            {k: v for k, v in options.items() if k not in presets.OPTIONS}
        )
        name, why = (req.get("rules"), "given") if req.get("rules") is not None else self.rules
        config = RunConfig(
            days=days,
            warmup_days=req["warmup_days"],
            replications=reps,
            seed=req["seed"],
            confidence=req["confidence"],
            rules=name,
            options={k: v for k, v in options.items() if k in presets.OPTIONS},
        )
        try:
            config.validate()
            config.rules = presets.resolve(name, config.options, chosen_by=why)
            config.options = {}
        except ConfigError as exc:  # every problem, each once
            problems += [p for p in exc.problems if p not in problems]
        if req["engine"] == "reference":
            from twin.whatif.reference import SimConfig

            try:  # SimConfig's own bounds, listed with the others
                if not isinstance(config.rules, str | None):  # resolved: the options are good
                    SimConfig(days=1.0, **config.engine_options())
            except TwinError as exc:
                problems.append(f"options: {exc}")
        elif req["engine"] in engine_names():
            try:
                get_engine(req["engine"])
            except TwinError as exc:
                problems.append(str(exc))
        start = None
        if req["start"] == "live":
            try:
                start = start_from_twin(self.rt.state, model, self.tool_map())
            except InputError as exc:
                problems += exc.problems
        if problems:
            raise InputError("what-if request", problems)
        job = WhatIfJob(
            id=uuid.uuid4().hex[:12],
            request=req,
            total=len(scenarios) * reps,
            scenarios=scenarios,
            config=config,
            start=start,
        )
        with self._lock:
            running = sum(j.status == "running" for j in self.jobs.values())
            queued = sum(j.status == "queued" for j in self.jobs.values())
            if running >= s.whatif_max_running and queued >= s.whatif_max_queued:
                raise CapExceeded(
                    f"{running} what-if job(s) running and {queued} queued: the limit is "
                    f"{s.whatif_max_running} running + {s.whatif_max_queued} queued; retry later"
                )
            self.jobs[job.id] = job
            self._forget_old()
        self._dispatch()
        return job

    def tool_map(self) -> Any:
        """The scene's ``ToolIdMap`` (``twin.process.toolmap``), as the emulator maps tools;
        built once."""
        from twin.process.toolmap import ToolIdMap

        if self._tool_map is None:
            self._tool_map = ToolIdMap.from_scene(self.rt.scene, self.rt.model)
        return self._tool_map

    @property
    def rules(self) -> tuple[str, str]:
        """The preset of a job that names none, and why: ``default_rules``."""
        return default_rules(self.settings)

    def _forget_old(self) -> None:
        done = [k for k, j in self.jobs.items() if j.status not in ACTIVE]
        for k in done[: max(0, len(done) - self.settings.whatif_keep)]:
            del self.jobs[k]

    def _run(self, job: WhatIfJob) -> None:
        from twin.whatif.runner import RunCancelled, run_whatif

        pool = JobPool(self.settings, job)
        try:
            result = run_whatif(
                self.rt.model,
                job.scenarios,
                job.config,
                engine=job.request["engine"],
                executor=pool,
                start=job.start,
                progress=False,
            )
            job.result = _finite(result.to_json())
            job.status = "completed"
            self.completed += 1
        except RunCancelled:
            job.status = "cancelled"
            self.cancelled += 1
        except Exception as exc:  # a failed job reports why; the service keeps running
            job.status = "failed"
            job.error = f"{type(exc).__name__}: {exc}"[:2000]
            self.failed += 1
        finally:
            job.finished = _time.time()
            self._dispatch()

    # ---------------------------------------------------------- queries
    def counts(self) -> dict[str, int]:
        out = {"queued": 0, "running": 0}
        for j in list(self.jobs.values()):
            if j.status in out:
                out[j.status] += 1
        return out

    def shutdown(self, timeout: float = 10.0) -> None:
        """The forecast jobs stop first, then the what-if jobs (``Dispatcher.shutdown``)."""
        self.forecasts.shutdown(timeout)
        super().shutdown(timeout)
        disconnect_ray()


def job_executor(settings: Any, cancel: threading.Event) -> Any:
    """The executor of a what-if or forecast job, stopped once ``cancel`` is set: Ray when
    ``ray_address`` is set (connected by ``connect_ray``), else ``whatif_workers`` local
    processes of ``whatif_worker_memory_mb`` each."""
    if settings.ray_address:
        from twin.whatif.ray_executor import RayExecutor

        address = None if settings.ray_address == "local" else settings.ray_address
        return RayExecutor(address=address, cancelled=cancel.is_set)
    from twin.whatif.runner import LocalProcessPool

    return LocalProcessPool(
        workers=settings.whatif_workers,
        cancelled=cancel.is_set,
        memory_mb=settings.whatif_worker_memory_mb,
    )


# This process's connection to Ray: ``ray.init`` holds one per process, so it lives here, once.
_ray_lock = threading.Lock()
_ray_owned = False  # ray.init was ours (ray.shutdown at the end); else Ray was up already
_ray_probe: dict[str, Any] = {}  # the /ready question in flight: thread, answer, since
_probe_lock = threading.Lock()


def connect_ray(settings: Any, timeout: float = 5.0, tries: int = 3) -> None:
    """Connect this process to Ray at ``settings.ray_address`` unless it is connected already
    (by an earlier call, a notebook or a test: then used as it is and left running).
    ``local`` starts a private instance of ``whatif_workers`` × ``whatif_max_running`` CPUs
    (tried ``tries`` times: Ray gives its agent a fixed 15 s to start, short on a busy machine);
    ``HOST:PORT`` and ``ray://HOST:PORT`` must accept a TCP connection within ``timeout`` s
    first (``ray.init`` would wait minutes for an unreachable one). Anything wrong is one
    ``ConfigError`` line naming the address and what to do."""
    global _ray_owned
    address = settings.ray_address
    what = f"TWIN_RAY_ADDRESS {address!r}"
    try:
        import ray
    except ImportError:
        raise ConfigError(what, ["needs the 'ray' extra: pip install 'twin[ray]'"]) from None
    if address not in ("local", "auto"):  # checked even when connected: the setting is wrong
        _reachable(what, address, timeout)
    with _ray_lock:
        if ray.is_initialized():
            return
        kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False}
        if address == "local":
            kwargs["num_cpus"] = settings.whatif_workers * settings.whatif_max_running
        else:
            kwargs["address"] = address
        error: Exception | None = None
        for _ in range(tries if address == "local" else 1):
            try:
                ray.init(**kwargs)
                _ray_owned = True
                return
            except Exception as exc:  # noqa: BLE001 - Ray raises bare Exceptions on start
                error = exc
                ray.shutdown()
        why = _first_line(error)[:300]
        hint = (
            "the local Ray instance did not start"
            if address == "local"
            else "check that the cluster runs (ray start --head) and the address"
        )
        raise ConfigError(what, [f"{hint}: {why}"])


def _reachable(what: str, address: str, timeout: float) -> None:
    import socket

    host, _, port = address.removeprefix("ray://").rpartition(":")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout).close()
    except OSError as exc:
        why = exc.strerror or type(exc).__name__
        raise ConfigError(
            what,
            [
                f"cannot reach {host}:{port} ({why}); check that the Ray cluster runs and the "
                "address (ray://HOST:PORT for Ray Client, HOST:PORT for its GCS, or auto)"
            ],
        ) from None


def disconnect_ray() -> None:
    """End the connection ``connect_ray`` made (a local instance stops); one made by someone
    else is left as it is."""
    global _ray_owned
    with _ray_lock:
        if _ray_owned:
            import ray

            ray.shutdown()
            _ray_owned = False


def ray_state(timeout: float = 1.0) -> str:
    """ "ok" when Ray answers (its cluster has CPUs) within ``timeout`` s, else what is wrong.
    The question runs on a thread of its own, one at a time, so that a cluster that does not
    answer holds no caller longer than ``timeout``."""
    try:
        import ray
    except ImportError:
        return "not installed (pip install 'twin[ray]')"
    if not ray.is_initialized():
        return "not connected"
    with _probe_lock:
        thread = _ray_probe.get("thread")
        if thread is None or not thread.is_alive():
            answer: dict[str, Any] = {}

            def ask() -> None:
                try:
                    answer["cpus"] = ray.cluster_resources().get("CPU", 0)
                except Exception as exc:  # noqa: BLE001 - whatever Ray raises is the answer
                    answer["error"] = _first_line(exc)[:200]

            thread = threading.Thread(target=ask, name="twin-ray-probe", daemon=True)
            _ray_probe.update(thread=thread, answer=answer, since=_time.monotonic())
            thread.start()
        answer, since = _ray_probe["answer"], _ray_probe["since"]
    thread.join(timeout)
    if thread.is_alive():
        return f"not answering (asked {_time.monotonic() - since:.0f} s ago)"
    if "error" in answer:
        return f"error: {answer['error']}"
    return "ok" if answer.get("cpus", 0) > 0 else "no CPUs in the cluster"


def _first_line(exc: BaseException | None) -> str:
    """An error's first line (Ray's run to pages), or its type's name when it says nothing."""
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


def default_rules(settings: Any) -> tuple[str, str]:
    """The rule preset of a job that names none (``twin.whatif.presets.default_preset``): the
    served scene's process model gets ``twin``; a ``process`` folder given on its own, the
    preset of that folder (``pyscfabsim`` for an SMT2020 folder that is no scene's)."""
    from twin.whatif import presets

    process = getattr(settings, "process", None)
    if process:
        return presets.default_preset(process)
    return "twin", "default for a scene"


def _finite(obj: Any) -> Any:
    """NaN and infinities are not JSON: null, as the CLI's JSON output writes them."""
    if isinstance(obj, float):
        return obj if obj == obj and obj not in (float("inf"), float("-inf")) else None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_finite(v) for v in obj]
    return obj


def _iso(t: float | None) -> str | None:
    from twin.live.events import format_time

    return None if t is None else format_time(t)
