from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from services.api.deps import Reader, iso
from services.api.routers.kpis import kpis_of
from services.api.schemas.common import ERRORS
from twin.live.events import EventFormatError, parse_time

router = APIRouter(tags=["state"])


def parse_at(name: str, value: str | None) -> float | None:
    """ISO 8601 UTC or epoch seconds -> epoch seconds; 422 naming the parameter otherwise."""
    if value is None:
        return None
    try:
        return parse_time(float(value) if _number(value) else value)
    except EventFormatError as exc:
        raise HTTPException(422, f"{name}: {exc.reason}") from None


def _now(rt: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    with rt.lock:
        return rt.state.summary(), kpis_of(rt.state)


def _number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


@router.get(
    "/state",
    responses=ERRORS,
    summary="The twin state now, or as of an event time (?at=ISO 8601 UTC or epoch seconds)",
)
async def get_state(
    rt: Reader,
    at: Annotated[str | None, Query(description="e.g. 2026-01-31T08:00:00Z")] = None,
) -> Any:
    t = parse_at("at", at)
    if t is None:
        summary, kp = await run_in_threadpool(_now, rt)
    else:
        state = await run_in_threadpool(rt.state_at, t)
        summary, kp = state.summary(), kpis_of(state)
    summary.update(kp)
    summary["at"] = iso(t)
    return JSONResponse(summary)
