"""``GET /schemas/events.json`` and ``GET /asyncapi.json``: the event contract, generated from
the twin's event registry (``twin.live.contract``), for anyone (no token: like
``/openapi.json``, they describe the interface and hold no data).

Both are made once per process and served with an ``ETag``; ``If-None-Match`` gets a 304.
"""

from __future__ import annotations

import hashlib
from functools import cache

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import Response

router = APIRouter(tags=["schemas"])
SCHEMA_MEDIA_TYPE = "application/schema+json"


@cache
def _document(name: str) -> tuple[bytes, str]:
    from twin.live.contract import asyncapi, event_schema

    doc = event_schema() if name == "events" else asyncapi()
    body = orjson.dumps(doc, option=orjson.OPT_INDENT_2)
    return body, '"' + hashlib.sha256(body).hexdigest()[:32] + '"'


def _send(request: Request, name: str, media_type: str) -> Response:
    body, etag = _document(name)
    headers = {"etag": etag, "cache-control": "no-cache"}
    match = request.headers.get("if-none-match", "")
    if etag in (m.strip().removeprefix("W/") for m in match.split(",")) or match.strip() == "*":
        return Response(status_code=304, headers=headers)
    return Response(body, media_type=media_type, headers=headers)


@router.get("/schemas/events.json", include_in_schema=False)
async def event_schema_document(request: Request) -> Response:
    """JSON Schema (draft 2020-12) of one fab event: a oneOf by type (docs/events.md)."""
    return _send(request, "events", SCHEMA_MEDIA_TYPE)


@router.get("/asyncapi.json", include_in_schema=False)
async def asyncapi_document(request: Request) -> Response:
    """AsyncAPI 3.0 document of the MQTT topics and the WebSocket stream."""
    return _send(request, "asyncapi", "application/json")
