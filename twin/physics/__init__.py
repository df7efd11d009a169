"""The physics side of the twin: the scene in pybullet, OHT vehicles on rails, rendering.

``PhysicsWorld`` (pybullet, imported when a world is built), ``OhtSim`` / ``OhtConfig``
(exact vectorised OHT motion) and ``render_scene`` are loaded on first use so that
``import twin`` stays fast.
"""

from __future__ import annotations

from typing import Any

_EXPORTS = {
    "PhysicsWorld": "twin.physics.world",
    "Clearance": "twin.physics.world",
    "OhtSim": "twin.physics.oht",
    "OhtConfig": "twin.physics.oht",
    "render_scene": "twin.physics.render",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'twin.physics' has no attribute {name!r}")
