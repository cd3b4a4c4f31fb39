"""Gradients of the spatial layers and of the norms on NCHW inputs, against
finite differences in float64 with random upstream gradients."""

import numpy as np
import pytest
from gradcheck import check_layer

from bnexp.engine import (
    AvgPool2d,
    BatchNorm,
    Conv2d,
    Flatten,
    GlobalAvgPool,
    GroupNorm,
    InstanceNorm,
    LayerNorm,
    MaxPool2d,
)

F64 = np.float64
TOL = 1e-6


def assert_ok(errors):
    assert errors and all(e < TOL for e in errors.values()), errors


def randomize(layer, rng):
    """Params (and running statistics) away from their trivial starting values."""
    for key, value in layer.params.items():
        value[...] = rng.standard_normal(value.shape)
    if "running_mean" in layer.buffers:
        layer.buffers["running_mean"][...] = rng.standard_normal(layer.D)
        layer.buffers["running_var"][...] = rng.uniform(0.5, 2.0, layer.D)


@pytest.mark.parametrize("stride,padding,bias", [(1, 0, True), (1, 1, False), (2, 1, True),
                                                 (2, 0, False), (3, 2, True)])
def test_conv2d(stride, padding, bias):
    rng = np.random.default_rng(stride * 10 + padding)
    layer = Conv2d(3, 4, 3, stride, padding, bias, rng=rng, std=0.5, dtype=F64)
    if bias:
        layer.params["b"][...] = rng.standard_normal(4)
    errors = check_layer(layer, rng.standard_normal((2, 3, 7, 6)), rng)
    assert set(errors) == ({"x", "W", "b"} if bias else {"x", "W"})
    assert_ok(errors)


@pytest.mark.parametrize("k,s,p,size", [(5, 2, 4, (9, 7)), (4, 2, 3, (8, 11)), (5, 1, 0, (9, 9)),
                                        (1, 3, 0, (7, 10)), (2, 2, 1, (5, 5))])
def test_conv2d_any_kernel_stride_and_padding_on_odd_sizes(k, s, p, size):
    """Padding up to k - 1, even kernels, unpadded and 1 x 1 strided ones (the
    ResNet projection), on images whose windows do not tile."""
    rng = np.random.default_rng(k * 100 + s * 10 + p)
    layer = Conv2d(2, 3, k, s, p, True, rng=rng, std=0.5, dtype=F64)
    layer.params["b"][...] = rng.standard_normal(3)
    assert_ok(check_layer(layer, rng.standard_normal((2, 2, *size)), rng))


def test_conv2d_kernel_one_and_five():
    rng = np.random.default_rng(7)
    for k, p in ((1, 0), (5, 2)):
        layer = Conv2d(2, 3, k, 1, p, True, rng=rng, dtype=F64)
        assert_ok(check_layer(layer, rng.standard_normal((3, 2, 6, 6)), rng))


@pytest.mark.parametrize("cls", [MaxPool2d, AvgPool2d])
@pytest.mark.parametrize("kernel,stride", [(2, None), (3, 2), (2, 1), (3, 3)])
def test_pools(cls, kernel, stride):
    rng = np.random.default_rng(kernel * 3 + (stride or 0))
    x = rng.standard_normal((2, 3, 7, 8))  # 7 and 8: windows that do and do not tile
    assert_ok(check_layer(cls(kernel, stride), x, rng))


def test_global_avg_pool_and_flatten():
    rng = np.random.default_rng(8)
    x = rng.standard_normal((3, 4, 5, 2))
    assert_ok(check_layer(GlobalAvgPool(), x, rng))
    assert_ok(check_layer(Flatten(), x, rng))


@pytest.mark.parametrize("shape", [(4, 3, 5, 6), (5, 3, 7)])
@pytest.mark.parametrize("train", [True, False])
@pytest.mark.parametrize("affine", [True, False])
def test_batchnorm_on_spatial_inputs(shape, train, affine):
    rng = np.random.default_rng(len(shape) + 2 * train + affine)
    layer = BatchNorm(3, affine=affine, dtype=F64)
    randomize(layer, rng)
    x = rng.standard_normal(shape) * 3 + 1
    assert_ok(check_layer(layer, x, rng, train=train))


def test_batchnorm_on_one_image_per_batch():
    """N = 1 is allowed on images: the statistics run over H x W as well."""
    rng = np.random.default_rng(9)
    layer = BatchNorm(2, dtype=F64)
    randomize(layer, rng)
    assert_ok(check_layer(layer, rng.standard_normal((1, 2, 3, 4)), rng))


@pytest.mark.parametrize("make", [lambda: LayerNorm(6, dtype=F64),
                                  lambda: GroupNorm(6, 3, dtype=F64),
                                  lambda: GroupNorm(6, 2, affine=False, dtype=F64)])
def test_per_sample_norms_on_images(make):
    rng = np.random.default_rng(10)
    layer = make()
    randomize(layer, rng)
    assert_ok(check_layer(layer, rng.standard_normal((3, 6, 4, 5)) * 2 + 1, rng))


@pytest.mark.parametrize("affine", [True, False])
@pytest.mark.parametrize("track,train", [(False, True), (False, False), (True, True),
                                         (True, False)])
def test_instancenorm(affine, track, train):
    rng = np.random.default_rng(11 + 2 * affine + track)
    layer = InstanceNorm(3, affine=affine, track_running_stats=track, dtype=F64)
    randomize(layer, rng)
    assert_ok(check_layer(layer, rng.standard_normal((2, 3, 4, 5)) * 2 - 1, rng, train=train))
