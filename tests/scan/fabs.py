"""Scenes for the scan tests, built directly with the scene graph (no files)."""

from __future__ import annotations

import math

import numpy as np

from twin.scene.graph import Node, SceneGraph, translation


def small_fab() -> SceneGraph:
    """Bays of tools (sizes and headings vary so the layout has no symmetry) and two stockers."""
    rng = np.random.default_rng(7)
    scene = SceneGraph("small-fab")
    scene.add(Node(id="fab", kind="fab"))
    for b, y0 in enumerate((0.0, 9.0, 18.0)):
        bay = f"bay{b}"
        scene.add(Node(id=bay, kind="bay", parent="fab", transform=translation(0.0, y0)))
        x = 1.0
        for k in range(7 - b):
            sx, sy, sz = rng.uniform(1.2, 3.0), rng.uniform(1.5, 3.2), rng.uniform(1.6, 2.8)
            yaw = math.radians(rng.choice([0.0, 90.0, 180.0, -90.0, 15.0]))
            scene.add(
                Node(
                    id=f"T{b}{k}",
                    kind="tool",
                    parent=bay,
                    family=f"F{k % 3}",
                    bay=bay,
                    size=(sx, sy, sz),
                    transform=translation(x + sx / 2, 0.0, 0.0, yaw),
                )
            )
            x += max(sx, sy) + rng.uniform(1.2, 2.5)
    scene.add(
        Node(
            id="S0",
            kind="stocker",
            parent="fab",
            size=(2.0, 6.0, 3.5),
            transform=translation(-3.0, 4.0),
        )
    )
    scene.add(
        Node(
            id="S1",
            kind="stocker",
            parent="fab",
            size=(4.0, 2.0, 3.0),
            transform=translation(12.0, 24.0, 0.0, 0.3),
        )
    )
    return scene


def one_box(size: tuple[float, float, float] = (2.0, 3.0, 2.5)) -> SceneGraph:
    """One box tool at the origin, heading along X: surfaces known in closed form."""
    scene = SceneGraph("one-box")
    scene.add(Node(id="T", kind="tool", family="F", size=size, transform=translation(0.0, 0.0)))
    return scene
