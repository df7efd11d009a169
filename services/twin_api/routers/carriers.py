from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from twin.vocabulary import CARRIER_STATUSES
from twin_api.deps import Pages, Reader, filter_values, iso
from twin_api.schemas.carriers import CarrierPage
from twin_api.schemas.common import ERRORS

router = APIRouter(prefix="/carriers", tags=["carriers"])


def render(c: Any) -> dict[str, Any]:
    return {
        "id": c.id,
        "transfer": c.transfer,
        "status": c.status,
        "source": c.source,
        "dest": c.dest,
        "vehicle": c.vehicle,
        "location": c.location,
        "lot": c.lot,
        "updated": iso(c.updated) if c.rev else None,
        "rev": c.rev,
    }


@router.get(
    "", response_model=CarrierPage, responses=ERRORS, summary="Carriers and their transfers"
)
async def list_carriers(
    rt: Reader,
    pages: Pages,
    status: Annotated[str | None, Query(description="comma-separated statuses")] = None,
) -> Any:
    statuses = filter_values("status", status, CARRIER_STATUSES)
    items = sorted(rt.state.carriers.values(), key=lambda x: x.id)
    items = [c for c in items if not statuses or c.status in statuses]
    return pages.respond(items, render)
