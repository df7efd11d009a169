from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from twin_api.deps import Pages, WhatIfRunner, accepted_job, job_answer
from twin_api.schemas.common import ERRORS, NOT_FOUND, Problem
from twin_api.schemas.whatif import WhatIfCreate, WhatIfJobPage, WhatIfJobPublic

router = APIRouter(prefix="/whatif", tags=["whatif"])


@router.post(
    "",
    status_code=202,
    response_model=WhatIfJobPublic,
    responses={
        **ERRORS,
        422: {"model": Problem, "description": "bad scenarios, over the caps (every problem)"},
        429: {"model": Problem, "description": "too many jobs queued and running"},
    },
    summary="Start a what-if job (scenarios × replications); returns its id",
    description="Scenarios and sweeps in the scenario-file format of docs/whatif.md; `rules` "
    "names a rule preset (twin, pyscfabsim, smt2020; default: the served model's) and "
    "`options` single rule options on top of it. The result records the effective rules.",
)
async def create_whatif_job(body: WhatIfCreate, rt: WhatIfRunner, request: Request) -> Any:
    return await accepted_job(rt.jobs.submit, body.model_dump(), request, "whatif")


@router.get(
    "",
    response_model=WhatIfJobPage,
    responses=ERRORS,
    summary="What-if jobs, newest last: id, status, progress, times (results: GET /whatif/{id})",
)
async def list_whatif_jobs(rt: WhatIfRunner, pages: Pages) -> Any:
    jobs = list(rt.jobs.jobs.values())

    def brief(job: Any) -> dict[str, Any]:
        out = job.public()
        out.pop("result", None)  # a list stays small; the result is one GET away
        return out

    return pages.respond(jobs, brief)


@router.get(
    "/{job_id}",
    response_model=WhatIfJobPublic,
    responses={**ERRORS, **NOT_FOUND},
    summary="A job's status, progress and (when completed) results",
)
async def get_whatif_job(job_id: str, rt: WhatIfRunner) -> Any:
    return job_answer(rt.jobs.get(job_id), "what-if job", job_id, list(rt.jobs.jobs))


@router.delete(
    "/{job_id}",
    response_model=WhatIfJobPublic,
    responses={**ERRORS, **NOT_FOUND},
    summary="Cancel a queued or running job",
)
async def cancel_whatif_job(job_id: str, rt: WhatIfRunner) -> Any:
    return job_answer(rt.jobs.cancel(job_id), "what-if job", job_id, list(rt.jobs.jobs))
