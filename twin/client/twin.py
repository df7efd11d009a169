"""``Twin``: a running twin seen from Python (reads as dicts and DataFrames, ingest, the
event stream, what-if and forecast jobs)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from twin.client import errors as E
from twin.client import tables
from twin.client.http import HttpClient
from twin.client.jobs import Job
from twin.client.stream import EventStream


class Twin(HttpClient):
    """A running twin, at ``url`` (default ``TWIN_URL``, else ``http://127.0.0.1:8000``, where
    ``twin up`` listens).

    ``token``: the bearer token (default ``TWIN_TOKEN``; without one only ``health()``
    answers). ``prefix``: the API version's path prefix (e.g. ``"/v1"`` to pin the version on
    a twin that serves one; default none: the twin's current version). ``timeout``: seconds
    per request. ``max_body``: the largest answer read, in
    bytes. ``etags``: keep answers and revalidate them with ``If-None-Match`` (a 304 is
    answered from the cache; ``cache_hits`` counts them). Use it as a context manager, or
    call ``close()``.

    Tables (equipment, lots, carriers, vehicles, events, jobs) are pandas DataFrames read over
    every page; ``iter_*`` give the same rows as dicts, one page at a time. Errors are
    ``twin.client.errors`` classes (all ``TwinError``) carrying the server's problem+json.

    >>> tw = Twin("http://127.0.0.1:8000", token="...")          # doctest: +SKIP
    >>> tw.lots(status="processing")[["id", "product", "step"]]  # doctest: +SKIP
    """

    # ------------------------------------------------------------------ service
    def health(self) -> dict[str, Any]:
        """``/health``: liveness (more fields with a token)."""
        return self.get("/health")

    def ready(self) -> dict[str, Any]:
        """``/ready``: whether the twin can serve (store, broker); TooBusy (503) when not."""
        return self.get("/ready")

    # ------------------------------------------------------------------ tables
    def iter_equipment(self, *, family: Any = None, state: Any = None, bay: Any = None,
                       page_size: int | None = None) -> Iterator[dict[str, Any]]:  # fmt: skip
        """Tools and stockers as dicts (filters: one value or a list)."""
        return self.pages("/equipment", {"family": family, "state": state, "bay": bay},
                          page_size=page_size)  # fmt: skip

    def equipment(self, *, family: Any = None, state: Any = None, bay: Any = None,
                  page_size: int | None = None) -> Any:  # fmt: skip
        """Tools and stockers: one row each (id, family, bay, E10 state, lots, setup, ...)."""
        rows = self.iter_equipment(family=family, state=state, bay=bay, page_size=page_size)
        return tables.frame(rows, "equipment")

    def tool(self, equipment_id: str) -> dict[str, Any]:
        """One tool or stocker."""
        return self.get(f"/equipment/{self._id('equipment', equipment_id)}")

    def iter_lots(self, *, status: Any = None, product: Any = None, location: str | None = None,
                  page_size: int | None = None) -> Iterator[dict[str, Any]]:  # fmt: skip
        """Lots as dicts."""
        return self.pages("/lots", {"status": status, "product": product,
                                    "location": location}, page_size=page_size)  # fmt: skip

    def lots(self, *, status: Any = None, product: Any = None, location: str | None = None,
             page_size: int | None = None) -> Any:  # fmt: skip
        """Lots: one row each (product, step, status, location, times, moves, ...)."""
        rows = self.iter_lots(status=status, product=product, location=location,
                              page_size=page_size)  # fmt: skip
        return tables.frame(rows, "lots")

    def lot(self, lot_id: str) -> dict[str, Any]:
        """One lot."""
        return self.get(f"/lots/{self._id('lot', lot_id)}")

    def lot_eta(self, lot_id: str) -> dict[str, Any]:
        """A lot's completion time from the latest completed forecast (Conflict before one)."""
        return self.get(f"/lots/{self._id('lot', lot_id)}/eta")

    def carriers(self, *, status: Any = None, page_size: int | None = None) -> Any:
        """Carriers (FOUPs) and their transfers: one row each."""
        rows = self.pages("/carriers", {"status": status}, page_size=page_size)
        return tables.frame(rows, "carriers")

    def vehicles(self, *, page_size: int | None = None) -> Any:
        """OHT vehicles: rail segment, offset, speed, world position, state."""
        return tables.frame(self.pages("/vehicles", page_size=page_size), "vehicles")

    def sources(self, *, page_size: int | None = None) -> Any:
        """Event sources with their last sequence numbers and counts."""
        return tables.frame(self.pages("/sources", page_size=page_size), "sources")

    def kpis(self) -> dict[str, Any]:
        """``/kpis``: revision, clock, WIP (by step, by family), moves, utilisation by
        family, completions, mean cycle time."""
        return self.get("/kpis")

    def kpis_by_family(self) -> Any:
        """The per-family KPIs as a table: family, utilisation, wip."""
        return tables.families_frame(self.kpis())

    def state(self, at: Any = None) -> dict[str, Any]:
        """The whole twin state now, or as of ``at`` (ISO 8601 UTC or epoch seconds)."""
        return self.get("/state", {"at": at})

    # ------------------------------------------------------------------ events
    def iter_events(self, *, since: Any = None, until: Any = None, type: str | None = None,
                    subject: str | None = None, after: int = 0,
                    page_size: int | None = None) -> Iterator[dict[str, Any]]:  # fmt: skip
        """Stored events in arrival order as ``{"pos", "event"}``, every page (``since`` and
        ``until`` filter by event time, ``after`` starts after a stream position)."""
        params = {"since": since, "until": until, "type": type, "subject": subject,
                  "after": after or None}  # fmt: skip
        return self.pages("/events", params, page_size=page_size)

    def events(self, **filters: Any) -> Any:
        """Stored events as a table: pos, then the envelope (id, source, seq, time, type,
        subject, data). Takes the filters of ``iter_events``."""
        return tables.events_frame(self.iter_events(**filters))

    def post_events(self, events: Iterable[Any]) -> dict[str, Any]:
        """Ingest a batch (``Event`` objects or envelope dicts): the twin's per-event results
        (``accepted``, ``rejected``, ``duplicate``, ``held`` counts and ``results``)."""
        if isinstance(events, (str, bytes, dict)):
            raise E.ClientConfigError("post_events: pass a list of events, not one event")
        return self.post("/events", list(events), expect=(200,))

    def stream(self, *, since: int | None = None, type: str | Iterable[str] | None = None,
               subject: str | Iterable[str] | None = None, resume: int = 3) -> EventStream:  # fmt: skip
        """The live stream of committed events, an iterator of ``{"seq", "event"}``: from
        now, or after stream position ``since`` (the replay comes first). ``type``: names or
        prefixes ending in '.'; ``subject``: entity ids. Dropped for being slow, it reconnects
        from where it was (``resume`` times)."""

        def joined(v: Any) -> str | None:
            return v if v is None or isinstance(v, str) else ",".join(v)

        if since is not None and (isinstance(since, bool) or not isinstance(since, int)
                                  or since < 0):  # fmt: skip
            raise E.ClientConfigError(f"since {since!r}: must be a stream position >= 0")
        return EventStream(self.url + self.prefix, self.token, since=since, types=joined(type),
                           subjects=joined(subject), resume=resume)  # fmt: skip

    # ------------------------------------------------------------------ jobs
    def submit_whatif(self, **request: Any) -> Job:
        """Start a what-if job (the body of POST /whatif: scenarios, sweeps, replications,
        days, warmup_days, seed, confidence, engine, start, rules, options)."""
        return Job(self, "whatif", self.post("/whatif", request, expect=(202,)))

    def whatif(self, *, timeout: float | None = None, **request: Any) -> dict[str, Any]:
        """Run a what-if job and wait for its result (docs/whatif.md's JSON)."""
        return self.submit_whatif(**request).wait(timeout)

    def whatif_job(self, job_id: str) -> Job:
        """A what-if job by id."""
        return Job(self, "whatif", self.get(f"/whatif/{self._id('job', job_id)}"))

    def whatif_jobs(self, *, page_size: int | None = None) -> Any:
        """The what-if jobs (without results) as a table."""
        return tables.frame(self.pages("/whatif", page_size=page_size), "jobs")

    def submit_forecast(self, **request: Any) -> Job:
        """Start a forecast from the twin's state now (the body of POST /forecast)."""
        return Job(self, "forecast", self.post("/forecast", request, expect=(202,)))

    def forecast(self, *, timeout: float | None = None, **request: Any) -> dict[str, Any]:
        """Run a forecast and wait for its result."""
        return self.submit_forecast(**request).wait(timeout)

    def forecast_job(self, job_id: str) -> Job:
        """A forecast job by id."""
        return Job(self, "forecast", self.get(f"/forecast/{self._id('job', job_id)}"))

    @staticmethod
    def whatif_table(result: dict[str, Any]) -> Any:
        """A what-if result as a long table (scenario, group, entity, kpi, mean, CI, n and
        the difference against the baseline)."""
        return tables.whatif_frame(result)
