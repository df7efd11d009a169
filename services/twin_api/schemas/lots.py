from __future__ import annotations

from pydantic import BaseModel

from twin_api.schemas.common import PageMeta


class LotPublic(BaseModel):
    id: str
    product: str
    step: int | None
    status: str  # queued | processing | hold | completed | scrapped
    location: str | None
    carrier: str | None
    hold_reason: str
    released: str
    updated: str
    completed: str | None
    moves: int
    rev: int


class LotPage(PageMeta):
    items: list[LotPublic]
