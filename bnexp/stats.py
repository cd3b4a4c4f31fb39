"""Intervals over seeds: the statistics behind every number a report shows.

A grid point's runs differ only in their seed, so its seeds are a small
sample (3 to 5 values) of what the setting gives. Which interval fits depends
on the metric (``bnexp.metrics`` says what each one is):

- a 0/1 outcome (``diverged``): k of n seeds, the exact Clopper-Pearson
  interval (``proportion_interval``); two of them compared by Newcombe's
  hybrid score interval from Wilson's (``proportion_difference``);
- any other metric: its mean with a Student-t 95% interval
  (``mean_interval``), two points by Welch's t interval for the difference of
  their means (``welch_interval``), which does not assume equal variances;
- a bounded metric (an accuracy in [0, 1]): the interval is cut to the range,
  so it never claims an accuracy above 1;
- seeds that all agree (zero spread) do not make a zero-width interval:
  where the metric is bounded, a variable of mean mu on [lo, hi] gives n values
  all equal to c with probability at most ((mu - lo)/(c - lo))^n (Markov), so
  mu lies in [lo + (c - lo) q, hi - (hi - c) q] with q = (alpha/2)^(1/n);
  for n of n at a bound this is Clopper-Pearson's interval for n of n
  ([0.478, 1] for 5 of 5). Unbounded, the interval stays open on that side.

Student's t and the beta distribution are computed here (regularized
incomplete beta by continued fraction, then bisection for quantiles), so bnexp
needs no scipy; the tests compare them with scipy.
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
    """An estimate with its two-sided interval at ``level``; ``n`` values went in
    (``dropped`` more were left out: diverged runs of a metric they do not have).
    Without enough values for an interval, ``lo``/``hi`` are -inf/+inf."""

    estimate: float
    lo: float
    hi: float
    n: int
    level: float = LEVEL
    dropped: int = 0

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
    try:
        mean = math.fsum(values) / n
    except OverflowError:  # a sum past the float range: divide first
        mean = math.fsum(v / n for v in values)
    if n == 1:
        return mean, 0.0
    try:
        return mean, math.sqrt(math.fsum((v - mean) ** 2 for v in values) / (n - 1))
    except OverflowError:  # squares past the float range (a loss near 1e300): scale first
        scale = max(abs(v - mean) for v in values)
        return mean, scale * math.sqrt(math.fsum(((v - mean) / scale) ** 2 for v in values)
                                       / (n - 1))


Bounds = tuple[float, float]
UNBOUNDED: Bounds = (-math.inf, math.inf)


def beta_quantile(p: float, a: float, b: float) -> float:
    """The ``p`` quantile of the Beta(a, b) distribution (0 <= p <= 1), to about 1e-13."""
    if p <= 0.0:
        return 0.0
    if p >= 1.0:
        return 1.0
    lo, hi = 0.0, 1.0
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if betainc(a, b, mid) < p:
            lo = mid
        else:
            hi = mid
        if hi - lo <= 1e-15:
            break
    return 0.5 * (lo + hi)


def normal_quantile(p: float) -> float:
    """The ``p`` quantile of the standard normal (Student's t with infinite df)."""
    return t_quantile(p, math.inf)


def proportion_interval(values: Sequence[float], level: float = LEVEL) -> Interval:
    """Clopper-Pearson's exact interval for the proportion of ones among 0/1 ``values``."""
    n = len(values)
    k = sum(1 for v in values if v)
    if n == 0:
        return Interval(math.nan, -math.inf, math.inf, 0, level)
    alpha = 1.0 - level
    lo = 0.0 if k == 0 else beta_quantile(alpha / 2.0, k, n - k + 1)
    hi = 1.0 if k == n else beta_quantile(1.0 - alpha / 2.0, k + 1, n - k)
    return Interval(k / n, lo, hi, n, level)


def wilson(k: int, n: int, level: float = LEVEL) -> tuple[float, float]:
    """Wilson's score interval for k of n (n > 0)."""
    z = normal_quantile(0.5 + level / 2.0)
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return max(0.0, centre - half), min(1.0, centre + half)


def proportion_difference(a: Sequence[float], b: Sequence[float],
                          level: float = LEVEL) -> Interval:
    """Newcombe's hybrid score interval (his method 10) for the difference of
    the proportions of ones in 0/1 samples ``a`` and ``b``."""
    n1, n2 = len(a), len(b)
    if not n1 or not n2:
        return Interval(math.nan, -math.inf, math.inf, min(n1, n2), level)
    k1, k2 = sum(1 for v in a if v), sum(1 for v in b if v)
    p1, p2 = k1 / n1, k2 / n2
    l1, u1 = wilson(k1, n1, level)
    l2, u2 = wilson(k2, n2, level)
    d = p1 - p2
    lo = d - math.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2)
    hi = d + math.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2)
    return Interval(d, max(-1.0, lo), min(1.0, hi), min(n1, n2), level)


def _clip(iv: Interval, bounds: Bounds) -> Interval:
    lo, hi = bounds
    return Interval(iv.estimate, min(max(iv.lo, lo), hi), max(min(iv.hi, hi), lo), iv.n,
                    iv.level, iv.dropped)


def mean_interval(values: Sequence[float], level: float = LEVEL,
                  bounds: Bounds = UNBOUNDED) -> Interval:
    """Interval for the mean of ``values``, a metric within ``bounds``: Student's t,
    cut to the bounds; where every value is the same (no spread), the bounded
    interval of the module docstring. Unbounded for fewer than 2 values unless
    the bounds give one."""
    n = len(values)
    mean, sd = mean_sd(values)
    if n == 0:
        return Interval(mean, -math.inf, math.inf, 0, level)
    if sd == 0.0:
        lo, hi = bounds
        q = ((1.0 - level) / 2.0) ** (1.0 / n)
        c = min(max(mean, lo), hi)
        return Interval(mean, lo + (c - lo) * q if math.isfinite(lo) else -math.inf,
                        hi - (hi - c) * q if math.isfinite(hi) else math.inf, n, level)
    half = t_quantile(0.5 + level / 2.0, n - 1) * sd / math.sqrt(n)
    return _clip(Interval(mean, mean - half, mean + half, n, level), bounds)


def welch_interval(a: Sequence[float], b: Sequence[float], level: float = LEVEL,
                   bounds: Bounds = UNBOUNDED) -> Interval:
    """Welch's t interval for mean(a) - mean(b), a metric within ``bounds``, cut
    to the differences the bounds allow. Where either sample has no spread,
    Welch's interval would take its mean as known; the two samples' own
    intervals at level 1 - alpha/2 each (Bonferroni) are combined instead.
    Unbounded unless both have 2+ values or the bounds give one."""
    ma, sa = mean_sd(a)
    mb, sb = mean_sd(b)
    diff = ma - mb
    n = min(len(a), len(b))
    lo, hi = bounds
    span = (lo - hi, hi - lo)
    if not a or not b:
        return Interval(diff, -math.inf, math.inf, n, level)
    if sa == 0.0 or sb == 0.0 or len(a) < 2 or len(b) < 2:
        half = 1.0 - (1.0 - level) / 2.0
        ia, ib = mean_interval(a, half, bounds), mean_interval(b, half, bounds)
        return _clip(Interval(diff, ia.lo - ib.hi, ia.hi - ib.lo, n, level), span)
    va, vb = sa * sa / len(a), sb * sb / len(b)
    se2 = va + vb
    df = se2 * se2 / (va * va / (len(a) - 1) + vb * vb / (len(b) - 1))
    half = t_quantile(0.5 + level / 2.0, df) * math.sqrt(se2)
    return _clip(Interval(diff, diff - half, diff + half, n, level), span)
