"""``GET /health``: up or down for anyone (liveness); what the twin runs for a caller with a valid
token. ``GET /ready``: whether it can do its job now (readiness): ingest running, the event store
writable, the MQTT broker connected when one is configured, and Ray answering when the jobs run
on it (``TWIN_RAY_ADDRESS``)."""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from twin_api.auth import bearer
from twin_api.schemas.common import json_example

router = APIRouter(tags=["health"])


def is_up(rt: Any) -> bool:
    """Started, not stopped, and its ingest thread alive."""
    thread = getattr(rt, "_thread", None)
    return rt.sync is not None and (thread is None or thread.is_alive())


@router.get(
    "/health",
    summary="Up or down (no token needed); with a token of any scope, what the twin runs",
    responses={
        200: json_example(
            {
                "status": "up",
                "scene": "demo-fab",
                "uptime_s": 12.5,
                "events_stored": 1200,
                "revision": 1200,
                "physics": False,
                "feed": "none",
                "store": "sqlite",
                "mode": "production",
            },
            "up (with a token: what the twin runs)",
        ),
        503: {"description": 'the twin is not running: {"status": "down"}'},
    },  # fmt: skip
)
async def health(request: Request) -> Any:
    rt = request.app.state.runtime
    up = is_up(rt)
    token = bearer(request.headers.get("authorization"))
    if not up or request.app.state.tokens.grant_of(token) is None:
        return JSONResponse({"status": "up" if up else "down"}, 200 if up else 503)
    stats = rt.stats()
    return {
        "status": "up",
        "scene": rt.scene.name,
        "uptime_s": round(time.time() - rt.started, 3),
        "events_stored": stats["stored"],
        "revision": rt.state.revision,
        "physics": rt.world is not None,
        "feed": rt.settings.feed,
        "store": ("postgresql" if "://" in rt.settings.store else "sqlite")
        if rt.settings.store
        else "memory",
        "mode": rt.settings.mode,
    }


def readiness(rt: Any) -> dict[str, str]:
    """Each check: "ok", or what is wrong (no secret, no path of the machine)."""
    checks = {"ingest": "ok" if is_up(rt) else "not running"}
    error = getattr(rt.sync, "store_error", None) if rt.sync is not None else None
    checks["store"] = (
        "ok"
        if rt.sync is not None and error is None
        else (f"last write failed: {error[:200]}" if error else "not open")
    )
    for src in rt.sources:
        connected = getattr(src, "connected", None)
        if connected is not None:  # an MQTT subscription
            cfg = src.cfg
            checks[f"broker {cfg.host}:{cfg.port}"] = (
                "ok" if connected.is_set() else "disconnected (reconnecting)"
            )
    if rt.settings.ray_address:  # what-if and forecast jobs run on Ray: does it answer?
        from twin_api.jobs import ray_state

        checks[f"ray {rt.settings.ray_address}"] = ray_state()
    return checks


@router.get(
    "/ready",
    summary="Ready to serve and ingest (no token needed): ingest running, the store writable, the "
    "MQTT broker connected when configured; 503 with the failing checks otherwise",
    responses={
        200: json_example(
            {"status": "ready", "checks": {"ingest": "ok", "store": "ok"}}, "every check ok"
        ),
        503: {"description": '{"status": "not ready", "checks": {"store": "..."}}'},
    },  # fmt: skip
)
async def ready(request: Request) -> Any:
    # on a thread: asking Ray may take up to a second, never the event loop's
    checks = await run_in_threadpool(readiness, request.app.state.runtime)
    ok = all(v == "ok" for v in checks.values())
    return JSONResponse({"status": "ready" if ok else "not ready", "checks": checks},
                        200 if ok else 503)  # fmt: skip
