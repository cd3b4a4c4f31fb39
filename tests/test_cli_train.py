"""``bnexp train`` through the CLI: files, messages, exit codes, reproducibility."""

import json
import subprocess
import sys

import numpy as np
import pytest
import yaml
from clitools import invoke, read

from bnexp import config
from bnexp.train import train

TINY = """
name: tiny
seed: 3
data: {dataset: synthetic, n_train: 120, n_test: 60, dim: 8, classes: 3}
model: {hidden: [16, 16], norm: batch}
init: {weight_scale: he}
train: {epochs: 3, batch_size: 20, lr: 0.1}
eval: {diagnostics_every: 2, step_loss: true}
"""


@pytest.fixture
def tiny(tmp_path):
    path = tmp_path / "tiny.yaml"
    path.write_text(TINY)
    return path


def test_train_writes_every_file_with_the_right_columns(tiny, tmp_path):
    out = tmp_path / "runs"
    res = invoke("train", tiny, "--out", out)
    assert res.exit_code == 0, res.output
    run = out / "tiny"
    assert sorted(p.name for p in run.iterdir()) == [
        "config.yaml", "curves.png", "diagnostics.csv", "metrics.csv", "model.npz", "run.json",
        "steps.csv"]
    metrics = read(run / "metrics.csv")
    assert list(metrics[0]) == ["epoch", "step", "train_loss", "train_acc", "test_loss",
                                "test_acc", "elapsed"]
    assert [int(r["epoch"]) for r in metrics] == [0, 1, 2, 3]
    assert [int(r["step"]) for r in metrics] == [0, 6, 12, 18]  # 120 / 20 steps per epoch
    diag = read(run / "diagnostics.csv")
    assert list(diag[0])[:4] == ["step", "epoch", "layer", "p15"]
    assert {int(r["step"]) for r in diag} == set(range(0, 18, 2))
    assert {int(r["layer"]) for r in diag} == {1, 2}
    assert all(float(r["p15"]) <= float(r["p50"]) <= float(r["p85"]) for r in diag)
    assert len(read(run / "steps.csv")) == 18
    info = json.loads((run / "run.json").read_text())
    assert info["status"] == "completed" and info["seed"] == 3
    prov = info["provenance"]
    assert {"bnexp", "commit", "numpy", "python", "blas", "cpu", "engine"} <= set(prov)
    assert prov["blas"]["threads"] == 1 and prov["engine"] == "numpy"
    assert info["final"]["test_acc"] == float(metrics[-1]["test_acc"])
    assert (run / "curves.png").read_bytes()[:4] == b"\x89PNG"
    assert "tiny: completed" in res.output
    assert not [p for p in run.iterdir() if p.name.startswith(".")]  # no temporary files


def test_same_config_and_seed_give_identical_metrics(tiny, tmp_path):
    for name in ("a", "b"):
        assert invoke("train", tiny, "--out", tmp_path, "--set", f"name={name}",
                      "--no-plot").exit_code == 0
    strip = [{k: v for k, v in r.items() if k != "elapsed"} for r in
             read(tmp_path / "a" / "metrics.csv")]
    assert strip == [{k: v for k, v in r.items() if k != "elapsed"} for r in
                     read(tmp_path / "b" / "metrics.csv")]
    assert invoke("train", tiny, "--out", tmp_path, "--set", "name=c", "--set", "seed=4",
                  "--no-plot").exit_code == 0
    assert read(tmp_path / "c" / "metrics.csv")[-1]["train_loss"] != strip[-1]["train_loss"]


def test_resolved_config_reproduces_the_run(tiny, tmp_path):
    assert invoke("train", tiny, "--out", tmp_path / "one", "--no-plot").exit_code == 0
    resolved = tmp_path / "one" / "tiny" / "config.yaml"
    assert yaml.safe_load(resolved.read_text())["train"]["sampling"] == "shuffle"
    assert invoke("train", resolved, "--out", tmp_path / "two", "--no-plot").exit_code == 0
    a, b = (read(tmp_path / d / "tiny" / "metrics.csv") for d in ("one", "two"))
    assert [r["test_loss"] for r in a] == [r["test_loss"] for r in b]


@pytest.mark.parametrize("setting,message", [
    ("model.nrom=none", "error: model.nrom: unknown key (did you mean model.norm?)"),
    ("train.lr=fast", "error: train.lr: got 'fast', expected a number > 0"),
    ("model.dropout=1.5", "error: model.dropout: got 1.5, expected a number in [0, 0.99]"),
    ("model.groups=5", "error: model.groups: got 5, expected a divisor of every hidden width "
                       "(16 is not divisible by 5; groups that work: 1, 2, 4, 8, 16)"),
])
def test_bad_settings_exit_2_with_one_line_and_write_nothing(tiny, tmp_path, setting, message):
    extra = ["--set", "model.norm=group"] if "groups" in setting else []
    res = invoke("train", tiny, "--out", tmp_path / "runs", "--set", setting, *extra)
    assert res.exit_code == 2
    assert res.output.strip() == message
    assert not (tmp_path / "runs").exists()


def test_malformed_yaml_exits_2(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("model:\n  norm: batch\n hidden: [1\n")
    res = invoke("train", bad, "--out", tmp_path / "runs")
    assert res.exit_code == 2
    assert res.output.startswith(f"error: {bad}: invalid YAML at line 3, column 2")
    assert "Traceback" not in res.output and len(res.output.strip().splitlines()) == 1


def test_existing_run_is_kept_unless_forced(tiny, tmp_path):
    assert invoke("train", tiny, "--out", tmp_path, "--no-plot").exit_code == 0
    before = (tmp_path / "tiny" / "metrics.csv").read_bytes()
    res = invoke("train", tiny, "--out", tmp_path, "--set", "seed=9")
    assert res.exit_code == 2 and "already holds a run; pass --force" in res.output
    assert (tmp_path / "tiny" / "metrics.csv").read_bytes() == before
    res = invoke("train", tiny, "--out", tmp_path, "--set", "seed=9", "--force", "--no-plot",
                 "--set", "eval.diagnostics_every=0")
    assert res.exit_code == 0
    assert (tmp_path / "tiny" / "metrics.csv").read_bytes() != before
    assert not (tmp_path / "tiny" / "diagnostics.csv").exists()  # stale file removed


def test_divergence_is_a_result_not_a_crash(tmp_path):
    cfg_path = tmp_path / "div.yaml"
    cfg_path.write_text("name: div\ndata: {n_train: 200, n_test: 100}\nmodel: {norm: none}\n"
                        "init: {weight_scale: 1.0}\ntrain: {epochs: 5}\n")
    res = invoke("train", cfg_path, "--out", tmp_path)
    assert res.exit_code == 0, res.output
    assert "div: diverged at epoch" in res.output
    info = json.loads((tmp_path / "div" / "run.json").read_text())
    assert info["status"] == "diverged" and info["diverged_at"]["step"] >= 0
    rows = read(tmp_path / "div" / "metrics.csv")
    assert rows and all(np.isfinite(float(r["train_loss"])) for r in rows)


def test_float32_run_matches_float64_run():
    base = config.from_dict(yaml.safe_load(TINY))
    r32 = train(base)
    r64 = train(config.from_dict({**yaml.safe_load(TINY), "train": {
        **yaml.safe_load(TINY)["train"], "dtype": "float64"}}))
    l32 = [r["train_loss"] for r in r32.metrics]
    l64 = [r["train_loss"] for r in r64.metrics]
    np.testing.assert_allclose(l32, l64, rtol=1e-4)
    assert [r["test_acc"] for r in r32.metrics] == pytest.approx(
        [r["test_acc"] for r in r64.metrics], abs=2 / 60)


def test_book_setting_bn_learns_where_plain_net_does_not():
    """Deep Learning from Scratch ch. 6: 784-100x5-10, ReLU, SGD lr 0.01, batch 100,
    1000 mnist5k images, 20 epochs. Measured (seed 0): BN at weight scale 0.01 reaches
    train accuracy 0.999; without BN at 1e-4 the net stays at chance (0.100)."""
    bn = train(config.from_dict({"model": {"norm": "batch"}, "init": {"weight_scale": 0.01}}))
    plain = train(config.from_dict({"model": {"norm": "none"}, "init": {"weight_scale": 1e-4}}))
    assert bn.metrics[-1]["train_acc"] > 0.9
    assert plain.metrics[-1]["train_acc"] < 0.2


def test_help_lists_commands_with_examples_and_module_entry_point():
    res = invoke("--help")
    assert res.exit_code == 0 and "train" in res.output and "Example:" in res.output
    assert "Example:" in invoke("train", "--help").output
    out = subprocess.run([sys.executable, "-m", "bnexp", "--version"], capture_output=True,
                         text=True, check=True)
    assert out.stdout.startswith("bnexp, version")


def test_cli_starts_without_heavy_imports():
    """`bnexp --help` stays fast: numpy, matplotlib and tqdm load only when a command needs them."""
    code = ("import sys, bnexp.cli; "
            "print(sorted(m for m in ('numpy', 'matplotlib', 'tqdm') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"



def test_threads_option_reaches_blas_before_numpy_loads(tmp_path):
    cfg = tmp_path / "t.yaml"
    cfg.write_text("name: t\ndata: {dataset: synthetic, n_train: 40, n_test: 20, dim: 4}\n"
                   "model: {hidden: [8]}\ntrain: {epochs: 1, batch_size: 10}\n")
    code = """
import os, sys
from bnexp.cli import main
main(sys.argv[1:], standalone_mode=False)
try:
    from threadpoolctl import threadpool_info
    blas = sorted({i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"})
except ImportError:
    blas = "n/a"
print(os.environ.get("OPENBLAS_NUM_THREADS"), blas)
"""
    out = subprocess.run([sys.executable, "-c", code, "train", str(cfg), "--out", str(tmp_path),
                          "--threads", "1", "-q", "--no-plot"], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    env, blas = out.stdout.split(maxsplit=1)
    assert env == "1" and blas.strip() in ("[1]", "n/a")
    assert (tmp_path / "t" / "metrics.csv").exists()
