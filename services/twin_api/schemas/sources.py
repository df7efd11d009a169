"""Event sources: their positions, and the admin reset of one."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from twin_api.schemas.common import PageMeta

MAX_SEQ = 2**63 - 1  # what the store's INTEGER column holds


class SourcePublic(BaseModel):
    source: str
    last_seq: int  # highest seq applied to the state
    released: int  # highest seq up to which every event was released in order (gaps declared)


class SourcePage(PageMeta):
    items: list[SourcePublic]


class SourceReset(BaseModel):
    """The body of ``POST /sources/{source}/reset``."""

    model_config = ConfigDict(extra="forbid")

    seq: int = Field(ge=0, le=MAX_SEQ, description="the source's last seq from now on")
    reason: str = Field(min_length=1, max_length=500, description="why, for the audit trail")

    @field_validator("reason")
    @classmethod
    def _printable(cls, v: str) -> str:
        if not v.strip() or not all(c.isprintable() or c in "\n\t" for c in v):
            raise ValueError("must be printable text (a line or a few), not blank")
        return v


class SourceResetPublic(BaseModel):
    source: str
    seq: int
    audit: dict[str, Any]  # the stored audit event (type stream.reset), as an envelope
