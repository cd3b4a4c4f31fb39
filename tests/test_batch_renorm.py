"""Batch renormalization (Ioffe 2017): against a transcription of the paper's
Algorithm 1, its plain-BN phase, its running sigma at batch 2, the old
running-variance variant, its backward, and its settings in configs and
model files."""

import json
import math

import numpy as np
import pytest
from gradcheck import check_layer

from bnexp.choices import RENORM_RUNNING
from bnexp.config import ConfigError, from_dict
from bnexp.engine import BatchNorm
from bnexp.engine.fold import fold_batchnorm
from bnexp.engine.model import NormSettings, build, build_model, mlp_layers
from bnexp.engine.norms import Renorm
from bnexp.engine.spec import describe, rebuild


def schedule(steps, rmax, dmax, bn_steps, warmup):
    """The paper's schedule, step by step: plain BN (rmax 1, dmax 0) for
    bn_steps steps, then both bounds opened linearly over warmup steps."""
    out = []
    for t in range(steps):
        if t < bn_steps:
            out.append((1.0, 0.0))
        else:
            ramp = 1.0 if warmup == 0 else min(1.0, (t - bn_steps) / warmup)
            out.append((1.0 + (rmax - 1.0) * ramp, dmax * ramp))
    return out


def algorithm_1(xs, gamma, beta, alpha, eps, bounds, running="sigma"):
    """Ioffe 2017, Algorithm 1, feature by feature in plain Python floats, for
    the train steps ``xs`` (each (N, C, ...)) with their (rmax, dmax): the
    outputs, the running mu and sigma after every step, and how often r and d
    were clipped outside the plain-BN phase. ``running="variance"``: the running variance (unbiased)
    moves instead of sigma, and sigma = sqrt(variance + eps). The running
    statistics start where BatchNorm's do: mean 0, variance 1."""
    C = xs[0].shape[1]
    mu, var = [0.0] * C, [1.0] * C
    sigma = [math.sqrt(1.0 + eps)] * C
    ys, mus, sigmas, clipped = [], [], [], {"r": 0, "d": 0}
    for x, (rmax, dmax) in zip(xs, bounds):
        values = np.moveaxis(x, 1, -1).reshape(-1, C)  # (M, C): every value of each channel
        M = len(values)
        y = np.empty_like(values)
        for k in range(C):
            v = [float(a) for a in values[:, k]]
            mu_b = sum(v) / M
            var_b = sum((a - mu_b) ** 2 for a in v) / M
            sigma_b = math.sqrt(var_b + eps)
            r_raw, d_raw = sigma_b / sigma[k], (mu_b - mu[k]) / sigma[k]
            r = min(max(r_raw, 1.0 / rmax), rmax)
            d = min(max(d_raw, -dmax), dmax)
            clipped["r"] += rmax > 1 and r != r_raw  # counted once the bounds open
            clipped["d"] += dmax > 0 and d != d_raw
            for i, a in enumerate(v):
                y[i, k] = gamma[k] * ((a - mu_b) / sigma_b * r + d) + beta[k]
            mu[k] += alpha * (mu_b - mu[k])
            if running == "sigma":
                sigma[k] += alpha * (sigma_b - sigma[k])
            else:
                var[k] += alpha * (var_b * M / (M - 1) - var[k])
                sigma[k] = math.sqrt(var[k] + eps)
        shape = (x.shape[0], *x.shape[2:], C)
        ys.append(np.moveaxis(y.reshape(shape), -1, 1))
        mus.append(np.array(mu))
        sigmas.append(np.array(sigma))
    return ys, mus, sigmas, clipped


def inference(x, gamma, beta, mu, sigma):
    """Algorithm 1's inference: y = gamma * (x - mu) / sigma + beta, per channel."""
    shape = (1, -1) + (1,) * (x.ndim - 2)
    return gamma.reshape(shape) * (x - mu.reshape(shape)) / sigma.reshape(shape) + \
        beta.reshape(shape)


def layer(C, renorm, momentum=0.1, eps=1e-5):
    bn = BatchNorm(C, momentum, eps, renorm=renorm, dtype=np.float64)
    bn.params["gamma"][...] = np.linspace(0.5, 1.5, C)
    bn.params["beta"][...] = np.linspace(-1, 1, C)
    return bn


def inputs(rng, shape, steps):
    """Channels of very different scales and offsets, so that r and d clip."""
    C = shape[1]
    bshape = (1, C) + (1,) * (len(shape) - 2)
    scale = np.geomspace(0.05, 8.0, C).reshape(bshape)
    shift = np.linspace(-6.0, 4.0, C).reshape(bshape)
    return [rng.standard_normal(shape) * scale + shift for _ in range(steps)]


@pytest.mark.parametrize("running", RENORM_RUNNING)
@pytest.mark.parametrize("shape,momentum,eps", [((2, 4), 0.1, 1e-3), ((5, 3), 0.3, 1e-5),
                                                ((2, 3, 2, 3), 0.2, 1e-3)])
def test_train_and_eval_follow_algorithm_1(running, shape, momentum, eps):
    rng = np.random.default_rng(3)
    settings = Renorm(rmax=2.0, dmax=1.5, warmup=4, bn_steps=3, running=running)
    bn = layer(shape[1], settings, momentum, eps)
    xs = inputs(rng, shape, 12)
    bounds = schedule(len(xs), 2.0, 1.5, 3, 4)
    ys, mus, sigmas, clipped = algorithm_1(xs, bn.params["gamma"], bn.params["beta"],
                                           momentum, eps, bounds, running)
    assert clipped["r"] > 3 and clipped["d"] > 3  # clipping active after the BN phase
    for x, y, mu, sigma in zip(xs, ys, mus, sigmas):
        np.testing.assert_allclose(bn.forward(x, True), y, rtol=0, atol=1e-12)
        np.testing.assert_allclose(bn.buffers["running_mean"], mu, rtol=0, atol=1e-12)
        np.testing.assert_allclose(bn.running_std, sigma, rtol=0, atol=1e-12)
    x = rng.standard_normal(shape) * 3
    np.testing.assert_allclose(bn.forward(x, False), inference(
        x, bn.params["gamma"], bn.params["beta"], mus[-1], sigmas[-1]), rtol=0, atol=1e-12)


@pytest.mark.parametrize("running,expected,spread", [("sigma", 1 / math.sqrt(math.pi), 0.02),
                                                     ("variance", 0.985, 0.02)])
def test_at_batch_2_on_unit_gaussians_the_running_sigma_is_the_average_sigma(
        running, expected, spread):
    # Two samples: sigma_B = |x1 - x2| / 2, whose mean is 1 / sqrt(pi) = 0.564
    # (Algorithm 1's running sigma); the unbiased variance averages 1, whose
    # square root sits just under 1 (Jensen): the paper's sigma is about 0.56.
    rng = np.random.default_rng(0)
    bn = BatchNorm(400, renorm=Renorm(running=running), dtype=np.float64)
    for _ in range(500):
        bn.forward(rng.standard_normal((2, 400)), True)
    assert abs(bn.running_std.mean() - expected) < spread


@pytest.mark.parametrize("running", RENORM_RUNNING)
@pytest.mark.parametrize("shape", [(2, 3), (4, 3, 2, 5)])
def test_the_first_bn_steps_are_plain_batch_norm_then_the_ramp_opens(running, shape):
    rng = np.random.default_rng(0)
    plain = layer(shape[1], None)
    renorm = layer(shape[1], Renorm(3.0, 5.0, warmup=4, bn_steps=5, running=running))
    for step in range(7):
        x, dy = rng.standard_normal(shape) * 3 + 2, rng.standard_normal(shape)
        y_plain, y = plain.forward(x, True), renorm.forward(x, True)
        if step <= 5:  # bn_steps steps, then the ramp's first step at rmax 1, dmax 0
            np.testing.assert_allclose(y, y_plain, rtol=0, atol=1e-12)
            np.testing.assert_allclose(renorm.backward(dy), plain.backward(dy), rtol=0,
                                       atol=1e-12)
            for key in ("gamma", "beta"):
                np.testing.assert_allclose(renorm.grads[key], plain.grads[key], rtol=0,
                                           atol=1e-12)
            np.testing.assert_allclose(renorm.buffers["running_mean"],
                                       plain.buffers["running_mean"], rtol=0, atol=1e-12)
        else:
            assert np.abs(y - y_plain).max() > 0.01  # corrected once the bounds open


def test_with_r_and_d_held_at_1_and_0_the_variance_option_is_batch_norm():
    rng = np.random.default_rng(0)
    plain = layer(3, None)
    renorm = layer(3, Renorm(1.0, 0.0, 0, bn_steps=0, running="variance"))
    for _ in range(3):
        x, dy = rng.standard_normal((6, 3)) * 2 + 1, rng.standard_normal((6, 3))
        np.testing.assert_allclose(renorm.forward(x, True), plain.forward(x, True), atol=1e-12)
        np.testing.assert_allclose(renorm.backward(dy), plain.backward(dy), atol=1e-12)
    for key in ("running_mean", "running_var"):
        np.testing.assert_allclose(renorm.buffers[key], plain.buffers[key], atol=1e-12)


def test_the_variance_option_without_a_bn_phase_gives_the_numbers_of_bnexp_before_it():
    # Recorded from bnexp 9d20d8e, whose renorm=(3.0, 5.0, 4) averaged the unbiased
    # variance and ramped from step 0.
    rng = np.random.default_rng(0)
    bn = layer(3, Renorm(3.0, 5.0, 4, bn_steps=0, running="variance"))
    for _ in range(8):
        x, dy = rng.standard_normal((2, 3)) * 2 + 1, rng.standard_normal((2, 3))
        bn.forward(x, True)
        bn.backward(dy)
    y = bn.forward(rng.standard_normal((2, 3)), False)
    np.testing.assert_allclose(bn.buffers["running_mean"],
                               [0.4130331309825185, 0.284323912790279, 1.323318591915283],
                               rtol=1e-12)
    np.testing.assert_allclose(bn.buffers["running_var"],
                               [5.315876091271438, 1.6624208870290418, 1.7561736343183758],
                               rtol=1e-12)
    np.testing.assert_allclose(y[0], [-1.0546541699938399, -0.6746428696908895,
                                      -2.0159786603461334], rtol=1e-12)


def test_r_and_d_correct_toward_the_running_statistics_and_are_constants_in_backward():
    rng = np.random.default_rng(1)
    bn = BatchNorm(3, renorm=Renorm(3.0, 5.0, 0, bn_steps=0), dtype=np.float64)
    bn.buffers["running_mean"][...] = [0.5, -0.5, 0.0]
    bn.buffers["running_var"][...] = [2.0, 0.8, 1.0]
    x, dy = rng.standard_normal((8, 3)), rng.standard_normal((8, 3))
    mean_run, std_run = bn.buffers["running_mean"].copy(), bn.running_std
    y = bn.forward(x, True).copy()
    dx = bn.backward(dy).copy()
    # With r and d in bounds, y is x normalized by the running statistics
    std_b = np.sqrt(x.var(axis=0) + bn.eps)
    r, d = std_b / std_run, (x.mean(axis=0) - mean_run) / std_run
    assert np.all((r > 1 / 3) & (r < 3)) and np.all(np.abs(d) < 5)
    np.testing.assert_allclose(y, (x - mean_run) / std_run, atol=1e-12)  # gamma 1, beta 0
    # ... and the gradient is batch norm's with gamma * r (r, d constants)
    ref = BatchNorm(3, dtype=np.float64)
    ref.params["gamma"][...] = r
    ref.forward(x, True)
    np.testing.assert_allclose(dx, ref.backward(dy), atol=1e-12)


@pytest.mark.parametrize("phase", ["bn", "clipped"])
@pytest.mark.parametrize("shape", [(5, 3), (3, 2, 2, 3)])
def test_gradients_match_finite_differences(phase, shape):
    # Where r and d are fixed (plain-BN phase) or clipped at their bounds, they do
    # not move with x, so the stop-gradient backward is the true derivative.
    rng = np.random.default_rng(2)
    bn = layer(shape[1], Renorm(2.0, 1.0, 0, bn_steps=10 if phase == "bn" else 0))
    bn.params["gamma"][...] = rng.standard_normal(shape[1])
    if phase == "clipped":
        bn.buffers["running_mean"][...] = 50.0  # d = -dmax
        bn.buffers["running_var"][...] = 1e-3  # sigma_B / sigma > rmax: r = rmax
    saved = {k: v.copy() for k, v in bn.buffers.items()}

    def reset():  # every forward moves the running statistics and the step count
        for k, v in saved.items():
            bn.buffers[k][...] = v

    errors = check_layer(bn, rng.standard_normal(shape), rng, reset=reset)
    assert max(errors.values()) < 1e-7, errors


def test_a_checkpoint_of_the_buffers_continues_the_same_run():
    # The running sigma (as running_var) and the schedule's step count are buffers.
    rng = np.random.default_rng(4)
    settings = Renorm(3.0, 5.0, warmup=3, bn_steps=2)
    xs = inputs(rng, (4, 3), 10)
    first, second = layer(3, settings), layer(3, settings)
    for x in xs[:5]:
        first.forward(x, True)
    for key, value in first.buffers.items():
        second.buffers[key][...] = value
    for x in xs[5:]:
        np.testing.assert_array_equal(first.forward(x, True), second.forward(x, True))


def test_config_keys_reach_the_layers():
    cfg = from_dict({"data": {"dataset": "synthetic"}, "model": {"hidden": [8]},
                     "norm": {"renorm": True, "renorm_warmup": 7}})
    assert (cfg.norm.renorm_bn_steps, cfg.norm.renorm_running) == (100, "sigma")
    net = build_model(cfg, 20, 10, np.random.default_rng(0))
    bn, = [lay for lay in net.layers if isinstance(lay, BatchNorm)]
    assert bn.renorm == Renorm(3.0, 5.0, warmup=7, bn_steps=100, running="sigma")
    cfg = from_dict({"data": {"dataset": "synthetic"}, "model": {"hidden": [8]},
                     "norm": {"renorm": True, "rmax": 2, "dmax": 1, "renorm_bn_steps": 0,
                              "renorm_running": "variance"}})
    bn, = [lay for lay in build_model(cfg, 20, 10, np.random.default_rng(0)).layers
           if isinstance(lay, BatchNorm)]
    assert bn.renorm == Renorm(2.0, 1.0, warmup=0, bn_steps=0, running="variance")


def test_bad_renorm_settings_are_refused_all_at_once():
    with pytest.raises(ConfigError) as err:
        from_dict({"norm": {"renorm": True, "renorm_running": "std", "renorm_bn_steps": -1}})
    assert set(err.value.errors) == {
        "norm.renorm_running: got 'std', expected one of sigma, variance",
        "norm.renorm_bn_steps: got -1, expected an integer >= 0"}
    with pytest.raises(ValueError, match="running='std' must be one of sigma, variance"):
        Renorm(running="std")
    with pytest.raises(ValueError, match="needs a Renorm and track_running_stats=True"):
        BatchNorm(3, track_running_stats=False, renorm=Renorm())


def test_renorm_needs_plain_batch_norm_with_running_statistics():
    with pytest.raises(ConfigError, match="norm.renorm: got true, expected false unless"):
        from_dict({"model": {"norm": "layer"}, "norm": {"renorm": True}})


def trained_renorm_net(rng, renorm):
    net = build(mlp_layers((6, 5), norm="batch"), (4,), 3, rng=rng,
                norm=NormSettings("batch", renorm=renorm), dtype=np.float64)
    for _ in range(6):
        net.forward(rng.standard_normal((2, 4)) * 3 + 1, train=True)
    return net


def test_model_files_keep_the_settings_and_folding_divides_by_the_running_sigma():
    rng = np.random.default_rng(5)
    net = trained_renorm_net(rng, Renorm(3.0, 5.0, warmup=2, bn_steps=1))
    twin = rebuild(json.loads(json.dumps(describe(net))))
    twin.load_state_dict(net.state_dict())
    assert [lay.renorm for lay in twin.layers if isinstance(lay, BatchNorm)] == \
        [Renorm(3.0, 5.0, warmup=2, bn_steps=1)] * 2
    x = rng.standard_normal((7, 4))
    np.testing.assert_array_equal(twin.logits(x), net.logits(x))
    folded, names = fold_batchnorm(net)
    assert len(names) == 2
    np.testing.assert_allclose(folded.logits(x), net.logits(x), rtol=1e-12, atol=1e-12)


def test_model_files_from_before_the_bn_phase_read_as_the_variance_option():
    rng = np.random.default_rng(6)
    desc = describe(trained_renorm_net(rng, Renorm(3.0, 5.0, 4, bn_steps=0,
                                                   running="variance")))
    for d in desc["layers"]:
        if d["type"] == "BatchNorm":
            d["renorm"] = [3.0, 5.0, 4]  # as bnexp 9d20d8e wrote it
    assert [lay.renorm for lay in rebuild(desc).layers if isinstance(lay, BatchNorm)] == \
        [Renorm(3.0, 5.0, 4, bn_steps=0, running="variance")] * 2
