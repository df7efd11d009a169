"""``/sources``: each event source's position, and an admin reset of one (with an audit event).

A reset is for a producer that restarted its numbering or was hijacked: the source's next
expected seq becomes ``seq + 1``. The runtime (``TwinRuntime.reset_source``) stores a
``stream.reset`` event naming the actor and the reason before it changes anything.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from pydantic import ValidationError

from twin_api.auth import MAX_SOURCE_CHARS
from twin_api.deps import Administrator, Pages, Reader
from twin_api.schemas.common import ERRORS, Problem
from twin_api.schemas.sources import SourcePage, SourceReset, SourceResetPublic

router = APIRouter(prefix="/sources", tags=["sources"])


def positions(rt: Any) -> list[dict[str, Any]]:
    """Every source known to the state or the reorder buffer, by name."""
    if rt.sync is None:
        raise HTTPException(503, "the twin is not running (see GET /health)")
    with rt.lock:
        applied = dict(rt.state.last_seq)
        released = rt.sync.reorder.positions()
    return [
        {"source": s, "last_seq": applied.get(s, 0), "released": released.get(s, 0)}
        for s in sorted(applied.keys() | released.keys())
    ]


@router.get(
    "",
    response_model=SourcePage,
    responses=ERRORS,
    summary="Each event source's last applied seq and the seq released in order up to",
)
async def list_sources(rt: Reader, pages: Pages) -> Any:
    items = await run_in_threadpool(positions, rt)
    return pages.respond(items, lambda x: x)


@router.post(
    "/{source}/reset",
    response_model=SourceResetPublic,
    responses={
        **ERRORS,
        422: {"model": Problem, "description": "a bad source name, seq or reason"},
        501: {"model": Problem, "description": "this runtime cannot reset a source"},
    },
    summary="Set a source's last seq (admin); stores a stream.reset audit event first",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": SourceReset.model_json_schema()}},
        }
    },
)
async def reset_source(
    caller: Administrator,
    source: Annotated[str, Path(min_length=1, max_length=MAX_SOURCE_CHARS)],
    request: Request,
) -> Any:
    rt, grant = caller
    body = _body(await request.body())
    if not source.isprintable() or "\ufffd" in source:  # U+FFFD: bytes that were not UTF-8
        raise HTTPException(
            422, f"source {ascii(source[:40])}: accepted: printable characters in UTF-8"
        )
    if rt.sync is None:
        raise HTTPException(503, "the twin is not running (see GET /health)")
    reset = getattr(rt, "reset_source", None)
    if reset is None:
        raise HTTPException(501, "this runtime has no reset_source (not available in this build)")
    audit = await run_in_threadpool(
        lambda: reset(source, body.seq, actor=grant.name, reason=body.reason)
    )
    return JSONResponse({"source": source, "seq": body.seq, "audit": audit})


def _body(raw: bytes) -> SourceReset:
    """The body checked here rather than by FastAPI, whose 422 echoes the input back (and
    cannot encode a lone surrogate in it): problems name the field and what is accepted."""
    try:
        return SourceReset.model_validate_json(raw)
    except ValidationError as exc:
        problems = [
            f"{'.'.join(map(str, e['loc'])) or 'body'}: {e['msg']}"
            for e in exc.errors(include_input=False, include_url=False)
        ]
        raise HTTPException(
            422, {"message": 'expected {"seq": N, "reason": "..."}', "problems": problems}
        ) from None
