from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from twin_api.schemas.common import described

EVENT = {
    "schema": 1, "id": "mes:1", "source": "mes", "seq": 1,
    "time": "2026-01-31T08:00:00.000Z", "type": "equipment.state", "subject": "LITH01",
    "data": {"state": "standby", "reason": "idle"},
}  # fmt: skip


class EventPublic(BaseModel):
    """The event envelope (docs/events.md)."""

    model_config = described(EVENT)

    schema_: int = Field(1, alias="schema", description="envelope version (1)")
    id: str = Field(description="unique event id (source:seq by convention)")
    source: str = Field(description="the producer (MES, AMHS controller, tool)")
    seq: int = Field(description="per source, from 1, without gaps")
    time: str = Field(description="event time, UTC ISO 8601 with Z")
    type: str = Field(description="event type, e.g. lot.track_in (docs/events.md)")
    subject: str = Field(description="the entity it is about (equipment, lot, vehicle id)")
    data: dict[str, Any] = Field(description="the type's fields (docs/events.md)")


class StoredEventPublic(BaseModel):
    model_config = described({"pos": 1, "event": EVENT})

    pos: int = Field(description="stream position (sequence number in the store)")
    event: EventPublic = Field(description="the event as stored")


class EventsPage(BaseModel):
    model_config = described(
        {
            "items": [{"pos": 1, "event": EVENT}],
            "next_after": 1,
            "more": True,
            "next_cursor": "YTE",
        }  # fmt: skip
    )

    items: list[StoredEventPublic] = Field(description="this page's events, by position")
    next_after: int = Field(description="pass as ?after= for the next page")
    more: bool = Field(description="whether the page was full (another may follow)")
    next_cursor: str | None = Field(
        description="opaque cursor of the next page (?cursor=); null when the page was not full"
    )


class EventsCreate(BaseModel):
    """A batch: ``{"events": [...]}`` or a bare JSON array of events."""

    events: list[EventPublic] = Field(description="the events, each an envelope")


class IngestResultPublic(BaseModel):
    model_config = described({"index": 0, "status": "accepted", "id": "mes:1", "seq": 1})

    index: int = Field(description="position in the batch, from 0")
    status: Literal["accepted", "rejected", "duplicate", "held"] = Field(
        description="accepted (stored and applied), rejected (dead-lettered), duplicate (seen "
        "before), held (waiting for an earlier seq of its source)"
    )
    id: str | None = Field(None, description="the event's id, when it had one")
    seq: int | None = Field(None, description="stream position, when accepted")
    reason: str | None = Field(None, description="why it was rejected")


class IngestResponse(BaseModel):
    model_config = described(
        {
            "received": 1,
            "accepted": 1,
            "rejected": 0,
            "duplicate": 0,
            "held": 0,
            "results": [{"index": 0, "status": "accepted", "id": "mes:1", "seq": 1}],
        }  # fmt: skip
    )

    received: int = Field(description="events in the batch")
    accepted: int = Field(description="events stored and applied")
    rejected: int = Field(description="events dead-lettered (see each result's reason)")
    duplicate: int = Field(description="events seen before (ignored)")
    held: int = Field(description="events waiting for an earlier seq of their source")
    results: list[IngestResultPublic] = Field(description="one result per event, in order")
