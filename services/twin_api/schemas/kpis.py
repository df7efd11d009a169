from __future__ import annotations

from pydantic import BaseModel


class KpisPublic(BaseModel):
    revision: int  # events applied
    clock: str | None  # latest event time seen
    wip: int
    wip_by_step: dict[str, int]
    wip_by_family: dict[str, int]
    moves: int
    moves_per_hour: int
    utilisation_by_family: dict[str, float]
    lots_completed: int
    lots_scrapped: int
    mean_cycle_time_s: float | None
    gaps: int
