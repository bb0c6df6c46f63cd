"""Small statistics for reports over seeds: Student t quantiles and confidence intervals (no scipy)."""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np


def _t_cdf(x: float, df: int) -> float:
    """Student t CDF at x >= 0: 1/2 + the integral of the density over [0, x] (Simpson, 4096 panels,
    error < 1e-9 for the quantiles used here)."""
    log_norm = math.lgamma((df + 1) / 2) - math.lgamma(df / 2) - 0.5 * math.log(df * math.pi)
    grid = np.linspace(0.0, x, 4097)
    density = np.exp(log_norm - (df + 1) / 2 * np.log1p(grid**2 / df))
    weights = np.ones(len(grid))
    weights[1:-1:2], weights[2:-1:2] = 4, 2
    return 0.5 + float((density * weights).sum()) * (x / 4096) / 3


@lru_cache(maxsize=256)
def t_quantile(p: float, df: int) -> float:
    """The p-quantile (0.5 < p < 1) of Student's t with `df` degrees of freedom, e.g. 12.706 for
    (0.975, 1), 2.262 for (0.975, 9), -> 1.960 as df grows. Bisection on the CDF."""
    if not 0.5 < p < 1 or df < 1:
        raise ValueError(f"t_quantile: need 0.5 < p < 1 and df >= 1, got p={p}, df={df}")
    low, high = 0.0, 1.0
    while _t_cdf(high, df) < p:
        high *= 2
    for _ in range(60):
        mid = (low + high) / 2
        low, high = (mid, high) if _t_cdf(mid, df) < p else (low, mid)
    return (low + high) / 2


def mean_ci(values, confidence: float = 0.95) -> tuple[float, float, int]:
    """(mean, half-width of the two-sided t interval, n) over the finite values.

    half-width = t_{(1+confidence)/2, n-1} * s / sqrt(n) with s the sample standard deviation;
    NaN when n < 2 (one seed gives no interval); mean NaN when n = 0."""
    x = np.asarray([v for v in values if v is not None and math.isfinite(v)], dtype=float)
    if len(x) == 0:
        return float("nan"), float("nan"), 0
    if len(x) < 2:
        return float(x[0]), float("nan"), 1
    half = t_quantile((1 + confidence) / 2, len(x) - 1) * float(x.std(ddof=1)) / math.sqrt(len(x))
    return float(x.mean()), half, len(x)
