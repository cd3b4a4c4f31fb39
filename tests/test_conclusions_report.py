"""The report page (bnexp.report) with exact expected lines: the verdict line
and table, which code and machine made the runs, the table of grid points,
and the page's own errors."""

import math
from pathlib import Path

import pytest

from bnexp import report, stats
from bnexp.claims import CheckResult, ClaimResult, Table, fmt_interval, verdict
from bnexp.store import RunRecord, SweepFolder

PROV = {"bnexp": "0.1.0", "commit": "0123456789abcdef", "dirty": False, "numpy": "2.0",
        "engine": "numpy", "cpu": "CPU A",
        "blas": {"library": "openblas", "version": "0.3", "kernel": "Zen", "threads": 1}}


def rec(i, status="completed", prov=PROV, acc=0.5, values=None):
    info = {"status": status, "final": {"epoch": 1, "train_acc": acc, "test_acc": acc,
                                        "train_loss": 1.0, "test_loss": 1.0}}
    if prov is not None:
        info["provenance"] = prov
    return RunRecord(f"r{i}", Path("."), values or {}, 0, info)


def folder(runs, axes=()):
    return SweepFolder(Path("sw"), {}, list(axes), (), [0], None, None, runs)


def test_provenance_of_one_combination():
    assert report._provenance(folder([rec(0), rec(1, "diverged"), rec(2, "failed")])) == (
        "**Made by** bnexp 0.1.0 (commit 0123456789), numpy 2.0, openblas 0.3 (Zen kernel, "
        "1 thread), engine numpy, on CPU A.")


def test_provenance_variants_and_counts():
    dirty = {**PROV, "dirty": True, "blas": {**PROV["blas"], "threads": 4}}
    plain = {**PROV, "commit": None, "blas": {"library": "mkl"}}
    runs = [rec(0, prov=dirty), rec(1, prov=plain), rec(2, prov=dirty), rec(3, "running"),
            rec(4, "pending"), rec(5, "interrupted"), rec(6, prov=None)]
    assert report._provenance(folder(runs)) == (
        "**Made by** bnexp 0.1.0 (commit 0123456789, modified), numpy 2.0, openblas 0.3 (Zen "
        "kernel, 4 threads), engine numpy, on CPU A (2 runs); bnexp 0.1.0, numpy 2.0, mkl, "
        "engine numpy, on CPU A (1 runs).")
    assert report._provenance(folder([rec(0, prov={}), rec(1, "running")])) is None
    nothing = {"bnexp": "1"}
    assert report._provenance(folder([rec(0, prov=nothing)])) == (
        "**Made by** bnexp 1, numpy None, ?, engine None, on None.")


def result(*outcomes, expect=None):
    iv = stats.Interval(0.5, 0.4, 0.6, 3)
    checks = [CheckResult(f"c{i}", None, "mean", "final_test_acc", iv, "above 0.300", o, expect,
                          "model.norm=batch" if i == 0 else "")
              for i, o in enumerate(outcomes)]
    return ClaimResult(checks, {}, verdict(checks), None)


def test_verdict_lines():
    lines = report._verdict_lines(result("holds"))
    assert lines[0].startswith("**Verdict: holds** (1 of 1 check holds; computed from the runs:")
    assert lines[1:4] == ["", "| check | statistic | measured [95% interval] | criterion | "
                              "result |", "|---|---|---|---|---|"]
    assert lines[4] == ("| c0 | mean of final_test_acc (model.norm=batch) | 0.500 [0.400, 0.600] "
                        "| above 0.300 | holds (new) |")
    lines = report._verdict_lines(result("holds", "does not hold", "holds", expect="holds"))
    assert lines[0].startswith("**Verdict: partly holds** (2 of 3 checks hold;")
    assert lines[5] == ("| c1 | mean of final_test_acc | 0.500 [0.400, 0.600] | above 0.300 | "
                        "does not hold (published: holds) |")
    assert lines[6].endswith("| holds |") and len(lines) == 7


def test_aggregate_table_counts_finished_diverged_and_failed_runs():
    axes = [("model.norm", ["batch", "none"])]
    runs = [rec(0, acc=0.9, values={"model.norm": "batch"}),
            rec(1, "diverged", acc=0.1, values={"model.norm": "batch"}),
            rec(2, "failed", values={"model.norm": "batch"}),
            rec(3, acc=0.3, values={"model.norm": "none"}),
            rec(4, "running", values={"model.norm": "none"})]
    f = folder(runs, axes)
    text = report.aggregate_table(f, Table(axes, (), runs), ["final_test_acc", "final_test_loss"])
    both = stats.mean_interval([0.9, 0.1], bounds=(0.0, 1.0))
    one = stats.mean_interval([0.3], bounds=(0.0, 1.0))
    loss_b = fmt_interval(stats.Interval(1.0, 0.025, math.inf, 1, dropped=1))
    loss_n = fmt_interval(stats.mean_interval([1.0], bounds=(0.0, math.inf)))
    assert text.splitlines() == [
        "| model.norm | final test acc | final test loss | n | diverged | failed |",
        "|---|---|---|---|---|---|",
        f"| batch | {fmt_interval(both)} | {loss_b} | 2 | 1 | 1 |",
        f"| none | {fmt_interval(one)} | {loss_n} | 1 | 0 | 0 |"]


def test_write_report_needs_a_sweep():
    with pytest.raises(report.ReportError, match="^no sweep folder given$"):
        report.write_report([])


def test_open_checked_turns_storage_errors_into_report_errors(tmp_path):
    with pytest.raises(report.ReportError) as exc:
        report.open_checked(tmp_path / "none")
    assert str(exc.value) == f"{tmp_path / 'none'}: no such folder"


def _fake_sweep(root, section):
    """A two-point sweep folder (as tests/test_report.py's fake_sweep builds one)."""
    import json

    from bnexp import sweep as sweep_mod
    from bnexp.store import METRIC_COLUMNS, csv_text
    from bnexp.sweep.summary import Summary
    from bnexp.yamlio import dump_yaml

    base = {"name": "fake", "data": {"dataset": "synthetic", "n_train": 60, "n_test": 30},
            "model": {"hidden": [8]}, "train": {"epochs": 1, "batch_size": 20},
            "sweep": {"grid": {"model.norm": ["batch", "none"]}, "seeds": [0, 1]},
            "report": section}
    sw = sweep_mod.build(base)
    sdir = root / "fake"
    sdir.mkdir(parents=True)
    (sdir / "sweep.yaml").write_text(dump_yaml(sw.resolved(["bnexp", "sweep", "fake.yaml"])))
    for p in sw.points:
        acc = 0.9 if p.values["model.norm"] == "batch" else 0.2
        info = {"status": "completed", "seed": p.seed, "final": {
            "epoch": 1, "train_acc": acc, "test_acc": acc, "train_loss": 1.0, "test_loss": 1.0},
            "best_test_acc": acc, "seconds": 1.0}
        (sdir / p.run_id).mkdir()
        (sdir / p.run_id / "run.json").write_text(json.dumps(info))
        rows = [{"epoch": 1, "step": 1, "train_loss": 1.0, "train_acc": acc, "test_loss": 1.0,
                 "test_acc": acc, "elapsed": 0.0}]
        (sdir / p.run_id / "metrics.csv").write_text(csv_text(rows, METRIC_COLUMNS))
    Summary(sw, sdir).write()
    return sdir


def test_page_headings_default_place_and_a_complete_sweep(tmp_path):
    sdir = _fake_sweep(tmp_path, {"title": "Norms", "figures": [{"kind": "grid"}]})
    out, (section,) = report.write_report([sdir])
    assert out == sdir / "report.md"
    text = out.read_text()
    assert text.startswith("# Norms\n\n**Command.**")
    assert "Incomplete" not in text and section.claim is None
    out, _ = report.write_report([sdir], tmp_path / "page.md", title="Batch norm",
                                 intro="  Two sweeps.  ")
    text = out.read_text()
    assert text.startswith("# Batch norm\n\nTwo sweeps.\n\n## Norms\n\n**Command.**")
    assert "![fake: grid](figures/fake-grid-0.png)" in text
    assert (tmp_path / "figures" / "fake-grid-0.png").is_file()
