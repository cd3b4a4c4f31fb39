"""Weight normalization (``model.norm: weight``): gradients, the known case
(g = ||v|| is the plain layer), PyTorch's weight_norm, and whole networks."""

import numpy as np
import pytest
from gradcheck import check_layer

from bnexp import config
from bnexp.engine import Conv2d, Linear, WeightNorm, make_optimizer
from bnexp.engine.model import build_model
from bnexp.engine.spec import describe, rebuild
from bnexp.train import train


def layers(rng):
    return [(Linear(5, 4, True, rng=rng, dtype=np.float64), rng.standard_normal((6, 5))),
            (Conv2d(2, 3, 3, 1, 1, True, rng=rng, dtype=np.float64),
             rng.standard_normal((2, 2, 5, 6)))]


def test_weight_norm_gradients():
    rng = np.random.default_rng(0)
    for inner, x in layers(rng):
        wn = WeightNorm(inner)
        wn.params["g"][...] = rng.uniform(0.5, 2.0, wn.params["g"].shape)
        wn.params["b"][...] = rng.standard_normal(wn.params["b"].shape)
        errors = check_layer(wn, x, rng)
        assert set(errors) == {"x", "v", "g", "b"}
        assert all(e < 1e-6 for e in errors.values()), errors


def test_with_g_equal_to_the_norm_of_v_it_is_the_plain_layer():
    rng = np.random.default_rng(1)
    for inner, x in layers(rng):
        plain = inner.forward(x, True).copy()
        wn = WeightNorm(inner)  # g starts at ||v||, v at the layer's weight
        np.testing.assert_allclose(wn.forward(x, True), plain, rtol=1e-14, atol=1e-14)
        wn.params["g"] *= 2.0  # g scales each output unit's weight, whatever v's scale
        wn.params["v"] *= 7.0
        np.testing.assert_allclose(wn.forward(x, True) - inner.params["b"].reshape(
            (1, -1) + (1,) * (x.ndim - 2)),
            2.0 * (plain - inner.params["b"].reshape((1, -1) + (1,) * (x.ndim - 2))),
            rtol=1e-12, atol=1e-12)


def test_weight_norm_matches_torch():
    torch = pytest.importorskip("torch")
    from torch.nn.utils.parametrizations import weight_norm

    rng = np.random.default_rng(2)
    for inner, x in layers(rng):
        wn = WeightNorm(inner)
        wn.params["g"][...] = rng.uniform(0.5, 2.0, wn.params["g"].shape)
        if isinstance(inner, Linear):
            m = torch.nn.Linear(5, 4, dtype=torch.float64)
            v = wn.params["v"].T
        else:
            m = torch.nn.Conv2d(2, 3, 3, padding=1, dtype=torch.float64)
            v = wn.params["v"]
        m = weight_norm(m)  # norm over every axis but dim 0 (the output one)
        p = m.parametrizations.weight
        with torch.no_grad():
            p.original1.copy_(torch.tensor(v))
            p.original0.copy_(torch.tensor(wn.params["g"]).reshape(p.original0.shape))
            m.bias.copy_(torch.tensor(wn.params["b"]))
        y = wn.forward(x, True).copy()
        dy = rng.standard_normal(y.shape)
        dx = wn.backward(dy)
        xt = torch.tensor(x, requires_grad=True)
        yt = m(xt)
        yt.backward(torch.tensor(dy))
        np.testing.assert_allclose(y, yt.detach().numpy(), atol=1e-12)
        np.testing.assert_allclose(dx, xt.grad.numpy(), atol=1e-12)
        dv = wn.grads["v"].T if isinstance(inner, Linear) else wn.grads["v"]
        np.testing.assert_allclose(dv, p.original1.grad.numpy(), atol=1e-12)
        np.testing.assert_allclose(wn.grads["g"], p.original0.grad.numpy().ravel(), atol=1e-12)
        np.testing.assert_allclose(wn.grads["b"], m.bias.grad.numpy(), atol=1e-12)


@pytest.mark.parametrize("arch", ["mlp", "cnn"])
def test_weight_norm_networks_train_save_and_rebuild(arch):
    cnn = {"channels": [4]} if arch == "cnn" else {}
    cfg = config.from_dict({"model": {"arch": arch, "norm": "weight", **cnn,
                                      "hidden": [20] if arch == "mlp" else []},
                            "init": {"weight_scale": "he"}, "data": {"n_train": 300,
                                                                     "n_test": 100},
                            "train": {"epochs": 2, "batch_size": 30, "lr": 0.1,
                                      "optimizer": "momentum"}})
    net = build_model(cfg, 784, 10, np.random.default_rng(0))
    weight_layers = [layer for layer in net.layers if isinstance(layer, WeightNorm)]
    assert len(weight_layers) == 2 and not any("norm" in n for n in net.names)
    result = train(cfg)
    assert result.metrics[-1]["train_loss"] < result.metrics[0]["train_loss"]
    twin = rebuild(describe(result.model))
    twin.load_state_dict(result.model.state_dict())
    x = np.random.default_rng(1).random((5, 784), dtype=np.float32)
    np.testing.assert_array_equal(twin.forward(x), result.model.forward(x))


def test_the_optimizer_updates_the_bias_the_layer_uses():
    rng = np.random.default_rng(3)
    wn = WeightNorm(Linear(3, 2, True, rng=rng, dtype=np.float64))
    opt = make_optimizer("sgd", [wn], 0.5)
    x = rng.standard_normal((4, 3))
    wn.forward(x, True)
    wn.backward(np.ones((4, 2)))
    opt.step()
    np.testing.assert_allclose(wn.params["b"], -0.5 * 4)
    y = wn.forward(np.zeros((1, 3)), False)
    np.testing.assert_allclose(y, [[-2.0, -2.0]])
