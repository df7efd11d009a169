from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.responses import Response

from twin.vocabulary import E10_STATES
from twin_api.deps import Pages, Reader, filter_values, not_found
from twin_api.fastpath import equipment_dict, equipment_json
from twin_api.schemas.common import ERRORS, NOT_FOUND
from twin_api.schemas.equipment import EquipmentPage, EquipmentPublic

router = APIRouter(prefix="/equipment", tags=["equipment"])


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
    fams = filter_values("family", family, {e.family for e in rt.state.equipment.values()})
    states = filter_values("state", state, E10_STATES)
    bays = filter_values("bay", bay, {b for _, b in rt.equipment_info.values() if b})
    items = sorted(rt.state.equipment.values(), key=lambda e: e.id)
    items = [
        e
        for e in items
        if (not fams or e.family in fams)
        and (not states or e.state in states)
        and (not bays or rt.equipment_info.get(e.id, ("", None))[1] in bays)
    ]
    return pages.respond(items, lambda e: equipment_dict(rt, e))


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
    # usually answered by twin_api.fastpath before FastAPI routes it; same bytes here
    return Response(equipment_json(rt, e), media_type="application/json")
