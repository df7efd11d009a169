from __future__ import annotations

import math
from functools import lru_cache
from typing import Annotated, Any

from fastapi import APIRouter, Query, Response

from twin_api.deps import Pages, Reader, filter_values, paged
from twin_api.runtime import bay_of
from twin_api.schemas.common import ERRORS
from twin_api.schemas.scene import ScenePublic

router = APIRouter(tags=["scene"])


@lru_cache(maxsize=8)
def _nodes(scene: Any) -> list[dict[str, Any]]:
    out = []
    for n in scene:
        t = scene.world_transform(n.id)
        out.append(
            {
                "id": n.id,
                "kind": n.kind,
                "parent": n.parent,
                "family": n.family,
                "area": n.area,
                "bay": bay_of(scene, n),
                "asset": n.asset,
                "size": [float(x) for x in n.size] if n.size is not None else None,
                "position": [round(float(x), 6) for x in t[:3, 3]],
                "yaw": round(math.atan2(float(t[1, 0]), float(t[0, 0])), 6),
                "attrs": {
                    k: v for k, v in n.attrs.items() if isinstance(v, str | int | float | bool)
                },
            }
        )
    out.sort(key=lambda d: d["id"])
    return out


@router.get(
    "/scene",
    response_model=ScenePublic,
    responses=ERRORS,
    summary="Scene nodes with rail segments and port links, filterable by kind / family / bay",
)
def get_scene(
    rt: Reader,
    pages: Pages,
    kind: Annotated[str | None, Query(description="comma-separated node kinds")] = None,
    family: Annotated[str | None, Query(description="comma-separated tool families")] = None,
    bay: Annotated[str | None, Query(description="comma-separated bay ids")] = None,
) -> Any:
    every = _nodes(rt.scene)
    kinds = filter_values("kind", kind, {n["kind"] for n in every})
    fams = filter_values("family", family, {n["family"] for n in every if n["family"]})
    bays = filter_values("bay", bay, {n["bay"] for n in every if n["bay"]})
    nodes = [
        n
        for n in every
        if (not kinds or n["kind"] in kinds)
        and (not fams or n["family"] in fams)
        and (not bays or n["bay"] in bays)
    ]
    page = pages.page(nodes, lambda d: d)
    ids = {n["id"] for n in page["items"]}
    scene = rt.scene
    segs = [
        {"id": s.id, "start": s.start, "end": s.end, "length": s.length,
         "max_speed": s.max_speed, "bay": s.bay}
        for s in scene.segments.values()
        if not (fams or kinds or bays) or (bays and s.bay in bays) or (kinds & {"rail", "rail_node"})
    ]  # fmt: skip
    ports = [
        {"port": p.port, "tool": p.tool, "segment": p.segment, "offset": p.offset}
        for p in scene.ports.values()
        if p.port in ids or p.tool in ids
    ]
    body = {
        "name": scene.name,
        "summary": scene.summary(),
        **{k: page[k] for k in ("total", "offset", "limit", "next")},
        "nodes": page["items"],
        "segments": segs,
        "ports": ports,
    }
    return paged(pages.request, body, page["next_cursor"])


@router.get(
    "/scene.glb",
    responses={**ERRORS, 200: {"content": {"model/gltf-binary": {}}, "description": "binary glTF"}},
    response_class=Response,
    summary="The whole scene as one binary glTF (open it in any glTF viewer)",
)
def get_scene_glb(rt: Reader) -> Response:
    return Response(
        rt.glb(),
        media_type="model/gltf-binary",
        headers={"Content-Disposition": f'inline; filename="{rt.scene.name}.glb"'},
    )
