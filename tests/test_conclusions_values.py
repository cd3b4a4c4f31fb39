"""Swept values (bnexp.values) and metric kinds (bnexp.metrics): the one identity
and the one spelling of every value, with known answers, and what each metric
is for the statistics over seeds."""

import dataclasses
import math

import pytest

from bnexp import metrics
from bnexp import values as V

NAN, INF = math.nan, math.inf


@pytest.mark.parametrize("text,value", [
    ("1e-3", 0.001), ("1.0E-3", 0.001), (".5", 0.5), (" 2 ", 2.0), ("+1", 1.0)])
def test_strings_that_spell_numbers_are_that_float(text, value):
    got = V.canonical(text)
    assert isinstance(got, float) and got == value


@pytest.mark.parametrize("text", ["inf", "-inf", "+Infinity", "nan", "NaN", "1_000", "", "  ",
                                  "batch", "1e-3x"])
def test_words_float_reads_and_underscores_are_not_numbers(text):
    assert V.canonical(text) == text


def test_canonical_keeps_other_values_and_turns_tuples_into_lists():
    assert V.canonical(("1e-3", 2, ("3",))) == [0.001, 2, [3.0]]
    assert V.canonical(7) == 7 and V.canonical(None) is None and V.canonical(True) is True
    assert V.canonical({"a": "1e-3"}) == {"a": "1e-3"}


@pytest.mark.parametrize("a,b", [
    (1, 1.0), ("1e-3", 0.001), (0.001, "1.0E-3"), (NAN, NAN), ("x", "x"), (None, None),
    (True, True), ([1, "1e-3"], (1.0, 0.001)), ({"a": 1, "b": 2}, {"b": 2, "a": 1}),
    (2 ** 53, 2.0 ** 53), (-3, -3.0)])
def test_same_values(a, b):
    assert V.same(a, b) is True


@pytest.mark.parametrize("a,b", [
    (True, 1), (False, 0), (None, "null"), (None, 0), (1, 2), ("x", "y"), ([1, 2], [1]),
    ([1, 2], [2, 1]), ({"a": 1}, {"a": 2}), (2 ** 53 + 1, 2.0 ** 53), (NAN, 1.0), (True, False),
    ("1", [1]), ({"a": 1}, "{a: 1}")])
def test_different_values(a, b):
    assert V.same(a, b) is False


def test_identity_is_what_same_compares():
    assert V.identity(True) == ("bool", True)
    assert V.identity(None) == ("null",)
    assert V.identity(NAN) == ("num", "nan")
    assert V.identity("1e-3") == ("num", 0.001)
    assert V.identity([1, "a"]) == ("list", (("num", 1.0), ("text", "a")))
    assert V.identity({"b": 2, "a": 1}) == ("map", "{a: 1, b: 2}")
    assert V.identity("batch") == ("text", "batch")
    big = V.identity(2 ** 53 + 1)
    assert big == ("num", 2 ** 53 + 1) and isinstance(big[1], int)


@pytest.mark.parametrize("value,text", [
    (True, "true"), (False, "false"), (None, "null"), (0.001, "0.001"), ("1e-3", "0.001"),
    (1e-5, "1e-05"), (1.0, "1.0"), (0.0, "0.0"), (-2.5, "-2.5"), (7, "7"), ("batch", "batch"),
    ([100, 100], "100x100"), ((0.001, "2"), "0.001x2.0"), ([True, None], "truexnull"),
    ({"a": 1}, "{a: 1}"), ({"b": [1, 2], "a": 1}, "{a: 1, b: [1, 2]}"),
    (NAN, "nan"), (INF, "inf"), (-INF, "-inf"), (0.013593563908785255, "0.013593563908785255")])
def test_label_is_the_one_spelling(value, text):
    assert V.label(value) == text


@pytest.mark.parametrize("value,text", [
    (0.001, "0.001"), ("1e-3", "0.001"), (NAN, "nan"), (INF, "inf"), (-INF, "-inf"),
    (True, "true"), (False, "false"), (None, "null"), ([100, 100], "[100, 100]"),
    ({"a": 1}, "{a: 1}"), (3, "3"), ("batch", "batch"), ("", "''")])
def test_to_text_is_the_exact_csv_cell(value, text):
    assert V.to_text(value) == text


@pytest.mark.parametrize("value", [0.001, 1e-5, 0.1 + 0.2, 3, -4, True, False, None, [1, 2.5],
                                   {"a": 1}, "batch", INF, -INF, NAN, [[1, 2], [3]]])
def test_to_text_and_from_text_round_trip(value):
    back = V.from_text(V.to_text(value))
    assert V.same(back, value)
    assert type(back) is type(V.canonical(value))


@pytest.mark.parametrize("text,value", [
    ("3", 3), ("-4", -4), ("1e-3", 0.001), ("1.0E-3", 0.001), ("0.5", 0.5), ("true", True),
    ("false", False), ("null", None), ("[1, 2]", [1, 2]), ("[1e-3, 2]", [0.001, 2]),
    ("batch", "batch"), ("{a: 1}", {"a": 1}), (" inf ", INF), ("-inf", -INF)])
def test_from_text(text, value):
    got = V.from_text(text)
    assert got == value and type(got) is type(value)


def test_from_text_of_nan_and_of_text_that_is_not_yaml():
    assert math.isnan(V.from_text("nan"))
    assert V.from_text("a: [") == "a: ["
    assert V.from_text("[1, 2") == "[1, 2"


def test_match_names_values_in_any_spelling_or_by_label():
    assert V.match([0.001, 0.01], "1e-3") == [0.001]
    assert V.match([0.001, 0.01], 0.01) == [0.01]
    assert V.match([0.001, 0], 0.001) == [0.001]
    assert V.match([1, 2], 1.0) == [1]
    assert V.match([[100, 100], [50]], "100x100") == [[100, 100]]
    assert V.match([[1, 2], [3]], "[1, 2]") == [[1, 2]]
    assert V.match(["100x100"], [100, 100]) == ["100x100"]
    assert V.match([True, False], "true") == [True]
    assert V.match(["batch", "none"], "batch") == ["batch"]
    assert V.match([0.001, 0.01], "0.1") == []
    assert V.match(["batch"], "none") == []


def test_listing():
    assert V.listing([0.001, 0.01, [2, 3], True]) == "0.001, 0.01, 2x3, true"
    assert V.listing([]) == ""


# --- metric kinds ---------------------------------------------------------------------

@pytest.mark.parametrize("name", ["final_train_acc", "final_test_acc", "best_test_acc",
                                  "train_acc", "test_acc", "test_acc@3", "train_acc@0"])
def test_accuracies_are_proportions_that_diverged_runs_have(name):
    k = metrics.kind(name)
    assert k == metrics.MetricKind((0.0, 1.0), binary=False, with_diverged=True)


def test_diverged_is_a_zero_one_outcome():
    assert metrics.kind("diverged") == metrics.MetricKind((0.0, 1.0), binary=True,
                                                          with_diverged=True)
    assert metrics.kind("failed") == metrics.MEASURED


def test_signed_unit_metrics():
    assert metrics.kind("generalization_gap") == metrics.MetricKind(
        (-1.0, 1.0), binary=False, with_diverged=True)
    # ICS comes from ics.csv for both of its measures: a diverged run has neither.
    assert metrics.kind("ics_cosine") == metrics.MetricKind(
        (-1.0, 1.0), binary=False, with_diverged=False)
    assert not metrics.kind("ics_l2").with_diverged


@pytest.mark.parametrize("name", ["epochs", "seconds", "step_ms"])
def test_counts_and_timings_diverged_runs_have(name):
    assert metrics.kind(name) == metrics.MetricKind((0.0, math.inf), binary=False,
                                                    with_diverged=True)


@pytest.mark.parametrize("name", ["final_test_loss", "final_train_loss", "test_loss@2",
                                  "loss_range", "ics_l2", "input_drift", "nonsense"])
def test_other_metrics_are_measurements_diverged_runs_lack(name):
    k = metrics.kind(name)
    assert k == metrics.MetricKind((0.0, math.inf), binary=False, with_diverged=False)
    assert k.bounds == (0.0, math.inf) and k.binary is False and k.with_diverged is False


def test_metric_kinds_are_frozen_and_hashable():
    k = metrics.kind("final_test_acc")
    with pytest.raises(dataclasses.FrozenInstanceError):
        k.binary = True
    assert hash(k) == hash(metrics.PROPORTION)
    assert metrics.MetricKind((0.0, 1.0)).binary is False
    assert metrics.MetricKind((0.0, 1.0)).with_diverged is True


@pytest.mark.parametrize("text", ["yes", "no", "on", "true", "null", "~", "[1, 2]", ""])
def test_a_word_yaml_reads_otherwise_round_trips_through_a_cell(text):
    cell = V.to_text(text)
    assert V.same(V.from_text(cell), text) and V.from_text(cell) == text
