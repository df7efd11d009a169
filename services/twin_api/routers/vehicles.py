from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from twin_api.deps import Pages, Reader, iso
from twin_api.schemas.common import ERRORS
from twin_api.schemas.vehicles import VehiclePage

router = APIRouter(prefix="/vehicles", tags=["vehicles"])


def render(rt: Any, v: Any) -> dict[str, Any]:
    seg, off = v.segment, v.offset
    if seg is None and v.id in rt.scene:  # no report yet: where the scene parks it
        attrs = rt.scene.node(v.id).attrs
        seg, off = attrs.get("segment"), float(attrs.get("offset", 0.0))
    pos = None
    if seg is not None and seg in rt.scene.segments:
        pos = [round(float(x), 4) for x in rt.scene.point_on_segment(seg, off)]
    return {
        "id": v.id,
        "segment": seg,
        "offset": off,
        "reported": v.segment is not None,
        "speed": v.speed,
        "position": pos,
        "state": v.state,
        "carrier": v.carrier,
        "updated": iso(v.updated) if v.rev else None,
        "rev": v.rev,
    }


@router.get(
    "",
    response_model=VehiclePage,
    responses=ERRORS,
    summary="OHT vehicles: rail segment, offset, speed and world position",
)
async def list_vehicles(rt: Reader, pages: Pages) -> Any:
    items = sorted(rt.state.vehicles.values(), key=lambda x: x.id)
    return pages.respond(items, lambda v: render(rt, v))
