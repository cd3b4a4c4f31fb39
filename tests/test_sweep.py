"""``bnexp sweep``: expansion, validation, parallel runs, resume, failures, locking."""

import json
import os
import re
import signal
import subprocess
import sys
import time

import pytest
import yaml
from clitools import invoke, read

from bnexp import experiments, store
from bnexp import sweep as sweep_mod
from bnexp.sweep import grid

BASE = {
    "name": "sw",
    "data": {"dataset": "synthetic", "n_train": 60, "n_test": 30, "dim": 6, "classes": 3},
    "model": {"hidden": [8, 8]},
    "init": {"weight_scale": "he"},
    "train": {"epochs": 2, "batch_size": 20, "lr": 0.1},
}


def write_cfg(tmp_path, grid, seeds=(0,), **extra):
    raw = {**BASE, **extra, "sweep": {"grid": grid, "seeds": list(seeds)}}
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def test_generators_and_expansion():
    sw = sweep_mod.build({**BASE, "sweep": {"grid": {
        "init.weight_scale": {"logspace": [0, -4, 5]},
        "model.norm": ["none", "batch"],
        "train.lr": {"linspace": [0.1, 0.3, 3]},
        "train.epochs": {"range": [1, 4]}}, "seeds": [0, 1]}})
    assert dict(sw.axes)["init.weight_scale"] == pytest.approx([1, 0.1, 0.01, 1e-3, 1e-4])
    assert dict(sw.axes)["train.lr"] == pytest.approx([0.1, 0.2, 0.3])
    assert dict(sw.axes)["train.epochs"] == [1, 2, 3]
    assert len(sw.points) == 5 * 2 * 3 * 3 * 2
    first = sw.points[0]
    assert first.run_id == "weight_scale=1.0,norm=none,lr=0.1,epochs=1,seed=0"
    assert first.config.name == first.run_id and first.config.init.weight_scale == 1.0
    assert len({p.run_id for p in sw.points}) == len(sw.points)


def test_grid_option_and_seeds_option_override_the_file():
    sw = sweep_mod.build({**BASE, "sweep": {"grid": {"model.norm": ["none"]}, "seeds": [0]}},
                         ["model.norm=batch,layer", "init.weight_scale=logspace:0,-1,2"], [3, 4])
    assert [p.run_id for p in sw.points][:2] == ["norm=batch,weight_scale=1.0,seed=3",
                                                 "norm=batch,weight_scale=1.0,seed=4"]
    assert len(sw.points) == 2 * 2 * 2


def test_ambiguous_leaves_use_full_keys_and_long_ids_are_hashed():
    sw = sweep_mod.build({**BASE, "model": {"hidden": [8], "norm": "batch"}, "sweep": {"grid": {
        "norm.momentum": [0.1], "train.momentum": [0.9], "train.optimizer": ["momentum"]}}})
    assert sw.points[0].run_id == "norm.momentum=0.1,train.momentum=0.9,optimizer=momentum,seed=0"
    long = sweep_mod.run_id({"model.hidden": [100] * 40}, 0, {"model.hidden": "hidden"})
    assert len(long.encode()) <= grid.MAX_RUN_ID_BYTES and "~" in long


def test_whole_sweep_is_validated_before_anything_runs(tmp_path):
    cfg = write_cfg(tmp_path, {"model.norm": ["batch", "bogus"], "model.nrom": [1],
                               "train.lr": {"logspace": [0, 1]}})
    res = invoke("sweep", cfg, "--out", tmp_path / "runs")
    assert res.exit_code == 2
    assert res.output.splitlines() == [
        "error: sweep.grid.model.nrom: unknown key (did you mean model.norm?)",
        "error: sweep.grid.train.lr.logspace: got [0, 1], expected [start, stop, num] with "
        "finite numbers and num an integer from 1 to 100,000",
    ]
    cfg = write_cfg(tmp_path, {"model.norm": ["batch", "bogus"]})
    res = invoke("sweep", cfg, "--out", tmp_path / "runs")
    assert res.exit_code == 2
    assert res.output.strip() == ("error: norm=bogus,seed=0: model.norm: got 'bogus', expected "
                                  "one of none, batch, layer, group, instance, weight")
    assert not (tmp_path / "runs").exists()


def test_dry_run_prints_the_table_and_count(tmp_path):
    cfg = write_cfg(tmp_path, {"model.norm": ["batch", "none"]}, seeds=[0, 1, 2])
    res = invoke("sweep", cfg, "--out", tmp_path / "runs", "--dry-run")
    assert res.exit_code == 0
    lines = res.output.strip().splitlines()
    assert lines[0].split() == ["run_id", "model.norm", "seed"]
    assert lines[1].split() == ["norm=batch,seed=0", "batch", "0"]
    assert lines[-2].startswith("6 runs (2 grid points x 3 seeds)")
    assert re.fullmatch(r"estimated time: about \d+ s with \d+ workers? \(from a few timed steps "
                        r"of each model here\)", lines[-1])
    assert not (tmp_path / "runs").exists()


def test_the_estimate_times_each_kernels_and_counts_figures_only_when_drawn(monkeypatch):
    """A sweep over train.kernels times each kernels' steps (not one for both),
    and --no-plot leaves out each run's figure cost."""
    from bnexp.sweep import estimate

    sw = sweep_mod.build({**BASE, "sweep": {"grid": {"train.kernels": ["numpy", "numba"]},
                                            "seeds": [0, 1, 2]}})
    timed = []

    def step_cost(cfg):
        timed.append(cfg.train.kernels)
        return 1.0 if cfg.train.kernels == "numpy" else 0.5

    monkeypatch.setattr(estimate, "_step_cost", step_cost)
    monkeypatch.setattr(estimate, "_eval_cost", lambda cfg: 0.0)
    steps = 2 * 3  # BASE: 2 epochs of 60 samples in batches of 20
    with_figures = estimate.seconds(sw.points, 2)
    assert sorted(timed) == ["numba", "numpy"]
    assert with_figures == pytest.approx(
        (6 * (estimate.PER_RUN + estimate.PER_FIGURE) + 3 * steps * 1.0 + 3 * steps * 0.5) / 2)
    assert estimate.seconds(sw.points, 2, plot=False) == pytest.approx(
        with_figures - 6 * estimate.PER_FIGURE / 2)


def test_the_estimate_times_an_evaluation_once_per_model_not_per_batch_size(monkeypatch):
    """Evaluation runs in chunks of its own, so a sweep over the batch size
    times each model's evaluation once (and each batch size's steps)."""
    from bnexp.sweep import estimate

    sw = sweep_mod.build({**BASE, "sweep": {"grid": {"train.batch_size": [10, 20, 30],
                                                     "model.norm": ["batch", "none"]},
                                            "seeds": [0]}})
    steps, evals = [], []
    monkeypatch.setattr(estimate, "_step_cost", lambda cfg: steps.append(cfg) or 0.0)
    monkeypatch.setattr(estimate, "_eval_cost", lambda cfg: evals.append(cfg) or 0.0)
    estimate.seconds(sw.points, 1)
    assert len(steps) == 6 and len(evals) == 2


def test_sweep_runs_summarises_and_resumes(tmp_path):
    cfg = write_cfg(tmp_path, {"model.norm": ["batch", "none"]}, seeds=[0, 1])
    out = tmp_path / "runs"
    res = invoke("sweep", cfg, "--out", out, "-j", "2", "--no-plot")
    assert res.exit_code == 0, res.output
    assert "4 runs: 4 completed, 0 diverged, 0 failed, 0 skipped" in res.output
    sdir = out / "sw"
    rows = read(sdir / "summary.csv")
    assert list(rows[0]) == ["run_id", "model.norm", "seed", "status", "final_train_acc",
                             "final_test_acc", "best_test_acc", "final_train_loss",
                             "final_test_loss", "epochs", "seconds"]
    assert [(r["model.norm"], r["seed"], r["status"]) for r in rows] == [
        ("batch", "0", "completed"), ("batch", "1", "completed"),
        ("none", "0", "completed"), ("none", "1", "completed")]
    for r in rows:  # the summary agrees with each run's own metrics
        last = read(sdir / r["run_id"] / "metrics.csv")[-1]
        assert r["final_test_acc"] == last["test_acc"] and r["epochs"] == "2"
    agg = read(sdir / "aggregate.csv")
    assert [(a["model.norm"], a["n"]) for a in agg] == [("batch", "2"), ("none", "2")]
    accs = [float(r["final_test_acc"]) for r in rows[:2]]
    assert float(agg[0]["final_test_acc_mean"]) == pytest.approx(sum(accs) / 2)
    resolved = yaml.safe_load((sdir / "sweep.yaml").read_text())
    assert resolved["sweep"] == {"grid": {"model.norm": ["batch", "none"]}, "seeds": [0, 1]}
    # Identical to what `bnexp train` gives for the same point.
    assert invoke("train", sdir / rows[0]["run_id"] / "config.yaml", "--out", tmp_path / "single",
                  "--no-plot").exit_code == 0
    single = read(tmp_path / "single" / rows[0]["run_id"] / "metrics.csv")
    swept = read(sdir / rows[0]["run_id"] / "metrics.csv")
    assert [r["test_loss"] for r in single] == [r["test_loss"] for r in swept]

    # Resume: nothing to do; then a run "killed mid-way" reruns, and only it.
    res = invoke("sweep", cfg, "--out", out, "--no-plot")
    assert "0 completed, 0 diverged, 0 failed, 4 skipped" in res.output
    victim = sdir / rows[2]["run_id"]
    info = json.loads((victim / "run.json").read_text())
    (victim / "run.json").write_text(json.dumps({**info, "status": "running"}))
    (victim / "metrics.csv").unlink()
    res = invoke("sweep", cfg, "--out", out, "--no-plot")
    assert "1 completed, 0 diverged, 0 failed, 3 skipped" in res.output
    assert json.loads((victim / "run.json").read_text())["status"] == "completed"
    # A run saved before a key existed (here: the CNN keys, and hidden given
    # explicitly as older versions wrote it) is the same config, not a conflict.
    for row in rows:
        saved = yaml.safe_load((sdir / row["run_id"] / "config.yaml").read_text())
        for key in ("arch", "channels", "kernel", "pool", "head"):
            del saved["model"][key]
        (sdir / row["run_id"] / "config.yaml").write_text(yaml.safe_dump(saved))
    res = invoke("sweep", cfg, "--out", out, "--no-plot")
    assert res.exit_code == 0 and "4 skipped" in res.output, res.output
    # A changed config does not silently mix with the old runs.
    res = invoke("sweep", cfg, "--out", out, "--set", "train.lr=0.2", "--no-plot")
    assert res.exit_code == 2
    assert "holds a run of a different config (train.lr differ)" in res.output
    res = invoke("sweep", cfg, "--out", out, "--set", "train.lr=0.2", "--no-plot", "--force")
    assert res.exit_code == 0 and "4 completed" in res.output


@pytest.fixture
def failing_seed(tmp_path, monkeypatch):
    """Sweep workers in which training seed 13 raises (a sitecustomize module on
    their PYTHONPATH patches bnexp.train.train): a failure at run time, after
    every check before the run has passed."""
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(
        "import bnexp.train as t\n"
        "_real = t.train\n"
        "def train(cfg, *args, **kwargs):\n"
        "    if cfg.seed == 13:\n"
        "        raise RuntimeError('injected failure for seed 13')\n"
        "    return _real(cfg, *args, **kwargs)\n"
        "t.train = train\n")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(hook),
                                                                 os.environ.get("PYTHONPATH")])))
    return 13


def test_failing_run_is_isolated_recorded_and_reported(tmp_path, failing_seed):
    cfg = write_cfg(tmp_path, {"model.norm": ["none"]}, seeds=[0, failing_seed])
    res = invoke("sweep", cfg, "--out", tmp_path / "runs", "-j", "1", "--no-plot")
    assert res.exit_code == 1
    assert "1 completed, 0 diverged, 1 failed" in res.output
    sdir = tmp_path / "runs" / "sw"
    reproduce = f"bnexp train {sdir / 'norm=none,seed=13' / 'config.yaml'}"
    assert "1 failed run(s)" in res.output and reproduce in res.output
    statuses = {r["seed"]: r["status"] for r in read(sdir / "summary.csv")}
    assert statuses == {"0": "completed", "13": "failed"}
    info = json.loads((sdir / "norm=none,seed=13" / "run.json").read_text())
    assert info["error"] == "RuntimeError: injected failure for seed 13"
    assert "Traceback" in info["traceback"]
    agg = read(sdir / "aggregate.csv")[0]
    assert (agg["n"], agg["n_failed"]) == ("1", "1")
    # Failed runs are kept on resume, rerun with --retry-failed.
    res = invoke("sweep", cfg, "--out", tmp_path / "runs", "-j", "1", "--no-plot")
    assert "2 skipped" in res.output and res.exit_code == 0
    res = invoke("sweep", cfg, "--out", tmp_path / "runs", "-j", "1", "--no-plot", "--retry-failed")
    assert "1 failed, 1 skipped" in res.output and res.exit_code == 1


def test_fail_fast_stops_at_the_first_failure_and_leaves_the_rest_untouched(tmp_path,
                                                                           failing_seed):
    cfg = write_cfg(tmp_path, {"model.norm": ["none"]}, seeds=[failing_seed, 0])
    res = invoke("sweep", cfg, "--out", tmp_path / "runs", "-j", "1", "--fail-fast", "--no-plot")
    assert res.exit_code == 1
    assert "0 completed, 0 diverged, 1 failed" in res.output
    assert "1 run(s) cancelled by --fail-fast" in res.output
    statuses = {r["seed"]: r["status"] for r in read(tmp_path / "runs" / "sw" / "summary.csv")}
    assert statuses == {"13": "failed", "0": "pending"}  # never started
    res = invoke("sweep", cfg, "--out", tmp_path / "runs", "-j", "1", "--no-plot")
    assert "1 completed, 0 diverged, 0 failed, 1 skipped" in res.output  # resumes the rest
    # A --force sweep that stops early keeps the results it has not yet redone.
    good_run = tmp_path / "runs" / "sw" / "norm=none,seed=0"
    before = (good_run / "metrics.csv").read_bytes()
    res = invoke("sweep", cfg, "--out", tmp_path / "runs", "-j", "1", "--no-plot", "--force",
                 "--fail-fast")
    assert res.exit_code == 1 and "1 run(s) cancelled" in res.output
    assert (good_run / "metrics.csv").read_bytes() == before
    assert json.loads((good_run / "run.json").read_text())["status"] == "completed"


def test_second_sweep_on_the_same_folder_is_refused(tmp_path):
    cfg = write_cfg(tmp_path, {"model.norm": ["none"]})
    with store.lock(tmp_path / "runs" / "sw", "sweep"):
        res = invoke("sweep", cfg, "--out", tmp_path / "runs")
    assert res.exit_code == 2
    assert res.output.strip() == (f"error: {tmp_path / 'runs' / 'sw'} is in use by another bnexp "
                                  f"process (bnexp sweep, pid {os.getpid()} on "
                                  f"{os.uname().nodename}); wait for it to finish or stop it first")


def test_sigterm_cancels_and_the_next_run_resumes(tmp_path):
    cfg = write_cfg(tmp_path, {"train.lr": {"linspace": [0.05, 0.1, 8]}},
                    data={"dataset": "synthetic", "n_train": 3000, "n_test": 500, "dim": 50,
                          "classes": 3},
                    train={"epochs": 6, "batch_size": 20, "lr": 0.1})
    out = tmp_path / "runs"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "bnexp", "sweep", str(cfg), "--out", str(out),
                             "-j", "1", "--no-plot", "-q"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    sdir = out / "sw"
    deadline = time.time() + 60
    while time.time() < deadline:
        done = [d for d in sdir.glob("lr=*") if (d / "run.json").exists()
                and json.loads((d / "run.json").read_text())["status"] == "completed"]
        if done:
            break
        time.sleep(0.05)
    assert done, "no run finished in time"
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "run the same command again to resume" in err
    statuses = []
    for d in sorted(sdir.glob("lr=*")):  # runs never handed out have no folder yet
        info = json.loads((d / "run.json").read_text())  # parses: nothing half-written
        statuses.append(info["status"])
        if info["status"] == "completed":
            assert len(read(d / "metrics.csv")) == 7
    # Runs cut by the stop say so (never "running": nothing runs them any more).
    # (-j 1: the next run is handed out before the finished one's run.json is written,
    # so one run was in flight when the signal came.)
    assert "completed" in statuses and "interrupted" in statuses
    assert set(statuses) <= {"completed", "interrupted"}
    assert not list(sdir.rglob(".*.tmp"))
    # The stopped sweep can be looked at: its summary is current, plot and report say so.
    summary = {r["status"] for r in read(sdir / "summary.csv")}
    assert "completed" in summary and summary <= {"completed", "interrupted", "pending"}
    assert summary - {"pending"} == set(statuses)
    res = invoke("plot", sdir, "--kind", "final", "--x", "train.lr", "--out", tmp_path / "p.png")
    assert res.exit_code == 0, res.output
    res = invoke("report", sdir, "--out", tmp_path / "r.md")
    assert res.exit_code == 0, res.output
    assert f"**Incomplete.** {statuses.count('completed')} of 8 runs finished" in (
        tmp_path / "r.md").read_text()
    res = invoke("sweep", cfg, "--out", out, "-j", "2", "--no-plot")
    assert res.exit_code == 0
    assert f"{statuses.count('completed')} skipped" in res.output
    assert {r["status"] for r in read(sdir / "summary.csv")} == {"completed"}


def test_dask_without_the_extra_gives_an_install_hint(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "distributed", None)
    cfg = write_cfg(tmp_path, {"model.norm": ["none"]})
    res = invoke("sweep", cfg, "--out", tmp_path / "runs", "--executor", "dask",
                 "--address", "tcp://127.0.0.1:1")
    assert res.exit_code == 2
    assert res.output.strip() == 'error: --executor dask needs Dask: pip install "bnexp[dask]"'


def test_dask_executor_end_to_end(tmp_path):
    distributed = pytest.importorskip("distributed")
    cfg = write_cfg(tmp_path, {"model.norm": ["batch", "none"]}, seeds=[0, 1])
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster:
        res = invoke("sweep", cfg, "--out", tmp_path / "runs", "--executor", "dask",
                     "--address", cluster.scheduler_address, "--no-plot")
    assert res.exit_code == 0, res.output
    assert "4 completed" in res.output
    local = invoke("sweep", cfg, "--out", tmp_path / "local", "--no-plot")
    assert local.exit_code == 0
    a = read(tmp_path / "runs" / "sw" / "summary.csv")
    b = read(tmp_path / "local" / "sw" / "summary.csv")
    assert [r["final_test_loss"] for r in a] == [r["final_test_loss"] for r in b]


def test_weight_scale_experiment_is_the_books_figure_with_the_books_settings():
    """ch06/batch_norm_test.py and common/layers.py: eps 10e-7, running mean and
    biased variance from 0 with momentum 0.9 (0.1 here), batches drawn with
    replacement, float64 weights; 784-100x5-10, SGD lr 0.01, 1000 images."""
    sw = sweep_mod.load(experiments.path("weight_scale"))
    assert len(dict(sw.axes)["init.weight_scale"]) == 16 and len(sw.seeds) >= 5
    c = sw.points[0].config
    assert (c.model.hidden, c.model.activation, c.train.lr, c.train.batch_size, c.train.epochs,
            c.data.n_train) == ((100,) * 5, "relu", 0.01, 100, 20, 1000)
    assert (c.norm.eps, c.norm.convention, c.norm.momentum, c.train.sampling,
            c.train.dtype) == (1e-6, "book", 0.1, "replacement", "float64")


def test_aggregate_rows_mean_sample_sd_interval_and_counts():
    from bnexp.stats import t_quantile
    from bnexp.sweep.summary import aggregate_rows

    def row(norm, status, acc, loss=1.0):
        return {"model.norm": norm, "status": status, "final_train_acc": acc,
                "final_test_acc": acc, "best_test_acc": acc, "final_train_loss": loss,
                "final_test_loss": loss, "epochs": 2, "seconds": 1.0}

    rows = [row("batch", "completed", 0.5), row("batch", "diverged", 0.7, 231822.0),
            row("batch", "completed", 0.9), row("batch", "failed", ""),
            row("none", "pending", ""), row("none", "completed", 0.2)]
    batch, none = aggregate_rows(["model.norm"], rows)
    assert (batch["n"], batch["n_diverged"], batch["n_failed"]) == (3, 1, 1)
    assert batch["final_test_acc_mean"] == pytest.approx(0.7)
    assert batch["final_test_acc_std"] == pytest.approx(0.2)  # ddof=1: sqrt(0.08 / 2)
    half = t_quantile(0.975, 2) * 0.2 / 3 ** 0.5
    # An accuracy's interval stays within [0, 1] (Student's t alone reaches 1.197).
    assert 0.7 + half > 1
    assert (batch["final_test_acc_ci_lo"], batch["final_test_acc_ci_hi"]) == pytest.approx(
        (0.7 - half, 1.0))
    assert batch["final_test_acc_n"] == 3
    # A loss is averaged over the runs that did not diverge, with their number.
    assert (batch["final_test_loss_mean"], batch["final_test_loss_n"]) == (1.0, 2)
    assert batch["final_test_loss_ci_lo"] > 0  # its interval: no seeds' spread, bounded below
    # Counts stay non-negative: epochs' interval never starts below 0.
    assert batch["epochs_ci_lo"] >= 0
    assert (none["n"], none["n_diverged"], none["n_failed"]) == (1, 0, 0)
    # One value: the interval a bounded metric has for n = 1 (stats.mean_interval).
    assert none["final_test_acc_std"] == 0.0
    assert (none["final_test_acc_ci_lo"], none["final_test_acc_ci_hi"]) == pytest.approx(
        (0.2 * 0.025, 1 - 0.8 * 0.025))


def test_aggregate_csv_counts_diverged_and_failed_runs(tmp_path, failing_seed):
    cfg = write_cfg(tmp_path, {"train.lr": [0.1, 1e30]}, seeds=[0, 1, failing_seed],
                    model={"hidden": [8, 8], "norm": "none"}, init={"weight_scale": 1.0})
    invoke("sweep", cfg, "--out", tmp_path / "runs", "-j", "2", "--no-plot")
    agg = {r["train.lr"]: r for r in read(tmp_path / "runs" / "sw" / "aggregate.csv")}
    assert {k: (a["n"], a["n_diverged"], a["n_failed"]) for k, a in agg.items()} == {
        "0.1": ("2", "0", "1"), "1e+30": ("2", "2", "1")}
    assert agg["0.1"]["final_test_acc_ci_lo"] not in ("", "nan", "-inf")


def test_summary_files_after_any_updates_equal_a_rebuild_from_all_rows(tmp_path):
    """Summary formats only the changed run's line and its grid point's on an
    update; the files must still be what formatting every row gives."""
    import random

    from bnexp.store import csv_text
    from bnexp.sweep.summary import Summary, aggregate_rows, columns

    sw = sweep_mod.build({**BASE, "sweep": {"grid": {"model.norm": ["batch", "none"],
                                                     "train.lr": [0.1, 0.01]},
                                            "seeds": [0, 1, 2]}})
    summary = Summary(sw, tmp_path)
    rng = random.Random(0)
    for i in range(40):
        p = rng.choice(sw.points)
        status = rng.choice(["running", "completed", "diverged", "failed"])
        acc = rng.random()
        info = {"status": status} if status in ("running", "failed") else {
            "status": status, "best_test_acc": acc, "seconds": 1.5,
            "final": {"epoch": 2, "train_acc": acc, "test_acc": acc / 2, "train_loss": 1 / acc,
                      "test_loss": 2.0}}
        summary.update(p, info)
        rows = [summary.rows[q.run_id] for q in sw.points]
        cols, agg_cols = columns(sw.keys)
        assert (tmp_path / "summary.csv").read_text() == csv_text(rows, cols)
        assert (tmp_path / "aggregate.csv").read_text() == csv_text(
            aggregate_rows(sw.keys, rows), agg_cols)


def test_a_worker_gets_its_next_run_before_the_parent_writes_the_last_one(tmp_path, monkeypatch):
    """Writing a finished run's files takes the parent a while; the next run is
    handed out first, so the worker does not wait for it (one worker here:
    when run i is written, run i+1 is already marked running)."""
    from bnexp import runner

    sw = sweep_mod.build({**BASE, "sweep": {"grid": {"train.lr": [0.1, 0.2, 0.3]},
                                            "seeds": [0]}})
    sdir = tmp_path / "runs" / sw.name
    seen = []
    write = runner.write

    def checking_write(run_dir, cfg, payload):
        ids = [p.run_id for p in sw.points]
        i = ids.index(run_dir.name)
        nxt = store.read_json(sdir / ids[i + 1] / "run.json") if i + 1 < len(ids) else None
        seen.append(nxt and nxt["status"])
        write(run_dir, cfg, payload)

    monkeypatch.setattr(runner, "write", checking_write)
    _, outcome = sweep_mod.execute(sw, tmp_path / "runs", jobs=1, plot=False)
    assert len(outcome.done) == 3
    assert seen == ["running", "running", None]
