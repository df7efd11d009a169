from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import PlainTextResponse

from services.api.deps import Reader
from services.api.metrics import metric
from services.api.schemas.common import ERRORS

router = APIRouter(tags=["metrics"])
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


@router.get(
    "/metrics",
    response_class=PlainTextResponse,
    responses={**ERRORS, 200: {"content": {CONTENT_TYPE: {}}}},
    summary="Prometheus text format: ingest, dead letters, lag, WebSocket clients, jobs, latency",
)
async def get_metrics(rt: Reader) -> PlainTextResponse:
    s = rt.stats()
    jobs = rt.jobs.counts()
    lines = [
        *metric("twin_events_ingested_total", "counter", "events accepted, stored and applied",
                [({}, s["accepted"])]),
        *metric("twin_events_dead_lettered_total", "counter",
                "payloads rejected to the dead-letter table", [({}, s["dead_lettered"])]),
        *metric("twin_events_duplicate_total", "counter", "duplicates ignored",
                [({}, s["duplicates"])]),
        *metric("twin_stream_gaps_total", "counter", "sequence gaps declared", [({}, s["gaps"])]),
        *metric("twin_events_held", "gauge", "events waiting in the reorder buffer",
                [({}, s["held"])]),
        *metric("twin_events_stored", "gauge", "events in the store", [({}, s["stored"])]),
        *metric("twin_ingest_lag_seconds", "gauge",
                "receipt to durable commit of the latest batch", [({}, rt.ingest_lag)]),
        *rt.ingest_seconds.render(),
        *metric("twin_websocket_clients", "gauge", "connected stream clients",
                [({}, len(rt.hub.clients))]),
        *metric("twin_websocket_dropped_total", "counter", "stream clients dropped as too slow",
                [({}, rt.hub.dropped)]),
        *metric("twin_whatif_jobs", "gauge", "what-if jobs by state",
                [({"state": k}, v) for k, v in jobs.items()]),
        *metric("twin_whatif_jobs_finished_total", "counter", "what-if jobs finished",
                [({"outcome": "completed"}, rt.jobs.completed),
                 ({"outcome": "failed"}, rt.jobs.failed),
                 ({"outcome": "cancelled"}, rt.jobs.cancelled)]),
        *metric("twin_ingest_errors_total", "counter", "errors caught by the ingest loop",
                [({}, rt.ingest_errors)]),
        *metric("twin_physics_errors_total", "counter", "physics world updates that failed",
                [({}, getattr(rt.sync.world, "errors", 0) if rt.sync else 0)]),
        *rt.request_seconds.render(),
    ]  # fmt: skip
    return PlainTextResponse("\n".join(lines) + "\n", media_type=CONTENT_TYPE)
