"""The intervals behind every reported number: Student t, the mean's interval
and Welch's interval, against published tables and (where installed) scipy."""

import math
import random

import pytest

from bnexp import stats

# Two-sided 95% critical values t(0.975, df), as printed in statistics tables.
T_TABLE = {1: 12.7062047, 2: 4.3026527, 3: 3.1824463, 4: 2.7764451, 5: 2.5705818,
           9: 2.2621572, 10: 2.2281389, 30: 2.0422725, 100: 1.9839715}


@pytest.mark.parametrize("df,t", T_TABLE.items())
def test_t_quantile_matches_the_table(df, t):
    assert stats.t_quantile(0.975, df) == pytest.approx(t, abs=5e-7)
    assert stats.t_quantile(0.025, df) == pytest.approx(-t, abs=5e-7)


def test_t_distribution_known_values():
    assert stats.t_cdf(0.0, 3.7) == 0.5
    assert stats.t_cdf(1.0, 1) == pytest.approx(0.75)  # Cauchy: 1/2 + atan(1)/pi
    assert stats.t_quantile(0.975, math.inf) == pytest.approx(1.959963985, abs=1e-8)
    for p in (0.6, 0.9, 0.99, 0.9995):
        assert stats.t_cdf(stats.t_quantile(p, 2.5), 2.5) == pytest.approx(p, abs=1e-12)
    with pytest.raises(ValueError):
        stats.t_quantile(1.0, 3)


def test_against_scipy_for_fractional_degrees_of_freedom():
    sp = pytest.importorskip("scipy.stats")
    rng = random.Random(0)
    for _ in range(50):
        df, p = rng.uniform(0.5, 60), rng.uniform(0.51, 0.9999)
        assert stats.t_quantile(p, df) == pytest.approx(sp.t.ppf(p, df), rel=1e-9)
    for _ in range(50):
        a = [rng.gauss(0, 1) for _ in range(rng.randint(2, 7))]
        b = [rng.gauss(1, 3) for _ in range(rng.randint(2, 7))]
        iv = stats.welch_interval(a, b)
        ref = sp.ttest_ind(a, b, equal_var=False).confidence_interval(0.95)
        assert (iv.lo, iv.hi) == pytest.approx((ref.low, ref.high), rel=1e-9)


def test_mean_interval_by_hand():
    iv = stats.mean_interval([0.90, 0.91, 0.92])
    half = T_TABLE[2] * 0.01 / math.sqrt(3)
    assert (iv.estimate, iv.lo, iv.hi, iv.n) == pytest.approx((0.91, 0.91 - half, 0.91 + half, 3))
    one = stats.mean_interval([0.5])
    assert one.estimate == 0.5 and not one.known and one.n == 1
    flat = stats.mean_interval([0.1, 0.1, 0.1])
    assert (flat.lo, flat.hi) == (0.1, 0.1)
    assert stats.mean_sd([1.0, 2.0, 3.0, 4.0]) == pytest.approx((2.5, math.sqrt(5 / 3)))


def test_welch_interval_by_hand():
    a, b = [1.0, 2.0, 3.0], [2.0, 4.0, 6.0, 8.0]
    va, vb = 1.0 / 3, (20 / 3) / 4
    df = (va + vb) ** 2 / (va ** 2 / 2 + vb ** 2 / 3)
    half = stats.t_quantile(0.975, df) * math.sqrt(va + vb)
    iv = stats.welch_interval(a, b)
    assert (iv.estimate, iv.lo, iv.hi) == pytest.approx((-3.0, -3.0 - half, -3.0 + half))
    same = stats.welch_interval([0.1, 0.1], [0.3, 0.3])
    assert (same.lo, same.hi) == pytest.approx((-0.2, -0.2))
    assert not stats.welch_interval([1.0], [1.0, 2.0]).known
