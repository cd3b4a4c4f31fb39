"""Layers with hand-written forward and backward passes.

Every layer shares one interface, so that they are interchangeable:

    y = layer.forward(x, train)   # x: (N, D_in) -> y: (N, D_out)
    dx = layer.backward(dy)       # dy: (N, D_out) -> dx: (N, D_in)

Trainable arrays live in ``layer.params``; ``backward`` writes their gradients
under the same keys in ``layer.grads`` (overwriting, not accumulating: one
backward per step). Running statistics live in ``layer.buffers``.

Speed: arrays returned by ``forward``/``backward`` are work buffers owned by the
layer and reused by the next call with the same batch size, so no step
allocates large arrays. They stay valid until the layer's next call; copy them
if you need to keep them. No argument array is ever modified in place.
"""

from __future__ import annotations

import copy

import numpy as np

__all__ = [
    "Layer",
    "Linear",
    "ReLU",
    "Sigmoid",
    "Tanh",
    "Identity",
    "Dropout",
    "NoisyShift",
]


class Layer:
    """Base class: the shared interface and the work-buffer pool.

    ``kernels`` is None (the NumPy code below, the reference) or the module of
    compiled kernels of the network's backend (``engine.backend``), which
    layers that have a compiled path use for it."""

    def __init__(self) -> None:
        self.kernels = None
        self.params: dict[str, np.ndarray] = {}
        self.grads: dict[str, np.ndarray] = {}
        self.buffers: dict[str, np.ndarray] = {}
        # Work arrays: named ones (``_buf``) and per-input plans (``_plan``).
        self._work: dict[tuple, object] = {}

    def forward(self, x: np.ndarray, train: bool) -> np.ndarray:
        raise NotImplementedError

    def backward(self, dy: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def _buf(self, name: str, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
        """A reusable uninitialised array, one per (name, shape, dtype)."""
        key = (name, shape, dtype)
        a = self._work.get(key)
        if a is None:
            a = self._work[key] = np.empty(shape, dtype=dtype)
        return a

    def _plan(self, x: np.ndarray):
        """The work arrays for inputs shaped and typed like ``x``, built once by
        ``self._make_work(x)``: one dict lookup per call, then attribute access."""
        w = self._work.get((x.shape, x.dtype))
        if w is None:
            w = self._work[(x.shape, x.dtype)] = self._make_work(x)
        return w

    def _make_work(self, x: np.ndarray):
        raise NotImplementedError

    def replica(self) -> Layer:
        """A layer sharing this one's params and buffers (the same arrays) but
        with its own work arrays and caches, for evaluating in another thread.
        Eval mode only: a replica's training would update shared arrays."""
        twin = copy.copy(self)
        twin._work = {}
        return twin

    def _need_cache(self, name: str):
        value = getattr(self, name, None)
        if value is None:
            raise RuntimeError(f"{type(self).__name__}.backward called before forward")
        return value

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


def draw_weights(rng: np.random.Generator, shape: tuple[int, ...], std: float,
                 bound: float | None = None) -> np.ndarray:
    """Initial weights in float64: Normal(0, std**2), or Uniform(-bound, bound)
    when ``bound`` is given (PyTorch's default Kaiming-uniform, Glorot's uniform)."""
    if bound is None:
        return rng.standard_normal(shape) * std
    return rng.uniform(-bound, bound, shape)


def draw_bias(rng: np.random.Generator, n: int, bound: float | None, dtype) -> np.ndarray:
    """Initial bias: zeros, or Uniform(-bound, bound) drawn after the weights
    (PyTorch's Linear and Conv2d default, bound = 1/sqrt(fan_in))."""
    if bound is None:
        return np.zeros(n, dtype=dtype)
    return rng.uniform(-bound, bound, n).astype(dtype)


def _dtype(a: np.ndarray, b: np.ndarray) -> np.dtype:
    return a.dtype if a.dtype == b.dtype else np.result_type(a, b)


class Linear(Layer):
    """Affine map ``y = x @ W + b``.

    x: (N, in_features), W: (in_features, out_features), b: (out_features,).
    W ~ Normal(0, std**2), with std = sqrt(1 / in_features) when not given,
    or Uniform(-bound, bound) with ``bound``; b = 0, or Uniform(-bias_bound,
    bias_bound) with ``bias_bound``. Set ``input_grad = False`` on a first layer to skip computing dx
    (``backward`` then returns None).
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = True,
        *,
        rng: np.random.Generator,
        std: float | None = None,
        bound: float | None = None,
        bias_bound: float | None = None,
        dtype: np.dtype | type = np.float32,
    ) -> None:
        super().__init__()
        if in_features < 1 or out_features < 1:
            raise ValueError(
                f"Linear: in_features={in_features} and out_features={out_features} must be >= 1"
            )
        self.in_features, self.out_features = in_features, out_features
        if std is None:
            std = float(np.sqrt(1.0 / in_features))
        W = draw_weights(rng, (in_features, out_features), std, bound)
        self.params["W"] = W.astype(dtype)
        self.grads["W"] = np.zeros_like(self.params["W"])
        if bias:
            self.params["b"] = draw_bias(rng, out_features, bias_bound, dtype)
            self.grads["b"] = np.zeros_like(self.params["b"])
        self._bias = bias
        self.input_grad = True
        self._x: np.ndarray | None = None
        self._w: tuple[np.ndarray, ...] | None = None

    def _make_work(self, x: np.ndarray) -> tuple[np.ndarray, ...]:
        """y (N, out), dx (N, in), and ones (N,) for the bias gradient."""
        N, dtype = x.shape[0], _dtype(x, self.params["W"])
        return (np.empty((N, self.out_features), dtype=dtype),
                np.empty((N, self.in_features), dtype=dtype), np.ones(N, dtype=dtype))

    def forward(self, x: np.ndarray, train: bool) -> np.ndarray:
        w = self._w = self._plan(x)
        y = np.matmul(x, self.params["W"], w[0])
        if self._bias:
            np.add(y, self.params["b"], y)
        self._x = x
        return y

    def backward(self, dy: np.ndarray) -> np.ndarray | None:
        x = self._need_cache("_x")
        _, dx, ones = self._w
        np.matmul(x.T, dy, self.grads["W"])
        if self._bias and self.kernels is not None and dy.flags.c_contiguous:
            self.kernels.col_sums(dy, self.grads["b"])
        elif self._bias:
            np.matmul(ones, dy, self.grads["b"])  # column sums through BLAS
        if not self.input_grad:
            return None
        return np.matmul(dy, self.params["W"].T, dx)

    def __repr__(self) -> str:
        return f"Linear({self.in_features}, {self.out_features}, bias={'b' in self.params})"


class _ReLUWork:
    def __init__(self, shape: tuple[int, ...], dtype: np.dtype) -> None:
        self.zeros = np.zeros(shape, dtype=dtype)
        self.y, self.dx = np.empty(shape, dtype=dtype), np.empty(shape, dtype=dtype)
        self.mask = np.empty(shape, dtype=np.bool_)


class ReLU(Layer):
    """``y = max(x, 0)``; shapes (N, D) -> (N, D). The gradient is ``dy`` where
    ``x > 0`` and 0 elsewhere (PyTorch's convention at 0)."""

    def __init__(self) -> None:
        super().__init__()
        self._w: _ReLUWork | None = None
        self._y: np.ndarray | None = None  # the output, on the compiled path
        self._compiled = False

    def _make_work(self, x: np.ndarray) -> _ReLUWork:
        return _ReLUWork(x.shape, x.dtype)

    def forward(self, x: np.ndarray, train: bool) -> np.ndarray:
        self._compiled = self.kernels is not None and x.flags.c_contiguous
        if self._compiled:  # only the output is kept (no zeros, no mask)
            y = self._y = self._buf("cy", x.shape, x.dtype)
            self.kernels.relu_forward(x, y)
            return y
        w = self._plan(x)
        # Against a zeros array, not the scalar 0: same-shape np.maximum is the
        # vectorised fast path (about 4x faster here than with a scalar). The
        # mask is boolean: comparing into a float array casts every element.
        np.maximum(x, w.zeros, out=w.y)
        np.greater(x, w.zeros, w.mask)
        self._w = w
        return w.y

    def backward(self, dy: np.ndarray) -> np.ndarray:
        if self._compiled:  # the mask from the output: y > 0 exactly where x > 0
            y = self._need_cache("_y")
            dx = self._buf("cdx", y.shape, y.dtype)
            self.kernels.relu_backward(np.ascontiguousarray(dy), y, dx)
            return dx
        w = self._need_cache("_w")
        return np.multiply(dy, w.mask, w.dx)


class Sigmoid(Layer):
    """``y = 1 / (1 + exp(-x))``, computed as ``(1 + tanh(x/2)) / 2`` so that
    no input overflows; shapes (N, D) -> (N, D)."""

    def __init__(self) -> None:
        super().__init__()
        self._y: np.ndarray | None = None

    def forward(self, x: np.ndarray, train: bool) -> np.ndarray:
        y = self._buf("y", x.shape, x.dtype)
        np.multiply(x, 0.5, out=y)
        np.tanh(y, out=y)
        np.add(y, 1.0, out=y)
        np.multiply(y, 0.5, out=y)
        self._y = y
        return y

    def backward(self, dy: np.ndarray) -> np.ndarray:
        y = self._need_cache("_y")
        dx = self._buf("dx", y.shape, dy.dtype)
        np.subtract(1.0, y, out=dx)  # dy * y * (1 - y)
        np.multiply(dx, y, out=dx)
        return np.multiply(dx, dy, out=dx)


class Tanh(Layer):
    """``y = tanh(x)``; shapes (N, D) -> (N, D)."""

    def __init__(self) -> None:
        super().__init__()
        self._y: np.ndarray | None = None

    def forward(self, x: np.ndarray, train: bool) -> np.ndarray:
        y = self._buf("y", x.shape, x.dtype)
        np.tanh(x, out=y)
        self._y = y
        return y

    def backward(self, dy: np.ndarray) -> np.ndarray:
        y = self._need_cache("_y")
        dx = self._buf("dx", y.shape, dy.dtype)
        np.multiply(y, y, out=dx)  # dy * (1 - y**2)
        np.subtract(1.0, dx, out=dx)
        return np.multiply(dx, dy, out=dx)


class Identity(Layer):
    """``y = x``; returns its argument unchanged (and unmodified)."""

    def forward(self, x: np.ndarray, train: bool) -> np.ndarray:
        return x

    def backward(self, dy: np.ndarray) -> np.ndarray:
        return dy


class Dropout(Layer):
    """Inverted dropout: in train mode each unit is zeroed with probability
    ``p`` and the survivors scaled by ``1 / (1 - p)``; identity in eval mode.
    x: (N, D) -> y: (N, D)."""

    def __init__(self, p: float, *, rng: np.random.Generator) -> None:
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"Dropout: p={p} must be in [0, 1)")
        self.p, self.rng = p, rng
        self._mask: np.ndarray | None = None

    def forward(self, x: np.ndarray, train: bool) -> np.ndarray:
        if not train or self.p == 0.0:
            self._mask = None
            return x
        mask = self._buf("mask", x.shape, x.dtype)
        self.rng.random(dtype=mask.dtype, out=mask)
        np.greater_equal(mask, self.p, out=mask)  # 1.0 where kept
        np.multiply(mask, 1.0 / (1.0 - self.p), out=mask)
        self._mask = mask
        y = self._buf("y", x.shape, x.dtype)
        return np.multiply(x, mask, out=y)

    def backward(self, dy: np.ndarray) -> np.ndarray:
        if self._mask is None:
            return dy
        dx = self._buf("dx", dy.shape, dy.dtype)
        return np.multiply(dy, self._mask, out=dx)

    def __repr__(self) -> str:
        return f"Dropout(p={self.p})"


class NoisyShift(Layer):
    """Santurkar et al. (2018)'s "noisy BN" noise, placed after a norm layer:
    in train mode each unit (channel) is scaled and shifted by random amounts
    drawn anew at every step from distributions that themselves change every
    step, so the layer's output distribution never settles:

        m, l ~ U(-sigma, sigma)                 per step (the drifting means)
        s_j = exp(N(l, sigma^2)), b_j ~ N(m, sigma^2)   per unit
        y = x * s + b

    Identity in eval mode (and for sigma = 0). x: (N, C, ...) -> same shape."""

    def __init__(self, sigma: float, *, rng: np.random.Generator) -> None:
        super().__init__()
        if not sigma >= 0:
            raise ValueError(f"NoisyShift: sigma={sigma} must be >= 0")
        self.sigma, self.rng = sigma, rng
        self._scale: np.ndarray | None = None

    def forward(self, x: np.ndarray, train: bool) -> np.ndarray:
        if not train or self.sigma == 0.0:
            self._scale = None
            return x
        C, sig = x.shape[1], self.sigma
        m, log_mean = self.rng.uniform(-sig, sig, 2)
        scale = np.exp(self.rng.normal(log_mean, sig, C)).astype(x.dtype)
        shift = self.rng.normal(m, sig, C).astype(x.dtype)
        per = (C,) + (1,) * (x.ndim - 2)
        self._scale = scale.reshape(per)
        y = self._buf("y", x.shape, x.dtype)
        np.multiply(x, self._scale, out=y)
        return np.add(y, shift.reshape(per), out=y)

    def backward(self, dy: np.ndarray) -> np.ndarray:
        if self._scale is None:
            return dy
        dx = self._buf("dx", dy.shape, dy.dtype)
        return np.multiply(dy, self._scale, out=dx)

    def __repr__(self) -> str:
        return f"NoisyShift(sigma={self.sigma})"
