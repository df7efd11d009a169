"""``GET /health``: up or down for anyone; what the twin runs for a caller with a valid token."""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from services.api.auth import bearer

router = APIRouter(tags=["health"])


def is_up(rt: Any) -> bool:
    """Started, not stopped, and its ingest thread alive."""
    thread = getattr(rt, "_thread", None)
    return rt.sync is not None and (thread is None or thread.is_alive())


@router.get(
    "/health",
    summary="Up or down (no token needed); with a token of any scope, what the twin runs",
    responses={503: {"description": 'the twin is not running: {"status": "down"}'}},
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
