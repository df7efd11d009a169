from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST

from twin_api.deps import Reader
from twin_api.metrics import registry_for, render
from twin_api.schemas.common import ERRORS

router = APIRouter(tags=["metrics"])
CONTENT_TYPE = CONTENT_TYPE_LATEST


@router.get(
    "/metrics",
    response_class=Response,
    responses={**ERRORS, 200: {"content": {CONTENT_TYPE: {}}}},
    summary="Prometheus text format: ingest, dead letters, lag, store size, broker connection, "
    "WebSocket clients, jobs, latency, process CPU and memory",
)
async def get_metrics(rt: Reader, request: Request) -> Response:
    registry = getattr(request.app.state, "metrics_registry", None)
    if registry is None:
        registry = request.app.state.metrics_registry = registry_for(rt)
    return Response(render(registry), media_type=CONTENT_TYPE)
