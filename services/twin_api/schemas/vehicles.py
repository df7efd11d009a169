from __future__ import annotations

from pydantic import BaseModel

from twin_api.schemas.common import PageMeta


class VehiclePublic(BaseModel):
    id: str
    segment: str | None
    offset: float  # m along the segment
    reported: bool  # false: no vehicle event yet, the pose is the scene's parking place
    speed: float  # m/s
    position: list[float] | None  # m, world frame (rail point), null before the first report
    state: str
    carrier: str | None
    updated: str | None
    rev: int


class VehiclePage(PageMeta):
    items: list[VehiclePublic]
