"""Batch normalization, with PyTorch's semantics, and its variants as options
of the one layer: ghost batches (statistics per group of samples) and batch
renormalization (Ioffe 2017).

How a forward pass runs is a *path*, an object that holds its work arrays
and its cache and knows its own backward pass; the layer picks one per call
and keeps it for ``backward``:

    _Reference   plain array code for every form: K ghost groups (K = 1 is
                 plain BN) and batch renorm. The statement of what BN computes.
    _Rows        plain BN on (N, C) through BLAS products, reused work arrays
    _Channels    the same on (N, C, *spatial), viewed as (N, C, L)
    _Compiled    the numba kernels (``train.kernels: numba``), optionally fused
                 with the ReLU that follows

``_Rows`` and ``_Channels`` are the reference's arithmetic rearranged for
speed (tests/test_ghost_bn.py holds them to it: one ghost group is plain BN),
and ``_Compiled`` is held to them (tests/test_kernels.py); the running
statistics move by the rule in ``running`` on every path.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np

from ...choices import CONVENTIONS, RENORM_RUNNING
from .. import fields
from ..layers import Layer
from . import running as rule
from .common import (
    Described,
    affine_params,
    check_channels,
    check_momentum,
    check_sizes,
)

__all__ = ["BatchNorm", "Renorm"]


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

    @classmethod
    def from_config(cls, norm) -> Renorm | None:
        """The settings a config's norm section gives (None without ``renorm``)."""
        if not norm.renorm:
            return None
        return cls(norm.rmax, norm.dmax, norm.renorm_warmup, norm.renorm_bn_steps,
                   norm.renorm_running)

    @classmethod
    def from_file(cls, value: dict | list | None) -> Renorm | None:
        """A model file's settings. Files from before the plain-BN phase and the
        running sigma hold [rmax, dmax, warm-up]: their layers averaged the
        variance and ramped from step 0."""
        if not value:
            return None
        if isinstance(value, list):
            rmax, dmax, warmup = value
            return cls(rmax, dmax, warmup, bn_steps=0, running="variance")
        return cls(**value)

    @classmethod
    def check_file_value(cls, value) -> str | None:
        """``fields``-style check of a model file's value."""
        try:
            cls.from_file(value)
        except (TypeError, ValueError):
            return ("null or batch renorm's settings {rmax >= 1, dmax >= 0, warmup >= 0, "
                    f"bn_steps >= 0, running: {' or '.join(RENORM_RUNNING)}}}")
        return None

    def bounds(self, step: int) -> tuple[float, float]:
        """(rmax, dmax) at training step ``step``, counted from 0."""
        if step < self.bn_steps:
            return 1.0, 0.0
        ramp = min(1.0, (step - self.bn_steps) / self.warmup) if self.warmup else 1.0
        return 1.0 + (self.rmax - 1.0) * ramp, self.dmax * ramp


# --- the reference path --------------------------------------------------------------

@dataclass
class _Reference:
    """Train mode in plain array code: x viewed as (K, g, C, L), statistics per
    ghost group over (g, L) (K = 1: the whole batch); with batch renorm,
    z = xhat * r + d with r and d constants of the backward pass (z = xhat
    without). The cache: xhat, 1 / std per group, z, r, the input's shape."""

    xhat: np.ndarray  # (K, g, C, L)
    inv_std: np.ndarray  # (K, 1, C, 1)
    z: np.ndarray  # (K, g, C, L): what gamma multiplies
    r: np.ndarray | None  # (C,) batch renorm's r, or None
    shape: tuple[int, ...]
    relu = False

    @classmethod
    def forward(cls, bn: BatchNorm, x: np.ndarray) -> tuple[_Reference, np.ndarray]:
        N, C = x.shape[:2]
        g = bn.ghost_batch or N
        if N % g:
            raise ValueError(f"BatchNorm: a batch of {N} does not split into ghost batches of "
                             f"{g}")
        K, L = N // g, x.size // (N * C)
        if g * L < 2:
            raise ValueError("BatchNorm: a ghost batch needs at least 2 values per channel")
        renorm = bn.renorm if bn.ghost_batch is None else None
        xk = x.reshape(K, g, C, L)
        mean = xk.mean(axis=(1, 3), keepdims=True)  # (K, 1, C, 1)
        xc = xk - mean
        var = (xc * xc).mean(axis=(1, 3), keepdims=True)  # biased, per group
        if renorm is None:
            inv_std = 1.0 / np.sqrt(var + bn.eps)
            xhat = z = xc * inv_std
            r = None
            if bn.track_running_stats:
                bn.move_running(mean.mean(axis=0).ravel(), var.mean(axis=0).ravel(), g * L)
        else:
            std_b = np.sqrt(var + bn.eps)
            inv_std = 1.0 / std_b
            xhat = xc / std_b
            r, d = bn.renorm_rd(mean.ravel(), std_b.ravel(), renorm)
            z = xhat * r[:, None] + d[:, None]
            bn.move_running_renorm(mean.ravel(), var.ravel(), std_b.ravel(), g * L)
        y = z
        if bn.affine:
            y = z * bn.params["gamma"][:, None] + bn.params["beta"][:, None]
        return cls(xhat, inv_std, z, r, x.shape), y.reshape(x.shape).astype(x.dtype, copy=False)

    def backward(self, bn: BatchNorm, dy: np.ndarray) -> np.ndarray:
        K, g, C, L = self.xhat.shape
        dyk = dy.reshape(K, g, C, L)
        scale = None if self.r is None else self.r
        if bn.affine:
            bn.grads["beta"][...] = dyk.sum(axis=(0, 1, 3))
            bn.grads["gamma"][...] = (dyk * self.z).sum(axis=(0, 1, 3))
            scale = bn.params["gamma"] if scale is None else bn.params["gamma"] * scale
        dxhat = dyk if scale is None else dyk * scale[:, None]
        M = g * L
        s1 = dxhat.sum(axis=(1, 3), keepdims=True)
        s2 = (dxhat * self.xhat).sum(axis=(1, 3), keepdims=True)
        dx = (self.inv_std / M) * (M * dxhat - s1 - self.xhat * s2)
        return dx.reshape(self.shape).astype(dy.dtype, copy=False)


# --- the fast NumPy paths ------------------------------------------------------------

class _Rows:
    """Plain BN on (N, C) rows: work arrays made once per batch size and dtype
    and reused by every step (attribute access beats keyed lookups per call);
    column sums and means are BLAS matrix-vector products."""

    relu = False

    def __init__(self, bn: BatchNorm, x: np.ndarray) -> None:
        N, D, dtype = x.shape[0], bn.D, x.dtype
        full = [np.empty((N, D), dtype=dtype) for _ in range(5)]
        self.xc, self.y, self.scale, self.tmp, self.dx = full  # xc = x - mean, scale = sv tiled
        self.stats = np.empty((2, D), dtype=dtype)  # batch mean, biased batch variance
        vec = [np.empty(D, dtype=dtype) for _ in range(7)]
        self.vpe, self.std, self.sv, self.s2, self.a, self.c, self.dbeta = vec
        self.avg = np.full(N, 1.0 / N, dtype=dtype)  # avg @ x: column means
        self.ones = np.ones(N, dtype=dtype)  # ones @ x: column sums
        self.M = N
        self.keep, self.coef = bn.fixed_coefficients(N, dtype)
        self.batch_stats = True

    def sums(self, a: np.ndarray, out: np.ndarray) -> np.ndarray:
        """Column sums of ``a`` (N, C) into ``out`` (C,)."""
        return np.matmul(self.ones, a, out)

    def per_channel(self, v: np.ndarray) -> np.ndarray:
        return v

    def forward(self, bn: BatchNorm, x: np.ndarray, use_batch: bool) -> np.ndarray:
        xc, y = self.xc, self.y
        if use_batch:
            stats = self.stats  # rows: batch mean, biased batch variance
            np.matmul(self.avg, x, stats[0])  # column means through BLAS
            np.subtract(x, stats[0], xc)
            # Two-pass (centred) variance, no cancellation; the square goes through y.
            np.multiply(xc, xc, y)
            np.matmul(self.avg, y, stats[1])
            np.add(stats[1], bn.eps, self.vpe)
        else:
            np.subtract(x, bn.running[0], xc)
            np.add(bn.running[1], bn.eps, self.vpe)
        bn.scale(self)
        # sv tiled to (N, D) once: forward and backward both multiply by it, and
        # same-shape multiplies are about twice as fast as broadcasting ones.
        np.copyto(self.scale, self.sv)
        np.multiply(xc, self.scale, y)
        if bn.affine:
            np.add(y, bn.params["beta"], y)
        return y

    def backward(self, bn: BatchNorm, dy: np.ndarray) -> np.ndarray:
        dbeta = bn.grads["beta"] if bn.affine else self.dbeta
        np.matmul(self.ones, dy, dbeta)  # sum(dy), (D,)
        np.multiply(dy, self.xc, self.tmp)
        np.matmul(self.ones, self.tmp, self.s2)  # sum(dy * xc) = std * sum(dy * xhat)
        if bn.affine:
            np.divide(self.s2, self.std, bn.grads["gamma"])
        dx = self.dx
        np.multiply(dy, self.scale, dx)
        if not self.batch_stats:  # statistics are constants in eval mode
            return dx
        return self.add_batch_terms(dx, dbeta)

    def add_batch_terms(self, dx: np.ndarray, dbeta: np.ndarray) -> np.ndarray:
        """The reference's compact form dx = (sv / M) * (M*dy - sum(dy) - xhat *
        sum(dy*xhat)), sv = gamma / std, expanded over xc = xhat * std into
        per-channel terms: dx = sv * dy + a * xc + c, with
        a = -sv * sum(dy*xc) / (M * (var + eps)) and c = -sv * sum(dy) / M."""
        a, c = self.a, self.c
        np.multiply(self.s2, self.sv, a)
        np.divide(a, self.vpe, a)
        np.multiply(a, -1.0 / self.M, a)
        np.multiply(dbeta, self.sv, c)
        np.multiply(c, -1.0 / self.M, c)
        np.multiply(self.xc, self.per_channel(a), self.tmp)
        np.add(dx, self.tmp, dx)
        return np.add(dx, self.per_channel(c), dx)


class _Channels(_Rows):
    """Plain BN on (N, C, L) inputs: per-channel sums are two BLAS
    matrix-vector products, one over L (per sample and channel), one over N."""

    def __init__(self, bn: BatchNorm, x: np.ndarray) -> None:
        N, C, dtype = x.shape[0], bn.D, x.dtype
        L = math.prod(x.shape[2:])
        self.shape3, self.M = (N, C, L), N * L  # M: values per channel
        full = [np.empty((N, C, L), dtype=dtype) for _ in range(4)]
        self.xc, self.y, self.tmp, self.dx = full
        self.stats = np.empty((2, C), dtype=dtype)
        self.rows = np.empty(N * C, dtype=dtype)
        vec = [np.empty(C, dtype=dtype) for _ in range(7)]
        self.vpe, self.std, self.sv, self.s2, self.a, self.c, self.dbeta = vec
        self.ones_l = np.ones(L, dtype=dtype)
        self.ones_n = np.ones(N, dtype=dtype)
        self.keep, self.coef = bn.fixed_coefficients(self.M, dtype)
        self.batch_stats = True

    def sums(self, a: np.ndarray, out: np.ndarray) -> np.ndarray:
        """sum of ``a`` (N, C, L) over N and L, per channel, into ``out`` (C,)."""
        N, C, L = self.shape3
        np.matmul(a.reshape(N * C, L), self.ones_l, self.rows)
        return np.matmul(self.ones_n, self.rows.reshape(N, C), out)

    def per_channel(self, v: np.ndarray) -> np.ndarray:
        return v[:, None]

    def forward(self, bn: BatchNorm, x: np.ndarray, use_batch: bool) -> np.ndarray:
        x3, xc, y = x.reshape(self.shape3), self.xc, self.y
        if use_batch:
            stats = self.stats
            self.sums(x3, stats[0])
            np.multiply(stats[0], 1.0 / self.M, stats[0])
            np.subtract(x3, stats[0][:, None], xc)
            np.multiply(xc, xc, y)
            self.sums(y, stats[1])
            np.multiply(stats[1], 1.0 / self.M, stats[1])
            np.add(stats[1], bn.eps, self.vpe)
        else:
            np.subtract(x3, bn.running[0][:, None], xc)
            np.add(bn.running[1], bn.eps, self.vpe)
        bn.scale(self)
        np.multiply(xc, self.sv[:, None], y)
        if bn.affine:
            np.add(y, bn.params["beta"][:, None], y)
        return y.reshape(x.shape)

    def backward(self, bn: BatchNorm, dy: np.ndarray) -> np.ndarray:
        """As the rows' backward, with sums over the M = N x L values per channel."""
        dy3 = dy.reshape(self.shape3)
        dbeta = bn.grads["beta"] if bn.affine else self.dbeta
        self.sums(dy3, dbeta)
        np.multiply(dy3, self.xc, self.tmp)
        self.sums(self.tmp, self.s2)
        if bn.affine:
            np.divide(self.s2, self.std, bn.grads["gamma"])
        dx = self.dx
        np.multiply(dy3, self.sv[:, None], dx)
        if self.batch_stats:
            self.add_batch_terms(dx, dbeta)
        return dx.reshape(dy.shape)


# --- the compiled path ---------------------------------------------------------------

class _Compiled:
    """The numba kernels, for inputs viewed as (N, C) or (N, C, L), optionally
    fused with the ReLU after the norm; the kernels keep no centred copy, so
    backward reads the input again."""

    def __init__(self, bn: BatchNorm, x: np.ndarray) -> None:
        D, dtype = bn.D, x.dtype
        M = x.size // D  # values per channel
        shape = x.shape if x.ndim == 2 else (x.shape[0], D, M // x.shape[0])
        self.nd = x.ndim > 2
        self.y, self.dx = np.empty(shape, dtype=dtype), np.empty(shape, dtype=dtype)
        self.stats = np.empty((2, D), dtype=dtype)  # batch mean, biased batch variance
        self.sv = np.empty(D, dtype=dtype)
        # gamma = 1 and beta = 0, and gradients nobody reads, without the affine map
        self.ones, self.zeros = np.ones(D, dtype=dtype), np.zeros(D, dtype=dtype)
        self.dgamma, self.dbeta = np.empty(D, dtype=dtype), np.empty(D, dtype=dtype)
        self.M = M
        # fixed running-update coefficients (momentum None: made per step)
        self.coef = bn.scalar_coefficients(1.0 if bn.momentum is None else bn.momentum,
                                           max(M, 2), dtype)
        self.x: np.ndarray | None = None
        self.relu, self.batch_stats = False, True

    def forward(self, bn: BatchNorm, x: np.ndarray, train: bool, relu: bool) -> np.ndarray:
        K = bn.kernels
        xv = x.reshape(self.y.shape) if self.nd else x
        gamma = bn.params["gamma"] if bn.affine else self.ones
        beta = bn.params["beta"] if bn.affine else self.zeros
        use_batch = train or not bn.track_running_stats
        if use_batch:
            update = train and bn.track_running_stats
            coef = self.coef
            if update:
                count = bn.count()
                if bn.momentum is None:
                    coef = bn.scalar_coefficients(1.0 / count, self.M, x.dtype)
            target = bn.running if update else self.stats  # self.stats: a stand-in, unused
            (K.bn_nd_train_forward if self.nd else K.bn_train_forward)(
                xv, gamma, beta, bn.eps, relu, self.stats, self.sv, self.y, update, target,
                *coef)
        else:
            (K.bn_nd_eval_forward if self.nd else K.bn_eval_forward)(
                xv, bn.running[0], bn.running[1], gamma, beta, bn.eps, relu, self.sv, self.y)
        self.x, self.relu, self.batch_stats = xv, relu, use_batch
        return self.y.reshape(x.shape) if self.nd else self.y

    def backward(self, bn: BatchNorm, dy: np.ndarray) -> np.ndarray:
        dgamma = bn.grads["gamma"] if bn.affine else self.dgamma
        dbeta = bn.grads["beta"] if bn.affine else self.dbeta
        stats = self.stats if self.batch_stats else bn.running
        beta = bn.params["beta"] if bn.affine else self.zeros
        kernel = bn.kernels.bn_nd_backward if self.nd else bn.kernels.bn_backward
        kernel(np.ascontiguousarray(dy).reshape(self.dx.shape), self.x, self.relu,
               self.batch_stats, stats[0], stats[1], beta, bn.eps, self.sv, dgamma, dbeta,
               self.dx)
        return self.dx.reshape(dy.shape) if self.nd else self.dx


# --- the layer ----------------------------------------------------------------------

class BatchNorm(Described, rule.RunningStats, Layer):
    """Batch normalization per channel, over the batch and every spatial axis,
    with PyTorch's BatchNorm1d/BatchNorm2d semantics.

    x: (N, C) or (N, C, *spatial) -> y of the same shape. Train mode
    normalizes with the batch mean and the biased batch variance over the
    M = N x L values of each channel, and updates the running statistics by
    the rule in ``running`` (PyTorch: ``running = (1 - momentum) * running +
    momentum * batch``, the *unbiased* variance in ``running_var``;
    ``momentum=None`` makes that a cumulative average). Eval mode uses the
    running statistics (the batch's when ``track_running_stats=False``).
    Buffers start at mean 0, variance 1.

    ``convention="book"`` follows "Deep Learning from Scratch" instead: the
    *biased* batch variance goes into ``running_var``, and both buffers start
    at 0 (its momentum 0.9 is ``momentum=0.1`` here; its eps is 1e-6).

    ``ghost_batch=g`` (ghost batch norm; what K data-parallel devices compute
    without synchronizing BN): in train mode the batch is split into N / g
    groups of g consecutive samples, each normalized by its own statistics;
    the running statistics move toward the average over the groups of their
    means and (unbiased) variances, as averaging the K devices' buffers would.

    ``renorm=Renorm(...)``: batch renormalization in train mode (``renorm_rd``).
    Its running sigma is kept as ``running_var = sigma**2 - eps``, so that
    eval mode, BN folding and model files, which all divide by
    sqrt(running_var + eps), divide by sigma itself (``running_std``).
    Without ghost batches only (with them, the ghost groups decide).

    ``gamma_init``: gamma's starting value, 1 as in PyTorch; 0 starts every
    output at beta (Goyal et al. 2017's zero-init of a residual branch's last
    BN, so that each block starts as the identity).
    """

    # Its settings by name (see ``Described``): a new one is declared here, taken
    # by __init__ and kept as an attribute of its name, and a config's norm
    # section gets a field of that name; builders and model files follow.
    OPTIONS = {"momentum": (fields.momentum, False), "eps": (fields.nonnegative, False),
               "affine": (fields.flag, False), "track_running_stats": (fields.flag, False),
               "convention": (fields.convention, False),
               "ghost_batch": (fields.optional_size, True),
               "renorm": (Renorm.check_file_value, True),
               "gamma_init": (fields.nonnegative, True)}

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
        gamma_init: float = 1.0,
        dtype: np.dtype | type = np.float32,
    ) -> None:
        super().__init__()
        check_sizes("BatchNorm", eps, D=D)
        if convention not in CONVENTIONS:
            raise ValueError(f"BatchNorm: convention={convention!r} must be one of "
                             f"{', '.join(CONVENTIONS)}")
        check_momentum("BatchNorm", momentum)
        if ghost_batch is not None and not ghost_batch >= 1:
            raise ValueError(f"BatchNorm: ghost_batch={ghost_batch} must be >= 1 or None")
        if renorm is not None and not (isinstance(renorm, Renorm) and track_running_stats):
            raise ValueError(f"BatchNorm: renorm={renorm!r} needs a Renorm and "
                             "track_running_stats=True (it corrects toward the running statistics)")
        self.convention, self.ghost_batch, self.renorm = convention, ghost_batch, renorm
        self.D, self.momentum, self.eps = D, momentum, eps
        self.affine, self.track_running_stats = affine, track_running_stats
        if not gamma_init >= 0:
            raise ValueError(f"BatchNorm: gamma_init={gamma_init} must be >= 0")
        self.gamma_init = gamma_init
        affine_params(self, D, affine, dtype)
        if affine:
            self.params["gamma"].fill(gamma_init)
        if track_running_stats:
            self.init_running(D, dtype, 1.0 if convention == "pytorch" else 0.0)
        self._w = None  # the last forward's path: its work arrays and cache

    @staticmethod
    def reduce_axes(ndim: int) -> tuple[int, ...]:
        return (0, *range(2, ndim))

    @staticmethod
    def encode(key: str, value):
        return dataclasses.asdict(value) if key == "renorm" and value else value

    @staticmethod
    def decode(key: str, value):
        return Renorm.from_file(value) if key == "renorm" else value

    @classmethod
    def check_description(cls, d: dict) -> str | None:
        if Renorm.from_file(d.get("renorm")) and not d["track_running_stats"]:
            return "renorm needs track_running_stats true"
        return None

    @property
    def plain(self) -> bool:
        """Whether train mode is plain batch norm (no ghost batches, no renorm):
        what the fast paths and the compiled kernels compute."""
        return self.ghost_batch is None and self.renorm is None

    @property
    def running_std(self) -> np.ndarray:
        """sqrt(running_var + eps) per channel, float64 (C,): what eval mode
        divides by; batch renorm's running sigma."""
        return np.sqrt(self.running[1].astype(np.float64) + self.eps)

    def set_momentum(self, momentum: float | None) -> None:
        """A new momentum; the work arrays made for the old one are dropped
        (their fixed update coefficients came from it)."""
        check_momentum("BatchNorm", momentum)
        self.momentum = momentum
        self._work.clear()

    # --- the running statistics, by the rule in ``running`` --------------------------

    def fixed_coefficients(self, M: int, dtype) -> tuple[float, np.ndarray]:
        """(keep, [[c_mean], [c_var]] in ``dtype``) for a fixed momentum and M
        values per channel; (1.0, zeros) where they are made per step."""
        if self.momentum is None or M < 2:
            return 1.0, np.zeros((2, 1), dtype=dtype)
        keep, c_mean, c_var = rule.coefficients(self.momentum, M, self.convention)
        return keep, np.array([[c_mean], [c_var]], dtype=dtype)

    def scalar_coefficients(self, f: float, M: int, dtype) -> tuple:
        """The update's (keep, c_mean, c_var) as scalars of ``dtype`` (the
        compiled kernels' arguments)."""
        t = np.dtype(dtype).type
        keep, c_mean, c_var = rule.coefficients(f, M, self.convention)
        return t(keep), t(c_mean), t(c_var)

    def update_running(self, stats: np.ndarray, keep: float, coef: np.ndarray,
                       M: int) -> None:
        """running = keep * running + coef * stats, both rows at once (``stats``,
        the batch's mean and biased variance, is consumed)."""
        count = self.count()
        if self.momentum is None:  # cumulative average
            keep, c_mean, c_var = rule.coefficients(rule.factor(None, count), M,
                                                    self.convention)
            coef = np.array([[c_mean], [c_var]], dtype=stats.dtype)
        np.multiply(self.running, keep, self.running)
        np.multiply(stats, coef, stats)
        np.add(self.running, stats, self.running)

    def move_running(self, mean: np.ndarray, var: np.ndarray, M: int) -> None:
        """The reference path's update, from float arrays of the batch mean and
        biased variance over M values per channel."""
        f = rule.factor(self.momentum, self.count())
        self.running *= 1.0 - f
        self.running += (f * np.stack([mean, var * rule.unbias(M, self.convention)])
                         ).astype(self.running.dtype)

    def renorm_rd(self, mean: np.ndarray, std_b: np.ndarray,
                  renorm: Renorm) -> tuple[np.ndarray, np.ndarray]:
        """Batch renorm's r = clip(sigma_B / sigma, 1/rmax, rmax) and d =
        clip((mu_B - mu) / sigma, -dmax, dmax) (Ioffe 2017, Algorithm 1), from
        the running mu and sigma before this step, within ``Renorm.bounds``."""
        rmax, dmax = renorm.bounds(int(self.buffers["num_batches_tracked"]))
        run_std = self.running_std
        r = np.clip(std_b / run_std, 1.0 / rmax, rmax)
        d = np.clip((mean - self.running[0]) / run_std, -dmax, dmax)
        return r, d

    def move_running_renorm(self, mean: np.ndarray, var: np.ndarray, std_b: np.ndarray,
                            M: int) -> None:
        """Batch renorm's running update: with running ``variance`` as plain BN;
        with ``sigma``, mu += f (mu_B - mu) and sigma += f (sigma_B - sigma) in
        float64, sigma stored as running_var = sigma**2 - eps (never below 0)."""
        if self.renorm.running != "sigma":
            self.move_running(mean, var, M)
            return
        run_std = self.running_std
        f = rule.factor(self.momentum, self.count())
        mu = self.running[0].astype(np.float64)
        mu += f * (mean - mu)
        sigma = run_std + f * (std_b - run_std)
        self.running[0] = mu
        self.running[1] = np.maximum(sigma * sigma - self.eps, 0.0)

    def scale(self, w) -> None:
        """std = sqrt(var + eps) and sv = gamma / std, per channel, from
        ``w.vpe`` (var + eps) into ``w.std`` and ``w.sv``."""
        np.sqrt(w.vpe, w.std)
        if self.affine:
            np.divide(self.params["gamma"], w.std, w.sv)
        else:
            np.divide(1.0, w.std, w.sv)

    # --- forward and backward --------------------------------------------------------

    def _check_input(self, x: np.ndarray, train: bool) -> None:
        check_channels(self, x)
        if train and x.size // self.D < 2:
            raise ValueError(
                "BatchNorm: training needs at least 2 values per channel (batch size x "
                f"spatial size; got input of shape {tuple(x.shape)}); with one, every "
                "output is beta and every gradient zero"
            )

    def _compiled(self, x: np.ndarray, train: bool) -> bool:
        """Whether the compiled kernels take this input: contiguous, plain BN."""
        return (self.kernels is not None and x.flags.c_contiguous
                and (self.plain or not train))

    def _run_compiled(self, x: np.ndarray, train: bool, relu: bool) -> np.ndarray:
        key = ("compiled", x.shape, x.dtype)
        w = self._work.get(key)
        if w is None:
            w = self._work[key] = _Compiled(self, x)
        y = w.forward(self, x, train, relu)
        self._w = w
        return y

    def forward(self, x: np.ndarray, train: bool) -> np.ndarray:
        self._check_input(x, train)
        if self._compiled(x, train):
            return self._run_compiled(x, train, False)
        if train and not self.plain:
            self._w, y = _Reference.forward(self, x)
            return y
        use_batch = train or not self.track_running_stats
        w = self._plan(x)
        y = w.forward(self, x, use_batch)
        if train and self.track_running_stats:
            self.update_running(w.stats, w.keep, w.coef, w.M)
        w.batch_stats = use_batch
        self._w = w
        return y

    def _make_work(self, x: np.ndarray) -> _Rows:
        return _Rows(self, x) if x.ndim == 2 else _Channels(self, x)

    def backward(self, dy: np.ndarray) -> np.ndarray:
        return self._need_cache("_w").backward(self, dy)

    def forward_relu(self, x: np.ndarray, train: bool, relu: Layer) -> np.ndarray:
        """``relu.forward(self.forward(x, train))``, as one fused kernel where the
        compiled kernels take the input (same numbers as the two calls)."""
        self._check_input(x, train)
        if self._compiled(x, train):
            return self._run_compiled(x, train, True)
        return relu.forward(self.forward(x, train), train)

    def backward_relu(self, dy: np.ndarray, relu: Layer) -> np.ndarray:
        """The backward pass of ``forward_relu``."""
        w = self._need_cache("_w")
        if w.relu:  # the fused kernel's
            return w.backward(self, dy)
        return self.backward(relu.backward(dy))

    def __repr__(self) -> str:
        return (
            f"BatchNorm({self.D}, momentum={self.momentum}, eps={self.eps}, "
            f"affine={self.affine}, track_running_stats={self.track_running_stats}, "
            f"convention={self.convention!r}"
            + (f", ghost_batch={self.ghost_batch})" if self.ghost_batch is not None else ")")
        )
