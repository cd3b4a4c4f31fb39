"""What every normalization layer shares: the per-channel affine parameters
and the checks of sizes, momentum and input channels (at construction time,
naming the setting, as equinox's layers do)."""

from __future__ import annotations

import numpy as np

from ..layers import Layer


def affine_params(layer: Layer, D: int, affine: bool, dtype) -> None:
    """gamma = 1 and beta = 0 per channel (and their gradients), when ``affine``."""
    if affine:
        layer.params["gamma"] = np.ones(D, dtype=dtype)
        layer.params["beta"] = np.zeros(D, dtype=dtype)
        layer.grads["gamma"] = np.zeros(D, dtype=dtype)
        layer.grads["beta"] = np.zeros(D, dtype=dtype)


def check_sizes(layer: str, eps: float, **sizes: int) -> None:
    for key, value in sizes.items():
        if not value >= 1:
            raise ValueError(f"{layer}: {key}={value} must be >= 1")
    if not eps >= 0:
        raise ValueError(f"{layer}: eps={eps} must be >= 0")


def check_momentum(layer: str, momentum: float | None) -> None:
    if momentum is not None and not 0.0 <= momentum <= 1.0:
        raise ValueError(f"{layer}: momentum={momentum} must be in [0, 1] or None")


def check_channels(layer: Layer, x: np.ndarray, min_ndim: int = 2) -> None:
    if x.ndim < min_ndim or x.shape[1] != layer.D:
        what = "(N, C, ...)" if min_ndim == 2 else "(N, C, L) or (N, C, H, W)"
        raise ValueError(f"{type(layer).__name__}({layer.D}) got input of shape "
                         f"{tuple(x.shape)}; expected {what} with C = {layer.D}")
