"""The compiled convolution at every stride (``train.kernels: numba``) and the
residual addition on the kernels, against the NumPy engine (the reference):
each geometry's output and gradients agree with it (float64 to 1e-12,
float32 to float32 rounding), a ResNet trains to the same parameters on both
backends, the compiled path is really the one taken, and fusing a block's
addition with the ReLU after it gives the unfused numbers bit for bit.
Skipped where numba is not installed (``pip install "bnexp[fast]"``)."""

import itertools

import numpy as np
import pytest
from gradcheck import check_layer
from test_kernels import conv_pair

from bnexp.engine import Conv2d, ReLU, make_optimizer
from bnexp.engine.backend import load
from bnexp.engine.model import NormSettings, build, resnet_layers
from bnexp.engine.residual import Add, Fork, Junction

pytest.importorskip("numba")
K = load("numba")

# Largest difference allowed, relative to the largest magnitude compared:
# float32 to a few dozen units of its rounding (sums of up to C*k*k*N*Ho*Wo
# products in another order), float64 as the other kernel tests.
TOL = {np.float32: 64 * float(np.finfo(np.float32).eps), np.float64: 1e-12}


def close(ref, got, dtype, tol=None):
    ref, got = np.asarray(ref, np.float64), np.asarray(got, np.float64)
    assert ref.shape == got.shape
    scale = max(float(np.abs(ref).max()), 1e-30)
    err = float(np.abs(ref - got).max()) / scale
    assert err <= (tol or TOL[dtype]), err


# (kernel, padding) for every padding the compiled path takes: 0 .. k - 1.
KERNEL_PADDING = [(k, p) for k in (1, 3, 5) for p in range(k)]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("hw", [(7, 9), (11, 11)])
@pytest.mark.parametrize("stride", [1, 2, 3])
@pytest.mark.parametrize("k,p", KERNEL_PADDING)
@pytest.mark.parametrize("bias,input_grad", list(itertools.product([True, False], repeat=2)))
def test_the_compiled_convolution_agrees_with_numpy(dtype, hw, stride, k, p, bias, input_grad):
    """Output, dW, db and dx on odd image sizes (windows that do not tile the
    image leave its last rows and columns out), three batches: the kernels
    keep their work arrays (the padding's zero columns among them), so the
    second batch must not see the first's, and the third has another size."""
    C, O = 3, 4
    ref, fast = conv_pair(C, O, k, p, bias, dtype, stride=stride)
    ref.input_grad = fast.input_grad = input_grad
    rng = np.random.default_rng(8)
    for n in (2, 2, 3):
        x = (rng.standard_normal((n, C, *hw)) + 0.5).astype(dtype)
        y_ref, y_fast = ref.forward(x, True).copy(), fast.forward(x, True)
        assert fast._fast is not None  # the compiled path ran
        assert y_fast.dtype == dtype
        dy = rng.standard_normal(y_ref.shape).astype(dtype)
        dx_ref, dx_fast = ref.backward(dy), fast.backward(dy)
        close(y_ref, y_fast, dtype)
        assert set(fast.grads) == set(ref.grads) == ({"W", "b"} if bias else {"W"})
        for key in ref.grads:
            close(ref.grads[key], fast.grads[key], dtype)
        if input_grad:
            close(dx_ref, dx_fast, dtype)
        else:
            assert dx_ref is None and dx_fast is None


@pytest.mark.parametrize("geometry", [
    # (N, C, H, W, O, k, stride, padding, bias)
    (2, 3, 7, 9, 4, 3, 2, 1, True),
    (3, 2, 11, 11, 3, 1, 2, 0, False),  # a ResNet's projection
    (2, 2, 9, 7, 3, 5, 3, 4, True),
])
def test_the_strided_kernels_gradients_pass_the_finite_difference_check(geometry):
    N, C, H, W, O, k, s, p, bias = geometry
    _, layer = conv_pair(C, O, k, p, bias, np.float64, stride=s)
    rng = np.random.default_rng(10)
    errors = check_layer(layer, rng.standard_normal((N, C, H, W)), rng)
    assert layer._fast is not None
    assert errors and max(errors.values()) < 1e-6, errors


@pytest.mark.parametrize("stride,padding,compiled", [
    (2, 1, True), (3, 2, True), (2, 0, True), (2, 3, False),  # padding k: NumPy's code
])
def test_strided_convolutions_take_the_compiled_path(stride, padding, compiled):
    _, fast = conv_pair(2, 3, 3, padding, True, np.float32, stride=stride)
    x = np.random.default_rng(9).standard_normal((2, 2, 9, 9)).astype(np.float32)
    fast.forward(x, True)
    assert (fast._fast is not None) == compiled


def tiny_resnet(kernels, rng):
    """Two stages of one block each: the second starts with a stride-2
    convolution and a strided 1x1 projection; 15x15 images (odd: the stride
    leaves no row out, 15 -> 8)."""
    return build(resnet_layers([3, 5], 1, norm="batch"), (1, 15, 15), 10, rng=rng,
                 norm=NormSettings("batch"), dtype=np.float64, kernels=kernels)


def test_a_resnet_trains_to_the_same_parameters_on_both_kernels():
    """Four momentum steps of a small ResNet in float64 on each backend: the
    same losses and parameters to 1e-10, every convolution (stride 1 and 2,
    3x3 and the 1x1 projection) on the compiled path."""
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((12, 225)), rng.integers(0, 10, 12)
    runs = {}
    for kernels in ("numpy", "numba"):
        net = tiny_resnet(kernels, np.random.default_rng(1))
        opt = make_optimizer("momentum", net.layers, 0.1, kernels=kernels)
        losses = []
        for step in range(4):
            losses.append(net.loss_and_backward(x[step % 2 * 6:][:6], y[step % 2 * 6:][:6]))
            opt.step()
        runs[kernels] = net, losses
    convs = [layer for layer in runs["numba"][0].layers if isinstance(layer, Conv2d)]
    assert {c.stride for c in convs} == {1, 2} and {c.kernel for c in convs} == {1, 3}
    assert all(c._fast is not None for c in convs)
    assert all(c._fast is None for c in runs["numpy"][0].layers if isinstance(c, Conv2d))
    np.testing.assert_allclose(runs["numba"][1], runs["numpy"][1], rtol=1e-10, atol=0)
    ref, fast = runs["numpy"][0].state_dict(), runs["numba"][0].state_dict()
    assert ref.keys() == fast.keys()
    for key in ref:
        close(ref[key], fast[key], np.float64, tol=1e-10)
    first = runs["numpy"][0].layers[0].params["W"]
    assert not np.allclose(first, tiny_resnet("numpy", np.random.default_rng(1))
                           .layers[0].params["W"])  # the steps moved the weights


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("projection", [False, True])
def test_the_compiled_addition_equals_numpy_and_fused_with_the_relu_the_two_layers(
        dtype, projection):
    """A block's end on the kernels: the sum bit for bit as np.add; fused with
    the ReLU after it, the output and the gradient handed to both branches
    bit for bit as the two layers one after the other."""
    rng = np.random.default_rng(2)
    a, b = (rng.standard_normal((3, 4, 5, 7)).astype(dtype) for _ in range(2))  # the branches
    dy = rng.standard_normal(a.shape).astype(dtype)
    outs = {}
    for name in ("numpy", "kernels", "fused"):
        junction = Junction()
        add, relu = Add(junction, projection), ReLU()
        if name != "numpy":
            add.kernels = relu.kernels = K
        if projection:  # the body's output kept by Shortcut; Add gets the projection's
            junction.body = b
        else:  # the block's input kept by Fork; Add gets the body's output
            Fork(junction).forward(b, True)
        if name == "fused":
            y = add.forward_relu(a, True, relu).copy()
            g = add.backward_relu(dy, relu).copy()
        else:
            y = relu.forward(add.forward(a, True), True).copy()
            g = add.backward(relu.backward(dy)).copy()
        kept = junction.dbody if projection else junction.dx  # the other branch's gradient
        outs[name] = y, g, kept.copy()
    np.testing.assert_array_equal(outs["numpy"][0], np.maximum(a + b, 0))
    for name in ("kernels", "fused"):
        for ref, got in zip(outs["numpy"], outs[name]):
            assert got.dtype == dtype
            np.testing.assert_array_equal(ref, got)
    assert (outs["fused"][1] == 0).mean() > 0.3  # the ReLU's mask took part


def fuse_block_ends(net):
    """The network's steps with every residual Add -> ReLU pair fused (as a
    plan that fuses them would have it)."""
    steps = []
    for layer, relu in net.steps:
        if (relu is None and type(layer) is ReLU and steps and isinstance(steps[-1][0], Add)
                and steps[-1][1] is None):
            steps[-1] = (steps[-1][0], layer)
        else:
            steps.append((layer, relu))
    return steps


def test_fusing_a_blocks_addition_with_its_relu_gives_the_unfused_numbers():
    """A whole ResNet on the kernels, its block ends fused, against the same
    network run layer by layer (a recorded forward fuses nothing): the same
    losses and parameters after three momentum steps, bit for bit."""
    def run(fused):
        net = build(resnet_layers([3, 5], 1, norm="batch"), (1, 9, 9), 4,
                    rng=np.random.default_rng(0), norm=NormSettings("batch"),
                    dtype=np.float32, kernels="numba")
        net.steps = fuse_block_ends(net)
        assert sum(isinstance(layer, Add) and relu is not None for layer, relu in net.steps) == 2
        opt = make_optimizer("momentum", net.layers, 0.05, kernels="numba")
        rng = np.random.default_rng(3)
        x, y = rng.standard_normal((16, 81)), rng.integers(0, 4, 16)
        losses = []
        for step in range(3):
            losses.append(net.loss_and_backward(x[step % 2 * 8:][:8], y[step % 2 * 8:][:8],
                                                record=not fused))
            opt.step()
        return losses, opt.params.copy()
    fused, unfused = run(True), run(False)
    assert fused[0] == unfused[0]
    np.testing.assert_array_equal(fused[1], unfused[1])
