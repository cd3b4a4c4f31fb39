"""Normalization layers, for (N, C) and (N, C, *spatial) inputs (NCHW), with
PyTorch's semantics. Which axes each one reduces over (Wu & He 2018, Fig. 2):

    BatchNorm     per channel, over (N, *spatial)       BatchNorm1d / BatchNorm2d
    LayerNorm     per sample, over (C, *spatial)        GroupNorm(1, C)
    GroupNorm     per sample and group of channels, over (C / G, *spatial)
    InstanceNorm  per sample and channel, over (*spatial)   InstanceNorm1d / 2d

``reduce_axes(ndim)`` gives those axes for an input of ``ndim`` dimensions
(what the reduction-axes figure draws). Gamma and beta are per channel for
all four; so LayerNorm on (N, C, H, W) is PyTorch's ``GroupNorm(1, C)``, not
``nn.LayerNorm([C, H, W])``, whose affine map is per element.

Two-dimensional inputs keep the code paths (and so the exact numbers) of the
MLP engine; inputs with spatial axes are viewed as (N, C, L), L the product
of the spatial sizes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..choices import CONVENTIONS, RENORM_RUNNING
from .layers import Layer

__all__ = ["BatchNorm", "Renorm", "LayerNorm", "GroupNorm", "InstanceNorm", "WeightNorm"]


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


def _check_momentum(layer: str, momentum: float | None) -> None:
    if momentum is not None and not 0.0 <= momentum <= 1.0:
        raise ValueError(f"{layer}: momentum={momentum} must be in [0, 1] or None")


def _check_channels(layer: Layer, x: np.ndarray, min_ndim: int = 2) -> None:
    if x.ndim < min_ndim or x.shape[1] != layer.D:
        what = "(N, C, ...)" if min_ndim == 2 else "(N, C, L) or (N, C, H, W)"
        raise ValueError(f"{type(layer).__name__}({layer.D}) got input of shape "
                         f"{tuple(x.shape)}; expected {what} with C = {layer.D}")


class _RunningStats:
    """Running mean and variance as rows of one (2, C) array, updated together:
    ``running = (1 - f) * running + f * batch``, f the momentum (or 1/count for
    a cumulative average when momentum is None)."""

    def _init_running(self, C: int, dtype, start_var: float) -> None:
        self._running = np.zeros((2, C), dtype=dtype)
        self._running[1] = start_var
        self.buffers["running_mean"] = self._running[0]
        self.buffers["running_var"] = self._running[1]
        self.buffers["num_batches_tracked"] = np.zeros((), dtype=np.int64)

    def _count(self) -> int:
        nbt = self.buffers["num_batches_tracked"]
        count = int(nbt) + 1
        nbt.fill(count)
        return count


# --- batch norm ------------------------------------------------------------------



@dataclass(frozen=True)
class Renorm:
    """Batch renormalization's settings (Ioffe 2017). The first ``bn_steps``
    training steps are plain batch norm (r = 1, d = 0); over the next
    ``warmup`` steps the bounds open linearly to r in [1/rmax, rmax] and
    |d| <= dmax (at once where ``warmup`` is 0). ``running``: what the running
    statistics average, ``"sigma"`` (Algorithm 1: the batch's sqrt(var + eps))
    or ``"variance"`` (the batch variance, as plain batch norm's running_var)."""

    rmax: float = 3.0
    dmax: float = 5.0
    warmup: int = 0
    bn_steps: int = 100
    running: str = "sigma"

    def __post_init__(self) -> None:
        if not (self.rmax >= 1 and self.dmax >= 0 and self.warmup >= 0 and self.bn_steps >= 0):
            raise ValueError(f"Renorm: rmax={self.rmax}, dmax={self.dmax}, warmup={self.warmup}, "
                             f"bn_steps={self.bn_steps}: needs rmax >= 1 and the others >= 0")
        if self.running not in RENORM_RUNNING:
            raise ValueError(f"Renorm: running={self.running!r} must be one of "
                             f"{', '.join(RENORM_RUNNING)}")

    def bounds(self, step: int) -> tuple[float, float]:
        """(rmax, dmax) at training step ``step``, counted from 0."""
        if step < self.bn_steps:
            return 1.0, 0.0
        ramp = min(1.0, (step - self.bn_steps) / self.warmup) if self.warmup else 1.0
        return 1.0 + (self.rmax - 1.0) * ramp, self.dmax * ramp


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


class _BNWorkND:
    """The same for (N, C, L) inputs: per-channel sums are two BLAS matrix-vector
    products, one over L (per sample and channel), one over N."""

    def __init__(self, shape: tuple[int, ...], dtype: np.dtype) -> None:
        N, C = shape[:2]
        L = math.prod(shape[2:])
        self.shape3, self.M = (N, C, L), N * L  # M: values per channel
        full = [np.empty((N, C, L), dtype=dtype) for _ in range(4)]
        self.xc, self.y, self.tmp, self.dx = full
        self.stats = np.empty((2, C), dtype=dtype)
        self.rows = np.empty(N * C, dtype=dtype)
        vec = [np.empty(C, dtype=dtype) for _ in range(7)]
        self.vpe, self.std, self.sv, self.s2, self.a, self.c, self.dbeta = vec
        self.ones_l = np.ones(L, dtype=dtype)
        self.ones_n = np.ones(N, dtype=dtype)
        self.keep, self.coef = 1.0, np.zeros((2, 1), dtype=dtype)
        self.batch_stats = True

    def channel_sums(self, a: np.ndarray, out: np.ndarray) -> np.ndarray:
        """sum of ``a`` (N, C, L) over N and L, per channel, into ``out`` (C,)."""
        N, C, L = self.shape3
        np.matmul(a.reshape(N * C, L), self.ones_l, self.rows)
        return np.matmul(self.ones_n, self.rows.reshape(N, C), out)


class _BNFast:
    """BatchNorm's work arrays on the compiled path, for inputs viewed as (N, C)
    or (N, C, L): the kernels keep no centred copy; backward reads the input
    again."""

    def __init__(self, shape: tuple[int, ...], D: int, dtype: np.dtype) -> None:
        self.y, self.dx = np.empty(shape, dtype=dtype), np.empty(shape, dtype=dtype)
        self.stats = np.empty((2, D), dtype=dtype)  # batch mean, biased batch variance
        self.sv = np.empty(D, dtype=dtype)
        # gamma = 1 and beta = 0, and gradients nobody reads, without the affine map
        self.ones, self.zeros = np.ones(D, dtype=dtype), np.zeros(D, dtype=dtype)
        self.dgamma, self.dbeta = np.empty(D, dtype=dtype), np.empty(D, dtype=dtype)
        self.keep = self.c_mean = self.c_var = None  # fixed running-update coefficients
        self.x: np.ndarray | None = None
        self.relu, self.batch_stats = False, True


class BatchNorm(_RunningStats, Layer):
    """Batch normalization per channel, over the batch and every spatial axis,
    with PyTorch's BatchNorm1d/BatchNorm2d semantics.

    x: (N, C) or (N, C, *spatial) -> y of the same shape. Train mode
    normalizes with the batch mean and the biased batch variance over the
    M = N x L values of each channel, and updates ``running = (1 - momentum) *
    running + momentum * batch`` with the *unbiased* variance (times M / (M -
    1)) stored in ``running_var``; ``momentum=None`` makes that a cumulative
    average. Eval mode uses the running statistics (the batch's when
    ``track_running_stats=False``). Buffers start at mean 0, variance 1.

    ``convention="book"`` follows "Deep Learning from Scratch" instead: the
    *biased* batch variance goes into ``running_var``, and both buffers start
    at 0 (its momentum 0.9 is ``momentum=0.1`` here; its eps is 1e-6).

    ``ghost_batch=g`` (ghost batch norm; what K data-parallel devices compute
    without synchronizing BN): in train mode the batch is split into N / g
    groups of g consecutive samples, each normalized by its own statistics;
    the running statistics move toward the average over the groups of their
    means and (unbiased) variances, as averaging the K devices' buffers would.

    ``renorm=Renorm(...)``: batch renormalization in train mode (see
    ``_forward_renorm``). Its running sigma is kept as ``running_var = sigma**2
    - eps``, so that eval mode, BN folding and model files, which all divide
    by sqrt(running_var + eps), divide by sigma itself (``running_std``).
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
        ghost_batch: int | None = None,
        renorm: Renorm | None = None,
        dtype: np.dtype | type = np.float32,
    ) -> None:
        super().__init__()
        _check_sizes("BatchNorm", eps, D=D)
        if convention not in CONVENTIONS:
            raise ValueError(f"BatchNorm: convention={convention!r} must be one of "
                             f"{', '.join(CONVENTIONS)}")
        _check_momentum("BatchNorm", momentum)
        if ghost_batch is not None and not ghost_batch >= 1:
            raise ValueError(f"BatchNorm: ghost_batch={ghost_batch} must be >= 1 or None")
        if renorm is not None and not (isinstance(renorm, Renorm) and track_running_stats):
            raise ValueError(f"BatchNorm: renorm={renorm!r} needs a Renorm and "
                             "track_running_stats=True (it corrects toward the running statistics)")
        self.convention, self.ghost_batch, self.renorm = convention, ghost_batch, renorm
        self.D, self.momentum, self.eps = D, momentum, eps
        self.affine, self.track_running_stats = affine, track_running_stats
        _affine_params(self, D, affine, dtype)
        if track_running_stats:
            self._init_running(D, dtype, 1.0 if convention == "pytorch" else 0.0)
        self._w: _BNWork | _BNWorkND | None = None  # the last forward's work arrays

    @staticmethod
    def reduce_axes(ndim: int) -> tuple[int, ...]:
        return (0, *range(2, ndim))

    @property
    def running_std(self) -> np.ndarray:
        """sqrt(running_var + eps) per channel, float64 (C,): what eval mode
        divides by; batch renorm's running sigma."""
        return np.sqrt(self._running[1].astype(np.float64) + self.eps)

    def _make_work(self, x: np.ndarray) -> _BNWork | _BNWorkND:
        if x.ndim == 2:
            w = _BNWork(x.shape[0], self.D, x.dtype)
        else:
            w = _BNWorkND(x.shape, x.dtype)
        M = x.size // self.D
        if self.momentum is not None and M > 1:  # fixed running-update coefficients
            w.keep, w.coef = self._running_coef(self.momentum, M, x.dtype)
        return w

    def _running_coef(self, f: float, M: int, dtype) -> tuple[float, np.ndarray]:
        """running = keep * running + coef * [batch mean, batch var], row by row:
        PyTorch stores the unbiased batch variance, the book the biased one."""
        unbias = M / (M - 1) if self.convention == "pytorch" else 1.0
        return 1.0 - f, np.array([[f], [f * unbias]], dtype=dtype)

    def _check_input(self, x: np.ndarray, train: bool) -> None:
        _check_channels(self, x)
        if train and x.size // self.D < 2:
            raise ValueError(
                "BatchNorm: training needs at least 2 values per channel (batch size x "
                f"spatial size; got input of shape {tuple(x.shape)}); with one, every "
                "output is beta and every gradient zero"
            )

    def _compiled(self, x: np.ndarray, train: bool) -> bool:
        """Whether the compiled kernels take this input: contiguous, plain BN."""
        return (self.kernels is not None and x.flags.c_contiguous
                and not (train and (self.ghost_batch is not None or self.renorm is not None)))

    def forward_relu(self, x: np.ndarray, train: bool, relu: Layer) -> np.ndarray:
        """``relu.forward(self.forward(x, train))``, as one fused kernel where the
        compiled kernels take the input (same numbers as the two calls)."""
        self._check_input(x, train)
        if self._compiled(x, train):
            return self._forward_compiled(x, train, True)
        return relu.forward(self.forward(x, train), train)

    def backward_relu(self, dy: np.ndarray, relu: Layer) -> np.ndarray:
        """The backward pass of ``forward_relu``."""
        w = self._need_cache("_w")
        if isinstance(w, _BNFast) and w.relu:
            return self._backward_compiled(dy, w)
        return self.backward(relu.backward(dy))

    def _forward_compiled(self, x: np.ndarray, train: bool, relu: bool) -> np.ndarray:
        K = self.kernels
        key = ("compiled", x.shape, x.dtype)
        w = self._work.get(key)
        M = x.size // self.D  # values per channel
        if w is None:
            view = x.shape if x.ndim == 2 else (x.shape[0], self.D, M // x.shape[0])
            w = self._work[key] = _BNFast(view, self.D, x.dtype)
            w.keep, w.c_mean, w.c_var = self._compiled_coef(  # momentum None: set per step
                1.0 if self.momentum is None else self.momentum, max(M, 2), x.dtype)
        nd = x.ndim > 2
        xv = x.reshape(w.y.shape) if nd else x
        gamma = self.params["gamma"] if self.affine else w.ones
        beta = self.params["beta"] if self.affine else w.zeros
        use_batch = train or not self.track_running_stats
        if use_batch:
            update = train and self.track_running_stats
            coef = w.keep, w.c_mean, w.c_var
            if update:
                count = self._count()
                if self.momentum is None:
                    coef = self._compiled_coef(1.0 / count, M, x.dtype)
            running = self._running if update else w.stats  # w.stats: a stand-in, unused
            (K.bn_nd_train_forward if nd else K.bn_train_forward)(
                xv, gamma, beta, self.eps, relu, w.stats, w.sv, w.y, update, running, *coef)
        else:
            (K.bn_nd_eval_forward if nd else K.bn_eval_forward)(
                xv, self._running[0], self._running[1], gamma, beta, self.eps, relu, w.sv, w.y)
        w.x, w.relu, w.batch_stats = xv, relu, use_batch
        self._w = w
        return w.y.reshape(x.shape) if nd else w.y

    def _compiled_coef(self, f: float, M: int, dtype) -> tuple:
        """``_running_coef`` as scalars of the buffers' dtype (NumPy's arithmetic)."""
        keep, coef = self._running_coef(f, M, dtype)
        return np.dtype(dtype).type(keep), coef[0, 0], coef[1, 0]

    def _backward_compiled(self, dy: np.ndarray, w: _BNFast) -> np.ndarray:
        dgamma = self.grads["gamma"] if self.affine else w.dgamma
        dbeta = self.grads["beta"] if self.affine else w.dbeta
        if w.batch_stats:
            mean, var = w.stats[0], w.stats[1]
        else:
            mean, var = self._running[0], self._running[1]
        beta = self.params["beta"] if self.affine else w.zeros
        nd = w.dx.ndim > 2
        kernel = self.kernels.bn_nd_backward if nd else self.kernels.bn_backward
        kernel(np.ascontiguousarray(dy).reshape(w.dx.shape), w.x, w.relu, w.batch_stats, mean,
               var, beta, self.eps, w.sv, dgamma, dbeta, w.dx)
        return w.dx.reshape(dy.shape) if nd else w.dx

    def forward(self, x: np.ndarray, train: bool) -> np.ndarray:
        self._check_input(x, train)
        if self._compiled(x, train):
            return self._forward_compiled(x, train, False)
        use_batch = train or not self.track_running_stats
        if train and self.ghost_batch is not None:
            return self._forward_ghost(x)
        if train and self.renorm is not None:
            return self._forward_renorm(x)
        w = self._plan(x)
        if x.ndim == 2:
            self._forward_2d(x, w, use_batch)
        else:
            self._forward_nd(x, w, use_batch)
        if train and self.track_running_stats:
            self._update_running(w, x.size // self.D)
        w.batch_stats = use_batch
        self._w = w
        return w.y if x.ndim == 2 else w.y.reshape(x.shape)

    def _forward_2d(self, x: np.ndarray, w: _BNWork, use_batch: bool) -> None:
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
        self._scale(w)
        # sv tiled to (N, D) once: forward and backward both multiply by it, and
        # same-shape multiplies are about twice as fast as broadcasting ones.
        np.copyto(w.scale, w.sv)
        np.multiply(xc, w.scale, y)
        if self.affine:
            np.add(y, self.params["beta"], y)

    def _forward_nd(self, x: np.ndarray, w: _BNWorkND, use_batch: bool) -> None:
        x3, xc, y = x.reshape(w.shape3), w.xc, w.y
        if use_batch:
            stats = w.stats
            w.channel_sums(x3, stats[0])
            np.multiply(stats[0], 1.0 / w.M, stats[0])
            np.subtract(x3, stats[0][:, None], xc)
            np.multiply(xc, xc, y)
            w.channel_sums(y, stats[1])
            np.multiply(stats[1], 1.0 / w.M, stats[1])
            np.add(stats[1], self.eps, w.vpe)
        else:
            np.subtract(x3, self._running[0][:, None], xc)
            np.add(self._running[1], self.eps, w.vpe)
        self._scale(w)
        np.multiply(xc, w.sv[:, None], y)
        if self.affine:
            np.add(y, self.params["beta"][:, None], y)

    def _scale(self, w) -> None:
        """std = sqrt(var + eps) and sv = gamma / std, per channel."""
        np.sqrt(w.vpe, w.std)
        if self.affine:
            np.divide(self.params["gamma"], w.std, w.sv)
        else:
            np.divide(1.0, w.std, w.sv)

    def _update_running(self, w, M: int) -> None:
        """running = (1 - f) * running + f * batch, both rows at once (the batch
        statistics in ``w.stats`` are consumed)."""
        count = self._count()
        if self.momentum is None:  # cumulative average
            keep, coef = self._running_coef(1.0 / count, M, w.stats.dtype)
        else:
            keep, coef = w.keep, w.coef
        np.multiply(self._running, keep, self._running)
        np.multiply(w.stats, coef, w.stats)
        np.add(self._running, w.stats, self._running)

    def _move_running(self, mean: np.ndarray, var: np.ndarray, M: int) -> None:
        """The running update of the plain-array paths (ghost batches, renorm):
        as ``_update_running``, from a batch mean and biased variance over M
        values per channel (unbiased by M / (M - 1) in PyTorch's convention)."""
        count = self._count()
        f = 1.0 / count if self.momentum is None else self.momentum
        unbias = M / (M - 1) if self.convention == "pytorch" else 1.0
        self._running *= 1.0 - f
        self._running += (f * np.stack([mean, var * unbias])).astype(self._running.dtype)

    def _forward_ghost(self, x: np.ndarray) -> np.ndarray:
        """Train mode with ghost batches: x viewed as (K, g, C, L), statistics
        per group over (g, L). Plain array code: clarity over speed here."""
        N, C = x.shape[:2]
        g = self.ghost_batch
        if N % g:
            raise ValueError(f"BatchNorm: a batch of {N} does not split into ghost batches of "
                             f"{g}")
        K, L = N // g, x.size // (N * C)
        M = g * L
        if M < 2:
            raise ValueError("BatchNorm: a ghost batch needs at least 2 values per channel")
        xk = x.reshape(K, g, C, L)
        mean = xk.mean(axis=(1, 3), keepdims=True)  # (K, 1, C, 1)
        xc = xk - mean
        var = (xc * xc).mean(axis=(1, 3), keepdims=True)  # biased, per group
        inv_std = 1.0 / np.sqrt(var + self.eps)
        xhat = xc * inv_std
        y = xhat
        if self.affine:
            y = xhat * self.params["gamma"][:, None] + self.params["beta"][:, None]
        if self.track_running_stats:
            self._move_running(mean.mean(axis=0).ravel(), var.mean(axis=0).ravel(), M)
        self._w = ("ghost", xhat, inv_std, x.shape)
        return y.reshape(x.shape).astype(x.dtype, copy=False)

    def _forward_renorm(self, x: np.ndarray) -> np.ndarray:
        """Batch renormalization (Ioffe 2017, Algorithm 1), train mode: y = gamma *
        (xhat * r + d) + beta with the batch's xhat, r = clip(sigma_B / sigma,
        1/rmax, rmax) and d = clip((mu_B - mu) / sigma, -dmax, dmax), sigma_B =
        sqrt(biased var + eps), from the running mu and sigma before this step; r
        and d are constants in the backward pass. The bounds follow
        ``Renorm.bounds`` (plain BN for the first bn_steps steps, r = 1, d = 0).
        Running: mu += f (mu_B - mu) and sigma += f (sigma_B - sigma), f the
        momentum; with running "variance" the variance moves as in plain BN."""
        rmax, dmax = self.renorm.bounds(int(self.buffers["num_batches_tracked"]))
        N, C = x.shape[:2]
        x3 = x.reshape(N, C, -1)
        M = x3.shape[0] * x3.shape[2]
        mean = x3.mean(axis=(0, 2))
        xc = x3 - mean[:, None]
        var = (xc * xc).mean(axis=(0, 2))
        std_b = np.sqrt(var + self.eps)
        run_std = self.running_std
        r = np.clip(std_b / run_std, 1.0 / rmax, rmax)
        d = np.clip((mean - self._running[0]) / run_std, -dmax, dmax)
        xhat = xc / std_b[:, None]
        z = xhat * r[:, None] + d[:, None]
        y = z
        if self.affine:
            y = z * self.params["gamma"][:, None] + self.params["beta"][:, None]
        if self.renorm.running == "sigma":
            self._move_running_sigma(mean, std_b, run_std)
        else:
            self._move_running(mean, var, M)
        self._w = ("renorm", xhat, 1.0 / std_b, r, z, x.shape)
        return y.reshape(x.shape).astype(x.dtype, copy=False)

    def _move_running_sigma(self, mean: np.ndarray, std_b: np.ndarray,
                            run_std: np.ndarray) -> None:
        """Batch renorm's running update of mu and sigma, in float64; sigma is
        stored as running_var = sigma**2 - eps (never below 0: rounding)."""
        count = self._count()
        f = 1.0 / count if self.momentum is None else self.momentum
        mu = self._running[0].astype(np.float64)
        mu += f * (mean - mu)
        sigma = run_std + f * (std_b - run_std)
        self._running[0] = mu
        self._running[1] = np.maximum(sigma * sigma - self.eps, 0.0)

    def _backward_renorm(self, dy: np.ndarray) -> np.ndarray:
        _, xhat, inv_std, r, z, shape = self._w
        N, C, L = xhat.shape
        dy3 = dy.reshape(N, C, L)
        if self.affine:
            self.grads["beta"][...] = dy3.sum(axis=(0, 2))
            self.grads["gamma"][...] = (dy3 * z).sum(axis=(0, 2))
            dxhat = dy3 * (self.params["gamma"] * r)[:, None]
        else:
            dxhat = dy3 * r[:, None]
        M = N * L
        s1 = dxhat.sum(axis=(0, 2))[:, None]
        s2 = (dxhat * xhat).sum(axis=(0, 2))[:, None]
        dx = (inv_std[:, None] / M) * (M * dxhat - s1 - xhat * s2)
        return dx.reshape(shape).astype(dy.dtype, copy=False)

    def _backward_ghost(self, dy: np.ndarray) -> np.ndarray:
        _, xhat, inv_std, shape = self._w
        K, g, C, L = xhat.shape
        dyk = dy.reshape(K, g, C, L)
        if self.affine:
            self.grads["beta"][...] = dyk.sum(axis=(0, 1, 3))
            self.grads["gamma"][...] = (dyk * xhat).sum(axis=(0, 1, 3))
            dxhat = dyk * self.params["gamma"][:, None]
        else:
            dxhat = dyk
        M = g * L
        s1 = dxhat.sum(axis=(1, 3), keepdims=True)
        s2 = (dxhat * xhat).sum(axis=(1, 3), keepdims=True)
        dx = (inv_std / M) * (M * dxhat - s1 - xhat * s2)
        return dx.reshape(shape).astype(dy.dtype, copy=False)

    def backward(self, dy: np.ndarray) -> np.ndarray:
        w = self._need_cache("_w")
        if isinstance(w, _BNFast):
            return self._backward_compiled(dy, w)
        if isinstance(w, tuple):
            return self._backward_ghost(dy) if w[0] == "ghost" else self._backward_renorm(dy)
        if isinstance(w, _BNWorkND):
            return self._backward_nd(dy, w).reshape(dy.shape)
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

    def _backward_nd(self, dy: np.ndarray, w: _BNWorkND) -> np.ndarray:
        """As the 2-D backward, with sums over the M = N x L values per channel."""
        dy3 = dy.reshape(w.shape3)
        dbeta = self.grads["beta"] if self.affine else w.dbeta
        w.channel_sums(dy3, dbeta)
        np.multiply(dy3, w.xc, w.tmp)
        w.channel_sums(w.tmp, w.s2)
        if self.affine:
            np.divide(w.s2, w.std, self.grads["gamma"])
        dx = w.dx
        np.multiply(dy3, w.sv[:, None], dx)
        if not w.batch_stats:
            return dx
        a, c = w.a, w.c
        np.multiply(w.s2, w.sv, a)
        np.divide(a, w.vpe, a)
        np.multiply(a, -1.0 / w.M, a)
        np.multiply(dbeta, w.sv, c)
        np.multiply(c, -1.0 / w.M, c)
        np.multiply(w.xc, a[:, None], w.tmp)
        np.add(dx, w.tmp, dx)
        return np.add(dx, c[:, None], dx)

    def __repr__(self) -> str:
        return (
            f"BatchNorm({self.D}, momentum={self.momentum}, eps={self.eps}, "
            f"affine={self.affine}, track_running_stats={self.track_running_stats}, "
            f"convention={self.convention!r}"
            + (f", ghost_batch={self.ghost_batch})" if self.ghost_batch is not None else ")")
        )


# --- per-sample norms -------------------------------------------------------------

class _RowNorm(Layer):
    """Shared machinery of LayerNorm, GroupNorm and InstanceNorm: per-sample
    statistics over ``G`` groups of ``D // G`` consecutive channels (and every
    spatial position), the same in train and eval mode, then a per-channel
    affine map."""

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

    def reduce_axes(self, ndim: int) -> tuple[int, ...]:
        """The axes one statistic runs over (for G > 1: within a group of channels)."""
        return tuple(range(1 if self.G < self.D else 2, ndim))

    def _normalize(self, x: np.ndarray) -> np.ndarray:
        """xhat = (x - mean) / sqrt(var + eps) per (sample, group): (N*G, K) rows."""
        N = x.shape[0]
        K = x.size // (N * self.G)
        xhat = self._buf("xhat", x.shape, x.dtype)
        xg = x.reshape(N * self.G, K)  # one row per (sample, group)
        hg = xhat.reshape(N * self.G, K)
        mean = xg.mean(axis=1, keepdims=True)  # (N*G, 1)
        np.subtract(xg, mean, out=hg)
        var = np.einsum("rk,rk->r", hg, hg)[:, None] / K  # biased, (N*G, 1)
        inv_std = 1.0 / np.sqrt(var + self.eps)
        np.multiply(hg, inv_std, out=hg)
        self._xhat, self._inv_std = xhat, inv_std
        self._batch_stats = True
        return xhat, mean, var

    def _affine(self, xhat: np.ndarray) -> np.ndarray:
        if not self.affine:
            return xhat
        y = self._buf("y", xhat.shape, xhat.dtype)
        if xhat.ndim == 2:
            np.multiply(xhat, self.params["gamma"], out=y)
            return np.add(y, self.params["beta"], out=y)
        N, C = xhat.shape[:2]
        y3, h3 = y.reshape(N, C, -1), xhat.reshape(N, C, -1)
        np.multiply(h3, self.params["gamma"][:, None], out=y3)
        np.add(y3, self.params["beta"][:, None], out=y3)
        return y

    def forward(self, x: np.ndarray, train: bool) -> np.ndarray:
        _check_channels(self, x)
        xhat, _, _ = self._normalize(x)
        return self._affine(xhat)

    def _dxhat(self, dy: np.ndarray, xhat: np.ndarray) -> np.ndarray:
        """Fill the affine grads; return dL/dxhat."""
        dxhat = self._buf("dxhat", xhat.shape, dy.dtype)
        if not self.affine:
            dxhat[...] = dy
            return dxhat
        if xhat.ndim == 2:
            np.sum(dy, axis=0, out=self.grads["beta"])
            self.grads["gamma"][...] = np.einsum("nd,nd->d", dy, xhat)
            np.multiply(dy, self.params["gamma"], out=dxhat)
            return dxhat
        N, C = xhat.shape[:2]
        dy3, h3 = dy.reshape(N, C, -1), xhat.reshape(N, C, -1)
        np.sum(dy3, axis=(0, 2), out=self.grads["beta"])
        self.grads["gamma"][...] = np.einsum("ncl,ncl->c", dy3, h3)
        np.multiply(dy3, self.params["gamma"][:, None], out=dxhat.reshape(N, C, -1))
        return dxhat

    def backward(self, dy: np.ndarray) -> np.ndarray:
        xhat = self._need_cache("_xhat")
        dxhat = self._dxhat(dy, xhat)
        if not self._batch_stats:  # eval with running statistics: constants
            dx = self._buf("dx", xhat.shape, dy.dtype)
            N, C = xhat.shape[:2]
            return np.multiply(dxhat.reshape(N, C, -1), self._inv_std[:, None],
                               out=dx.reshape(N, C, -1)).reshape(xhat.shape)
        N = xhat.shape[0]
        K = xhat.size // (N * self.G)
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
    """Layer normalization: per-sample mean and biased variance over all
    channels (and spatial positions), the same in train and eval mode;
    per-channel gamma and beta. x: (N, C, ...) -> y of the same shape."""

    def __init__(
        self, D: int, eps: float = 1e-5, affine: bool = True, *, dtype=np.float32
    ) -> None:
        super().__init__(D, 1, eps, affine, dtype)

    def __repr__(self) -> str:
        return f"LayerNorm({self.D}, eps={self.eps}, affine={self.affine})"


class GroupNorm(_RowNorm):
    """Group normalization: per-sample statistics over ``groups`` groups of
    ``D // groups`` consecutive channels and every spatial position (PyTorch's
    GroupNorm); gamma and beta are per channel. x: (N, C, ...) -> same shape."""

    def __init__(
        self, D: int, groups: int, eps: float = 1e-5, affine: bool = True, *, dtype=np.float32
    ) -> None:
        super().__init__(D, groups, eps, affine, dtype)

    def __repr__(self) -> str:
        return f"GroupNorm({self.D}, groups={self.G}, eps={self.eps}, affine={self.affine})"


class InstanceNorm(_RunningStats, _RowNorm):
    """Instance normalization: per sample and channel, over the spatial axes
    (PyTorch's InstanceNorm1d/2d). x: (N, C, L) or (N, C, H, W).

    PyTorch's defaults: no affine map and no running statistics, so train and
    eval mode agree. With ``track_running_stats`` train mode also updates
    running mean and variance with the batch averages of the per-instance mean
    and unbiased variance, and eval mode normalizes with them. As in PyTorch,
    ``num_batches_tracked`` stays 0 and ``momentum=None`` leaves the running
    statistics where they started (PyTorch passes a momentum of 0 then, not
    BatchNorm's cumulative average)."""

    def __init__(
        self,
        D: int,
        eps: float = 1e-5,
        momentum: float | None = 0.1,
        affine: bool = False,
        track_running_stats: bool = False,
        *,
        dtype=np.float32,
    ) -> None:
        super().__init__(D, D, eps, affine, dtype)
        _check_momentum("InstanceNorm", momentum)
        self.momentum, self.track_running_stats = momentum, track_running_stats
        if track_running_stats:
            self._init_running(D, dtype, 1.0)

    def forward(self, x: np.ndarray, train: bool) -> np.ndarray:
        _check_channels(self, x, min_ndim=3)
        N, C = x.shape[:2]
        L = x.size // (N * C)
        if train and L < 2:
            raise ValueError(f"InstanceNorm: training needs more than one spatial position "
                             f"(got input of shape {tuple(x.shape)})")
        if train or not self.track_running_stats:
            xhat, mean, var = self._normalize(x)
            if train and self.track_running_stats:
                self._update_running(mean.reshape(N, C), var.reshape(N, C) * (L / (L - 1)))
            return self._affine(xhat)
        # eval with running statistics: (x - running_mean) / sqrt(running_var + eps)
        xhat = self._buf("xhat", x.shape, x.dtype)
        h3 = xhat.reshape(N, C, L)
        np.subtract(x.reshape(N, C, L), self._running[0][:, None], out=h3)
        inv_std = 1.0 / np.sqrt(self._running[1] + self.eps)
        np.multiply(h3, inv_std[:, None], out=h3)
        self._xhat, self._inv_std, self._batch_stats = xhat, inv_std, False
        return self._affine(xhat)

    def _update_running(self, mean: np.ndarray, var_unbiased: np.ndarray) -> None:
        f = 0.0 if self.momentum is None else self.momentum
        batch = np.stack([mean.mean(axis=0), var_unbiased.mean(axis=0)])
        self._running *= 1.0 - f
        self._running += f * batch.astype(self._running.dtype)

    def __repr__(self) -> str:
        return (f"InstanceNorm({self.D}, eps={self.eps}, momentum={self.momentum}, "
                f"affine={self.affine}, track_running_stats={self.track_running_stats})")


class WeightNorm(Layer):
    """Weight normalization (Salimans & Kingma 2016) of a Linear or Conv2d:
    its weight is ``g * v / ||v||`` per output unit or channel, trained as
    ``v`` and ``g``, as ``torch.nn.utils.parametrizations.weight_norm`` does
    (norm over every weight axis but the output one; ``g`` starts at
    ``||v||``, so the layer starts as the plain one). The bias stays as it is.
    x and y as the wrapped layer's."""

    def __init__(self, inner: Layer) -> None:
        super().__init__()
        W = inner.params["W"]
        self.inner, self.out_axis = inner, (1 if W.ndim == 2 else 0)  # Linear W: (in, out)
        self._sum_axes = tuple(a for a in range(W.ndim) if a != self.out_axis)
        self.params["v"] = W.copy()
        self.params["g"] = self._norm(W)
        self.grads["v"] = np.zeros_like(W)
        self.grads["g"] = np.zeros_like(self.params["g"])
        if "b" in inner.params:
            self.params["b"] = inner.params["b"]
            self.grads["b"] = np.zeros_like(inner.params["b"])
        self.input_grad = True
        self._n: np.ndarray | None = None

    def _norm(self, v: np.ndarray) -> np.ndarray:
        return np.sqrt(np.sum(v * v, axis=self._sum_axes))

    def _per_unit(self, a: np.ndarray) -> np.ndarray:
        """A (out,) vector shaped to broadcast along the weight's output axis."""
        shape = [1] * self.params["v"].ndim
        shape[self.out_axis] = -1
        return a.reshape(shape)

    @property
    def weight(self) -> np.ndarray:
        """The effective weight g * v / ||v||."""
        v = self.params["v"]
        return v * self._per_unit(self.params["g"] / self._norm(v))

    def forward(self, x: np.ndarray, train: bool) -> np.ndarray:
        v = self.params["v"]
        self._n = self._norm(v)
        self.inner.params["W"][...] = v * self._per_unit(self.params["g"] / self._n)
        if "b" in self.params:
            self.inner.params["b"] = self.params["b"]  # the optimizer may have rebound it
        self.inner.input_grad = self.input_grad
        return self.inner.forward(x, train)

    def backward(self, dy: np.ndarray) -> np.ndarray | None:
        n = self._need_cache("_n")
        dx = self.inner.backward(dy)
        dW, v, g = self.inner.grads["W"], self.params["v"], self.params["g"]
        # W = g v / n: dg = sum(dW * v) / n; dv = (g / n) * (dW - dg * v / n)
        dg = np.sum(dW * v, axis=self._sum_axes) / n
        self.grads["g"][...] = dg
        self.grads["v"][...] = self._per_unit(g / n) * (dW - self._per_unit(dg / n) * v)
        if "b" in self.params:
            self.grads["b"][...] = self.inner.grads["b"]
        return dx

    def replica(self) -> Layer:
        twin = super().replica()
        twin.inner = self.inner.replica()
        twin.inner.params = dict(self.inner.params)
        twin.inner.params["W"] = self.inner.params["W"].copy()
        return twin

    def __repr__(self) -> str:
        return f"WeightNorm({self.inner!r})"
