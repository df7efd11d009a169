from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from twin_api.schemas.common import described

NODE = {
    "id": "LITH01", "kind": "tool", "parent": "BAY1", "family": "LithoTrack_FE_95",
    "area": "litho", "bay": "BAY1", "asset": "tool_box", "size": [2.0, 3.0, 2.5],
    "position": [10.0, 4.0, 0.0], "yaw": 0.0, "attrs": {},
}  # fmt: skip
SEGMENT = {"id": "S12", "start": "N3", "end": "N4", "length": 6.0, "max_speed": 3.0,
           "bay": "BAY1"}  # fmt: skip
PORT = {"port": "LITH01_P1", "tool": "LITH01", "segment": "S12", "offset": 2.5}


class NodePublic(BaseModel):
    model_config = described(NODE)

    id: str = Field(description="node id")
    kind: str = Field(description="tool, stocker, station, port, vehicle, rail_node, bay, ...")
    parent: str | None = Field(description="parent node (one per node); null at the root")
    family: str | None = Field(description="tool family, for tools")
    area: str | None = Field(description="fab area, when the scene says")
    bay: str | None = Field(description="the bay it belongs to")
    asset: str | None = Field(description="the mesh asset drawn for it")
    size: list[float] | None = Field(description="m, x y z, when it has a box")
    position: list[float] = Field(description="m, world frame, Z up")
    yaw: float = Field(description="rad about Z, world frame")
    attrs: dict[str, Any] = Field(description="the node's other scalar attributes")


class SegmentPublic(BaseModel):
    model_config = described(SEGMENT)

    id: str = Field(description="rail segment id")
    start: str = Field(description="rail node it starts at")
    end: str = Field(description="rail node it ends at")
    length: float = Field(description="m")
    max_speed: float = Field(description="m/s")
    bay: str | None = Field(description="the bay it serves, if any")


class PortLinkPublic(BaseModel):
    model_config = described(PORT)

    port: str = Field(description="load port id")
    tool: str = Field(description="the equipment it belongs to")
    segment: str | None = Field(description="rail segment a vehicle loads it from")
    offset: float | None = Field(description="m along that segment")


class ScenePublic(BaseModel):
    model_config = described(
        {
            "name": "demo-fab",
            "summary": {"nodes": 172, "tools": 30},
            "total": 172,
            "offset": 0,
            "limit": 1,
            "next": 1,
            "next_cursor": "bzE",
            "nodes": [NODE],
            "segments": [SEGMENT],
            "ports": [PORT],
        }  # fmt: skip
    )

    name: str = Field(description="the scene's name")
    summary: dict[str, Any] = Field(description="counts of nodes, tools, bays, segments, ...")
    total: int = Field(description="nodes matching the filters")
    offset: int = Field(description="nodes skipped before this page")
    limit: int = Field(description="nodes per page asked for")
    next: int | None = Field(description="offset of the next page; null on the last one")
    next_cursor: str | None = Field(
        description="opaque cursor of the next page (?cursor=); null on the last one"
    )
    nodes: list[NodePublic] = Field(description="this page's nodes, by id")
    segments: list[SegmentPublic] = Field(description="rail segments that match the filters")
    ports: list[PortLinkPublic] = Field(description="port links of this page's nodes")
