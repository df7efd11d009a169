"""Dependencies and helpers shared by the routers: the runtime, pagination, 404s, times,
and who the caller is (scopes, the sources it may publish)."""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterable
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import Depends, HTTPException, Query, Request
from fastapi.responses import JSONResponse

from twin.errors import InputError, NotFoundError
from twin.live.events import format_time
from twin_api.auth import Grant, SourcePolicy, authorise, check
from twin_api.runtime import TwinRuntime


async def _runtime(request: Request) -> TwinRuntime:
    return request.app.state.runtime


Runtime = Annotated[TwinRuntime, Depends(_runtime)]


def revision(rt: TwinRuntime) -> int | None:
    """The twin revision: the store position of the last applied event (the same number on
    every server of a store); None while the twin is not running."""
    from twin_api.conventions import revision as _revision

    return _revision(rt)


INT64_MAX = 2**63 - 1  # the largest position a store holds
MAX_CURSOR = 64  # characters: no cursor this API writes is longer


def encode_cursor(kind: str, position: int) -> str:
    """An opaque cursor: the list's kind of position and the position, base64url."""
    return base64.urlsafe_b64encode(f"{kind}{position}".encode()).decode().rstrip("=")


def decode_cursor(text: str, kind: str) -> int:
    """The position in a cursor that ``encode_cursor(kind, ...)`` wrote; 422 otherwise."""
    pos = None
    if len(text) <= MAX_CURSOR and text.isascii():
        try:
            raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)).decode("ascii")
        except (ValueError, UnicodeDecodeError):
            raw = ""
        digits = raw[len(kind) :]
        if raw.startswith(kind) and digits.isdigit() and len(digits) <= 19:
            pos = int(digits)
    if pos is None or pos > INT64_MAX:
        shown = ascii(text[:40]) + ("…" if len(text) > 40 else "")
        raise HTTPException(
            422,
            f"cursor={shown}: not a cursor of this list; accepted: the next_cursor of a page "
            'of this list (or follow its Link rel="next"), or no cursor for the first page',
        )
    return pos


def check_limit(limit: int | None, cap: int) -> int:
    """Items per page: 100 (or the maximum, when lower) by default; above the maximum
    (``TWIN_MAX_PAGE``) a 422 naming it, never a silent cut."""
    if limit is None:
        return min(100, cap)
    if limit > cap:
        shown = str(limit) if limit < 10**30 else f"{str(limit)[:20]}… ({len(str(limit))} digits)"
        raise HTTPException(
            422, f"limit={shown}: over the maximum of {cap} items per page; accepted: 1 to {cap}"
        )
    return limit


def next_link(request: Request, cursor: str) -> str:
    """The ``Link`` header of a page that has a next one: this request with ``cursor`` in
    place of its position (offset, after, cursor), under the prefix it came with."""
    from twin_api.conventions import prefix_of

    params = [(k, v) for k, v in request.query_params.multi_items()
              if k not in ("offset", "after", "cursor")]  # fmt: skip
    params.append(("cursor", cursor))
    try:
        query = urlencode(params)
    except UnicodeEncodeError:  # a lone surrogate in a free-text filter: keep the cursor only
        query = urlencode([("cursor", cursor)])
    return f'<{prefix_of(request.scope)}{request.url.path}?{query}>; rel="next"'


def paged(request: Request, body: dict[str, Any], cursor: str | None) -> JSONResponse:
    """A page of a list as every list answers it: ``next_cursor`` in the body and, when there
    is a next page, ``Link: <...>; rel="next"``."""
    body["next_cursor"] = cursor
    headers = {"Link": next_link(request, cursor)} if cursor is not None else None
    return JSONResponse(body, headers=headers)


class Paging:
    """One list's page: where it starts (``offset``, or the position in ``cursor``) and how
    many items (``limit``)."""

    KIND = "o"  # a cursor's kind of position: an offset in the sorted, filtered list

    def __init__(self, request: Request, offset: int, limit: int) -> None:
        self.request, self.offset, self.limit = request, offset, limit

    def page(self, items: list[Any], render: Any) -> dict[str, Any]:
        """``items`` sorted and filtered; ``render`` turns one into JSON."""
        total = len(items)
        chunk = items[self.offset : self.offset + self.limit]
        end = self.offset + len(chunk)
        nxt = end if end < total else None
        return {
            "total": total,
            "offset": self.offset,
            "limit": self.limit,
            "next": nxt,
            "next_cursor": None if nxt is None else encode_cursor(self.KIND, nxt),
            "items": [render(x) for x in chunk],
        }

    def respond(self, items: list[Any], render: Any) -> JSONResponse:
        """``page`` as the answer, with the Link header to the next page."""
        body = self.page(items, render)
        return paged(self.request, body, body["next_cursor"])


CURSOR_DESCRIPTION = (
    "opaque: the next_cursor of the previous page (or follow its Link rel=next); "
    "none for the first page"
)
LIMIT_DESCRIPTION = "items per page, from 1 to TWIN_MAX_PAGE (default 1000); 100 when absent"


async def _paging(
    request: Request,
    offset: Annotated[
        int, Query(ge=0, description="items to skip (cursor is the same, opaque)")
    ] = 0,
    limit: Annotated[int | None, Query(ge=1, description=LIMIT_DESCRIPTION)] = None,
    cursor: Annotated[str | None, Query(description=CURSOR_DESCRIPTION)] = None,
) -> Paging:
    n = check_limit(limit, request.app.state.settings.max_page)
    if cursor is not None:
        offset = decode_cursor(cursor, Paging.KIND)
    return Paging(request, offset, n)


Pages = Annotated[Paging, Depends(_paging)]


def not_found(kind: str, key: str, known: Iterable[str]) -> HTTPException:
    """404 naming the id and close matches (twin.errors.NotFoundError's message)."""
    return HTTPException(404, str(NotFoundError(kind, key, known)))


async def accepted_job(
    submit: Callable[[dict[str, Any]], Any], body: dict[str, Any], request: Request, path: str
) -> JSONResponse:
    """Queue a job (what-if, forecast) off the event loop: 202 with its ``Location`` under
    ``path``; a bad body is 422 naming every problem, a full queue 429."""
    from fastapi.concurrency import run_in_threadpool

    from twin_api.conventions import prefix_of
    from twin_api.jobs import CapExceeded

    try:
        job = await run_in_threadpool(submit, body)
    except InputError as exc:
        raise HTTPException(422, {"message": exc.what, "problems": exc.problems}) from None
    except CapExceeded as exc:
        raise HTTPException(429, str(exc), headers={"Retry-After": "30"}) from None
    where = f"{prefix_of(request.scope)}/{path}/{job.id}"
    return JSONResponse(job.public(), status_code=202, headers={"Location": where})


def job_answer(job: Any, kind: str, job_id: str, known: Iterable[str]) -> JSONResponse:
    """A job's public view, or 404 naming the id and close matches."""
    if job is None:
        raise not_found(kind, job_id, known)
    return JSONResponse(job.public())


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
