"""Convolutional networks end to end: config validation and resolution, the
builder's layer list, training from the CLI (diagnostics per conv layer,
reproducible whatever the thread count), and sweeps that mix architectures."""

import numpy as np
import pytest
import yaml
from clitools import invoke, read
from idxdata import write_idx_set

from bnexp import config
from bnexp.config import ConfigError, from_dict
from bnexp.engine.model import build_model
from bnexp.train import train

CNN = {"name": "cnn", "seed": 1, "data": {"n_train": 200, "n_test": 100},
       "model": {"arch": "cnn", "channels": [4, 8], "norm": "batch"},
       "init": {"weight_scale": "he"}, "train": {"epochs": 2, "batch_size": 20, "lr": 0.1},
       "eval": {"diagnostics_every": 5}}


def errors_of(raw):
    with pytest.raises(ConfigError) as info:
        from_dict(raw)
    return info.value.errors


def test_defaults_that_depend_on_the_architecture_and_the_norm_are_resolved():
    mlp, cnn = from_dict({}), from_dict({"model": {"arch": "cnn"}})
    assert mlp.model.hidden == (100,) * 5 and cnn.model.hidden == ()
    inst = from_dict({"model": {"arch": "cnn", "norm": "instance"}})
    assert (inst.norm.affine, inst.norm.track_running_stats) == (False, False)  # PyTorch's
    assert (cnn.norm.affine, cnn.norm.track_running_stats) == (True, True)
    chosen = from_dict({"model": {"arch": "cnn", "norm": "instance"},
                        "norm": {"affine": True, "track_running_stats": True}})
    assert (chosen.norm.affine, chosen.norm.track_running_stats) == (True, True)
    # the resolved file holds the values used, so training from it changes nothing
    assert from_dict(yaml.safe_load(config.dump(inst))) == inst


@pytest.mark.parametrize("raw,line", [
    ({"model": {"norm": "instance"}},
     "model.norm: got 'instance', expected none, batch, layer, group or weight for model.arch "
     "'mlp' "
     "(instance norm normalizes over spatial axes: use model.arch cnn)"),
    ({"model": {"arch": "cnn", "norm": "instance", "hidden": [50]}},
     "model.hidden: got [50], expected [] with model.norm 'instance' (fully connected layers "
     "have no spatial axes to normalize over)"),
    ({"model": {"arch": "cnn", "norm": "group", "groups": 4, "channels": [8, 6]}},
     "model.groups: got 4, expected a divisor of every channel count and hidden width (6 is "
     "not divisible by 4; groups that work: 1, 2)"),
    ({"model": {"arch": "cnn", "channels": [4, 4, 4, 4, 4, 4]}},
     "model.channels: got [4, 4, 4, 4, 4, 4], 6 conv blocks that shrink 28x28 images to "
     "nothing (14x14 -> 7x7 -> 3x3 -> 1x1 -> 0x0 -> 0x0); use fewer, or less pooling, stride "
     "or kernel"),
    ({"model": {"arch": "cnn"}, "data": {"dataset": "synthetic", "n_train": 10, "n_test": 10},
      "train": {"batch_size": 5}},
     "model.arch: got 'cnn', expected mlp for the synthetic dataset (convolutions need "
     "images: mnist5k, mnist, fashion-mnist, cifar10)"),
    ({"model": {"arch": "cnn", "kernel": 4}},
     "model.padding: got 'same', expected a number with the even model.kernel 4 ('same' "
     "keeps the size only for odd kernels)"),
    ({"model": {"arch": "cnn", "kernel": 5, "padding": [2, 5]}},
     "model.padding: got 5, expected 0 to 4 with model.kernel 5 (more would add outputs that "
     "see only zeros)"),
    ({"model": {"arch": "cnn", "stride": [1, 2, 2]}},
     "model.stride: got [1, 2, 2], expected one value or a list of 2, one per conv block "
     "(model.channels has 2)"),
    ({"model": {"arch": "resnet", "pool": "avg"}},
     "model.pool: got 'avg', used only with model.arch 'cnn'; remove it, or set model.arch: cnn"),
    ({"model": {"arch": "cnn", "blocks": 2}},
     "model.blocks: got 2, used only with model.arch 'resnet'; remove it, or set model.arch: "
     "resnet"),
    ({"model": {"padding": "valid"}},
     "model.padding: got 'valid', used only with model.arch 'cnn'; remove it, or set "
     "model.arch: cnn"),
    ({"model": {"arch": "cnn", "kernel": 5, "padding": "valid", "pool": "avg",
                "channels": [6, 16, 32]}},
     "model.channels: got [6, 16, 32], 3 conv blocks that shrink 28x28 images to nothing "
     "(12x12 -> 4x4 -> 0x0); use fewer, or less pooling, stride or kernel"),
    ({"model": {"arch": "resnet", "dropout": 0.5}},
     "model.dropout: got 0.5, expected 0 with model.arch resnet (residual blocks here have no "
     "dropout)"),
    ({"model": {"hidden": []}},
     "model.hidden: got [], expected at least one width for model.arch 'mlp'"),
    ({"model": {"arch": "cnn", "channels": [4096, 4096, 4096], "pool": "none"}},
     "model.channels: got [4096, 4096, 4096], a model of 334,151,690 parameters; at most "
     "100,000,000 (memory)"),
])
def test_cnn_configs_that_cannot_work_are_refused(raw, line):
    assert errors_of(raw) == [line]


def test_six_blocks_fit_without_pooling_and_the_layer_list_is_as_documented():
    cfg = from_dict({"model": {"arch": "cnn", "channels": [4] * 6, "pool": "none",
                               "placement": "after", "head": "gap", "norm": "group",
                               "groups": 2, "dropout": 0.1}})
    model = build_model(cfg, 784, 10, np.random.default_rng(0))
    assert model.names[:6] == ["conv1", "relu1", "groupnorm1", "dropout1", "conv2", "relu2"]
    assert model.names[-2:] == ["gap", "linear_out"]
    assert "b" in model.layers[0].params  # a bias: no BN follows directly
    bn = build_model(from_dict(CNN), 784, 10, np.random.default_rng(0))
    assert bn.names == ["conv1", "batchnorm1", "relu1", "maxpool1", "conv2", "batchnorm2",
                        "relu2", "maxpool2", "flatten", "linear_out"]
    assert "b" not in bn.layers[0].params  # BN right after cancels a bias
    assert bn.layers[-1].params["W"].shape == (8 * 7 * 7, 10)
    params = sum(a.size for layer in bn.layers for k, a in layer.params.items()
                 if k in ("W", "b"))
    assert params == config.param_count(from_dict(CNN), 784, 10) - 4 - 8  # no conv biases


def test_a_cnn_learns_on_mnist5k():
    cfg = from_dict({**CNN, "data": {"n_train": 1000, "n_test": 500},
                     "train": {"epochs": 2, "batch_size": 32, "lr": 0.05}})
    result = train(cfg)
    assert result.status == "completed"
    assert result.metrics[0]["test_acc"] < 0.2 < 0.8 < result.metrics[-1]["test_acc"]


@pytest.mark.parametrize("kernels", ["numpy", "numba"])
def test_cnn_training_from_the_cli_is_identical_on_one_and_two_threads(tmp_path, kernels):
    """Two threads evaluate in parallel, each on its own replica of the model
    (numba: the compiled convolutions' work arrays are per replica)."""
    if kernels == "numba":
        pytest.importorskip("numba")
    path = tmp_path / "cnn.yaml"
    path.write_text(yaml.safe_dump({**CNN, "train": {**CNN.get("train", {}), "kernels": kernels}}))
    for threads in ("1", "2"):
        res = invoke("train", path, "--out", tmp_path / threads, "--threads", threads,
                     "--no-plot")
        assert res.exit_code == 0, res.output
    one, two = (tmp_path / t / "cnn" for t in ("1", "2"))
    strip = lambda rows: [{k: v for k, v in r.items() if k != "elapsed"} for r in rows]  # noqa
    assert strip(read(one / "metrics.csv")) == strip(read(two / "metrics.csv"))
    diag = read(one / "diagnostics.csv")
    assert {int(r["layer"]) for r in diag} == {1, 2}  # one row per conv block
    assert all(float(r["grad_norm"]) > 0 for r in diag)
    assert (one / "diagnostics.csv").read_bytes() == (two / "diagnostics.csv").read_bytes()


def test_a_sweep_can_compare_an_mlp_with_a_cnn_and_instance_norm(tmp_path):
    raw = {**CNN, "name": "arch", "eval": {"diagnostics_every": 0},
           "train": {"epochs": 1, "batch_size": 20, "lr": 0.1},
           "model": {"channels": [4], "hidden": None},
           "sweep": {"grid": {"model.arch": ["mlp", "cnn"]}, "seeds": [0]}}
    path = tmp_path / "arch.yaml"
    path.write_text(yaml.safe_dump(raw))
    res = invoke("sweep", path, "--out", tmp_path / "runs", "-j", "1", "--no-plot", "-q")
    assert res.exit_code == 0, res.output
    rows = read(tmp_path / "runs" / "arch" / "summary.csv")
    assert sorted(r["model.arch"] for r in rows) == ["cnn", "mlp"]
    assert all(r["status"] == "completed" for r in rows)
    inst = tmp_path / "inst.yaml"
    inst.write_text(yaml.safe_dump({**raw, "name": "inst", "model": {"arch": "cnn",
                                    "channels": [4], "norm": "instance"}, "sweep": {}}))
    res = invoke("train", inst, "--out", tmp_path / "runs", "--no-plot")
    assert res.exit_code == 0, res.output
    saved = yaml.safe_load((tmp_path / "runs" / "inst" / "config.yaml").read_text())
    assert saved["norm"]["affine"] is False and saved["model"]["hidden"] == []


@pytest.mark.parametrize("dataset", ["mnist", "fashion-mnist"])
def test_a_cnn_trains_on_idx_datasets(tmp_path, dataset):
    """MNIST and Fashion-MNIST come as IDX files; their images reach the CNN as
    (N, 1, 28, 28). MNIST: a small set in the real format. Fashion-MNIST's files
    are checked against their published checksums, so it takes the real ones."""
    from bnexp.datasets.download import locate

    if dataset == "mnist":
        write_idx_set(tmp_path / dataset, n_train=300, n_test=100)
        data = {"root": str(tmp_path), "n_train": None, "n_test": None}
    else:
        if locate(dataset, None) is None:  # never downloads
            pytest.skip("Fashion-MNIST is not installed here")
        data = {"n_train": 300, "n_test": 100}
    cfg = from_dict({**CNN, "data": {"dataset": dataset, **data},
                     "train": {"epochs": 1, "batch_size": 30, "lr": 0.05},
                     "eval": {"diagnostics_every": 0}})
    result = train(cfg)
    assert result.status == "completed" and len(result.metrics) == 2
    assert result.metrics[-1]["train_loss"] < result.metrics[0]["train_loss"]
