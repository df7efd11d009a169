from __future__ import annotations

from pydantic import BaseModel

from twin_api.schemas.common import PageMeta


class CarrierPublic(BaseModel):
    id: str
    transfer: str | None
    status: str  # idle | requested | assigned | in_transit | delivered | failed
    source: str | None
    dest: str | None
    vehicle: str | None
    location: str | None
    lot: str | None
    updated: str | None
    rev: int


class CarrierPage(PageMeta):
    items: list[CarrierPublic]
