"""Keeping what was trained: model files and `bnexp eval`, checkpoints and
resuming (in-process and after kill -9), and BatchNorm folding."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import yaml
from clitools import invoke, read

from bnexp import config
from bnexp.engine.fold import FoldError, fold_batchnorm
from bnexp.engine.model import NormSettings, build, cnn_layers, mlp_layers
from bnexp.engine.spec import describe, rebuild
from bnexp.modelfile import checkpoint_bytes, load_checkpoint, load_model
from bnexp.store import atomic_write
from bnexp.train import train

SMALL = {"name": "small", "seed": 5,
         "data": {"dataset": "synthetic", "n_train": 240, "n_test": 60, "dim": 12, "classes": 3},
         "model": {"hidden": [16, 16], "norm": "batch", "dropout": 0.2},
         "init": {"weight_scale": "he"},
         "train": {"epochs": 4, "batch_size": 20, "lr": 0.01, "optimizer": "adam",
                   "checkpoint_every": 1},
         "eval": {"diagnostics_every": 5, "step_loss": True}}


def no_elapsed(rows):
    return [{k: v for k, v in r.items() if k != "elapsed"} for r in rows]


def randomized(net, rng):
    """Parameters and BN running statistics away from their starting values."""
    for layer in net.layers:
        for value in layer.params.values():
            value[...] = rng.standard_normal(value.shape)
        if "running_mean" in layer.buffers:
            layer.buffers["running_mean"][...] = rng.standard_normal(layer.D)
            layer.buffers["running_var"][...] = rng.uniform(0.3, 3.0, layer.D)
    return net


@pytest.mark.parametrize("dtype,tol", [(np.float64, 1e-12), (np.float32, 1e-5)])
@pytest.mark.parametrize("arch", ["mlp", "cnn"])
@pytest.mark.parametrize("affine", [True, False])
def test_folding_gives_the_same_logits(dtype, tol, arch, affine):
    rng = np.random.default_rng(1)
    specs, shape = ((mlp_layers([9, 7], norm="batch"), (6,)) if arch == "mlp" else
                    (cnn_layers([4, 6], norm="batch", pool="avg"), (1, 8, 8)))
    net = randomized(build(specs, shape, 5, rng=rng, norm=NormSettings("batch", affine=affine),
                           weight_scale="he", dtype=dtype), rng)
    folded, names = fold_batchnorm(net)
    assert names == ["batchnorm1", "batchnorm2"]
    assert not any("norm" in n for n in folded.names)
    x = rng.standard_normal((20, int(np.prod(shape)))).astype(dtype)
    a = net.forward(x).astype(np.float64)
    b = folded.forward(x).astype(np.float64)
    assert np.abs(a - b).max() <= tol * np.abs(a).max()
    assert np.abs(a - b).max() > 0 or dtype == np.float64  # not the same arithmetic


@pytest.mark.parametrize("norm,placement,track,line", [
    ("batch", "after", True, "batchnorm1: follows relu1, not a Linear or Conv2d"),
    ("batch", "before", False, "batchnorm1: keeps no running statistics"),
    ("layer", "before", True, "layernorm1: LayerNorm normalizes each sample"),
    ("group", "before", True, "groupnorm1: GroupNorm normalizes each sample"),
    ("none", "before", True, "no BatchNorm to fold"),
])
def test_what_cannot_be_folded_is_refused_with_the_reason(norm, placement, track, line):
    net = build(mlp_layers([8], norm=norm, placement=placement), (4,), 3,
                rng=np.random.default_rng(0),
                norm=NormSettings(norm, groups=2, track_running_stats=track))
    with pytest.raises(FoldError) as info:
        fold_batchnorm(net)
    assert str(info.value).startswith(line)


def test_instance_norm_is_refused_on_a_cnn():
    net = build(cnn_layers([4], norm="instance"), (1, 6, 6), 3, rng=np.random.default_rng(0),
                norm=NormSettings("instance"))
    with pytest.raises(FoldError, match="instancenorm1: InstanceNorm normalizes each sample"):
        fold_batchnorm(net)


def test_a_described_network_rebuilds_to_the_same_function():
    rng = np.random.default_rng(2)
    for specs, shape, norm in ((mlp_layers([5], norm="layer", dropout=0.3), (4,), "layer"),
                               (cnn_layers([4], norm="instance", head="gap"), (1, 6, 6),
                                "instance")):
        net = randomized(build(specs, shape, 3, rng=rng, norm=NormSettings(norm),
                               dtype=np.float64), rng)
        twin = rebuild(json.loads(json.dumps(describe(net))))
        twin.load_state_dict(net.state_dict())
        x = rng.standard_normal((7, int(np.prod(shape))))
        np.testing.assert_array_equal(twin.forward(x), net.forward(x))


@pytest.mark.parametrize("kernels,dropout", [("numpy", 0.2), ("numba", 0.2), ("numba", 0.0)])
def test_resuming_from_any_checkpoint_gives_the_uninterrupted_run(tmp_path, kernels, dropout):
    """Adam's moments, dropout's and the batches' random streams, BN's running
    statistics, diagnostics and step losses all carry over (through the file
    format), on either kernels (numba without dropout: the whole compiled pass;
    with a cumulative running average, whose weights come from the batch count)."""
    if kernels == "numba":
        pytest.importorskip("numba")
    cfg = config.from_dict({**SMALL, "model": {**SMALL["model"], "dropout": dropout},
                            "norm": {"momentum": 0.1 if dropout else None},
                            "train": {**SMALL["train"], "kernels": kernels}})
    saved = []
    full = train(cfg, on_checkpoint=lambda c: saved.append(checkpoint_bytes(c, "cfg")))
    assert len(saved) == 3  # after epochs 1, 2, 3 (not after the last)
    for i, blob in enumerate(saved):
        path = tmp_path / f"checkpoint-{i}.npz"
        path.write_bytes(blob)
        ckpt, text = load_checkpoint(path)
        assert text == "cfg"
        resumed = train(cfg, resume=ckpt)
        assert no_elapsed(resumed.metrics) == no_elapsed(full.metrics)
        assert resumed.diagnostics == full.diagnostics and resumed.steps == full.steps
        for k, v in full.model.state_dict().items():
            np.testing.assert_array_equal(resumed.model.state_dict()[k], v, err_msg=k)


def test_a_resume_without_the_optimizer_state_would_differ():
    """The guard above can fail: dropping Adam's moments changes the result."""
    cfg = config.from_dict(SMALL)
    saved = []
    full = train(cfg, on_checkpoint=saved.append)
    ckpt = saved[1]
    ckpt.optimizer = {k: np.zeros_like(v) if v.ndim else v for k, v in ckpt.optimizer.items()}
    assert no_elapsed(train(cfg, resume=ckpt).metrics) != no_elapsed(full.metrics)


def test_eval_rebuilds_the_model_and_matches_the_last_evaluation(tmp_path):
    for raw in (SMALL, {"name": "cnn", "seed": 2, "data": {"n_train": 200, "n_test": 100},
                        "model": {"arch": "cnn", "channels": [4, 8], "norm": "batch"},
                        "init": {"weight_scale": "he"},
                        "train": {"epochs": 2, "batch_size": 20, "lr": 0.05}}):
        path = tmp_path / f"{raw['name']}.yaml"
        path.write_text(yaml.safe_dump(raw))
        assert invoke("train", path, "--out", tmp_path / "runs", "--no-plot").exit_code == 0
        run = tmp_path / "runs" / raw["name"]
        assert not (run / "checkpoint.npz").exists()  # removed when the run finished
        res = invoke("eval", run)
        assert res.exit_code == 0, res.output
        last = read(run / "metrics.csv")[-1]
        lines = res.output.splitlines()
        assert lines[0].startswith(f"train: loss {float(last['train_loss']):.6g}, accuracy "
                                   f"{float(last['train_acc']):.6g}")
        assert all("equals the run's evaluation at epoch" in line for line in lines)
        net, meta = load_model(run / "model.npz")
        assert meta["run"] == raw["name"] and net.names[0] in ("linear1", "conv1")


def test_eval_says_when_the_model_does_not_match(tmp_path):
    path = tmp_path / "small.yaml"
    path.write_text(yaml.safe_dump(SMALL))
    invoke("train", path, "--out", tmp_path, "--no-plot")
    run = tmp_path / "small"
    net, meta = load_model(run / "model.npz")
    net.layers[0].params["W"][0, 0] += 1.0
    from bnexp.modelfile import model_bytes
    atomic_write(run / "model.npz", model_bytes(net, **{k: v for k, v in meta.items()
                                                        if k not in ("kind", "network")}))
    res = invoke("eval", run)
    assert res.exit_code == 1 and "DIFFERS" in res.output


def test_fold_command_writes_a_checked_model_and_refuses_with_one_line(tmp_path):
    for name, extra in (("before", {}), ("after", {"model": {**SMALL["model"],
                                                             "placement": "after"}})):
        raw = {**SMALL, "name": name, **extra}
        path = tmp_path / f"{name}.yaml"
        path.write_text(yaml.safe_dump(raw))
        assert invoke("train", path, "--out", tmp_path, "--no-plot").exit_code == 0
    res = invoke("fold", tmp_path / "before")
    assert res.exit_code == 0, res.output
    lines = res.output.splitlines()
    assert lines[0] == f"folded batchnorm1, batchnorm2 -> {tmp_path / 'before' / 'model_folded.npz'}"
    assert "of the largest logit (allowed 1e-05)" in lines[1]
    assert lines[2].startswith("inference on the test split, median of 5: original")
    folded, meta = load_model(tmp_path / "before" / "model_folded.npz")
    assert meta["folded"] == ["batchnorm1", "batchnorm2"] and "batchnorm1" not in folded.names
    res = invoke("eval", tmp_path / "before", "--model", tmp_path / "before" / "model_folded.npz")
    assert res.exit_code == 0 and "the run's model at epoch 4" in res.output
    res = invoke("fold", tmp_path / "after")
    assert res.exit_code == 2
    assert res.output.strip() == (f"error: {tmp_path / 'after'}: cannot fold: batchnorm1: "
                                  "follows relu1, not a Linear or Conv2d (BN after the "
                                  "activation: the nonlinearity between them stops the folding)")
    assert not (tmp_path / "after" / "model_folded.npz").exists()


def _long_run(tmp_path):
    raw = {**SMALL, "name": "long",
           "data": {"dataset": "synthetic", "n_train": 12000, "n_test": 500, "dim": 40,
                    "classes": 4},
           "model": {"hidden": [48, 48], "norm": "batch", "dropout": 0.1},
           "train": {**SMALL["train"], "epochs": 6, "batch_size": 10},
           "eval": {"diagnostics_every": 0, "step_loss": False}}
    path = tmp_path / "long.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def _kill_after(cmd, ckpt, wait_more: float):
    """Start ``cmd`` in its own process group; once ``ckpt`` exists (and
    ``wait_more`` seconds later), kill the whole group with SIGKILL."""
    proc = subprocess.Popen(cmd, start_new_session=True, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while not ckpt.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.01)
    time.sleep(wait_more)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


@pytest.mark.parametrize("when", ["at a checkpoint", "mid-epoch"])
@pytest.mark.parametrize("command", ["train", "sweep"])
def test_kill_9_then_the_same_command_resumes_to_the_same_numbers(tmp_path, when, command):
    path = _long_run(tmp_path)
    reference = train(config.from_dict(yaml.safe_load(path.read_text())))
    if command == "train":
        cmd = [sys.executable, "-m", "bnexp", "train", str(path), "--out", str(tmp_path / "runs"),
               "--no-plot", "-q"]
        run = tmp_path / "runs" / "long"
    else:
        raw = yaml.safe_load(path.read_text())
        raw["sweep"] = {"grid": {"model.norm": ["batch"]}, "seeds": [SMALL["seed"]]}
        path.write_text(yaml.safe_dump(raw))
        cmd = [sys.executable, "-m", "bnexp", "sweep", str(path), "--out", str(tmp_path / "runs"),
               "-j", "1", "--no-plot", "-q"]
        run = tmp_path / "runs" / "long" / f"norm=batch,seed={SMALL['seed']}"
    _kill_after(cmd, run / "checkpoint.npz", 0.0 if when == "at a checkpoint" else 0.3)
    info = json.loads((run / "run.json").read_text())
    assert info["status"] == "running", "the run finished before the kill: nothing was tested"
    epoch = load_checkpoint(run / "checkpoint.npz")[0].epoch
    assert 1 <= epoch < 6
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    info = json.loads((run / "run.json").read_text())
    assert info["status"] == "completed" and info["resumed_from_epoch"] >= epoch
    assert _same_numbers(read(run / "metrics.csv"), reference)
    assert not (run / "checkpoint.npz").exists()
    net, _ = load_model(run / "model.npz")
    for k, v in reference.model.state_dict().items():
        np.testing.assert_array_equal(net.state_dict()[k], v, err_msg=k)


def _same_numbers(rows, reference):
    """metrics.csv rows (text) against a run's rows (floats), elapsed aside."""
    return [{k: float(v) for k, v in r.items() if k != "elapsed"} for r in rows] == [
        {k: float(v) for k, v in r.items() if k != "elapsed"} for r in reference.metrics]


def test_a_checkpoint_of_another_config_or_a_finished_run_is_not_resumed(tmp_path):
    from bnexp import runner
    from bnexp.config import dump

    cfg = config.from_dict(SMALL)
    saved = []
    train(cfg, on_checkpoint=saved.append)
    run = tmp_path / "small"
    run.mkdir()
    atomic_write(run / "checkpoint.npz", checkpoint_bytes(saved[0], dump(cfg)))
    (run / "run.json").write_text(json.dumps({"status": "running"}))
    assert runner.resumable(run, cfg).epoch == 1
    other = config.from_dict({**SMALL, "train": {**SMALL["train"], "lr": 0.02}})
    assert runner.resumable(run, other) is None
    (run / "run.json").write_text(json.dumps({"status": "completed"}))
    assert runner.resumable(run, cfg) is None


def test_train_resumes_an_unfinished_run_and_force_starts_it_over(tmp_path):
    from bnexp.config import dump

    cfg = config.from_dict(SMALL)
    saved = []
    full = train(cfg, on_checkpoint=saved.append)
    path = tmp_path / "small.yaml"
    path.write_text(yaml.safe_dump(SMALL))
    for force, resumed in ((False, 2), (True, None)):
        run = tmp_path / "runs" / "small"
        run.mkdir(parents=True, exist_ok=True)
        atomic_write(run / "checkpoint.npz", checkpoint_bytes(saved[1], dump(cfg)))
        (run / "run.json").write_text(json.dumps({"status": "running"}))
        res = invoke("train", path, "--out", tmp_path / "runs", "--no-plot",
                     *(["--force"] if force else []))
        assert res.exit_code == 0, res.output
        info = json.loads((run / "run.json").read_text())
        assert info.get("resumed_from_epoch") == resumed
        assert _same_numbers(read(run / "metrics.csv"), full)
