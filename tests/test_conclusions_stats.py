"""The statistics behind every conclusion (bnexp.stats), against scipy where it
has the same function and against hand-computed answers elsewhere: the
special functions over wide parameter ranges, every interval's edge cases
(no values, one value, no spread, bounds), other levels than 95%, and the
fields an interval carries."""

import math

import pytest

from bnexp import stats

sp = pytest.importorskip("scipy.stats")
special = pytest.importorskip("scipy.special")

INF = math.inf

# (a, b, x) spanning both sides of the continued fraction's switch point
# x = (a + 1) / (a + b + 2), small and large shapes, tails close to 0 and 1.
BETA_CASES = [(a, b, x) for a in (0.5, 1.0, 2.5, 10.0, 50.0, 200.0)
              for b in (0.5, 2.0, 7.0, 100.0) for x in (1e-6, 0.01, 0.2, 0.5, 0.8, 0.99, 0.999999)]


@pytest.mark.parametrize("a,b,x", BETA_CASES)
def test_betainc_against_scipy(a, b, x):
    want = special.betainc(a, b, x)
    assert stats.betainc(a, b, x) == pytest.approx(want, rel=1e-9, abs=1e-14)


def test_betainc_far_tails_are_relatively_exact():
    """Tiny values are right to their relative precision, not just close to 0."""
    for a, b, x in [(200.0, 2.0, 0.3), (100.0, 100.0, 0.2), (5.0, 0.5, 0.01), (50.0, 50.0, 0.1)]:
        want = special.betainc(a, b, x)
        assert want < 1e-10
        assert stats.betainc(a, b, x) == pytest.approx(want, rel=1e-9)
        # and their mirror images, close to 1
        assert 1.0 - stats.betainc(b, a, 1.0 - x) == pytest.approx(want, rel=1e-3, abs=1e-16)


def test_betainc_outside_the_unit_interval():
    assert stats.betainc(2.0, 3.0, 0.0) == 0.0
    assert stats.betainc(2.0, 3.0, -0.5) == 0.0
    assert stats.betainc(2.0, 3.0, 1.0) == 1.0
    assert stats.betainc(2.0, 3.0, 1.5) == 1.0
    assert stats.betainc(1.0, 1.0, 0.3) == pytest.approx(0.3, rel=1e-14)  # uniform


@pytest.mark.parametrize("df", [0.5, 1.0, 2.0, 3.5, 10.0, 100.0, 1e4])
@pytest.mark.parametrize("t", [-40.0, -2.5, -0.5, 0.3, 1.0, 2.0, 40.0])
def test_t_cdf_against_scipy(t, df):
    assert stats.t_cdf(t, df) == pytest.approx(sp.t.cdf(t, df), rel=1e-9, abs=1e-15)


@pytest.mark.parametrize("t", [-3.0, -1.0, 0.0, 0.5, 2.0])
def test_t_cdf_with_infinite_df_is_the_normal(t):
    assert stats.t_cdf(t, INF) == pytest.approx(sp.norm.cdf(t), rel=1e-12, abs=1e-16)
    assert stats.t_cdf(0.0, 7.0) == 0.5


@pytest.mark.parametrize("df", [1.0, 2.0, 3.5, 30.0, INF])
@pytest.mark.parametrize("p", [1e-6, 0.025, 0.3, 0.5, 0.7, 0.975, 0.999999])
def test_t_quantile_against_scipy(p, df):
    want = sp.norm.ppf(p) if math.isinf(df) else sp.t.ppf(p, df)
    got = stats.t_quantile(p, df)
    assert got == pytest.approx(want, rel=1e-9, abs=1e-12)
    if p == 0.5:
        assert got == 0.0


@pytest.mark.parametrize("p", [0.0, 1.0, -0.1, 1.5])
def test_t_quantile_outside_0_1_is_refused(p):
    with pytest.raises(ValueError, match=rf"^p={p} must be in \(0, 1\)$"):
        stats.t_quantile(p, 3.0)


def test_normal_quantile():
    assert stats.normal_quantile(0.975) == pytest.approx(1.959963984540054, rel=1e-11)
    assert stats.normal_quantile(0.05) == pytest.approx(-1.6448536269514722, rel=1e-11)


@pytest.mark.parametrize("a,b", [(0.5, 0.5), (1.0, 4.0), (3.0, 1.0), (20.0, 30.0), (1.0, 200.0)])
@pytest.mark.parametrize("p", [1e-6, 0.0125, 0.5, 0.9875, 0.999999])
def test_beta_quantile_against_scipy(p, a, b):
    assert stats.beta_quantile(p, a, b) == pytest.approx(sp.beta.ppf(p, a, b), abs=1e-12)


def test_beta_quantile_at_and_beyond_the_ends():
    assert stats.beta_quantile(0.0, 2.0, 3.0) == 0.0
    assert stats.beta_quantile(-1.0, 2.0, 3.0) == 0.0
    assert stats.beta_quantile(1.0, 2.0, 3.0) == 1.0
    assert stats.beta_quantile(2.0, 2.0, 3.0) == 1.0


def test_mean_sd():
    assert all(math.isnan(x) for x in stats.mean_sd([]))
    m, s = stats.mean_sd([2])
    assert (m, s) == (2.0, 0.0) and isinstance(m, float)
    assert stats.mean_sd([0.1, 0.1, 0.1]) == (0.1, 0.0)  # exactly 0.1, not fsum / 3
    assert stats.mean_sd([1.0, 2.0, 3.0, 4.0]) == pytest.approx((2.5, 1.2909944487358056),
                                                                rel=1e-15)
    assert stats.mean_sd([1.0, 3.0]) == pytest.approx((2.0, math.sqrt(2.0)), rel=1e-15)
    assert stats.mean_sd([-1.0, 1.0, 3.0]) == pytest.approx((1.0, 2.0), rel=1e-15)


def test_interval_fields():
    iv = stats.Interval(0.5, 0.1, 0.9, 4)
    assert (iv.level, iv.dropped, iv.known) == (0.95, 0, True)
    assert not stats.Interval(0.5, -INF, 0.9, 4).known
    assert not stats.Interval(0.5, 0.1, INF, 4).known
    assert stats.LEVEL == 0.95


@pytest.mark.parametrize("level", [0.95, 0.9, 0.99])
def test_proportion_interval_at_other_levels(level):
    for n, k in [(5, 0), (5, 2), (5, 5), (12, 7), (1, 1), (1, 0)]:
        iv = stats.proportion_interval([1] * k + [0] * (n - k), level)
        ref = sp.binomtest(k, n).proportion_ci(level, method="exact")
        assert (iv.estimate, iv.lo, iv.hi, iv.n, iv.level) == pytest.approx(
            (k / n, ref.low, ref.high, n, level), abs=1e-10)
        assert iv.dropped == 0


def test_proportion_interval_counts_truthy_values_and_of_nothing_is_unknown():
    iv = stats.proportion_interval([1.0, 0.0, 2.0, 0.0])  # two nonzero of four
    assert iv.estimate == 0.5 and iv.n == 4
    empty = stats.proportion_interval([], 0.9)
    assert math.isnan(empty.estimate) and (empty.lo, empty.hi, empty.n, empty.level) == (
        -INF, INF, 0, 0.9)


@pytest.mark.parametrize("level", [0.9, 0.99])
def test_wilson_at_other_levels(level):
    for k, n in [(0, 4), (1, 4), (4, 4), (3, 11)]:
        w = sp.binomtest(k, n).proportion_ci(level, method="wilson")
        lo, hi = stats.wilson(k, n, level)
        assert (lo, hi) == pytest.approx((w.low, w.high), abs=1e-10)
        assert 0.0 <= lo <= hi <= 1.0


def test_proportion_difference_fields_levels_and_empty_samples():
    a, b = [1, 1, 1, 0], [0, 0, 1, 0, 0, 0]
    for level in (0.9, 0.95):
        iv = stats.proportion_difference(a, b, level)
        w1 = sp.binomtest(3, 4).proportion_ci(level, method="wilson")
        w2 = sp.binomtest(1, 6).proportion_ci(level, method="wilson")
        p1, p2 = 0.75, 1 / 6
        lo = p1 - p2 - math.sqrt((p1 - w1.low) ** 2 + (w2.high - p2) ** 2)
        hi = p1 - p2 + math.sqrt((w1.high - p1) ** 2 + (p2 - w2.low) ** 2)
        assert (iv.estimate, iv.lo, iv.hi, iv.n, iv.level) == pytest.approx(
            (p1 - p2, lo, hi, 4, level), abs=1e-10)
    # the difference of all ones and all zeros reaches the ends +-1, never beyond
    top = stats.proportion_difference([1] * 9, [0] * 9)
    assert top.hi == 1.0 and top.estimate == 1.0 and 0.0 < top.lo < 1.0
    bottom = stats.proportion_difference([0] * 9, [1] * 9)
    assert bottom.lo == -1.0 and bottom.estimate == -1.0 and -1.0 < bottom.hi < 0.0
    for x, y in [([], [1, 0]), ([1, 0, 1], [])]:
        e = stats.proportion_difference(x, y, 0.9)
        assert math.isnan(e.estimate) and (e.lo, e.hi, e.n, e.level) == (-INF, INF, 0, 0.9)


@pytest.mark.parametrize("level", [0.9, 0.95, 0.99])
def test_mean_interval_is_students_t(level):
    values = [0.3, 1.7, 2.2, 0.9, 1.4]
    ref = sp.t.interval(level, len(values) - 1, loc=sp.tmean(values), scale=sp.sem(values))
    iv = stats.mean_interval(values, level)
    assert (iv.estimate, iv.lo, iv.hi, iv.n, iv.level, iv.dropped) == pytest.approx(
        (1.3, ref[0], ref[1], 5, level, 0), rel=1e-10)
    two = stats.mean_interval([1.0, 2.0], level)
    half = sp.t.ppf(0.5 + level / 2, 1) * math.sqrt(0.5) / math.sqrt(2)
    assert (two.lo, two.hi) == pytest.approx((1.5 - half, 1.5 + half), rel=1e-10)


def test_mean_interval_is_cut_to_the_bounds_on_both_sides():
    iv = stats.mean_interval([0.0, 0.02, 0.5], bounds=(0.0, 1.0))
    half = sp.t.ppf(0.975, 2) * sp.sem([0.0, 0.02, 0.5])
    assert iv.lo == 0.0 and iv.hi == pytest.approx(0.52 / 3 + half, rel=1e-10)
    assert iv.estimate == pytest.approx(0.52 / 3)
    iv = stats.mean_interval([0.5, 0.98, 1.0], bounds=(0.0, 1.0))
    assert iv.hi == 1.0 and 0.0 < iv.lo < 0.5
    iv = stats.mean_interval([-0.9, 0.95, -0.2], bounds=(-1.0, 1.0))
    assert (iv.lo, iv.hi) == (-1.0, 1.0)
    # an interval wholly outside the bounds collapses onto the nearer bound
    iv = stats._clip(stats.Interval(5.0, 2.0, 3.0, 3, 0.9, 2), (0.0, 1.0))
    assert (iv.estimate, iv.lo, iv.hi, iv.n, iv.level, iv.dropped) == (5.0, 1.0, 1.0, 3, 0.9, 2)
    iv = stats._clip(stats.Interval(-5.0, -3.0, -2.0, 3), (0.0, 1.0))
    assert (iv.lo, iv.hi) == (0.0, 0.0)


@pytest.mark.parametrize("level", [0.95, 0.9])
@pytest.mark.parametrize("n", [1, 2, 3, 5])
def test_no_spread_gives_the_bounded_markov_interval(n, level):
    q = ((1 - level) / 2) ** (1 / n)
    iv = stats.mean_interval([0.25] * n, level, (0.0, 1.0))
    assert (iv.estimate, iv.lo, iv.hi, iv.n, iv.level) == pytest.approx(
        (0.25, 0.25 * q, 1 - 0.75 * q, n, level), rel=1e-12)
    # bounded below only (a loss, a count): open above
    iv = stats.mean_interval([3.0] * n, level, (0.0, INF))
    assert iv.lo == pytest.approx(3.0 * q, rel=1e-12) and iv.hi == INF
    # bounded above only
    iv = stats.mean_interval([-3.0] * n, level, (-INF, 0.0))
    assert iv.lo == -INF and iv.hi == pytest.approx(-3.0 * q, rel=1e-12)
    # on [-1, 1]
    iv = stats.mean_interval([0.5] * n, level, (-1.0, 1.0))
    assert (iv.lo, iv.hi) == pytest.approx((-1 + 1.5 * q, 1 - 0.5 * q), rel=1e-12)
    # a value outside the bounds is taken at the nearer bound
    iv = stats.mean_interval([1.5] * n, level, (0.0, 1.0))
    assert iv.estimate == 1.5 and (iv.lo, iv.hi) == pytest.approx((q, 1.0), rel=1e-12)
    iv = stats.mean_interval([-0.5] * n, level, (0.0, 1.0))
    assert (iv.lo, iv.hi) == pytest.approx((0.0, 1 - q), rel=1e-12)


def test_mean_interval_of_nothing_and_of_one_unbounded_value():
    e = stats.mean_interval([], 0.9, (0.0, 1.0))
    assert math.isnan(e.estimate) and (e.lo, e.hi, e.n, e.level) == (-INF, INF, 0, 0.9)
    one = stats.mean_interval([4.0])
    assert (one.estimate, one.lo, one.hi, one.n) == (4.0, -INF, INF, 1)


@pytest.mark.parametrize("level", [0.9, 0.95, 0.99])
def test_welch_interval_against_scipy(level):
    a, b = [0.91, 0.88, 0.95, 0.90], [0.70, 0.82, 0.64]
    ref = sp.ttest_ind(a, b, equal_var=False).confidence_interval(level)
    iv = stats.welch_interval(a, b, level)
    assert (iv.estimate, iv.lo, iv.hi, iv.n, iv.level) == pytest.approx(
        (sum(a) / 4 - sum(b) / 3, ref.low, ref.high, 3, level), rel=1e-10)
    # the same two samples the other way round: the interval mirrors
    back = stats.welch_interval(b, a, level)
    assert (back.lo, back.hi) == pytest.approx((-ref.high, -ref.low), rel=1e-10)


def test_welch_interval_is_cut_to_the_differences_the_bounds_allow():
    a, b = [0.99, 0.2, 0.95], [0.0, 0.01, 0.4]
    ref = sp.ttest_ind(a, b, equal_var=False).confidence_interval(0.95)
    assert ref.high > 1.0 or ref.low < -1.0
    iv = stats.welch_interval(a, b, bounds=(0.0, 1.0))
    assert (iv.lo, iv.hi) == pytest.approx((max(ref.low, -1.0), min(ref.high, 1.0)), rel=1e-10)
    iv = stats.welch_interval(b, a, bounds=(0.0, 1.0))
    assert (iv.lo, iv.hi) == pytest.approx((max(-ref.high, -1.0), min(-ref.low, 1.0)), rel=1e-10)
    # a lower bound only: the difference is unbounded either way
    iv = stats.welch_interval(a, b, bounds=(0.0, INF))
    assert (iv.lo, iv.hi) == pytest.approx((ref.low, ref.high), rel=1e-10)


@pytest.mark.parametrize("level", [0.95, 0.9])
def test_welch_without_spread_combines_bonferroni_intervals(level):
    """One sample without spread (or of one value): each sample's own interval at
    1 - alpha/2, combined; cut to [-1, 1] for a metric in [0, 1]."""
    a, b = [0.9, 0.92, 0.97], [0.1, 0.1, 0.1]
    half_level = 1 - (1 - level) / 2
    ia = stats.mean_interval(a, half_level, (0.0, 1.0))
    ib = stats.mean_interval(b, half_level, (0.0, 1.0))
    iv = stats.welch_interval(a, b, level, (0.0, 1.0))
    assert (iv.estimate, iv.lo, iv.hi, iv.n, iv.level) == pytest.approx(
        (sum(a) / 3 - 0.1, ia.lo - ib.hi, ia.hi - ib.lo, 3, level), rel=1e-12)
    ta = sp.t.interval(half_level, 2, loc=sum(a) / 3, scale=sp.sem(a))
    assert (ia.lo, ia.hi) == pytest.approx((ta[0], min(ta[1], 1.0)), rel=1e-10)
    # the same with the flat sample first
    iv = stats.welch_interval(b, a, level, (0.0, 1.0))
    assert (iv.lo, iv.hi) == pytest.approx((ib.lo - ia.hi, ib.hi - ia.lo), rel=1e-12)
    # one value against several: the same construction
    one, many = [0.5], [0.2, 0.3, 0.35]
    i1 = stats.mean_interval(one, half_level, (0.0, 1.0))
    i2 = stats.mean_interval(many, half_level, (0.0, 1.0))
    iv = stats.welch_interval(one, many, level, (0.0, 1.0))
    assert (iv.lo, iv.hi, iv.n) == pytest.approx((i1.lo - i2.hi, i1.hi - i2.lo, 1), rel=1e-12)
    iv = stats.welch_interval(many, one, level, (0.0, 1.0))
    assert (iv.lo, iv.hi) == pytest.approx((i2.lo - i1.hi, i2.hi - i1.lo), rel=1e-12)
    # all ones against all zeros: [q, 1] minus [0, 1 - q], at most 1
    iv = stats.welch_interval([1.0] * 5, [0.0] * 5, level, (0.0, 1.0))
    q = ((1 - half_level) / 2) ** (1 / 5)
    assert iv.estimate == 1.0 and iv.hi == 1.0 and iv.lo == pytest.approx(2 * q - 1, rel=1e-12)


def test_welch_of_an_empty_sample_is_unknown():
    for a, b in [([], [1.0, 2.0]), ([1.0, 2.0], [])]:
        iv = stats.welch_interval(a, b, 0.9, (0.0, 1.0))
        assert (iv.lo, iv.hi, iv.n, iv.level) == (-INF, INF, 0, 0.9)
        assert math.isnan(iv.estimate)


def test_welch_on_a_signed_metric_allows_differences_up_to_the_range():
    """A metric in [-1, 1] (a generalization gap) differs by at most 2 either way."""
    a, b = [0.9, 0.8, 0.95], [-0.8, -0.6, -0.9]
    ref = sp.ttest_ind(a, b, equal_var=False).confidence_interval(0.95)
    iv = stats.welch_interval(a, b, bounds=(-1.0, 1.0))
    assert 1.0 < ref.low and ref.high < 2.0
    assert (iv.lo, iv.hi) == pytest.approx((ref.low, ref.high), rel=1e-10)
    iv = stats.welch_interval(b, a, bounds=(-1.0, 1.0))
    assert (iv.lo, iv.hi) == pytest.approx((-ref.high, -ref.low), rel=1e-10)
    wide = stats.welch_interval([0.99, 0.2, 0.95], [-0.99, -0.2, -0.95], bounds=(-1.0, 1.0))
    assert wide.hi == 2.0 and wide.lo < 0.5
