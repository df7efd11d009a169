from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse

from twin.vocabulary import LOT_STATUSES
from twin_api.deps import Pages, Reader, filter_values, iso, not_found
from twin_api.schemas.common import ERRORS, NOT_FOUND
from twin_api.schemas.lots import LotPage, LotPublic

router = APIRouter(prefix="/lots", tags=["lots"])


def render(lot: Any) -> dict[str, Any]:
    return {
        "id": lot.id,
        "product": lot.product,
        "step": lot.step,
        "status": lot.status,
        "location": lot.location,
        "carrier": getattr(lot, "carrier", None),  # not every state version tracks it
        "hold_reason": lot.hold_reason,
        "released": iso(lot.released),
        "updated": iso(lot.updated),
        "completed": iso(lot.completed),
        "moves": lot.moves,
        "rev": lot.rev,
    }


@router.get("", response_model=LotPage, responses=ERRORS, summary="Lots, filterable")
async def list_lots(
    rt: Reader,
    pages: Pages,
    status: Annotated[str | None, Query(description="comma-separated statuses")] = None,
    product: Annotated[str | None, Query(description="comma-separated products")] = None,
    location: Annotated[str | None, Query(description="equipment the lot is processing on")] = None,
) -> Any:
    statuses = filter_values("status", status, LOT_STATUSES)
    lots = rt.state.lots
    products: set[str] = set()
    if product is not None:  # the known products: a scan of every lot, only when asked
        known = {x.product for x in list(lots.values())}
        products = filter_values("product", product, known | set(rt.catalog.products or ()))
    ids = lot_index(rt)
    if statuses or products or location is not None:

        def keep(x: Any) -> bool:
            return (
                (not statuses or x.status in statuses)
                and (not products or x.product in products)
                and (location is None or x.location == location)
            )

        ids = [i for i in ids if keep(lots[i])]
    return pages.respond(ids, lambda i: render(lots[i]))


def lot_index(rt: Any) -> list[str]:
    """Every lot id, sorted: sorted again only when a lot is added (lots are never removed
    from a state: a new state object, after a resync, is a new index). A page of the list
    then costs its own lots, not a sort of every lot per request."""
    lots = rt.state.lots
    key = (id(rt.state), len(lots))
    hit = getattr(rt, "lot_index", None)
    if hit is not None and hit[0] == key:
        return hit[1]
    ids = sorted(list(lots))  # list() first: one C-level copy while ingest may add lots
    rt.lot_index = ((id(rt.state), len(ids)), ids)
    return ids


@router.get(
    "/{lot_id}", response_model=LotPublic, responses={**ERRORS, **NOT_FOUND}, summary="One lot"
)
async def get_lot(lot_id: str, rt: Reader) -> Any:
    lot = rt.state.lots.get(lot_id)
    if lot is None:
        raise not_found("lot", lot_id, list(rt.state.lots))
    return JSONResponse(render(lot))
