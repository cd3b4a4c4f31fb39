"""The literature's networks against PyTorch twins written the way their
papers' and textbooks' code writes them (float64): d2l's LeNet with and
without batch norm, and He et al.'s CIFAR ResNet with basic blocks, identity
and 1x1-projection shortcuts, under every norm; a few SGD-with-momentum
steps each, the loss at every step to 1e-10, then weights, running
statistics and eval-mode logits. Also strided and unpadded convolutions and
pools with their own stride on odd image sizes, and the initializations
against torch.nn.init. Skipped cleanly where torch is not importable."""

import math

import numpy as np
import pytest
from test_torch_parity_conv import compare

from bnexp import config
from bnexp.engine import AvgPool2d, Conv2d, MaxPool2d, make_optimizer
from bnexp.engine.model import (
    NormSettings,
    build,
    build_model,
    resnet_layers,
)

torch = pytest.importorskip("torch")
F = torch.nn.functional
TOL = {"rtol": 1e-10, "atol": 1e-10}
T64 = torch.float64


# --- the twins, written as their sources write them ------------------------------

def torch_norm(kind: str, channels: int, groups: int, dim: int = 2):
    if kind == "batch":
        return (torch.nn.BatchNorm2d if dim == 2 else torch.nn.BatchNorm1d)(channels, dtype=T64)
    if kind == "group":
        return torch.nn.GroupNorm(groups, channels, dtype=T64)
    if kind == "layer":  # over (C, H, W), one gamma per channel as ours
        return torch.nn.GroupNorm(1, channels, dtype=T64)
    if kind == "instance":
        return torch.nn.GroupNorm(channels, channels, dtype=T64)
    return torch.nn.Identity()


class BasicBlock(torch.nn.Module):
    """He et al. 2016's basic block, norm before the ReLU (option B shortcut)."""

    def __init__(self, c_in, c_out, stride, norm, groups):
        super().__init__()
        bias = norm != "batch"
        self.conv1 = torch.nn.Conv2d(c_in, c_out, 3, stride, 1, bias=bias, dtype=T64)
        self.bn1 = torch_norm(norm, c_out, groups)
        self.conv2 = torch.nn.Conv2d(c_out, c_out, 3, 1, 1, bias=bias, dtype=T64)
        self.bn2 = torch_norm(norm, c_out, groups)
        self.shortcut = torch.nn.Sequential()
        if stride != 1 or c_in != c_out:
            self.shortcut = torch.nn.Sequential(
                torch.nn.Conv2d(c_in, c_out, 1, stride, bias=bias, dtype=T64),
                torch_norm(norm, c_out, groups))

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class ResNet(torch.nn.Module):
    def __init__(self, in_channels, widths, blocks, classes, norm, groups):
        super().__init__()
        bias = norm != "batch"
        self.conv1 = torch.nn.Conv2d(in_channels, widths[0], 3, 1, 1, bias=bias, dtype=T64)
        self.bn1 = torch_norm(norm, widths[0], groups)
        layers, c_in = [], widths[0]
        for i, w in enumerate(widths):
            for b in range(blocks):
                layers.append(BasicBlock(c_in, w, 2 if (i > 0 and b == 0) else 1, norm, groups))
                c_in = w
        self.layers = torch.nn.Sequential(*layers)
        self.linear = torch.nn.Linear(c_in, classes, dtype=T64)

    def forward(self, x):
        out = self.layers(F.relu(self.bn1(self.conv1(x))))
        return self.linear(F.adaptive_avg_pool2d(out, 1).flatten(1))


def lenet(bn: bool, first_padding: int):
    """d2l's LeNet (its BN version, as its code writes it, with Conv2d biases)."""
    def norm(c, dim=2):
        return [(torch.nn.BatchNorm2d if dim == 2 else torch.nn.BatchNorm1d)(c, dtype=T64)] \
            if bn else []
    flat = 16 * (5 if first_padding == 2 else 4) ** 2
    return torch.nn.Sequential(
        torch.nn.Conv2d(1, 6, 5, padding=first_padding, dtype=T64), *norm(6), torch.nn.Sigmoid(),
        torch.nn.AvgPool2d(2, 2),
        torch.nn.Conv2d(6, 16, 5, dtype=T64), *norm(16), torch.nn.Sigmoid(),
        torch.nn.AvgPool2d(2, 2), torch.nn.Flatten(),
        torch.nn.Linear(flat, 120, dtype=T64), *norm(120, 1), torch.nn.Sigmoid(),
        torch.nn.Linear(120, 84, dtype=T64), *norm(84, 1), torch.nn.Sigmoid(),
        torch.nn.Linear(84, 10, dtype=T64))


def copy_weights(model, twin):
    """Our weight layers' arrays into the twin's, in order (convs, linears and
    norms are made in the same order on both sides); our Linear W is (in, out)."""
    ours = [layer for layer in model.layers if layer.params]
    theirs = [m for m in twin.modules()
              if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear, torch.nn.BatchNorm2d,
                                torch.nn.BatchNorm1d, torch.nn.GroupNorm))]
    assert len(ours) == len(theirs), (len(ours), len(theirs))
    with torch.no_grad():
        for a, m in zip(ours, theirs):
            kind = type(a).__name__
            if kind in ("Conv2d", "Linear"):
                W = a.params["W"] if kind == "Conv2d" else a.params["W"].T
                assert tuple(m.weight.shape) == W.shape, (kind, m)
                m.weight.copy_(torch.tensor(W))
                if "b" in a.params:
                    m.bias.copy_(torch.tensor(a.params["b"]))
                else:
                    assert m.bias is None or not m.bias.any()
            else:  # a norm's gamma and beta, random so that they matter
                rng = np.random.default_rng(len(a.params["gamma"]))
                a.params["gamma"][...] = rng.uniform(0.5, 1.5, a.params["gamma"].shape)
                a.params["beta"][...] = rng.normal(0, 0.2, a.params["beta"].shape)
                m.weight.copy_(torch.tensor(a.params["gamma"]))
                m.bias.copy_(torch.tensor(a.params["beta"]))
    return ours, theirs


def train_both(model, twin, rng, shape, steps=3, batch=6, lr=0.05):
    """``steps`` SGD-with-momentum steps on both; every loss to 1e-10."""
    opt = make_optimizer("momentum", model.layers, lr, momentum=0.9)
    topt = torch.optim.SGD(twin.parameters(), lr=lr, momentum=0.9)
    twin.train()
    for _ in range(steps):
        x, y = rng.standard_normal((batch, math.prod(shape))), rng.integers(0, 10, batch)
        loss = model.loss_and_backward(x, y)
        opt.step()
        topt.zero_grad()
        tloss = F.cross_entropy(twin(torch.tensor(x).reshape(batch, *shape)), torch.tensor(y))
        tloss.backward()
        topt.step()
        assert loss == pytest.approx(tloss.item(), rel=1e-10, abs=1e-12)


def assert_same_state(ours, theirs):
    for a, m in zip(ours, theirs):
        W = a.params.get("W", a.params.get("gamma"))
        tw = m.weight.detach().numpy()
        np.testing.assert_allclose(W if W.ndim != 2 else W.T, tw, rtol=1e-8, atol=1e-10)
        if "running_var" in a.buffers:
            np.testing.assert_allclose(a.buffers["running_mean"], m.running_mean.numpy(),
                                       rtol=1e-9, atol=1e-12)
            np.testing.assert_allclose(a.buffers["running_var"], m.running_var.numpy(),
                                       rtol=1e-9, atol=1e-12)


def assert_same_eval(model, twin, rng, shape, n=5):
    x = rng.standard_normal((n, math.prod(shape)))
    twin.eval()
    np.testing.assert_allclose(model.forward(x), twin(torch.tensor(x).reshape(n, *shape))
                               .detach().numpy(), **TOL)


# --- ResNet -----------------------------------------------------------------------

@pytest.mark.parametrize("norm,image", [("batch", (1, 15, 15)), ("group", (3, 9, 11)),
                                        ("layer", (1, 12, 12)), ("instance", (2, 13, 10)),
                                        ("none", (1, 11, 11))])
def test_resnet_training_steps_match_torch(norm, image):
    """A ResNet with two blocks per stage (identity and projection shortcuts,
    stride 2 on odd sizes) against the basic-block ResNet, norm before ReLU."""
    rng = np.random.default_rng(3)
    specs = resnet_layers([4, 8, 8], 2, norm=norm)
    settings = NormSettings(norm, groups=2,
                            **({"affine": True, "track_running_stats": False}
                               if norm == "instance" else {}))
    model = build(specs, image, 10, rng=rng, norm=settings, weight_scale="he",
                  dtype=np.float64)
    twin = ResNet(image[0], [4, 8, 8], 2, 10, norm, 2)
    ours, theirs = copy_weights(model, twin)
    train_both(model, twin, rng, image)
    assert_same_state(ours, theirs)
    assert_same_eval(model, twin, rng, image)


def test_resnet20_from_a_config_matches_torch():
    """``model.arch: resnet`` with the defaults is ResNet-20 (19 convolutions
    and the output layer; 1x1 projections at the two stage starts)."""
    cfg = config.from_dict({"model": {"arch": "resnet"}, "data": {"dataset": "mnist5k"},
                            "train": {"dtype": "float64"}, "init": {"weight_scale": "he"}})
    rng = np.random.default_rng(0)
    model = build_model(cfg, 784, 10, rng)
    kinds = [type(layer).__name__ for layer in model.layers]
    assert kinds.count("Conv2d") == 19 + 2 and kinds.count("Linear") == 1
    assert kinds.count("Add") == 9 and kinds.count("Shortcut") == 2
    twin = ResNet(1, [16, 32, 64], 3, 10, "batch", 4)
    ours, theirs = copy_weights(model, twin)
    train_both(model, twin, rng, (1, 28, 28), steps=2, batch=4)
    assert_same_state(ours, theirs)
    assert_same_eval(model, twin, rng, (1, 28, 28), n=3)


# --- LeNet --------------------------------------------------------------------------

@pytest.mark.parametrize("bn,padding,lr", [(True, "valid", 1.0), (False, [2, "valid"], 0.9)])
def test_lenet_as_d2l_trains_it(bn, padding, lr):
    """The shipped lenet_bn experiment's two networks, from their configs, against
    d2l's code: padding, average pooling with stride 2, the flatten size (16x4x4
    for BN LeNet, 16x5x5 for the plain one), sigmoid, BN in 1-D and 2-D."""
    raw = {"data": {"dataset": "fashion-mnist"},
           "model": {"arch": "cnn", "channels": [6, 16], "kernel": 5, "padding": padding,
                     "pool": "avg", "pool_kernel": 2, "pool_stride": 2, "hidden": [120, 84],
                     "activation": "sigmoid", "norm": "batch" if bn else "none"},
           "init": {"weight_scale": "glorot_uniform"}, "train": {"dtype": "float64"}}
    cfg = config.from_dict(raw)
    rng = np.random.default_rng(1)
    model = build_model(cfg, 784, 10, rng)
    flatten_in = next(layer for layer in model.layers if type(layer).__name__ == "Linear")
    assert flatten_in.in_features == (256 if bn else 400)
    twin = lenet(bn, 0 if bn else 2)
    ours, theirs = _copy_lenet(model, twin, bn)
    train_both(model, twin, rng, (1, 28, 28), steps=3, batch=8, lr=lr)
    assert_same_state(ours, theirs)
    assert_same_eval(model, twin, rng, (1, 28, 28))


def _copy_lenet(model, twin, bn):
    """As ``copy_weights``; where our layer has no bias (before BN), the twin's
    bias is set to 0 and frozen: BN cancels a per-channel bias exactly, so the
    two networks compute the same function."""
    ours = [layer for layer in model.layers if layer.params]
    theirs = [m for m in twin.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear,
                                                          torch.nn.BatchNorm2d,
                                                          torch.nn.BatchNorm1d))]
    for a, m in zip(ours, theirs):
        if type(a).__name__ in ("Conv2d", "Linear") and "b" not in a.params:
            with torch.no_grad():
                m.bias.zero_()
            m.bias.requires_grad_(False)
    return copy_weights(model, twin)


# --- layers on odd sizes ----------------------------------------------------------

@pytest.mark.parametrize("k,s,p,size", [(5, 1, 0, (9, 11)), (5, 2, 4, (7, 8)), (3, 3, 2, (10, 13)),
                                        (1, 2, 0, (9, 7)), (4, 2, 3, (11, 9)), (2, 1, 1, (5, 6))])
def test_strided_and_padded_convolutions_match_torch(k, s, p, size):
    rng = np.random.default_rng(k * 100 + s * 10 + p)
    ours = Conv2d(3, 4, k, s, p, True, rng=rng, dtype=np.float64)
    theirs = torch.nn.Conv2d(3, 4, k, s, p, dtype=T64)
    ours.params["b"][...] = rng.standard_normal(4)
    with torch.no_grad():
        theirs.weight.copy_(torch.tensor(ours.params["W"]))
        theirs.bias.copy_(torch.tensor(ours.params["b"]))
    x = rng.standard_normal((3, 3, *size))
    dy = rng.standard_normal(ours.forward(x, True).shape)
    compare(ours, theirs, x, dy, True, [("W", theirs.weight), ("b", theirs.bias)])


@pytest.mark.parametrize("k,s,size", [(2, 2, (9, 7)), (3, 2, (11, 10)), (3, 1, (5, 7)),
                                      (2, 3, (8, 11))])
def test_pools_with_their_own_stride_match_torch(k, s, size):
    rng = np.random.default_rng(k * 10 + s)
    x = rng.standard_normal((2, 3, *size))
    for ours, fn in ((MaxPool2d(k, s), lambda t: F.max_pool2d(t, k, s)),
                     (AvgPool2d(k, s), lambda t: F.avg_pool2d(t, k, s))):
        compare(ours, fn, x, rng.standard_normal(ours.forward(x, True).shape), True)


# --- initializations ----------------------------------------------------------------

@pytest.mark.parametrize("scheme,torch_init", [
    ("kaiming_uniform", None),
    ("glorot_uniform", torch.nn.init.xavier_uniform_),
    ("glorot_normal", torch.nn.init.xavier_normal_),
    ("he", lambda w: torch.nn.init.kaiming_normal_(w, nonlinearity="relu")),
])
def test_initializations_draw_what_torch_draws(scheme, torch_init):
    """Each scheme's weights (and PyTorch's default bias) against torch's own
    initializer on the same shape: the same bound or std (a uniform's range, a
    normal's sample std within 3%), for a Conv2d and a Linear."""
    cfg = config.from_dict({"model": {"arch": "cnn", "channels": [64], "kernel": 5,
                                      "hidden": [300], "norm": "none"},
                            "init": {"weight_scale": scheme}, "train": {"dtype": "float64"}})
    model = build_model(cfg, 784, 10, np.random.default_rng(0))
    conv, linear = model.layers[0], model.layers[-3]
    assert type(conv).__name__ == "Conv2d" and type(linear).__name__ == "Linear"
    for layer, twin in ((conv, torch.nn.Conv2d(1, 64, 5, padding=2, dtype=T64)),
                        (linear, torch.nn.Linear(linear.in_features, 300, dtype=T64))):
        if torch_init is not None:
            torch_init(twin.weight)
        ours_w, theirs_w = layer.params["W"], twin.weight.detach().numpy()
        if scheme.endswith("uniform"):
            assert np.abs(ours_w).max() == pytest.approx(np.abs(theirs_w).max(), rel=0.01)
            assert np.abs(ours_w).max() <= np.abs(theirs_w).max() / 0.99
        else:  # torch's formula for the std, from torch's own fans; ours: a sample of it
            fan_in, fan_out = torch.nn.init._calculate_fan_in_and_fan_out(twin.weight)
            want = (math.sqrt(2 / (fan_in + fan_out)) if scheme == "glorot_normal"
                    else math.sqrt(2 / fan_in))
            assert theirs_w.std() == pytest.approx(want, rel=0.08)
            assert ours_w.std() == pytest.approx(want, rel=0.04)
        if scheme == "kaiming_uniform":  # torch's default bias: U(+-1/sqrt(fan_in))
            bound = 1 / math.sqrt(layer.params["W"][0].size if layer is conv
                                  else layer.in_features)
            b = layer.params["b"]
            assert np.abs(b).max() <= bound and np.abs(b).max() > 0.8 * bound
        else:
            assert not layer.params["b"].any()
