"""``bnexp sweep``: expansion, validation, parallel runs, resume, failures, locking."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from clitools import invoke, read
from idxdata import write_idx_set

from bnexp import sweep as sweep_mod

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
    assert first.run_id == "weight_scale=1,norm=none,lr=0.1,epochs=1,seed=0"
    assert first.config.name == first.run_id and first.config.init.weight_scale == 1.0
    assert len({p.run_id for p in sw.points}) == len(sw.points)


def test_grid_option_and_seeds_option_override_the_file():
    sw = sweep_mod.build({**BASE, "sweep": {"grid": {"model.norm": ["none"]}, "seeds": [0]}},
                         ["model.norm=batch,layer", "init.weight_scale=logspace:0,-1,2"], [3, 4])
    assert [p.run_id for p in sw.points][:2] == ["norm=batch,weight_scale=1,seed=3",
                                                 "norm=batch,weight_scale=1,seed=4"]
    assert len(sw.points) == 2 * 2 * 2


def test_ambiguous_leaves_use_full_keys_and_long_ids_are_hashed():
    sw = sweep_mod.build({**BASE, "model": {"hidden": [8], "norm": "batch"}, "sweep": {"grid": {
        "norm.momentum": [0.1], "train.momentum": [0.9], "train.optimizer": ["momentum"]}}})
    assert sw.points[0].run_id == "norm.momentum=0.1,train.momentum=0.9,optimizer=momentum,seed=0"
    long = sweep_mod.run_id({"model.hidden": [100] * 40}, 0, {"model.hidden": "hidden"})
    assert len(long) <= sweep_mod.MAX_RUN_ID and "~" in long


def test_whole_sweep_is_validated_before_anything_runs(tmp_path):
    cfg = write_cfg(tmp_path, {"model.norm": ["batch", "bogus"], "model.nrom": [1],
                               "train.lr": {"logspace": [0, 1]}})
    res = invoke("sweep", cfg, "--out", tmp_path / "runs")
    assert res.exit_code == 2
    assert res.output.splitlines() == [
        "error: sweep.grid.model.nrom: unknown key (did you mean model.norm?)",
        "error: sweep.grid.train.lr.logspace: got [0, 1], expected [start, stop, num] with num "
        "an integer >= 1",
    ]
    cfg = write_cfg(tmp_path, {"model.norm": ["batch", "bogus"]})
    res = invoke("sweep", cfg, "--out", tmp_path / "runs")
    assert res.exit_code == 2
    assert res.output.strip() == ("error: norm=bogus,seed=0: model.norm: got 'bogus', expected "
                                  "one of none, batch, layer, group")
    assert not (tmp_path / "runs").exists()


def test_dry_run_prints_the_table_and_count(tmp_path):
    cfg = write_cfg(tmp_path, {"model.norm": ["batch", "none"]}, seeds=[0, 1, 2])
    res = invoke("sweep", cfg, "--out", tmp_path / "runs", "--dry-run")
    assert res.exit_code == 0
    lines = res.output.strip().splitlines()
    assert lines[0].split() == ["run_id", "model.norm", "seed"]
    assert lines[1].split() == ["norm=batch,seed=0", "batch", "0"]
    assert lines[-1].startswith("6 runs (2 grid points x 3 seeds)")
    assert not (tmp_path / "runs").exists()


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
    # A changed config does not silently mix with the old runs.
    res = invoke("sweep", cfg, "--out", out, "--set", "train.lr=0.2", "--no-plot")
    assert res.exit_code == 2 and "holds a run of a different config (train.lr differ)" in res.output
    res = invoke("sweep", cfg, "--out", out, "--set", "train.lr=0.2", "--no-plot", "--force")
    assert res.exit_code == 0 and "4 completed" in res.output


def test_failing_run_is_isolated_recorded_and_reported(tmp_path):
    good = write_idx_set(tmp_path / "good", n_train=200, n_test=60)
    bad = write_idx_set(tmp_path / "bad", n_train=200, n_test=60)
    (bad / "t10k-images-idx3-ubyte.gz").write_bytes(b"\x1f\x8b garbage")  # exists, unreadable
    cfg = write_cfg(tmp_path, {"data.root": [str(good), str(bad)]},
                    data={"dataset": "mnist", "n_train": 100, "n_test": 50})
    res = invoke("sweep", cfg, "--out", tmp_path / "runs", "-j", "1", "--no-plot")
    assert res.exit_code == 1
    assert "1 completed, 0 diverged, 1 failed" in res.output
    assert "1 failed run(s)" in res.output and "bnexp train" in res.output
    sdir = tmp_path / "runs" / "sw"
    statuses = {r["data.root"]: r["status"] for r in read(sdir / "summary.csv")}
    assert statuses == {str(good): "completed", str(bad): "failed"}
    failed = next(p for p in sdir.iterdir() if p.is_dir() and "bad" in p.name)
    info = json.loads((failed / "run.json").read_text())
    assert info["error"].startswith("DataError:") and "Traceback" in info["traceback"]
    # Failed runs are kept on resume, rerun with --retry-failed.
    res = invoke("sweep", cfg, "--out", tmp_path / "runs", "-j", "1", "--no-plot")
    assert "2 skipped" in res.output and res.exit_code == 0
    res = invoke("sweep", cfg, "--out", tmp_path / "runs", "-j", "1", "--no-plot", "--retry-failed")
    assert "1 failed, 1 skipped" in res.output and res.exit_code == 1


def test_fail_fast_stops_at_the_first_failure_and_leaves_the_rest_untouched(tmp_path):
    bad = write_idx_set(tmp_path / "bad", n_train=200, n_test=60)
    (bad / "t10k-images-idx3-ubyte.gz").write_bytes(b"\x1f\x8b garbage")
    good = write_idx_set(tmp_path / "good", n_train=200, n_test=60)
    cfg = write_cfg(tmp_path, {"data.root": [str(bad), str(good)]},
                    data={"dataset": "mnist", "n_train": 100, "n_test": 50})
    res = invoke("sweep", cfg, "--out", tmp_path / "runs", "-j", "1", "--fail-fast", "--no-plot")
    assert res.exit_code == 1
    assert "0 completed, 0 diverged, 1 failed" in res.output
    assert "1 run(s) cancelled by --fail-fast" in res.output
    statuses = {r["data.root"]: r["status"] for r in read(tmp_path / "runs" / "sw" / "summary.csv")}
    assert statuses == {str(bad): "failed", str(good): "missing"}  # never started
    res = invoke("sweep", cfg, "--out", tmp_path / "runs", "-j", "1", "--no-plot")
    assert "1 completed, 0 diverged, 0 failed, 1 skipped" in res.output  # resumes the rest
    # A --force sweep that stops early keeps the results it has not yet redone.
    good_run = next(p for p in (tmp_path / "runs" / "sw").iterdir() if "good" in p.name)
    before = (good_run / "metrics.csv").read_bytes()
    res = invoke("sweep", cfg, "--out", tmp_path / "runs", "-j", "1", "--no-plot", "--force",
                 "--fail-fast")
    assert res.exit_code == 1 and "1 run(s) cancelled" in res.output
    assert (good_run / "metrics.csv").read_bytes() == before
    assert json.loads((good_run / "run.json").read_text())["status"] == "completed"


def test_second_sweep_on_the_same_folder_is_refused(tmp_path):
    cfg = write_cfg(tmp_path, {"model.norm": ["none"]})
    with sweep_mod.lock(tmp_path / "runs" / "sw"):
        res = invoke("sweep", cfg, "--out", tmp_path / "runs")
    assert res.exit_code == 2
    assert res.output.strip() == (f"error: {tmp_path / 'runs' / 'sw'} is in use by another sweep "
                                  f"(pid {os.getpid()} on {os.uname().nodename}); wait for it to "
                                  "finish or stop it first")


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
    assert "completed" in statuses and set(statuses) <= {"completed", "running"}
    assert not list(sdir.rglob(".*.tmp"))
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


def test_weight_scale_config_is_the_books_figure():
    sw = sweep_mod.load(Path(__file__).parents[1] / "configs" / "weight_scale.yaml")
    assert len(dict(sw.axes)["init.weight_scale"]) == 16 and sw.seeds == [0, 1, 2]
    c = sw.points[0].config
    assert (c.model.hidden, c.model.activation, c.train.lr, c.train.batch_size, c.train.epochs,
            c.data.n_train) == ((100,) * 5, "relu", 0.01, 100, 20, 1000)
