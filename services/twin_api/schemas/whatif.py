from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from twin_api.schemas.common import PageMeta, described, page_example

JobStatus = Literal["queued", "running", "completed", "failed", "cancelled"]


class WhatIfCreate(BaseModel):
    """A what-if job: scenarios in the format of docs/whatif.md (as JSON), how long and how often."""

    model_config = ConfigDict(extra="forbid")

    scenarios: list[dict[str, Any]] = Field(
        default_factory=list, description="scenarios in the scenario-file format (docs/whatif.md)"
    )
    sweeps: list[dict[str, Any]] = Field(
        default_factory=list, description="parameter sweeps, each expanding into scenarios"
    )
    replications: int = Field(3, ge=1, description="replications per scenario")
    days: float = Field(30.0, gt=0, description="simulated days per replication")
    warmup_days: float = Field(0.0, ge=0, description="simulated days left out of the results")
    seed: int = Field(1, description="random seed of the first replication")
    confidence: float = Field(0.95, gt=0, lt=1, description="level of the confidence intervals")
    engine: str = Field("reference", description="simulation engine (docs/whatif.md)")
    start: Literal["model", "live"] = Field(
        "model", description="the model's initial WIP, or the live twin state"
    )
    # the rule preset (twin.whatif.presets: twin, pyscfabsim, smt2020); None: the default of
    # the served model (twin for a scene's, pyscfabsim for an SMT2020 folder on its own)
    rules: str | None = Field(
        None, description="rule preset (twin, pyscfabsim, smt2020); null: the served model's"
    )
    # rule options on top of the preset (e.g. {"transport": false, "batch_wait": "max"})
    options: dict[str, Any] = Field(
        default_factory=dict,
        description='rule options on top of the preset, e.g. {"transport": false}',
    )


class Progress(BaseModel):
    model_config = described({"replications_done": 2, "replications_total": 6, "fraction": 0.333})

    replications_done: int = Field(description="replications finished")
    replications_total: int = Field(description="replications in the job")
    fraction: float = Field(description="done / total, 0 to 1")


EXAMPLE = {
    "id": "wi-1", "status": "running",
    "progress": {"replications_done": 2, "replications_total": 6, "fraction": 0.333},
    "scenarios": ["baseline", "more-litho"], "created": "2026-01-31T08:00:00.000Z",
    "started": "2026-01-31T08:00:01.000Z", "finished": None,
    "request": {"replications": 3, "days": 30}, "error": None, "result": None,
}  # fmt: skip


class WhatIfJobPublic(BaseModel):
    model_config = described(EXAMPLE)

    id: str = Field(description="job id")
    status: JobStatus = Field(description="where the job stands")
    progress: Progress = Field(description="replications done of the total")
    scenarios: list[str] = Field(description="scenario names, the baseline first")
    created: str = Field(description="UTC ISO 8601 time it was submitted")
    started: str | None = Field(description="UTC ISO 8601 time it started running")
    finished: str | None = Field(description="UTC ISO 8601 time it ended")
    request: dict[str, Any] = Field(description="the request as accepted")
    error: str | None = Field(description="why it failed, if it did")
    result: dict[str, Any] | None = Field(
        None, description="the JSON of docs/whatif.md when completed; left out of lists"
    )


class WhatIfJobPage(PageMeta):
    model_config = described(page_example({k: v for k, v in EXAMPLE.items() if k != "result"}, 3))

    items: list[WhatIfJobPublic] = Field(description="the jobs, oldest first, without results")
