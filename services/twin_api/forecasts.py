"""Forecast jobs: ``twin.forecast`` from the live twin state on a background thread.

``POST /forecast`` checks the request (horizon, replications, engine, rules, seed: every
problem at once, HTTP 422) and builds the start from the state now (``build_start`` with the
scene's ``ToolIdMap``: an unmapped tool or lot is a 422), then queues the job. The limits are
the what-if jobs' (``whatif_max_runs`` replications, ``whatif_max_days`` and
``twin.forecast``'s 90 days of horizon, ``whatif_max_running`` + ``whatif_max_queued`` jobs,
``whatif_workers`` processes of ``whatif_worker_memory_mb``); forecast jobs count apart from
what-if jobs. ``GET /lots/{id}/eta`` reads the latest completed forecast.
"""

from __future__ import annotations

import threading
import time as _time
import uuid
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from twin.errors import InputError, TwinError
from twin_api.jobs import ACTIVE, Dispatcher, _iso


@dataclass
class ForecastJob:
    id: str
    request: dict[str, Any]
    days: float
    snap: Any
    start: Any
    notes: list[str]
    status: str = "queued"  # queued | running | completed | failed | cancelled
    created: float = field(default_factory=_time.time)
    started: float | None = None
    finished: float | None = None
    result: Any = None  # ForecastResult when completed
    error: str | None = None
    cancel: threading.Event = field(default_factory=threading.Event)

    def public(self) -> dict[str, Any]:
        from twin_api.jobs import _finite

        return {
            "id": self.id,
            "status": self.status,
            # ISO 8601 UTC, as every time the API writes
            "created": _iso(self.created),
            "started": _iso(self.started),
            "finished": _iso(self.finished),
            "request": self.request,
            "error": self.error,
            "result": _finite(self.result.to_json()) if self.result is not None else None,
        }


class ForecastJobs(Dispatcher):
    def __init__(self, runtime: Any) -> None:
        self.rt = runtime
        self.settings = runtime.settings
        self.jobs: OrderedDict[str, ForecastJob] = OrderedDict()
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self.closed = False
        self.latest: ForecastJob | None = None  # the last completed

    def submit(self, req: dict[str, Any]) -> ForecastJob:
        """Check a request (InputError listing every problem), build its start, queue it."""
        from twin.forecast.source import MAX_HORIZON_DAYS, Snapshot, parse_horizon
        from twin.whatif import presets
        from twin.whatif.runner import engine_names, get_engine
        from twin.whatif.start import build_start
        from twin_api.jobs import CapExceeded, default_rules

        s, rt = self.settings, self.rt
        if self.closed:
            raise CapExceeded("the service is stopping; retry when it is back")
        if rt.model is None:
            raise InputError("forecast request", ["this twin has no process model to simulate"])
        problems: list[str] = []
        days = None
        try:
            days = parse_horizon(req["horizon"], "horizon")
        except InputError as exc:
            problems += exc.problems
        if days is not None and days > s.whatif_max_days:
            problems.append(f"horizon {days:g} days is over the limit of {s.whatif_max_days:g}")
        reps = req["replications"]
        if reps > s.whatif_max_runs:
            problems.append(f"replications {reps}: at most {s.whatif_max_runs} per job")
        if req["engine"] not in engine_names():
            problems.append(
                f"engine {req['engine']!r} unknown (accepted: {', '.join(engine_names())})"
            )
        else:
            try:
                get_engine(req["engine"])
            except TwinError as exc:
                problems.append(str(exc))
        rules = req.get("rules")
        if rules is not None and (p := presets.preset_problem(rules)) is not None:
            problems.append(p)
        snap = start = None
        notes: list[str] = []
        first = next(rt.reader().read_positioned(limit=1), None)
        with rt.lock:  # the state does not change while the start is built from it
            state = rt.state
            if first is None:
                problems.append("the twin holds no events yet: nothing to forecast from")
            else:
                try:
                    tool_map = self.rt.jobs.tool_map()
                    snap = Snapshot(state, tool_map, first[1].time, state.clock, state.clock)
                    live = build_start(state, rt.model, tool_map, time=snap.at - snap.first)
                    start, notes = live.start, live.notes
                    if not start.lots:
                        problems.append("no lot is in WIP now: nothing to forecast")
                except InputError as exc:
                    problems += exc.problems
        if problems:
            raise InputError("forecast request", problems)
        assert days is not None and days <= MAX_HORIZON_DAYS
        req = {**req, "rules": rules or default_rules(s)[0]}
        job = ForecastJob(uuid.uuid4().hex[:12], req, days, snap, start, notes)
        with self._lock:
            running = sum(j.status == "running" for j in self.jobs.values())
            queued = sum(j.status == "queued" for j in self.jobs.values())
            if running >= s.whatif_max_running and queued >= s.whatif_max_queued:
                raise CapExceeded(
                    f"{running} forecast job(s) running and {queued} queued: the limit is "
                    f"{s.whatif_max_running} running + {s.whatif_max_queued} queued; retry later"
                )
            self.jobs[job.id] = job
            done = [k for k, j in self.jobs.items() if j.status not in ACTIVE]
            for k in done[: max(0, len(done) - s.whatif_keep)]:
                if self.jobs[k] is not self.latest:
                    del self.jobs[k]
        self._dispatch()
        return job

    def _run(self, job: ForecastJob) -> None:
        from twin.forecast.core import run_forecast
        from twin.whatif.runner import RunCancelled, get_engine
        from twin_api.jobs import job_executor

        pool = job_executor(self.settings, job.cancel)  # local processes, or Ray
        r = job.request
        try:
            res = run_forecast(
                job.snap, self.rt.model, job.days, r["replications"], get_engine(r["engine"]),
                rules=r["rules"], seed=r["seed"], executor=pool, start=job.start,
            )  # fmt: skip
            res.notes = job.notes + res.notes
            job.result, job.status = res, "completed"
            self.latest = job
        except RunCancelled:
            job.status = "cancelled"
        except Exception as exc:  # a failed job reports why; the service keeps running
            job.status, job.error = "failed", f"{type(exc).__name__}: {exc}"[:2000]
        finally:
            job.finished = _time.time()
            job.snap = job.start = None  # the state copy is not needed any more
            self._dispatch()
