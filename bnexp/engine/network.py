"""The network: a stack of named layers ending in logits, with
forward-to-logits, loss-and-backward, evaluation, predict, per-layer records
and state dicts, on one backend (``engine.backend``). Layer lists and the
builder that makes a Network from one are in ``model``."""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from . import residual
from .backend import Backend
from .conv import Conv2d
from .layers import Layer, Linear, ReLU
from .loss import SoftmaxCrossEntropy
from .norms import BatchNorm, WeightNorm

# Samples per evaluation chunk: fixed, so results do not depend on threads.
EVAL_CHUNK = 2048
CNN_EVAL_CHUNK = 256  # a conv layer's windows take C*k*k values per output position


@dataclass(frozen=True)
class Record:
    """One layer's input and output from a recorded forward pass (copies)."""

    name: str
    layer: Layer
    x: np.ndarray  # (N, *in_shape)
    y: np.ndarray  # (N, *out_shape)


class Network:
    """A sequence of named layers ending in logits, plus the loss.

    Inputs arrive as (N, D) rows and are viewed as (N, *input_shape) (for a
    CNN, images (N, 1, 28, 28)). The arrays returned by ``forward`` are the
    layers' work buffers (see ``layers``): valid until the next call.
    """

    def __init__(self, layers: Sequence[Layer], names: Sequence[str], dtype=np.float32,
                 input_shape: tuple[int, ...] | None = None,
                 eval_chunk: int = EVAL_CHUNK, kernels: str | Backend = "numpy") -> None:
        if len(layers) != len(names):
            raise ValueError("one name per layer")
        self.layers = list(layers)
        self.names = list(names)
        self.dtype = np.dtype(dtype)
        self.input_shape = tuple(input_shape) if input_shape else None
        self.eval_chunk = eval_chunk
        self.use_backend(kernels)  # and the loss
        self.records: list[Record] = []
        first = self.layers[0]
        if isinstance(first, (Linear, Conv2d, WeightNorm)):
            first.input_grad = False  # the data needs no gradient

    def __repr__(self) -> str:
        inner = "\n".join(f"  ({n}): {layer!r}" for n, layer in zip(self.names, self.layers))
        return f"{type(self).__name__}(\n{inner}\n)"

    def named_layers(self):
        return zip(self.names, self.layers)

    def use_backend(self, backend: str | Backend) -> None:
        """Run the passes around the matrix products on ``backend`` (a name or a
        Backend: ``numpy``, the layers' reference code; ``numba``, compiled, with
        each BatchNorm -> ReLU pair fused into one kernel per pass)."""
        self.backend = Backend.named(backend)
        for layer in self.layers:
            layer.kernels = self.backend.kernels
        self.loss = SoftmaxCrossEntropy(self.backend.kernels)
        self.steps = self._plan_steps()
        self._ran = self.steps  # what the last forward ran, for backward
        self._whole: dict[tuple, object] = {}  # batch shape -> compiled-step plan or None

    def _plan_steps(self) -> list[tuple[Layer, Layer | None]]:
        """(layer, None) per layer, but (BatchNorm, ReLU) for a pair the compiled
        kernels fuse."""
        steps, i, n = [], 0, len(self.layers)
        while i < n:
            layer = self.layers[i]
            nxt = self.layers[i + 1] if i + 1 < n else None
            if (layer.kernels is not None and isinstance(layer, BatchNorm)
                    and type(nxt) is ReLU):
                steps.append((layer, nxt))
                i += 2
            else:
                steps.append((layer, None))
                i += 1
        return steps

    def as_input(self, x: np.ndarray) -> np.ndarray:
        """Rows (N, D) as the first layer takes them: the model's dtype, viewed as
        (N, *input_shape) for images."""
        h = np.asarray(x, dtype=self.dtype)
        return h if self.input_shape is None else h.reshape(len(h), *self.input_shape)

    def forward(self, x: np.ndarray, train: bool = False, record: bool = False) -> np.ndarray:
        """x: (N, D_in) -> logits (N, C). With ``record``, ``self.records``
        holds a copy of every layer's input and output."""
        h = self.as_input(x)
        if record:  # layer by layer (fused pairs give the same numbers unfused)
            self.records = []
            for name, layer in zip(self.names, self.layers):
                out = layer.forward(h, train)
                self.records.append(Record(name, layer, h.copy(), out.copy()))
                h = out
            self._ran = [(layer, None) for layer in self.layers]
            return h
        for layer, relu in self.steps:
            h = layer.forward(h, train) if relu is None else layer.forward_relu(h, train, relu)
        self._ran = self.steps
        return h

    def backward(self, dlogits: np.ndarray) -> None:
        """Backpropagate ``dlogits`` (N, C), filling every layer's grads."""
        g = dlogits
        for layer, relu in reversed(self._ran):  # the steps the last forward ran
            g = layer.backward(g) if relu is None else layer.backward_relu(g, relu)
            if g is None:  # a first Linear skips the data's gradient
                break

    def loss_and_backward(self, x: np.ndarray, labels: np.ndarray, record: bool = False) -> float:
        """One training pass in train mode: forward, mean loss, and (when the
        loss is finite) backward into every layer's grads. Returns the loss."""
        if self.backend.compiled and not record:
            whole = self._whole_step(x)
            if whole is not None:  # the whole pass in two compiled calls
                self._ran = []  # nothing for a layer-by-layer backward to do
                return whole.run(x, labels)
        loss = self.loss.forward(self.forward(x, train=True, record=record), labels)
        if math.isfinite(loss):
            self.backward(self.loss.backward())
        return loss

    def _whole_step(self, x: np.ndarray):
        """The compiled whole-pass plan for batches shaped like ``x`` (numba
        kernels, a plain MLP), or None: run layer by layer. Made again when the
        layers' arrays changed (an optimizer packs them when it is made)."""
        key = (x.shape, x.dtype)
        plan = self._whole.get(key, False)
        if plan is False or (plan is not None and not plan.current()):
            from . import numba_step

            plan = self._whole[key] = numba_step.plan(self, x)
        if plan is not None and not x.flags.c_contiguous:
            return None
        return plan

    def replica(self) -> Network:
        """A model sharing this one's parameters and buffers but with its own
        work arrays, loss and records: evaluation in another thread."""
        twin = copy.copy(self)
        twin.layers = [layer.replica() for layer in self.layers]
        residual.rebind(self.layers, twin.layers)
        twin.loss = SoftmaxCrossEntropy(self.backend.kernels)
        twin.records = []
        twin.steps = twin._ran = twin._plan_steps()
        twin._whole = {}
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

    def evaluate(self, x: np.ndarray, labels: np.ndarray, chunk: int | None = None,
                 threads: int = 1) -> tuple[float, float]:
        """Mean loss and accuracy in eval mode, in chunks of ``chunk`` samples
        (bounding memory). With ``threads`` > 1 the chunks are shared among
        threads, each with its own replica of the model; the chunk boundaries
        and the order in which their sums are added do not depend on
        ``threads``, so neither does the result (a row's product depends on
        how many rows share the BLAS call, so the boundaries must be fixed)."""
        chunk = chunk or self.eval_chunk
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

    def logits(self, x: np.ndarray, chunk: int | None = None) -> np.ndarray:
        """Logits in eval mode, in chunks of ``chunk`` samples: (N, C), a new array
        (each chunk is copied out at once: ``forward`` reuses its buffers)."""
        chunk = chunk or self.eval_chunk
        out = None
        for i in range(0, len(x), chunk):
            y = self.forward(x[i : i + chunk], train=False)
            if out is None:
                out = np.empty((len(x), y.shape[1]), dtype=y.dtype)
            out[i : i + len(y)] = y
        return out

    def predict(self, x: np.ndarray, chunk: int | None = None) -> np.ndarray:
        """Predicted class per sample, in eval mode: (N,) int."""
        return self.logits(x, chunk).argmax(axis=1)

    def state_dict(self) -> dict[str, np.ndarray]:
        """Copies of every param and buffer, keyed ``layer_name.key``."""
        state = {}
        for name, layer in self.named_layers():
            for key, value in {**layer.params, **layer.buffers}.items():
                state[f"{name}.{key}"] = value.copy()
        return state

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        """Copy ``state`` (``layer_name.key`` -> array, as ``state_dict`` gives)
        into every param and buffer. All are checked first (present, the same
        shape, a dtype that casts within its kind): ValueError, nothing copied."""
        pairs = []
        for name, layer in self.named_layers():
            for store in (layer.params, layer.buffers):
                for key, target in store.items():
                    full = f"{name}.{key}"
                    if full not in state:
                        raise ValueError(f"no {full} in the state to load")
                    value = np.asarray(state[full])
                    if value.shape != target.shape or not np.can_cast(value.dtype, target.dtype,
                                                                      "same_kind"):
                        raise ValueError(f"{full}: {value.dtype} {value.shape}, expected "
                                         f"{target.dtype} {target.shape}")
                    pairs.append((target, value))
        for target, value in pairs:
            target[...] = value


MLP = Network  # the engine's name for it before it built CNNs
