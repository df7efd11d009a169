"""``POST /forecast`` (a job: twin.forecast from the live state), ``GET``/``DELETE
/forecast/{id}``, and ``GET /lots/{id}/eta`` from the latest completed forecast."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import JSONResponse

from twin_api.deps import Reader, WhatIfRunner, accepted_job, job_answer, not_found
from twin_api.schemas.common import ERRORS, NOT_FOUND, Problem
from twin_api.schemas.forecast import ForecastCreate, ForecastJobPublic, LotEtaPublic

router = APIRouter(tags=["forecast"])


@router.post(
    "/forecast",
    status_code=202,
    response_model=ForecastJobPublic,
    responses={
        **ERRORS,
        422: {"model": Problem, "description": "bad horizon, replications, engine or rules"},
        429: {"model": Problem, "description": "too many forecast jobs queued and running"},
    },
    summary="Start a forecast from the twin's state now; returns its id",
    description="Runs the served model forward from the live state (docs/forecast.md, "
    "'Forecast'): per day outs, WIP, cycle time with 80 % and 90 % prediction intervals, the "
    "bottleneck, and each lot's completion time p10/p50/p90 (GET /lots/{id}/eta).",
)
async def create_forecast(body: ForecastCreate, rt: WhatIfRunner, request: Request) -> Any:
    return await accepted_job(rt.jobs.forecasts.submit, body.model_dump(), request, "forecast")


@router.get(
    "/forecast/{job_id}",
    response_model=ForecastJobPublic,
    responses={**ERRORS, **NOT_FOUND},
    summary="A forecast job's status and (when completed) its result",
)
async def get_forecast(job_id: str, rt: WhatIfRunner) -> Any:
    queue = rt.jobs.forecasts
    return job_answer(queue.get(job_id), "forecast job", job_id, list(queue.jobs))


@router.delete(
    "/forecast/{job_id}",
    response_model=ForecastJobPublic,
    responses={**ERRORS, **NOT_FOUND},
    summary="Cancel a queued or running forecast job",
)
async def cancel_forecast(job_id: str, rt: WhatIfRunner) -> Any:
    queue = rt.jobs.forecasts
    return job_answer(queue.cancel(job_id), "forecast job", job_id, list(queue.jobs))


@router.get(
    "/lots/{lot_id}/eta",
    response_model=LotEtaPublic,
    responses={
        **ERRORS,
        **NOT_FOUND,
        409: {"model": Problem, "description": "no forecast has completed yet"},
    },
    summary="A lot's completion time (p05..p95) from the latest completed forecast",
)
async def lot_eta(lot_id: str, rt: Reader) -> Any:
    job = rt.jobs.forecasts.latest
    if job is None or job.result is None:
        raise HTTPException(
            409, "no forecast has completed yet: POST /forecast, then ask again when it is done"
        )
    res = job.result
    doc = res.to_json()
    for row in doc["lots"]:
        if row["id"] == lot_id:
            return JSONResponse(
                {**row, "forecast": job.id, "at": doc["at"], "horizon_days": res.horizon_days}
            )
    raise not_found(f"lot in WIP at the forecast's time {doc['at']} (forecast {job.id})",
                    lot_id, [e.id for e in res.lots])  # fmt: skip
