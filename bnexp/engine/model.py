"""The MLP: a stack of layers built from a model description, with
forward-to-logits, loss-and-backward, predict and per-layer records."""

from __future__ import annotations

import copy
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

EVAL_CHUNK = 2048  # samples per evaluation chunk: fixed, so results do not depend on threads
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

    def replica(self) -> MLP:
        """A model sharing this one's parameters and buffers but with its own
        work arrays, loss and records: evaluation in another thread."""
        twin = copy.copy(self)
        twin.layers = [layer.replica() for layer in self.layers]
        twin.loss = SoftmaxCrossEntropy()
        twin.records = []
        return twin

    def _evaluate_chunks(self, x: np.ndarray, labels: np.ndarray, starts: list[int],
                         chunk: int) -> list[tuple[float, int]]:
        out = []
        for i in starts:
            xb, yb = x[i : i + chunk], labels[i : i + chunk]
            logits = self.forward(xb, train=False)
            out.append((self.loss.forward(logits, yb) * len(xb),
                        int(np.count_nonzero(logits.argmax(axis=1) == yb))))
        return out

    def evaluate(self, x: np.ndarray, labels: np.ndarray, chunk: int = EVAL_CHUNK,
                 threads: int = 1) -> tuple[float, float]:
        """Mean loss and accuracy in eval mode, in chunks of ``chunk`` samples
        (bounding memory). With ``threads`` > 1 the chunks are shared among
        threads, each with its own replica of the model; the chunk boundaries
        and the order in which their sums are added do not depend on
        ``threads``, so neither does the result (a row's product depends on
        how many rows share the BLAS call, so the boundaries must be fixed)."""
        starts = list(range(0, len(x), chunk))
        threads = max(1, min(threads, len(starts)))
        if threads == 1:
            parts = self._evaluate_chunks(x, labels, starts, chunk)
        else:
            from concurrent.futures import ThreadPoolExecutor

            models = [self] + [self.replica() for _ in range(threads - 1)]
            shares = [starts[k::threads] for k in range(threads)]
            with ThreadPoolExecutor(threads) as pool:
                done = list(pool.map(lambda mk: mk[0]._evaluate_chunks(x, labels, mk[1], chunk),
                                     zip(models, shares)))
            by_start = {s: part for share, res in zip(shares, done) for s, part in zip(share, res)}
            parts = [by_start[s] for s in starts]
        total, correct = 0.0, 0
        for loss_sum, hits in parts:
            total += loss_sum
            correct += hits
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
