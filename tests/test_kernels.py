"""The compiled kernels (``train.kernels: numba``) against the NumPy engine,
the reference: every layer they take agrees with it to float32 rounding
(float64: to 1e-12), the optimizer updates agree bit for bit, the fused
BatchNorm -> ReLU pair gives exactly the numbers of the two layers run one
by one, and their gradients pass the finite-difference check. Skipped where
numba is not installed (``pip install "bnexp[fast]"``)."""

import dataclasses

import numpy as np
import pytest
from gradcheck import check_layer

from bnexp import config, runner
from bnexp.engine import BatchNorm, ReLU, SoftmaxCrossEntropy, build_mlp, make_optimizer
from bnexp.engine.backend import load
from bnexp.train import train

pytest.importorskip("numba")
K = load("numba")

# Largest difference allowed, relative to the largest magnitude compared.
TOL = {np.float32: 2e-6, np.float64: 1e-12}


def close(ref, got, dtype):
    ref, got = np.asarray(ref, np.float64), np.asarray(got, np.float64)
    scale = max(float(np.abs(ref).max()), 1e-30)
    assert float(np.abs(ref - got).max()) / scale <= TOL[dtype] * (10 if dtype is np.float32
                                                                   else 1)


def bn_pair(D, dtype, **kw):
    """Two BatchNorms with the same (randomized) gamma and beta: NumPy's and the kernels'."""
    rng = np.random.default_rng(5)
    ref, fast = BatchNorm(D, dtype=dtype, **kw), BatchNorm(D, dtype=dtype, **kw)
    fast.kernels = K
    if ref.affine:
        for key in ("gamma", "beta"):
            ref.params[key][...] = rng.standard_normal(D)
            fast.params[key][...] = ref.params[key]
    return ref, fast


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("relu", [False, True])
@pytest.mark.parametrize("shape", [(37, 23), (5, 6, 7, 9)])
@pytest.mark.parametrize("opts", [
    {},
    {"affine": False},
    {"momentum": None},
    {"track_running_stats": False},
    {"convention": "book", "momentum": 0.1, "eps": 1e-6},
])
def test_batchnorm_kernels_agree_with_numpy(dtype, relu, shape, opts):
    """Train steps (outputs, running statistics, every gradient), then eval mode,
    on rows and on images. Odd sizes: the four-row sweeps and the eight-lane
    sums along an image (63 values) have a remainder."""
    rng = np.random.default_rng(0)
    D = shape[1]
    offsets = (rng.standard_normal(D) * 5).reshape((D,) + (1,) * (len(shape) - 2))
    ref, fast = bn_pair(D, dtype, **opts)
    r_relu, f_relu = ReLU(), ReLU()
    f_relu.kernels = K
    for mode in (True, True, True, False):
        x = (rng.standard_normal(shape) * 3 + offsets).astype(dtype)
        dy = rng.standard_normal(shape).astype(dtype)
        if relu:
            y_ref = r_relu.forward(ref.forward(x, mode), mode).copy()
            y_fast = fast.forward_relu(x, mode, f_relu)
            dx_ref = ref.backward(r_relu.backward(dy)).copy()
            dx_fast = fast.backward_relu(dy, f_relu)
        else:
            y_ref, y_fast = ref.forward(x, mode).copy(), fast.forward(x, mode)
            dx_ref, dx_fast = ref.backward(dy).copy(), fast.backward(dy)
        assert y_fast.dtype == dtype and dx_fast.dtype == dtype
        close(y_ref, y_fast, dtype)
        close(dx_ref, dx_fast, dtype)
        for key in ref.grads:
            close(ref.grads[key], fast.grads[key], dtype)
        for key in ref.buffers:
            close(ref.buffers[key], fast.buffers[key], dtype)
        if relu:
            assert (y_fast == 0).any() and (y_fast > 0).any()  # the mask matters


@pytest.mark.parametrize("relu", [False, True])
@pytest.mark.parametrize("shape", [(9, 6), (3, 6, 3, 4)])
def test_the_kernels_batchnorm_gradients_pass_the_finite_difference_check(relu, shape):
    rng = np.random.default_rng(1)
    layer = BatchNorm(6, dtype=np.float64)
    layer.kernels = K
    layer.params["gamma"][...] = rng.standard_normal(6)
    layer.params["beta"][...] = rng.standard_normal(6)
    if relu:  # the fused pair as one layer
        act = ReLU()
        act.kernels = K
        layer.forward = lambda x, train, bn=BatchNorm.forward_relu: bn(layer, x, train, act)
        layer.backward = lambda dy, bn=BatchNorm.backward_relu: bn(layer, dy, act)
    x = rng.standard_normal(shape) * 2 + 0.3
    errors = check_layer(layer, x, rng)
    assert errors and max(errors.values()) < 1e-6, errors


@pytest.mark.parametrize("arch", ["mlp", "cnn"])
def test_the_fused_pair_gives_the_numbers_of_the_two_layers_one_by_one(arch):
    """A network's plain forward fuses BatchNorm -> ReLU; a recorded forward runs
    them one by one. Both give the same losses and parameters, bit for bit."""
    from bnexp.engine.model import NormSettings, build, cnn_layers

    def run(record_every):
        rng = np.random.default_rng(0)
        if arch == "mlp":
            net = build_mlp(36, 4, [16, 16], rng=rng, norm="batch", kernels="numba")
            net._whole_step = lambda x: None  # layer by layer, fused pairs
        else:
            net = build(cnn_layers([3, 4], norm="batch"), (1, 6, 6), 4, rng=rng,
                        norm=NormSettings("batch"), kernels="numba")
        opt = make_optimizer("momentum", net.layers, 0.05, kernels="numba")
        x, y = rng.standard_normal((64, 36)), rng.integers(0, 4, 64)
        losses = []
        for step in range(6):
            losses.append(net.loss_and_backward(x[step % 2 * 32:][:32], y[step % 2 * 32:][:32],
                                                record=step % record_every == 0))
            opt.step()
        return losses, opt.params.copy()
    assert any(isinstance(layer, BatchNorm) for layer, relu in
               build_mlp(3, 2, [4], rng=np.random.default_rng(0), norm="batch",
                         kernels="numba").steps if relu is not None)
    fused, unfused = run(10**6), run(1)
    assert fused[0] == unfused[0]
    np.testing.assert_array_equal(fused[1], unfused[1])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_relu_kernel_equals_numpy(dtype):
    rng = np.random.default_rng(2)
    x = rng.standard_normal((3, 4, 5, 5)).astype(dtype)
    dy = rng.standard_normal(x.shape).astype(dtype)
    ref, fast = ReLU(), ReLU()
    fast.kernels = K
    np.testing.assert_array_equal(ref.forward(x, True), fast.forward(x, True))
    np.testing.assert_array_equal(ref.backward(dy), fast.backward(dy))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("scale", [1.0, 1e4])
def test_loss_kernels_agree_with_numpy(dtype, scale):
    rng = np.random.default_rng(3)
    logits = (rng.standard_normal((50, 10)) * scale).astype(dtype)
    labels = rng.integers(0, 10, 50)
    ref, fast = SoftmaxCrossEntropy(), SoftmaxCrossEntropy()
    fast.kernels = K
    l_ref, l_fast = ref.forward(logits, labels), fast.forward(logits, labels)
    assert np.isfinite(l_fast)
    assert abs(l_ref - l_fast) <= TOL[dtype] * 10 * max(abs(l_ref), 1.0)
    close(ref.backward(), fast.backward(), dtype)


def test_the_loss_kernel_refuses_labels_out_of_range():
    fast = SoftmaxCrossEntropy()
    fast.kernels = K
    with pytest.raises(ValueError, match=r"labels must be in \[0, 3\), got values from 0 to 3"):
        fast.forward(np.zeros((4, 3), np.float32), np.array([0, 1, 2, 3]))


@pytest.mark.parametrize("name,opts", [
    ("sgd", {}), ("sgd", {"weight_decay": 1e-3}), ("momentum", {}),
    ("momentum", {"nesterov": True, "weight_decay": 1e-3}), ("adam", {}),
    ("adam", {"weight_decay": 1e-2}),
])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_optimizer_kernels_equal_numpy_bit_for_bit(name, opts, dtype):
    """Same gradients in, the same parameters and state out, exactly."""
    def make(kernels):
        net = build_mlp(7, 3, [5], rng=np.random.default_rng(0), norm="batch", dtype=dtype)
        return net, make_optimizer(name, net.layers, 0.03, kernels=kernels, **opts)
    (_, ref), (_, fast) = make("numpy"), make("numba")
    rng = np.random.default_rng(4)
    for _ in range(4):
        g = rng.standard_normal(ref.grads.shape).astype(dtype)
        ref.grads[...] = g
        fast.grads[...] = g
        ref.step()
        fast.step()
    assert not np.array_equal(ref.params, make("numpy")[1].params)  # it did move
    np.testing.assert_array_equal(ref.params, fast.params)
    for key, value in ref.state_dict().items():
        np.testing.assert_array_equal(value, fast.state_dict()[key])


def small_config(**train):
    return config.from_dict({"name": "k", "data": {"n_train": 500, "n_test": 200},
                             "model": {"hidden": [32, 32]},
                             "train": {"epochs": 2, "batch_size": 50, "kernels": "numba",
                                       **train}})


def test_a_run_on_the_kernels_repeats_bit_for_bit_and_stays_near_numpy():
    cfg = small_config()
    a, b = train(cfg), train(cfg)
    strip = [{k: v for k, v in row.items() if k != "elapsed"} for row in a.metrics]
    assert strip == [{k: v for k, v in row.items() if k != "elapsed"} for row in b.metrics]
    ref = train(dataclasses.replace(cfg, train=dataclasses.replace(cfg.train,
                                                                   kernels="numpy")))
    for mine, theirs in zip(a.metrics, ref.metrics):
        assert abs(mine["train_loss"] - theirs["train_loss"]) < 1e-3
        assert abs(mine["test_acc"] - theirs["test_acc"]) <= 0.02
    assert a.metrics[-1]["train_loss"] != ref.metrics[-1]["train_loss"]  # another path


def test_run_json_records_the_kernels(tmp_path):
    cfg = small_config(epochs=1)
    run_dir = tmp_path / "k"
    runner.execute(cfg, run_dir, plot=False)
    import json

    prov = json.loads((run_dir / "run.json").read_text())["provenance"]
    assert prov["engine"] == "numba" and prov["numba"] and prov["llvmlite"]
    assert (run_dir / "config.yaml").read_text().count("kernels: numba") == 1


def test_kernels_numba_without_numba_is_one_clear_error(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "numba" else real(name, *a))
    with pytest.raises(config.ConfigError) as err:
        small_config()
    assert err.value.errors == ["train.kernels: got 'numba', but numba is not installed here; "
                                "expected numpy, or install it: pip install \"bnexp[fast]\""]


def whole_and_layered(steps=6, N=24, dtype=np.float64, norm="batch", opt="momentum", **kw):
    """Train the same MLP twice on the numba kernels: as whole compiled passes
    (the default for such a network) and layer by layer. Returns both runs'
    losses, final state and whether the first really ran whole."""
    def run(whole):
        rng = np.random.default_rng(0)
        net = build_mlp(12, 5, [9, 7, 6], rng=rng, norm=norm, dtype=dtype, kernels="numba",
                        weight_scale=0.5, **kw)
        optim = make_optimizer(opt, net.layers, 0.05, kernels="numba")
        if not whole:
            net._whole_step = lambda x: None
        x = rng.standard_normal((2 * N, 12)).astype(dtype) * 2 + 1
        y = rng.integers(0, 5, 2 * N)
        losses = []
        for step in range(steps):
            part = slice(step % 2 * N, step % 2 * N + N)
            losses.append(net.loss_and_backward(x[part], y[part]))
            optim.step()
        grads = {f"{n}.{k}": g.copy() for n, layer in net.named_layers()
                 for k, g in layer.grads.items()}
        used = any(plan is not None for plan in net._whole.values())
        return losses, net.state_dict(), grads, used
    return run(True), run(False)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("opts", [
    {}, {"norm": "none"}, {"momentum": None}, {"affine": False, "track_running_stats": False},
    {"convention": "book", "eps": 1e-6}, {"opt": "adam"},
])
def test_the_whole_compiled_pass_equals_the_layer_by_layer_path_bit_for_bit(dtype, opts):
    (l1, s1, g1, used), (l2, s2, g2, used2) = whole_and_layered(dtype=dtype, **opts)
    assert used and not used2
    assert l1 == l2
    assert s1.keys() == s2.keys() and g1.keys() == g2.keys()
    for key in s1:
        np.testing.assert_array_equal(s1[key], s2[key], err_msg=key)
    for key in g1:
        np.testing.assert_array_equal(g1[key], g2[key], err_msg=key)
    assert int(s1["batchnorm1.num_batches_tracked"] if "batchnorm1.num_batches_tracked" in s1
               else 6) == 6


@pytest.mark.parametrize("kw", [{"dropout": 0.2}, {"norm": "layer"}, {"activation": "tanh"},
                                {"placement": "after"}])
def test_networks_of_another_form_run_layer_by_layer(kw):
    net = build_mlp(12, 5, [8, 8], rng=np.random.default_rng(0), kernels="numba",
                    **{"norm": "batch", **kw})
    assert net._whole_step(np.zeros((4, 12), np.float32)) is None
    plain = build_mlp(12, 5, [8, 8], rng=np.random.default_rng(0), kernels="numba",
                      norm="batch")
    assert plain._whole_step(np.zeros((4, 12), np.float32)) is not None


def test_without_a_blas_it_can_call_the_network_runs_layer_by_layer(monkeypatch):
    from bnexp.engine import backend as kernels_mod

    monkeypatch.setattr(kernels_mod, "_gemm_addresses", lambda: None)
    net = build_mlp(12, 5, [8], rng=np.random.default_rng(0), kernels="numba", norm="batch")
    assert net._whole_step(np.zeros((4, 12), np.float32)) is None
    assert np.isfinite(net.loss_and_backward(np.ones((4, 12)), np.arange(4)))
    from bnexp.engine.model import NormSettings, build, cnn_layers

    cnn = build(cnn_layers([4], norm="batch"), (1, 6, 6), 3, rng=np.random.default_rng(0),
                norm=NormSettings("batch"), kernels="numba")
    assert np.isfinite(cnn.loss_and_backward(np.ones((4, 36), np.float32), np.arange(4) % 3))
    assert cnn.layers[0]._fast is None  # the NumPy convolution


def test_the_whole_pass_refuses_bad_labels_and_stops_at_a_non_finite_loss():
    net = build_mlp(6, 3, [5], rng=np.random.default_rng(0), kernels="numba", norm="batch",
                    dtype=np.float64)
    x = np.random.default_rng(1).standard_normal((4, 6))
    with pytest.raises(ValueError, match=r"labels must be in \[0, 3\)"):
        net.loss_and_backward(x, np.array([0, 1, 2, 3]))
    assert any(plan is not None for plan in net._whole.values())
    net.layers[-1].params["W"][...] = np.inf
    before = net.layers[-1].grads["W"].copy()
    assert not np.isfinite(net.loss_and_backward(x, np.array([0, 1, 2, 0])))
    np.testing.assert_array_equal(net.layers[-1].grads["W"], before)  # no backward


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_linear_on_the_kernels_agrees_with_numpy(dtype):
    """Same products (NumPy's BLAS either way); the bias gradient is the
    kernels' column sums."""
    from bnexp.engine import Linear

    rng = np.random.default_rng(6)
    ref = Linear(13, 7, rng=np.random.default_rng(0), dtype=dtype)
    fast = Linear(13, 7, rng=np.random.default_rng(0), dtype=dtype)
    fast.kernels = K
    x = rng.standard_normal((21, 13)).astype(dtype)
    dy = rng.standard_normal((21, 7)).astype(dtype)
    np.testing.assert_array_equal(ref.forward(x, True), fast.forward(x, True))
    np.testing.assert_array_equal(ref.backward(dy), fast.backward(dy))
    np.testing.assert_array_equal(ref.grads["W"], fast.grads["W"])
    close(ref.grads["b"], fast.grads["b"], dtype)
    close(dy.astype(np.float64).sum(axis=0), fast.grads["b"], dtype)


def test_warming_the_kernels_compiles_what_a_config_runs(monkeypatch):
    from bnexp.warmup import warm_kernels

    calls = []
    real = build_mlp.__globals__["Network"].loss_and_backward

    def counting(self, *a, **kw):
        calls.append(self.backend.name)
        return real(self, *a, **kw)
    monkeypatch.setattr(build_mlp.__globals__["Network"], "loss_and_backward", counting)
    numba_cfg = small_config()
    numpy_cfg = dataclasses.replace(numba_cfg, train=dataclasses.replace(numba_cfg.train,
                                                                         kernels="numpy"))
    warm_kernels([numba_cfg, numba_cfg, numpy_cfg])
    assert calls == ["numba"]  # once per distinct model, none for numpy


def test_eval_of_a_run_on_the_kernels_equals_its_recorded_evaluation(tmp_path):
    """``bnexp eval`` rebuilds the model on the run's own kernels."""
    from bnexp.deploy import evaluate_run
    from bnexp.store import read_metrics

    run_dir = tmp_path / "k"
    runner.execute(small_config(epochs=1), run_dir, plot=False)
    last = read_metrics(run_dir)[-1]
    train_eval, test_eval = evaluate_run(run_dir)
    assert (train_eval.loss, train_eval.accuracy) == (last["train_loss"], last["train_acc"])
    assert (test_eval.loss, test_eval.accuracy) == (last["test_loss"], last["test_acc"])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("hw", [(6, 8), (7, 5)])
def test_max_pool_kernel_equals_numpy(dtype, hw):
    """Same maxima, and the gradient to the same element of each window (the
    first of equals, which matters after a ReLU's zeros); odd sizes leave the
    last row or column out, with a zero gradient."""
    from bnexp.engine import MaxPool2d

    rng = np.random.default_rng(7)
    x = np.maximum(rng.standard_normal((3, 4, *hw)), 0).astype(dtype)
    x[0, 0, :2, :2] = 1.5  # a window of four equal maxima
    dy = rng.standard_normal((3, 4, hw[0] // 2, hw[1] // 2)).astype(dtype)
    ref, fast = MaxPool2d(2), MaxPool2d(2)
    fast.kernels = K
    np.testing.assert_array_equal(ref.forward(x, True), fast.forward(x, True))
    dx_ref, dx_fast = ref.backward(dy).copy(), fast.backward(dy)
    np.testing.assert_array_equal(dx_ref, dx_fast)
    assert dx_fast[0, 0, 0, 0] == dy[0, 0, 0, 0] and not dx_fast[0, 0, :2, :2].ravel()[1:].any()
    assert (x == 0).mean() > 0.3  # ties among zeros are common


def conv_pair(C, O, k, p, bias, dtype, stride=1):
    """Two Conv2d layers with the same weights (and a random bias): NumPy's and the kernels'."""
    from bnexp.engine import Conv2d

    ref = Conv2d(C, O, k, stride, p, bias, rng=np.random.default_rng(3), dtype=dtype)
    fast = Conv2d(C, O, k, stride, p, bias, rng=np.random.default_rng(3), dtype=dtype)
    fast.kernels = K
    if bias:
        ref.params["b"][...] = np.random.default_rng(4).standard_normal(O)
        fast.params["b"][...] = ref.params["b"]
    return ref, fast


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("geometry", [
    # (N, C, H, W, O, k, padding, bias, input_grad)
    (3, 2, 7, 6, 4, 3, 1, False, True),  # the CNNs' own: 'same' padding, no bias before BN
    (2, 1, 9, 9, 5, 3, 1, True, False),  # a first layer: one channel, no dx
    (2, 3, 6, 8, 5, 5, 2, True, True),
    (2, 3, 6, 8, 4, 5, 4, False, True),  # the widest padding of the row layout: k - 1
    (2, 3, 5, 4, 3, 3, 0, True, True),  # no padding
    (4, 2, 5, 5, 3, 1, 0, True, True),  # 1x1
])
def test_conv_kernels_agree_with_numpy(dtype, geometry):
    """Output, dW, db and dx against the NumPy convolution, twice (the kernels
    keep their work arrays; the second batch must not see the first's), and
    then on a batch of another size."""
    N, C, H, W, O, k, p, bias, input_grad = geometry
    ref, fast = conv_pair(C, O, k, p, bias, dtype)
    ref.input_grad = fast.input_grad = input_grad
    rng = np.random.default_rng(8)
    for n in (N, N, N + 1):
        x = (rng.standard_normal((n, C, H, W)) + 0.5).astype(dtype)
        y_ref, y_fast = ref.forward(x, True).copy(), fast.forward(x, True)
        assert fast._fast is not None  # the compiled path ran
        dy = rng.standard_normal(y_ref.shape).astype(dtype)
        dx_ref, dx_fast = ref.backward(dy), fast.backward(dy)
        close(y_ref, y_fast, dtype)
        for key in ref.grads:
            close(ref.grads[key], fast.grads[key], dtype)
        if input_grad:
            close(dx_ref, dx_fast, dtype)
        else:
            assert dx_ref is None and dx_fast is None


@pytest.mark.parametrize("case", ["padding k", "float64 input", "strided input"])
def test_convolutions_outside_the_compiled_layout_take_the_numpy_code(case):
    """Padding beyond k - 1, an input of another dtype than the weights, or a
    non-contiguous input: the NumPy convolution, same numbers (strided
    convolutions are compiled: tests/test_kernels_strided.py)."""
    ref, fast = conv_pair(2, 3, 3, 3 if case == "padding k" else 1, True, np.float32)
    x = np.random.default_rng(9).standard_normal((2, 2, 12 if case == "strided input" else 6, 6))
    x = x if case == "float64 input" else x.astype(np.float32)
    x = x[:, :, ::2] if case == "strided input" else x
    y_ref, y_fast = ref.forward(x, True).copy(), fast.forward(x, True)
    assert fast._fast is None
    np.testing.assert_array_equal(y_ref, y_fast)
    dy = np.ones_like(y_ref)
    np.testing.assert_array_equal(ref.backward(dy), fast.backward(dy))
    np.testing.assert_array_equal(ref.grads["W"], fast.grads["W"])


@pytest.mark.parametrize("geometry", [(2, 3, 5, 4, 3, 1, True), (3, 1, 4, 6, 2, 0, False)])
def test_the_conv_kernels_gradients_pass_the_finite_difference_check(geometry):
    N, C, H, W, O, p, bias = geometry
    _, layer = conv_pair(C, O, 3, p, bias, np.float64)
    rng = np.random.default_rng(10)
    errors = check_layer(layer, rng.standard_normal((N, C, H, W)), rng)
    assert layer._fast is not None
    assert errors and max(errors.values()) < 1e-6, errors


def test_a_blas_function_that_does_not_give_matmuls_products_is_not_called(monkeypatch):
    """Where NumPy's library exports the names with another interface, the
    kernels must not call it: here float64's address is sgemm's (which reads
    and writes half the bytes: safe to call, wrong numbers). The CNN then
    takes the NumPy convolution and the MLP its layer-by-layer path."""
    from bnexp.engine import backend as kernels_mod
    from bnexp.engine.model import NormSettings, build, cnn_layers

    real = kernels_mod._gemm_addresses()
    assert real is not None
    assert kernels_mod.gemm_address(np.float64) == real[np.dtype(np.float64)]
    swapped = {**real, np.dtype(np.float64): real[np.dtype(np.float32)]}
    monkeypatch.setattr(kernels_mod, "_gemm_addresses", lambda: swapped)
    assert kernels_mod.gemm_address(np.float64) is None
    assert kernels_mod.gemm_address(np.float32) == real[np.dtype(np.float32)]
    cnn = build(cnn_layers([3], norm="batch"), (1, 6, 6), 3, rng=np.random.default_rng(0),
                norm=NormSettings("batch"), dtype=np.float64, kernels="numba")
    assert np.isfinite(cnn.loss_and_backward(np.ones((4, 36)), np.arange(4) % 3))
    assert cnn.layers[0]._fast is None
    net = build_mlp(12, 5, [8], rng=np.random.default_rng(0), kernels="numba", norm="batch",
                    dtype=np.float64)
    assert net._whole_step(np.zeros((4, 12))) is None
