"""Deadlock: vehicles that wait on each other in a cycle (a wait-for graph with a loop).

Every standing, blocked vehicle waits on exactly one other (the vehicle ahead, or the holder of
the merge it waits for), so the wait-for graph is a functional graph and its cycles are found
in one pass.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from twin.errors import TwinError


@dataclass(frozen=True, slots=True)
class Deadlock:
    """Vehicles that wait on each other in a cycle, found at ``time`` (s)."""

    time: float
    vehicles: tuple[str, ...]


class DeadlockError(TwinError):
    """Raised, when asked for, as soon as vehicles are found waiting on each other in a cycle."""

    def __init__(self, deadlock: Deadlock):
        self.deadlock = deadlock
        super().__init__(
            f"deadlock at t = {deadlock.time:.1f} s: {' -> '.join(deadlock.vehicles)} "
            f"wait on each other in a cycle"
        )


def wait_cycles(blocker: np.ndarray) -> list[list[int]]:
    """Cycles of ``i -> blocker[i]`` (-1: not waiting), each listed once in wait order."""
    n = len(blocker)
    colour = np.zeros(n, dtype=np.int8)  # 0 unseen, 1 on the current path, 2 done
    cycles = []
    for start in np.nonzero(blocker >= 0)[0]:
        path, i = [], int(start)
        while i >= 0 and colour[i] == 0:
            colour[i] = 1
            path.append(i)
            i = int(blocker[i])
        if i >= 0 and colour[i] == 1:
            cycles.append(path[path.index(i) :])
        for j in path:
            colour[j] = 2
    return cycles
