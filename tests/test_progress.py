"""Progress you can trust on long work: the train bar moves per step (through a
per-step callback that changes no number), a piped sweep's lines say the
elapsed time and an ETA, `bnexp list` shows whole descriptions wrapped to the
terminal, and `--executor dask` without `--address` runs on a local cluster."""

import importlib
import io
import multiprocessing
import os
import re
import sys

import numpy as np
import pytest
import yaml
from click.testing import CliRunner
from clitools import invoke, read

from bnexp import cli, experiments
from bnexp import train as train_mod
from bnexp.config import from_dict, steps_per_epoch
from bnexp.sweep import Outcome, load

execute_mod = importlib.import_module("bnexp.sweep.execute")  # bnexp.sweep.execute is a function

RAW = {"name": "p", "seed": 3,
       "data": {"dataset": "synthetic", "n_train": 60, "n_test": 30, "dim": 6, "classes": 3},
       "model": {"hidden": [8, 8], "norm": "batch", "dropout": 0.2},
       "init": {"weight_scale": "he"},
       "train": {"epochs": 3, "batch_size": 15, "lr": 0.1, "checkpoint_every": 1},
       "eval": {"diagnostics_every": 2, "step_loss": True}}

# Two tiny runs of the book's network (as the task's issue asks).
TINY = ["--grid", "model.norm=batch,none", "--set", "train.epochs=1",
        "--set", "data.n_train=100", "--set", "data.n_test=50", "--no-plot"]


# --- the per-step callback --------------------------------------------------------------

def test_on_step_is_called_once_per_step_and_changes_no_number():
    cfg = from_dict(RAW)
    plain = train_mod.train(cfg)
    calls, ckpts = [], []
    seen = train_mod.train(cfg, on_step=lambda step, total: calls.append((step, total)),
                           on_checkpoint=ckpts.append)
    total = cfg.train.epochs * steps_per_epoch(cfg, 60)
    assert total == 12  # 60 samples in batches of 15: 4 steps per epoch
    assert calls == [(s, total) for s in range(1, total + 1)]
    assert untimed(seen.metrics) == untimed(plain.metrics) and seen.steps == plain.steps
    assert seen.diagnostics == plain.diagnostics
    a, b = plain.model.state_dict(), seen.model.state_dict()
    assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)
    # Resumed after epoch 1: the steps count on from the checkpoint's.
    calls.clear()
    again = train_mod.train(cfg, on_step=lambda step, total: calls.append((step, total)),
                            resume=ckpts[0])
    assert calls == [(s, total) for s in range(5, total + 1)]
    assert untimed(again.metrics) == untimed(plain.metrics)


def untimed(rows):
    """Metrics rows without their wall time (``elapsed``)."""
    return [{k: v for k, v in r.items() if k != "elapsed"} for r in rows]


def test_the_train_bar_moves_within_an_epoch_at_most_every_bar_seconds(monkeypatch):
    """The CLI's on_step redraws only when BAR_SECONDS have passed since the last redraw."""
    import time

    clock = [1000.0]
    monkeypatch.setattr(time, "monotonic", lambda: clock[0])
    monkeypatch.setattr(cli, "_on_terminal", lambda: True)
    monkeypatch.setattr(sys, "stderr", io.StringIO())
    bar, on_eval, on_step = cli._train_progress(from_dict(RAW), quiet=False)
    try:
        assert bar.unit == "step"
        on_step(1, 12)
        assert (bar.n, bar.total) == (1, 12)
        clock[0] += cli.BAR_SECONDS / 2
        on_step(2, 12)
        on_step(3, 12)
        assert bar.n == 1  # too soon: nothing but a clock read
        clock[0] += cli.BAR_SECONDS
        on_step(4, 12)
        assert bar.n == 4  # within the first epoch (4 steps)
    finally:
        bar.close()
    _, _, quiet_step = cli._train_progress(from_dict(RAW), quiet=True)
    assert quiet_step is None  # --quiet: no per-step call at all


def test_train_on_a_terminal_shows_a_bar_over_the_steps(tmp_path, monkeypatch):
    monkeypatch.setattr(cli, "_on_terminal", lambda: True)
    cfg = tmp_path / "p.yaml"
    cfg.write_text(yaml.safe_dump(RAW))
    res = invoke("train", cfg, "--out", tmp_path / "runs", "--no-plot")
    assert res.exit_code == 0, res.output
    assert "12/12" in res.output and "step" in res.output and "epoch=3/3" in res.output


# --- a piped sweep's lines --------------------------------------------------------------

LINE = re.compile(r"^\[(\d)/2\] norm=\w+,seed=0: completed, test acc \d\.\d{3} in \d+\.\d s; "
                  r"elapsed \d+s, eta \d+s$")


def test_a_piped_sweep_prints_elapsed_and_eta_after_the_rest_of_its_line(tmp_path):
    res = invoke("sweep", "book_bn", *TINY, "--out", tmp_path, "-j", "1")
    assert res.exit_code == 0, res.output
    lines = [ln for ln in res.output.splitlines() if ln.startswith("[")]
    assert [LINE.match(ln).group(1) for ln in lines] == ["1", "2"], lines
    assert lines[-1].endswith(", eta 0s")  # nothing left


def test_eta_is_the_mean_run_time_times_the_runs_left_over_the_workers(monkeypatch, capsys):
    o = Outcome(done=["a", "b"], skipped=["c"], seconds=[10.0, 20.0], workers=2)
    assert o.eta(10) == 15.0 * 7 / 2
    assert o.eta(4) == 15.0  # one run left keeps one worker busy, not two
    assert o.eta(3) == 0
    assert Outcome(skipped=["c"], workers=2).eta(10) is None
    assert [cli._clock(s) for s in (0.4, 59.6, 83, 250, 3725)] == [
        "0s", "1m00s", "1m23s", "4m10s", "1h02m"]
    sw = type("Sw", (), {"name": "s", "points": [0] * 10})()
    _, progress = cli._sweep_progress(sw, quiet=False)
    progress("x", {"status": "interrupted"}, Outcome(failed=["x"], workers=2))
    assert re.fullmatch(r"\[1/10\] x: interrupted; elapsed 0s, eta \?\n", capsys.readouterr().err)


# --- bnexp list -------------------------------------------------------------------------

def test_list_shows_whole_descriptions_wrapped_to_a_narrow_terminal():
    res = CliRunner(env={"COLUMNS": "60"}).invoke(cli.main, ["list"])
    assert res.exit_code == 0, res.output
    lines = res.output.splitlines()
    assert max(len(ln) for ln in lines) <= 60
    indent = lines[0].index("description")
    described, name = {}, None
    for ln in lines[1:]:
        if ln.startswith(" "):  # a hanging indent under the description column
            assert ln[:indent].strip() == "" and ln[indent] != " "
            described[name] += " " + ln[indent:]
        else:
            name = ln.split()[0]
            described[name] = ln[indent:]
    assert sorted(described) == experiments.names()
    for name, text in described.items():
        comment = " ".join(ln.lstrip("#").strip() for ln in
                           experiments.path(name).read_text().splitlines()
                           if ln.startswith("#"))
        text = text.removesuffix(" " + experiments.needs_note(experiments.missing_data(
            [p.config for p in load(experiments.path(name)).points])))
        described[name] = text  # what the list adds for data not yet here, aside
        assert comment.startswith(text), name  # the comment's opening, word for word
        assert re.search(r"[.?!][\"')]*$", text), (name, text)  # ends with its sentence
        assert not re.search(r"\b(al|sec|ch)\.$", text), (name, text)  # not at an abbreviation
    assert described == {name: experiments.describe(name) for name in described}
    assert described["batch_renorm"].endswith(" 4000 mnist5k training images, 10 epochs.")
    assert described["noisy_bn"] == 'Santurkar et al. 2018, section 2.1: "noisy" BN.'


# --- Dask without --address -------------------------------------------------------------

def test_dask_without_an_address_runs_on_a_local_cluster_as_the_local_executor(tmp_path):
    pytest.importorskip("distributed")
    env = {v: os.environ.get(v) for v in execute_mod.BLAS_ENV}
    res = invoke("sweep", "book_bn", *TINY, "--out", tmp_path / "dask", "--executor", "dask",
                 "-j", "2")
    assert res.exit_code == 0, res.output
    assert "2 runs: 2 completed, 0 diverged, 0 failed" in res.output
    assert multiprocessing.active_children() == []  # the cluster's workers are gone
    assert {v: os.environ.get(v) for v in execute_mod.BLAS_ENV} == env
    local = invoke("sweep", "book_bn", *TINY, "--out", tmp_path / "local", "-j", "2")
    assert local.exit_code == 0, local.output
    a = read(tmp_path / "dask" / "book-bn" / "summary.csv")
    b = read(tmp_path / "local" / "book-bn" / "summary.csv")
    numbers = ["run_id", "status", "final_train_acc", "final_test_acc", "final_train_loss",
               "final_test_loss"]
    assert [[r[k] for k in numbers] for r in a] == [[r[k] for k in numbers] for r in b]
    plan = invoke("sweep", "book_bn", *TINY, "--out", tmp_path / "x", "--executor", "dask",
                  "--dry-run")
    cores = os.cpu_count() or 1
    assert f"with {cores} worker{'s' if cores > 1 else ''} " in plan.output


def test_the_local_cluster_is_closed_on_ctrl_c(tmp_path, monkeypatch):
    pytest.importorskip("distributed")
    closed = []
    real_close = execute_mod._close_cluster

    def close(*args):
        closed.append(True)
        real_close(*args)

    def interrupted(pool, width, *args, **kw):
        assert width == 2 and pool.submit(sum, [1, 2]).result() == 3  # the cluster works
        raise KeyboardInterrupt

    monkeypatch.setattr(execute_mod, "_close_cluster", close)
    monkeypatch.setattr(execute_mod, "_run_all", interrupted)
    res = invoke("sweep", "book_bn", *TINY, "--out", tmp_path, "--executor", "dask", "-j", "2")
    assert res.exit_code == 130 and "interrupted: finished runs are kept" in res.output
    assert closed == [True] and multiprocessing.active_children() == []
