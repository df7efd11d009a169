"""Event sources: their positions, and the admin reset of one."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from twin_api.schemas.common import PageMeta, described, page_example

MAX_SEQ = 2**63 - 1  # what the store's INTEGER column holds

EXAMPLE = {"source": "mes", "last_seq": 1200, "released": 1200}


class SourcePublic(BaseModel):
    model_config = described(EXAMPLE)

    source: str = Field(description="the source's name (the events' source field)")
    last_seq: int = Field(description="highest seq applied to the state")
    released: int = Field(
        description="highest seq up to which every event was released in order (gaps declared)"
    )


class SourcePage(PageMeta):
    model_config = described(page_example(EXAMPLE, total=3))

    items: list[SourcePublic] = Field(description="this page's sources, by name")


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
    model_config = described(
        {"source": "mes", "seq": 0, "audit": {"type": "stream.reset", "subject": "mes",
                                              "data": {"seq": 0, "reason": "MES restarted"}}}
    )  # fmt: skip

    source: str = Field(description="the source reset")
    seq: int = Field(description="its last seq from now on (the next expected is seq + 1)")
    audit: dict[str, Any] = Field(
        description="the stored audit event (type stream.reset), as an envelope"
    )
