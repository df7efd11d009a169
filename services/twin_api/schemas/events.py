from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class EventPublic(BaseModel):
    """The event envelope (docs/events.md)."""

    schema_: int = Field(1, alias="schema")
    id: str
    source: str
    seq: int  # per source, from 1
    time: str  # UTC ISO 8601 with Z
    type: str
    subject: str
    data: dict[str, Any]


class StoredEventPublic(BaseModel):
    pos: int  # stream sequence number (position in the store)
    event: EventPublic


class EventsPage(BaseModel):
    items: list[StoredEventPublic]
    next_after: int  # pass as ?after= for the next page
    more: bool


class EventsCreate(BaseModel):
    """A batch: ``{"events": [...]}`` or a bare JSON array of events."""

    events: list[EventPublic]


class IngestResultPublic(BaseModel):
    index: int  # position in the batch
    status: str  # accepted | rejected | duplicate | held
    id: str | None = None
    seq: int | None = None  # stream sequence number, when accepted
    reason: str | None = None


class IngestResponse(BaseModel):
    received: int
    accepted: int
    rejected: int
    duplicate: int
    held: int
    results: list[IngestResultPublic]
