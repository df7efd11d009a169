"""Run what-if work items on a Ray cluster (the optional ``ray`` extra).

Same contract as the local executors of :mod:`twin.whatif.executors`: the job (base model,
scenarios, engine, run config) is put in the object store once, each work item becomes one
remote task calling :func:`twin.whatif.executors.run_item`, and results are yielded as tasks finish.
``address=None`` starts a private local Ray instance (shut down afterwards); ``"auto"`` or
``"ray://host:port"`` joins an existing cluster and leaves it running. With ``cancelled`` (asked
every 0.2 s while tasks run, as ``LocalProcessPool`` does) a run stops at once: its pending and
running tasks are cancelled (``ray.cancel(force=True)``: the worker processes running them end)
and ``RunCancelled`` is raised from ``map``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from twin.errors import TwinError
from twin.whatif.executors import ItemProgress, Job, RunCancelled, WorkItem, run_item
from twin.whatif.results import Replication


def _remote_run(job: Job, item: WorkItem) -> list[Replication]:
    try:
        return run_item(job, item)
    except TwinError as exc:
        # Our errors take several constructor arguments; send the message in a plain TwinError.
        raise TwinError(str(exc)) from None


@dataclass(kw_only=True)
class RayExecutor:
    """Spread work items over Ray workers; one remote task per item."""

    address: str | None = None  # None: start a local instance; "auto" / "ray://...": join one
    num_cpus: int | None = None  # only for a local instance; default: all cores
    cancelled: Callable[[], bool] | None = None  # True: cancel the tasks, raise RunCancelled

    def map(
        self, job: Job, items: Sequence[WorkItem], progress: ItemProgress | None = None
    ) -> Iterator[list[Replication]]:
        try:
            import ray
        except ImportError:
            raise TwinError(
                "the Ray executor needs the 'ray' extra: pip install 'twin[ray]'"
            ) from None
        started = False
        if not ray.is_initialized():
            kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False}
            if self.address is not None:
                kwargs["address"] = self.address
            elif self.num_cpus is not None:
                kwargs["num_cpus"] = self.num_cpus
            ray.init(**kwargs)
            started = True
        try:
            task = ray.remote(_remote_run)
            job_ref = ray.put(job)
            pending = [task.remote(job_ref, it) for it in items]
            poll = 0.2 if self.cancelled is not None else None
            while pending:
                if self.cancelled is not None and self.cancelled():
                    for ref in pending:
                        ray.cancel(ref, force=True)
                    left, pending = len(pending), []
                    raise RunCancelled(f"cancelled with {left} work item(s) left")
                done, pending = ray.wait(pending, num_returns=1, timeout=poll)
                for ref in done:
                    try:
                        yield ray.get(ref)
                    except ray.exceptions.RayTaskError as exc:
                        cause = exc.as_instanceof_cause()
                        if isinstance(cause, TwinError):
                            raise TwinError(str(cause).splitlines()[-1]) from None
                        raise cause from None  # an instance of the task's exception type
        finally:
            for ref in locals().get("pending", []):
                ray.cancel(ref)
            if started:
                ray.shutdown()
