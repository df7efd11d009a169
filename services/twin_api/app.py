"""``create_app(settings)``: the FastAPI application of the twin.

The runtime is built and started in the lifespan (never at import time) and stopped there.
Two small ASGI middlewares wrap every request: a body limit (413 before the body is read
when Content-Length says so, or as soon as a streamed body passes it; 408 when it stalls for
``body_timeout`` s) and request timing for ``/metrics``. The server's own limits (headers,
connections, rate) are in ``twin_api.limits``. Inside them, ``twin_api.fastpath`` answers the hot read, ``GET
/equipment/{id}``, and ``POST /events`` batches that ingest without FastAPI's routing (the
routes still document them and write their errors). Nothing here takes a file path from a
request: the scene, the store and the model come from the settings only.
"""

from __future__ import annotations

import asyncio
import gc
import json
import time
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from twin.errors import TwinError
from twin_api.auth import TokenTable
from twin_api.conventions import Conditional, VersionPrefix, document_limits, version_paths
from twin_api.fastpath import FastPath, twin_error_response
from twin_api.problems import document as document_problems
from twin_api.problems import problem_response
from twin_api.revision import Revision
from twin_api.routers import (
    carriers,
    equipment,
    events,
    forecast,
    health,
    kpis,
    lots,
    metrics,
    scene,
    schemas,
    sources,
    state,
    stream,
    vehicles,
    viewer,
    whatif,
)
from twin_api.runtime import TwinRuntime
from twin_api.settings import Settings

# uvicorn's WebSocket implementation: "websockets" waits for the socket to drain on each send,
# so a client that stops reading fills its bounded queue in the hub and is dropped; the sans-I/O
# one (uvicorn's "auto" choice) buffers every message in memory instead.
UVICORN_WS = "websockets"
# How to run the app under uvicorn (``uvicorn.Config(app, host=..., port=..., **UVICORN_OPTIONS)``):
# the draining WebSocket implementation, and no permessage-deflate: compressing is per
# connection, so 100 clients of one stream cost 100 compressions of every message (the most
# expensive step of fan-out when clients ask for it, as browsers and `websockets` do).
UVICORN_OPTIONS: dict[str, Any] = {
    "ws": UVICORN_WS,
    "ws_per_message_deflate": False,
    "log_level": "warning",
    "access_log": False,
}

DESCRIPTION = """A live, physical, queryable digital twin of a wafer fab.

Every endpoint but `/health` needs `Authorization: Bearer <token>` with a scope: `read`
(queries, `/stream`, `/metrics`), `ingest` (`POST /events`), `whatif` (`/whatif`); `admin`
holds them all. See docs/api.md.
"""


def create_app(settings: Settings | None = None, *, runtime: TwinRuntime | None = None) -> FastAPI:
    settings = settings or Settings()
    rt = runtime or TwinRuntime(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI):  # noqa: ANN202
        await asyncio.to_thread(rt.start)
        rt.hub.bind(asyncio.get_running_loop())
        # the scene, model and catalog live as long as the service: kept out of the cyclic
        # collector's sight, or its first full collection walks them all, a pause of the event
        # loop of 50-300 ms (measured); undone at shutdown so a stopped twin can be collected
        gc.collect()
        gc.freeze()
        try:
            yield
        finally:
            await asyncio.to_thread(rt.stop)
            gc.unfreeze()

    app = FastAPI(
        title="twin",
        version=_version(),
        description=DESCRIPTION,
        lifespan=lifespan,
        # /docs is served by the viewer router from the vendored Swagger UI (no CDN: a fab
        # network is air-gapped); ReDoc would load from a CDN, so it is off
        docs_url=None,
        redoc_url=None,
        # operationId = the handler's name (list_equipment, not list_equipment_equipment_get):
        # what generated clients name their methods
        generate_unique_id_function=lambda route: route.name,
        # GET /metrics is the twin's telemetry; FastAPI's OpenTelemetry bridge would look up
        # the global providers (and the environment) on every request, ~15 µs of a 170 µs read
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    app.state.settings = settings
    app.state.runtime = rt
    app.state.tokens = TokenTable(settings.tokens)
    for r in (equipment, health, scene, lots, carriers, vehicles, kpis, state, events, stream,
              sources, metrics, whatif, viewer, forecast):  # fmt: skip
        app.include_router(r.router)
    app.include_router(schemas.router)  # the event contract (JSON Schema, AsyncAPI)

    def openapi() -> dict[str, Any]:
        """The generated spec plus the bearer scheme (Swagger UI then offers 'Authorize')."""
        if app.openapi_schema is None:
            from fastapi.openapi.utils import get_openapi

            spec = get_openapi(
                title=app.title, version=app.version, description=app.description, routes=app.routes
            )
            spec.setdefault("components", {})["securitySchemes"] = {
                "bearer": {"type": "http", "scheme": "bearer"}
            }
            for path, ops in spec["paths"].items():
                if path not in ("/health", "/ready"):
                    for op in ops.values():
                        op["security"] = [{"bearer": []}]
            document_problems(spec)
            document_limits(spec, settings.max_page)
            version_paths(spec)
            app.openapi_schema = spec
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        # FastAPI's own answer echoes the input, which may hold a lone surrogate that no
        # UTF-8 encoder writes (a 500): the same list of errors, the input left out
        problems = [
            {k: v for k, v in e.items() if k in ("type", "loc", "msg")} for e in exc.errors()
        ]
        first = problems[0] if problems else {}
        where = ".".join(str(x) for x in first.get("loc", ()))
        detail = f"{where}: {first.get('msg', 'invalid')}" + (
            f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        )
        return problem_response(422, detail, problems)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> Response:
        return problem_response(exc.status_code, exc.detail, headers=getattr(exc, "headers", None))

    @app.exception_handler(TwinError)  # NotFoundError (404) included
    async def _twin_error(request: Request, exc: TwinError) -> JSONResponse:
        return twin_error_response(exc)

    @app.exception_handler(_TooLarge)  # raised by BodyLimit's receive inside a route
    async def _too_large(request: Request, exc: _TooLarge) -> Response:
        detail = BodyLimit.too_large(settings.max_body_bytes, exc.size)
        return problem_response(413, detail, headers={"connection": "close"})

    @app.exception_handler(_Stalled)
    async def _stalled(request: Request, exc: _Stalled) -> Response:
        return _body_problem(408, BodyLimit.stalled(settings.body_timeout))

    app.add_middleware(
        FastPath,
        rt=rt,
        tokens=app.state.tokens,
        max_batch=settings.max_batch,
        max_event_values=settings.max_event_values,
    )
    app.add_middleware(Conditional, rt=rt, tokens=app.state.tokens, version=app.version)
    app.add_middleware(Revision, rt=rt)  # outside FastPath: revisions, followers' writes
    app.add_middleware(Timing, rt=rt)
    app.add_middleware(BodyLimit, limit=settings.max_body_bytes, timeout=settings.body_timeout)
    app.add_middleware(VersionPrefix)  # outermost: every layer sees the unprefixed path
    return app


def _version() -> str:
    from twin import __version__

    return __version__


# raised by BodyLimit's receive; HTTPExceptions so that FastAPI's body parsing lets them
# through (it turns any other exception into a 400), then the app's handlers answer them
class _TooLarge(HTTPException):
    def __init__(self, size: int = 0) -> None:
        super().__init__(413)
        self.size = size


class _Stalled(HTTPException):
    def __init__(self) -> None:
        super().__init__(408)


def _body_problem(status: int, detail: str) -> Response:  # 408
    from twin_api.limits import PROBLEM_TYPE, problem

    return Response(
        problem(status, "Request Timeout", detail),
        status,
        headers={"connection": "close"},
        media_type=PROBLEM_TYPE[1].decode(),
    )


class BodyLimit:
    """413 for a request body over ``limit`` bytes (declared or streamed); 408 for one that
    stalls: no part of it for ``timeout`` s (the connection is then closed)."""

    def __init__(self, inner: Any, limit: int, timeout: float = 30.0) -> None:
        self.inner, self.limit, self.timeout = inner, limit, timeout

    @staticmethod
    def too_large(limit: int, size: int) -> str:
        return f"request body over the limit of {limit} bytes (got {size}+)"

    @staticmethod
    def stalled(timeout: float) -> str:
        return (
            f"request body stalled: nothing for {timeout:g} s (TWIN_BODY_TIMEOUT); "
            "send it without pauses"
        )

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await self.inner(scope, receive, send)
        framed = False  # does the request say it has a body?
        for k, v in scope.get("headers", ()):
            if k == b"content-length":
                framed = True
                try:
                    declared = int(v)
                except ValueError:
                    declared = 0
                if declared > self.limit:
                    return await self._reject(send, declared)
            elif k == b"transfer-encoding":
                framed = True
        if not framed:  # HTTP/1.1: no length, no chunking, no body; nothing to watch
            return await self.inner(scope, receive, send)
        seen = 0
        started = False
        done = False  # the whole body has come: later receives wait for a disconnect

        async def limited() -> dict:
            nonlocal seen, done
            if done:
                return await receive()
            try:
                async with asyncio.timeout(self.timeout):
                    msg = await receive()
            except TimeoutError:
                raise _Stalled() from None
            if msg["type"] == "http.request":
                seen += len(msg.get("body", b""))
                if seen > self.limit:
                    raise _TooLarge(seen)
                done = not msg.get("more_body", False)
            return msg

        async def tracking(msg: dict) -> None:
            nonlocal started
            if msg["type"] == "http.response.start":
                started = True
            await send(msg)

        try:
            await self.inner(scope, limited, tracking)
        except _TooLarge:
            if not started:
                await self._reject(send, seen)
        except _Stalled:
            if not started:
                await _body_problem(408, self.stalled(self.timeout))(scope, receive, send)

    async def _reject(self, send: Any, size: int) -> None:
        from twin_api.problems import MEDIA_TYPE, problem_body

        body = json.dumps(problem_body(413, self.too_large(self.limit, size))).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [(b"content-type", MEDIA_TYPE.encode()), (b"connection", b"close")],
            }
        )
        await send({"type": "http.response.body", "body": body})


class Timing:
    """Request latency per method, route template and status into the runtime's histogram."""

    def __init__(self, app: Any, rt: TwinRuntime) -> None:
        self.app, self.rt = app, rt

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        t0 = time.perf_counter()
        status = 500

        async def capture(msg: dict) -> None:
            nonlocal status
            if msg["type"] == "http.response.start":
                status = msg["status"]
            await send(msg)

        try:
            await self.app(scope, receive, capture)
        finally:
            route = scope.get("route")
            path = getattr(route, "path", None) or "unmatched"
            self.rt.request_seconds.observe(
                time.perf_counter() - t0, scope["method"], path, str(status)
            )
