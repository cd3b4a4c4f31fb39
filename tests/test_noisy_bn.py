"""Noisy BN (Santurkar et al. 2018): the noise layer and its place in networks."""

import numpy as np
import pytest
from gradcheck import check_layer

from bnexp import config
from bnexp.config import ConfigError
from bnexp.engine import NoisyShift
from bnexp.engine.model import build_model
from bnexp.train import train


@pytest.mark.parametrize("shape", [(5, 4), (3, 2, 4, 4)])
def test_noise_gradient_is_the_drawn_scale(shape):
    rng = np.random.default_rng(0)
    layer = NoisyShift(0.3, rng=np.random.default_rng(7))

    def same_noise():
        layer.rng = np.random.default_rng(7)  # the same draw at every forward

    assert check_layer(layer, rng.standard_normal(shape), rng, reset=same_noise)["x"] < 1e-6


def test_noise_moves_every_step_and_vanishes_in_eval_and_at_zero():
    x = np.random.default_rng(1).standard_normal((6, 3))
    layer = NoisyShift(0.2, rng=np.random.default_rng(2))
    first, second = layer.forward(x, True).copy(), layer.forward(x, True).copy()
    assert not np.allclose(first, second)  # new scale and shift each step
    ratio = (first - first.mean(axis=0)) / (x - x.mean(axis=0))
    np.testing.assert_allclose(ratio, np.broadcast_to(ratio[0], ratio.shape), rtol=1e-9)  # per unit
    assert layer.forward(x, False) is x
    assert NoisyShift(0.0, rng=np.random.default_rng(3)).forward(x, True) is x


def test_noise_follows_each_norm_and_leaves_the_weights_as_they_were():
    quiet = config.from_dict({"model": {"hidden": [8, 8]}, "init": {"weight_scale": "he"}})
    noisy = config.from_dict({"model": {"hidden": [8, 8]}, "init": {"weight_scale": "he"},
                              "norm": {"noise": 0.1}})
    a = build_model(quiet, 784, 10, np.random.default_rng(0))
    b = build_model(noisy, 784, 10, np.random.default_rng(0))
    assert b.names[:4] == ["linear1", "batchnorm1", "noise1", "relu1"]
    for name, layer in a.named_layers():
        if "W" in layer.params:
            np.testing.assert_array_equal(layer.params["W"],
                                          dict(b.named_layers())[name].params["W"])
    with pytest.raises(ConfigError, match="norm.noise: got 0.1, expected 0 with model.norm"):
        config.from_dict({"model": {"norm": "none"}, "norm": {"noise": 0.1}})


def test_a_noisy_run_resumes_with_its_noise_streams():
    raw = {"data": {"n_train": 200, "n_test": 50}, "model": {"hidden": [16, 16]},
           "norm": {"noise": 0.2}, "init": {"weight_scale": "he"},
           "train": {"epochs": 3, "batch_size": 20, "lr": 0.05, "checkpoint_every": 1}}
    cfg = config.from_dict(raw)
    saved = []
    full = train(cfg, on_checkpoint=saved.append)
    resumed = train(cfg, resume=saved[0])
    strip = lambda rows: [{k: v for k, v in r.items() if k != "elapsed"} for r in rows]  # noqa
    assert strip(resumed.metrics) == strip(full.metrics)
