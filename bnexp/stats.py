"""Intervals over seeds: the statistics behind every number a report shows.

A grid point's runs differ only in their seed, so its seeds are a small
sample (3 to 5 values) of what the setting gives. We show its mean with a
Student-t 95% interval (``mean_interval``), and compare two points with
Welch's t interval for the difference of their means (``welch_interval``),
which does not assume equal variances. Both are exact under normality and
the usual choice at these sample sizes, where a bootstrap over 3 or 5 values
has too few distinct resamples to cover as it claims.

Student's t is computed here (regularized incomplete beta by continued
fraction, then bisection for quantiles), so bnexp needs no scipy; the tests
compare it with published tables and, where installed, with scipy.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass

LEVEL = 0.95


def _beta_fraction(a: float, b: float, x: float) -> float:
    """Continued fraction of the incomplete beta function (modified Lentz)."""
    tiny = 1e-300
    c, d = 1.0, 1.0 - (a + b) * x / (a + 1.0)
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 1000):
        for num in (m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m)),
                    -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1))):
            d = 1.0 + num * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + num / c
            c = c if abs(c) > tiny else tiny
            h *= d * c
        if abs(d * c - 1.0) < 1e-16:
            break
    return h


def betainc(a: float, b: float, x: float) -> float:
    """The regularized incomplete beta function I_x(a, b)."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    front = math.exp(math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b)
                     + a * math.log(x) + b * math.log1p(-x))
    if x < (a + 1.0) / (a + b + 2.0):
        return front * _beta_fraction(a, b, x) / a
    return 1.0 - front * _beta_fraction(b, a, 1.0 - x) / b


def t_cdf(t: float, df: float) -> float:
    """P(T <= t) for Student's t with ``df`` degrees of freedom (df > 0)."""
    if math.isinf(df):
        return 0.5 * math.erfc(-t / math.sqrt(2.0))
    tail = 0.5 * betainc(df / 2.0, 0.5, df / (df + t * t))
    return 1.0 - tail if t >= 0 else tail


@functools.lru_cache(maxsize=1024)
def t_quantile(p: float, df: float) -> float:
    """The ``p`` quantile of Student's t (0 < p < 1), to about 1e-12."""
    if not 0.0 < p < 1.0:
        raise ValueError(f"p={p} must be in (0, 1)")
    if p < 0.5:
        return -t_quantile(1.0 - p, df)
    if p == 0.5:
        return 0.0
    lo, hi = 0.0, 1.0
    while t_cdf(hi, df) < p:
        lo, hi = hi, hi * 2.0
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if t_cdf(mid, df) < p:
            lo = mid
        else:
            hi = mid
        if hi - lo <= 1e-13 * max(1.0, hi):
            break
    return 0.5 * (lo + hi)


@dataclass(frozen=True)
class Interval:
    """An estimate with its two-sided interval at ``level``; ``n`` values went in.
    Without enough values for an interval, ``lo``/``hi`` are -inf/+inf."""

    estimate: float
    lo: float
    hi: float
    n: int
    level: float = LEVEL

    @property
    def known(self) -> bool:
        return math.isfinite(self.lo) and math.isfinite(self.hi)


def mean_sd(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (ddof=1; 0 for one value, nan for none)."""
    n = len(values)
    if n == 0:
        return math.nan, math.nan
    if all(v == values[0] for v in values):  # exactly, not 0.1 * 3 / 3
        return float(values[0]), 0.0
    mean = math.fsum(values) / n
    if n == 1:
        return mean, 0.0
    return mean, math.sqrt(math.fsum((v - mean) ** 2 for v in values) / (n - 1))


def mean_interval(values: Sequence[float], level: float = LEVEL) -> Interval:
    """Student-t interval for the mean of ``values`` (unbounded for fewer than 2)."""
    n = len(values)
    mean, sd = mean_sd(values)
    if n < 2:
        return Interval(mean, -math.inf, math.inf, n, level)
    half = t_quantile(0.5 + level / 2.0, n - 1) * sd / math.sqrt(n)
    return Interval(mean, mean - half, mean + half, n, level)


def welch_interval(a: Sequence[float], b: Sequence[float], level: float = LEVEL) -> Interval:
    """Welch's t interval for mean(a) - mean(b) (unbounded unless both have 2+ values)."""
    ma, sa = mean_sd(a)
    mb, sb = mean_sd(b)
    diff = ma - mb
    n = min(len(a), len(b))
    if len(a) < 2 or len(b) < 2:
        return Interval(diff, -math.inf, math.inf, n, level)
    va, vb = sa * sa / len(a), sb * sb / len(b)
    se2 = va + vb
    if se2 == 0.0:
        return Interval(diff, diff, diff, n, level)
    df = se2 * se2 / (va * va / (len(a) - 1) + vb * vb / (len(b) - 1))
    half = t_quantile(0.5 + level / 2.0, df) * math.sqrt(se2)
    return Interval(diff, diff - half, diff + half, n, level)
