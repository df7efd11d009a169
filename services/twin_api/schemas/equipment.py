from __future__ import annotations

from pydantic import BaseModel

from twin_api.schemas.common import PageMeta


class EquipmentPublic(BaseModel):
    id: str
    kind: str  # tool | stocker | station
    family: str | None
    bay: str | None
    state: str | None  # SEMI E10 state; null until the first report
    reason: str
    since: str | None  # UTC time of the last state change
    lots: list[str]  # lots in process
    setup: str | None
    rev: int  # events that changed this equipment
    time_in: dict[str, float]  # s spent in each E10 state (closed intervals)


class EquipmentPage(PageMeta):
    items: list[EquipmentPublic]
