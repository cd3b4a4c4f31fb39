"""Weight normalization (Salimans & Kingma 2016): a reparametrization of a
weight layer, not a normalization of activations."""

from __future__ import annotations

import numpy as np

from ..layers import Layer

__all__ = ["WeightNorm"]


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
