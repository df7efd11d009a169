from __future__ import annotations

import json
import re
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response

from twin_api.deps import (
    CURSOR_DESCRIPTION,
    INT64_MAX,
    LIMIT_DESCRIPTION,
    Publisher,
    Reader,
    check_limit,
    decode_cursor,
    encode_cursor,
    paged,
)
from twin_api.routers.state import parse_at
from twin_api.schemas.common import ERRORS, Problem
from twin_api.schemas.events import EventsPage, IngestResponse

router = APIRouter(prefix="/events", tags=["events"])
EVENTS_CURSOR = "a"  # a cursor of /events: the stream position to continue after


@router.get(
    "",
    response_model=EventsPage,
    responses=ERRORS,
    summary="Stored events in arrival order, by event time, type and subject; page with ?after=",
)
async def list_events(
    rt: Reader,
    request: Request,
    since: Annotated[
        str | None, Query(description="event time >= (ISO 8601 UTC or epoch s)")
    ] = None,
    until: Annotated[
        str | None, Query(description="event time <= (ISO 8601 UTC or epoch s)")
    ] = None,
    type: Annotated[str | None, Query(description="event type, e.g. lot.track_in")] = None,
    subject: Annotated[str | None, Query(description="entity id")] = None,
    after: Annotated[
        int,
        Query(
            ge=0,
            le=INT64_MAX,
            description="stream position to continue after (cursor is the same, opaque)",
        ),
    ] = 0,
    limit: Annotated[int | None, Query(ge=1, description=LIMIT_DESCRIPTION)] = None,
    cursor: Annotated[str | None, Query(description=CURSOR_DESCRIPTION)] = None,
) -> Any:
    n = check_limit(limit, request.app.state.settings.max_page)
    if cursor is not None:
        after = decode_cursor(cursor, EVENTS_CURSOR)
    t0, t1 = parse_at("since", since), parse_at("until", until)
    rows, last = await run_in_threadpool(
        rt.events_after, after, n, since=t0, until=t1, type=type, subject=subject
    )
    more = len(rows) == n
    body = {
        "items": [{"pos": pos, "event": ev.to_dict()} for pos, ev in rows],
        "next_after": last,
        "more": more,
    }
    return paged(request, body, encode_cursor(EVENTS_CURSOR, last) if more else None)


_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "oneOf": [
                        {"type": "array", "items": {"$ref": "#/components/schemas/EventPublic"}},
                        {  # EventsCreate, inline: no route declares it, so it is not
                            # among the components (a $ref to it dangled: issue 19)
                            "title": "EventsCreate",
                            "type": "object",
                            "required": ["events"],
                            "properties": {"events": {
                                "type": "array", "description": "the batch",
                                "items": {"$ref": "#/components/schemas/EventPublic"},
                            }},
                        },
                    ]
                },
                "example": [
                    {
                        "id": "mes:1", "source": "mes", "seq": 1,
                        "time": "2026-01-31T08:00:00.000Z", "type": "equipment.state",
                        "subject": "LITH01", "data": {"state": "standby", "reason": "idle"},
                    }
                ],
            }
        },
    }
}  # fmt: skip


@router.post(
    "",
    response_model=IngestResponse,
    responses={
        **ERRORS,
        400: {"model": Problem, "description": "the body is not JSON"},
        413: {"model": Problem, "description": "body or batch too large"},
        422: {"model": Problem, "description": "not a list of events"},
    },
    openapi_extra=_BODY,
    summary="Ingest a batch: each event validated, stored and applied; invalid ones dead-lettered",
)
async def post_events(pub: Publisher, request: Request) -> Any:
    # usually answered by twin_api.fastpath before FastAPI routes it (same bytes); here:
    # errors, and a runtime not started. Parsing, ingest and encoding the answer all run off
    # the event loop: a batch of 5,000 events must not hold up the reads and WebSocket clients
    rt, may_publish = pub
    body = await request.body()
    s = request.app.state.settings
    answer = await run_in_threadpool(
        ingest_body, rt, body, s.max_batch, s.max_event_values, may_publish
    )
    return Response(answer, media_type="application/json")


def ingest_body(
    rt: Any, body: bytes, cap: int, per_event: int = 64, may_publish: Any = None
) -> bytes:
    """Parse a POST /events body, ingest it, and encode the per-event results. Raises
    HTTPException (before ingesting anything) for a body that is not a batch of events, or
    that holds more JSON values than ``cap`` events of ``per_event`` values each (checked
    before parsing: see ``check_values``). ``may_publish``: the sources the caller's token
    may publish (events of others are rejected one by one)."""
    check_values(body, cap * per_event)
    doc = _loads(body)
    if isinstance(doc, dict) and set(doc) == {"events"}:
        doc = doc["events"]
    if not isinstance(doc, list):
        raise HTTPException(
            422, 'expected a JSON array of events or {"events": [...]} (envelope: docs/events.md)'
        )
    if len(doc) > cap:
        raise HTTPException(413, f"batch of {len(doc)} events; at most {cap} per request")
    results = rt.ingest(doc, may_publish=may_publish)
    counts = {"accepted": 0, "rejected": 0, "duplicate": 0, "held": 0}
    for r in results:
        counts[r["status"]] += 1
    return orjson.dumps({"received": len(doc), **counts, "results": results})


def json_values_bound(body: bytes) -> int:
    """An upper bound on the JSON values (object keys included) in ``body``, from C-speed
    counts: every value but the first follows a ',' or ':' or opens its container after '['
    or '{' (punctuation inside strings only raises the bound)."""
    c = body.count
    return c(b",") + c(b":") + c(b"[") + c(b"{") + 1


_STRING = re.compile(rb'"[^"]*"')  # a JSON string once its escaped quotes are gone


def json_values(body: bytes) -> int:
    """The number of JSON values (object keys included) of a valid JSON ``body``, counted
    without parsing it: escaped backslashes then escaped quotes go (read left to right, as a
    parser does), strings become '0', white space goes (all at C speed), and each empty
    container counts one value instead of two. Garbage gets some number; the parser refuses it
    after."""
    unescaped = body.replace(b"\\\\", b"").replace(b'\\"', b"")
    bare = _STRING.sub(b"0", unescaped).translate(None, b" \t\r\n")
    c = bare.count
    return json_values_bound(bare) - c(b"[]") - c(b"{}")


def check_values(body: bytes, most: int) -> None:
    """413 for a body of more than ``most`` JSON values, before any object is built: a
    batch over the event cap made of tiny values (8 MiB of ``[],``: 1.4 million lists, 435 MB
    when parsed) is refused at the cost of a few scans of its bytes."""
    if json_values_bound(body) <= most:  # every ordinary batch: four bytes.count calls
        return
    n = json_values(body)
    if n > most:
        raise HTTPException(
            413,
            f"body of {n} JSON values; a batch may hold at most {most} (max_batch × "
            "max_event_values: TWIN_MAX_BATCH, TWIN_MAX_EVENT_VALUES)",
        )


def _loads(body: bytes) -> Any:
    """orjson, the fast parser; the standard library's for what orjson refuses but JSON in
    Python has always accepted here (NaN, integers past 64 bits), so nothing changes meaning:
    such an event is still rejected on its own rather than the whole batch (so is an event with
    a lone surrogate, which the parser refuses: no store could keep it)."""
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        pass
    try:
        doc = json.loads(body)
    except ValueError as exc:
        raise HTTPException(400, f"malformed JSON: {exc}") from None
    except RecursionError:
        raise HTTPException(
            400, "malformed JSON: nested too deeply (orjson's limit: 1024 levels)"
        ) from None
    return doc  # lone surrogates in it are refused per event, as dead letters
