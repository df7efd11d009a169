"""What the fab IS: the scene graph, mesh assets, scene folders, layout importers, export."""

from twin.scene.graph import Node, PortLink, RailPath, RailSegment, SceneGraph, translation

__all__ = ["Node", "PortLink", "RailPath", "RailSegment", "SceneGraph", "translation"]
