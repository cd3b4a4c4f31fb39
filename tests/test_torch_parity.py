"""Parity with PyTorch (float64) where torch is importable; skipped cleanly where not.

The product never imports torch: only this test file does.
"""

import numpy as np
import pytest

from bnexp.engine import (
    BatchNorm,
    GroupNorm,
    LayerNorm,
    Linear,
    build_mlp,
    make_optimizer,
)

torch = pytest.importorskip("torch")
torch.set_default_dtype(torch.float64)


def t(a):
    return torch.tensor(np.array(a), dtype=torch.float64, requires_grad=True)


def run_both(ours, theirs, x, dy, train):
    y = ours.forward(x, train).copy()
    dx = ours.backward(dy).copy()
    xt = t(x)
    yt = theirs(xt)
    yt.backward(torch.tensor(dy))
    np.testing.assert_allclose(y, yt.detach().numpy(), rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=1e-8, atol=1e-10)
    if "gamma" in ours.grads:
        np.testing.assert_allclose(ours.grads["gamma"], theirs.weight.grad.numpy(), rtol=1e-8, atol=1e-10)
        np.testing.assert_allclose(ours.grads["beta"], theirs.bias.grad.numpy(), rtol=1e-8, atol=1e-10)
        theirs.weight.grad = None
        theirs.bias.grad = None


def copy_affine(ours, theirs, rng):
    gamma, beta = rng.standard_normal(ours.D), rng.standard_normal(ours.D)
    ours.params["gamma"][...] = gamma
    ours.params["beta"][...] = beta
    with torch.no_grad():
        theirs.weight.copy_(torch.tensor(gamma))
        theirs.bias.copy_(torch.tensor(beta))


@pytest.mark.parametrize("momentum", [0.1, 0.3, None])
@pytest.mark.parametrize("track", [True, False])
def test_batchnorm1d(momentum, track):
    rng = np.random.default_rng(0)
    ours = BatchNorm(5, momentum=momentum, eps=1e-3, track_running_stats=track, dtype=np.float64)
    theirs = torch.nn.BatchNorm1d(5, momentum=momentum, eps=1e-3, track_running_stats=track)
    copy_affine(ours, theirs, rng)
    for step in range(4):
        x = rng.standard_normal((8, 5)) * (step + 1) + step
        theirs.train()
        run_both(ours, theirs, x, rng.standard_normal((8, 5)), True)
        if track:
            np.testing.assert_allclose(ours.buffers["running_mean"], theirs.running_mean.numpy(), rtol=1e-12)
            np.testing.assert_allclose(ours.buffers["running_var"], theirs.running_var.numpy(), rtol=1e-12)
            assert int(ours.buffers["num_batches_tracked"]) == int(theirs.num_batches_tracked)
    theirs.eval()
    run_both(ours, theirs, rng.standard_normal((3, 5)), rng.standard_normal((3, 5)), False)


@pytest.mark.parametrize("affine", [True, False])
def test_layernorm(affine):
    rng = np.random.default_rng(1)
    ours = LayerNorm(6, eps=1e-5, affine=affine, dtype=np.float64)
    theirs = torch.nn.LayerNorm(6, eps=1e-5, elementwise_affine=affine)
    if affine:
        copy_affine(ours, theirs, rng)
    for train in (True, False):
        run_both(ours, theirs, rng.standard_normal((4, 6)) * 3, rng.standard_normal((4, 6)), train)


@pytest.mark.parametrize("groups", [1, 2, 4])
def test_groupnorm(groups):
    rng = np.random.default_rng(2)
    ours = GroupNorm(8, groups, dtype=np.float64)
    theirs = torch.nn.GroupNorm(groups, 8)
    copy_affine(ours, theirs, rng)
    run_both(ours, theirs, rng.standard_normal((5, 8)) + 2, rng.standard_normal((5, 8)), True)


def torch_mlp(model):
    """The same network in torch, with our parameters copied in."""
    mods = []
    for name, layer in model.named_layers():
        if isinstance(layer, Linear):
            m = torch.nn.Linear(layer.in_features, layer.out_features, bias="b" in layer.params)
            with torch.no_grad():
                m.weight.copy_(torch.tensor(layer.params["W"].T))
                if m.bias is not None:
                    m.bias.copy_(torch.tensor(layer.params["b"]))
        elif isinstance(layer, BatchNorm):
            m = torch.nn.BatchNorm1d(layer.D)
        elif name.startswith("relu"):
            m = torch.nn.ReLU()
        else:
            raise AssertionError(name)
        mods.append(m)
    return torch.nn.Sequential(*mods)


@pytest.mark.parametrize("optimizer,kw", [
    ("sgd", {}), ("sgd", {"weight_decay": 0.01}),
    ("momentum", {"momentum": 0.9}), ("momentum", {"momentum": 0.8, "nesterov": True}),
    ("adam", {}), ("adam", {"weight_decay": 0.05}),
])
def test_training_steps_match_torch(optimizer, kw):
    """Three steps of a BN MLP: loss, then parameters after each optimizer step."""
    rng = np.random.default_rng(3)
    model = build_mlp(6, 4, [5, 5], rng=rng, norm="batch", weight_scale=0.5, dtype=np.float64)
    net = torch_mlp(model)
    lr = 0.05
    opt = make_optimizer(optimizer, model.layers, lr, **kw)
    decay = [p for n, p in net.named_parameters() if n.endswith("weight") and p.dim() == 2]
    rest = [p for n, p in net.named_parameters() if not (n.endswith("weight") and p.dim() == 2)]
    groups = [{"params": decay, "weight_decay": kw.get("weight_decay", 0.0)},
              {"params": rest, "weight_decay": 0.0}]
    if optimizer == "adam":
        topt = torch.optim.Adam(groups, lr=lr)
    else:
        topt = torch.optim.SGD(groups, lr=lr, momentum=kw.get("momentum", 0.0),
                               nesterov=kw.get("nesterov", False))
    for _ in range(3):
        x, y = rng.standard_normal((10, 6)), rng.integers(0, 4, 10)
        loss = model.loss_and_backward(x, y)
        opt.step()
        topt.zero_grad()
        tloss = torch.nn.functional.cross_entropy(net(torch.tensor(x)), torch.tensor(y))
        tloss.backward()
        topt.step()
        assert loss == pytest.approx(tloss.item(), rel=1e-10)
    W_ours = model.layers[0].params["W"]
    np.testing.assert_allclose(W_ours, net[0].weight.detach().numpy().T, rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(model.layers[-1].params["b"], net[-1].bias.detach().numpy(),
                               rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(model.layers[1].buffers["running_var"],
                               net[1].running_var.numpy(), rtol=1e-10)
