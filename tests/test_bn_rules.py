"""Every batch norm path follows the one statement of its rules: eps inside
the square root, y = gamma (x - mean) / sqrt(var + eps) + beta with the
biased batch variance; the running update of ``norms.running`` (momentum or
a cumulative average, PyTorch's unbiased variance or the book's biased one).
The paths: NumPy rows, NumPy channels, the reference (ghost batches, renorm),
the numba kernels on rows and channels, and the compiled whole MLP step."""

import numpy as np
import pytest

from bnexp.engine import BatchNorm, build_mlp
from bnexp.engine.backend import load

SETTINGS = [{"momentum": 0.1, "convention": "pytorch"}, {"momentum": None, "convention": "pytorch"},
            {"momentum": 0.3, "convention": "book"}]


def paths():
    out = [("numpy", False), ("reference", False)]
    try:
        load("numba")
    except ImportError:
        return out
    return out + [("numba", False), ("numba", True)]


def expected(x, gamma, beta, eps, momentum, convention, start):
    """The rules by hand, in float64: the output and the running buffers after
    one training step from buffers ``start`` (mean, var)."""
    axes = (0, *range(2, x.ndim))
    M = x.size // x.shape[1]
    shape = (1, -1) + (1,) * (x.ndim - 2)
    mean, var = x.mean(axis=axes), x.var(axis=axes)  # biased
    y = gamma.reshape(shape) * (x - mean.reshape(shape)) / np.sqrt(var + eps).reshape(shape) \
        + beta.reshape(shape)
    f = 1.0 if momentum is None else momentum  # the first update of a cumulative average: 1/1
    unbias = M / (M - 1) if convention == "pytorch" else 1.0
    return y, (1 - f) * start[0] + f * mean, (1 - f) * start[1] + f * var * unbias


@pytest.mark.parametrize("opts", SETTINGS)
@pytest.mark.parametrize("shape", [(12, 5), (6, 3, 4, 5)])
@pytest.mark.parametrize("path", paths())
def test_every_path_normalizes_and_updates_by_the_same_rules(path, shape, opts):
    kind, relu = path
    rng = np.random.default_rng(0)
    C = shape[1]
    # A large eps next to tiny variances: eps anywhere but inside the root is far off.
    x = rng.standard_normal(shape) * np.geomspace(1e-3, 3, C).reshape((1, -1) + (1,) * (len(shape) - 2)) + 2.0
    bn = BatchNorm(C, eps=0.05, dtype=np.float64, ghost_batch=shape[0] if kind == "reference"
                   else None, **opts)
    bn.params["gamma"][...] = rng.uniform(0.5, 2, C)
    bn.params["beta"][...] = rng.standard_normal(C)
    if kind == "numba":
        bn.kernels = load("numba")
    start = bn.running.copy()
    if relu:
        from bnexp.engine import ReLU
        y = bn.forward_relu(x, True, ReLU())
    else:
        y = bn.forward(x, True)
    want_y, want_mean, want_var = expected(x, bn.params["gamma"], bn.params["beta"], bn.eps,
                                           opts["momentum"], opts["convention"], start)
    np.testing.assert_allclose(y, np.maximum(want_y, 0) if relu else want_y, rtol=1e-12,
                               atol=1e-12)
    np.testing.assert_allclose(bn.buffers["running_mean"], want_mean, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(bn.buffers["running_var"], want_var, rtol=1e-12, atol=1e-15)
    assert int(bn.buffers["num_batches_tracked"]) == 1
    # eval mode divides by sqrt(running_var + eps) too
    rm, rv = bn.buffers["running_mean"].copy(), bn.buffers["running_var"].copy()
    shape_c = (1, -1) + (1,) * (len(shape) - 2)
    want_eval = (bn.params["gamma"].reshape(shape_c) * (x - rm.reshape(shape_c))
                 / np.sqrt(rv + bn.eps).reshape(shape_c) + bn.params["beta"].reshape(shape_c))
    np.testing.assert_allclose(bn.forward(x, False), want_eval, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("opts", SETTINGS)
def test_the_compiled_whole_step_moves_the_running_statistics_by_the_same_rule(opts):
    pytest.importorskip("numba")
    rng = np.random.default_rng(1)
    net = build_mlp(7, 3, [6], rng=rng, norm="batch", dtype=np.float64, kernels="numba",
                    eps=0.05, **opts)
    x, labels = rng.standard_normal((10, 7)), rng.integers(0, 3, 10)
    bn = net.layers[1]
    assert isinstance(bn, BatchNorm)
    start = bn.running.copy()
    z = x @ net.layers[0].params["W"]  # the first Linear has no bias before BN
    for _ in range(2):  # the second step: a cumulative average's 1/2
        net.loss_and_backward(x, labels)
    assert any(plan is not None for plan in net._whole.values())  # the whole step ran
    _, mean1, var1 = expected(z, bn.params["gamma"], bn.params["beta"], bn.eps,
                              opts["momentum"], opts["convention"], start)
    f = 0.5 if opts["momentum"] is None else opts["momentum"]
    M = len(z)
    unbias = M / (M - 1) if opts["convention"] == "pytorch" else 1.0
    np.testing.assert_allclose(bn.buffers["running_mean"], (1 - f) * mean1 + f * z.mean(axis=0),
                               rtol=1e-12)
    np.testing.assert_allclose(bn.buffers["running_var"],
                               (1 - f) * var1 + f * z.var(axis=0) * unbias, rtol=1e-12)
    assert int(bn.buffers["num_batches_tracked"]) == 2
