from __future__ import annotations

import time

from fastapi import APIRouter

from services.api.deps import Runtime

router = APIRouter(tags=["health"])


@router.get("/health", summary="Liveness and what the twin runs (no token needed)")
async def health(rt: Runtime) -> dict:
    stats = rt.stats()
    return {
        "status": "ok",
        "scene": rt.scene.name,
        "uptime_s": round(time.time() - rt.started, 3),
        "events_stored": stats["stored"],
        "revision": rt.state.revision,
        "physics": rt.world is not None,
        "feed": rt.settings.feed,
        "store": "sqlite" if rt.settings.store else "memory",
        "mode": rt.settings.mode,
    }
