from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from twin_api.schemas.common import described
from twin_api.schemas.whatif import JobStatus


class ForecastCreate(BaseModel):
    """A forecast from the live state: how far, how often, on which engine and rules."""

    model_config = ConfigDict(extra="forbid")

    horizon: str | float = Field(
        "7d", description="7d, 36h, 90m, or days (at most 90 and TWIN_WHATIF_MAX_DAYS)"
    )
    replications: int = Field(50, ge=1, description="replications of the forward run")
    engine: str = Field("reference", description="simulation engine")
    rules: str | None = Field(None, description="a rule preset; null: the served model's default")
    seed: int = Field(0, ge=0, le=2**63 - 1, description="random seed")


class ForecastJobPublic(BaseModel):
    model_config = described(
        {
            "id": "fc-1",
            "status": "completed",
            "created": "2026-01-31T08:00:00.000Z",
            "started": "2026-01-31T08:00:00.100Z",
            "finished": "2026-01-31T08:00:20.000Z",
            "request": {"horizon": "7d", "replications": 50},
            "error": None,
            "result": {"at": "2026-01-31T08:00:00.000Z", "days": []},
        }  # fmt: skip
    )

    id: str = Field(description="job id")
    status: JobStatus = Field(description="where the job stands")
    created: str = Field(description="UTC ISO 8601 time it was submitted")
    started: str | None = Field(description="UTC ISO 8601 time it started running")
    finished: str | None = Field(description="UTC ISO 8601 time it ended")
    request: dict[str, Any] = Field(description="the request as accepted")
    error: str | None = Field(description="why it failed, if it did")
    result: dict[str, Any] | None = Field(description="twin forecast --json when completed")


class LotEtaPublic(BaseModel):
    model_config = described(
        {
            "id": "Lot_1",
            "product": "Product_1",
            "step": 4,
            "status": "processing",
            "finished_share": 1.0,
            "p05": "2026-02-02T01:00:00Z",
            "p10": "2026-02-02T03:00:00Z",
            "p50": "2026-02-02T10:00:00Z",
            "p90": "2026-02-02T20:00:00Z",
            "p95": "2026-02-03T01:00:00Z",
            "p50_hours": 50.0,
            "forecast": "fc-1",
            "at": "2026-01-31T08:00:00.000Z",
            "horizon_days": 7.0,
        }  # fmt: skip
    )

    id: str = Field(description="lot id")
    product: str = Field(description="its product")
    step: int = Field(description="its route step at the forecast's time")
    status: str = Field(description="its status at the forecast's time")
    finished_share: float = Field(
        description="share of replications that finished it within the horizon"
    )
    p05: str = Field(description='5th percentile completion time (UTC ISO 8601, or "> horizon")')
    p10: str = Field(description="10th percentile completion time")
    p50: str = Field(description="median completion time")
    p90: str = Field(description="90th percentile completion time")
    p95: str = Field(description="95th percentile completion time")
    p50_hours: float | None = Field(description="median, hours after the forecast's time")
    forecast: str = Field(description="the forecast job's id")
    at: str = Field(description="the forecast's time (UTC ISO 8601)")
    horizon_days: float = Field(description="the forecast's horizon, days")
