"""Spatial layers on NCHW arrays, as PyTorch lays them out: convolution,
max and average pooling, global average pooling, and flattening.

Convolution is im2col: the input's k x k windows are copied, through a
strided view, into a (N, C*k*k, Ho*Wo) array laid out so that the copy runs
along rows of the image, and one BLAS product per sample gives the output in
NCHW directly. The backward pass is two more products per sample and k*k
strided additions (col2im). On the numba kernels (any stride, padding up
to k - 1) the same steps run one sample at a time in compiled code, so that
a sample's columns stay in cache instead of the batch's megabytes.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.lib.stride_tricks import as_strided

from ..shapes import conv_out
from .layers import Layer, draw_bias, draw_weights

__all__ = ["Conv2d", "MaxPool2d", "AvgPool2d", "GlobalAvgPool", "Flatten", "out_size"]


out_size = conv_out  # output length along one spatial axis (PyTorch's floor mode)


def _windows(xp: np.ndarray, k: int, s: int, Ho: int, Wo: int) -> np.ndarray:
    """A read-only (N, C, k, k, Ho, Wo) view: [n, c, i, j, h, w] = xp[n, c, h*s + i, w*s + j]."""
    N, C = xp.shape[:2]
    sn, sc, sh, sw = xp.strides
    return as_strided(xp, (N, C, k, k, Ho, Wo), (sn, sc, sh, sw, sh * s, sw * s),
                      writeable=False)


def _check_image(layer: Layer, x: np.ndarray, channels: int | None = None) -> None:
    if x.ndim != 4 or (channels is not None and x.shape[1] != channels):
        want = f"(N, {channels}, H, W)" if channels is not None else "(N, C, H, W)"
        raise ValueError(f"{layer!r} got input of shape {tuple(x.shape)}; expected {want}")


class _ConvWork:
    """Work arrays of a convolution for one input shape.

    Stride 1 (the usual case) lays the padded image out flat with rows of
    Wr = W + p values (a row's right padding is the next row's left padding)
    and computes every output row at that width instead of Wo: then the
    window at offset (i, j) is one contiguous run of the flat image, starting
    at i*Wr + j, so that im2col and col2im are k*k long contiguous copies and
    additions instead of short strided ones. The Wr - Wo extra columns per
    row are dropped from the output, and their upstream gradient is held at
    zero, so they add nothing to any gradient. Other strides (and padding
    beyond k - 1) use the strided windows directly."""

    def __init__(self, layer: Conv2d, x: np.ndarray, dtype: np.dtype) -> None:
        N, C, H, W = x.shape
        k, s, p = layer.kernel, layer.stride, layer.padding
        O = layer.out_channels
        self.Ho, self.Wo = out_size(H, k, s, p), out_size(W, k, s, p)
        if self.Ho < 1 or self.Wo < 1:
            raise ValueError(f"{layer!r}: input {H}x{W} is smaller than the kernel")
        self.Hp, self.Wp = H + 2 * p, W + 2 * p
        self.rows = s == 1 and p <= k - 1
        self.Wr = W + p  # row length of the flat layout
        Lw = self.Wr if self.rows else self.Wo  # computed columns per output row
        L, K = self.Ho * Lw, C * k * k
        if self.rows:  # flat padded planes, a spare row each (see above)
            self.xp = np.zeros((N, C, (self.Hp + 1) * self.Wr), dtype=dtype)
            self.y_wide = np.empty((N, O, self.Ho, Lw), dtype=dtype)
            self.dy_wide = np.zeros((N, O, self.Ho, Lw), dtype=dtype)  # extra columns stay 0
        else:  # padded input: the border stays zero, the interior is copied per call
            self.xp = np.zeros((N, C, self.Hp, self.Wp), dtype=dtype) if p else None
        self.cols = np.empty((N, C, k, k, L), dtype=dtype)
        self.cols3 = self.cols.reshape(N, K, L)
        self.y = np.empty((N, O, self.Ho, self.Wo), dtype=dtype)
        self.dw = np.empty((N, K, O), dtype=dtype)  # per-sample dW, transposed
        self.dw_sum = np.empty((K, O), dtype=dtype)
        self.ones_l = np.ones(self.Ho * self.Wo, dtype=dtype)
        self.ones_n = np.ones(N, dtype=dtype)
        self.rows_sum = np.empty(N * O, dtype=dtype)
        self.dcols = None  # allocated at the first backward that needs dx
        self.dxp = None

    def image(self, flat: np.ndarray, p: int, H: int, W: int) -> np.ndarray:
        """The (N, C, H, W) image inside flat padded planes (a view)."""
        N, C = flat.shape[:2]
        rows = flat[:, :, :self.Hp * self.Wr].reshape(N, C, self.Hp, self.Wr)
        return rows[:, :, p:p + H, p:p + W]

    def run_windows(self, flat: np.ndarray, k: int) -> np.ndarray:
        """(N, C, k, k, Ho*Wr) view of flat planes: [n, c, i, j, r] = flat[n, c, i*Wr + j + r]."""
        N, C = flat.shape[:2]
        sn, sc, se = flat.strides
        return as_strided(flat, (N, C, k, k, self.Ho * self.Wr),
                          (sn, sc, self.Wr * se, se, se), writeable=False)


class _ConvFast:
    """Conv2d's work arrays on the compiled path (padding <= k - 1): one
    sample's columns and products, which stay in cache. Stride 1 takes the row
    layout (padded planes, every output row Wr = W + p wide); other strides
    plain (C*k*k, Ho*Wo) columns gathered from the unpadded input, whose
    entries in the padding stay 0."""

    def __init__(self, layer: Conv2d, shape: tuple[int, ...], dtype: np.dtype, fn: int) -> None:
        N, C, H, W = shape
        k, s, p, O = layer.kernel, layer.stride, layer.padding, layer.out_channels
        Ho, Wo = out_size(H, k, s, p), out_size(W, k, s, p)
        if Ho < 1 or Wo < 1:
            raise ValueError(f"{layer!r}: input {H}x{W} is smaller than the kernel")
        K = C * k * k
        self.fn, self.rows = fn, s == 1
        if self.rows:
            Wr = W + p
            L = Ho * Wr
            self.xp = np.zeros((C, (H + 2 * p + 1) * Wr), dtype=dtype)  # the border stays 0
            self.dxp = np.empty_like(self.xp)
            self.cols = np.empty((K, L), dtype=dtype)
            self.yw = np.empty((O, L), dtype=dtype)
            self.dyw = np.zeros((O, L), dtype=dtype)  # the Wr - Wo extra columns stay 0
        else:
            L = Ho * Wo
            self.cols = np.zeros((K, L), dtype=dtype)  # entries in the padding stay 0
        self.dcols = np.empty((K, L), dtype=dtype)
        self.dwn, self.dWt = np.empty((K, O), dtype=dtype), np.empty((K, O), dtype=dtype)
        self.y = np.empty((N, O, Ho, Wo), dtype=dtype)
        self.dx = np.empty(shape, dtype=dtype)
        self.no_bias = np.zeros(O, dtype=dtype)  # stands in for b and db without a bias
        self.x: np.ndarray | None = None


class Conv2d(Layer):
    """2-D convolution (cross-correlation, as PyTorch): x (N, C_in, H, W) ->
    y (N, C_out, Ho, Wo). W: (C_out, C_in, k, k) ~ Normal(0, std**2), std =
    sqrt(1 / (C_in*k*k)) when not given, or Uniform(-bound, bound); b: (C_out,)
    = 0, or Uniform(-bias_bound, bias_bound). Zero padding.
    ``input_grad = False`` skips dx on a first layer."""

    def __init__(self, in_channels: int, out_channels: int, kernel: int, stride: int = 1,
                 padding: int = 0, bias: bool = True, *, rng: np.random.Generator,
                 std: float | None = None, bound: float | None = None,
                 bias_bound: float | None = None, dtype: np.dtype | type = np.float32) -> None:
        super().__init__()
        for key, value, lo in (("in_channels", in_channels, 1), ("out_channels", out_channels, 1),
                               ("kernel", kernel, 1), ("stride", stride, 1),
                               ("padding", padding, 0)):
            if not value >= lo:
                raise ValueError(f"Conv2d: {key}={value} must be >= {lo}")
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel, self.stride, self.padding = kernel, stride, padding
        fan_in = in_channels * kernel * kernel
        if std is None:
            std = float(np.sqrt(1.0 / fan_in))
        W = draw_weights(rng, (out_channels, in_channels, kernel, kernel), std, bound)
        self.params["W"] = W.astype(dtype)
        self.grads["W"] = np.zeros_like(self.params["W"])
        if bias:
            self.params["b"] = draw_bias(rng, out_channels, bias_bound, dtype)
            self.grads["b"] = np.zeros_like(self.params["b"])
        self._bias = bias
        self.input_grad = True
        self._w: _ConvWork | None = None
        self._shape: tuple[int, ...] | None = None

    def _make_work(self, x: np.ndarray) -> _ConvWork:
        return _ConvWork(self, x, np.result_type(x.dtype, self.params["W"].dtype))

    def forward(self, x: np.ndarray, train: bool) -> np.ndarray:
        _check_image(self, x, self.in_channels)
        self._fast = None
        if self.kernels is not None:
            fast = self._compiled_work(x)
            if fast is not None:
                return self._forward_compiled(x, fast)
        w = self._w = self._plan(x)
        k, s, p = self.kernel, self.stride, self.padding
        N, C_out = x.shape[0], self.out_channels
        W2 = self.params["W"].reshape(C_out, -1)
        if w.rows:
            w.image(w.xp, p, *x.shape[2:])[...] = x
            np.copyto(w.cols, w.run_windows(w.xp, k))
            np.matmul(W2, w.cols3, w.y_wide.reshape(N, C_out, -1))
            np.copyto(w.y, w.y_wide[..., :w.Wo])
        else:
            src = x
            if p:
                src = w.xp
                src[:, :, p:p + x.shape[2], p:p + x.shape[3]] = x
            np.copyto(w.cols.reshape(*w.cols.shape[:4], w.Ho, w.Wo),
                      _windows(src, k, s, w.Ho, w.Wo))
            np.matmul(W2, w.cols3, w.y.reshape(N, C_out, -1))
        if self._bias:
            y3 = w.y.reshape(N, C_out, -1)
            np.add(y3, self.params["b"][:, None], y3)
        self._shape = x.shape
        return w.y

    def backward(self, dy: np.ndarray) -> np.ndarray | None:
        if getattr(self, "_fast", None) is not None:
            return self._backward_compiled(dy, self._fast)
        w = self._need_cache("_w")
        N, C_out = dy.shape[:2]
        W2 = self.params["W"].reshape(C_out, -1)
        if w.rows:
            np.copyto(w.dy_wide[..., :w.Wo], dy)
            dy3 = w.dy_wide.reshape(N, C_out, -1)
        else:
            dy3 = dy.reshape(N, C_out, -1)
        # dW = sum over samples of dy[n] @ cols[n].T, computed transposed
        # (cols[n] @ dy[n].T: the transposed operand is then the smaller one)
        np.matmul(w.cols3, dy3.transpose(0, 2, 1), w.dw)
        np.sum(w.dw, axis=0, out=w.dw_sum)
        np.copyto(self.grads["W"].reshape(C_out, -1), w.dw_sum.T)
        if self._bias:
            np.matmul(dy.reshape(N * C_out, -1), w.ones_l, w.rows_sum)
            np.matmul(w.ones_n, w.rows_sum.reshape(N, C_out), self.grads["b"])
        if not self.input_grad:
            return None
        if w.dcols is None:
            w.dcols = np.empty_like(w.cols)
            w.dxp = np.empty(w.xp.shape if w.xp is not None else self._shape, dtype=w.cols.dtype)
        np.matmul(W2.T, dy3, w.dcols.reshape(w.cols3.shape))
        # col2im: every window offset (i, j) adds its slice of dcols back in place.
        dxp, k, s = w.dxp, self.kernel, self.stride
        dxp.fill(0)
        p, (_, _, H, W) = self.padding, self._shape
        if w.rows:
            run = w.Ho * w.Wr
            for i in range(k):
                for j in range(k):
                    part = dxp[:, :, i * w.Wr + j:i * w.Wr + j + run]
                    np.add(part, w.dcols[:, :, i, j], part)
            image = w.image(dxp, p, H, W)
        else:
            dcols6 = w.dcols.reshape(*w.dcols.shape[:4], w.Ho, w.Wo)
            hi, wi = s * (w.Ho - 1) + 1, s * (w.Wo - 1) + 1
            for i in range(k):
                for j in range(k):
                    part = dxp[:, :, i:i + hi:s, j:j + wi:s]
                    np.add(part, dcols6[:, :, i, j], part)
            if not p:
                return dxp
            image = dxp[:, :, p:p + H, p:p + W]
        dx = self._buf("dx", self._shape, dxp.dtype)
        np.copyto(dx, image)
        return dx

    def _compiled_work(self, x: np.ndarray) -> _ConvFast | None:
        """The compiled path's work arrays for ``x``, or None where it does not
        apply (padding beyond k - 1, mixed or other dtypes, a strided input,
        or no BLAS the kernels can call)."""
        key = ("compiled", x.shape, x.dtype)
        if key not in self._work:
            from .backend import gemm_address

            W = self.params["W"]
            fits = (self.padding <= self.kernel - 1
                    and x.dtype == W.dtype and x.dtype in (np.float32, np.float64))
            fn = gemm_address(x.dtype) if fits else None
            self._work[key] = None if fn is None else _ConvFast(self, x.shape, x.dtype, fn)
        fast = self._work[key]
        return fast if fast is not None and x.flags.c_contiguous else None

    def _forward_compiled(self, x: np.ndarray, f: _ConvFast) -> np.ndarray:
        W2 = self.params["W"].reshape(self.out_channels, -1)
        b = self.params["b"] if self._bias else f.no_bias
        if f.rows:
            self.kernels.conv_forward(f.fn, x, W2, b, self._bias, self.kernel, self.padding,
                                      f.xp, f.cols, f.yw, f.y)
        else:
            self.kernels.conv_forward_strided(f.fn, x, W2, b, self._bias, self.kernel,
                                              self.stride, self.padding, f.cols, f.y)
        self._fast, f.x = f, x  # backward rebuilds the columns from x, unchanged until then
        return f.y

    def _backward_compiled(self, dy: np.ndarray, f: _ConvFast) -> np.ndarray | None:
        C_out = self.out_channels
        W2 = self.params["W"].reshape(C_out, -1)
        db = self.grads["b"] if self._bias else f.no_bias
        dW2 = self.grads["W"].reshape(C_out, -1)
        dy = np.ascontiguousarray(dy)
        if f.rows:
            self.kernels.conv_backward(f.fn, f.x, dy, W2, self.kernel, self.padding, f.xp,
                                       f.cols, f.dyw, f.dwn, f.dWt, dW2, self._bias, db,
                                       self.input_grad, f.dcols, f.dxp, f.dx)
        else:
            self.kernels.conv_backward_strided(f.fn, f.x, dy, W2, self.kernel, self.stride,
                                               self.padding, f.cols, f.dwn, f.dWt, dW2,
                                               self._bias, db, self.input_grad, f.dcols, f.dx)
        return f.dx if self.input_grad else None

    def __repr__(self) -> str:
        return (f"Conv2d({self.in_channels}, {self.out_channels}, kernel={self.kernel}, "
                f"stride={self.stride}, padding={self.padding}, bias={self._bias})")


class _Pool(Layer):
    """Shared by the two pools: k x k windows moved by ``stride`` (default k),
    no padding, floor mode; the windows are visited as k*k strided slices."""

    def __init__(self, kernel: int, stride: int | None = None) -> None:
        super().__init__()
        stride = kernel if stride is None else stride
        for key, value in (("kernel", kernel), ("stride", stride)):
            if not value >= 1:
                raise ValueError(f"{type(self).__name__}: {key}={value} must be >= 1")
        self.kernel, self.stride = kernel, stride
        self._shape: tuple[int, ...] | None = None

    def _geometry(self, x: np.ndarray) -> tuple[int, int]:
        _check_image(self, x)
        H, W = x.shape[2:]
        Ho, Wo = out_size(H, self.kernel, self.stride, 0), out_size(W, self.kernel, self.stride, 0)
        if Ho < 1 or Wo < 1:
            raise ValueError(f"{self!r}: input {H}x{W} is smaller than the window")
        return Ho, Wo

    def _slices(self, a: np.ndarray, Ho: int, Wo: int):
        """(offset, view) for each of the k*k window offsets: a[..., h*s + i, w*s + j]."""
        s = self.stride
        hi, wi = s * (Ho - 1) + 1, s * (Wo - 1) + 1
        for i in range(self.kernel):
            for j in range(self.kernel):
                yield i * self.kernel + j, a[:, :, i:i + hi:s, j:j + wi:s]

    def _dx(self, dy: np.ndarray) -> tuple[np.ndarray, bool]:
        """The input-gradient array, zeroed; and whether windows overlap (then
        contributions add; otherwise each input position gets at most one)."""
        dx = self._buf("dx", self._shape, dy.dtype)
        dx.fill(0)
        return dx, self.stride < self.kernel

    def __repr__(self) -> str:
        return f"{type(self).__name__}(kernel={self.kernel}, stride={self.stride})"


class _MaxPair:
    """Work arrays of the 2x2, stride-2 max pool: the maximum taken in two
    pairwise steps (across columns, then across rows), whose masks say which
    of each pair won."""

    def __init__(self, shape: tuple[int, ...], dtype: np.dtype) -> None:
        N, C, H, W = shape
        Ho, Wo = H // 2, W // 2
        self.cols = np.empty((N, C, 2 * Ho, Wo), dtype=dtype)  # max of each column pair
        self.right = np.empty((N, C, 2 * Ho, Wo), dtype=dtype)  # 1 where the right one won
        self.y = np.empty((N, C, Ho, Wo), dtype=dtype)
        self.lower = np.empty((N, C, Ho, Wo), dtype=dtype)  # 1 where the lower row won
        self.dcols = np.empty((N, C, 2 * Ho, Wo), dtype=dtype)
        self.dx = np.zeros(shape, dtype=dtype)  # rows/columns beyond 2*Ho, 2*Wo stay 0
        self.Ho, self.Wo = Ho, Wo


class MaxPool2d(_Pool):
    """Max over each window. The gradient goes to the window's maximum; among
    equal maxima, to the first in row-major order (PyTorch's choice, which
    matters after a ReLU, where whole windows are 0).

    The 2x2 window with stride 2 (what CNNs here use) takes the maximum in
    two pairwise steps, each keeping the first of equals, which picks the
    same element; other windows visit their k*k offsets in turn."""

    def forward(self, x: np.ndarray, train: bool) -> np.ndarray:
        Ho, Wo = self._geometry(x)
        self._shape = x.shape
        self._compiled = None
        if self.kernel == self.stride == 2 and self.kernels is not None and x.flags.c_contiguous:
            return self._forward_compiled(x)
        if self.kernel == self.stride == 2:
            return self._forward_pairs(x)
        self._pairs = None
        shape = (*x.shape[:2], Ho, Wo)
        y = self._buf("y", shape, x.dtype)
        arg = self._buf("arg", shape, np.uint16)
        wins = self._buf("wins", shape, np.bool_)
        for off, part in self._slices(x, Ho, Wo):
            if off == 0:
                np.copyto(y, part)
                arg.fill(0)
                continue
            np.greater(part, y, out=wins)  # strictly greater: the first maximum stays
            np.copyto(y, part, where=wins)
            np.copyto(arg, off, where=wins)
        self._arg = arg
        return y

    def _forward_pairs(self, x: np.ndarray) -> np.ndarray:
        w = self._pairs = self._plan(x)
        xs = x[:, :, :2 * w.Ho, :2 * w.Wo]
        left, right = xs[..., 0::2], xs[..., 1::2]
        np.maximum(left, right, out=w.cols)  # the left one where equal
        np.greater(right, left, out=w.right)
        upper, lower = w.cols[:, :, 0::2], w.cols[:, :, 1::2]
        np.maximum(upper, lower, out=w.y)
        np.greater(lower, upper, out=w.lower)
        return w.y

    def _make_work(self, x: np.ndarray) -> _MaxPair:
        return _MaxPair(x.shape, x.dtype)

    def _forward_compiled(self, x: np.ndarray) -> np.ndarray:
        """The 2x2 pool as one kernel (the same numbers as the pairwise steps)."""
        N, C, H, W = x.shape
        out = (N, C, H // 2, W // 2)
        y, win = self._buf("cy", out, x.dtype), self._buf("cwin", out, np.uint8)
        self.kernels.maxpool2_forward(x, y, win)
        self._compiled = win
        return y

    def backward(self, dy: np.ndarray) -> np.ndarray:
        if getattr(self, "_compiled", None) is not None:
            dx = self._work.get(("cdx", self._shape, dy.dtype))
            if dx is None:  # zeros: rows and columns no window covers stay 0
                dx = self._work[("cdx", self._shape, dy.dtype)] = np.zeros(self._shape, dy.dtype)
            self.kernels.maxpool2_backward(np.ascontiguousarray(dy), self._compiled, dx)
            return dx
        if getattr(self, "_pairs", None) is not None:
            return self._backward_pairs(dy, self._pairs)
        arg = self._need_cache("_arg")
        dx, overlap = self._dx(dy)
        hit = self._buf("hit", arg.shape, np.bool_)
        Ho, Wo = arg.shape[2:]
        for off, part in self._slices(dx, Ho, Wo):
            np.equal(arg, off, out=hit)
            if overlap:
                np.add(part, dy, out=part, where=hit)
            else:
                np.copyto(part, dy, where=hit)
        return dx

    @staticmethod
    def _backward_pairs(dy: np.ndarray, w: _MaxPair) -> np.ndarray:
        # dy goes to the winning row of each pair (dy * mask, and dy - that:
        # exactly dy or 0), then to the winning column.
        lower, upper = w.dcols[:, :, 1::2], w.dcols[:, :, 0::2]
        np.multiply(dy, w.lower, out=lower)
        np.subtract(dy, lower, out=upper)
        xs = w.dx[:, :, :2 * w.Ho, :2 * w.Wo]
        right, left = xs[..., 1::2], xs[..., 0::2]
        np.multiply(w.dcols, w.right, out=right)
        np.subtract(w.dcols, right, out=left)
        return w.dx


class AvgPool2d(_Pool):
    """Mean over each window (no padding, so every window has k*k values)."""

    def forward(self, x: np.ndarray, train: bool) -> np.ndarray:
        Ho, Wo = self._geometry(x)
        y = self._buf("y", (*x.shape[:2], Ho, Wo), x.dtype)
        for off, part in self._slices(x, Ho, Wo):
            if off == 0:
                np.copyto(y, part)
            else:
                np.add(y, part, out=y)
        np.multiply(y, 1.0 / (self.kernel * self.kernel), out=y)
        self._shape = x.shape
        return y

    def backward(self, dy: np.ndarray) -> np.ndarray:
        if self._shape is None:
            raise RuntimeError("AvgPool2d.backward called before forward")
        dx, overlap = self._dx(dy)
        share = self._buf("share", dy.shape, dy.dtype)
        np.multiply(dy, 1.0 / (self.kernel * self.kernel), out=share)
        Ho, Wo = dy.shape[2:]
        for _, part in self._slices(dx, Ho, Wo):
            if overlap:
                np.add(part, share, out=part)
            else:
                np.copyto(part, share)
        return dx


class GlobalAvgPool(Layer):
    """Mean over every spatial position: (N, C, H, W) -> (N, C)."""

    def __init__(self) -> None:
        super().__init__()
        self._shape: tuple[int, ...] | None = None

    def forward(self, x: np.ndarray, train: bool) -> np.ndarray:
        _check_image(self, x)
        N, C = x.shape[:2]
        L = math.prod(x.shape[2:])
        avg = self._buf("avg", (L,), x.dtype)
        avg.fill(1.0 / L)
        y = self._buf("y", (N, C), x.dtype)
        np.matmul(x.reshape(N, C, L), avg, y)
        self._shape = x.shape
        return y

    def backward(self, dy: np.ndarray) -> np.ndarray:
        if self._shape is None:
            raise RuntimeError("GlobalAvgPool.backward called before forward")
        N, C = self._shape[:2]
        L = math.prod(self._shape[2:])
        dx = self._buf("dx", self._shape, dy.dtype)
        share = self._buf("share", (N, C, 1), dy.dtype)
        np.multiply(dy[:, :, None], 1.0 / L, out=share)
        np.copyto(dx.reshape(N, C, L), share)
        return dx


class Flatten(Layer):
    """(N, C, H, W) -> (N, C*H*W), C-major as PyTorch's ``nn.Flatten``; a view."""

    def __init__(self) -> None:
        super().__init__()
        self._shape: tuple[int, ...] | None = None

    def forward(self, x: np.ndarray, train: bool) -> np.ndarray:
        self._shape = x.shape
        return x.reshape(x.shape[0], -1)

    def backward(self, dy: np.ndarray) -> np.ndarray:
        if self._shape is None:
            raise RuntimeError("Flatten.backward called before forward")
        return dy.reshape(self._shape)
