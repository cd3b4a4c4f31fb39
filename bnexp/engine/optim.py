"""Optimizers updating layer params in place from layer grads.

Semantics follow ``torch.optim``: ``weight_decay`` adds an L2 term
``weight_decay * W`` to the gradient of weight matrices only (key ``W``; biases
and norm parameters are not decayed).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .layers import Layer

OPTIMIZERS = ("sgd", "momentum", "adam")


class Optimizer:
    def __init__(self, layers: Sequence[Layer], lr: float, weight_decay: float = 0.0) -> None:
        if not lr > 0:
            raise ValueError(f"lr={lr} must be > 0")
        if weight_decay < 0:
            raise ValueError(f"weight_decay={weight_decay} must be >= 0")
        self.lr, self.weight_decay = lr, weight_decay
        # (layer, key) for every trainable array, in a fixed order.
        self.slots = [(layer, key) for layer in layers for key in layer.params]
        self._tmp = [np.empty_like(layer.params[key]) for layer, key in self.slots]

    def _grad(self, i: int) -> np.ndarray:
        layer, key = self.slots[i]
        g = layer.grads[key]
        if self.weight_decay and key == "W":
            tmp = self._tmp[i]
            np.multiply(layer.params[key], self.weight_decay, out=tmp)
            np.add(tmp, g, out=tmp)
            return tmp
        return g

    def step(self) -> None:
        raise NotImplementedError


class SGD(Optimizer):
    """``p -= lr * g``."""

    def step(self) -> None:
        for i, (layer, key) in enumerate(self.slots):
            g = self._grad(i)
            tmp = self._tmp[i]
            np.multiply(g, self.lr, out=tmp)
            layer.params[key] -= tmp


class Momentum(Optimizer):
    """Heavy-ball momentum as ``torch.optim.SGD(momentum=mu, nesterov=...)``:
    ``v = mu * v + g``; ``p -= lr * v`` (Nesterov: ``p -= lr * (g + mu * v)``)."""

    def __init__(self, layers, lr, momentum: float = 0.9, nesterov: bool = False,
                 weight_decay: float = 0.0) -> None:
        super().__init__(layers, lr, weight_decay)
        if not 0.0 <= momentum < 1.0:
            raise ValueError(f"momentum={momentum} must be in [0, 1)")
        self.momentum, self.nesterov = momentum, nesterov
        self.velocity = [np.zeros_like(layer.params[key]) for layer, key in self.slots]

    def step(self) -> None:
        for i, (layer, key) in enumerate(self.slots):
            g = self._grad(i)
            v = self.velocity[i]
            v *= self.momentum
            v += g
            tmp = self._tmp[i]
            if self.nesterov:
                np.multiply(v, self.momentum, out=tmp)
                np.add(tmp, g, out=tmp)
            else:
                tmp[...] = v
            tmp *= self.lr
            layer.params[key] -= tmp


class Adam(Optimizer):
    """Adam as ``torch.optim.Adam`` (bias-corrected moments, eps outside the sqrt)."""

    def __init__(self, layers, lr, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0.0) -> None:
        super().__init__(layers, lr, weight_decay)
        self.beta1, self.beta2 = betas
        self.eps = eps
        self.t = 0
        self.m = [np.zeros_like(layer.params[key]) for layer, key in self.slots]
        self.v = [np.zeros_like(layer.params[key]) for layer, key in self.slots]

    def step(self) -> None:
        self.t += 1
        c1 = 1.0 - self.beta1**self.t
        c2 = 1.0 - self.beta2**self.t
        for i, (layer, key) in enumerate(self.slots):
            g = self._grad(i)
            m, v = self.m[i], self.v[i]
            m *= self.beta1
            m += (1.0 - self.beta1) * g
            v *= self.beta2
            v += (1.0 - self.beta2) * (g * g)
            denom = np.sqrt(v / c2)
            denom += self.eps
            layer.params[key] -= (self.lr / c1) * m / denom


def make_optimizer(name: str, layers: Sequence[Layer], lr: float, *, momentum: float = 0.9,
                   nesterov: bool = False, weight_decay: float = 0.0) -> Optimizer:
    """Build an optimizer by its config name: ``sgd | momentum | adam``."""
    if name == "sgd":
        return SGD(layers, lr, weight_decay)
    if name == "momentum":
        return Momentum(layers, lr, momentum, nesterov, weight_decay)
    if name == "adam":
        return Adam(layers, lr, weight_decay=weight_decay)
    raise ValueError(f"optimizer: got {name!r}, expected one of {', '.join(OPTIMIZERS)}")
