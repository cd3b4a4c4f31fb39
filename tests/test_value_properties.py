"""Property-based checks of values' one identity and one spelling (hypothesis):
any finite float, in any of the spellings a user types, is one value; its label
reads back as exactly that float; CSV cells round-trip every kind of value."""

import math

import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import given  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from bnexp import values as V  # noqa: E402

finite = st.floats(allow_nan=False, allow_infinity=False)


@given(finite)
def test_the_label_reads_back_exactly(x):
    assert float(V.label(x)) == x
    assert V.same(V.from_text(V.label(x)), x)


@given(finite)
def test_every_spelling_of_a_number_names_it_and_only_it(x):
    grid = [x, math.nextafter(x, math.inf), math.nextafter(x, -math.inf)]
    for spelled in (repr(x), f"{x:.17e}", f"{x:.17E}", f"{x:.17g}"):
        assert V.match(grid, spelled) == [x]


@given(st.integers(min_value=-(10 ** 30), max_value=10 ** 30))
def test_an_integer_is_the_float_of_the_same_number_where_that_float_is_exact(n):
    assert V.same(n, float(n)) == (int(float(n)) == n)
    assert V.same(V.from_text(V.to_text(n)), n)


values = st.recursive(
    st.none() | st.booleans() | finite | st.integers(-1000, 1000)
    | st.text(alphabet="abcdefxyz01 .-_", max_size=8),
    lambda inner: st.lists(inner, max_size=3), max_leaves=6)


@given(values)
def test_csv_cells_round_trip(v):
    assert V.same(V.from_text(V.to_text(v)), v)


@given(st.lists(finite, min_size=1, max_size=6, unique=True))
def test_distinct_floats_have_distinct_labels(xs):
    xs = [0.0 if x == 0 else x for x in xs]  # -0.0 and 0.0 are one value
    if len(set(xs)) == len(xs):
        assert len({V.label(x) for x in xs}) == len(xs)
