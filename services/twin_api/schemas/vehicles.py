from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from twin.vocabulary import VEHICLE_STATES
from twin_api.schemas.common import PageMeta, described, page_example

VehicleState = Literal[VEHICLE_STATES]  # type: ignore[valid-type]

EXAMPLE = {
    "id": "OHT01", "segment": "S12", "offset": 3.5, "reported": True, "speed": 2.0,
    "position": [12.0, 4.5, 3.2], "state": "moving", "carrier": "FOUP_1",
    "updated": "2026-01-31T08:00:00.000Z", "rev": 17,
}  # fmt: skip


class VehiclePublic(BaseModel):
    model_config = described(EXAMPLE)

    id: str = Field(description="vehicle id")
    segment: str | None = Field(description="rail segment it is on")
    offset: float = Field(description="metres along the segment")
    reported: bool = Field(
        description="false: no vehicle event yet, the pose is the scene's parking place"
    )
    speed: float = Field(description="m/s")
    position: list[float] | None = Field(
        description="m, world frame (rail point, Z up); null when the segment is unknown"
    )
    state: VehicleState = Field(description="OHT vehicle state")
    carrier: str | None = Field(description="carrier on board, if any")
    updated: str | None = Field(description="UTC ISO 8601 time of its last event")
    rev: int = Field(description="events that changed this vehicle so far")


class VehiclePage(PageMeta):
    model_config = described(page_example(EXAMPLE, total=6))

    items: list[VehiclePublic] = Field(description="this page's vehicles, by id")
