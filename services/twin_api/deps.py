"""Dependencies and helpers shared by the routers: the runtime, pagination, 404s, times,
and who the caller is (scopes, the sources it may publish)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Query, Request

from twin.errors import NotFoundError
from twin.live.events import format_time
from twin_api.auth import Grant, SourcePolicy, authorise, check
from twin_api.runtime import TwinRuntime


async def _runtime(request: Request) -> TwinRuntime:
    return request.app.state.runtime


Runtime = Annotated[TwinRuntime, Depends(_runtime)]


class Paging:
    def __init__(self, offset: int, limit: int) -> None:
        self.offset, self.limit = offset, limit

    def page(self, items: list[Any], render: Any) -> dict[str, Any]:
        """``items`` sorted and filtered; ``render`` turns one into JSON."""
        total = len(items)
        chunk = items[self.offset : self.offset + self.limit]
        end = self.offset + len(chunk)
        return {
            "total": total,
            "offset": self.offset,
            "limit": self.limit,
            "next": end if end < total else None,
            "items": [render(x) for x in chunk],
        }


async def _paging(
    request: Request,
    offset: Annotated[int, Query(ge=0, description="items to skip")] = 0,
    limit: Annotated[int | None, Query(ge=1, description="items per page (capped)")] = None,
) -> Paging:
    cap = request.app.state.settings.max_page
    return Paging(offset, min(limit or min(100, cap), cap))


Pages = Annotated[Paging, Depends(_paging)]


def not_found(kind: str, key: str, known: Iterable[str]) -> HTTPException:
    """404 naming the id and close matches (twin.errors.NotFoundError's message)."""
    return HTTPException(404, str(NotFoundError(kind, key, known)))


def iso(t: float | None) -> str | None:
    return None if t is None else format_time(t)


def position_problem(name: str, value: str, last: int) -> str | None:
    """Why ``value`` is not a stream position from 0 to ``last`` (None when it is one)."""
    text = value.strip()
    if len(text) <= 20 and text.isascii() and text.isdigit() and int(text) <= last:
        return None
    shown = ascii(value[:40]) + ("…" if len(value) > 40 else "")
    return (
        f"{name}={shown}: not a stream position; accepted: an integer from 0 to {last} "
        "(the last position of the stream)"
    )


def split(v: str | None) -> list[str]:
    return [s.strip() for s in (v or "").split(",") if s.strip()]


def filter_values(name: str, text: str | None, accepted: Iterable[str]) -> set[str]:
    """The comma-separated values of filter ``name``; a value outside ``accepted`` is a 422
    naming it and what is accepted (an unknown filter value is a mistake, not an empty list)."""
    values = set(split(text))
    known = {str(k) for k in accepted if k is not None}
    bad = sorted(v for v in values if v not in known)
    if bad:
        shown = ", ".join(ascii(v[:40]) for v in bad[:5])
        choices = sorted(known)
        listed = ", ".join(choices[:30]) + (
            f" … ({len(choices)} in all)" if len(choices) > 30 else ""
        )
        raise HTTPException(422, detail=f"{name}: unknown value {shown}; accepted: {listed}")
    return values


def _scoped(scope: str):  # noqa: ANN202 - a FastAPI dependency
    """One dependency that authorises the caller for ``scope`` and hands over the runtime
    (one dependency instead of two: dependency solving is most of a small request's cost)."""

    async def dep(request: Request) -> TwinRuntime:
        check(request.app.state.tokens, request.headers.get("authorization"), scope)
        return request.app.state.runtime

    return Depends(dep)


Reader = Annotated[TwinRuntime, _scoped("read")]
Ingester = Annotated[TwinRuntime, _scoped("ingest")]
WhatIfRunner = Annotated[TwinRuntime, _scoped("whatif")]


async def _publisher(request: Request) -> tuple[TwinRuntime, SourcePolicy]:
    grant = authorise(request.app.state.tokens, request.headers.get("authorization"), "ingest")
    return request.app.state.runtime, grant.publish


# (runtime, may_publish): for POST /events, ``rt.ingest(payloads, origin, may_publish=...)``;
# ``may_publish(source) -> bool``, ``may_publish.reason(source)`` says why not
Publisher = Annotated[tuple[TwinRuntime, SourcePolicy], Depends(_publisher)]


async def _admin(request: Request) -> tuple[TwinRuntime, Grant]:
    grant = authorise(request.app.state.tokens, request.headers.get("authorization"), "admin")
    return request.app.state.runtime, grant


# (runtime, the caller's grant): admin-only routes; ``grant.name`` names the actor in audits
Administrator = Annotated[tuple[TwinRuntime, Grant], Depends(_admin)]
