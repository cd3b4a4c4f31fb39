"""Normalization semantics (PyTorch's unless stated) and properties from the papers."""

import numpy as np
import pytest

from bnexp.engine import BatchNorm, GroupNorm, LayerNorm, Linear

F64 = np.float64


def test_batchnorm_running_stats_after_known_batches():
    bn = BatchNorm(2, momentum=0.1, dtype=F64)
    b1 = np.array([[1.0, 10.0], [3.0, 14.0]])  # mean (2, 12), unbiased var (2, 8)
    b2 = np.array([[0.0, 0.0], [0.0, 6.0], [3.0, 3.0]])  # mean (1, 3), unbiased var (3, 9)
    bn.forward(b1, train=True)
    np.testing.assert_allclose(bn.buffers["running_mean"], [0.2, 1.2])
    np.testing.assert_allclose(bn.buffers["running_var"], [0.9 + 0.2, 0.9 + 0.8])
    bn.forward(b2, train=True)
    np.testing.assert_allclose(bn.buffers["running_mean"], [0.9 * 0.2 + 0.1, 0.9 * 1.2 + 0.3])
    np.testing.assert_allclose(bn.buffers["running_var"], [0.9 * 1.1 + 0.3, 0.9 * 1.7 + 0.9])
    assert int(bn.buffers["num_batches_tracked"]) == 2


def test_batchnorm_train_output_uses_biased_batch_variance():
    bn = BatchNorm(1, eps=0.0, dtype=F64)
    y = bn.forward(np.array([[1.0], [3.0]]), train=True)  # mean 2, biased var 1
    np.testing.assert_allclose(y[:, 0], [-1.0, 1.0])


def test_batchnorm_eval_uses_running_stats_and_leaves_buffers_unchanged():
    bn = BatchNorm(3, eps=1e-5, dtype=F64)
    rng = np.random.default_rng(0)
    for _ in range(3):
        bn.forward(rng.standard_normal((8, 3)) * 2 + 5, train=True)
    before = {k: v.copy() for k, v in bn.buffers.items()}
    x = rng.standard_normal((4, 3))
    y = bn.forward(x, train=False).copy()
    for k in before:
        np.testing.assert_array_equal(bn.buffers[k], before[k])
    rm, rv = before["running_mean"], before["running_var"]
    np.testing.assert_allclose(y, (x - rm) / np.sqrt(rv + 1e-5))


def test_batchnorm_momentum_none_is_cumulative_average():
    bn = BatchNorm(2, momentum=None, dtype=F64)
    rng = np.random.default_rng(1)
    batches = [rng.standard_normal((5, 2)) * (i + 1) + i for i in range(4)]
    for b in batches:
        bn.forward(b, train=True)
    # The first update has factor 1/1, so the initial buffers are forgotten.
    np.testing.assert_allclose(bn.buffers["running_mean"], np.mean([b.mean(0) for b in batches], 0))
    np.testing.assert_allclose(bn.buffers["running_var"],
                               np.mean([b.var(0, ddof=1) for b in batches], 0))


def test_batchnorm_without_running_stats_uses_batch_stats_in_eval():
    bn = BatchNorm(2, track_running_stats=False, dtype=F64)
    assert bn.buffers == {}
    x = np.random.default_rng(2).standard_normal((6, 2)) * 4 + 3
    y_eval = bn.forward(x, train=False).copy()
    y_train = bn.forward(x, train=True).copy()
    np.testing.assert_allclose(y_eval, y_train)
    np.testing.assert_allclose(y_eval.mean(0), 0, atol=1e-12)


def test_batchnorm_rejects_a_training_batch_of_one():
    bn = BatchNorm(3)
    with pytest.raises(ValueError, match="at least 2 values per channel"):
        bn.forward(np.ones((1, 3), dtype=np.float32), train=True)
    bn.forward(np.ones((1, 3), dtype=np.float32), train=False)  # eval is fine


def test_batchnorm_output_invariant_to_weight_scale():
    """Ioffe & Szegedy sec. 3.3: BN(x (aW)) = BN(x W) for a scalar a > 0."""
    rng = np.random.default_rng(3)
    lin = Linear(5, 4, False, rng=rng, dtype=F64)
    x = rng.standard_normal((10, 5))
    bn = BatchNorm(4, eps=0.0, dtype=F64)
    y1 = bn.forward(x @ lin.params["W"], True).copy()
    y2 = bn.forward(x @ (37.0 * lin.params["W"]), True).copy()
    np.testing.assert_allclose(y1, y2, rtol=1e-10, atol=1e-12)
    # ... and the gradient w.r.t. its input scales as 1/a (so larger weights learn slower).
    dy = rng.standard_normal((10, 4))
    bn.forward(x @ lin.params["W"], True)
    g1 = bn.backward(dy).copy()
    bn.forward(x @ (37.0 * lin.params["W"]), True)
    g2 = bn.backward(dy).copy()
    np.testing.assert_allclose(g2 * 37.0, g1, rtol=1e-9, atol=1e-12)


def test_layernorm_normalizes_each_sample():
    ln = LayerNorm(7, eps=0.0, affine=False, dtype=F64)
    x = np.random.default_rng(4).standard_normal((5, 7)) * 10 + 3
    y = ln.forward(x, True)
    np.testing.assert_allclose(y.mean(1), 0, atol=1e-12)
    np.testing.assert_allclose(y.var(1), 1, rtol=1e-12)
    np.testing.assert_allclose(ln.forward(x, False), y)  # same in both modes


def test_groupnorm_with_one_group_equals_layernorm():
    rng = np.random.default_rng(5)
    x = rng.standard_normal((4, 6)) * 3
    gn, ln = GroupNorm(6, 1, dtype=F64), LayerNorm(6, dtype=F64)
    for layer in (gn, ln):
        layer.params["gamma"][...] = np.arange(1, 7)
        layer.params["beta"][...] = -1.5
    np.testing.assert_allclose(gn.forward(x, True), ln.forward(x, True))
    dy = rng.standard_normal((4, 6))
    np.testing.assert_allclose(gn.backward(dy), ln.backward(dy))


def test_groupnorm_normalizes_consecutive_feature_groups():
    gn = GroupNorm(6, 3, eps=0.0, affine=False, dtype=F64)
    x = np.random.default_rng(6).standard_normal((2, 6)) * 5 + 1
    y = gn.forward(x, True).reshape(2, 3, 2)
    np.testing.assert_allclose(y.mean(2), 0, atol=1e-12)
    np.testing.assert_allclose(y.var(2), 1, rtol=1e-10)


def test_groupnorm_rejects_groups_not_dividing_width():
    with pytest.raises(ValueError, match=r"D=100 must be divisible by groups=3; groups that divide 100: 1, 2, 4, 5, 10"):
        GroupNorm(100, 3)


def test_book_convention_stores_biased_variance_and_starts_at_zero():
    """'Deep Learning from Scratch' BatchNormalization: running = 0.9 running + 0.1 batch
    (momentum 0.1 here), biased variance, buffers from 0."""
    bn = BatchNorm(2, momentum=0.1, eps=1e-6, convention="book", dtype=F64)
    assert np.all(bn.buffers["running_var"] == 0)
    x = np.array([[1.0, 10.0], [3.0, 14.0]])  # mean (2, 12), biased var (1, 4)
    bn.forward(x, train=True)
    np.testing.assert_allclose(bn.buffers["running_mean"], [0.2, 1.2])
    np.testing.assert_allclose(bn.buffers["running_var"], [0.1, 0.4])
    y = bn.forward(x, train=False)
    np.testing.assert_allclose(y, (x - [0.2, 1.2]) / np.sqrt(np.array([0.1, 0.4]) + 1e-6))
