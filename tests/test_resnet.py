"""Residual blocks (``engine.residual``) and ``model.arch: resnet``: gradients
against finite differences (float64, random upstream gradients through a
loss), the junctions a replica gets, model files that describe, rebuild and
refuse broken blocks, folding, and the ordinary path as users type it:
``bnexp train`` a ResNet config, then ``bnexp verify`` and ``bnexp fold`` it."""

import copy

import numpy as np
import pytest
from clitools import invoke, read
from gradcheck import numeric_grad, rel_error

from bnexp import config
from bnexp.engine import spec
from bnexp.engine.fold import fold_batchnorm
from bnexp.engine.model import NormSettings, build, build_model, resnet_layers
from bnexp.engine.residual import Add, Fork, Shortcut

F64 = np.float64


def small_resnet(norm="batch", image=(2, 7, 9), blocks=1, rng=None):
    rng = rng or np.random.default_rng(0)
    return build(resnet_layers([3, 4], blocks, norm=norm), image, 5, rng=rng,
                 norm=NormSettings(norm, groups=1), weight_scale="he", dtype=F64)


@pytest.mark.parametrize("norm,blocks", [("batch", 1), ("group", 2), ("none", 1)])
def test_every_gradient_of_a_resnet_matches_finite_differences(norm, blocks):
    """Loss = sum(logits * dy) with a random dy, so no gradient is trivially
    zero; every parameter of every layer (the projection's included) and the
    input. Two blocks per stage: an identity shortcut and a projection."""
    rng = np.random.default_rng(1)
    net = small_resnet(norm, blocks=blocks, rng=rng)
    for layer in net.layers:  # norms away from gamma = 1, beta = 0
        for key in ("gamma", "beta", "b"):
            if key in layer.params:
                layer.params[key][...] = rng.uniform(0.5, 1.5, layer.params[key].shape)
    net.layers[0].input_grad = True
    x = rng.standard_normal((4, 2 * 7 * 9))
    dy = rng.standard_normal((4, 5))
    h = net.as_input(x)

    def loss() -> float:
        return float(np.sum(net.forward(x, train=True) * dy))

    net.forward(x, train=True)
    net.backward(dy)
    grads = {(i, k): g.copy() for i, layer in enumerate(net.layers)
             for k, g in layer.grads.items()}
    # dx: through a forward over h, the input viewed as images
    g = dy
    for layer, _ in reversed(net._ran):
        g = layer.backward(g)
    dx = g.copy()
    assert len(grads) >= 8
    for (i, k), g in grads.items():
        assert np.linalg.norm(g) > 1e-8, (net.names[i], k)
        err = rel_error(g, numeric_grad(loss, net.layers[i].params[k]))
        assert err < 1e-6, (net.names[i], k, err)
    numeric = numeric_grad(loss, x).reshape(h.shape)
    assert rel_error(dx, numeric) < 1e-6


def test_the_shortcut_carries_the_gradient_around_the_body():
    """With the body's output held at zero (its last norm's gamma and beta 0),
    a block is the identity plus nothing: the input gradient is dy itself, all
    of it through the shortcut."""
    net = build([("fork", {}), ("conv", {"out": 2, "kernel": 3, "stride": 1, "padding": 1,
                                        "bias": False}),
                 ("norm", {}), ("add", {"projection": False}), ("flatten", {}),
                 ("linear", {"out": None, "bias": True})],
                (2, 3, 3), 4, rng=np.random.default_rng(2), norm=NormSettings("batch"),
                dtype=F64)
    bn = net.layers[2]
    bn.params["gamma"][...] = 0
    bn.params["beta"][...] = 0
    x = np.random.default_rng(3).standard_normal((5, 18))
    y = net.layers[3].forward(net.layers[2].forward(net.layers[1].forward(
        net.layers[0].forward(net.as_input(x), True), True), True), True)
    np.testing.assert_array_equal(y, net.as_input(x))
    dy = np.random.default_rng(4).standard_normal(y.shape)
    g = dy
    for layer in reversed(net.layers[:4]):
        g = layer.backward(g)
    np.testing.assert_allclose(g, dy, atol=1e-12)


def test_a_replica_has_junctions_of_its_own_shared_within_each_block():
    net = small_resnet()
    twin = net.replica()
    markers = [(a, b) for a, b in zip(net.layers, twin.layers) if isinstance(a, (Fork, Add,
                                                                                Shortcut))]
    assert markers and all(a.junction is not b.junction for a, b in markers)
    forks = [b for _, b in markers if isinstance(b, Fork)]
    adds = [b for _, b in markers if isinstance(b, Add)]
    assert [f.junction for f in forks] == [a.junction for a in adds]
    x = np.random.default_rng(5).standard_normal((6, 2 * 7 * 9))
    np.testing.assert_array_equal(net.logits(x), twin.logits(x))
    assert net.evaluate(x, np.zeros(6, int), chunk=2, threads=2) == \
        net.evaluate(x, np.zeros(6, int), chunk=2, threads=1)


def test_a_model_description_rebuilds_the_same_resnet():
    net = small_resnet("group", blocks=2)
    x = np.random.default_rng(6).standard_normal((3, 2 * 7 * 9))
    net.forward(x, train=True)
    desc = spec.describe(net)
    assert [d["type"] for d in desc["layers"]].count("Add") == 4
    again = spec.rebuild(copy.deepcopy(desc))
    again.load_state_dict(net.state_dict())
    np.testing.assert_array_equal(again.logits(x), net.logits(x))


def _blocks_broken(desc, how):
    layers = desc["layers"]
    kinds = [d["type"] for d in layers]
    first_add, first_shortcut = kinds.index("Add"), kinds.index("Shortcut")
    if how == "add without fork":
        del layers[kinds.index("Fork")]
    elif how == "fork without add":
        del layers[len(kinds) - 1 - kinds[::-1].index("Add")]
    elif how == "projection flag":
        layers[first_add]["projection"] = True
    elif how == "two shortcuts":
        layers.insert(first_shortcut, {"type": "Shortcut", "name": "extra"})
    elif how == "shapes differ":  # the projection gone: 3 channels added to 4
        layers[first_shortcut + kinds[first_shortcut:].index("Add")]["projection"] = False
        del layers[first_shortcut:first_shortcut + 3]
    return desc


@pytest.mark.parametrize("how,words", [
    ("add without fork", "with no Fork before it"),
    ("fork without add", "has no Add after it"),
    ("projection flag", "projection True, but its block has no Shortcut"),
    ("two shortcuts", "a second Shortcut in one residual block"),
    ("shapes differ", "a residual block's two branches must agree"),
])
def test_a_broken_block_in_a_model_file_is_one_clear_line(how, words):
    desc = _blocks_broken(spec.describe(small_resnet()), how)
    with pytest.raises(ValueError) as info:
        spec.check_description(desc)
    assert words in str(info.value) and "\n" not in str(info.value)


def test_batch_norm_folds_into_every_resnet_convolution():
    """Every BN sits right after a convolution (the body's and the
    projection's): all fold, and the folded ResNet computes the same logits."""
    net = small_resnet(blocks=2)
    rng = np.random.default_rng(7)
    for _ in range(3):
        net.forward(rng.standard_normal((8, 2 * 7 * 9)), train=True)
    folded, names = fold_batchnorm(net)
    assert len(names) == sum(type(layer).__name__ == "BatchNorm" for layer in net.layers) == 10
    x = rng.standard_normal((4, 2 * 7 * 9))
    np.testing.assert_allclose(folded.logits(x), net.logits(x), rtol=1e-10, atol=1e-12)


def test_resnet_options_reach_the_network():
    cfg = config.from_dict({"model": {"arch": "resnet", "channels": [8, 16], "blocks": 2,
                                      "norm": "group", "groups": 2, "placement": "after"}})
    net = build_model(cfg, 784, 10, np.random.default_rng(0))
    convs = [layer for layer in net.layers if type(layer).__name__ == "Conv2d"]
    assert [c.stride for c in convs] == [1, 1, 1, 1, 1, 2, 1, 2, 1, 1]
    assert [(c.in_channels, c.out_channels, c.kernel) for c in convs if c.kernel == 1] == \
        [(8, 16, 1)]
    kinds = [type(layer).__name__ for layer in net.layers]
    # placement after: conv -> ReLU -> norm in the body; add -> ReLU -> norm at the end
    first_add = kinds.index("Add")
    assert kinds[first_add:first_add + 3] == ["Add", "ReLU", "GroupNorm"]
    assert kinds[1:3] == ["ReLU", "GroupNorm"]


RESNET = {"name": "res", "seed": 1, "data": {"dataset": "mnist5k", "n_train": 64, "n_test": 32},
          "model": {"arch": "resnet", "channels": [4, 8], "blocks": 1},
          "init": {"weight_scale": "he"}, "train": {"epochs": 1, "batch_size": 16, "lr": 0.05}}


def test_train_verify_and_fold_a_resnet_from_the_command_line(tmp_path):
    import yaml

    path = tmp_path / "res.yaml"
    path.write_text(yaml.safe_dump(RESNET))
    out = tmp_path / "runs"
    r = invoke("train", path, "--out", out, "-q")
    assert r.exit_code == 0, r.output
    rows = read(out / "res" / "metrics.csv")
    assert len(rows) == 2 and float(rows[-1]["train_loss"]) < float(rows[0]["train_loss"])
    r = invoke("verify", out / "res")
    assert r.exit_code == 0 and "identical" in r.output, r.output
    r = invoke("fold", out / "res")
    assert r.exit_code == 0, r.output
    assert "batchnorm" in r.output
