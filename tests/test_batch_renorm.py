"""Batch renormalization (Ioffe 2017): its known case and its backward."""

import numpy as np
import pytest

from bnexp.config import ConfigError, from_dict
from bnexp.engine import BatchNorm


def pair(C, rng, **renorm_kw):
    plain = BatchNorm(C, dtype=np.float64)
    renorm = BatchNorm(C, dtype=np.float64, **renorm_kw)
    for layer in (plain, renorm):
        layer.params["gamma"][...] = np.linspace(0.5, 1.5, C)
        layer.params["beta"][...] = np.linspace(-1, 1, C)
    return plain, renorm


@pytest.mark.parametrize("shape", [(6, 3), (4, 3, 2, 5)])
def test_with_r_and_d_held_at_1_and_0_it_is_batch_norm(shape):
    rng = np.random.default_rng(0)
    plain, renorm = pair(shape[1], rng, renorm=(1.0, 0.0, 0))
    for _ in range(3):
        x, dy = rng.standard_normal(shape) * 2 + 1, rng.standard_normal(shape)
        np.testing.assert_allclose(renorm.forward(x, True), plain.forward(x, True), atol=1e-12)
        np.testing.assert_allclose(renorm.backward(dy), plain.backward(dy), atol=1e-12)
        for key in ("gamma", "beta"):
            np.testing.assert_allclose(renorm.grads[key], plain.grads[key], atol=1e-12)
    np.testing.assert_allclose(renorm.buffers["running_var"], plain.buffers["running_var"],
                               atol=1e-12)


def test_r_and_d_correct_toward_the_running_statistics_and_are_constants_in_backward():
    rng = np.random.default_rng(1)
    layer = BatchNorm(3, renorm=(3.0, 5.0, 0), dtype=np.float64)
    layer.buffers["running_mean"][...] = [0.5, -0.5, 0.0]
    layer.buffers["running_var"][...] = [2.0, 0.8, 1.0]
    x, dy = rng.standard_normal((8, 3)), rng.standard_normal((8, 3))
    mean_run = layer.buffers["running_mean"].copy()
    std_run = np.sqrt(layer.buffers["running_var"] + layer.eps)
    y = layer.forward(x, True).copy()
    dx = layer.backward(dy).copy()
    # With r and d in bounds, y is x normalized by the running statistics
    std_b = np.sqrt(x.var(axis=0) + layer.eps)
    r, d = std_b / std_run, (x.mean(axis=0) - mean_run) / std_run
    assert np.all((r > 1 / 3) & (r < 3)) and np.all(np.abs(d) < 5)
    np.testing.assert_allclose(y, (x - mean_run) / std_run, atol=1e-12)  # gamma 1, beta 0
    # ... and the gradient is batch norm's with gamma * r (r, d constants)
    ref = BatchNorm(3, dtype=np.float64)
    ref.params["gamma"][...] = r
    ref.forward(x, True)
    np.testing.assert_allclose(dx, ref.backward(dy), atol=1e-12)


def test_renorm_needs_plain_batch_norm_with_running_statistics():
    with pytest.raises(ConfigError, match="norm.renorm: got true, expected false unless"):
        from_dict({"model": {"norm": "layer"}, "norm": {"renorm": True}})
