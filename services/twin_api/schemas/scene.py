from __future__ import annotations

from typing import Any

from pydantic import BaseModel


class NodePublic(BaseModel):
    id: str
    kind: str
    parent: str | None
    family: str | None
    area: str | None
    bay: str | None
    asset: str | None
    size: list[float] | None
    position: list[float]  # m, world frame, Z up
    yaw: float  # rad
    attrs: dict[str, Any]


class SegmentPublic(BaseModel):
    id: str
    start: str
    end: str
    length: float  # m
    max_speed: float  # m/s
    bay: str | None


class PortLinkPublic(BaseModel):
    port: str
    tool: str
    segment: str | None
    offset: float | None  # m along the segment


class ScenePublic(BaseModel):
    name: str
    summary: dict[str, Any]
    total: int
    offset: int
    limit: int
    next: int | None
    nodes: list[NodePublic]
    segments: list[SegmentPublic]
    ports: list[PortLinkPublic]
