"""The spatial layers and the norms on NCHW inputs against PyTorch (float64),
in train and eval mode: outputs, input gradients, parameter gradients and
running statistics. Skipped cleanly where torch is not importable."""

import numpy as np
import pytest

from bnexp.engine import (
    AvgPool2d,
    BatchNorm,
    Conv2d,
    Flatten,
    GlobalAvgPool,
    GroupNorm,
    InstanceNorm,
    LayerNorm,
    MaxPool2d,
    make_optimizer,
)
from bnexp.engine.model import NormSettings, build, cnn_layers

torch = pytest.importorskip("torch")
F = torch.nn.functional
TOL = {"rtol": 1e-10, "atol": 1e-10}


def compare(ours, theirs, x, dy, train, params=()):
    """Forward and backward through both; ``params``: (our key, torch parameter)."""
    y = ours.forward(x, train).copy()
    dx = ours.backward(dy)
    dx = None if dx is None else dx.copy()
    xt = torch.tensor(x, requires_grad=True)
    for _, p in params:
        p.grad = None
    yt = theirs(xt)
    yt.backward(torch.tensor(dy))
    np.testing.assert_allclose(y, yt.detach().numpy(), **TOL)
    np.testing.assert_allclose(dx, xt.grad.numpy(), **TOL)
    for key, p in params:
        np.testing.assert_allclose(ours.grads[key], p.grad.numpy(), **TOL)


def affine_pairs(ours, theirs, rng):
    """Random gamma/beta copied into both; the (key, parameter) pairs to compare."""
    if not ours.affine:
        return []
    with torch.no_grad():
        for key, p in (("gamma", theirs.weight), ("beta", theirs.bias)):
            ours.params[key][...] = rng.standard_normal(ours.D)
            p.copy_(torch.tensor(ours.params[key]))
    return [("gamma", theirs.weight), ("beta", theirs.bias)]


def assert_running(ours, theirs):
    np.testing.assert_allclose(ours.buffers["running_mean"], theirs.running_mean.numpy(),
                               rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(ours.buffers["running_var"], theirs.running_var.numpy(),
                               rtol=1e-12, atol=1e-14)
    assert int(ours.buffers["num_batches_tracked"]) == int(theirs.num_batches_tracked)


def train_then_eval(ours, theirs, rng, track):
    """Three train-mode steps on batches of growing scale and shift (running
    statistics compared after each when tracked), then one eval-mode batch."""
    params = affine_pairs(ours, theirs, rng)
    theirs.train()
    for step in range(3):
        x = rng.standard_normal((4, 3, 5, 6)) * (step + 1) + step
        compare(ours, theirs, x, rng.standard_normal(x.shape), True, params)
        if track:
            assert_running(ours, theirs)
    theirs.eval()
    x = rng.standard_normal((2, 3, 5, 6)) * 2
    compare(ours, theirs, x, rng.standard_normal(x.shape), False, params)


@pytest.mark.parametrize("stride,padding,bias", [(1, 1, True), (1, 0, False), (2, 1, True),
                                                 (2, 2, False)])
def test_conv2d(stride, padding, bias):
    rng = np.random.default_rng(stride + 3 * padding)
    ours = Conv2d(3, 5, 3, stride, padding, bias, rng=rng, dtype=np.float64)
    theirs = torch.nn.Conv2d(3, 5, 3, stride, padding, bias=bias, dtype=torch.float64)
    with torch.no_grad():
        theirs.weight.copy_(torch.tensor(ours.params["W"]))
        if bias:
            ours.params["b"][...] = rng.standard_normal(5)
            theirs.bias.copy_(torch.tensor(ours.params["b"]))
    x = rng.standard_normal((4, 3, 9, 8))
    dy_shape = ours.forward(x, True).shape
    params = [("W", theirs.weight)] + ([("b", theirs.bias)] if bias else [])
    compare(ours, theirs, x, rng.standard_normal(dy_shape), True, params)


@pytest.mark.parametrize("kernel,stride", [(2, None), (3, 2), (2, 1), (3, None)])
def test_pools_including_ties(kernel, stride):
    """Inputs after a ReLU: whole windows of exact zeros and repeated maxima,
    where max pooling must route the gradient to the first maximum as torch does."""
    rng = np.random.default_rng(kernel * 7 + (stride or 0))
    x = np.maximum(np.round(rng.standard_normal((3, 2, 9, 10)), 0), 0.0)
    assert (x == 0).mean() > 0.4
    for ours, fn in ((MaxPool2d(kernel, stride), lambda t: F.max_pool2d(t, kernel, stride)),
                     (AvgPool2d(kernel, stride), lambda t: F.avg_pool2d(t, kernel, stride))):
        dy = rng.standard_normal(ours.forward(x, True).shape)
        compare(ours, fn, x, dy, True)


def test_global_avg_pool_and_flatten():
    rng = np.random.default_rng(5)
    x = rng.standard_normal((3, 4, 5, 6))
    compare(GlobalAvgPool(), lambda t: F.adaptive_avg_pool2d(t, 1).flatten(1), x,
            rng.standard_normal((3, 4)), True)
    compare(Flatten(), torch.nn.Flatten(), x, rng.standard_normal((3, 120)), True)


@pytest.mark.parametrize("momentum", [0.1, None])
@pytest.mark.parametrize("track", [True, False])
@pytest.mark.parametrize("affine", [True, False])
def test_batchnorm2d(momentum, track, affine):
    rng = np.random.default_rng(6)
    ours = BatchNorm(3, momentum, 1e-3, affine, track, dtype=np.float64)
    theirs = torch.nn.BatchNorm2d(3, 1e-3, momentum, affine, track, dtype=torch.float64)
    train_then_eval(ours, theirs, rng, track)


def test_batchnorm1d_on_sequences():
    rng = np.random.default_rng(7)
    ours = BatchNorm(4, dtype=np.float64)
    theirs = torch.nn.BatchNorm1d(4, dtype=torch.float64)
    params = affine_pairs(ours, theirs, rng)
    x = rng.standard_normal((3, 4, 7)) + 1
    compare(ours, theirs, x, rng.standard_normal(x.shape), True, params)
    assert_running(ours, theirs)


@pytest.mark.parametrize("groups", [1, 2, 6])
@pytest.mark.parametrize("train", [True, False])
def test_groupnorm_and_layernorm_on_images(groups, train):
    """GroupNorm(G, C) on NCHW; our LayerNorm is GroupNorm(1, C) (per-channel affine)."""
    rng = np.random.default_rng(groups)
    x = rng.standard_normal((3, 6, 4, 5)) * 2 + 1
    dy = rng.standard_normal(x.shape)
    ours = GroupNorm(6, groups, eps=1e-5, dtype=np.float64)
    theirs = torch.nn.GroupNorm(groups, 6, dtype=torch.float64)
    compare(ours, theirs, x, dy, train, affine_pairs(ours, theirs, rng))
    if groups == 1:
        ours = LayerNorm(6, dtype=np.float64)
        theirs = torch.nn.GroupNorm(1, 6, dtype=torch.float64)
        compare(ours, theirs, x, dy, train, affine_pairs(ours, theirs, rng))
        # without affine it is torch's layer_norm over (C, H, W) as well
        compare(LayerNorm(6, affine=False, dtype=np.float64),
                lambda t: F.layer_norm(t, (6, 4, 5)), x, dy, train)


@pytest.mark.parametrize("affine", [False, True])
@pytest.mark.parametrize("track", [False, True])
@pytest.mark.parametrize("momentum", [0.1, None])
def test_instancenorm2d(affine, track, momentum):
    rng = np.random.default_rng(8)
    ours = InstanceNorm(3, 1e-5, momentum, affine, track, dtype=np.float64)
    theirs = torch.nn.InstanceNorm2d(3, 1e-5, momentum, affine, track, dtype=torch.float64)
    train_then_eval(ours, theirs, rng, track)


def test_instancenorm_defaults_are_torchs():
    ours, theirs = InstanceNorm(3), torch.nn.InstanceNorm2d(3)
    assert (ours.affine, ours.track_running_stats) == (theirs.affine,
                                                      theirs.track_running_stats) == (False, False)
    assert not ours.params and not ours.buffers


def torch_net(model):
    """The same network in torch, with our parameters copied in."""
    mods = []
    for layer in model.layers:
        kind = type(layer).__name__
        if kind == "Conv2d":
            m = torch.nn.Conv2d(layer.in_channels, layer.out_channels, layer.kernel, layer.stride,
                                layer.padding, bias="b" in layer.params, dtype=torch.float64)
            with torch.no_grad():
                m.weight.copy_(torch.tensor(layer.params["W"]))
        elif kind == "Linear":
            m = torch.nn.Linear(layer.in_features, layer.out_features, dtype=torch.float64)
            with torch.no_grad():
                m.weight.copy_(torch.tensor(layer.params["W"].T))
        elif kind == "BatchNorm":
            m = torch.nn.BatchNorm2d(layer.D, dtype=torch.float64)
        elif kind == "GroupNorm":
            m = torch.nn.GroupNorm(layer.G, layer.D, dtype=torch.float64)
        else:
            m = {"ReLU": torch.nn.ReLU(), "MaxPool2d": torch.nn.MaxPool2d(2),
                 "AvgPool2d": torch.nn.AvgPool2d(2), "Flatten": torch.nn.Flatten(),
                 "GlobalAvgPool": torch.nn.Sequential(torch.nn.AdaptiveAvgPool2d(1),
                                                      torch.nn.Flatten())}[kind]
        if getattr(m, "bias", None) is not None and "b" in layer.params:
            with torch.no_grad():
                m.bias.copy_(torch.tensor(layer.params["b"]))
        mods.append(m)
    return torch.nn.Sequential(*mods)


@pytest.mark.parametrize("norm,pool,head", [("batch", "max", "flatten"), ("group", "avg", "gap")])
def test_cnn_training_steps_match_torch(norm, pool, head):
    """Three SGD-with-momentum steps of a small CNN (weight decay on conv and
    linear weights): the loss at each step, then weights and running statistics."""
    rng = np.random.default_rng(9)
    specs = cnn_layers([4, 6], kernel=3, pool=pool, head=head, norm=norm)
    model = build(specs, (1, 8, 8), 3, rng=rng, norm=NormSettings(norm, groups=2),
                  weight_scale="he", dtype=np.float64)
    net = torch_net(model)
    opt = make_optimizer("momentum", model.layers, 0.05, momentum=0.9, weight_decay=0.01)
    decay = [p for n, p in net.named_parameters() if n.endswith("weight") and p.dim() >= 2]
    rest = [p for n, p in net.named_parameters() if not (n.endswith("weight") and p.dim() >= 2)]
    topt = torch.optim.SGD([{"params": decay, "weight_decay": 0.01},
                            {"params": rest, "weight_decay": 0.0}], lr=0.05, momentum=0.9)
    for _ in range(3):
        x, y = rng.standard_normal((6, 64)), rng.integers(0, 3, 6)
        loss = model.loss_and_backward(x, y)
        opt.step()
        topt.zero_grad()
        tloss = F.cross_entropy(net(torch.tensor(x).reshape(6, 1, 8, 8)), torch.tensor(y))
        tloss.backward()
        topt.step()
        assert loss == pytest.approx(tloss.item(), rel=1e-10)
    np.testing.assert_allclose(model.layers[0].params["W"], net[0].weight.detach().numpy(),
                               rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(model.layers[-1].params["W"], net[-1].weight.detach().numpy().T,
                               rtol=1e-8, atol=1e-10)
    if norm == "batch":
        np.testing.assert_allclose(model.layers[1].buffers["running_var"],
                                   net[1].running_var.numpy(), rtol=1e-10)
    x = rng.standard_normal((5, 64))
    np.testing.assert_allclose(model.forward(x), net.eval()(torch.tensor(x).reshape(5, 1, 8, 8))
                               .detach().numpy(), **TOL)


def test_norms_on_sequences_match_their_1d_counterparts():
    """(N, C, L) inputs: InstanceNorm1d with running statistics, and GroupNorm."""
    rng = np.random.default_rng(10)
    ours = InstanceNorm(4, momentum=0.2, affine=True, track_running_stats=True,
                        dtype=np.float64)
    theirs = torch.nn.InstanceNorm1d(4, momentum=0.2, affine=True, track_running_stats=True,
                                     dtype=torch.float64)
    params = affine_pairs(ours, theirs, rng)
    x = rng.standard_normal((3, 4, 9)) * 2 + 1
    compare(ours, theirs, x, rng.standard_normal(x.shape), True, params)
    assert_running(ours, theirs)
    theirs.eval()
    compare(ours, theirs, x, rng.standard_normal(x.shape), False, params)
    ours, theirs = GroupNorm(4, 2, dtype=np.float64), torch.nn.GroupNorm(2, 4,
                                                                         dtype=torch.float64)
    compare(ours, theirs, x, rng.standard_normal(x.shape), True, affine_pairs(ours, theirs, rng))
