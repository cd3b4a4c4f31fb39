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
    assert stats.mean_sd([1.0, 2.0, 3.0, 4.0]) == pytest.approx((2.5, math.sqrt(5 / 3)))


def test_seeds_that_agree_do_not_make_a_zero_width_interval():
    # Unbounded: nothing is known from no spread.
    flat = stats.mean_interval([0.1, 0.1, 0.1])
    assert (flat.lo, flat.hi) == (-math.inf, math.inf)
    # Bounded in [0, 1]: 5 of 5 seeds at 1 is Clopper-Pearson's 5 of 5, [0.478, 1] ...
    top = stats.mean_interval([1.0] * 5, bounds=(0.0, 1.0))
    assert (top.lo, top.hi) == pytest.approx((0.4781762, 1.0), abs=1e-7)
    assert (top.lo, top.hi) == pytest.approx(
        (stats.proportion_interval([1] * 5).lo, 1.0), rel=1e-12)
    assert stats.mean_interval([0.0] * 5, bounds=(0.0, 1.0)).hi == pytest.approx(1 - 0.4781762,
                                                                                abs=1e-7)
    # ... and at an interior value c: [c q, 1 - (1 - c) q] with q = 0.025^(1/n).
    q = 0.025 ** (1 / 3)
    mid = stats.mean_interval([0.1] * 3, bounds=(0.0, 1.0))
    assert (mid.lo, mid.hi) == pytest.approx((0.1 * q, 1 - 0.9 * q))
    # Bounded below only (a loss): open above.
    loss = stats.mean_interval([2.0] * 4, bounds=(0.0, math.inf))
    assert loss.lo == pytest.approx(2.0 * 0.025 ** 0.25) and loss.hi == math.inf


def test_bounded_intervals_stay_in_their_range():
    acc = [0.999, 0.90, 0.70]
    free = stats.mean_interval(acc)
    assert free.hi > 1  # Student's t alone runs past 1
    cut = stats.mean_interval(acc, bounds=(0.0, 1.0))
    assert (cut.lo, cut.hi) == (free.lo, 1.0)
    low = stats.mean_interval([0.001, 0.3, 0.1], bounds=(0.0, 1.0))
    assert low.lo == 0.0 and low.hi == stats.mean_interval([0.001, 0.3, 0.1]).hi
    d = stats.welch_interval([0.99, 0.5, 0.98], [0.01, 0.4, 0.02], bounds=(0.0, 1.0))
    assert -1.0 <= d.lo and d.hi == 1.0 and stats.welch_interval(
        [0.99, 0.5, 0.98], [0.01, 0.4, 0.02]).hi > 1.0


def test_welch_interval_by_hand():
    a, b = [1.0, 2.0, 3.0], [2.0, 4.0, 6.0, 8.0]
    va, vb = 1.0 / 3, (20 / 3) / 4
    df = (va + vb) ** 2 / (va ** 2 / 2 + vb ** 2 / 3)
    half = stats.t_quantile(0.975, df) * math.sqrt(va + vb)
    iv = stats.welch_interval(a, b)
    assert (iv.estimate, iv.lo, iv.hi) == pytest.approx((-3.0, -3.0 - half, -3.0 + half))
    # No spread in either sample: each sample's own interval at 97.5%, combined.
    same = stats.welch_interval([0.1, 0.1], [0.3, 0.3], bounds=(0.0, 1.0))
    q = 0.0125 ** 0.5
    assert (same.estimate, same.lo, same.hi) == pytest.approx(
        (-0.2, 0.1 * q - (1 - 0.7 * q), (1 - 0.9 * q) - 0.3 * q))
    assert not stats.welch_interval([0.1, 0.1], [0.3, 0.3]).known
    assert not stats.welch_interval([1.0], [1.0, 2.0]).known


def test_beta_quantile_against_scipy():
    sp = pytest.importorskip("scipy.stats")
    rng = random.Random(1)
    for _ in range(60):
        a, b, p = rng.uniform(0.5, 12), rng.uniform(0.5, 12), rng.uniform(0.001, 0.999)
        assert stats.beta_quantile(p, a, b) == pytest.approx(sp.beta.ppf(p, a, b), abs=1e-11)


def test_proportion_intervals_against_scipy():
    sp = pytest.importorskip("scipy.stats")
    for n in range(1, 13):
        for k in range(n + 1):
            values = [1] * k + [0] * (n - k)
            iv = stats.proportion_interval(values)
            ref = sp.binomtest(k, n).proportion_ci(0.95, method="exact")
            assert (iv.estimate, iv.lo, iv.hi, iv.n) == pytest.approx(
                (k / n, ref.low, ref.high, n), abs=1e-10)
            w = sp.binomtest(k, n).proportion_ci(0.95, method="wilson")
            assert stats.wilson(k, n) == pytest.approx((w.low, w.high), abs=1e-10)


def test_proportion_interval_known_answers():
    five = stats.proportion_interval([1, 1, 1, 1, 1])  # the 5 of 5: [0.478, 1]
    assert (five.estimate, five.lo, five.hi) == pytest.approx((1.0, 0.4781762, 1.0), abs=1e-7)
    none = stats.proportion_interval([0, 0, 0, 0, 0])
    assert (none.lo, none.hi) == pytest.approx((0.0, 0.5218238), abs=1e-7)
    one = stats.proportion_interval([1, 0, 0, 0, 0])
    assert (one.lo, one.hi) == pytest.approx((0.0050508, 0.7164179), abs=1e-7)


@pytest.mark.parametrize("k1,n1,k2,n2,lo,hi", [
    # Newcombe (1998), Statistics in Medicine 17:873-890, Table II, method 10.
    (56, 70, 48, 80, 0.0524, 0.3339),
    (9, 10, 3, 10, 0.1705, 0.8090),
    (0, 10, 0, 20, -0.1611, 0.2775),
    (10, 10, 0, 20, 0.6791, 1.0),
])
def test_difference_of_proportions_is_newcombes(k1, n1, k2, n2, lo, hi):
    iv = stats.proportion_difference([1] * k1 + [0] * (n1 - k1), [1] * k2 + [0] * (n2 - k2))
    assert iv.estimate == pytest.approx(k1 / n1 - k2 / n2)
    assert (iv.lo, iv.hi) == pytest.approx((lo, hi), abs=6e-5)


def test_difference_of_proportions_from_scipys_wilson_intervals():
    sp = pytest.importorskip("scipy.stats")
    for k1, n1, k2, n2 in [(6, 7, 2, 7), (5, 56, 0, 29), (5, 5, 0, 5), (3, 5, 2, 5), (0, 3, 3, 3)]:
        w1 = sp.binomtest(k1, n1).proportion_ci(0.95, method="wilson")
        w2 = sp.binomtest(k2, n2).proportion_ci(0.95, method="wilson")
        p1, p2 = k1 / n1, k2 / n2
        lo = p1 - p2 - math.sqrt((p1 - w1.low) ** 2 + (w2.high - p2) ** 2)
        hi = p1 - p2 + math.sqrt((w1.high - p1) ** 2 + (p2 - w2.low) ** 2)
        iv = stats.proportion_difference([1] * k1 + [0] * (n1 - k1), [1] * k2 + [0] * (n2 - k2))
        assert (iv.lo, iv.hi) == pytest.approx((max(lo, -1), min(hi, 1)), abs=1e-10)


@pytest.mark.parametrize("values", [[9.58e304, 4.47e287], [1.7e308, 1.6e308, -1.0e308],
                                    [1e300, 3e300, 2e300, 5e299]])
def test_mean_and_sd_of_values_near_the_float_limit_are_finite_and_right(values):
    """A run that did not diverge can still end with a loss near 1e300 (float64):
    its squares, or the plain sum, pass the float range (an OverflowError that
    crashed `bnexp sweep weight_scale` at 2 epochs)."""
    from fractions import Fraction

    mean, sd = stats.mean_sd(values)
    exact = [Fraction(v) for v in values]
    m = sum(exact) / len(exact)
    var = sum((v - m) ** 2 for v in exact) / (len(exact) - 1)
    assert mean == pytest.approx(float(m), rel=1e-12)
    assert sd == pytest.approx(math.sqrt(float(var / Fraction(10) ** 600)) * 1e300, rel=1e-12)
    iv = stats.mean_interval(values)
    assert iv.lo <= mean <= iv.hi


def test_a_sweep_summary_with_a_loss_near_the_float_limit_is_written():
    from bnexp.sweep.summary import aggregate_rows

    rows = [{"k": "a", "status": "completed", "final_train_loss": v, "final_test_loss": v,
             "final_train_acc": 0.1, "final_test_acc": 0.1, "best_test_acc": 0.1,
             "epochs": 2, "seconds": 1.0} for v in (9.58e304, 4.47e287)]
    (agg,) = aggregate_rows(["k"], rows)
    assert math.isfinite(agg["final_train_loss_std"]) and agg["final_train_loss_std"] > 6e304
