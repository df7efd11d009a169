"""``/viewer``: the 3D view of the live twin, and ``/docs``: Swagger UI, both offline.

The page and its scripts (``twin.viewer``'s static files, three.js and Swagger UI vendored from
npm by scripts/setup.sh) are served without a token: they hold no data. Everything the page
shows comes from read-scoped endpoints: ``/viewer/scene`` (the scene graph in flat arrays, one
entry per tool, rail segment, port and vehicle, for instanced drawing), ``/viewer/state`` (the
state now or as of ``?at=``, through the same ``state_at`` as ``twin state --at``) and
``/viewer/history`` (the time span of the stored events, for the scrubber); live changes come
from ``/stream``. The page takes the token from the URL fragment (``#token=``, never sent to a
server) or asks for it, and sends it in the ``Authorization`` header and, for the WebSocket, in
the ``twin.bearer.<base64url>`` subprotocol: it never appears in a URL the server sees.
"""

from __future__ import annotations

import gzip
import math
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, JSONResponse, Response

from twin.viewer import MEDIA_TYPES, SETUP_HINT, STATIC, missing_vendor, static_files
from twin_api.deps import Reader, iso
from twin_api.routers.state import parse_at
from twin_api.schemas.common import json_example

router = APIRouter(tags=["viewer"])
MAX_NAME = 200  # no served file has a longer name


def _page(name: str) -> Response:
    missing = missing_vendor()
    if missing:
        raise HTTPException(
            503, f"the browser files are not installed ({', '.join(missing)} missing): {SETUP_HINT}"
        )
    return HTMLResponse((STATIC / name).read_text(), headers={"Cache-Control": "no-cache"})


@router.get("/viewer", include_in_schema=False)
def viewer_page() -> Response:
    return _page("index.html")


@router.get("/docs", include_in_schema=False)
def docs_page() -> Response:
    return _page("docs.html")


def _gzipped(
    request: Request, body: bytes, packed: bytes, media_type: str, **headers: str
) -> Response:
    """``packed`` (gzip of ``body``) to a client that accepts gzip, else ``body``."""
    if _accepts_gzip(request.headers.get("accept-encoding", "")):
        headers["Content-Encoding"] = "gzip"
        body = packed
    return Response(body, media_type=media_type, headers={"Vary": "Accept-Encoding", **headers})


def _accepts_gzip(header: str) -> bool:
    """Whether an Accept-Encoding header takes gzip (``gzip``, ``*``; not ``gzip;q=0``)."""
    for part in header[:1000].lower().split(","):
        name, _, params = part.strip().partition(";")
        if name.strip() in ("gzip", "*"):
            q = params.replace(" ", "")
            return not (q.startswith("q=0") and q.strip("q=0.") == "")
    return False


@lru_cache(maxsize=32)
def _file(path: Path) -> tuple[bytes, bytes]:
    """A served file and its gzip, read once (the files change only with a new install)."""
    body = path.read_bytes()
    return body, gzip.compress(body, 6)


@router.get("/viewer/static/{name:path}", include_in_schema=False)
def static(name: str, request: Request) -> Response:
    """One file of the fixed table (``twin.viewer.static_files``); 404 for any other name."""
    path = static_files().get(name) if len(name) <= MAX_NAME else None
    if path is None:
        shown = ascii(name[:60]) + ("…" if len(name) > 60 else "")
        raise HTTPException(
            404,
            f"no viewer file {shown}; served: {', '.join(sorted(static_files())) or 'none'}"
            + ("" if static_files() else f" ({SETUP_HINT})"),
        )
    vendored = name.startswith("vendor/")
    # vendored files change only with package-lock.json; the viewer's own with the twin
    cache = "public, max-age=86400" if vendored else "no-cache"
    if not vendored:  # read each time: an edited page shows on reload
        body = path.read_bytes()
        return Response(body, media_type=MEDIA_TYPES[path.suffix], headers={"Cache-Control": cache})
    return _gzipped(request, *_file(path), MEDIA_TYPES[path.suffix], **{"Cache-Control": cache})


def _r(x: float) -> float:
    return round(float(x), 3)


@lru_cache(maxsize=4)
def scene_packed(scene: Any) -> tuple[bytes, bytes]:
    """``scene_arrays`` and its gzip (720 kB -> 76 kB for SMAT2022), made once per scene."""
    body = scene_arrays(scene)
    return body, gzip.compress(body, 6)


def scene_arrays(scene: Any) -> bytes:
    """The scene in flat arrays (see ``get_viewer_scene``) as JSON."""
    import orjson

    equip: dict[str, list[Any]] = {"ids": [], "kind": [], "family": [], "bay": [], "box": []}
    bays: dict[str, list[float]] = {}  # bay -> [minx, miny, maxx, maxy] of its equipment
    for n in scene.nodes(("tool", "stocker", "station")):
        box = scene.bbox(n.id)
        if box is None:  # no geometry: a 1 m cube where it stands
            p = scene.world_position(n.id)
            box = [[p[0] - 0.5, p[1] - 0.5, p[2]], [p[0] + 0.5, p[1] + 0.5, p[2] + 1.0]]
        (x0, y0, z0), (x1, y1, z1) = box
        equip["ids"].append(n.id)
        equip["kind"].append(n.kind)
        equip["family"].append(n.family)
        bay = _bay(scene, n)
        equip["bay"].append(bay)
        equip["box"].extend(
            map(_r, ((x0 + x1) / 2, (y0 + y1) / 2, z0, x1 - x0, y1 - y0, max(z1 - z0, 0.1)))
        )
        if bay is not None:
            b = bays.setdefault(bay, [x0, y0, x1, y1])
            b[:] = [min(b[0], x0), min(b[1], y0), max(b[2], x1), max(b[3], y1)]
    segs: dict[str, list[Any]] = {"ids": [], "xyz": [], "length": []}
    for s in scene.segments.values():
        a, b = scene.world_position(s.start), scene.world_position(s.end)
        segs["ids"].append(s.id)
        segs["xyz"].extend(map(_r, (*a, *b)))
        segs["length"].append(_r(s.length))
    ports: list[float] = []
    for n in scene.nodes("port"):
        ports.extend(map(_r, scene.world_position(n.id)))
    vehicles: dict[str, list[Any]] = {"ids": [], "segment": [], "offset": []}
    for n in scene.nodes("vehicle"):
        vehicles["ids"].append(n.id)
        vehicles["segment"].append(n.attrs.get("segment"))
        vehicles["offset"].append(float(n.attrs.get("offset", 0.0)))
    lo, hi = scene.scene_bbox()
    body = {
        "name": scene.name,
        "bbox": [list(map(_r, lo)), list(map(_r, hi))],
        "bays": [[k, *map(_r, v)] for k, v in sorted(bays.items())],
        "equipment": equip,
        "segments": segs,
        "ports": ports,
        "vehicles": vehicles,
    }
    return orjson.dumps(body)


def _bay(scene: Any, node: Any) -> str | None:
    from twin_api.runtime import bay_of

    return bay_of(scene, node)


@router.get(
    "/viewer/scene",
    responses={
        200: json_example(
            {
                "name": "demo-fab",
                "bbox": [[0, 0, 0], [60, 30, 4]],
                "bays": [],
                "equipment": {},
                "segments": {},
                "ports": [],
                "vehicles": {},
            },
            "flat arrays",
        )
    },  # fmt: skip
    summary="The scene for the 3D viewer: equipment boxes, rail segments, ports and vehicles "
    "as flat arrays (one entry each, drawn instanced)",
)
async def get_viewer_scene(rt: Reader, request: Request) -> Response:
    packed = await run_in_threadpool(scene_packed, rt.scene)
    return _gzipped(request, *packed, "application/json")


def compact(state: Any) -> dict[str, Any]:
    """What the viewer draws of a state: per equipment [E10 state, lots in process], per
    vehicle [segment, offset (m), speed (m/s), state, carrier], the WIP per family."""
    return {
        "clock": iso(state.clock) if state.clock else None,
        "revision": state.revision,
        "equipment": {e.id: [e.state, len(e.lots)] for e in list(state.equipment.values())},
        "vehicles": {
            v.id: [v.segment, v.offset, v.speed, v.state, v.carrier]
            for v in list(state.vehicles.values())
        },
        "wip_by_family": {str(k): v for k, v in list(state.wip_by_family.items()) if v},
        "lots": len(state.lots),
    }


def _now(rt: Any) -> dict[str, Any]:
    with rt.lock:  # a consistent state and the stream position it stands at
        out = compact(rt.state)
        out["seq"] = rt.sync.pos
    return out


@router.get(
    "/viewer/state",
    responses={
        200: json_example(
            {
                "clock": "2026-01-31T08:00:00.000Z",
                "revision": 1200,
                "equipment": {"LITH01": ["productive", 1]},
                "vehicles": {"OHT01": ["S12", 3.5, 2.0, "moving", "FOUP_1"]},
                "wip_by_family": {"LithoTrack_FE_95": 8},
                "lots": 120,
                "seq": 1200,
                "at": None,
            },
            "what the viewer draws",
        )
    },  # fmt: skip
    summary="The state the viewer draws, now (with the stream position to follow it from) "
    "or as of ?at= (ISO 8601 UTC or epoch seconds; as `twin state --at`)",
)
async def get_viewer_state(
    rt: Reader,
    at: Annotated[str | None, Query(description="e.g. 2026-01-31T08:00:00Z")] = None,
) -> Any:
    t = parse_at("at", at)
    if t is None:
        out = await run_in_threadpool(_now, rt)
    else:
        out = compact(await run_in_threadpool(rt.state_at, t))
        out["seq"] = None  # a past state: not a point to follow the stream from
    out["at"] = iso(t)
    return JSONResponse(out)


def _history(rt: Any) -> dict[str, Any]:
    store = rt.reader()
    first = next(iter(store.read_positioned(None, None, None, None, 0, 1)), None)
    clock = rt.state.clock
    start = first[1].time if first is not None else None
    return {
        "first": iso(start),
        "last": iso(clock) if clock else None,
        "first_epoch": start,
        "last_epoch": clock if clock else None,
        "events": store.count(),
    }


@router.get(
    "/viewer/history",
    responses={
        200: json_example(
            {
                "first": "2026-01-31T00:00:00.000Z",
                "last": "2026-01-31T08:00:00.000Z",
                "first_epoch": 1769817600.0,
                "last_epoch": 1769846400.0,
                "events": 1200,
            },
            "the span of the stored events",
        )
    },  # fmt: skip
    summary="The span of the stored history (first and last event time) for the scrubber",
)
async def get_viewer_history(rt: Reader) -> Any:
    out = await run_in_threadpool(_history, rt)
    for k in ("first_epoch", "last_epoch"):
        if out[k] is not None and not math.isfinite(out[k]):
            out[k] = None
    return JSONResponse(out)
