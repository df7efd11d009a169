from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from twin_api.deps import Reader, iso
from twin_api.schemas.common import ERRORS
from twin_api.schemas.kpis import KpisPublic

router = APIRouter(tags=["kpis"])


def kpis_of(state: Any) -> dict[str, Any]:
    return {
        "revision": state.revision,
        "clock": iso(state.clock) if state.revision else None,
        **state.kpis(),
    }


@router.get(
    "/kpis",
    response_model=KpisPublic,
    responses=ERRORS,
    summary="WIP, moves, utilisation by family, completions, cycle time",
)
async def get_kpis(rt: Reader) -> Any:
    return JSONResponse(await run_in_threadpool(locked_kpis, rt))


def locked_kpis(rt: Any) -> dict[str, Any]:
    # KPIs sum over several containers that ingest mutates: take the lock, off the event loop
    with rt.lock:
        return kpis_of(rt.state)
