"""Exact one-dimensional motion profiles along a rail path (vectorised over vehicles).

A vehicle that must be able to stop at a point ``P`` metres ahead, with speed cap ``V``,
acceleration ``a`` and deceleration ``b``, moves time-optimally in at most three phases of
constant acceleration: accelerate (or brake down to the cap), cruise, brake to a stop at P.
Every quantity here is a closed form, so evaluating a plan at any time gives the same answer
whatever the step size; and because the optimal profile from any point of an optimal profile is
its own remainder, re-planning on a clock grid reproduces the closed-form trapezoid exactly.

Speed limits ahead become stop points too: "at most ``Vc`` when reaching ``d``" is the same
constraint, before ``d``, as "able to stop by ``d + Vc²/2b``".
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(slots=True)
class Plan:
    """Three constant-acceleration phases per vehicle (arrays of equal shape).

    Phase 1 lasts ``t1`` s at acceleration ``a1`` (m/s², negative when braking to the cap),
    phase 2 cruises ``t2`` s at ``vm`` m/s, phase 3 brakes at ``a3`` m/s² (>0) for ``t3`` s
    to a stop at ``dist`` m. ``delay`` s of standing still come first.
    """

    v0: np.ndarray
    a1: np.ndarray
    t1: np.ndarray
    vm: np.ndarray
    t2: np.ndarray
    a3: np.ndarray
    t3: np.ndarray
    dist: np.ndarray
    delay: np.ndarray

    @property
    def duration(self) -> np.ndarray:
        """Time (s) until the vehicle stands at ``dist`` (inf when it never has to stop)."""
        return self.delay + self.t1 + self.t2 + self.t3


def plan_stop(
    v0: np.ndarray,
    dist: np.ndarray,
    cap: np.ndarray,
    acc: np.ndarray,
    dec: np.ndarray,
    delay: np.ndarray | float = 0.0,
) -> tuple[Plan, np.ndarray]:
    """Time-optimal plan to stand still ``dist`` m ahead (inf: never stop) under a speed cap.

    Returns the plan and a boolean array of vehicles that could not stop in time at ``dec``
    (they brake harder, exactly onto the stop point; callers count these as emergencies).
    """
    v0 = np.asarray(v0, dtype=float)
    dist = np.maximum(np.asarray(dist, dtype=float), 0.0)
    cap = np.asarray(cap, dtype=float)
    acc = np.asarray(acc, dtype=float)
    dec = np.asarray(dec, dtype=float)
    delay = np.full(v0.shape, delay) if np.isscalar(delay) else np.asarray(delay, dtype=float)
    stopping = v0 * v0 / (2.0 * dec)
    brake_only = dist <= stopping * (1.0 + 1e-12) + 1e-12
    emergency = dist < stopping - 1e-6  # implies brake_only

    with np.errstate(divide="ignore", invalid="ignore"):
        over_cap = v0 > cap
        # peak speed of an accelerate-then-brake triangle ending at rest at dist
        peak = np.sqrt((2.0 * acc * dec * dist + dec * v0 * v0) / (acc + dec))
        vm = np.where(over_cap, cap, np.minimum(peak, cap))
        a1 = np.where(over_cap, -dec, acc)
        t1 = np.abs(vm - v0) / np.abs(a1)
        d1 = (vm * vm - v0 * v0) / (2.0 * a1)
        d3 = vm * vm / (2.0 * dec)
        d2 = np.maximum(dist - d1 - d3, 0.0)
        t2 = np.where(vm > 0, d2 / vm, 0.0)
        # braking only: all of it is phase 3, from v0, exactly onto dist (harder than dec in
        # an emergency); in place, as these arrays are fresh
        a3 = dec.copy()
        if emergency.any():
            b_eff = np.where(dist > 0, v0 * v0 / (2.0 * np.maximum(dist, 1e-300)), np.inf)
            np.copyto(a3, b_eff, where=emergency)
        np.copyto(vm, v0, where=brake_only)
        np.copyto(t1, 0.0, where=brake_only)
        np.copyto(a1, 0.0, where=brake_only)
        np.copyto(t2, 0.0, where=brake_only)
        # vm / dec off the brake-only branch; standing still with nowhere to go gives 0 / dec
        t3 = vm / a3
    dist = np.where(brake_only & ~emergency, np.minimum(dist, stopping), dist)
    return Plan(v0, a1, t1, vm, t2, a3, t3, dist, delay), emergency


def evaluate(plan: Plan, tau: np.ndarray | float) -> tuple[np.ndarray, np.ndarray]:
    """Distance travelled (m) and speed (m/s) ``tau`` s after the plan starts."""
    tau = np.maximum(np.asarray(tau, dtype=float) - plan.delay, 0.0)
    t1, vm, a3 = plan.t1, plan.vm, plan.a3
    p1 = np.minimum(tau, t1)
    x = plan.v0 * p1 + 0.5 * plan.a1 * p1 * p1
    v = plan.v0 + plan.a1 * p1
    # np.minimum(np.maximum(...)) is np.clip without its Python-level overhead
    p2 = np.minimum(np.maximum(tau - t1, 0.0), plan.t2)
    x = x + vm * p2
    v = np.where(tau > t1, vm, v)
    # a never-stopping plan gives inf - inf, an instant emergency stop inf·0: `done` covers it
    with np.errstate(invalid="ignore"):
        p3 = np.minimum(np.maximum(tau - t1 - plan.t2, 0.0), plan.t3)
        p3 = np.where(np.isnan(p3), 0.0, p3)
        x = x + vm * p3 - 0.5 * a3 * p3 * p3
        v = np.where(p3 > 0, vm - a3 * p3, v)
    done = tau >= t1 + plan.t2 + plan.t3
    x = np.where(done & np.isfinite(plan.dist), plan.dist, x)
    v = np.where(done, 0.0, v)
    return x, np.maximum(v, 0.0)


def time_to_reach(plan: Plan, target: np.ndarray) -> np.ndarray:
    """First time (s, from the plan start) the plan has covered ``target`` m; inf if never."""
    target = np.asarray(target, dtype=float)
    out = np.full(target.shape, np.inf)
    with np.errstate(divide="ignore", invalid="ignore"):
        d1 = plan.v0 * plan.t1 + 0.5 * plan.a1 * plan.t1**2
        d2 = plan.vm * plan.t2
        d2 = np.where(np.isfinite(d2), d2, np.inf)
        # phase 1: v0 t + a t²/2 = target
        in1 = target <= d1
        disc1 = np.maximum(plan.v0**2 + 2 * plan.a1 * target, 0.0)
        r1 = np.where(
            np.abs(plan.a1) > 0,
            (-plan.v0 + np.sqrt(disc1)) / np.where(plan.a1 == 0, 1, plan.a1),
            target / np.where(plan.v0 > 0, plan.v0, np.nan),
        )
        out = np.where(in1, r1, out)
        in2 = ~in1 & (target <= d1 + d2)
        r2 = plan.t1 + (target - d1) / plan.vm
        out = np.where(in2, r2, out)
        rest = target - d1 - d2
        in3 = ~in1 & ~in2 & (rest <= plan.vm * plan.t3 - 0.5 * plan.a3 * plan.t3**2 + 1e-12)
        disc3 = np.maximum(plan.vm**2 - 2 * plan.a3 * rest, 0.0)
        r3 = plan.t1 + plan.t2 + (plan.vm - np.sqrt(disc3)) / plan.a3
        out = np.where(in3, r3, out)
    out = np.where(target <= 0, 0.0, out)
    out = np.where(np.isnan(out), np.inf, out)
    return out + plan.delay


def trapezoid_time(dist: float, v_max: float, acc: float, dec: float) -> float:
    """Closed-form rest-to-rest travel time (s) over ``dist`` m (reference for reports)."""
    if dist <= 0:
        return 0.0
    ramp = v_max * v_max / (2 * acc) + v_max * v_max / (2 * dec)
    if dist >= ramp:
        return dist / v_max + v_max / (2 * acc) + v_max / (2 * dec)
    return float(np.sqrt(2 * dist * (acc + dec) / (acc * dec)))
