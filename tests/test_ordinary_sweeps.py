"""Sweeps written as users write them, end to end through the CLI: scientific
notation, logspace values, 1 vs 1.0, lists as values, a value that diverges.
Each must sweep, report, plot, filter and verify cleanly, and every place
(folder names, summary.csv, tables, figure titles, --filter, errors) must show
each value one way."""

import csv
import io
import json

import pytest
import yaml
from clitools import invoke, read

BASE = {"name": "ord", "data": {"dataset": "synthetic", "n_train": 60, "n_test": 30},
        "model": {"hidden": [8]}, "train": {"epochs": 2, "batch_size": 20, "lr": 0.1}}


def config(tmp_path, grid=None, **extra):
    path = tmp_path / "ord.yaml"
    path.write_text(yaml.safe_dump({**BASE, **extra,
                                    "sweep": {"grid": grid or {}, "seeds": [0, 1]}}))
    return path


def sweep(tmp_path, *args, grid=None, **extra):
    res = invoke("sweep", config(tmp_path, grid, **extra), "--out", tmp_path / "runs", "-j", "1",
                 "-q", *args)
    assert res.exit_code == 0, res.output
    return tmp_path / "runs" / "ord"


def titles(png_path):
    """The figure was written (a PNG): its bytes start as a PNG's."""
    return png_path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_scientific_notation_is_one_value_everywhere(tmp_path):
    sdir = sweep(tmp_path, "--grid", "train.lr=1e-3,1.0E-2")
    ids = sorted(p.name for p in sdir.iterdir() if p.is_dir())
    assert ids == ["lr=0.001,seed=0", "lr=0.001,seed=1", "lr=0.01,seed=0", "lr=0.01,seed=1"]
    assert [r["train.lr"] for r in read(sdir / "summary.csv")] == ["0.001"] * 2 + ["0.01"] * 2
    assert [r["train.lr"] for r in read(sdir / "aggregate.csv")] == ["0.001", "0.01"]
    assert yaml.safe_load((sdir / "sweep.yaml").read_text())["sweep"]["grid"]["train.lr"] == [
        0.001, 0.01]
    rep = invoke("report", sdir, "--out", tmp_path / "r.md")
    assert rep.exit_code == 0, rep.output
    page = (tmp_path / "r.md").read_text()
    table = page[page.index("| train.lr |"):]
    assert "| 0.001 |" in table and "| 0.01 |" in table and "1e-" not in table
    res = invoke("plot", sdir)
    assert res.exit_code == 0, res.output
    # Every spelling of a value names it; the derived figure says which it shows.
    for typed in ("1e-3", "0.001", "1.0E-3", "0.0010"):
        res = invoke("plot", sdir, "--filter", f"train.lr={typed}")
        assert res.exit_code == 0, res.output
        assert res.output.strip() == str(sdir / "curves_lr=0.001.png")
    res = invoke("verify", sdir)
    assert res.exit_code == 0, res.output
    assert res.output.splitlines()[-1] == f"{sdir}: 4 runs: 4 identical, 0 differ, 0 skipped"


def test_two_spellings_of_one_value_are_refused_before_anything_is_written(tmp_path):
    for grid, shown in (("train.lr=1e-3,0.001", "1e-3 and 0.001 are one value (0.001)"),
                        ("init.weight_scale=1,1.0", "1 and 1.0 are one value (1.0)")):
        res = invoke("sweep", config(tmp_path), "--out", tmp_path / "runs", "--grid", grid)
        assert res.exit_code == 2
        key = grid.split("=")[0]
        assert res.output == (f"error: sweep.grid.{key}: {shown}; give each value once\n")
        assert not (tmp_path / "runs").exists()


def test_an_integer_where_a_number_is_taken_is_that_number(tmp_path):
    sdir = sweep(tmp_path, "--grid", "init.weight_scale=1,0.5")
    assert sorted(p.name for p in sdir.iterdir() if p.is_dir())[:2] == [
        "weight_scale=0.5,seed=0", "weight_scale=0.5,seed=1"]
    assert {r["init.weight_scale"] for r in read(sdir / "summary.csv")} == {"1.0", "0.5"}
    for typed in ("1", "1.0", "1e0"):
        res = invoke("plot", sdir, "--filter", f"init.weight_scale={typed}")
        assert res.exit_code == 0 and res.output.strip().endswith("weight_scale=1.0.png")


def test_logspace_values_show_their_exact_spelling_and_are_found_by_it(tmp_path):
    sdir = sweep(tmp_path, "--grid", "init.weight_scale=logspace:0,-1,3")
    values = [r["init.weight_scale"] for r in read(sdir / "aggregate.csv")]
    assert values == ["1.0", "0.31622776601683794", "0.1"]
    assert float(values[1]) == 10 ** -0.5
    res = invoke("plot", sdir, "--filter", "init.weight_scale=0.31622776601683794")
    assert res.exit_code == 0, res.output
    # A rounded value is not a value of the sweep; the error lists them as shown.
    res = invoke("plot", sdir, "--filter", "init.weight_scale=0.316")
    assert res.exit_code == 2
    assert res.output == ("error: --filter: init.weight_scale=0.316: init.weight_scale has no "
                          "value 0.316 (values: 1.0, 0.31622776601683794, 0.1)\n")
    rep = invoke("report", sdir, "--out", tmp_path / "r.md")
    assert rep.exit_code == 0 and "| 0.31622776601683794 |" in (tmp_path / "r.md").read_text()


def test_lists_as_values(tmp_path):
    sdir = sweep(tmp_path, "--grid", "model.hidden=[8],[8,8]")
    assert {r["model.hidden"] for r in read(sdir / "summary.csv")} == {"[8]", "[8, 8]"}
    assert (sdir / "hidden=8x8,seed=0").is_dir()
    for typed in ("8x8", "[8, 8]", "[8,8]"):
        res = invoke("plot", sdir, "--filter", f"model.hidden={typed}")
        assert res.exit_code == 0, res.output
        assert res.output.strip() == str(sdir / "curves_hidden=8x8.png")
    assert invoke("report", sdir, "--out", tmp_path / "r.md").exit_code == 0
    assert "| 8x8 |" in (tmp_path / "r.md").read_text()


def test_a_value_that_diverges(tmp_path):
    sdir = sweep(tmp_path, "--grid", "train.lr=0.1,1e30",
                 report={"metrics": ["final_test_acc", "final_test_loss"]})
    agg = {r["train.lr"]: r for r in read(sdir / "aggregate.csv")}
    assert set(agg) == {"0.1", "1e+30"}
    big = agg["1e+30"]
    assert big["n_diverged"] == "2"
    # Losses of diverged runs are not averaged in: none are left.
    assert big["final_test_loss_n"] == "0" and big["final_test_loss_mean"] == "nan"
    assert 0.0 <= float(big["final_test_acc_ci_lo"]) <= float(big["final_test_acc_ci_hi"]) <= 1.0
    rep = invoke("report", sdir, "--out", tmp_path / "r.md")
    assert rep.exit_code == 0, rep.output
    assert "| 1e+30 |" in (tmp_path / "r.md").read_text()
    assert "- (all 2 runs diverged)" in (tmp_path / "r.md").read_text()
    for args in (("plot", sdir), ("plot", sdir, "--filter", "train.lr=1e30"), ("verify", sdir)):
        res = invoke(*args)
        assert res.exit_code == 0, (args, res.output)


def test_a_derived_plot_never_overwrites_the_sweeps_own_figure(tmp_path):
    sdir = sweep(tmp_path, "--grid", "train.lr=0.1,0.2", grid={"model.norm": ["batch", "none"]})
    own = sdir / "grid.png"
    res = invoke("plot", sdir)  # what the sweep drew: nothing changes, so it is allowed
    assert res.exit_code == 0 and res.output.strip() == str(own)
    before = own.read_bytes()
    res = invoke("plot", sdir, "--filter", "train.lr=0.1")  # one category left: bars
    assert res.exit_code == 0 and res.output.strip() == str(sdir / "bars_lr=0.1.png")
    res = invoke("plot", sdir, "--metric", "test_loss")
    assert res.output.strip() == str(sdir / "grid_metric=test_loss.png")
    assert own.read_bytes() == before
    # Once the runs change, redrawing the sweep's own figure needs --force.
    info_path = next(sdir.glob("norm=batch,lr=0.1,seed=0")) / "metrics.csv"
    rows = info_path.read_text().splitlines()
    info_path.write_text("\n".join(rows[:-1]) + "\n")  # a run with one evaluation fewer
    res = invoke("plot", sdir)
    assert res.exit_code == 2
    assert (f"error: {own} is the folder's own figure and would change; pass --force to "
            "redraw it, or --out FILE to draw elsewhere") in res.output.splitlines()
    assert own.read_bytes() == before
    res = invoke("plot", sdir, "--force")
    assert res.exit_code == 0 and own.read_bytes() != before


def test_verify_compares_the_results_that_verdicts_read(tmp_path):
    sdir = sweep(tmp_path, grid={"model.norm": ["batch", "none"]})
    run = sdir / "norm=batch,seed=1" / "run.json"
    info = json.loads(run.read_text())
    info["final"]["test_acc"] += 0.05
    run.write_text(json.dumps(info))
    res = invoke("verify", sdir, "-j", "2")
    assert res.exit_code == 1
    lines = res.output.splitlines()
    assert (f"norm=batch,seed=1: differs: run.json: final.test_acc "
            f"{info['final']['test_acc'] - 0.05!r}, the saved run has "
            f"{info['final']['test_acc']!r}") in lines
    assert lines[-1] == f"{sdir}: 4 runs: 3 identical, 1 differ, 0 skipped"


def test_summaries_are_caches_checked_against_the_run_folders(tmp_path):
    sdir = sweep(tmp_path, grid={"model.norm": ["batch", "none"]})
    summary = sdir / "summary.csv"
    good = summary.read_text()
    lines = good.splitlines()
    # An edited number in summary.csv: reports use run.json and say where they disagree.
    rows = read(summary)
    rows[0]["final_test_acc"] = "0.999"
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    summary.write_text(buf.getvalue())
    res = invoke("report", sdir, "--out", tmp_path / "r.md")
    assert res.exit_code == 0
    run_json = sdir / "norm=batch,seed=0" / "run.json"
    true = json.loads(run_json.read_text())["final"]["test_acc"]
    assert (f"warning: {summary}: line 2: final_test_acc 0.999, but {run_json} says {true}; "
            "reports use run.json (rerun the sweep's command to rewrite the summary)"
            ) in res.output.splitlines()
    assert "0.999" not in (tmp_path / "r.md").read_text()
    # A duplicated row is refused, naming both lines.
    summary.write_text("\n".join([lines[0], lines[1], lines[1], *lines[2:]]) + "\n")
    res = invoke("report", sdir, "--out", tmp_path / "r2.md")
    assert res.exit_code == 2
    assert res.output == (f"error: {summary}: line 3: run_id norm=batch,seed=0 repeats line 2 "
                          "(damaged or edited file; run the sweep's command to rewrite it)\n")
    summary.write_text(good)
    # The last row of a metrics.csv that disagrees with run.json is named.
    metrics = sdir / "norm=none,seed=1" / "metrics.csv"
    rows = metrics.read_text().splitlines()
    head = rows[0].split(",")
    last = rows[-1].split(",")
    last[head.index("test_acc")] = "0.5"
    metrics.write_text("\n".join([*rows[:-1], ",".join(last)]) + "\n")
    res = invoke("report", sdir, "--out", tmp_path / "r3.md")
    assert res.exit_code == 0
    assert any(line.startswith(f"warning: {metrics}: line {len(rows)}: test_acc 0.5, but ")
               for line in res.output.splitlines()), res.output


@pytest.mark.parametrize("key,value,want", [
    ("seed", "x", "seed is \"x\", expected an integer"),
    ("status", "done", "status is \"done\", expected completed, diverged, failed, interrupted, "
                       "running, pending"),
    ("final.test_acc", "high", "final.test_acc is \"high\", expected a number"),
    ("best_test_acc", [1], "best_test_acc is [1], expected a number"),
])
def test_a_run_json_with_a_result_of_the_wrong_type_is_refused(tmp_path, key, value, want):
    sdir = sweep(tmp_path, grid={"model.norm": ["batch", "none"]})
    run = sdir / "norm=none,seed=0" / "run.json"
    info = json.loads(run.read_text())
    if "." in key:
        a, b = key.split(".")
        info[a][b] = value
    else:
        info[key] = value
    run.write_text(json.dumps(info))
    for cmd in ("report", "plot"):
        res = invoke(cmd, sdir, "--out", tmp_path / ("r.md" if cmd == "report" else "p.png"))
        assert res.exit_code == 2
        assert res.output == f"error: {run}: {want} (damaged or edited file; rerun the run)\n"


@pytest.mark.parametrize("sig", ["SIGINT", "SIGTERM"])
def test_a_stopped_train_says_interrupted_and_the_same_command_finishes_it(tmp_path, sig):
    import os
    import signal
    import subprocess
    import sys
    import time

    cfg = tmp_path / "t.yaml"
    cfg.write_text(yaml.safe_dump({"name": "t", "data": {"dataset": "synthetic", "n_train": 3000,
                                                         "n_test": 300, "dim": 50},
                                   "model": {"hidden": [32]},
                                   "train": {"epochs": 30, "batch_size": 20, "lr": 0.05}}))
    cmd = [sys.executable, "-m", "bnexp", "train", str(cfg), "--out", str(tmp_path / "runs"),
           "--no-plot"]
    # A job started in the background inherits SIGINT ignored, and Python then
    # keeps it so; a user's Ctrl-C reaches a train started at a prompt.
    proc = subprocess.Popen(cmd, env={**os.environ, "PYTHONUNBUFFERED": "1"},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    metrics = tmp_path / "runs" / "t" / "metrics.csv"
    deadline = time.time() + 60
    while time.time() < deadline and not (metrics.exists() and len(read(metrics)) >= 2):
        time.sleep(0.05)
    proc.send_signal(getattr(signal, sig))
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    run = tmp_path / "runs" / "t"
    assert f"interrupted: {run} is marked interrupted; run the same command again to resume" in err
    assert "Traceback" not in err
    assert json.loads((run / "run.json").read_text())["status"] == "interrupted"
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert json.loads((run / "run.json").read_text())["status"] == "completed"
    assert len(read(metrics)) == 31


def test_a_zip_may_repeat_a_value_but_not_a_combination(tmp_path):
    from bnexp import sweep as sweep_mod

    base = {**BASE, "sweep": {"zip": {"train.batch_size": [10, 20, 30],
                                      "train.lr": [0.1, 0.1, 0.2]}, "seeds": [0]}}
    sw = sweep_mod.build(base)
    assert [p.run_id for p in sw.points] == ["batch_size=10,lr=0.1,seed=0",
                                             "batch_size=20,lr=0.1,seed=0",
                                             "batch_size=30,lr=0.2,seed=0"]
    twice = {**BASE, "sweep": {"zip": {"train.batch_size": [10, 10], "train.lr": [0.1, 1e-1]},
                               "seeds": [0]}}
    with pytest.raises(sweep_mod.SweepError) as exc:
        sweep_mod.build(twice)
    assert str(exc.value) == ("sweep.zip: the values at one position, [10, 0.1] is given "
                              "twice; give each combination once")


def test_text_that_spells_a_number_stays_text_where_the_key_takes_text():
    from bnexp import sweep as sweep_mod

    sw = sweep_mod.build({**BASE, "sweep": {"grid": {"data.root": ["2024", "1e3"]},
                                            "seeds": [0]}})
    assert dict(sw.axes)["data.root"] == ["2024", "1e3"]
    assert [p.config.data.root for p in sw.points] == ["2024", "1e3"]


def test_a_huge_integer_is_one_line_not_a_traceback(tmp_path):
    res = invoke("sweep", config(tmp_path), "--out", tmp_path / "runs", "--grid",
                 "train.epochs=1" + "0" * 400)
    assert res.exit_code == 2 and "Traceback" not in res.output
    lines = res.output.splitlines()  # one per run of the point (2 seeds)
    assert len(lines) == 2 and all(line.endswith("expected an integer from 0 to 100,000")
                                   for line in lines)
    assert not (tmp_path / "runs").exists()


def test_only_the_folders_own_figure_is_protected(tmp_path):
    sdir = sweep(tmp_path, "--grid", "train.lr=0.1,0.2,0.3,0.4")  # own figure: final
    res = invoke("plot", sdir, "--kind", "grid")
    assert res.exit_code == 0 and res.output.strip() == str(sdir / "grid.png")
    metrics = sdir / "lr=0.1,seed=0" / "metrics.csv"
    rows = metrics.read_text().splitlines()
    metrics.write_text("\n".join(rows[:-1]) + "\n")
    res = invoke("plot", sdir, "--kind", "grid")  # not the sweep's own: redrawn
    assert res.exit_code == 0, res.output
    res = invoke("plot", sdir)  # the sweep's own (final.png) would change
    assert res.exit_code == 2 and f"error: {sdir / 'final.png'} is the folder's own figure" in (
        res.output)


def test_a_sweep_written_with_other_spellings_is_not_rerun_beside_itself(tmp_path):
    sdir = sweep(tmp_path, "--grid", "train.lr=0.1,0.2")
    # As an earlier bnexp named it: lr=1e-1 for 0.1.
    old, new = sdir / "lr=0.1,seed=0", sdir / "lr=1e-1,seed=0"
    old.rename(new)
    summary = sdir / "summary.csv"
    summary.write_text(summary.read_text().replace("lr=0.1,seed=0", "lr=1e-1,seed=0"))
    res = invoke("sweep", config(tmp_path), "--out", tmp_path / "runs", "-j", "1", "-q",
                 "--grid", "train.lr=0.1,0.2")
    assert res.exit_code == 2
    assert res.output == (f"error: {sdir}: run lr=1e-1,seed=0 is this sweep's lr=0.1,seed=0, "
                          "written by an earlier bnexp that spelled its values otherwise; sweep "
                          "into a new folder (--out, or --set name=...) or pass --force to rerun "
                          "every run here\n")
    assert not old.exists()


def test_a_saved_renorm_run_from_before_the_paper_schedule_is_not_mixed_in():
    from bnexp import config
    from bnexp.sweep.execute import _differing_keys

    new = config.from_dict({**BASE, "norm": {"renorm": True}}).to_dict()
    saved = {k: (dict(v) if isinstance(v, dict) else v) for k, v in new.items()}
    for key in ("renorm_running", "renorm_bn_steps"):
        del saved["norm"][key]  # saved before these keys existed
    assert config.saved_defaults(saved)["norm"]["renorm_running"] == "variance"
    assert sorted(_differing_keys(new, saved)) == ["norm.renorm_bn_steps", "norm.renorm_running"]
    assert _differing_keys(new, new) == []


def test_numbers_of_any_python_type_have_one_spelling():
    import numpy as np

    from bnexp import values as V

    assert V.label(np.float64(0.1)) == "0.1" and V.same(np.int64(3), 3)
    assert V.label(-0.0) == V.label(0.0) == "0.0"


def test_a_warning_is_shown_by_every_command_that_meets_it(tmp_path):
    sdir = sweep(tmp_path, grid={"model.norm": ["batch", "none"]})
    info = sdir / "norm=none,seed=0" / "run.json"
    data = json.loads(info.read_text())
    data["final"]["test_acc"] = 0.5
    info.write_text(json.dumps(data))
    for _ in range(2):
        res = invoke("report", sdir, "--out", tmp_path / "r.md")
        assert res.exit_code == 0
        assert sum(line.startswith("warning: ") for line in res.output.splitlines()) == 2


def test_filter_seed_takes_the_number_in_any_spelling(tmp_path):
    sdir = sweep(tmp_path, grid={"model.norm": ["batch", "none"]})
    res = invoke("plot", sdir, "--filter", "seed=01", "--filter", "model.norm=batch")
    assert res.exit_code == 0, res.output
    res = invoke("plot", sdir, "--filter", "lr=0.1")
    assert res.exit_code == 2
    assert res.output.startswith("error: --filter: lr=0.1: lr: not a swept key")
