"""The physics side of the twin: the scene in pybullet, OHT vehicles on rails, rendering.

``PhysicsWorld`` (pybullet, imported when a world is built), ``OhtSim`` / ``OhtConfig``
(exact vectorised OHT motion) and ``render_scene`` are loaded on first use so that
``import twin`` stays fast. Typical use::

    from twin.scene.load import load_scene
    from twin.physics import OhtSim, PhysicsWorld, render_scene

    scene = load_scene("scenes/demo-fab")
    with PhysicsWorld(scene) as world:              # static tools, rails, kinematic vehicles
        world.can_place((2.0, 3.0, 2.5), (12.0, 20.0, 0.0, 0.0), margin=0.5)
        world.set_equipment_state("DIF01", "unscheduled_down")
        rgb = world.camera_image((17, -20, 25), (17, 25, 0))
    sim = OhtSim(scene, seed=1, random_transfers=True)   # or sim.submit(vehicle, src, dst)
    sim.advance(600.0)
    sim.summary()                                    # transfers, min headway, deadlocks, speed
    render_scene(scene, "fab.png", states={"DIF01": "productive"})

Command line: ``twin physics run SRC --vehicles N --seconds T --seed S --json``,
``twin physics place SRC --size 2,3,2.5 --at 12,20 --margin 0.5`` and
``twin scene render SRC OUT.png``.
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
