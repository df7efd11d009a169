"""Render a scene to PNG with pybullet's CPU renderer (equipment coloured by family or state)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from twin.errors import InputError
from twin.scene.graph import SceneGraph

DEFAULT_FOV = 50.0  # degrees, vertical field of view
DEFAULT_ELEVATION = 55.0  # degrees above the horizon of the default camera


def default_camera(scene: SceneGraph, width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    """A camera south of the fab looking down at its centre, far enough to frame all of it."""
    box = scene.scene_bbox()
    centre = (box[0] + box[1]) / 2
    centre[2] = box[0][2]
    span_x, span_y = (box[1] - box[0])[:2]
    half_v = math.radians(DEFAULT_FOV) / 2
    half_h = math.atan(math.tan(half_v) * width / height)
    dist = 1.3 * max(span_x / 2 / math.tan(half_h), span_y / 2 / math.tan(half_v), 1.0)
    el = math.radians(DEFAULT_ELEVATION)
    eye = centre + dist * np.array([0.0, -math.cos(el), math.sin(el)])
    return eye, centre


def render_scene(
    scene: SceneGraph,
    out_png: str | Path,
    *,
    camera: Sequence[float] | None = None,
    target: Sequence[float] | None = None,
    states: Mapping[str, str] | None = None,
    width: int = 1280,
    height: int = 720,
) -> Path:
    """Write a PNG of the scene seen from ``camera`` towards ``target`` (m); returns its path.

    Equipment is coloured by tool family, or by E10 state for the tools named in ``states``.
    """
    from PIL import Image

    from twin.physics.world import PhysicsWorld

    out = Path(out_png)
    if out.suffix.lower() != ".png":
        raise InputError("render", [f"{out}: the output must be a .png file"])
    if not out.parent.exists():
        raise InputError("render", [f"{out.parent}: no such folder for the image"])
    with PhysicsWorld(scene) as world:
        for tool, state in (states or {}).items():
            world.set_equipment_state(tool, state)
        eye, tgt = default_camera(scene, width, height)
        if camera is not None:
            eye = np.asarray(camera, dtype=float)
        if target is not None:
            tgt = np.asarray(target, dtype=float)
        image = world.camera_image(eye, tgt, width=width, height=height, fov=DEFAULT_FOV)
    Image.fromarray(image).save(out)
    return out
