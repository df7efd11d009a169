from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class ForecastCreate(BaseModel):
    """A forecast from the live state: how far, how often, on which engine and rules."""

    model_config = ConfigDict(extra="forbid")

    horizon: str | float = "7d"  # 7d, 36h, 90m, or days (at most 90 and whatif_max_days)
    replications: int = Field(50, ge=1)
    engine: str = "reference"
    rules: str | None = None  # a rule preset; None: the served model's default
    seed: int = Field(0, ge=0, le=2**63 - 1)


class ForecastJobPublic(BaseModel):
    id: str
    status: str  # queued | running | completed | failed | cancelled
    created: str  # ISO 8601 UTC
    started: str | None
    finished: str | None
    request: dict[str, Any]
    error: str | None
    result: dict[str, Any] | None  # twin forecast --json when completed


class LotEtaPublic(BaseModel):
    id: str
    product: str
    step: int
    status: str
    finished_share: float  # replications that finished it within the horizon
    p05: str  # ISO 8601 UTC, or "> horizon"
    p10: str
    p50: str
    p90: str
    p95: str
    p50_hours: float | None  # hours after the forecast's time
    forecast: str  # the job id
    at: str
    horizon_days: float
