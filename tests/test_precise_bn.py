"""Precise BN: after training, BN's running statistics become the average of
batch statistics over many training batches."""

import copy

import numpy as np
import pytest

from bnexp import config
from bnexp.analysis import precise_bn
from bnexp.config import ConfigError
from bnexp.engine import BatchNorm
from bnexp.engine.model import NormSettings, build, cnn_layers, mlp_layers
from bnexp.train import train


@pytest.mark.parametrize("arch", ["mlp", "cnn"])
def test_one_batch_of_everything_gives_each_layers_population_statistics(arch):
    rng = np.random.default_rng(0)
    specs, shape = ((mlp_layers([6, 5], norm="batch"), (4,)) if arch == "mlp" else
                    (cnn_layers([3, 4], norm="batch"), (1, 8, 8)))
    net = build(specs, shape, 3, rng=rng, norm=NormSettings("batch", momentum=0.01),
                dtype=np.float64)
    x = rng.standard_normal((40, int(np.prod(shape)))) * 2 + 1
    twin = copy.deepcopy(net)
    twin.forward(x, train=True, record=True)  # each BN's input in train mode
    inputs = {r.name: r.x for r in twin.records if isinstance(r.layer, BatchNorm)}
    precise_bn(net, x, batch_size=40, batches=1, rng=np.random.default_rng(1))
    for name, layer in net.named_layers():
        if isinstance(layer, BatchNorm):
            axes = layer.reduce_axes(inputs[name].ndim)
            n = inputs[name].size // layer.D
            np.testing.assert_allclose(layer.buffers["running_mean"],
                                       inputs[name].mean(axis=axes), atol=1e-12)
            np.testing.assert_allclose(layer.buffers["running_var"],
                                       inputs[name].var(axis=axes) * n / (n - 1), atol=1e-12)
            assert layer.momentum == 0.01  # restored
    params = {k: v.copy() for k, v in net.state_dict().items() if "running" not in k
              and "num_batches" not in k}
    precise_bn(net, x, 10, 3, np.random.default_rng(2))
    for k, v in params.items():
        np.testing.assert_array_equal(net.state_dict()[k], v)  # parameters untouched


def test_precise_bn_recovers_the_eval_accuracy_a_lagging_average_loses():
    """The book's network at momentum 0.01 (running statistics lag): seed 0
    evaluates at chance without it and at 0.91 with 50 batches."""
    raw = {"model": {"hidden": [100] * 5, "norm": "batch"}, "norm": {"momentum": 0.01},
           "init": {"weight_scale": 0.01}, "train": {"epochs": 20, "batch_size": 100,
                                                     "lr": 0.01}}
    plain = train(config.from_dict(raw))
    precise = train(config.from_dict({**raw, "eval": {"precise_bn": 50}}))
    assert plain.metrics[-1]["test_acc"] <= 0.2 <= 0.8 <= precise.metrics[-1]["test_acc"]
    strip = lambda rows: [{k: v for k, v in r.items() if k != "elapsed"} for r in rows]  # noqa
    assert strip(precise.metrics[:-1]) == strip(plain.metrics[:-1])  # only the end changes


def test_precise_bn_needs_batch_norm_with_running_statistics():
    for raw in ({"model": {"norm": "layer"}, "eval": {"precise_bn": 5}},
                {"norm": {"track_running_stats": False}, "eval": {"precise_bn": 5}}):
        with pytest.raises(ConfigError) as info:
            config.from_dict(raw)
        assert info.value.errors == [
            "eval.precise_bn: got 5, expected 0 unless model.norm is batch with "
            "norm.track_running_stats true (it recomputes batch norm's running statistics)"]
