from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from twin.vocabulary import E10_STATES
from twin_api.schemas.common import PageMeta, described, page_example

E10State = Literal[E10_STATES]  # type: ignore[valid-type]

EXAMPLE = {
    "id": "LITH01", "kind": "tool", "family": "LithoTrack_FE_95", "bay": "BAY1",
    "state": "productive", "reason": "processing", "since": "2026-01-31T08:00:00.000Z",
    "lots": ["Lot_1"], "setup": "SU_1", "rev": 12,
    "time_in": {"standby": 600.0, "productive": 3000.0},
}  # fmt: skip


class EquipmentPublic(BaseModel):
    model_config = described(EXAMPLE)

    id: str = Field(description="equipment id, as in the scene")
    kind: Literal["tool", "stocker", "station"] = Field(description="what the equipment is")
    family: str | None = Field(description="tool family (tool group); null for stockers")
    bay: str | None = Field(description="the bay it stands in, when the scene says")
    state: E10State | None = Field(description="SEMI E10 state; null until the first report")
    reason: str = Field(description="why it is in that state (free text from the source)")
    since: str | None = Field(description="UTC ISO 8601 time of the last state change")
    lots: list[str] = Field(description="ids of the lots in process on it")
    setup: str | None = Field(description="the current setup, when it has one")
    rev: int = Field(description="events that changed this equipment so far")
    time_in: dict[str, float] = Field(
        description="seconds spent in each E10 state (closed intervals)"
    )


class EquipmentPage(PageMeta):
    model_config = described(page_example(EXAMPLE))

    items: list[EquipmentPublic] = Field(description="this page's equipment, by id")
