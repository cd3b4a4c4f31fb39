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


class Described:
    """A normalization layer's settings by name, declared once in ``OPTIONS``
    (name -> (the check of a model file's value, from ``engine.fields``, and
    whether older files may lack it)): what a builder passes from a config's
    norm section (``from_settings``), what a model file stores
    (``describe``) and reads back (``from_description``). Each setting is
    the constructor's keyword argument and the layer's attribute of that name."""

    OPTIONS: dict[str, tuple] = {}

    def describe(self) -> dict:
        """{"channels": C, setting: value, ...}, JSON-able."""
        return {"channels": self.D, **{k: self.encode(k, getattr(self, k)) for k in self.OPTIONS}}

    @staticmethod
    def encode(key: str, value):
        return value

    @staticmethod
    def decode(key: str, value):
        return value

    @classmethod
    def from_description(cls, d: dict, dtype) -> Layer:
        """The layer a checked description describes (a setting it lacks: the default)."""
        return cls(d["channels"], **{k: cls.decode(k, d[k]) for k in cls.OPTIONS if k in d},
                   dtype=dtype)

    @classmethod
    def check_description(cls, d: dict) -> str | None:
        """What is wrong with a description whose fields each passed their own
        check, taken together (None: nothing)."""
        return None

    @classmethod
    def from_settings(cls, channels: int, options: dict, dtype) -> Layer:
        """The layer with the settings it takes from ``options`` (a builder's)."""
        return cls(channels, **{k: options[k] for k in cls.OPTIONS if k in options},
                   dtype=dtype)
