"""The network: a stack of layers built from a layer list, with
forward-to-logits, loss-and-backward, predict and per-layer records.

An MLP and a CNN are two layer lists (``mlp_layers``, ``cnn_layers``) for one
builder (``build``), which infers every layer's input shape from the data's.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..choices import HEADS, NORMS, PLACEMENTS, POOLS
from .conv import AvgPool2d, Conv2d, Flatten, GlobalAvgPool, MaxPool2d, out_size
from .backend import Backend
from .layers import Dropout, Identity, Layer, Linear, NoisyShift, ReLU, Sigmoid, Tanh
from .loss import SoftmaxCrossEntropy
from .norms import BatchNorm, GroupNorm, InstanceNorm, LayerNorm, Renorm, WeightNorm

# Samples per evaluation chunk: fixed, so results do not depend on threads.
EVAL_CHUNK = 2048
CNN_EVAL_CHUNK = 256  # a conv layer's windows take C*k*k values per output position
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
            plan = self._whole[key] = self.backend.whole_step(self, x)
        if plan is not None and not x.flags.c_contiguous:
            return None
        return plan

    def replica(self) -> Network:
        """A model sharing this one's parameters and buffers but with its own
        work arrays, loss and records: evaluation in another thread."""
        twin = copy.copy(self)
        twin.layers = [layer.replica() for layer in self.layers]
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


@dataclass(frozen=True)
class NormSettings:
    """Which normalization a builder inserts where a layer list says ``norm``,
    and its settings (PyTorch's defaults)."""

    kind: str = "none"  # one of NORMS
    groups: int = 4
    momentum: float | None = 0.1
    eps: float = 1e-5
    affine: bool = True
    track_running_stats: bool = True
    convention: str = "pytorch"
    ghost_batch: int | None = None  # batch norm only: statistics per group of this many samples
    noise: float = 0.0  # > 0: Santurkar et al.'s noise after every norm layer (NoisyShift)
    renorm: Renorm | None = None  # batch norm only: batch renormalization's settings

    def make(self, channels: int, dtype) -> Layer:
        if self.kind == "batch":
            return BatchNorm(channels, self.momentum, self.eps, self.affine,
                             self.track_running_stats, convention=self.convention,
                             ghost_batch=self.ghost_batch, renorm=self.renorm, dtype=dtype)
        if self.kind == "layer":
            return LayerNorm(channels, self.eps, self.affine, dtype=dtype)
        if self.kind == "group":
            return GroupNorm(channels, self.groups, self.eps, self.affine, dtype=dtype)
        if self.kind == "instance":
            return InstanceNorm(channels, self.eps, self.momentum, self.affine,
                                self.track_running_stats, dtype=dtype)
        raise ValueError(f"norm: got {self.kind!r}, expected one of {', '.join(NORMS)}")


# A layer list is a list of (kind, options) pairs:
#   ("linear", {"out": width or None for the classes, "bias": bool})
#   ("conv", {"out": channels, "kernel": k, "stride": s, "padding": p, "bias": bool})
#   ("norm", {}), ("act", {"fn": name}), ("dropout", {"p": p}),
#   ("maxpool" | "avgpool", {"kernel": k}), ("flatten", {}), ("gap", {})
Spec = tuple[str, dict]


def _check_choices(activation: str, norm: str, placement: str) -> None:
    if activation not in ACTIVATIONS:
        raise ValueError(f"activation: got {activation!r}, expected one of {', '.join(ACTIVATIONS)}")
    if norm not in NORMS:
        raise ValueError(f"norm: got {norm!r}, expected one of {', '.join(NORMS)}")
    if placement not in PLACEMENTS:
        raise ValueError(f"placement: got {placement!r}, expected one of {', '.join(PLACEMENTS)}")


def _block_tail(norm: str, placement: str, activation: str, dropout: float) -> list[Spec]:
    """What follows a weight layer: Norm -> Act (``before``) or Act -> Norm
    (``after``), or Act alone (no norm, or weight norm, which lives in the
    weight layer); then Dropout when ``dropout > 0``."""
    act: Spec = ("act", {"fn": activation})
    if norm in ("none", "weight"):
        tail = [act]
    elif placement == "before":
        tail = [("norm", {}), act]
    else:
        tail = [act, ("norm", {})]
    return tail + ([("dropout", {"p": dropout})] if dropout > 0 else [])


def _bias(norm: str, placement: str) -> bool:
    """A weight layer that feeds a BatchNorm has no bias: BN subtracts the
    per-channel batch mean, so a per-channel bias cancels exactly. (Before
    the per-sample norms it would not cancel, so it is kept there.)"""
    return not (norm == "batch" and placement == "before")


def mlp_layers(hidden: Sequence[int], *, activation: str = "relu", norm: str = "none",
               placement: str = "before", dropout: float = 0.0,
               dropout_at: str = "blocks") -> list[Spec]:
    """Linear -> [Norm, Act] per hidden width, then a plain Linear to the classes.
    Dropout (when > 0) ends every block (``blocks``: so it comes before the next
    block's norm), or comes once, before the output layer (``head``: after
    every norm, Li et al. 2019's remedy for the variance shift)."""
    _check_choices(activation, norm, placement)
    specs: list[Spec] = []
    for width in hidden:
        specs.append(("linear", {"out": width, "bias": _bias(norm, placement),
                                 "weight_norm": norm == "weight"}))
        specs += _block_tail(norm, placement, activation,
                             dropout if dropout_at == "blocks" else 0.0)
    if dropout > 0 and dropout_at == "head":
        specs.append(("dropout", {"p": dropout}))
    return specs + [("linear", {"out": None, "bias": True, "weight_norm": norm == "weight"})]


def cnn_layers(channels: Sequence[int], *, kernel: int = 3, pool: str = "max",
               head: str = "flatten", hidden: Sequence[int] = (), activation: str = "relu",
               norm: str = "none", placement: str = "before",
               dropout: float = 0.0, dropout_at: str = "blocks") -> list[Spec]:
    """Per channel count: Conv(k x k, stride 1, 'same' padding) -> [Norm, Act]
    -> 2x2 pooling (``pool``: max, avg or none); then Flatten or global average
    pooling (``head``); then the MLP's hidden blocks and the output Linear."""
    _check_choices(activation, norm, placement)
    if pool not in POOLS:
        raise ValueError(f"pool: got {pool!r}, expected one of {', '.join(POOLS)}")
    if head not in HEADS:
        raise ValueError(f"head: got {head!r}, expected one of {', '.join(HEADS)}")
    specs: list[Spec] = []
    for c in channels:
        specs.append(("conv", {"out": c, "kernel": kernel, "stride": 1, "padding": kernel // 2,
                               "bias": _bias(norm, placement), "weight_norm": norm == "weight"}))
        specs += _block_tail(norm, placement, activation,
                             dropout if dropout_at == "blocks" else 0.0)
        if pool != "none":
            specs.append((f"{pool}pool", {"kernel": 2}))
    specs.append(("flatten" if head == "flatten" else "gap", {}))
    return specs + mlp_layers(hidden, activation=activation, norm=norm, placement=placement,
                              dropout_at=dropout_at,
                              dropout=dropout)


def build(specs: Sequence[Spec], in_shape: Sequence[int], classes: int, *,
          rng: np.random.Generator, norm: NormSettings = NormSettings(),
          weight_scale: float | str = "he", dtype=np.float32,
          kernels: str = "numpy") -> Network:
    """The network a layer list describes, for samples of shape ``in_shape``
    ((D,) for rows, (C, H, W) for images). Weights are drawn from ``rng`` in
    layer order; each Dropout gets its own stream drawn from it in turn.

    Names: ``linear{i}`` / ``conv{i}`` for the i-th weight layer and
    ``{norm}norm{i}``, ``{act}{i}``, ``dropout{i}``, ``{max|avg}pool{i}`` for
    what follows it; ``flatten``, ``gap`` and ``linear_out`` (the logits)."""
    shape = tuple(in_shape)
    layers: list[Layer] = []
    names: list[str] = []
    block = 0
    for kind, opt in specs:
        if kind == "linear":
            if len(shape) != 1:
                raise ValueError(f"linear after a {len(shape)}-D output {shape}: flatten first")
            out = classes if opt["out"] is None else opt["out"]
            name = "linear_out" if opt["out"] is None else f"linear{block + 1}"
            block += opt["out"] is not None
            layer = Linear(shape[0], out, opt["bias"], rng=rng,
                           std=init_std(weight_scale, shape[0]), dtype=dtype)
            shape = (out,)
        elif kind == "conv":
            if len(shape) != 3:
                raise ValueError(f"conv needs (C, H, W) inputs, got {shape}")
            block += 1
            name = f"conv{block}"
            k, s, p = opt["kernel"], opt["stride"], opt["padding"]
            layer = Conv2d(shape[0], opt["out"], k, s, p, opt["bias"], rng=rng,
                           std=init_std(weight_scale, shape[0] * k * k), dtype=dtype)
            shape = (opt["out"], out_size(shape[1], k, s, p), out_size(shape[2], k, s, p))
        elif kind == "norm":
            name, layer = f"{norm.kind}norm{block}", norm.make(shape[0], dtype)
            if norm.noise > 0:  # the noise layer follows (its stream: after the loop)
                names.append(name)
                layers.append(layer)
                name, layer = f"noise{block}", NoisyShift(norm.noise, rng=None)
        elif kind == "act":
            name, layer = f"{opt['fn']}{block}", ACTIVATIONS[opt["fn"]]()
        elif kind == "dropout":
            name = f"dropout{block}"
            layer = Dropout(opt["p"], rng=np.random.default_rng(rng.integers(2**63)))
        elif kind in ("maxpool", "avgpool"):
            name = f"{kind}{block}"
            layer = (MaxPool2d if kind == "maxpool" else AvgPool2d)(opt["kernel"])
            shape = (shape[0], out_size(shape[1], opt["kernel"], opt["kernel"], 0),
                     out_size(shape[2], opt["kernel"], opt["kernel"], 0))
        elif kind in ("flatten", "gap"):
            name, layer = kind, Flatten() if kind == "flatten" else GlobalAvgPool()
            shape = (math.prod(shape),) if kind == "flatten" else (shape[0],)
        else:
            raise ValueError(f"unknown layer kind {kind!r}")
        if opt.get("weight_norm"):
            layer = WeightNorm(layer)
        if min(shape) < 1:
            raise ValueError(f"{name}: output shape {shape} is empty")
        names.append(name)
        layers.append(layer)
    for layer in layers:  # drawn after every weight, so noise leaves the weights as they were
        if isinstance(layer, NoisyShift):
            layer.rng = np.random.default_rng(rng.integers(2**63))
    spatial = len(in_shape) > 1
    return Network(layers, names, dtype, input_shape=tuple(in_shape) if spatial else None,
                   eval_chunk=CNN_EVAL_CHUNK if spatial else EVAL_CHUNK, kernels=kernels)


def build_mlp(in_dim: int, out_dim: int, hidden: Sequence[int], *, rng: np.random.Generator,
              activation: str = "relu", norm: str = "none", placement: str = "before",
              groups: int = 4, dropout: float = 0.0, weight_scale: float | str = "he",
              momentum: float | None = 0.1, eps: float = 1e-5, affine: bool = True,
              track_running_stats: bool = True, convention: str = "pytorch",
              dtype=np.float32, kernels: str = "numpy") -> Network:
    """``in_dim -> hidden... -> out_dim``: ``build(mlp_layers(...))``."""
    specs = mlp_layers(hidden, activation=activation, norm=norm, placement=placement,
                       dropout=dropout)
    settings = NormSettings(norm, groups, momentum, eps, affine, track_running_stats, convention)
    return build(specs, (in_dim,), out_dim, rng=rng, norm=settings, weight_scale=weight_scale,
                 dtype=dtype, kernels=kernels)
