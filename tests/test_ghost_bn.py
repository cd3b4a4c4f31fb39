"""Ghost batch norm (statistics per group of samples: BN on K devices without
synchronization): gradients, its relation to BN and to torch, and its config."""

import numpy as np
import pytest
from gradcheck import check_layer

from bnexp.config import ConfigError, from_dict
from bnexp.engine import BatchNorm


def randomized(layer, rng):
    layer.params["gamma"][...] = rng.standard_normal(layer.D)
    layer.params["beta"][...] = rng.standard_normal(layer.D)
    return layer


@pytest.mark.parametrize("shape", [(9, 4), (6, 3, 4, 5)])
@pytest.mark.parametrize("affine", [True, False])
def test_ghost_gradients(shape, affine):
    rng = np.random.default_rng(len(shape) + affine)
    layer = BatchNorm(shape[1], affine=affine, ghost_batch=3, dtype=np.float64)
    if affine:
        randomized(layer, rng)
    errors = check_layer(layer, rng.standard_normal(shape) * 2 + 1, rng)
    assert all(e < 1e-6 for e in errors.values()), errors


@pytest.mark.parametrize("shape", [(8, 5), (4, 3, 3, 2)])
def test_one_ghost_batch_is_batch_norm(shape):
    rng = np.random.default_rng(1)
    plain = randomized(BatchNorm(shape[1], dtype=np.float64), rng)
    ghost = BatchNorm(shape[1], ghost_batch=shape[0], dtype=np.float64)
    ghost.params["gamma"][...] = plain.params["gamma"]
    ghost.params["beta"][...] = plain.params["beta"]
    for _ in range(3):
        x = rng.standard_normal(shape) * 3 + 2
        dy = rng.standard_normal(shape)
        np.testing.assert_allclose(ghost.forward(x, True), plain.forward(x, True), atol=1e-12)
        np.testing.assert_allclose(ghost.backward(dy), plain.backward(dy), atol=1e-12)
        for key in ("gamma", "beta"):
            np.testing.assert_allclose(ghost.grads[key], plain.grads[key], atol=1e-12)
    for key in ("running_mean", "running_var"):
        np.testing.assert_allclose(ghost.buffers[key], plain.buffers[key], atol=1e-12)
    x = rng.standard_normal(shape)
    np.testing.assert_allclose(ghost.forward(x, False), plain.forward(x, False), atol=1e-12)


def test_ghost_batches_are_torch_batch_norm_per_group():
    """Each group's output and input gradient are torch's BatchNorm1d on that
    group alone; gamma's and beta's gradients add over the groups; the running
    statistics move toward the groups' average (what averaging K devices' gives)."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(2)
    x, dy = rng.standard_normal((12, 4)) * 2 + 1, rng.standard_normal((12, 4))
    ours = randomized(BatchNorm(4, momentum=0.3, ghost_batch=4, dtype=np.float64), rng)
    y, dx = ours.forward(x, True).copy(), ours.backward(dy).copy()
    dgamma, dbeta = np.zeros(4), np.zeros(4)
    means, variances = [], []
    for k in range(3):
        part = slice(4 * k, 4 * k + 4)
        bn = torch.nn.BatchNorm1d(4, momentum=1.0, dtype=torch.float64)  # running = this batch
        with torch.no_grad():
            bn.weight.copy_(torch.tensor(ours.params["gamma"]))
            bn.bias.copy_(torch.tensor(ours.params["beta"]))
        xt = torch.tensor(x[part], requires_grad=True)
        yt = bn(xt)
        yt.backward(torch.tensor(dy[part]))
        np.testing.assert_allclose(y[part], yt.detach().numpy(), atol=1e-12)
        np.testing.assert_allclose(dx[part], xt.grad.numpy(), atol=1e-12)
        dgamma += bn.weight.grad.numpy()
        dbeta += bn.bias.grad.numpy()
        means.append(bn.running_mean.numpy())
        variances.append(bn.running_var.numpy())
    np.testing.assert_allclose(ours.grads["gamma"], dgamma, atol=1e-12)
    np.testing.assert_allclose(ours.grads["beta"], dbeta, atol=1e-12)
    np.testing.assert_allclose(ours.buffers["running_mean"], 0.3 * np.mean(means, axis=0),
                               atol=1e-12)
    np.testing.assert_allclose(ours.buffers["running_var"],
                               0.7 + 0.3 * np.mean(variances, axis=0), atol=1e-12)


@pytest.mark.parametrize("raw,line", [
    ({"model": {"norm": "layer"}, "norm": {"ghost_batch": 4}},
     "norm.ghost_batch: got 4, expected null with model.norm 'layer' (ghost batches split "
     "batch norm's statistics)"),
    ({"norm": {"ghost_batch": 3}, "train": {"batch_size": 100}},
     "norm.ghost_batch: got 3, expected a divisor of train.batch_size (100)"),
    ({"norm": {"ghost_batch": 1}},
     "norm.ghost_batch: got 1, expected >= 2 with model.arch 'mlp' (a ghost batch of one "
     "sample normalizes every unit to beta)"),
])
def test_ghost_batch_settings_that_cannot_work_are_refused(raw, line):
    with pytest.raises(ConfigError) as info:
        from_dict(raw)
    assert info.value.errors == [line]
