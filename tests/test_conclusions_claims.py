"""Claims as checks (bnexp.claims) with known answers: how numbers print, each
per-run metric from its files, selections and their errors, each statistic,
each comparison at its edges, ``each``, the verdict, filled notes, and every
validation message. Runs are built in memory (RunRecord) or as small folders."""

import math
from pathlib import Path

import pytest

from bnexp import claims, stats
from bnexp.choices import PLOT_KINDS, PLOT_METRICS, PLOT_STATS, SUMMARY_METRICS
from bnexp.claims import ClaimError, Table
from bnexp.store import (
    DIAGNOSTIC_COLUMNS,
    ICS_COLUMNS,
    LANDSCAPE_COLUMNS,
    METRIC_COLUMNS,
    RunRecord,
    StoreError,
    csv_text,
)

INF, NAN = math.inf, math.nan
Interval = stats.Interval


# --- numbers as the page shows them ------------------------------------------------

@pytest.mark.parametrize("x,text", [
    (3, "3"), (3.0, "3"), (-2.0, "-2"), (0.0, "0"), (0, "0"), (999999.0, "999999"),
    (1e6, "1e+06"), (0.5, "0.500"), (-0.5, "-0.500"), (0.01, "0.010"), (-0.01, "-0.010"),
    (0.00999, "0.00999"), (9.999, "9.999"), (10.5, "10.5"), (-10.5, "-10.5"),
    (1234.5, "1.23e+03"), (0.000123456, "0.000123"), (INF, "inf"), (-INF, "-inf"),
    (NAN, "nan")])
def test_fmt(x, text):
    assert claims.fmt(x) == text


@pytest.mark.parametrize("iv,text", [
    (Interval(0.5, 0.4, 0.6, 3), "0.500 [0.400, 0.600]"),
    (Interval(0.5, 0.4, 0.6, 3, dropped=2), "0.500 [0.400, 0.600] (n = 3, 2 diverged left out)"),
    (Interval(NAN, -INF, INF, 0), "- (no runs)"),
    (Interval(NAN, -INF, INF, 0, dropped=1), "- (all 1 runs diverged)"),
    (Interval(0.5, -INF, INF, 1), "0.500 (no interval: n = 1)"),
    (Interval(0.5, -INF, INF, 1, dropped=1), "0.500 (no interval: n = 1, 1 diverged left out)"),
    (Interval(0.5, 0.4, INF, 2), "0.500 [0.400, inf]"),
    (Interval(0.5, -INF, 0.6, 2), "0.500 [-inf, 0.600]"),
])
def test_fmt_interval(iv, text):
    assert claims.fmt_interval(iv) == text


@pytest.mark.parametrize("name,ok", [
    ("final_test_acc", True), ("seconds", True), ("diverged", True), ("step_ms", True),
    ("test_acc@3", True), ("train_loss@0", True), ("test_acc@", False), ("test_acc@x", False),
    ("acc@3", False), ("final_test_acc@3", False), ("test_acc3", False), ("accuracy", False),
    (3, False), (None, False)])
def test_valid_metric(name, ok):
    assert claims.valid_metric(name) is ok


# --- per-run values ------------------------------------------------------------------

def run(tmp_path, status="completed", train=0.9, test=0.7, run_id="r", values=None, **info):
    path = Path(tmp_path) / run_id
    path.mkdir(parents=True, exist_ok=True)
    final = {"epoch": 2, "train_acc": train, "test_acc": test, "train_loss": 0.5,
             "test_loss": 0.6}
    return RunRecord(run_id, path, values or {}, 0, {"status": status, "final": final,
                                                     "best_test_acc": 0.8, **info})


def write(r, name, rows, columns):
    (r.path / name).write_text(csv_text(rows, columns))


def diag(step, layer, p15, p50, p85):
    return {"step": step, "epoch": 0, "layer": layer, "p15": 0, "p50": 0, "p85": 0, "mean": 0,
            "std": 1, "unit_p15": p15, "unit_p50": p50, "unit_p85": p85, "grad_norm": 1}


def test_run_values_of_the_summary_and_extra_metrics(tmp_path):
    r = run(tmp_path, step_seconds=0.0125, variance_shift=1.5)
    assert claims.run_value(r, "final_test_acc") == 0.7
    assert claims.run_value(r, "final_train_acc") == 0.9
    assert claims.run_value(r, "best_test_acc") == 0.8
    assert claims.run_value(r, "epochs") == 2.0
    assert claims.run_value(r, "diverged") == 0.0
    assert claims.run_value(r, "step_ms") == 12.5
    assert claims.run_value(r, "variance_shift") == 1.5
    assert claims.run_value(r, "generalization_gap") == pytest.approx(0.2)
    assert claims.run_value(r, "seconds") is None
    for m in ("input_spread_growth", "input_drift", "loss_range", "ics_l2", "test_acc@1"):
        assert claims.run_value(r, m) is None  # no files
    d = run(tmp_path, "diverged", run_id="d")
    assert claims.run_value(d, "diverged") == 1.0
    assert claims.run_value(d, "step_ms") is None and claims.run_value(d, "variance_shift") is None
    for status in ("failed", "running", "pending", "interrupted"):
        assert claims.run_value(run(tmp_path, status, run_id=status), "final_test_acc") is None
        assert claims.run_value(run(tmp_path, status, run_id=status), "diverged") is None
    assert claims.run_value(run(tmp_path, test=None, run_id="t"), "generalization_gap") is None
    assert claims.run_value(run(tmp_path, train=None, run_id="u"), "generalization_gap") is None


def test_run_values_after_an_epoch(tmp_path):
    r = run(tmp_path)
    write(r, "metrics.csv", [{"epoch": e, "step": e, "train_loss": 2.0 - e, "train_acc": 0.1 * e,
                              "test_loss": 3.0 - e, "test_acc": 0.2 * e, "elapsed": 0.0}
                             for e in (0, 1, 2)], METRIC_COLUMNS)
    assert claims.run_value(r, "test_acc@1") == 0.2
    assert claims.run_value(r, "train_loss@2") == 0.0
    assert claims.run_value(r, "test_loss@0") == 3.0
    assert claims.run_value(r, "test_acc@3") is None


def test_input_spread_growth_and_drift_of_the_last_layers_unit(tmp_path):
    r = run(tmp_path)
    rows = [diag(20, 2, 0.0, 2.0, 4.0), diag(0, 2, 1.0, 1.5, 2.0), diag(10, 2, 0.0, 0.5, 3.0),
            diag(0, 1, 0.0, 9.0, 100.0), diag(20, 1, 0.0, -9.0, 1.0)]
    write(r, "diagnostics.csv", rows, DIAGNOSTIC_COLUMNS)
    # layer 2 by step: spreads 1, 3, 4 and medians 1.5, 0.5, 2.0
    assert claims.run_value(r, "input_spread_growth") == 4.0
    assert claims.run_value(r, "input_drift") == pytest.approx(((1.0 + 1.5) / 2) / (8 / 3))
    one = run(tmp_path, run_id="one")
    write(one, "diagnostics.csv", [diag(0, 1, 1.0, 2.0, 3.0)], DIAGNOSTIC_COLUMNS)
    assert claims.run_value(one, "input_spread_growth") == 1.0
    assert claims.run_value(one, "input_drift") is None  # one step: no move
    flat = run(tmp_path, run_id="flat")
    write(flat, "diagnostics.csv", [diag(0, 1, 1.0, 1.0, 1.0), diag(5, 1, 0.0, 2.0, 3.0)],
          DIAGNOSTIC_COLUMNS)
    assert claims.run_value(flat, "input_spread_growth") is None  # from zero spread
    assert claims.run_value(flat, "input_drift") == pytest.approx(1.0 / 1.5)
    still = run(tmp_path, run_id="still")
    write(still, "diagnostics.csv", [diag(0, 1, 1.0, 1.0, 1.0), diag(5, 1, 2.0, 2.0, 2.0)],
          DIAGNOSTIC_COLUMNS)
    assert claims.run_value(still, "input_drift") is None
    empty = run(tmp_path, run_id="empty")
    write(empty, "diagnostics.csv", [], DIAGNOSTIC_COLUMNS)
    assert claims.run_value(empty, "input_spread_growth") is None
    assert claims.run_value(empty, "input_drift") is None


def land(step, eta, loss, change, norm):
    return {"step": step, "epoch": 0, "eta": eta, "loss": loss, "grad_change": change,
            "grad_norm": norm}


def test_landscape_metrics(tmp_path):
    r = run(tmp_path)
    rows = [land(0, 0.1, 2.0, 1.0, 2.0), land(0, 0.5, 1.0, 3.0, 2.0), land(0, 1.0, 5.0, INF, 2.0),
            land(10, 0.1, 1.0, 0.2, 4.0), land(10, 0.2, 1.5, 0.8, 4.0),
            land(20, 0.1, NAN, 1.0, 1.0)]
    write(r, "landscape.csv", rows, LANDSCAPE_COLUMNS)
    # step 0 keeps etas 0.1 and 0.5 (the infinite probe is left out); step 20 has none
    assert claims.run_value(r, "loss_range") == pytest.approx((1.0 + 0.5) / 2)
    assert claims.run_value(r, "grad_predictiveness") == pytest.approx((1.5 + 0.2) / 2)
    assert claims.run_value(r, "beta_smoothness") == pytest.approx(
        (max(1.0 / 0.2, 3.0 / 1.0) + max(0.2 / 0.4, 0.8 / 0.8)) / 2)
    zero = run(tmp_path, run_id="zero")
    write(zero, "landscape.csv", [land(0, 0.1, 1.0, 0.5, 0.0), land(0, 0.2, 3.0, 0.5, 0.0)],
          LANDSCAPE_COLUMNS)
    assert claims.run_value(zero, "grad_predictiveness") is None
    assert claims.run_value(zero, "beta_smoothness") is None
    assert claims.run_value(zero, "loss_range") == 2.0
    none = run(tmp_path, run_id="none")
    write(none, "landscape.csv", [land(0, 0.1, NAN, 0.5, 1.0)], LANDSCAPE_COLUMNS)
    assert claims.run_value(none, "loss_range") is None


def test_ics_metrics_leave_out_the_first_layer(tmp_path):
    r = run(tmp_path)
    rows = [{"step": s, "epoch": 0, "layer": layer, "l2": l2, "cosine": cos}
            for s, layer, l2, cos in [(0, 1, 9.0, -1.0), (0, 2, 0.5, 0.9), (0, 3, 1.5, 0.5),
                                      (5, 2, NAN, 0.1), (5, 3, 1.0, NAN)]]
    write(r, "ics.csv", rows, ICS_COLUMNS)
    assert claims.run_value(r, "ics_l2") == pytest.approx(1.0)
    assert claims.run_value(r, "ics_cosine") == pytest.approx(0.5)
    first = run(tmp_path, run_id="first")
    write(first, "ics.csv", rows[:1], ICS_COLUMNS)
    assert claims.run_value(first, "ics_l2") is None


# --- selections ----------------------------------------------------------------------

AXES = [("model.norm", ["batch", "none"]), ("train.lr", [0.001, 0.01])]


def runs_of(tmp_path, accs, axes=AXES, status=None):
    """RunRecords with final accuracies ``accs[(v1, v2)] = [seed0, ...]``."""
    out = []
    for key, vals in accs.items():
        for seed, acc in enumerate(vals):
            st = (status or {}).get((*key, seed), "completed")
            rid = "-".join(map(str, key)) + f"-s{seed}"
            out.append(run(tmp_path, st, train=acc, test=acc, run_id=rid,
                           values=dict(zip([k for k, _ in axes], key))))
    return out


@pytest.fixture
def grid(tmp_path):
    accs = {("batch", 0.001): [0.90, 0.92, 0.94], ("batch", 0.01): [0.80, 0.70, 0.75],
            ("none", 0.001): [0.40, 0.45, 0.50], ("none", 0.01): [0.10, 0.12, 0.14]}
    return Table(AXES, (), runs_of(tmp_path, accs))


def test_skeleton_has_one_point_per_grid_point_and_zipped_keys_vary_together():
    t = Table.skeleton([("a", [1, 2]), ("b", ["x", "y"])], ())
    assert [r.values for r in t.runs] == [{"a": 1, "b": "x"}, {"a": 1, "b": "y"},
                                          {"a": 2, "b": "x"}, {"a": 2, "b": "y"}]
    assert [r.run_id for r in t.runs] == ["point0", "point1", "point2", "point3"]
    z = Table.skeleton([("a", [1, 2]), ("b", [10, 20]), ("c", ["p", "q"])], ("b", "c"))
    assert [r.values for r in z.runs] == [{"a": 1, "b": 10, "c": "p"}, {"a": 1, "b": 20, "c": "q"},
                                          {"a": 2, "b": 10, "c": "p"}, {"a": 2, "b": 20, "c": "q"}]
    assert z.keys() == ["a", "b", "c"] and z.axis("b") == [10, 20] and z.zipped == ("b", "c")


def test_resolve_names_values_in_any_spelling(grid):
    assert grid.resolve({"train.lr": "1e-3", "model.norm": "none"}, "w") == {
        "train.lr": "0.001", "model.norm": "none"}
    assert grid.resolve(None, "w") == {} and grid.resolve({}, "w") == {}
    with pytest.raises(ClaimError) as exc:
        grid.resolve({"train.bs": 2}, "w")
    assert exc.value.errors == ["w.train.bs: not a swept key (swept: model.norm, train.lr)"]
    with pytest.raises(ClaimError) as exc:
        grid.resolve({"train.lr": 0.1}, "w.a")
    assert str(exc.value) == "w.a.train.lr: 0.1 is not a value of the sweep (values: 0.001, 0.01)"


def test_points_and_labels(grid):
    pts = grid.points({"model.norm": "batch"})
    assert list(pts) == [("batch", "0.001"), ("batch", "0.01")]
    assert [len(v) for v in pts.values()] == [3, 3]
    assert list(grid.points({})) == [("batch", "0.001"), ("batch", "0.01"), ("none", "0.001"),
                                     ("none", "0.01")]
    assert grid.points({"model.norm": "layer"}) == {}
    assert grid.labels_of("train.lr", {}) == ["0.001", "0.01"]
    assert grid.labels_of("model.norm", {"train.lr": "0.01"}) == ["batch", "none"]
    assert grid.labels_of("train.lr", {"model.norm": "layer"}) == []


def test_one_point_and_its_errors(grid):
    runs = grid.one_point({"model.norm": "none", "train.lr": "0.01"}, "w")
    assert sorted(r.info["final"]["test_acc"] for r in runs) == [0.10, 0.12, 0.14]
    with pytest.raises(ClaimError) as exc:
        grid.one_point({"model.norm": "batch"}, "w")
    assert exc.value.errors == ["w: model.norm=batch leaves train.lr free; fix it (in where, "
                                "a/b, each or across)"]
    with pytest.raises(ClaimError) as exc:
        grid.one_point({}, "w")
    assert exc.value.errors == ["w: the selection leaves model.norm, train.lr free; fix them "
                                "(in where, a/b, each or across)"]
    with pytest.raises(ClaimError) as exc:
        grid.one_point({"model.norm": "layer", "train.lr": "0.01"}, "w")
    assert exc.value.errors == ["w: no runs at model.norm=layer, train.lr=0.01"]


def test_values_leave_out_diverged_runs_only_for_metrics_they_lack(tmp_path):
    accs = {("batch", 0.001): [0.9, 0.8, 0.7, 0.6]}
    rs = runs_of(tmp_path, accs, status={("batch", 0.001, 1): "diverged",
                                         ("batch", 0.001, 2): "failed"})
    rs[3].info["final"]["test_acc"] = NAN  # not finite: left out
    rs[3].info["final"]["test_loss"] = INF
    t = Table(AXES, (), rs)
    assert t.values(rs, "final_test_acc") == ([0.9, 0.8], 0)
    assert t.values(rs, "final_test_loss") == ([0.6], 1)
    assert t.values(rs, "diverged") == ([0.0, 1.0, 0.0], 0)
    iv = t.interval(rs, "final_test_loss")
    assert (iv.estimate, iv.n, iv.dropped) == (0.6, 1, 1)
    assert iv.lo == pytest.approx(0.6 * 0.025) and iv.hi == INF
    iv = t.interval(rs, "diverged", 0.9)
    ref = stats.proportion_interval([0.0, 1.0, 0.0], 0.9)
    assert iv == ref
    # values are cached per run and metric
    assert t._cache[(rs[0].run_id, "final_test_acc")] == 0.9


def test_difference_fits_the_metric(tmp_path):
    a = runs_of(tmp_path, {("batch", 0.001): [0.9, 0.8, 0.95]},
                status={("batch", 0.001, 0): "diverged"})
    b = runs_of(tmp_path, {("none", 0.001): [0.5, 0.6, 0.4]},
                status={("none", 0.001, 1): "diverged", ("none", 0.001, 2): "diverged"})
    t = Table(AXES, (), a + b)
    d = t.difference(a, b, "diverged", 0.9)
    assert d == stats.proportion_difference([1.0, 0.0, 0.0], [0.0, 1.0, 1.0], 0.9)
    w = t.difference(a, b, "final_test_acc")
    assert w == stats.welch_interval([0.9, 0.8, 0.95], [0.5, 0.6, 0.4], bounds=(0.0, 1.0))
    loss = t.difference(a, b, "final_test_loss")
    assert loss.dropped == 3 and loss.n == 1


def test_mean_of():
    assert claims.mean_of([1.0, 0.0, 1.0], "diverged") == stats.proportion_interval([1, 0, 1])
    assert claims.mean_of([0.5, 0.6], "final_test_acc", 0.9) == stats.mean_interval(
        [0.5, 0.6], 0.9, (0.0, 1.0))
    assert claims.mean_of([0.5, 0.5], "final_test_loss") == stats.mean_interval(
        [0.5, 0.5], bounds=(0.0, INF))


# --- checks --------------------------------------------------------------------------

IV = Interval(0.6, 0.5, 0.7, 3)
NEG = Interval(-0.6, -0.7, -0.5, 3)
MID = Interval(0.0, -0.5, 0.5, 3)


@pytest.mark.parametrize("iv,spec,criterion,outcome", [
    (IV, {"above": 0.49}, "above 0.490", "holds"),
    (IV, {"above": 0.5}, "above 0.500", "inconclusive"),
    (IV, {"above": 0.69}, "above 0.690", "inconclusive"),
    (IV, {"above": 0.7}, "above 0.700", "does not hold"),
    (IV, {"above": 1}, "above 1", "does not hold"),
    (IV, {"below": 0.71}, "below 0.710", "holds"),
    (IV, {"below": 0.7}, "below 0.700", "inconclusive"),
    (IV, {"below": 0.51}, "below 0.510", "inconclusive"),
    (IV, {"below": 0.5}, "below 0.500", "does not hold"),
    (IV, {"within": 0.7}, "within ±0.700", "holds"),
    (IV, {"within": 0.69}, "within ±0.690", "inconclusive"),
    (IV, {"within": 0.5}, "within ±0.500", "inconclusive"),
    (IV, {"within": 0.49}, "within ±0.490", "does not hold"),
    (NEG, {"within": 0.7}, "within ±0.700", "holds"),
    (NEG, {"within": 0.69}, "within ±0.690", "inconclusive"),
    (NEG, {"within": 0.5}, "within ±0.500", "inconclusive"),
    (NEG, {"within": 0.49}, "within ±0.490", "does not hold"),
    (MID, {"within": 0.5}, "within ±0.500", "holds"),
    (MID, {"within": 0.49}, "within ±0.490", "inconclusive"),
])
def test_compare_at_the_edges(iv, spec, criterion, outcome):
    assert claims._compare(iv, spec) == (criterion, outcome)


def test_margin_and_level():
    assert claims._margin(IV, {"above": 0.4}) == pytest.approx(0.1)
    assert claims._margin(IV, {"below": 0.9}) == pytest.approx(0.2)
    assert claims._margin(NEG, {"within": 0.8}) == pytest.approx(0.1)
    assert claims._margin(Interval(0, -0.2, 0.3, 3), {"within": 0.5}) == pytest.approx(0.2)
    assert claims._level(1) == 0.95 and claims._level(0) == 0.95
    assert claims._level(4) == pytest.approx(1 - 0.05 / 4)


def test_check_result_shown_and_changed():
    r = claims.CheckResult("t", None, "mean", "m", IV, "above 0.5", "holds", None)
    assert (r.shown, r.changed) == ("holds (new)", False)
    r = claims.CheckResult("t", None, "mean", "m", IV, "above 0.5", "holds", "holds")
    assert (r.shown, r.changed) == ("holds", False)
    r = claims.CheckResult("t", None, "mean", "m", IV, "above 0.5", "inconclusive", "holds")
    assert (r.shown, r.changed) == ("inconclusive (published: holds)", True)
    assert r.detail == ""


def spec(**kw):
    return {"text": "t", **kw}


def test_mean_and_difference_checks(grid):
    r = claims.evaluate_check(grid, spec(id="x", mean="final_test_acc", where={
        "model.norm": "batch", "train.lr": "1e-3"}, above=0.8, expect="holds"), "c")
    assert r.interval == stats.mean_interval([0.90, 0.92, 0.94], bounds=(0.0, 1.0))
    assert (r.text, r.id, r.stat, r.metric, r.criterion, r.outcome, r.expect, r.detail) == (
        "t", "x", "mean", "final_test_acc", "above 0.800", "holds", "holds",
        "model.norm=batch, train.lr=0.001")
    r = claims.evaluate_check(grid, spec(difference="final_test_acc", where={"train.lr": 0.01},
                                         a={"model.norm": "batch"}, b={"model.norm": "none"},
                                         above=0.5), "c")
    assert r.interval == stats.welch_interval([0.80, 0.70, 0.75], [0.10, 0.12, 0.14],
                                              bounds=(0.0, 1.0))
    assert r.detail == ("train.lr=0.01, model.norm=batch minus train.lr=0.01, model.norm=none")
    assert r.outcome == "holds" and r.id is None and r.expect is None


def test_spread_and_count(grid):
    lvl = 1 - 0.05 / 2
    ia = stats.mean_interval([0.90, 0.92, 0.94], lvl, (0.0, 1.0))
    ib = stats.mean_interval([0.80, 0.70, 0.75], lvl, (0.0, 1.0))
    iv, detail = claims.statistic(grid, spec(spread="final_test_acc", across="train.lr",
                                             where={"model.norm": "batch"}), "v")
    assert (iv.estimate, iv.lo, iv.hi, iv.n) == pytest.approx(
        (0.92 - 0.75, max(0.0, ia.lo - ib.hi), ia.hi - ib.lo, 3))
    assert detail == "train.lr over 2 values"
    # counts over the four points of norm x lr with where fixing nothing: count by norm
    iv, detail = claims.statistic(grid, spec(count="final_test_acc", across="model.norm",
                                             where={"train.lr": "0.001"}, at_least=0.44), "v")
    ja = stats.mean_interval([0.90, 0.92, 0.94], lvl, (0.0, 1.0))
    jb = stats.mean_interval([0.40, 0.45, 0.50], lvl, (0.0, 1.0))
    assert jb.lo < 0.44 <= jb.estimate < jb.hi and ja.lo >= 0.44
    assert (iv.estimate, iv.lo, iv.hi, iv.n) == (2.0, 1.0, 2.0, 3)
    assert detail == "of 2 model.norm values: batch, none"
    iv, detail = claims.statistic(grid, spec(count="final_test_acc", across="model.norm",
                                             where={"train.lr": "0.001"}, at_most=0.46), "v")
    assert (iv.estimate, iv.lo, iv.hi) == (1.0, 0.0, 1.0)
    assert detail == "of 2 model.norm values: none"
    iv, detail = claims.statistic(grid, spec(count="final_test_acc", across="model.norm",
                                             where={"train.lr": "0.001"}, at_most=0.2), "v")
    assert (iv.estimate, iv.lo, iv.hi) == (0.0, 0.0, 0.0)
    assert detail == "of 2 model.norm values: none"
    iv, detail = claims.statistic(grid, spec(count="final_test_acc", across="model.norm",
                                             where={"train.lr": "0.001"}, at_least=0.95), "v")
    assert (iv.estimate, iv.lo, iv.hi) == (0.0, 0.0, 1.0) and detail.endswith("values: none")
    with pytest.raises(ClaimError) as exc:
        claims.statistic(Table(AXES, (), []), spec(count="final_test_acc", across="model.norm",
                                                   where={"train.lr": "0.001"}, at_most=1), "v")
    assert exc.value.errors == ["v: no runs at train.lr=0.001"]


def test_each_decides_by_the_worst_point_and_shows_it(grid):
    s = spec(mean="final_test_acc", where={"model.norm": "batch"}, each="train.lr", above=0.5)
    r = claims.evaluate_check(grid, s, "c")
    lvl = 1 - 0.05 / 2
    weak = stats.mean_interval([0.80, 0.70, 0.75], lvl, (0.0, 1.0))
    assert r.outcome == "holds" and r.interval == weak and r.criterion == "above 0.500"
    assert r.detail == ("at each train.lr (2); shown: train.lr=0.01: model.norm=batch, "
                        "train.lr=0.01")
    r = claims.evaluate_check(grid, {**s, "above": 0.93}, "c")
    assert r.outcome == "does not hold" and r.interval == weak
    r = claims.evaluate_check(grid, {**s, "above": 0.85}, "c")  # both inconclusive
    assert r.outcome == "inconclusive" and r.interval == weak
    r = claims.evaluate_check(grid, {**s, "above": 0.75}, "c")  # 0.01 is inconclusive
    assert r.outcome == "inconclusive" and "train.lr=0.01:" in r.detail
    r = claims.evaluate_check(grid, {**{k: v for k, v in s.items() if k != "above"}, "below": 0.995}, "c")
    strong = stats.mean_interval([0.90, 0.92, 0.94], lvl, (0.0, 1.0))
    assert r.outcome == "holds" and r.interval == strong  # the one nearest 0.995
    r = claims.evaluate_check(grid, spec(difference="final_test_acc", each="train.lr",
                                         a={"model.norm": "batch"}, b={"model.norm": "none"},
                                         within=0.9, id="d", expect="holds"), "c")
    assert r.outcome == "holds" and r.id == "d" and r.expect == "holds"
    assert r.stat == "difference" and r.text == "t"
    assert r.detail.startswith("at each train.lr (2); shown: train.lr=0.01: ")  # nearer 0.9
    with pytest.raises(ClaimError) as exc:
        claims.evaluate_check(Table(AXES, (), grid.runs[:3]), {**s, "where": {
            "model.norm": "none"}}, "c")
    assert exc.value.errors == ["c: no runs at model.norm=none"]


def test_verdict_counts():
    def results(*outcomes):
        return [claims.CheckResult("t", None, "mean", "m", IV, "", o, None) for o in outcomes]
    assert claims.verdict(results("holds")) == "holds"
    assert claims.verdict(results("does not hold")) == "does not hold"
    assert claims.verdict(results("holds", "does not hold")) == "partly holds"
    assert claims.verdict(results("holds", "holds", "inconclusive")) == "inconclusive"
    assert claims.verdict(results("does not hold", "does not hold", "inconclusive")) == \
        "inconclusive"
    assert claims.verdict([]) == "inconclusive"


def test_evaluate_names_values_and_fills_notes(grid):
    report = {"checks": [spec(id="bn", mean="final_test_acc", where={
        "model.norm": "batch", "train.lr": 0.001}, above=0.8)],
        "values": {"none": {"mean": "final_test_acc", "where": {"model.norm": "none",
                                                                 "train.lr": 0.01}}},
        "notes": "BN {bn}; none {none.estimate} ({none.n} seeds, {none.lo} to {none.hi})."}
    res = claims.evaluate(report, grid)
    bn = stats.mean_interval([0.90, 0.92, 0.94], bounds=(0.0, 1.0))
    none = stats.mean_interval([0.10, 0.12, 0.14], bounds=(0.0, 1.0))
    assert res.values == {"none": none, "bn": bn}
    assert res.verdict == "holds" and [c.outcome for c in res.checks] == ["holds"]
    assert res.notes == (f"BN {claims.fmt_interval(bn)}; none 0.120 (3 seeds, "
                         f"{claims.fmt(none.lo)} to {claims.fmt(none.hi)}).")
    assert res.changes() == []
    res = claims.evaluate({**report, "notes": None,
                           "checks": [{**report["checks"][0], "expect": "does not hold"}]}, grid)
    assert res.notes is None and [c.id for c in res.changes()] == ["bn"]
    assert claims.evaluate({"checks": []}, grid) is None
    assert claims.evaluate({}, grid) is None


def test_fill():
    named = {"x": Interval(0.5, 0.4, 0.6, 3, dropped=1)}
    assert claims.fill("{x}|{x.estimate}|{x.lo}|{x.hi}|{x.n}|{x.foo}|{{x}}", named) == (
        "0.500 [0.400, 0.600] (n = 3, 1 diverged left out)|0.500|0.400|0.600|3|{x.foo}|"
        "{0.500 [0.400, 0.600] (n = 3, 1 diverged left out)}")
    assert claims._placeholders("a {x.lo} {y} {{z}} {w:.2f}") == ["x", "y", "w"]


# --- validation ----------------------------------------------------------------------

KEYS = [("model.norm", ["batch", "none"]), ("train.lr", [0.001, 0.01])]
OK = {"text": "t", "mean": "final_test_acc", "where": {"model.norm": "batch", "train.lr": 0.01},
      "above": 0.5}


def errors(report):
    return claims.validate(report, KEYS)


def one_check(**kw):
    return errors({"checks": [{k: v for k, v in {**OK, **kw}.items() if v is not None}]})


def test_valid_sections_have_no_errors():
    assert errors(None) == []
    assert errors({}) == []
    assert errors({"title": "T", "checks": [OK], "values": {"v": {
        "spread": "final_test_acc", "across": "train.lr", "where": {"model.norm": "batch"}}},
        "notes": "{v} {v.lo}", "metrics": ["final_test_acc"],
        "figures": [{"kind": "grid", "x": "train.lr", "metric": "test_acc", "stat": "best",
                     "filters": ["model.norm=batch"], "layer": 2, "band": "sd"}]}) == []
    assert one_check(id="ok_1", expect="holds") == []
    assert one_check(above=None, within=0.5, expect="does not hold") == []


def test_report_level_errors():
    assert errors(3) == ["report: got 3, expected a mapping of keys (title, source, claim, "
                         "checks, values, notes, metrics, figures)"]
    assert errors({"command": ["x"]}) == ["report.command: the command is recorded when the "
                                          "sweep runs; remove it"]
    assert errors({"title": 3, "notes": ["x"]}) == ["report.title: expected text",
                                                    "report.notes: expected text"]
    assert errors({"source": 1, "claim": 2}) == ["report.source: expected text",
                                                 "report.claim: expected text"]
    assert errors({"checks": {}}) == ["report.checks: expected a list of checks"]
    assert errors({"values": []}) == ["report.values: expected a mapping of names to statistics"]
    assert errors({"values": {"1x": {"mean": "final_test_acc", "where": {
        "model.norm": "batch", "train.lr": 0.01}}}}) == [
        "report.values.1x: expected a name like bn_small"]
    assert errors({"checks": [{**OK, "id": "v"}], "values": {"v": {
        "mean": "final_test_acc", "where": OK["where"]}}}) == [
        "report: v: named twice (check ids and values share one namespace)"]
    assert errors({"checks": [{**OK, "id": "c"}, {**OK, "id": "c"}]}) == [
        "report: c: named twice (check ids and values share one namespace)"]
    (msg,) = errors({"notes": "{x!}"})
    assert msg.startswith("report.notes: bad placeholder (") and msg.endswith(
        "); write {name} or {name.estimate}, and {{ }} for braces")
    assert errors({"checks": [{**OK, "id": "c"}], "notes": "{c.lo} {d}"}) == [
        "report.notes: {d} names no check id or value"]


def test_figure_errors():
    keys = "model.norm, train.lr"
    figs = [3, {"kind": "pie"}, {"colour": 1}, {"metric": "acc"}, {"stat": "mean"},
            {"x": "lr"}, {"panels": "model.norm", "lines": "x"}, {"filters": "a=b"},
            {"filters": ["ab"]}, {"layer": True}, {"layer": "2"}, {"band": "se"}]
    allowed = "kind, panels, lines, x, y, metric, stat, filters, layer, band"
    assert errors({"figures": figs}) == [
        f"report.figures[0]: expected a mapping of plot options ({allowed})",
        f"report.figures[1].kind: got 'pie', expected one of {', '.join(PLOT_KINDS)}",
        f"report.figures[2].colour: unknown option (expected {allowed})",
        f"report.figures[3].metric: got 'acc', expected one of {', '.join(PLOT_METRICS)}",
        f"report.figures[4].stat: got 'mean', expected one of {', '.join(PLOT_STATS)}",
        f"report.figures[5].x: got 'lr', expected a swept key ({keys})",
        f"report.figures[6].lines: got 'x', expected a swept key ({keys})",
        "report.figures[7].filters: expected a list of key=value",
        "report.figures[8].filters: expected a list of key=value",
        "report.figures[9].layer: expected an integer",
        "report.figures[10].layer: expected an integer",
        "report.figures[11].band: got 'se', expected ci or sd"]
    assert errors({"figures": {}}) == ["report.figures: expected a list of figure options"]
    assert errors({"metrics": ["final_test_acc", "acc", 3]}) == [
        f"report.metrics: got acc, 3 in the list, expected only {', '.join(SUMMARY_METRICS)} "
        "(the table's columns)"]


W = "report.checks[0]"
ALLOWED = ("text, id, mean, difference, spread, count, where, a, b, each, across, at_least, "
           "at_most, above, below, within, expect")


@pytest.mark.parametrize("change,messages", [
    ({"colour": 1}, [f"{W}.colour: unknown key (expected {ALLOWED})"]),
    ({"spread": "final_test_acc"}, [f"{W}: expected exactly one statistic of mean, difference, "
                                    "spread, count"]),
    ({"mean": None}, [f"{W}: expected exactly one statistic of mean, difference, spread, count"]),
    ({"mean": "acc@2"}, [f"{W}.mean: got 'acc@2', expected a metric: {claims.metric_names()}"]),
    ({"where": ["model.norm"]}, [f"{W}.where: expected a mapping of swept keys to values"]),
    ({"a": {"model.norm": "batch"}}, [f"{W}: a and b belong to difference"]),
    ({"b": 3}, [f"{W}.b: expected a mapping of swept keys to values",
                f"{W}: a and b belong to difference"]),
    ({"mean": None, "difference": "final_test_acc", "a": {"model.norm": "batch"}},
     [f"{W}: difference needs a and b (the two selections)"]),
    ({"each": "lr"}, [f"{W}.each: got 'lr', expected a swept key (model.norm, train.lr)"]),
    ({"across": "train.lr"}, [f"{W}: across belongs to spread and count (use each: KEY for "
                              "'at every value')"]),
    ({"mean": None, "spread": "final_test_acc"},
     [f"{W}: spread needs across: KEY (the swept key it runs over)"]),
    ({"mean": None, "count": "final_test_acc", "across": "train.lr", "each": "train.lr"},
     [f"{W}: each belongs to mean and difference",
      f"{W}: count needs one of at_least: T or at_most: T"]),
    ({"mean": None, "count": "final_test_acc", "across": "train.lr", "at_least": 1,
      "at_most": 2}, [f"{W}: count needs one of at_least: T or at_most: T"]),
    ({"at_most": 0.5}, [f"{W}: at_most belongs to count"]),
    ({"above": True}, [f"{W}.above: got True, expected a finite number"]),
    ({"above": "1"}, [f"{W}.above: got '1', expected a finite number"]),
    ({"above": math.inf}, [f"{W}.above: got inf, expected a finite number"]),
    ({"mean": None, "count": "final_test_acc", "across": "train.lr", "at_least": math.nan},
     [f"{W}.at_least: got nan, expected a finite number"]),
    ({"below": 0.5}, [f"{W}: expected exactly one of above: X, below: X, within: X"]),
    ({"above": None}, [f"{W}: expected exactly one of above: X, below: X, within: X"]),
    ({"text": None}, [f"{W}.text: expected the statement this check tests"]),
    ({"text": "  "}, [f"{W}.text: expected the statement this check tests"]),
    ({"text": 3}, [f"{W}.text: expected the statement this check tests"]),
    ({"expect": "held"}, [f"{W}.expect: got 'held', expected one of holds, does not hold, "
                          "inconclusive"]),
    ({"expect": "partly holds"}, [f"{W}.expect: got 'partly holds', expected one of holds, "
                                  "does not hold, inconclusive"]),
    ({"id": "not a name"}, [f"{W}.id: got 'not a name', expected a name like bn_small"]),
    ({"id": 3}, [f"{W}.id: got 3, expected a name like bn_small"]),
])
def test_check_errors(change, messages):
    assert one_check(**change) == messages


def test_a_check_that_is_not_a_mapping_and_values_with_check_keys():
    (msg,) = errors({"checks": ["x"]})
    assert msg == ("report.checks[0]: expected a mapping (e.g. {mean: final_test_acc, "
                   "where: {...}, above: 0.9})")
    assert errors({"values": {"v": {"mean": "final_test_acc", "where": OK["where"],
                                    "above": 1}}}) == [
        "report.values.v.above: unknown key (expected mean, difference, spread, count, where, "
        "a, b, across, at_least, at_most)"]


def test_selections_are_checked_on_the_grid_or_the_runs(grid):
    assert errors({"checks": [{**OK, "where": {"model.norm": "batch"}}]}) == [
        f"{W}: model.norm=batch leaves train.lr free; fix it (in where, a/b, each or across)"]
    assert errors({"checks": [{**OK, "where": {"model.norm": "group", "train.lr": 0.01}}]}) == [
        f"{W}.where.model.norm: group is not a value of the sweep (values: batch, none)"]
    assert one_check(mean=None, difference="final_test_acc", where={"train.lr": 0.01},
                     a={"model.norm": "batch"}, b={"model.norm": "x"}) == [
        f"{W}.b.model.norm: x is not a value of the sweep (values: batch, none)"]
    assert errors({"values": {"v": {"mean": "final_test_acc", "where": {"train.lr": 0.1}}}}) == [
        "report.values.v.where.train.lr: 0.1 is not a value of the sweep (values: 0.001, 0.01)"]
    each = {**OK, "where": {"model.norm": "batch"}, "each": "train.lr"}
    assert errors({"checks": [each]}) == []
    assert errors({"checks": [{**each, "where": {}}]}) == [
        f"{W}: train.lr=0.001 leaves model.norm free; fix it (in where, a/b, each or across)"]
    # with the runs: the statistics are computed; a damaged file is one line
    assert claims.validate({"checks": [OK]}, KEYS, grid) == []
    bad = grid.runs[0]
    (bad.path / "ics.csv").write_text("step\n1\n")
    assert claims.validate({"checks": [{**OK, "mean": "ics_l2", "where": {
        "model.norm": "batch", "train.lr": 0.001}}]}, KEYS, grid) == [
        f"{W}: {bad.path / 'ics.csv'}: missing column(s) epoch, layer, l2, cosine (damaged, or "
        "written by another program)"]
    with pytest.raises(StoreError):
        claims.run_value(bad, "ics_l2")


def test_every_verdict_is_one_of_the_verdicts():
    def results(*outcomes):
        return [claims.CheckResult("t", None, "mean", "m", IV, "", o, None) for o in outcomes]
    got = {claims.verdict(results(*o)) for o in [("holds",), ("does not hold",),
                                                 ("holds", "does not hold"), ("inconclusive",)]}
    assert got == set(claims.VERDICTS) and len(claims.VERDICTS) == 4
    assert set(claims.OUTCOMES) == {"holds", "does not hold", "inconclusive"}


def test_drift_with_a_spread_below_one(tmp_path):
    r = run(tmp_path, run_id="narrow")
    write(r, "diagnostics.csv", [diag(0, 1, 0.0, 0.0, 0.5), diag(5, 1, 0.25, 0.25, 0.75)],
          DIAGNOSTIC_COLUMNS)
    assert claims.run_value(r, "input_drift") == pytest.approx(0.5)
    assert claims.run_value(r, "input_spread_growth") == pytest.approx(1.0)


def test_a_count_has_the_smallest_number_of_runs_of_its_points(tmp_path):
    accs = {("batch", 0.001): [0.90, 0.92, 0.94], ("none", 0.001): [0.40, 0.45]}
    t = Table(AXES, (), runs_of(tmp_path, accs))
    iv, _ = claims.statistic(t, spec(count="final_test_acc", across="model.norm",
                                     where={"train.lr": 0.001}, at_least=0.1), "v")
    assert iv.n == 2
    iv, _ = claims.statistic(t, spec(spread="final_test_acc", across="model.norm",
                                     where={"train.lr": 0.001}), "v")
    assert iv.n == 2
