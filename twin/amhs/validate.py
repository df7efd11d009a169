"""The fast model against the vehicle-level physics world, for the same demand.

The physics world (``twin.physics.oht.OhtSim``) has no parking logic: a vehicle left idle
stands on the rail and blocks those behind it for good. So the comparison runs it saturated,
as ``twin physics run`` does: every vehicle takes a new random transfer (random tool ports)
as soon as it finishes one. The fast model then serves exactly those transfers, each by the
same vehicle and requested when the physics world assigned it; what is compared is the
transfer time (start to end of drop-off: empty travel, pick-up, loaded travel, drop-off; the
fast model's vehicle may start late when its previous transfer took longer than in physics),
whose mean and p95 carry the travel and congestion model, and the fleet utilisation measured
the same way on both sides (vehicle time on transfers over fleet time), both after a warm-up
(the fast model's occupancy memory starts empty).
"""

from __future__ import annotations

import time as _time

import numpy as np

from twin.amhs.model import AmhsConfig, AmhsModel
from twin.physics.oht import OhtSim
from twin.scene.graph import SceneGraph


def _figures(start, done, n, warmup, horizon) -> dict[str, float]:
    start, done = np.asarray(start), np.asarray(done)
    keep = start >= warmup
    d = done[keep] - start[keep]
    busy = np.minimum(done, horizon) - np.maximum(start, warmup)
    return {
        "transfers": len(d),
        "delivery_mean_s": float(d.mean()),
        "delivery_p95_s": float(np.percentile(d, 95)),
        # vehicle time on transfers inside [warmup, horizon] over fleet time
        "utilisation": float(busy.clip(0).sum() / (n * (horizon - warmup))),
    }


def compare(
    scene: SceneGraph,
    *,
    vehicles: int,
    seconds: float,
    warmup: float = 0.0,
    seed: int = 0,
    config: AmhsConfig | None = None,
) -> dict[str, object]:
    """Saturated physics run of ``vehicles`` for ``seconds``, then the fast model on the same
    transfers; figures of both over transfers assigned after ``warmup`` s and their
    differences (relative; utilisation in points)."""
    ids = [v.id for v in scene.nodes("vehicle")][:vehicles]
    cpu = _time.process_time()
    sim = OhtSim(scene, vehicles=ids, seed=seed, random_transfers=True)
    sim.advance(seconds)
    phys_cpu = _time.process_time() - cpu
    jobs = sorted(
        (j for j in sim.stats.completed if j.completed is not None), key=lambda j: j.assigned
    )
    cfg = config or AmhsConfig()
    cfg.vehicles = len(ids)
    cpu = _time.process_time()
    m = AmhsModel(scene, cfg)  # the same vehicles (the scene's first ones) at the same places
    index = {v: i for i, v in enumerate(ids)}
    start, fast_done = [], []
    for j in jobs:
        start.append(j.assigned)
        fast_done.append(
            m.move(j.assigned, m.stop_of_port(j.source), m.stop_of_port(j.dest), index[j.vehicle])
        )
    fast_cpu = _time.process_time() - cpu
    phys = _figures(start, [j.completed for j in jobs], len(ids), warmup, seconds)
    # the fast model's own start of each transfer: where a vehicle runs late on the physics
    # world's schedule, the lateness is not the transfer's
    fast_start = [t + w for t, w in zip(m.stats.request, m.stats.wait)]
    fast = _figures(fast_start, fast_done, len(ids), warmup, seconds)
    phys["cpu_s"], fast["cpu_s"] = phys_cpu, fast_cpu
    return {
        "physics": phys,
        "fast": fast,
        "mean_rel": fast["delivery_mean_s"] / phys["delivery_mean_s"] - 1,
        "p95_rel": fast["delivery_p95_s"] / phys["delivery_p95_s"] - 1,
        "utilisation_points": 100 * (fast["utilisation"] - phys["utilisation"]),
    }
