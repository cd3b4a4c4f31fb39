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

from ..choices import CONVENTIONS

__all__ = [
    "Layer",
    "Linear",
    "ReLU",
    "Sigmoid",
    "Tanh",
    "Identity",
    "BatchNorm",
    "LayerNorm",
    "GroupNorm",
    "Dropout",
]


class Layer:
    """Base class: the shared interface and the work-buffer pool."""

    def __init__(self) -> None:
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


def _dtype(a: np.ndarray, b: np.ndarray) -> np.dtype:
    return a.dtype if a.dtype == b.dtype else np.result_type(a, b)


class Linear(Layer):
    """Affine map ``y = x @ W + b``.

    x: (N, in_features), W: (in_features, out_features), b: (out_features,).
    W ~ Normal(0, std**2), with std = sqrt(1 / in_features) when not given;
    b = 0. Set ``input_grad = False`` on a first layer to skip computing dx
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
        W = rng.standard_normal((in_features, out_features)) * std
        self.params["W"] = W.astype(dtype)
        self.grads["W"] = np.zeros_like(self.params["W"])
        if bias:
            self.params["b"] = np.zeros(out_features, dtype=dtype)
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
        if self._bias:
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

    def _make_work(self, x: np.ndarray) -> _ReLUWork:
        return _ReLUWork(x.shape, x.dtype)

    def forward(self, x: np.ndarray, train: bool) -> np.ndarray:
        w = self._plan(x)
        # Against a zeros array, not the scalar 0: same-shape np.maximum is the
        # vectorised fast path (about 4x faster here than with a scalar). The
        # mask is boolean: comparing into a float array casts every element.
        np.maximum(x, w.zeros, out=w.y)
        np.greater(x, w.zeros, w.mask)
        self._w = w
        return w.y

    def backward(self, dy: np.ndarray) -> np.ndarray:
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


def _affine_params(layer: Layer, D: int, affine: bool, dtype) -> None:
    if affine:
        layer.params["gamma"] = np.ones(D, dtype=dtype)
        layer.params["beta"] = np.zeros(D, dtype=dtype)
        layer.grads["gamma"] = np.zeros(D, dtype=dtype)
        layer.grads["beta"] = np.zeros(D, dtype=dtype)


def _check_sizes(layer: str, eps: float, **sizes: int) -> None:
    for key, value in sizes.items():
        if not value >= 1:
            raise ValueError(f"{layer}: {key}={value} must be >= 1")
    if not eps >= 0:
        raise ValueError(f"{layer}: eps={eps} must be >= 0")


class _BNWork:
    """BatchNorm's work arrays for one batch size and dtype, made once and
    reused by every step (attribute access beats keyed lookups per call)."""

    def __init__(self, N: int, D: int, dtype: np.dtype) -> None:
        full = [np.empty((N, D), dtype=dtype) for _ in range(5)]
        self.xc, self.y, self.scale, self.tmp, self.dx = full  # xc = x - mean, scale = sv tiled
        self.stats = np.empty((2, D), dtype=dtype)  # batch mean, biased batch variance
        vec = [np.empty(D, dtype=dtype) for _ in range(7)]
        self.vpe, self.std, self.sv, self.s2, self.a, self.c, self.dbeta = vec
        self.avg = np.full(N, 1.0 / N, dtype=dtype)  # avg @ x: column means
        self.ones = np.ones(N, dtype=dtype)  # ones @ x: column sums
        self.keep, self.coef = 1.0, np.zeros((2, 1), dtype=dtype)
        self.batch_stats = True


class BatchNorm(Layer):
    """Batch normalization over the batch axis, with PyTorch's BatchNorm1d semantics.

    x: (N, D) -> y: (N, D). Train mode normalizes with the batch mean and the
    biased batch variance, and updates ``running = (1 - momentum) * running +
    momentum * batch`` with the *unbiased* batch variance stored in
    ``running_var``; ``momentum=None`` makes that a cumulative average. Eval
    mode uses the running statistics (the batch's when
    ``track_running_stats=False``). Buffers start at mean 0, variance 1.

    ``convention="book"`` follows "Deep Learning from Scratch" instead: the
    *biased* batch variance goes into ``running_var``, and both buffers start
    at 0 (its momentum 0.9 is ``momentum=0.1`` here; its eps is 1e-6).
    """

    def __init__(
        self,
        D: int,
        momentum: float | None = 0.1,
        eps: float = 1e-5,
        affine: bool = True,
        track_running_stats: bool = True,
        *,
        convention: str = "pytorch",
        dtype: np.dtype | type = np.float32,
    ) -> None:
        super().__init__()
        _check_sizes("BatchNorm", eps, D=D)
        if convention not in CONVENTIONS:
            raise ValueError(f"BatchNorm: convention={convention!r} must be one of "
                             f"{', '.join(CONVENTIONS)}")
        self.convention = convention
        if momentum is not None and not 0.0 <= momentum <= 1.0:
            raise ValueError(f"BatchNorm: momentum={momentum} must be in [0, 1] or None")
        self.D, self.momentum, self.eps = D, momentum, eps
        self.affine, self.track_running_stats = affine, track_running_stats
        _affine_params(self, D, affine, dtype)
        if track_running_stats:
            # Mean and variance are rows of one (2, D) array, updated together.
            self._running = np.zeros((2, D), dtype=dtype)
            if convention == "pytorch":
                self._running[1] = 1.0
            self.buffers["running_mean"] = self._running[0]
            self.buffers["running_var"] = self._running[1]
            self.buffers["num_batches_tracked"] = np.zeros((), dtype=np.int64)
        self._w: _BNWork | None = None  # the last forward's work arrays

    def _make_work(self, x: np.ndarray) -> _BNWork:
        N, dtype = x.shape[0], x.dtype
        w = _BNWork(N, self.D, dtype)
        if self.momentum is not None and N > 1:  # fixed running-update coefficients
            w.keep, w.coef = self._running_coef(self.momentum, N, dtype)
        return w

    def _running_coef(self, f: float, N: int, dtype) -> tuple[float, np.ndarray]:
        """running = keep * running + coef * [batch mean, batch var], row by row:
        PyTorch stores the unbiased batch variance, the book the biased one."""
        unbias = N / (N - 1) if self.convention == "pytorch" else 1.0
        return 1.0 - f, np.array([[f], [f * unbias]], dtype=dtype)

    def forward(self, x: np.ndarray, train: bool) -> np.ndarray:
        N, D = x.shape
        if D != self.D:
            raise ValueError(f"BatchNorm({self.D}) got input with {D} features")
        use_batch = train or not self.track_running_stats
        if use_batch and train and N < 2:
            raise ValueError(
                "BatchNorm: training needs a batch of at least 2 samples "
                f"(got {N}); with one, every output is beta and every gradient zero"
            )
        w = self._plan(x)
        xc, y = w.xc, w.y
        if use_batch:
            stats = w.stats  # rows: batch mean, biased batch variance
            np.matmul(w.avg, x, stats[0])  # column means through BLAS
            np.subtract(x, stats[0], xc)
            # Two-pass (centred) variance, no cancellation; the square goes through y.
            np.multiply(xc, xc, y)
            np.matmul(w.avg, y, stats[1])
            np.add(stats[1], self.eps, w.vpe)
        else:
            np.subtract(x, self._running[0], xc)
            np.add(self._running[1], self.eps, w.vpe)
        np.sqrt(w.vpe, w.std)
        if self.affine:
            np.divide(self.params["gamma"], w.std, w.sv)  # gamma / std, per feature
        else:
            np.divide(1.0, w.std, w.sv)
        # sv tiled to (N, D) once: forward and backward both multiply by it, and
        # same-shape multiplies are about twice as fast as broadcasting ones.
        np.copyto(w.scale, w.sv)
        np.multiply(xc, w.scale, y)
        if self.affine:
            np.add(y, self.params["beta"], y)
        if train and self.track_running_stats:
            self._update_running(w, N)
        w.batch_stats = use_batch
        self._w = w
        return y

    def _update_running(self, w: _BNWork, N: int) -> None:
        """running = (1 - f) * running + f * batch, both rows at once (the batch
        statistics in ``w.stats`` are consumed)."""
        nbt = self.buffers["num_batches_tracked"]
        count = int(nbt) + 1
        nbt.fill(count)
        if self.momentum is None:  # cumulative average
            keep, coef = self._running_coef(1.0 / count, N, w.stats.dtype)
        else:
            keep, coef = w.keep, w.coef
        np.multiply(self._running, keep, self._running)
        np.multiply(w.stats, coef, w.stats)
        np.add(self._running, w.stats, self._running)

    def backward(self, dy: np.ndarray) -> np.ndarray:
        w = self._need_cache("_w")
        N = w.xc.shape[0]
        dbeta = self.grads["beta"] if self.affine else w.dbeta
        np.matmul(w.ones, dy, dbeta)  # sum(dy), (D,)
        np.multiply(dy, w.xc, w.tmp)
        np.matmul(w.ones, w.tmp, w.s2)  # sum(dy * xc) = std * sum(dy * xhat)
        if self.affine:
            np.divide(w.s2, w.std, self.grads["gamma"])
        dx = w.dx
        np.multiply(dy, w.scale, dx)
        if not w.batch_stats:  # statistics are constants in eval mode
            return dx
        # The compact form dx = (sv / N) * (N*dy - sum(dy) - xhat * sum(dy*xhat)),
        # sv = gamma / std, expanded over xc = xhat * std into per-feature terms:
        #   dx = sv * dy + a * xc + c,  a = -sv * sum(dy*xc) / (N * (var + eps)),
        #                               c = -sv * sum(dy) / N.
        a, c = w.a, w.c
        np.multiply(w.s2, w.sv, a)
        np.divide(a, w.vpe, a)
        np.multiply(a, -1.0 / N, a)
        np.multiply(dbeta, w.sv, c)
        np.multiply(c, -1.0 / N, c)
        np.multiply(w.xc, a, w.tmp)
        np.add(dx, w.tmp, dx)
        return np.add(dx, c, dx)

    def __repr__(self) -> str:
        return (
            f"BatchNorm({self.D}, momentum={self.momentum}, eps={self.eps}, "
            f"affine={self.affine}, track_running_stats={self.track_running_stats}, "
            f"convention={self.convention!r})"
        )


class _RowNorm(Layer):
    """Shared machinery of LayerNorm and GroupNorm: per-sample statistics over
    ``G`` groups of ``D // G`` consecutive features, the same in train and eval
    mode, then a per-feature affine map."""

    def __init__(self, D: int, groups: int, eps: float, affine: bool, dtype) -> None:
        super().__init__()
        name = type(self).__name__
        _check_sizes(name, eps, D=D, groups=groups)
        if D % groups != 0:
            ok = [g for g in range(1, D + 1) if D % g == 0]
            raise ValueError(
                f"{name}: D={D} must be divisible by groups={groups}; "
                f"groups that divide {D}: {', '.join(map(str, ok))}"
            )
        self.D, self.G, self.eps, self.affine = D, groups, eps, affine
        _affine_params(self, D, affine, dtype)
        self._xhat: np.ndarray | None = None
        self._inv_std: np.ndarray | None = None

    def forward(self, x: np.ndarray, train: bool) -> np.ndarray:
        N, D = x.shape
        if D != self.D:
            raise ValueError(f"{type(self).__name__}({self.D}) got input with {D} features")
        K = D // self.G
        xhat = self._buf("xhat", x.shape, x.dtype)
        xg = x.reshape(N * self.G, K)  # one row per (sample, group)
        hg = xhat.reshape(N * self.G, K)
        mean = xg.mean(axis=1, keepdims=True)  # (N*G, 1)
        np.subtract(xg, mean, out=hg)
        var = np.einsum("rk,rk->r", hg, hg)[:, None] / K  # biased, (N*G, 1)
        inv_std = 1.0 / np.sqrt(var + self.eps)
        np.multiply(hg, inv_std, out=hg)
        self._xhat, self._inv_std = xhat, inv_std
        if not self.affine:
            return xhat
        y = self._buf("y", x.shape, x.dtype)
        np.multiply(xhat, self.params["gamma"], out=y)
        return np.add(y, self.params["beta"], out=y)

    def backward(self, dy: np.ndarray) -> np.ndarray:
        xhat = self._need_cache("_xhat")
        N, D = xhat.shape
        K = D // self.G
        dxhat = self._buf("dxhat", xhat.shape, dy.dtype)
        if self.affine:
            np.sum(dy, axis=0, out=self.grads["beta"])
            self.grads["gamma"][...] = np.einsum("nd,nd->d", dy, xhat)
            np.multiply(dy, self.params["gamma"], out=dxhat)
        else:
            dxhat[...] = dy
        # Compact form per row r: dx = (inv_std / K) * (K*dxhat - sum(dxhat) - xhat * sum(dxhat*xhat))
        g = dxhat.reshape(N * self.G, K)
        hg = xhat.reshape(N * self.G, K)
        s1 = g.sum(axis=1, keepdims=True)
        s2 = np.einsum("rk,rk->r", g, hg)[:, None]
        dx = self._buf("dx", xhat.shape, dy.dtype)
        out = dx.reshape(N * self.G, K)
        np.multiply(g, K, out=out)
        np.subtract(out, s1, out=out)
        np.subtract(out, hg * s2, out=out)
        np.multiply(out, self._inv_std / K, out=out)
        return dx


class LayerNorm(_RowNorm):
    """Layer normalization: per-sample mean and biased variance over all D
    features, the same in train and eval mode; x: (N, D) -> y: (N, D)."""

    def __init__(
        self, D: int, eps: float = 1e-5, affine: bool = True, *, dtype=np.float32
    ) -> None:
        super().__init__(D, 1, eps, affine, dtype)

    def __repr__(self) -> str:
        return f"LayerNorm({self.D}, eps={self.eps}, affine={self.affine})"


class GroupNorm(_RowNorm):
    """Group normalization: per-sample statistics over ``groups`` groups of
    ``D // groups`` consecutive features (PyTorch's GroupNorm on (N, C)
    input); gamma and beta are per feature. x: (N, D) -> y: (N, D)."""

    def __init__(
        self, D: int, groups: int, eps: float = 1e-5, affine: bool = True, *, dtype=np.float32
    ) -> None:
        super().__init__(D, groups, eps, affine, dtype)

    def __repr__(self) -> str:
        return f"GroupNorm({self.D}, groups={self.G}, eps={self.eps}, affine={self.affine})"


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
