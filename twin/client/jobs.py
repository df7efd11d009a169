"""What-if and forecast jobs: submitted, then polled until they end."""

from __future__ import annotations

import time
from typing import Any

from twin.client import errors as E

ENDED = ("completed", "failed", "cancelled")


class Job:
    """A job on the twin (``kind`` "whatif" or "forecast"). ``doc`` is its latest public
    document (id, status, progress, times, and the result once completed)."""

    def __init__(self, client: Any, kind: str, doc: dict[str, Any]) -> None:
        if not isinstance(doc, dict) or not isinstance(doc.get("id"), str):
            raise E.ProtocolError(f"POST /{kind}: expected a job with an id, got {doc!r:.200}")
        self._client, self.kind, self.doc = client, kind, doc

    @property
    def id(self) -> str:
        return self.doc["id"]

    @property
    def status(self) -> str:
        return str(self.doc.get("status"))

    def refresh(self) -> dict[str, Any]:
        """Read the job's document again."""
        self.doc = self._client.get(f"/{self.kind}/{self._client._id('job', self.id)}")
        return self.doc

    def wait(self, timeout: float | None = None, poll: float = 0.5) -> dict[str, Any]:
        """Poll until the job ends; its result when it completed. Raises JobFailed when it
        failed or was cancelled, JobTimeout when ``timeout`` s pass first (the job goes on)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        delay = min(0.05, poll)
        while self.refresh().get("status") not in ENDED:
            if deadline is not None and time.monotonic() >= deadline:
                fraction = (self.doc.get("progress") or {}).get("fraction")
                raise E.JobTimeout(
                    f"{self.kind} job {self.id} still {self.status} after {timeout:g} s"
                    + (f" ({fraction:.0%} done)" if isinstance(fraction, float) else "")
                )
            time.sleep(delay)
            delay = min(poll, delay * 2)  # quick jobs end quickly; long ones are asked less
        if self.status != "completed":
            raise E.JobFailed(self.kind, self.doc)
        return self.doc.get("result") or {}

    def result(self, timeout: float | None = None) -> dict[str, Any]:
        """The result, waiting for it if need be (``wait``)."""
        return self.wait(timeout)

    def cancel(self) -> dict[str, Any]:
        """Cancel the job (queued or running); its document after."""
        self.doc = self._client.delete(f"/{self.kind}/{self._client._id('job', self.id)}")
        return self.doc

    def __repr__(self) -> str:
        return f"Job({self.kind!r}, {self.id!r}, status={self.status!r})"
