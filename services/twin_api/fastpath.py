"""The hot paths, ``GET /equipment/{id}`` and ``POST /events``, answered below FastAPI.

FastAPI's routing and dependency solving cost about 250 µs per request, more than the whole
budget of the issue's read target (3,000 requests/s on one core), and with Starlette's request
and response objects 0.5-0.9 ms of event-loop CPU per ``POST /events`` (1-2 µs per event of a
batch of 500, measured with thread_time). This ASGI layer sits inside the body-limit and timing middlewares and
answers the common cases itself: a ``GET`` of a known piece of equipment by a caller whose
token holds ``read``, and a batch of events that ingests (200) posted by a caller whose token
holds ``ingest``. Everything else (no or bad token, a missing scope, an unknown id, a body that
is not a batch of events, other paths and methods) goes to the FastAPI route (a posted body
that was already read is handed on as it came), which stays the single place that writes error
bodies and documents the endpoints in OpenAPI. Both paths send the same bytes: the encoders
(``equipment_json``, ``routers.events.ingest_body``) are shared, and the tests compare them.
"""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import HTTPException
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from twin.errors import IngestFailed, NotFoundError, TwinError
from twin.live.events import format_time
from twin_api.auth import TokenTable, bearer, may_publish
from twin_api.problems import problem_response

PREFIX = "/equipment/"
EVENTS = "/events"


class _Route:
    """What the timing middleware reads from ``scope["route"]``: the route template."""

    path = "/equipment/{equipment_id}"


class _EventsRoute:
    path = EVENTS


_HEADERS = [(b"content-type", b"application/json")]


def equipment_dict(rt: Any, e: Any) -> dict[str, Any]:
    """One piece of equipment as ``EquipmentPublic``."""
    info = rt.equipment_info.get(e.id, ("tool", None))
    return {
        "id": e.id,
        "kind": info[0],
        "family": e.family,
        "bay": info[1],
        "state": e.state,
        "reason": e.reason,
        "since": format_time(e.since) if e.state is not None and e.since is not None else None,
        "lots": list(e.lots),
        "setup": e.setup,
        "rev": e.rev,
        "time_in": dict(e.time_in),
    }


def equipment_json(rt: Any, e: Any) -> bytes:
    """``equipment_dict`` as JSON, encoded once per revision of the record: every change to a
    record bumps its ``rev`` (twin.live.state), so (record, rev) names one rendering."""
    cache: dict[str, tuple[Any, int, bytes]] = rt.rendered
    hit = cache.get(e.id)
    rev = e.rev  # read before rendering: a change made meanwhile gets a new rev, a new entry
    if hit is not None and hit[0] is e and hit[1] == rev:
        return hit[2]
    body = orjson.dumps(equipment_dict(rt, e))
    cache[e.id] = (e, rev, body)
    return body


class FastPath:
    """ASGI layer: serves ``GET /equipment/{id}`` for authorised callers and known ids, and
    ``POST /events`` batches that ingest; passes every other request on to ``inner`` (see the
    module docstring)."""

    def __init__(
        self, inner: Any, rt: Any, tokens: TokenTable, max_batch: int, max_event_values: int = 64
    ) -> None:
        self.inner, self.rt, self.tokens, self.max_batch = inner, rt, tokens, max_batch
        self.per_event = max_event_values

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            method = scope["method"]
            if method == "GET":
                path: str = scope["path"]
                if path.startswith(PREFIX):
                    body = self._answer(scope, path[len(PREFIX) :])
                    if body is not None:
                        scope["route"] = _Route  # the label the timing middleware records
                        await _send_json(send, body)
                        return
            elif method == "POST" and scope["path"] == EVENTS:
                policy = may_publish(self.tokens, _authorization(scope))
                if policy is not None:  # else the route answers 401/403
                    return await self._post_events(scope, receive, send, policy)
        await self.inner(scope, receive, send)

    def _holds(self, scope: dict, wanted: str) -> bool:
        """Does the request's bearer token hold ``wanted`` (or ``admin``)?"""
        scopes = self.tokens.scopes_of(bearer(_authorization(scope)))
        return scopes is not None and (wanted in scopes or "admin" in scopes)

    def _answer(self, scope: dict, key: str) -> bytes | None:
        """The body for an authorised read of a known id, else None (FastAPI answers)."""
        if not key or "/" in key or not self._holds(scope, "read"):
            return None
        rt = self.rt
        if rt.sync is None:  # not started (or stopped): the route reports it
            return None
        e = rt.state.equipment.get(key)
        return None if e is None else equipment_json(rt, e)

    async def _post_events(self, scope: dict, receive: Any, send: Any, policy: Any) -> None:
        """Read the body, ingest it off the event loop (as the route does) and answer 200; a
        body the route would refuse goes to the route with the body as it came."""
        from twin_api.routers.events import ingest_body

        chunks: list[bytes] = []
        while True:
            msg = await receive()  # the body-limit middleware's receive: it enforces the cap
            if msg["type"] != "http.request":  # the client left
                return
            chunks.append(msg.get("body", b""))
            if not msg.get("more_body", False):
                break
        body = b"".join(chunks)
        chunks.clear()  # one copy of an 8 MiB body in memory, not two
        if self.rt.sync is not None:
            scope["route"] = _EventsRoute
            try:
                answer = await run_in_threadpool(
                    ingest_body, self.rt, body, self.max_batch, self.per_event, policy
                )
            except HTTPException as exc:  # raised before anything is ingested
                if exc.status_code == 413:  # a hostile body is not scanned a second time
                    await problem_response(413, exc.detail)(scope, receive, send)
                    return
                del scope["route"]  # the route says why
            except TwinError as exc:  # as the app's handler answers it
                await twin_error_response(exc)(scope, receive, send)
                return
            else:
                await _send_json(send, answer)
                return
        replayed = False

        async def replay() -> dict:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.inner(scope, replay, send)


def _authorization(scope: dict) -> str | None:
    for k, v in scope["headers"]:
        if k == b"authorization":
            return v.decode("latin-1")
    return None


def twin_error_response(exc: TwinError) -> JSONResponse:
    """A TwinError as the API answers it: 404 for an unknown id, 503 when the store could not
    be written (nothing of the batch was kept: send it again), 422 otherwise."""
    status = (
        404 if isinstance(exc, NotFoundError) else 503 if isinstance(exc, IngestFailed) else 422
    )
    problems = getattr(exc, "problems", None)
    if problems and len(problems) > 1:  # an InputError: the first line, then each problem
        return problem_response(status, str(exc).splitlines()[0], list(problems))
    return problem_response(status, str(exc))


async def _send_json(send: Any, body: bytes) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [*_HEADERS, (b"content-length", b"%d" % len(body))],
        }
    )
    await send({"type": "http.response.body", "body": body})
