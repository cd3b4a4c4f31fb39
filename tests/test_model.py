"""Whole-model gradients, the builder's structure, and the loss's stability."""

import itertools
import warnings

import numpy as np
import pytest
from gradcheck import numeric_grad, rel_error

from bnexp.engine import (
    BatchNorm,
    Dropout,
    GroupNorm,
    LayerNorm,
    Linear,
    SoftmaxCrossEntropy,
    build_mlp,
)

COMBOS = list(itertools.product(["none", "batch", "layer", "group"], ["before", "after"],
                                ["relu", "sigmoid", "tanh"]))


def model_gradcheck(model, x, labels, reset=lambda: None):
    reset()
    model.loss_and_backward(x, labels)
    analytic = {(n, k): layer.grads[k].copy() for n, layer in model.named_layers()
                for k in layer.grads}

    def f():
        reset()
        return model.loss.forward(model.forward(x, train=True), labels)

    worst = 0.0
    for (name, key), g in analytic.items():
        layer = dict(model.named_layers())[name]
        numeric = numeric_grad(f, layer.params[key])
        assert np.linalg.norm(g) > 1e-4, f"{name}.{key} gradient is trivially zero"
        worst = max(worst, rel_error(g, numeric))
    return worst, len(analytic)


@pytest.mark.parametrize("norm,placement,activation", COMBOS)
def test_model_gradients(norm, placement, activation):
    rng = np.random.default_rng(0)
    # Widths 8 and 6 with 2 groups: groups of 4 and 3 features. (A 2-feature group
    # normalizes to +-1 whatever its input, so its gradients are ~eps/var and the
    # finite differences drown in round-off.)
    model = build_mlp(5, 3, [8, 6], rng=rng, activation=activation, norm=norm,
                      placement=placement, groups=2, weight_scale=1.0, dtype=np.float64)
    for layer in model.layers:  # non-trivial affine params
        for key in ("gamma", "beta", "b"):
            if key in layer.params:
                layer.params[key][...] = rng.standard_normal(layer.params[key].shape) * 0.5
    x = rng.standard_normal((7, 5))
    labels = rng.integers(0, 3, 7)
    worst, n = model_gradcheck(model, x, labels)
    assert worst < 1e-6
    assert n >= 5


def test_model_gradients_with_dropout():
    rng = np.random.default_rng(1)
    model = build_mlp(4, 3, [6, 6], rng=rng, norm="batch", dropout=0.3,
                      weight_scale=1.0, dtype=np.float64)
    drops = [layer for layer in model.layers if isinstance(layer, Dropout)]
    assert len(drops) == 2

    def reset():
        for i, d in enumerate(drops):
            d.rng = np.random.default_rng(100 + i)

    x = rng.standard_normal((8, 4))
    worst, _ = model_gradcheck(model, x, rng.integers(0, 3, 8), reset)
    assert worst < 1e-6


@pytest.mark.parametrize("placement,expected", [
    ("before", ["linear1", "batchnorm1", "relu1", "linear2", "batchnorm2", "relu2", "linear_out"]),
    ("after", ["linear1", "relu1", "batchnorm1", "linear2", "relu2", "batchnorm2", "linear_out"]),
])
def test_builder_layer_order(placement, expected):
    model = build_mlp(3, 2, [4, 4], rng=np.random.default_rng(0), norm="batch", placement=placement)
    assert model.names == expected


def test_bias_dropped_only_where_batchnorm_cancels_it():
    def biases(**kw):
        m = build_mlp(3, 2, [4, 4], rng=np.random.default_rng(0), **kw)
        return [("b" in layer.params) for layer in m.layers if isinstance(layer, Linear)]

    assert biases(norm="batch", placement="before") == [False, False, True]
    assert biases(norm="batch", placement="after") == [True, True, True]
    assert biases(norm="layer", placement="before") == [True, True, True]
    assert biases(norm="none") == [True, True, True]


def test_bias_before_batchnorm_cancels_exactly():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((9, 3))
    lin = Linear(3, 4, True, rng=rng, dtype=np.float64)
    bn = BatchNorm(4, dtype=np.float64)
    y0 = bn.forward(lin.forward(x, True), True).copy()
    lin.params["b"][...] = rng.standard_normal(4) * 10
    np.testing.assert_allclose(bn.forward(lin.forward(x, True), True), y0, atol=1e-10)


@pytest.mark.parametrize("scale,fan_std", [(0.01, None), ("he", 2.0), ("xavier", 1.0)])
def test_weight_init_std(scale, fan_std):
    model = build_mlp(400, 10, [300], rng=np.random.default_rng(0), weight_scale=scale,
                      dtype=np.float64)
    W = model.layers[0].params["W"]
    expected = scale if fan_std is None else np.sqrt(fan_std / 400)
    assert W.std() == pytest.approx(expected, rel=0.02)
    assert abs(W.mean()) < expected * 0.02
    assert np.all(model.layers[-1].params["b"] == 0)


def test_norm_params_start_at_identity_and_dtype_is_respected():
    model = build_mlp(3, 2, [4], rng=np.random.default_rng(0), norm="group", groups=2)
    gn = model.layers[1]
    assert isinstance(gn, GroupNorm)
    assert np.all(gn.params["gamma"] == 1) and np.all(gn.params["beta"] == 0)
    assert all(p.dtype == np.float32 for layer in model.layers for p in layer.params.values())
    logits = model.forward(np.ones((2, 3)), train=True)
    assert logits.dtype == np.float32


def test_same_seed_same_model_and_different_seed_differs():
    a = build_mlp(5, 3, [4], rng=np.random.default_rng(7), norm="layer")
    b = build_mlp(5, 3, [4], rng=np.random.default_rng(7), norm="layer")
    c = build_mlp(5, 3, [4], rng=np.random.default_rng(8), norm="layer")
    sa, sb, sc = a.state_dict(), b.state_dict(), c.state_dict()
    assert all(np.array_equal(sa[k], sb[k]) for k in sa)
    assert not np.array_equal(sa["linear1.W"], sc["linear1.W"])


def test_builder_errors_name_the_problem():
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="norm: got 'bogus'"):
        build_mlp(3, 2, [4], rng=rng, norm="bogus")
    with pytest.raises(ValueError, match="D=10 must be divisible by groups=4"):
        build_mlp(3, 2, [10], rng=rng, norm="group", groups=4)


def test_forward_does_not_modify_its_input():
    rng = np.random.default_rng(3)
    for norm in ("none", "batch", "layer", "group", "weight"):
        model = build_mlp(4, 3, [4], rng=rng, norm=norm, groups=2, dtype=np.float64)
        x = rng.standard_normal((5, 4))
        x0 = x.copy()
        model.loss_and_backward(x, rng.integers(0, 3, 5))
        np.testing.assert_array_equal(x, x0)


def test_records_hold_every_layer_input_and_output():
    model = build_mlp(4, 3, [5, 5], rng=np.random.default_rng(0), norm="batch")
    x = np.random.default_rng(1).standard_normal((6, 4)).astype(np.float32)
    logits = model.forward(x, train=True, record=True).copy()
    assert [r.name for r in model.records] == model.names
    np.testing.assert_array_equal(model.records[0].x, x)
    np.testing.assert_array_equal(model.records[-1].y, logits)
    for prev, nxt in zip(model.records, model.records[1:]):
        np.testing.assert_array_equal(prev.y, nxt.x)


def test_evaluate_and_predict_use_eval_mode():
    rng = np.random.default_rng(4)
    model = build_mlp(4, 3, [6], rng=rng, norm="batch", dtype=np.float64)
    x, y = rng.standard_normal((50, 4)), rng.integers(0, 3, 50)
    model.loss_and_backward(x[:10], y[:10])
    bn = model.layers[1]
    before = bn.buffers["running_mean"].copy()
    loss, acc = model.evaluate(x, y, chunk=7)  # chunks must not change the answer
    np.testing.assert_array_equal(bn.buffers["running_mean"], before)
    pred = model.predict(x, chunk=16)
    assert acc == pytest.approx(np.mean(pred == y))
    logits = model.forward(x, train=False)
    assert loss == pytest.approx(SoftmaxCrossEntropy().forward(logits, y))


def test_cross_entropy_stable_for_huge_logits():
    logits = np.array([[1e4, 0.0, -1e4], [-1e4, 1e4, 0.0]], dtype=np.float32)
    loss = SoftmaxCrossEntropy()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        value = loss.forward(logits, np.array([0, 0]))
        grad = loss.backward()
    assert value == pytest.approx(1e4, rel=1e-6)  # 0 for the first, 2e4 for the second
    assert np.all(np.isfinite(grad))
    np.testing.assert_allclose(grad, [[0, 0, 0], [-0.5, 0.5, 0]], atol=1e-6)


def test_cross_entropy_value_matches_definition():
    rng = np.random.default_rng(5)
    logits, labels = rng.standard_normal((4, 5)), rng.integers(0, 5, 4)
    p = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    expected = -np.mean(np.log(p[np.arange(4), labels]))
    assert SoftmaxCrossEntropy().forward(logits, labels) == pytest.approx(expected, rel=1e-12)


def test_layer_errors():
    with pytest.raises(ValueError, match="p=1.0 must be in"):
        Dropout(1.0, rng=np.random.default_rng(0))
    with pytest.raises(RuntimeError, match="backward called before forward"):
        LayerNorm(3).backward(np.ones((2, 3)))


def test_cross_entropy_any_integer_labels_and_batch_sizes():
    rng = np.random.default_rng(6)
    loss = SoftmaxCrossEntropy()
    for N in (5, 2, 5):
        logits = rng.standard_normal((N, 3)) * 4
        labels = rng.integers(0, 3, N)
        p = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
        expected_grad = (p - np.eye(3)[labels]) / N
        for dtype in (np.int64, np.int32, np.uint8):
            value = loss.forward(logits, labels.astype(dtype))
            assert value == pytest.approx(-np.mean(np.log(p[np.arange(N), labels])), rel=1e-12)
            np.testing.assert_allclose(loss.backward(), expected_grad, rtol=1e-10, atol=1e-15)


@pytest.mark.parametrize("bad", [3, -1])
def test_cross_entropy_rejects_labels_outside_the_classes(bad):
    logits = np.zeros((4, 3), dtype=np.float32)
    with pytest.raises(ValueError, match=r"labels must be in \[0, 3\)"):
        SoftmaxCrossEntropy().forward(logits, np.array([0, 1, bad, 2]))
