"""Prometheus text exposition (format 0.0.4) without a client library: a few counters, gauges
and one latency histogram, rendered on demand from the runtime's own figures."""

from __future__ import annotations

import bisect
import threading
from collections.abc import Iterable

# seconds; the request-latency histogram buckets
BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Histogram:
    """Cumulative buckets per label set; ``observe`` is a bisect and two additions."""

    def __init__(self, name: str, help: str, labels: tuple[str, ...]) -> None:
        self.name, self.help, self.labels = name, help, labels
        self._series: dict[tuple[str, ...], list[float]] = {}  # counts per bucket + sum + count
        self._lock = threading.Lock()

    def observe(self, value: float, *label_values: str) -> None:
        with self._lock:
            s = self._series.get(label_values)
            if s is None:
                s = self._series[label_values] = [0.0] * (len(BUCKETS) + 3)
            s[bisect.bisect_left(BUCKETS, value)] += 1
            s[-2] += value
            s[-1] += 1

    def render(self) -> list[str]:
        out = [f"# HELP {self.name} {self.help}", f"# TYPE {self.name} histogram"]
        with self._lock:
            series = {k: list(v) for k, v in self._series.items()}
        for values, s in sorted(series.items()):
            base = ",".join(f'{k}="{_esc(v)}"' for k, v in zip(self.labels, values))
            cum = 0.0
            for le, n in zip((*BUCKETS, float("inf")), s):
                cum += n
                le_s = "+Inf" if le == float("inf") else repr(le)
                out.append(f'{self.name}_bucket{{{base},le="{le_s}"}} {cum:g}')
            out.append(f"{self.name}_sum{{{base}}} {s[-2]:.6f}")
            out.append(f"{self.name}_count{{{base}}} {s[-1]:g}")
        return out


def _esc(v: str) -> str:
    return v.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def metric(
    name: str, kind: str, help: str, samples: Iterable[tuple[dict[str, str], float]]
) -> list[str]:
    """One counter or gauge family: ``samples`` are (labels, value)."""
    out = [f"# HELP {name} {help}", f"# TYPE {name} {kind}"]
    for labels, value in samples:
        lab = ",".join(f'{k}="{_esc(v)}"' for k, v in labels.items())
        out.append(f"{name}{{{lab}}} {value:g}" if lab else f"{name} {value:g}")
    return out
