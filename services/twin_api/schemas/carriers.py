from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from twin.vocabulary import CARRIER_STATUSES
from twin_api.schemas.common import PageMeta, described, page_example

CarrierStatus = Literal[CARRIER_STATUSES]  # type: ignore[valid-type]

EXAMPLE = {
    "id": "FOUP_1", "transfer": "T42", "status": "in_transit", "source": "STK01_P1",
    "dest": "LITH01_P1", "vehicle": "OHT01", "location": "OHT01", "lot": "Lot_1",
    "updated": "2026-01-31T08:00:00.000Z", "rev": 5,
}  # fmt: skip


class CarrierPublic(BaseModel):
    model_config = described(EXAMPLE)

    id: str = Field(description="carrier (FOUP) id")
    transfer: str | None = Field(description="id of its current or last transfer")
    status: CarrierStatus = Field(description="status of its transfer")
    source: str | None = Field(description="port the transfer starts from")
    dest: str | None = Field(description="port the transfer goes to")
    vehicle: str | None = Field(description="OHT vehicle assigned to the transfer")
    location: str | None = Field(description="port, vehicle or stocker holding it now")
    lot: str | None = Field(description="the lot it holds, if any")
    updated: str | None = Field(description="UTC ISO 8601 time of its last event")
    rev: int = Field(description="events that changed this carrier so far")


class CarrierPage(PageMeta):
    model_config = described(page_example(EXAMPLE, total=40))

    items: list[CarrierPublic] = Field(description="this page's carriers, by id")
