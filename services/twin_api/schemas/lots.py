from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from twin.vocabulary import LOT_STATUSES
from twin_api.schemas.common import PageMeta, described, page_example

LotStatus = Literal[LOT_STATUSES]  # type: ignore[valid-type]

EXAMPLE = {
    "id": "Lot_1", "product": "Product_1", "step": 4, "status": "processing",
    "location": "LITH01", "carrier": "FOUP_1", "hold_reason": "",
    "released": "2026-01-31T06:00:00.000Z", "updated": "2026-01-31T08:00:00.000Z",
    "completed": None, "moves": 3, "rev": 9,
}  # fmt: skip


class LotPublic(BaseModel):
    model_config = described(EXAMPLE)

    id: str = Field(description="lot id")
    product: str = Field(description="the product (route) it is made to")
    step: int | None = Field(description="index of its current route step (from 0)")
    status: LotStatus = Field(description="where the lot stands in its route")
    location: str | None = Field(description="equipment it is processing on, if any")
    carrier: str | None = Field(description="the carrier (FOUP) that holds it, if known")
    hold_reason: str = Field(description="why it is on hold; empty when it is not")
    released: str = Field(description="UTC ISO 8601 time it was released into the fab")
    updated: str = Field(description="UTC ISO 8601 time of its last change")
    completed: str | None = Field(description="UTC ISO 8601 time it completed, if it has")
    moves: int = Field(description="steps completed so far")
    rev: int = Field(description="events that changed this lot so far")


class LotPage(PageMeta):
    model_config = described(page_example(EXAMPLE, total=120))

    items: list[LotPublic] = Field(description="this page's lots, by id")
