"""norm.gamma_init: batch norm's gamma starts at a chosen value (0: Goyal et
al. 2017's zero-init of a residual branch's last BN), from the config to the
layers, the model file and both kernels."""

import math

import numpy as np
import pytest
from clitools import invoke

from bnexp import config
from bnexp.config import ConfigError
from bnexp.engine import BatchNorm
from bnexp.engine.model import build_model
from bnexp.engine.spec import describe, rebuild
from bnexp.modelfile import load_model
from bnexp.train import train


def small(kernels="numpy", **norm):
    return config.from_dict({
        "data": {"n_train": 100, "n_test": 40}, "model": {"hidden": [12, 12]},
        "init": {"weight_scale": "he"}, "norm": norm,
        "train": {"epochs": 1, "batch_size": 20, "lr": 0.1, "kernels": kernels},
        "eval": {"step_loss": True}})


@pytest.mark.parametrize("value", [0.0, 0.5, 2.0])
def test_every_batch_norm_starts_with_gamma_at_the_configured_value(value):
    for arch in ({}, {"arch": "cnn", "channels": [3], "hidden": []}):
        cfg = config.from_dict({"model": arch, "norm": {"gamma_init": value}})
        bns = [layer for layer in build_model(cfg, 784, 10, np.random.default_rng(0)).layers
               if isinstance(layer, BatchNorm)]
        assert bns and all(np.array_equal(bn.params["gamma"],
                                          np.full(bn.D, value, np.float32)) for bn in bns)


def test_the_default_is_pytorchs_gamma_of_one_and_the_layers_defaults_agree():
    bn, = [layer for layer in build_model(small(), 784, 10, np.random.default_rng(0)).layers
           if isinstance(layer, BatchNorm)][:1]
    assert bn.gamma_init == 1.0 and np.array_equal(bn.params["gamma"], np.ones(bn.D))
    assert BatchNorm(3).gamma_init == 1.0


@pytest.mark.parametrize("kernels", ["numpy", "numba"])
def test_zero_gamma_makes_the_first_loss_exactly_log_of_the_classes(kernels):
    """With gamma 0 and beta 0 every BN output is 0, so is every ReLU after
    it, and the output layer's logits are its bias, 0: the first training
    loss is ln(10) on either kernel. With gamma 1 it is not."""
    if kernels == "numba":
        pytest.importorskip("numba")

    def first_loss(gamma):
        return train(small(kernels, gamma_init=gamma)).steps[0]["loss"]

    assert first_loss(0.0) == pytest.approx(math.log(10), abs=1e-6)
    assert abs(first_loss(1.0) - math.log(10)) > 1e-3


def test_the_model_file_keeps_the_setting_and_rebuilds_it(tmp_path):
    out = invoke("train", "book_bn", "--out", tmp_path, "--quiet", "--no-plot",
                 "--set", "norm.gamma_init=0.25", "--set", "data.n_train=100",
                 "--set", "data.n_test=40", "--set", "train.epochs=1", "--set", "name=g")
    assert out.exit_code == 0, out.output
    model, _ = load_model(tmp_path / "g" / "model.npz")
    bns = [layer for layer in model.layers if isinstance(layer, BatchNorm)]
    assert bns and all(bn.gamma_init == 0.25 for bn in bns)
    desc = describe(model)
    assert {d["gamma_init"] for d in desc["layers"] if d["type"] == "BatchNorm"} == {0.25}
    older = {**desc, "layers": [{k: v for k, v in d.items() if k != "gamma_init"}
                                for d in desc["layers"]]}  # a file from before the setting
    assert {bn.gamma_init for bn in rebuild(older).layers if isinstance(bn, BatchNorm)} == {1.0}


def test_gamma_init_is_refused_where_there_is_no_batch_norm_gamma(tmp_path):
    for norm, extra in (("layer", {}), ("none", {}), ("batch", {"affine": False})):
        with pytest.raises(ConfigError, match=r"norm.gamma_init: got 0, expected 1 unless "
                                              r"model.norm is batch with norm.affine true"):
            config.from_dict({"model": {"norm": norm}, "norm": {"gamma_init": 0, **extra}})
    out = invoke("train", "book_bn", "--out", tmp_path, "--set", "norm.gamma_init=-1")
    assert out.exit_code == 2
    assert out.output.strip().splitlines()[-1].startswith("error: norm.gamma_init: got -1")
    assert not any(tmp_path.iterdir())
