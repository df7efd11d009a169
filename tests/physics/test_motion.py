"""Exact OHT kinematics: closed-form travel times and independence from the step size."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tests.physics.scenes import OHT, line_scene
from twin.physics.oht import OhtConfig, OhtSim

A, B, V = OHT["acceleration"], OHT["deceleration"], OHT["max_speed"]


def closed_form(d: float, v: float = V, a: float = A, b: float = B) -> float:
    """Rest-to-rest minimum time over d metres (trapezoid, or triangle when too short)."""
    if d >= v * v / (2 * a) + v * v / (2 * b):
        return d / v + v / (2 * a) + v / (2 * b)
    return math.sqrt(2 * d * (a + b) / (a * b))


def travel_time(scene, *, tick: float = 0.5, step: float = 0.1) -> float:
    """Time from leaving p_start to standing at p_end (hoist times excluded)."""
    sim = OhtSim(scene, OhtConfig(tick=tick, load_time=3.0, unload_time=3.0))
    sim.submit("v0", "p_start", "p_end")
    while not sim.stats.completed:
        sim.advance(step)
        assert sim.t < 1000
    job = sim.stats.completed[0]
    return job.completed - 3.0 - job.picked


@pytest.mark.parametrize("lengths", [[0.2], [0.5, 0.4], [30.0], [2.0, 7.5, 3.25]])
@pytest.mark.parametrize("tick", [0.1, 0.5, 1.3])
def test_lone_vehicle_matches_closed_form_time(lengths, tick):
    """A lone vehicle's travel time is the closed-form trapezoid (or triangle) time, any tick."""
    got = travel_time(line_scene(lengths), tick=tick)
    assert got == pytest.approx(closed_form(sum(lengths)), abs=1e-9)


def test_triangular_and_trapezoidal_cases_both_covered():
    """The short line never reaches top speed, the long one cruises (both closed-form cases)."""
    assert 0.2 < V * V / (2 * A) + V * V / (2 * B) < 30.0
    assert travel_time(line_scene([0.2])) == pytest.approx(math.sqrt(2 * 0.2 * (A + B) / (A * B)))


def reference_time(lengths, caps, a=A, b=B, n=100_000) -> float:
    """Minimum time under per-segment speed caps, by the forward/backward speed-envelope method
    on a fine grid (an independent numerical reference): v(x) = min(cap, forward, backward)."""
    edges = np.concatenate([[0.0], np.cumsum(lengths)])
    x = np.linspace(0.0, edges[-1], n)
    cap = np.array(caps)[np.clip(np.searchsorted(edges, x, side="right") - 1, 0, len(caps) - 1)]
    # a segment's cap holds from the moment the vehicle enters it: at its start node too
    at_node = np.isin(x, edges[1:-1])
    cap = np.where(at_node, np.minimum(cap, np.array(caps)[np.searchsorted(edges, x) - 1]), cap)
    v = cap.copy()
    dx = np.diff(x)
    v[0] = 0.0
    for i in range(1, n):  # forward: acceleration limit
        v[i] = min(v[i], math.sqrt(v[i - 1] ** 2 + 2 * a * dx[i - 1]))
    v[-1] = 0.0
    for i in range(n - 2, -1, -1):  # backward: deceleration limit
        v[i] = min(v[i], math.sqrt(v[i + 1] ** 2 + 2 * b * dx[i]))
    mid = (v[1:] + v[:-1]) / 2
    return float(np.sum(dx / mid))


def test_speed_caps_per_segment_and_curve():
    """Segment limits and the curve limit are honoured exactly (agrees with a numerical optimum)."""
    lengths = [4.0, 1.5, 3.0, 2.0]
    speeds = [1.5, 0.6, 1.5, 1.5]
    curves = [False, False, True, False]
    scene = line_scene(lengths, speeds, curves)
    curve_speed = OhtConfig().curve_speed
    caps = [min(s, V, curve_speed if c else math.inf) for s, c in zip(speeds, curves)]
    times = {tick: travel_time(scene, tick=tick) for tick in (0.2, 0.5)}
    ref = reference_time(lengths, caps)
    for got in times.values():
        assert got == pytest.approx(ref, abs=2e-3)
    assert times[0.2] == pytest.approx(times[0.5], abs=1e-9)


def positions_after(total: float, steps: list[float], tick: float = 0.5) -> np.ndarray:
    from tests.physics.scenes import loop_scene

    sim = OhtSim(loop_scene(vehicles=12), OhtConfig(tick=tick), seed=7, random_transfers=True)
    done = 0.0
    k = 0
    while done < total - 1e-12:
        dt = min(steps[k % len(steps)], total - done)
        sim.advance(dt)
        done += dt
        k += 1
    _, _, _, odometer = sim.state()
    return odometer


def test_position_does_not_depend_on_step_size():
    """Advancing 97.3 s in one call, in 0.01 s steps or in irregular steps gives the same positions."""
    one = positions_after(97.3, [97.3])
    small = positions_after(97.3, [0.01])
    irregular = positions_after(97.3, [0.37, 1.9, 0.05, 3.3])
    assert np.max(np.abs(one - small)) < 1e-6
    assert np.max(np.abs(one - irregular)) < 1e-6
    assert np.max(one) > 20  # vehicles did move
