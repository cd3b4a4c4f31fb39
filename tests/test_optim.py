"""Optimizer update rules, checked by hand (the torch parity test checks them again)."""

import numpy as np
import pytest

from bnexp.engine import BatchNorm, Linear, make_optimizer


def one_layer(w=2.0, b=1.0):
    layer = Linear(1, 1, True, rng=np.random.default_rng(0), dtype=np.float64)
    layer.params["W"][...] = w
    layer.params["b"][...] = b
    layer.grads["W"][...] = 0.5
    layer.grads["b"][...] = -1.0
    return layer


def test_sgd_with_weight_decay_on_weights_only():
    layer = one_layer()
    make_optimizer("sgd", [layer], 0.1, weight_decay=0.2).step()
    assert layer.params["W"][0, 0] == pytest.approx(2.0 - 0.1 * (0.5 + 0.2 * 2.0))
    assert layer.params["b"][0] == pytest.approx(1.0 + 0.1)  # no decay on b


@pytest.mark.parametrize("nesterov", [False, True])
def test_momentum_two_steps(nesterov):
    layer = one_layer()
    opt = make_optimizer("momentum", [layer], 0.1, momentum=0.9, nesterov=nesterov)
    opt.step()
    opt.step()  # same gradient twice: v1 = g, v2 = 1.9 g
    g = 0.5
    if nesterov:
        expected = 2.0 - 0.1 * (g + 0.9 * g) - 0.1 * (g + 0.9 * 1.9 * g)
    else:
        expected = 2.0 - 0.1 * g - 0.1 * 1.9 * g
    assert layer.params["W"][0, 0] == pytest.approx(expected)


def test_adam_first_step_moves_each_param_by_lr():
    layer = one_layer()
    make_optimizer("adam", [layer], 0.01).step()
    # Bias correction makes the first step lr * sign(g) (up to eps).
    assert layer.params["W"][0, 0] == pytest.approx(2.0 - 0.01, rel=1e-6)
    assert layer.params["b"][0] == pytest.approx(1.0 + 0.01, rel=1e-6)


def test_buffers_are_not_trained():
    bn = BatchNorm(3, dtype=np.float64)
    opt = make_optimizer("sgd", [bn], 0.1)
    assert sorted(k for _, k in opt.slots) == ["beta", "gamma"]


def test_unknown_optimizer_and_bad_lr():
    with pytest.raises(ValueError, match="optimizer: got 'rmsprop', expected one of sgd, momentum, adam"):
        make_optimizer("rmsprop", [], 0.1)
    with pytest.raises(ValueError, match="lr=0 must be > 0"):
        make_optimizer("sgd", [], 0)
