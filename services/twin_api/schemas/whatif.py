from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class WhatIfCreate(BaseModel):
    """A what-if job: scenarios in the format of docs/whatif.md (as JSON), how long and how often."""

    model_config = ConfigDict(extra="forbid")

    scenarios: list[dict[str, Any]] = Field(default_factory=list)
    sweeps: list[dict[str, Any]] = Field(default_factory=list)
    replications: int = Field(3, ge=1)
    days: float = Field(30.0, gt=0)  # simulated days per replication
    warmup_days: float = Field(0.0, ge=0)
    seed: int = 1
    confidence: float = Field(0.95, gt=0, lt=1)
    engine: str = "reference"
    start: Literal["model", "live"] = "model"  # the model's initial WIP, or the live twin state
    # the rule preset (twin.whatif.presets: twin, pyscfabsim, smt2020); None: the default of
    # the served model (twin for a scene's, pyscfabsim for an SMT2020 folder on its own)
    rules: str | None = None
    # rule options on top of the preset (e.g. {"transport": false, "batch_wait": "max"})
    options: dict[str, Any] = Field(default_factory=dict)


class Progress(BaseModel):
    replications_done: int
    replications_total: int
    fraction: float


class WhatIfJobPublic(BaseModel):
    id: str
    status: str  # queued | running | completed | failed | cancelled
    progress: Progress
    scenarios: list[str]
    created: str  # ISO 8601 UTC
    started: str | None
    finished: str | None
    request: dict[str, Any]
    error: str | None
    result: dict[str, Any] | None  # the JSON of docs/whatif.md when completed
