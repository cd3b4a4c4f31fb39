"""Claims as checks (bnexp.claims) and the report built on them: each
statistic, interval and outcome on runs with chosen values; the verdict;
numbers filled into the interpretation; validation; ``report --check``."""

import json
import math

import pytest
import yaml
from clitools import invoke

from bnexp import claims, report, stats
from bnexp import sweep as sweep_mod
from bnexp.store import METRIC_COLUMNS, csv_text, open_sweep
from bnexp.sweep.summary import Summary
from bnexp.yamlio import dump_yaml

BASE = {"name": "fake", "data": {"dataset": "synthetic", "n_train": 60, "n_test": 30},
        "model": {"hidden": [8]}, "train": {"epochs": 1, "batch_size": 20}}
T2 = stats.t_quantile(0.975, 2)  # 3 seeds


def fake_sweep(root, grid, values, report_section=None, status=None, zip_=None):
    """A sweep folder whose runs have the given final test accuracies:
    ``values[(v1, v2, ...)] = [seed0, seed1, ...]`` in grid-key order."""
    seeds = list(range(len(next(iter(values.values())))))
    raw = {**BASE, "sweep": {"grid": grid, "seeds": seeds}}
    if zip_:
        raw["sweep"]["zip"] = zip_
    if report_section is not None:
        raw["report"] = report_section
    sw = sweep_mod.build(raw)
    sdir = root / "fake"
    sdir.mkdir(parents=True, exist_ok=True)
    (sdir / "sweep.yaml").write_text(dump_yaml(sw.resolved(["bnexp", "sweep", "fake.yaml"])))
    for p in sw.points:
        key = tuple(p.values[k] for k in sw.keys)
        acc = values[key][p.seed]
        st = (status or {}).get((*key, p.seed), "completed")
        info = {"status": st, "seed": p.seed, "final": {
            "epoch": 1, "train_acc": acc, "test_acc": acc, "train_loss": 1.0, "test_loss": 1.0},
            "best_test_acc": acc, "seconds": 1.0,
            "provenance": {"bnexp": "0.1.0", "commit": "a" * 40, "dirty": False,
                           "numpy": "2.4.6", "engine": "numpy", "cpu": "Test CPU",
                           "blas": {"library": "openblas", "version": "0.3", "kernel": "Zen",
                                    "threads": 1}}}
        (sdir / p.run_id).mkdir(exist_ok=True)
        (sdir / p.run_id / "run.json").write_text(json.dumps(info))
        if st in ("completed", "diverged"):
            rows = [{"epoch": e, "step": e, "train_loss": 1.0, "train_acc": a, "test_loss": 1.0,
                     "test_acc": a, "elapsed": 0.0} for e, a in ((0, 0.1), (1, acc))]
            (sdir / p.run_id / "metrics.csv").write_text(csv_text(rows, METRIC_COLUMNS))
    Summary(sw, sdir).write()
    return sdir


def table_of(sdir):
    folder = open_sweep(sdir)
    return claims.Table(folder.axes, folder.zipped, folder.runs)


def check(sdir, spec):
    return claims.evaluate_check(table_of(sdir), spec, "check")


@pytest.fixture
def norms(tmp_path):
    return fake_sweep(tmp_path, {"model.norm": ["batch", "none"]},
                      {("batch",): [0.90, 0.91, 0.92], ("none",): [0.10, 0.10, 0.10]})


@pytest.mark.parametrize("criterion,outcome", [
    ({"above": 0.88}, "holds"),  # interval [0.885, 0.935]
    ({"above": 0.90}, "inconclusive"),
    ({"above": 0.95}, "does not hold"),
    ({"below": 0.95}, "holds"),
    ({"below": 0.89}, "inconclusive"),
    ({"below": 0.88}, "does not hold"),
    ({"within": 0.94}, "holds"),
])
def test_mean_check_outcomes_follow_the_interval(norms, criterion, outcome):
    r = check(norms, {"text": "t", "mean": "final_test_acc", "where": {"model.norm": "batch"},
                      **criterion})
    half = T2 * 0.01 / math.sqrt(3)
    assert (r.interval.estimate, r.interval.lo, r.interval.hi) == pytest.approx(
        (0.91, 0.91 - half, 0.91 + half))
    assert r.outcome == outcome


def test_difference_is_welchs_interval(tmp_path):
    sdir = fake_sweep(tmp_path, {"model.norm": ["batch", "none"]},
                      {("batch",): [0.90, 0.91, 0.92], ("none",): [0.10, 0.14, 0.11]})
    r = check(sdir, {"text": "t", "difference": "final_test_acc", "a": {"model.norm": "batch"},
                     "b": {"model.norm": "none"}, "above": 0.7})
    va, vb = 0.01 ** 2 / 3, (0.02081665999466133 ** 2) / 3  # sample variances / n
    df = (va + vb) ** 2 / (va ** 2 / 2 + vb ** 2 / 2)
    half = stats.t_quantile(0.975, df) * math.sqrt(va + vb)
    est = 0.91 - (0.10 + 0.14 + 0.11) / 3
    assert (r.interval.estimate, r.interval.lo, r.interval.hi) == pytest.approx(
        (est, est - half, est + half))
    assert r.outcome == "holds"


def test_a_sample_without_spread_is_not_a_known_mean(norms):
    """'none' gave 0.10 in all 3 seeds: Welch's interval would take 0.10 as its exact
    mean. Each sample's own interval at 97.5% is combined instead; for 'none' that is
    the interval a [0, 1] metric has when every seed agrees."""
    r = check(norms, {"text": "t", "difference": "final_test_acc", "a": {"model.norm": "batch"},
                      "b": {"model.norm": "none"}, "above": 0.7})
    half_a = stats.t_quantile(1 - 0.0125, 2) * 0.01 / math.sqrt(3)
    q = 0.0125 ** (1 / 3)
    b_lo, b_hi = 0.10 * q, 1 - 0.90 * q
    assert (r.interval.estimate, r.interval.lo, r.interval.hi) == pytest.approx(
        (0.81, 0.91 - half_a - b_hi, 0.91 + half_a - b_lo))
    assert r.outcome == "inconclusive"  # 3 equal seeds cannot pin 'none' down
    r = check(norms, {"text": "t", "mean": "final_test_acc", "where": {"model.norm": "none"},
                      "below": 0.2})
    q = 0.025 ** (1 / 3)
    assert (r.interval.lo, r.interval.hi) == pytest.approx((0.10 * q, 1 - 0.90 * q))
    assert r.outcome == "inconclusive"


@pytest.fixture
def batches(tmp_path):
    vals = {("batch", 2): [0.30, 0.40, 0.35], ("batch", 32): [0.95, 0.94, 0.96],
            ("group", 2): [0.95, 0.94, 0.95], ("group", 32): [0.95, 0.95, 0.96]}
    return fake_sweep(tmp_path, {"model.norm": ["batch", "group"],
                                 "train.batch_size": [2, 32]}, vals)


def test_spread_and_count_use_bonferroni_intervals(batches):
    r = check(batches, {"text": "t", "spread": "final_test_acc", "across": "train.batch_size",
                        "where": {"model.norm": "group"}, "below": 0.5})
    lvl = 1 - 0.05 / 2
    a = stats.mean_interval([0.95, 0.94, 0.95], lvl)
    b = stats.mean_interval([0.95, 0.95, 0.96], lvl)
    assert r.interval.estimate == pytest.approx(b.estimate - a.estimate)
    assert r.interval.hi == pytest.approx(max(a.hi, b.hi) - min(a.lo, b.lo))
    assert r.interval.lo == max(0.0, max(a.lo, b.lo) - min(a.hi, b.hi)) == 0.0
    assert r.outcome == "holds"
    c = check(batches, {"text": "t", "count": "final_test_acc", "at_least": 0.9,
                        "across": "train.batch_size", "where": {"model.norm": "batch"},
                        "above": 0})
    assert (c.interval.estimate, c.interval.lo, c.interval.hi) == (1, 1, 1)
    assert c.outcome == "holds" and c.detail.endswith("values: 32")


def test_each_fails_when_one_value_fails_and_shows_it(batches):
    r = check(batches, {"text": "t", "difference": "final_test_acc", "a": {"model.norm": "group"},
                        "b": {"model.norm": "batch"}, "each": "train.batch_size", "above": 0.1})
    assert r.outcome == "does not hold"
    assert "train.batch_size=32" in r.detail  # where group - batch is about 0.003
    r = check(batches, {"text": "t", "difference": "final_test_acc", "a": {"model.norm": "group"},
                        "b": {"model.norm": "batch"}, "each": "train.batch_size", "above": -0.1})
    assert r.outcome == "holds"


def test_selections_name_one_value_exactly_in_any_spelling(tmp_path):
    sdir = fake_sweep(tmp_path, {"init.weight_scale": [0.000630957344480193, 0.01, 0.0136]},
                      {(0.000630957344480193,): [0.5, 0.6], (0.01,): [0.9, 0.8],
                       (0.0136,): [0.2, 0.3]})
    for spelled in (0.000630957344480193, "0.000630957344480193", "6.30957344480193e-4"):
        r = check(sdir, {"text": "t", "mean": "final_test_acc",
                         "where": {"init.weight_scale": spelled}, "below": 1})
        assert r.interval.estimate == pytest.approx(0.55)
    for spelled in (0.01, "1e-2", "1.0E-2"):
        r = check(sdir, {"text": "t", "mean": "final_test_acc",
                         "where": {"init.weight_scale": spelled}, "below": 1})
        assert r.interval.estimate == pytest.approx(0.85)  # 0.01, never 0.0136
    for rounded in (0.000631, 0.014):
        with pytest.raises(claims.ClaimError) as exc:
            check(sdir, {"text": "t", "mean": "final_test_acc",
                         "where": {"init.weight_scale": rounded}, "below": 1})
        assert str(exc.value) == (f"check.where.init.weight_scale: {rounded} is not a value of "
                                  "the sweep (values: 0.000630957344480193, 0.01, 0.0136)")


@pytest.mark.parametrize("outcomes,verdict", [
    (["holds", "holds"], "holds"),
    (["does not hold", "does not hold"], "does not hold"),
    (["holds", "does not hold", "inconclusive"], "partly holds"),
    (["holds", "inconclusive"], "inconclusive"),
    (["does not hold", "inconclusive"], "inconclusive"),
    (["inconclusive"], "inconclusive"),
    ([], "inconclusive"),  # no checks: nothing holds
])
def test_verdict(outcomes, verdict):
    iv = stats.Interval(0, 0, 0, 3)
    results = [claims.CheckResult("t", None, "mean", "m", iv, "", o, "holds") for o in outcomes]
    assert claims.verdict(results) == verdict


REPORT = {"title": "Norms", "claim": "BN beats no norm.",
          "checks": [{"id": "gap", "text": "BN beats none by 0.5", "difference": "final_test_acc",
                      "a": {"model.norm": "batch"}, "b": {"model.norm": "none"}, "above": 0.5},
                     {"text": "none is at chance", "mean": "final_test_acc",
                      "where": {"model.norm": "none"}, "below": 0.2}],
          "values": {"bn": {"mean": "final_test_acc", "where": {"model.norm": "batch"}}},
          "notes": "BN is at {bn}, ahead by {gap.estimate}.",
          "figures": [{"kind": "final", "x": "model.norm"}]}


def test_report_section_computes_verdict_and_fills_numbers_from_the_runs(tmp_path):
    sdir = fake_sweep(tmp_path, {"model.norm": ["batch", "none"]},
                      {("batch",): [0.90, 0.91, 0.92], ("none",): [0.10, 0.11, 0.12]},
                      {**REPORT, "figures": [{"kind": "grid"}]})
    out, (section,) = report.write_report([sdir], tmp_path / "r.md")
    text = out.read_text()
    assert "**Verdict: holds** (2 of 2 checks hold;" in text
    half = T2 * 0.01 / math.sqrt(3)
    bn = f"0.910 [{0.91 - half:.3f}, {0.91 + half:.3f}]"
    assert f"BN is at {bn}, ahead by 0.800." in text  # filled in, not typed
    assert f"| batch | {bn} | {bn} | 3 | 0 | 0 |" in text  # the table shows the same number
    assert "**Command.** `bnexp sweep fake.yaml` (6 runs, seeds 0, 1, 2;" in text
    assert ("**Made by** bnexp 0.1.0 (commit aaaaaaaaaa), numpy 2.4.6, openblas 0.3 (Zen "
            "kernel, 1 thread), engine numpy, on Test CPU.") in text
    assert section.claim.verdict == "holds" and not section.claim.changes()


PUBLISHED = {**REPORT, "checks": [{**c, "expect": "holds"} for c in REPORT["checks"]],
             "figures": [{"kind": "grid"}]}


def test_report_check_exits_1_when_the_data_contradict_a_published_claim(tmp_path):
    good = fake_sweep(tmp_path / "good", {"model.norm": ["batch", "none"]},
                      {("batch",): [0.90, 0.91, 0.92], ("none",): [0.10, 0.11, 0.12]},
                      PUBLISHED)
    res = invoke("report", good, "--check", "--out", tmp_path / "g.md")
    assert res.exit_code == 0, res.output
    assert res.output.splitlines()[1:] == ["fake: holds (2 of 2 checks hold)"]
    bad = fake_sweep(tmp_path / "bad", {"model.norm": ["batch", "none"]},
                     {("batch",): [0.30, 0.31, 0.32], ("none",): [0.10, 0.11, 0.12]},
                     PUBLISHED)
    res = invoke("report", bad, "--check", "--out", tmp_path / "b.md")
    assert res.exit_code == 1
    assert "fake: partly holds (1 of 2 checks hold)" in res.output
    assert "error: fake: does not hold where published holds: BN beats none by 0.5" in res.output
    assert "does not hold (published: holds)" in (tmp_path / "b.md").read_text()


@pytest.mark.parametrize("batch,expect,code", [
    ([0.30, 0.31, 0.32], "does not hold", 0),  # as published
    ([0.90, 0.91, 0.92], "does not hold", 1),  # published as not holding, now holds
    ([0.55, 0.60, 0.75], "holds", 1),  # published as holding, now inconclusive
    ([0.55, 0.60, 0.75], "inconclusive", 0),
    ([0.90, 0.91, 0.92], "inconclusive", 1),
    ([0.90, 0.91, 0.92], None, 0),  # a new check: never published, never a failure
])
def test_report_check_fails_on_any_change_of_a_published_outcome(tmp_path, batch, expect, code):
    first = {k: v for k, v in REPORT["checks"][0].items()}
    if expect is not None:
        first["expect"] = expect
    section = {**REPORT, "checks": [first], "notes": "BN is at {bn}.",
               "figures": [{"kind": "grid"}]}
    sdir = fake_sweep(tmp_path, {"model.norm": ["batch", "none"]},
                      {("batch",): batch, ("none",): [0.10, 0.11, 0.12]}, section)
    res = invoke("report", sdir, "--check", "--out", tmp_path / "r.md")
    assert res.exit_code == code, res.output
    outcome = claims.evaluate_check(table_of(sdir), first, "c").outcome
    page = (tmp_path / "r.md").read_text()
    if expect is None:
        assert f"  {outcome} (new): BN beats none by 0.5" in res.output.splitlines()
        assert f"| {outcome} (new) |" in page and "published" not in page.split("| check |")[1]
    elif code:
        assert (f"error: fake: {outcome} where published {expect}: BN beats none by 0.5"
                in res.output)
        assert f"| {outcome} (published: {expect}) |" in page
    else:
        assert "error" not in res.output and f"| {outcome} |" in page


def test_report_of_an_incomplete_sweep_says_so(tmp_path):
    sdir = fake_sweep(tmp_path, {"model.norm": ["batch", "none"]},
                      {("batch",): [0.90, 0.91, 0.92], ("none",): [0.10, 0.11, 0.12]},
                      {**REPORT, "figures": [{"kind": "grid"}]},
                      status={("none", 2): "running", ("none", 1): "pending"})
    text = report.write_report([sdir], tmp_path / "r.md")[0].read_text()
    assert ("**Incomplete.** 4 of 6 runs finished (1 running, 1 pending); everything below "
            "covers the finished runs.") in text
    one = claims.fmt_interval(stats.mean_interval([0.10], bounds=(0.0, 1.0)))
    assert one == f"0.100 [{claims.fmt(0.1 * 0.025)}, {claims.fmt(1 - 0.9 * 0.025)}]"
    assert f"| none | {one} | {one} | 1 | 0 | 0 |" in text


@pytest.mark.parametrize("section,message", [
    ({"verdict": "holds"}, "report.verdict: the verdict is computed from report.checks; put an "
                           "interpretation in report.notes"),
    ({"claim": "x", "checks": [{"text": "t", "mean": "final_test_acc", "above": 0}]},
     "report.checks[0]: the selection leaves model.norm free; fix it (in where, a/b, each or "
     "across)"),
    ({"checks": [{"text": "t", "mean": "acc", "where": {"model.norm": "batch"}, "above": 0}]},
     "report.checks[0].mean: got 'acc', expected a metric: final_train_acc, final_test_acc, "
     "best_test_acc, final_train_loss, final_test_loss, epochs, seconds, diverged, "
     "input_spread_growth, input_drift, generalization_gap, loss_range, "
     "grad_predictiveness, beta_smoothness, ics_l2, ics_cosine, variance_shift, step_ms, "
     "train_acc@E, test_acc@E, train_loss@E, test_loss@E"),
    ({"checks": [{"text": "t", "mean": "final_test_acc", "where": {"model.norm": "layer"},
                  "above": 0}]},
     "report.checks[0].where.model.norm: layer is not a value of the sweep (values: batch, "
     "none)"),
    ({"checks": [{"text": "t", "mean": "final_test_acc", "where": {"train.lr": 0.1},
                  "above": 0}]},
     "report.checks[0].where.train.lr: not a swept key (swept: model.norm)"),
    ({"checks": [{"text": "t", "mean": "final_test_acc", "where": {"model.norm": "batch"}}]},
     "report.checks[0]: expected exactly one of above: X, below: X, within: X"),
    ({"notes": "see {nothing}"}, "report.notes: {nothing} names no check id or value"),
    ({"figures": [{"kind": "pie"}]},
     "report.figures[0].kind: got 'pie', expected one of curves, grid, final, bars, heatmap, "
     "activations, landscape"),
    ({"metrics": ["accuracy"]},
     "report.metrics: got accuracy in the list, expected only final_train_acc, "
     "final_test_acc, best_test_acc, final_train_loss, final_test_loss, epochs, seconds (the "
     "table's columns)"),
    ({"metrics": "final_test_acc"},
     "report.metrics: got final_test_acc, expected a list of final_train_acc, final_test_acc, "
     "best_test_acc, final_train_loss, final_test_loss, epochs, seconds"),
    ({"titel": "x"}, "report.titel: unknown key (expected title, source, claim, checks, "
                     "values, notes, metrics, figures)"),
])
def test_bad_report_sections_are_refused_before_anything_runs(tmp_path, section, message):
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({**BASE, "sweep": {"grid": {"model.norm": ["batch", "none"]}},
                                    "report": section}))
    res = invoke("sweep", path, "--out", tmp_path / "runs")
    assert res.exit_code == 2
    assert res.output.strip() == f"error: {message}"
    assert not (tmp_path / "runs").exists()


def test_every_shipped_report_section_is_valid():
    from bnexp import experiments

    for name in experiments.names():
        raw = yaml.safe_load(experiments.path(name).read_text())
        if "sweep" in raw:
            sweep_mod.load(experiments.path(name))  # raises on any problem


def test_the_command_line_keeps_every_option(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({**BASE, "sweep": {"grid": {"model.norm": ["batch", "none"]}},
                                    "report": {"claim": "c", "figures": [{"kind": "grid"}]}}))
    res = invoke("sweep", path, "--set", "train.lr=0.2", "--seeds", "0,1", "--out",
                 tmp_path / "runs", "-q", "--no-plot")
    assert res.exit_code == 0, res.output
    text = report.write_report([tmp_path / "runs" / "fake"], tmp_path / "r.md")[0].read_text()
    assert (f"**Command.** `bnexp sweep {path} --set train.lr=0.2 --seeds 0,1 --out "
            f"{tmp_path / 'runs'} -q --no-plot` (4 runs, seeds 0, 1;") in text


def test_the_verdict_line_agrees_in_number_with_its_checks():
    from bnexp.claims import CheckResult, ClaimResult
    from bnexp.report import _verdict_lines
    from bnexp.stats import Interval

    check = CheckResult("t", None, "mean", "final_test_acc", Interval(0.9, 0.8, 1.0, 5),
                        "above 0.5", "holds", "holds")
    one = _verdict_lines(ClaimResult([check], {}, "holds", None))[0]
    two = _verdict_lines(ClaimResult([check, check], {}, "holds", None))[0]
    assert "(1 of 1 check holds;" in one and "(2 of 2 checks hold;" in two


def test_a_0_1_outcome_gets_an_exact_binomial_interval(tmp_path):
    """'diverged' in 5 of 5 seeds is not certain: Clopper-Pearson's [0.478, 1]; two
    such rates are compared by Newcombe's interval, not by Welch's of zero width."""
    status = {("none", s): "diverged" for s in range(5)}
    status[("batch", 0)] = "diverged"
    sdir = fake_sweep(tmp_path, {"model.norm": ["batch", "none"]},
                      {("batch",): [0.9] * 5, ("none",): [0.1] * 5}, status=status)
    r = check(sdir, {"text": "t", "mean": "diverged", "where": {"model.norm": "none"},
                     "above": 0.5})
    assert (r.interval.estimate, r.interval.lo, r.interval.hi) == pytest.approx(
        (1.0, 0.4781762, 1.0), abs=1e-7)
    assert r.outcome == "inconclusive"  # 5 seeds cannot show a rate above 0.5
    assert check(sdir, {"text": "t", "mean": "diverged", "where": {"model.norm": "none"},
                        "above": 0.4}).outcome == "holds"
    d = check(sdir, {"text": "t", "difference": "diverged", "a": {"model.norm": "none"},
                     "b": {"model.norm": "batch"}, "above": 0})
    ref = stats.proportion_difference([1] * 5, [1, 0, 0, 0, 0])
    assert (d.interval.estimate, d.interval.lo, d.interval.hi) == pytest.approx(
        (0.8, ref.lo, ref.hi))
    assert 0 < d.interval.lo < 0.8 < d.interval.hi <= 1
    assert claims.fmt_interval(r.interval) == "1 [0.478, 1]"
    one = check(sdir, {"text": "t", "mean": "diverged", "where": {"model.norm": "batch"},
                       "below": 0.8})
    assert (one.interval.lo, one.interval.hi) == pytest.approx((0.0050508, 0.7164179), abs=1e-7)
