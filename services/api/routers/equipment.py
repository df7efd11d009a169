from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse

from services.api.deps import Pages, Reader, iso, not_found, split
from services.api.schemas.common import ERRORS, NOT_FOUND
from services.api.schemas.equipment import EquipmentPage, EquipmentPublic

router = APIRouter(prefix="/equipment", tags=["equipment"])


def render(rt: Any, e: Any) -> dict[str, Any]:
    info = rt.equipment_info.get(e.id, ("tool", None))
    return {
        "id": e.id,
        "kind": info[0],
        "family": e.family,
        "bay": info[1],
        "state": e.state,
        "reason": e.reason,
        "since": iso(e.since) if e.state is not None else None,
        "lots": list(e.lots),
        "setup": e.setup,
        "rev": e.rev,
        "time_in": dict(e.time_in),
    }


@router.get(
    "",
    response_model=EquipmentPage,
    responses=ERRORS,
    summary="Tools and stockers with their E10 state, lots in process, setup and revision",
)
async def list_equipment(
    rt: Reader,
    pages: Pages,
    family: Annotated[str | None, Query(description="comma-separated families")] = None,
    state: Annotated[str | None, Query(description="comma-separated E10 states")] = None,
    bay: Annotated[str | None, Query(description="comma-separated bays")] = None,
) -> Any:
    fams, states, bays = set(split(family)), set(split(state)), set(split(bay))
    items = sorted(rt.state.equipment.values(), key=lambda e: e.id)
    items = [
        e
        for e in items
        if (not fams or e.family in fams)
        and (not states or e.state in states)
        and (not bays or rt.equipment_info.get(e.id, ("", None))[1] in bays)
    ]
    return JSONResponse(pages.page(items, lambda e: render(rt, e)))


@router.get(
    "/{equipment_id}",
    response_model=EquipmentPublic,
    responses={**ERRORS, **NOT_FOUND},
    summary="One tool or stocker",
)
async def get_equipment(equipment_id: str, rt: Reader) -> Any:
    e = rt.state.equipment.get(equipment_id)
    if e is None:
        raise not_found("equipment", equipment_id, list(rt.state.equipment))
    return JSONResponse(render(rt, e))
