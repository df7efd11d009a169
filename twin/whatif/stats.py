"""Statistics over replications: means, Student-t confidence intervals, paired differences.

Replication ``r`` of every scenario runs with the same random streams (common random numbers),
so the difference ``scenario_r - baseline_r`` removes most of the noise the two share; its
confidence interval is the one to report for "is the change better?". Unpaired (Welch)
intervals are provided too, for comparison and for runs without common random numbers.

Warm-up: the engine deletes lots completed before ``warmup_days`` itself; this module offers
``truncate_warmup`` for series measured here and ``mser5`` to choose a truncation point from data.

KPI dictionaries from ``SimResult.kpis()`` are nested; ``flatten_kpis`` turns them into
``{"lot_types.Lot_3.cycle_time_days.mean": 66.1, ...}`` so each numeric leaf is one KPI.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

DEFAULT_CONFIDENCE = 0.95


@dataclass(frozen=True, slots=True)
class Estimate:
    """A sample mean and its Student-t confidence interval ``mean ± half_width``.

    ``n`` counts the finite values used (NaN replications, e.g. no lot of a type finished, are
    left out); with ``n < 2`` the half width is NaN: one value says nothing about its spread.
    """

    mean: float
    half_width: float
    n: int
    std: float  # sample standard deviation (ddof=1)
    confidence: float = DEFAULT_CONFIDENCE

    @property
    def low(self) -> float:
        return self.mean - self.half_width

    @property
    def high(self) -> float:
        return self.mean + self.half_width

    @property
    def ci(self) -> tuple[float, float]:
        return (self.low, self.high)

    def contains(self, value: float) -> bool:
        """Whether ``value`` lies inside the interval."""
        return self.low <= value <= self.high

    def excludes_zero(self) -> bool:
        """Whether the interval is entirely on one side of zero (a significant difference)."""
        return not math.isnan(self.half_width) and not self.contains(0.0)

    def to_dict(self) -> dict[str, float | int | list[float] | None]:
        """JSON-ready: NaN becomes None."""
        return {
            "mean": _json_float(self.mean),
            "ci": [_json_float(self.low), _json_float(self.high)],
            "half_width": _json_float(self.half_width),
            "std": _json_float(self.std),
            "n": self.n,
        }


def _json_float(x: float) -> float | None:
    return None if x is None or not math.isfinite(x) else float(x)


def t_quantile(confidence: float, dof: int) -> float:
    """The two-sided Student-t critical value for ``confidence`` with ``dof`` degrees of freedom."""
    from scipy.stats import t

    return float(t.ppf(0.5 + confidence / 2.0, dof))


def estimate(values: Iterable[float], confidence: float = DEFAULT_CONFIDENCE) -> Estimate:
    """Mean and Student-t confidence interval of independent replications' values."""
    x = np.asarray(list(values), dtype=float)
    x = x[np.isfinite(x)]
    n = int(x.size)
    if n == 0:
        return Estimate(math.nan, math.nan, 0, math.nan, confidence)
    mean = float(x.mean())
    if n == 1:
        return Estimate(mean, math.nan, 1, math.nan, confidence)
    std = float(x.std(ddof=1))
    half = t_quantile(confidence, n - 1) * std / math.sqrt(n)
    return Estimate(mean, half, n, std, confidence)


def paired_difference(
    values: Sequence[float], baseline: Sequence[float], confidence: float = DEFAULT_CONFIDENCE
) -> Estimate:
    """CI of the mean of ``values[r] - baseline[r]`` (replication r of both shares its streams).

    Pairs where either side is NaN are dropped. The sequences must be the same length: pairing
    is by replication index.
    """
    a = np.asarray(values, dtype=float)
    b = np.asarray(baseline, dtype=float)
    if a.shape != b.shape:
        raise ValueError(
            f"paired difference needs one value per replication on both sides; got {a.size} "
            f"and {b.size}"
        )
    return estimate(a - b, confidence)


def welch_difference(
    values: Sequence[float], baseline: Sequence[float], confidence: float = DEFAULT_CONFIDENCE
) -> Estimate:
    """Unpaired CI of ``mean(values) - mean(baseline)`` (Welch–Satterthwaite degrees of freedom).

    ``n`` is the smaller sample size; ``std`` is the standard error of the difference.
    """
    a = np.asarray(values, dtype=float)
    b = np.asarray(baseline, dtype=float)
    a, b = a[np.isfinite(a)], b[np.isfinite(b)]
    if a.size < 2 or b.size < 2:
        mean = float(a.mean() - b.mean()) if a.size and b.size else math.nan
        return Estimate(mean, math.nan, int(min(a.size, b.size)), math.nan, confidence)
    va, vb = a.var(ddof=1) / a.size, b.var(ddof=1) / b.size
    se = math.sqrt(va + vb)
    mean = float(a.mean() - b.mean())
    if se == 0.0:
        return Estimate(mean, 0.0, int(min(a.size, b.size)), 0.0, confidence)
    dof = (va + vb) ** 2 / (va**2 / (a.size - 1) + vb**2 / (b.size - 1))
    from scipy.stats import t

    half = float(t.ppf(0.5 + confidence / 2.0, dof)) * se
    return Estimate(mean, half, int(min(a.size, b.size)), se, confidence)


# --- KPI dictionaries ------------------------------------------------------------------------


def flatten_kpis(kpis: Mapping[str, object], prefix: str = "") -> dict[str, float]:
    """Numeric leaves of a nested KPI dict, keyed by their dotted path.

    Booleans and non-numeric leaves (names, lists) are skipped; None becomes NaN so that a
    replication without a value is counted as missing rather than as zero.
    """
    flat: dict[str, float] = {}
    for key, value in kpis.items():
        path = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten_kpis(value, prefix=f"{path}."))
        elif value is None:
            flat[path] = math.nan
        elif isinstance(value, bool):
            continue
        elif isinstance(value, int | float | np.integer | np.floating):
            flat[path] = float(value)
    return flat


def flatten_series(kpis: Mapping[str, object], prefix: str = "") -> dict[str, list[float]]:
    """List-of-number leaves of a nested KPI dict (time series such as the fab WIP), by path."""
    out: dict[str, list[float]] = {}
    for key, value in kpis.items():
        path = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(flatten_series(value, prefix=f"{path}."))
        elif isinstance(value, list | tuple) and all(
            isinstance(v, int | float) and not isinstance(v, bool) for v in value
        ):
            out[path] = [float(v) for v in value]
    return out


def summarize(
    replications: Sequence[Mapping[str, float]], confidence: float = DEFAULT_CONFIDENCE
) -> dict[str, Estimate]:
    """Per-KPI estimate over replications (flat KPI dicts; a key missing in one counts as NaN)."""
    keys = _union_keys(replications)
    return {k: estimate([r.get(k, math.nan) for r in replications], confidence) for k in keys}


def summarize_differences(
    replications: Sequence[Mapping[str, float]],
    baseline: Sequence[Mapping[str, float]],
    confidence: float = DEFAULT_CONFIDENCE,
) -> dict[str, Estimate]:
    """Per-KPI paired difference against the baseline, replication by replication."""
    if len(replications) != len(baseline):
        raise ValueError(
            f"paired differences need the same replications: {len(replications)} vs {len(baseline)}"
        )
    keys = [k for k in _union_keys(replications) if any(k in b for b in baseline)]
    return {
        k: paired_difference(
            [r.get(k, math.nan) for r in replications],
            [b.get(k, math.nan) for b in baseline],
            confidence,
        )
        for k in keys
    }


def _union_keys(dicts: Sequence[Mapping[str, float]]) -> list[str]:
    seen: dict[str, None] = {}
    for d in dicts:
        for k in d:
            seen.setdefault(k, None)
    return list(seen)


def unflatten(flat: Mapping[str, object]) -> dict[str, object]:
    """Inverse of ``flatten_kpis`` on the key structure: dotted paths back to nested dicts."""
    out: dict[str, object] = {}
    for path, value in flat.items():
        node = out
        *parents, leaf = path.split(".")
        for p in parents:
            node = node.setdefault(p, {})  # type: ignore[assignment]
        node[leaf] = value
    return out


# --- warm-up ---------------------------------------------------------------------------------


def truncate_warmup(
    times: Sequence[float], values: Sequence[float], warmup: float
) -> tuple[np.ndarray, np.ndarray]:
    """Keep the observations made at or after ``warmup`` (same unit as ``times``)."""
    t = np.asarray(times, dtype=float)
    v = np.asarray(values, dtype=float)
    keep = t >= warmup
    return t[keep], v[keep]


def mser5(series: Sequence[float], batch: int = 5, max_fraction: float = 0.5) -> int:
    """MSER-5 truncation point: the number of leading observations to delete.

    The series is cut into batches of ``batch`` observations; the truncation d (in batches)
    minimises the marginal standard error  sum((y_i - mean(y_d:))^2) / (n - d)^2  over
    d ≤ ``max_fraction`` of the batches (White 1997; Franklin & White 2008). Returns
    ``d * batch`` observations.
    """
    x = np.asarray(series, dtype=float)
    nb = x.size // batch
    if nb < 2:
        return 0
    y = x[: nb * batch].reshape(nb, batch).mean(axis=1)
    best_d, best = 0, math.inf
    # suffix sums give every tail's mean and sum of squares in O(n)
    s1 = np.cumsum(y[::-1])[::-1]
    s2 = np.cumsum((y * y)[::-1])[::-1]
    for d in range(int(nb * max_fraction) + 1):
        m = nb - d
        if m < 2:
            break
        ss = s2[d] - s1[d] ** 2 / m
        stat = ss / (m * m)
        if stat < best:
            best, best_d = stat, d
    return best_d * batch
