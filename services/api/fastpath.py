"""The hot read, ``GET /equipment/{id}``, answered below FastAPI.

FastAPI's routing and dependency solving cost about 250 µs per request, more than the whole
budget of the issue's target (3,000 requests/s on one core). This ASGI layer sits inside the
body-limit and timing middlewares and answers the one common case itself: a ``GET`` of a known
piece of equipment by a caller whose token holds ``read``. Everything else (no or bad token,
a missing scope, an unknown id, other paths and methods) falls through to the FastAPI route,
which stays the single place that writes error bodies and documents the endpoint in OpenAPI.
Both paths send the same bytes: ``equipment_json`` is shared, and the tests compare them.
"""

from __future__ import annotations

from typing import Any

import orjson

from services.api.auth import TokenTable, bearer
from twin.live.events import format_time

PREFIX = "/equipment/"


class _Route:
    """What the timing middleware reads from ``scope["route"]``: the route template."""

    path = "/equipment/{equipment_id}"


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


class EquipmentFastPath:
    """ASGI layer: serves ``GET /equipment/{id}`` for authorised callers and known ids, passes
    every other request on to ``inner`` unchanged (see the module docstring)."""

    def __init__(self, inner: Any, rt: Any, tokens: TokenTable) -> None:
        self.inner, self.rt, self.tokens = inner, rt, tokens

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["method"] == "GET":
            path: str = scope["path"]
            if path.startswith(PREFIX):
                body = self._answer(scope, path[len(PREFIX) :])
                if body is not None:
                    scope["route"] = _Route  # the label the timing middleware records
                    await send(
                        {
                            "type": "http.response.start",
                            "status": 200,
                            "headers": [*_HEADERS, (b"content-length", b"%d" % len(body))],
                        }
                    )
                    await send({"type": "http.response.body", "body": body})
                    return
        await self.inner(scope, receive, send)

    def _answer(self, scope: dict, key: str) -> bytes | None:
        """The body for an authorised read of a known id, else None (FastAPI answers)."""
        if not key or "/" in key:
            return None
        header = None
        for k, v in scope["headers"]:
            if k == b"authorization":
                header = v.decode("latin-1")
                break
        scopes = self.tokens.scopes_of(bearer(header))
        if scopes is None or ("read" not in scopes and "admin" not in scopes):
            return None
        rt = self.rt
        if rt.sync is None:  # not started (or stopped): the route reports it
            return None
        e = rt.state.equipment.get(key)
        return None if e is None else equipment_json(rt, e)
