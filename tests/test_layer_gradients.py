"""Every layer's gradients (input and params) against finite differences in float64."""

import numpy as np
import pytest
from gradcheck import check_layer, numeric_grad, rel_error

from bnexp.engine import (
    BatchNorm,
    Dropout,
    GroupNorm,
    Identity,
    LayerNorm,
    Linear,
    ReLU,
    Sigmoid,
    SoftmaxCrossEntropy,
    Tanh,
)

F64 = np.float64
TOL = 1e-6


def randomize_affine(layer, rng):
    """gamma/beta away from 1/0, so that their role in the gradient is tested."""
    for key in ("gamma", "beta"):
        if key in layer.params:
            layer.params[key][...] = rng.standard_normal(layer.params[key].shape)


def assert_ok(errors):
    assert errors and all(e < TOL for e in errors.values()), errors


@pytest.mark.parametrize("bias", [True, False])
def test_linear(bias):
    rng = np.random.default_rng(0)
    layer = Linear(5, 4, bias, rng=rng, std=1.0, dtype=F64)
    if bias:
        layer.params["b"][...] = rng.standard_normal(4)
    errors = check_layer(layer, rng.standard_normal((6, 5)), rng)
    assert set(errors) == ({"x", "W", "b"} if bias else {"x", "W"})
    assert_ok(errors)


def test_linear_without_input_grad_still_fills_param_grads():
    rng = np.random.default_rng(1)
    layer = Linear(3, 2, rng=rng, dtype=F64)
    layer.input_grad = False
    x = rng.standard_normal((4, 3))
    layer.forward(x, True)
    dy = rng.standard_normal((4, 2))
    assert layer.backward(dy) is None
    np.testing.assert_allclose(layer.grads["W"], x.T @ dy)


@pytest.mark.parametrize("cls", [ReLU, Sigmoid, Tanh, Identity])
def test_activations(cls):
    rng = np.random.default_rng(2)
    x = rng.standard_normal((7, 5)) * 2
    x[np.abs(x) < 1e-3] = 0.5  # keep ReLU's kink away from the finite differences
    assert_ok(check_layer(cls(), x, rng))


@pytest.mark.parametrize("train", [True, False])
@pytest.mark.parametrize("affine", [True, False])
def test_batchnorm(train, affine):
    rng = np.random.default_rng(3)
    layer = BatchNorm(4, affine=affine, dtype=F64)
    randomize_affine(layer, rng)
    layer.buffers["running_mean"][...] = rng.standard_normal(4)
    layer.buffers["running_var"][...] = rng.uniform(0.5, 2.0, 4)
    x = rng.standard_normal((6, 4)) * 3 + 1
    assert_ok(check_layer(layer, x, rng, train=train))


def test_batchnorm_eval_with_batch_statistics():
    rng = np.random.default_rng(4)
    layer = BatchNorm(3, track_running_stats=False, dtype=F64)
    randomize_affine(layer, rng)
    assert_ok(check_layer(layer, rng.standard_normal((5, 3)), rng, train=False))


@pytest.mark.parametrize("affine", [True, False])
@pytest.mark.parametrize("train", [True, False])
def test_layernorm(affine, train):
    rng = np.random.default_rng(5)
    layer = LayerNorm(6, affine=affine, dtype=F64)
    randomize_affine(layer, rng)
    assert_ok(check_layer(layer, rng.standard_normal((4, 6)) * 2 - 1, rng, train=train))


@pytest.mark.parametrize("groups", [1, 2, 3, 6])
@pytest.mark.parametrize("affine", [True, False])
def test_groupnorm(groups, affine):
    rng = np.random.default_rng(6)
    layer = GroupNorm(6, groups, affine=affine, dtype=F64)
    randomize_affine(layer, rng)
    x = rng.standard_normal((3, 6)) * 2 + 0.5
    if groups == 6:
        # One feature per group normalizes every entry to 0: dx is exactly 0.
        with pytest.raises(AssertionError, match="trivially zero"):
            check_layer(layer, x, rng)
    else:
        assert_ok(check_layer(layer, x, rng))


def test_dropout_with_fixed_mask():
    rng = np.random.default_rng(7)
    layer = Dropout(0.4, rng=np.random.default_rng(0))

    def reset():
        layer.rng = np.random.default_rng(42)

    assert_ok(check_layer(layer, rng.standard_normal((8, 5)), rng, reset=reset))


def test_softmax_cross_entropy_gradient():
    rng = np.random.default_rng(8)
    logits = rng.standard_normal((6, 4)) * 3
    labels = rng.integers(0, 4, 6)
    loss = SoftmaxCrossEntropy()
    loss.forward(logits, labels)
    analytic = loss.backward().copy()
    numeric = numeric_grad(lambda: loss.forward(logits, labels), logits)
    assert rel_error(analytic, numeric) < TOL


def test_relu_gradient_is_zero_at_zero_and_negative():
    """PyTorch's convention: dy passes where x > 0 only (x = +0.0 and -0.0 block it)."""
    layer = ReLU()
    x = np.array([[-1.0, -0.0, 0.0, 1e-45, 2.0]], dtype=np.float32)
    y = layer.forward(x, train=True)
    np.testing.assert_array_equal(y, np.array([[0, 0, 0, 1e-45, 2]], dtype=np.float32))
    dx = layer.backward(np.full_like(x, 3.0))
    np.testing.assert_array_equal(dx, [[0, 0, 0, 3, 3]])


@pytest.mark.parametrize("cls", [BatchNorm, ReLU, Linear])
def test_work_buffers_follow_the_batch_size(cls):
    """Layers keep work arrays per batch size; alternating sizes must give the
    same outputs and gradients as a fresh layer would."""
    rng = np.random.default_rng(11)

    def make():
        if cls is Linear:
            return Linear(5, 3, rng=np.random.default_rng(0), dtype=F64)
        return BatchNorm(5, dtype=F64) if cls is BatchNorm else ReLU()

    layer = make()
    for N in (6, 3, 6, 2):
        x, dy = rng.standard_normal((N, 5)), rng.standard_normal((N, 3 if cls is Linear else 5))
        fresh = make()
        if cls is BatchNorm:  # same running statistics before the step
            fresh.buffers["running_mean"][...] = layer.buffers["running_mean"]
            fresh.buffers["running_var"][...] = layer.buffers["running_var"]
        np.testing.assert_allclose(layer.forward(x, True), fresh.forward(x, True), rtol=1e-12)
        np.testing.assert_allclose(layer.backward(dy), fresh.backward(dy), rtol=1e-12)
        for key in layer.buffers:
            if key != "num_batches_tracked":
                np.testing.assert_allclose(layer.buffers[key], fresh.buffers[key], rtol=1e-12)
