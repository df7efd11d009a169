"""Random streams keyed by (seed, replication, purpose, index).

Every purpose has its own numpy Generator (per family for processing times, per tool for
breakdowns and PM durations, one for transport, one for sampling/rework, one per release
stream), so that two scenarios that differ in one family still draw the same numbers
everywhere else: common random numbers make paired differences tight.

Numbers are drawn in blocks and handed out one by one from a Python list, which is far cheaper
per draw than calling numpy for every scalar. The engine's busiest paths take the next number
as ``buf.pop() if buf else stream.u()`` (the same number ``u()`` returns, without the call).
"""

from __future__ import annotations

import math

import numpy as np

PROCESS, TOOL, TRANSPORT, ROUTING, RELEASE, PM = 1, 2, 3, 4, 5, 6
START = 7  # a warm start's draws (the time left of downs in progress), one stream
BLOCK = 2048


class Stream:
    """Uniform(0, 1) numbers of one purpose; ``u()`` returns the next one."""

    __slots__ = ("_gen", "buf", "_block")

    def __init__(self, seed: int, replication: int, purpose: int, index: int = 0):
        ss = np.random.SeedSequence([seed, replication, purpose, index])
        self._gen = np.random.Generator(np.random.PCG64(ss))
        self.buf: list[float] = []  # the next numbers, last one first
        self._block = 16  # grows to BLOCK: rarely used streams (one per tool) stay cheap

    def u(self) -> float:
        """Next uniform number in [0, 1)."""
        buf = self.buf
        if not buf:
            buf.extend(self._gen.random(self._block).tolist()[::-1])  # pop() takes them in order
            self._block = min(BLOCK, self._block * 4)
        return buf.pop()

    def uniform(self, low: float, high: float) -> float:
        """Uniform on [low, high)."""
        return low + (high - low) * self.u()

    def exponential(self, mean: float) -> float:
        """Exponential with this mean."""
        return -mean * math.log(1.0 - self.u())


def draw(stream: Stream, kind: int, low: float, high: float, mean: float) -> float:
    """A duration: kind 0 constant (mean), 1 uniform [low, high), 2 exponential (mean)."""
    if kind == 1:
        return low + (high - low) * stream.u()
    if kind == 0:
        return mean
    return -mean * math.log(1.0 - stream.u())


KIND_CODES = {"constant": 0, "uniform": 1, "exponential": 2}
