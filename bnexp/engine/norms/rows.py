"""Per-sample normalization: layer, group and instance norm, with PyTorch's
semantics (LayerNorm here is PyTorch's GroupNorm(1, C): gamma and beta per
channel). One machinery for the three: statistics per sample and group of
channels, the same in train and eval mode."""

from __future__ import annotations

import numpy as np

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

__all__ = ["LayerNorm", "GroupNorm", "InstanceNorm"]


class _RowNorm(Described, Layer):
    """Shared machinery of LayerNorm, GroupNorm and InstanceNorm: per-sample
    statistics over ``G`` groups of ``D // G`` consecutive channels (and every
    spatial position), the same in train and eval mode, then a per-channel
    affine map."""

    def __init__(self, D: int, groups: int, eps: float, affine: bool, dtype) -> None:
        super().__init__()
        name = type(self).__name__
        check_sizes(name, eps, D=D, groups=groups)
        if D % groups != 0:
            ok = [g for g in range(1, D + 1) if D % g == 0]
            raise ValueError(
                f"{name}: D={D} must be divisible by groups={groups}; "
                f"groups that divide {D}: {', '.join(map(str, ok))}"
            )
        self.D, self.G, self.eps, self.affine = D, groups, eps, affine
        affine_params(self, D, affine, dtype)
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
        check_channels(self, x)
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

    OPTIONS = {"eps": (fields.nonnegative, False), "affine": (fields.flag, False)}

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

    OPTIONS = {"groups": (fields.size, False), "eps": (fields.nonnegative, False),
               "affine": (fields.flag, False)}

    @property
    def groups(self) -> int:
        return self.G

    @classmethod
    def check_description(cls, d: dict) -> str | None:
        if d["channels"] % d["groups"]:
            return f"channels={d['channels']} must be divisible by groups={d['groups']}"
        return None

    def __init__(
        self, D: int, groups: int, eps: float = 1e-5, affine: bool = True, *, dtype=np.float32
    ) -> None:
        super().__init__(D, groups, eps, affine, dtype)

    def __repr__(self) -> str:
        return f"GroupNorm({self.D}, groups={self.G}, eps={self.eps}, affine={self.affine})"


class InstanceNorm(rule.RunningStats, _RowNorm):
    """Instance normalization: per sample and channel, over the spatial axes
    (PyTorch's InstanceNorm1d/2d). x: (N, C, L) or (N, C, H, W).

    PyTorch's defaults: no affine map and no running statistics, so train and
    eval mode agree. With ``track_running_stats`` train mode also updates
    running mean and variance with the batch averages of the per-instance mean
    and unbiased variance, and eval mode normalizes with them. As in PyTorch,
    ``num_batches_tracked`` stays 0 and ``momentum=None`` leaves the running
    statistics where they started (PyTorch passes a momentum of 0 then, not
    BatchNorm's cumulative average)."""

    OPTIONS = {"eps": (fields.nonnegative, False), "momentum": (fields.momentum, False),
               "affine": (fields.flag, False), "track_running_stats": (fields.flag, False)}

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
        check_momentum("InstanceNorm", momentum)
        self.momentum, self.track_running_stats = momentum, track_running_stats
        if track_running_stats:
            self.init_running(D, dtype, 1.0)

    def forward(self, x: np.ndarray, train: bool) -> np.ndarray:
        check_channels(self, x, min_ndim=3)
        N, C = x.shape[:2]
        L = x.size // (N * C)
        if train and L < 2:
            raise ValueError(f"InstanceNorm: training needs more than one spatial position "
                             f"(got input of shape {tuple(x.shape)})")
        if train or not self.track_running_stats:
            xhat, mean, var = self._normalize(x)
            if train and self.track_running_stats:
                self._update_running(mean.reshape(N, C),
                                     var.reshape(N, C) * rule.unbias(L, "pytorch"))
            return self._affine(xhat)
        # eval with running statistics: (x - running_mean) / sqrt(running_var + eps)
        xhat = self._buf("xhat", x.shape, x.dtype)
        h3 = xhat.reshape(N, C, L)
        np.subtract(x.reshape(N, C, L), self.running[0][:, None], out=h3)
        inv_std = 1.0 / np.sqrt(self.running[1] + self.eps)
        np.multiply(h3, inv_std[:, None], out=h3)
        self._xhat, self._inv_std, self._batch_stats = xhat, inv_std, False
        return self._affine(xhat)

    def _update_running(self, mean: np.ndarray, var_unbiased: np.ndarray) -> None:
        f = 0.0 if self.momentum is None else self.momentum
        batch = np.stack([mean.mean(axis=0), var_unbiased.mean(axis=0)])
        self.running *= 1.0 - f
        self.running += f * batch.astype(self.running.dtype)

    def __repr__(self) -> str:
        return (f"InstanceNorm({self.D}, eps={self.eps}, momentum={self.momentum}, "
                f"affine={self.affine}, track_running_stats={self.track_running_stats})")
