"""The 95 % intervals calibration attaches to an estimate (docs/forecast.md says which and why).

- ``t_interval``: a mean of i.i.d. samples, Student's t with n - 1 degrees of freedom.
- ``exp_mean_interval``: the mean of an exponential distribution from ``r`` events over a total
  exposure ``total`` (time-truncated: chi-square with 2r and 2r + 2 degrees of freedom; with every
  sample complete, as repair times are, use ``complete=True``: 2r both sides).
- ``poisson_rate_interval``: a rate from ``n`` events in ``span`` (Garwood's exact interval).
- ``proportion_interval``: a share of ``k`` in ``n`` trials (Clopper-Pearson's exact interval).
"""

from __future__ import annotations

import math

LEVEL = 0.95  # every interval of calibration is two-sided at this level


def t_interval(xs: list[float], level: float = LEVEL) -> tuple[float, tuple[float, float]]:
    """(mean, (low, high)) of the samples; the interval is (mean, mean) for one sample."""
    from scipy.stats import t as student

    n = len(xs)
    if n == 0:
        return math.nan, (math.nan, math.nan)
    mean = math.fsum(xs) / n
    if n == 1:
        return mean, (mean, mean)
    var = math.fsum((x - mean) ** 2 for x in xs) / (n - 1)
    half = float(student.ppf(0.5 + level / 2, n - 1)) * math.sqrt(var / n)
    return mean, (mean - half, mean + half)


def exp_mean_interval(
    r: int, total: float, *, complete: bool = False, level: float = LEVEL
) -> tuple[float, tuple[float, float]]:
    """(mean, (low, high)) of an exponential mean from ``r`` events over exposure ``total``."""
    from scipy.stats import chi2

    a = (1 - level) / 2
    if r == 0:
        low = 2 * total / float(chi2.ppf(1 - a, 2)) if total > 0 else 0.0
        return math.nan, (low, math.inf)
    upper_df = 2 * r if complete else 2 * r + 2
    low = 2 * total / float(chi2.ppf(1 - a, upper_df))
    high = 2 * total / float(chi2.ppf(a, 2 * r))
    return total / r, (low, high)


def poisson_rate_interval(
    n: int, span: float, level: float = LEVEL
) -> tuple[float, tuple[float, float]]:
    """(rate, (low, high)) per unit of ``span`` from ``n`` events (Garwood's exact interval)."""
    from scipy.stats import chi2

    a = (1 - level) / 2
    low = float(chi2.ppf(a, 2 * n)) / 2 / span if n > 0 else 0.0
    high = float(chi2.ppf(1 - a, 2 * n + 2)) / 2 / span
    return n / span, (low, high)


def proportion_interval(k: int, n: int, level: float = LEVEL) -> tuple[float, tuple[float, float]]:
    """(k / n, (low, high)) of a binomial proportion (Clopper-Pearson: exact, conservative);
    (nan, (0, 1)) without any trial."""
    from scipy.stats import beta

    if n <= 0:
        return math.nan, (0.0, 1.0)
    a = (1 - level) / 2
    low = float(beta.ppf(a, k, n - k + 1)) if k > 0 else 0.0
    high = float(beta.ppf(1 - a, k + 1, n - k)) if k < n else 1.0
    return k / n, (low, high)
