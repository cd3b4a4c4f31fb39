"""The MLP: a stack of layers built from a model description, with
forward-to-logits, loss-and-backward, predict and per-layer records."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..choices import NORMS, PLACEMENTS
from .layers import (
    BatchNorm,
    Dropout,
    GroupNorm,
    Identity,
    Layer,
    LayerNorm,
    Linear,
    ReLU,
    Sigmoid,
    Tanh,
)
from .loss import SoftmaxCrossEntropy

ACTIVATIONS = {"relu": ReLU, "sigmoid": Sigmoid, "tanh": Tanh, "identity": Identity}


def init_std(weight_scale: float | str, fan_in: int) -> float:
    """Std of the Gaussian initial weights: a number is used as is ("Deep
    Learning from Scratch" ch. 6); ``he`` = sqrt(2/fan_in); ``xavier`` =
    sqrt(1/fan_in) (the book's definitions)."""
    if weight_scale == "he":
        return float(np.sqrt(2.0 / fan_in))
    if weight_scale == "xavier":
        return float(np.sqrt(1.0 / fan_in))
    if isinstance(weight_scale, str):
        raise ValueError(f"weight_scale: got {weight_scale!r}, expected a number, he or xavier")
    return float(weight_scale)


@dataclass(frozen=True)
class Record:
    """One layer's input and output from a recorded forward pass (copies)."""

    name: str
    layer: Layer
    x: np.ndarray  # (N, D_in)
    y: np.ndarray  # (N, D_out)


class MLP:
    """A sequence of named layers ending in logits, plus the loss.

    The arrays returned by ``forward`` are the layers' work buffers (see
    ``layers``): valid until the next call.
    """

    def __init__(self, layers: Sequence[Layer], names: Sequence[str], dtype=np.float32) -> None:
        if len(layers) != len(names):
            raise ValueError("one name per layer")
        self.layers = list(layers)
        self.names = list(names)
        self.dtype = np.dtype(dtype)
        self.loss = SoftmaxCrossEntropy()
        self.records: list[Record] = []
        first = self.layers[0]
        if isinstance(first, Linear):
            first.input_grad = False  # the data needs no gradient

    def __repr__(self) -> str:
        inner = "\n".join(f"  ({n}): {layer!r}" for n, layer in zip(self.names, self.layers))
        return f"MLP(\n{inner}\n)"

    def named_layers(self):
        return zip(self.names, self.layers)

    def forward(self, x: np.ndarray, train: bool = False, record: bool = False) -> np.ndarray:
        """x: (N, D_in) -> logits (N, C). With ``record``, ``self.records``
        holds a copy of every layer's input and output."""
        h = np.asarray(x, dtype=self.dtype)
        if record:
            self.records = []
        for name, layer in zip(self.names, self.layers):
            out = layer.forward(h, train)
            if record:
                self.records.append(Record(name, layer, h.copy(), out.copy()))
            h = out
        return h

    def backward(self, dlogits: np.ndarray) -> None:
        """Backpropagate ``dlogits`` (N, C), filling every layer's grads."""
        g = dlogits
        for layer in reversed(self.layers):
            g = layer.backward(g)
            if g is None:  # a first Linear skips the data's gradient
                break

    def loss_and_backward(self, x: np.ndarray, labels: np.ndarray, record: bool = False) -> float:
        """One training pass in train mode: forward, mean loss, and (when the
        loss is finite) backward into every layer's grads. Returns the loss."""
        loss = self.loss.forward(self.forward(x, train=True, record=record), labels)
        if math.isfinite(loss):
            self.backward(self.loss.backward())
        return loss

    def evaluate(self, x: np.ndarray, labels: np.ndarray, chunk: int = 2048) -> tuple[float, float]:
        """Mean loss and accuracy in eval mode, in chunks to bound memory."""
        total, correct = 0.0, 0
        for i in range(0, len(x), chunk):
            xb, yb = x[i : i + chunk], labels[i : i + chunk]
            logits = self.forward(xb, train=False)
            correct += int(np.count_nonzero(logits.argmax(axis=1) == yb))
            total += self.loss.forward(logits, yb) * len(xb)
        n = len(x)
        return total / n, correct / n

    def predict(self, x: np.ndarray, chunk: int = 2048) -> np.ndarray:
        """Predicted class per sample, in eval mode: (N,) int."""
        out = [self.forward(x[i : i + chunk], train=False).argmax(axis=1)
               for i in range(0, len(x), chunk)]
        return np.concatenate(out)

    def state_dict(self) -> dict[str, np.ndarray]:
        """Copies of every param and buffer, keyed ``layer_name.key``."""
        state = {}
        for name, layer in self.named_layers():
            for key, value in {**layer.params, **layer.buffers}.items():
                state[f"{name}.{key}"] = value.copy()
        return state

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        for name, layer in self.named_layers():
            for store in (layer.params, layer.buffers):
                for key in store:
                    store[key][...] = state[f"{name}.{key}"]


def build_mlp(
    in_dim: int,
    out_dim: int,
    hidden: Sequence[int],
    *,
    rng: np.random.Generator,
    activation: str = "relu",
    norm: str = "none",
    placement: str = "before",
    groups: int = 4,
    dropout: float = 0.0,
    weight_scale: float | str = "he",
    momentum: float | None = 0.1,
    eps: float = 1e-5,
    affine: bool = True,
    track_running_stats: bool = True,
    convention: str = "pytorch",
    dtype=np.float32,
) -> MLP:
    """Build ``in_dim -> hidden... -> out_dim``.

    Each hidden block is Linear -> Norm -> Act (``placement='before'``) or
    Linear -> Act -> Norm (``'after'``), then Dropout when ``dropout > 0``; the
    output layer is a plain Linear. A Linear that feeds a BatchNorm has no
    bias: BN subtracts the per-feature batch mean, so a per-feature bias
    cancels exactly. (Before LayerNorm/GroupNorm it would not cancel, since
    their mean runs over features, so it is kept there.)
    """
    if activation not in ACTIVATIONS:
        raise ValueError(f"activation: got {activation!r}, expected one of {', '.join(ACTIVATIONS)}")
    if norm not in NORMS:
        raise ValueError(f"norm: got {norm!r}, expected one of {', '.join(NORMS)}")
    if placement not in PLACEMENTS:
        raise ValueError(f"placement: got {placement!r}, expected one of {', '.join(PLACEMENTS)}")
    layers: list[Layer] = []
    names: list[str] = []

    def add(name: str, layer: Layer) -> None:
        names.append(name)
        layers.append(layer)

    def make_norm(D: int) -> Layer:
        if norm == "batch":
            return BatchNorm(D, momentum, eps, affine, track_running_stats,
                             convention=convention, dtype=dtype)
        if norm == "layer":
            return LayerNorm(D, eps, affine, dtype=dtype)
        return GroupNorm(D, groups, eps, affine, dtype=dtype)

    fan_in = in_dim
    for i, width in enumerate(hidden, start=1):
        bias = not (norm == "batch" and placement == "before")
        add(f"linear{i}", Linear(fan_in, width, bias, rng=rng,
                                 std=init_std(weight_scale, fan_in), dtype=dtype))
        act = ACTIVATIONS[activation]()
        if norm == "none":
            add(f"{activation}{i}", act)
        elif placement == "before":
            add(f"{norm}norm{i}", make_norm(width))
            add(f"{activation}{i}", act)
        else:
            add(f"{activation}{i}", act)
            add(f"{norm}norm{i}", make_norm(width))
        if dropout > 0:
            add(f"dropout{i}", Dropout(dropout, rng=np.random.default_rng(rng.integers(2**63))))
        fan_in = width
    add("linear_out", Linear(fan_in, out_dim, True, rng=rng,
                             std=init_std(weight_scale, fan_in), dtype=dtype))
    return MLP(layers, names, dtype)
