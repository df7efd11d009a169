"""Put more OHT vehicles on a scene's rails (for runs that want more than the scene brings)."""

from __future__ import annotations

import numpy as np

from twin.errors import InputError
from twin.scene.graph import Node, SceneGraph, translation


def add_vehicles(
    scene: SceneGraph, count: int, *, vehicle_type: str | None = None, seed: int = 0
) -> list[str]:
    """Add ``count`` vehicles standing on free rail, spread over the network; returns their ids.

    Vehicles go on segments that have none yet, at offsets at least half a gap (length + min
    distance) from either end, so that any two vehicles, also through a node, start a full gap
    apart. Raises when the rails cannot take that many.
    """
    if count < 0:
        raise InputError("add vehicles", [f"count must be >= 0, got {count}"])
    if vehicle_type is None:
        if not scene.vehicle_types:
            raise InputError("add vehicles", ["the scene defines no vehicle type"])
        vehicle_type = next(iter(scene.vehicle_types))
    if vehicle_type not in scene.vehicle_types:
        raise InputError(
            "add vehicles",
            [f"unknown vehicle type {vehicle_type!r} (known: {sorted(scene.vehicle_types)})"],
        )
    spec = scene.vehicle_types[vehicle_type]
    gap = float(spec["length"]) + float(spec["min_distance"])
    taken = {n.attrs.get("segment") for n in scene.nodes("vehicle")}
    free = [s for s in scene.segments.values() if s.id not in taken and s.length >= gap]
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(free))
    slots: list[tuple[str, float]] = []
    # first one vehicle per free segment (spread out), then more on the long ones
    for rnd in range(64):
        for k in order:
            seg = free[k]
            room = int((seg.length - gap) // gap) + 1  # offsets gap/2, 3gap/2, ... ≤ len - gap/2
            if rnd < room:
                slots.append((seg.id, gap / 2 + rnd * gap))
            if len(slots) == count:
                break
        if len(slots) == count:
            break
    if len(slots) < count:
        raise InputError(
            "add vehicles", [f"the rails have room for {len(slots)} more vehicles, not {count}"]
        )
    ids = []
    base = len(scene.nodes("vehicle"))
    for k, (seg, off) in enumerate(slots):
        vid = f"oht_extra_{base + k}"
        while vid in scene:
            vid += "_"
        point = scene.point_on_segment(seg, off)
        scene.add(
            Node(
                id=vid,
                kind="vehicle",
                transform=translation(*point),
                attrs={"vehicle_type": vehicle_type, "segment": seg, "offset": off},
            )
        )
        ids.append(vid)
    return ids
