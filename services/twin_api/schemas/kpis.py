from __future__ import annotations

from pydantic import BaseModel, Field

from twin_api.schemas.common import described

EXAMPLE = {
    "revision": 1200, "clock": "2026-01-31T08:00:00.000Z", "wip": 120,
    "wip_by_step": {"4": 10}, "wip_by_family": {"LithoTrack_FE_95": 8}, "moves": 300,
    "moves_per_hour": 42, "utilisation_by_family": {"LithoTrack_FE_95": 0.81},
    "lots_completed": 12, "lots_scrapped": 0, "mean_cycle_time_s": 86400.0, "gaps": 0,
}  # fmt: skip


class KpisPublic(BaseModel):
    model_config = described(EXAMPLE)

    revision: int = Field(description="events applied to the state")
    clock: str | None = Field(description="latest event time seen (UTC ISO 8601)")
    wip: int = Field(description="lots in the fab (not completed or scrapped)")
    wip_by_step: dict[str, int] = Field(description="lots per route step index")
    wip_by_family: dict[str, int] = Field(description="lots per tool family they wait for")
    moves: int = Field(description="steps completed, all lots")
    moves_per_hour: int = Field(description="steps completed in the last hour of event time")
    utilisation_by_family: dict[str, float] = Field(
        description="share of time productive per tool family, 0 to 1"
    )
    lots_completed: int = Field(description="lots that finished their route")
    lots_scrapped: int = Field(description="lots scrapped")
    mean_cycle_time_s: float | None = Field(description="mean cycle time of completed lots, s")
    gaps: int = Field(description="sequence gaps declared in the sources' streams")
