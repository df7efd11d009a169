"""Transfers: the jobs OHT vehicles do, and how a vehicle goes from one leg to the next.

A transfer is: move to the source port, hoist down and up (``load_time``), move to the
destination port, hoist down and up (``unload_time``). ``TransferJobs`` holds that bookkeeping
for ``OhtSim`` (a mixin: it uses the simulator's arrays and router), so that the simulator module
is about motion only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from twin.errors import InputError
from twin.physics.routing import port_stop

# job stages
IDLE, TO_SOURCE, LOADING, TO_DEST, UNLOADING = range(5)
STAGE_NAMES = ("idle", "to_source", "loading", "to_dest", "unloading")


@dataclass(slots=True)
class Transfer:
    """A carrier move: hoist at ``source``, carry, set down at ``dest``."""

    vehicle: str
    source: str
    dest: str
    assigned: float  # s
    picked: float | None = None  # s, hoist at source finished
    completed: float | None = None  # s, hoist at destination finished


class TransferJobs:
    """Queued and random transfers of ``OhtSim`` vehicles (see the module docstring)."""

    def submit(self, vehicle: str, source: str, dest: str) -> None:
        """Queue a transfer for a vehicle; errors (unknown ids, unreachable ports) change nothing."""
        i = self._vehicle(vehicle)
        src = port_stop(self.scene, self.rail, source)
        dst = port_stop(self.scene, self.rail, dest)
        self.router.route(*src, *dst)  # raises when the destination is unreachable from the source
        here = self._stop_after_queue(i)
        self.router.route(*here, *src)
        self.queue[i].append((source, dest))
        if self.stage[i] == IDLE:
            self._next_job(i, max(self.t, self.ready[i]))
            self._start_ready_legs()
            self._decide()

    def stage_of(self, vehicle: str) -> str:
        return STAGE_NAMES[self.stage[self._vehicle(vehicle)]]

    def _stop_after_queue(self, i: int) -> tuple[int, float]:
        if self.queue[i]:
            return port_stop(self.scene, self.rail, self.queue[i][-1][1])
        job = self.jobs[i]
        if job is not None and self.stage[i] in (TO_SOURCE, LOADING):
            return port_stop(self.scene, self.rail, job.dest)
        return self.dest_stop[i]

    def _random_transfer(self, i: int) -> tuple[str, str]:
        ports = self._port_pool()
        here = self.dest_stop[i]
        for _ in range(50):
            a, b = self.rng.integers(len(ports), size=2)
            src, dst = ports[a], ports[b]
            if src == dst:
                continue
            ss, ds = port_stop(self.scene, self.rail, src), port_stop(self.scene, self.rail, dst)
            if self._reachable(here, ss) and self._reachable(ss, ds):
                return src, dst
        raise InputError("random transfers", [f"no reachable port pair found for {self.ids[i]!r}"])

    def _port_pool(self) -> list[str]:
        pool = getattr(self, "_ports", None)
        if pool is None:
            pool = [p for p, link in self.scene.ports.items() if link.segment is not None]
            if len(pool) < 2:
                raise InputError(
                    "random transfers", ["the scene has fewer than 2 ports on the rail"]
                )
            self._ports = pool
        return pool

    def _reachable(self, a: tuple[int, float], b: tuple[int, float]) -> bool:
        if a[0] == b[0] and b[1] >= a[1]:
            return True
        return math.isfinite(
            self.router.node_distance(int(self.rail.seg_end[a[0]]), int(self.rail.seg_start[b[0]]))
        )

    def _next_job(self, i: int, start: float, refresh: bool = True) -> None:
        """Give an idle vehicle its next queued (or random) transfer, moving from ``start`` s
        (``refresh=False``: the caller refreshes the vehicle's look-ahead rows)."""
        if not self.queue[i] and self.random_transfers:
            self.queue[i].append(self._random_transfer(i))
        if not self.queue[i]:
            self.stage[i] = IDLE
            self.jobs[i] = None
            return
        src, dst = self.queue[i].pop(0)
        self.jobs[i] = Transfer(self.ids[i], src, dst, start)
        self.stage[i] = TO_SOURCE
        self.ready[i] = start
        self._set_route(i, port_stop(self.scene, self.rail, src), refresh)
        if self.dest_s[i] - self.s[i] <= 1e-9 and self.v[i] == 0:
            self.stage[i] = LOADING  # already standing at the source port
            self.ready[i] = start + self.config.load_time

    def _check_pending(self, i: int) -> None:
        """Raise if a leg the vehicle still has to drive (its job, its queue) is now unreachable."""
        legs = []
        job = self.jobs[i]
        if job is not None and self.stage[i] in (TO_SOURCE, LOADING):
            legs.append((job.source, job.dest))
        here = self.dest_stop[i] if job is None else port_stop(self.scene, self.rail, job.dest)
        for src, dst in self.queue[i]:
            legs.append((None, src))
            legs.append((src, dst))
        for a, b in legs:
            start = here if a is None else port_stop(self.scene, self.rail, a)
            end = port_stop(self.scene, self.rail, b)
            self.router.route(*start, *end)
            here = end

    def _start_ready_legs(self, refresh: bool = True) -> list[int]:
        """Hoists that end during the current tick: plan the next leg, starting at ``ready``.

        Returns the vehicles routed anew; with ``refresh=False`` the caller refreshes their
        look-ahead rows (together with others, in one batch)."""
        end = self.t_tick + self.config.tick
        routed = []  # look-ahead rows refreshed once for all of them
        while True:
            hoisting = (self.stage == LOADING) | (self.stage == UNLOADING)
            due = np.nonzero(hoisting & (self.ready < end))[0]
            if len(due) == 0:
                break
            routed.extend(due)
            for i in due:
                job = self.jobs[i]
                if self.stage[i] == LOADING:
                    job.picked = float(self.ready[i])
                    self.stage[i] = TO_DEST
                    self._set_route(i, port_stop(self.scene, self.rail, job.dest), False)
                else:
                    job.completed = float(self.ready[i])
                    self.stats.completed.append(job)
                    self._next_job(i, float(self.ready[i]), False)
        if refresh and routed:
            self._refresh(np.unique(routed))
        return routed
