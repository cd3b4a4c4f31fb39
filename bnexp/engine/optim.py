"""Optimizers updating layer params in place from layer grads.

Semantics follow ``torch.optim``: ``weight_decay`` adds an L2 term
``weight_decay * W`` to the gradient of weight matrices only (key ``W``; biases
and norm parameters are not decayed).

Speed: on construction an optimizer packs every param (and every grad) of its
layers into one contiguous array and rebinds ``layer.params[key]`` /
``layer.grads[key]`` to views of it, values unchanged. An update is then a
few whole-array operations instead of a few per parameter.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..choices import OPTIMIZERS
from .backend import Backend
from .layers import Layer


class Optimizer:
    def __init__(self, layers: Sequence[Layer], lr: float, weight_decay: float = 0.0) -> None:
        self.kernels = None  # or the backend's compiled kernels: one fused pass per update
        if not lr > 0:
            raise ValueError(f"lr={lr} must be > 0")
        if weight_decay < 0:
            raise ValueError(f"weight_decay={weight_decay} must be >= 0")
        self.lr, self.weight_decay = lr, weight_decay
        # (layer, key) for every trainable array, in a fixed order.
        self.slots = [(layer, key) for layer in layers for key in layer.params]
        self.params, self.grads, self._decay = self._pack()
        self._tmp = np.empty_like(self.params)
        self._g = np.empty_like(self.params) if weight_decay else None

    def _pack(self):
        arrays = [layer.params[key] for layer, key in self.slots]
        dtype = np.result_type(*arrays) if arrays else np.float32
        n = sum(a.size for a in arrays)
        params, grads = np.empty(n, dtype=dtype), np.zeros(n, dtype=dtype)
        decay = np.zeros(n, dtype=dtype)  # weight_decay where the slot is a W, else 0
        i = 0
        for (layer, key), a in zip(self.slots, arrays):
            j = i + a.size
            params[i:j] = a.ravel()
            grads[i:j] = layer.grads[key].ravel()
            layer.params[key] = params[i:j].reshape(a.shape)
            layer.grads[key] = grads[i:j].reshape(a.shape)
            if key == "W":
                decay[i:j] = 1.0
            i = j
        return params, grads, decay

    def _grad(self) -> np.ndarray:
        """The gradient with the L2 term on weights added (a view, not a copy, without it)."""
        if not self.weight_decay:
            return self.grads
        np.multiply(self.params, self._decay, out=self._g)
        self._g *= self.weight_decay
        self._g += self.grads
        return self._g

    def step(self) -> None:
        raise NotImplementedError

    def _scalar(self, value: float):
        """A Python float as the params' dtype, as NumPy casts one in an update."""
        return self.params.dtype.type(value)

    def state_dict(self) -> dict[str, np.ndarray]:
        """Copies of the state carried between steps (none for plain SGD)."""
        return {}

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        for key, value in self.state_dict().items():
            if key not in state or np.shape(state[key]) != np.shape(value):
                raise ValueError(f"optimizer state {key!r} is missing or has another shape")
        self._load(state)

    def _load(self, state: dict[str, np.ndarray]) -> None:
        pass


class SGD(Optimizer):
    """``p -= lr * g``."""

    def step(self) -> None:
        if self.kernels is not None:
            self.kernels.sgd_step(self.params, self._grad(), self._scalar(-self.lr))
            return
        np.multiply(self._grad(), -self.lr, out=self._tmp)
        self.params += self._tmp


class Momentum(Optimizer):
    """Heavy-ball momentum as ``torch.optim.SGD(momentum=mu, nesterov=...)``:
    ``v = mu * v + g``; ``p -= lr * v`` (Nesterov: ``p -= lr * (g + mu * v)``)."""

    def __init__(self, layers, lr, momentum: float = 0.9, nesterov: bool = False,
                 weight_decay: float = 0.0) -> None:
        super().__init__(layers, lr, weight_decay)
        if not 0.0 <= momentum < 1.0:
            raise ValueError(f"momentum={momentum} must be in [0, 1)")
        self.momentum, self.nesterov = momentum, nesterov
        self.velocity = np.zeros_like(self.params)

    def state_dict(self) -> dict[str, np.ndarray]:
        return {"velocity": self.velocity.copy()}

    def _load(self, state: dict[str, np.ndarray]) -> None:
        self.velocity[...] = state["velocity"]

    def step(self) -> None:
        g, v, tmp = self._grad(), self.velocity, self._tmp
        if self.kernels is not None:
            self.kernels.momentum_step(self.params, g, v, self._scalar(self.momentum),
                                       self._scalar(-self.lr), self.nesterov)
            return
        v *= self.momentum
        v += g
        if self.nesterov:
            np.multiply(v, self.momentum, out=tmp)
            tmp += g
            tmp *= -self.lr
        else:
            np.multiply(v, -self.lr, out=tmp)
        self.params += tmp


class Adam(Optimizer):
    """Adam as ``torch.optim.Adam`` (bias-corrected moments, eps outside the sqrt)."""

    def __init__(self, layers, lr, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0.0) -> None:
        super().__init__(layers, lr, weight_decay)
        self.beta1, self.beta2 = betas
        self.eps = eps
        self.t = 0
        self.m = np.zeros_like(self.params)
        self.v = np.zeros_like(self.params)

    def state_dict(self) -> dict[str, np.ndarray]:
        return {"m": self.m.copy(), "v": self.v.copy(), "t": np.array(self.t, dtype=np.int64)}

    def _load(self, state: dict[str, np.ndarray]) -> None:
        self.m[...] = state["m"]
        self.v[...] = state["v"]
        self.t = int(state["t"])

    def step(self) -> None:
        self.t += 1
        c1 = 1.0 - self.beta1**self.t
        c2 = 1.0 - self.beta2**self.t
        g, m, v, tmp = self._grad(), self.m, self.v, self._tmp
        if self.kernels is not None:
            f = self._scalar
            self.kernels.adam_step(self.params, g, m, v, f(self.beta1), f(1.0 - self.beta1),
                                   f(self.beta2), f(1.0 - self.beta2), f(1.0 / c2), f(self.eps),
                                   f(-self.lr / c1))
            return
        m *= self.beta1
        np.multiply(g, 1.0 - self.beta1, out=tmp)
        m += tmp
        v *= self.beta2
        np.multiply(g, g, out=tmp)
        tmp *= 1.0 - self.beta2
        v += tmp
        np.multiply(v, 1.0 / c2, out=tmp)  # denominator: sqrt(v / c2) + eps
        np.sqrt(tmp, out=tmp)
        tmp += self.eps
        np.divide(m, tmp, out=tmp)
        tmp *= -self.lr / c1
        self.params += tmp


def make_optimizer(name: str, layers: Sequence[Layer], lr: float, *, momentum: float = 0.9,
                   nesterov: bool = False, weight_decay: float = 0.0,
                   kernels: str | Backend = "numpy") -> Optimizer:
    """Build an optimizer by its config name: ``sgd | momentum | adam``, its
    update run by the backend ``kernels`` (``numpy | numba``, or a network's
    ``backend``)."""
    if name == "sgd":
        opt = SGD(layers, lr, weight_decay)
    elif name == "momentum":
        opt = Momentum(layers, lr, momentum, nesterov, weight_decay)
    elif name == "adam":
        opt = Adam(layers, lr, weight_decay=weight_decay)
    else:
        raise ValueError(f"optimizer: got {name!r}, expected one of {', '.join(OPTIMIZERS)}")
    opt.kernels = Backend.named(kernels).kernels
    return opt
