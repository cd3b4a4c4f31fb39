"""From a config to a network: the only map from a config's model and norm
sections to layers. A layer list (``mlp_layers``, ``cnn_layers``) says what
comes in which order; ``build`` makes the layers, inferring every layer's
input shape from the data's; ``NormSettings`` says which norm a layer list's
``norm`` entries become, with its settings taken by name from the config's
own dataclass (``NormSettings.from_config``), so a norm's new setting needs
no code here.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

import numpy as np

from .. import shapes
from ..choices import HEADS, IMAGE_SHAPES, INIT_NAMES, NORMS, PLACEMENTS, POOLS
from ..config import image_shape
from .backend import Backend
from .conv import AvgPool2d, Conv2d, Flatten, GlobalAvgPool, MaxPool2d, out_size
from .layers import Dropout, Identity, Layer, Linear, NoisyShift, ReLU, Sigmoid, Tanh
from .network import CNN_EVAL_CHUNK, EVAL_CHUNK, MLP, Network, Record
from .norms import BatchNorm, GroupNorm, InstanceNorm, LayerNorm, Renorm, WeightNorm
from .residual import Add, Fork, Junction, Shortcut

__all__ = ["MLP", "Network", "NormSettings", "Record", "build", "build_mlp", "build_model",
           "cnn_layers", "init_args", "init_std", "layer_list", "mlp_layers", "resnet_layers"]

ACTIVATIONS = {"relu": ReLU, "sigmoid": Sigmoid, "tanh": Tanh, "identity": Identity}
NORM_LAYERS = {"batch": BatchNorm, "layer": LayerNorm, "group": GroupNorm,
               "instance": InstanceNorm}
# Every setting some norm layer takes by name (each takes its own from these).
NORM_OPTIONS = {k for cls in NORM_LAYERS.values() for k in cls.OPTIONS}
IMAGE_SHAPE = IMAGE_SHAPES["mnist5k"]  # what a CNN takes unless its dataset says otherwise


def init_std(weight_scale: float | str, fan_in: int) -> float:
    """Std of the Gaussian initial weights: a number is used as is ("Deep
    Learning from Scratch" ch. 6); ``he`` = sqrt(2/fan_in); ``xavier`` =
    sqrt(1/fan_in) (the book's definitions)."""
    if weight_scale == "he":
        return float(np.sqrt(2.0 / fan_in))
    if weight_scale == "xavier":
        return float(np.sqrt(1.0 / fan_in))
    if isinstance(weight_scale, str):
        raise ValueError(f"weight_scale: got {weight_scale!r}, expected a number or one of "
                         f"{', '.join(INIT_NAMES)}")
    return float(weight_scale)


def init_args(weight_scale: float | str, fan_in: int, fan_out: int) -> dict:
    """How a Linear or Conv2d draws its initial weights (and bias): ``std`` of
    a Gaussian (a number, ``he``, ``xavier``, ``glorot_normal``), or ``bound``
    of a uniform (``glorot_uniform``; ``kaiming_uniform``, PyTorch's default,
    with its bias drawn from the same bound). Fans as PyTorch counts them:
    fan_in = inputs x kernel area, fan_out = outputs x kernel area."""
    if weight_scale == "kaiming_uniform":  # kaiming_uniform_(a=sqrt(5)): 1/sqrt(fan_in)
        bound = 1.0 / math.sqrt(fan_in)
        return {"std": None, "bound": bound, "bias_bound": bound}
    if weight_scale == "glorot_uniform":
        return {"std": None, "bound": math.sqrt(6.0 / (fan_in + fan_out))}
    if weight_scale == "glorot_normal":
        return {"std": math.sqrt(2.0 / (fan_in + fan_out))}
    return {"std": init_std(weight_scale, fan_in)}


class NormSettings:
    """Which normalization a builder inserts where a layer list says ``norm``
    (``kind``: one of NORMS), Santurkar et al.'s ``noise`` after it, and the
    settings the norm layer takes by name (``options``: PyTorch's BatchNorm
    defaults where not given; each layer takes the ones it declares)."""

    DEFAULTS = {"momentum": 0.1, "eps": 1e-5, "affine": True, "track_running_stats": True}

    def __init__(self, kind: str = "none", groups: int = 4, noise: float = 0.0,
                 **options) -> None:
        unknown = sorted(set(options) - NORM_OPTIONS)
        if unknown:
            raise ValueError(f"norm setting {unknown[0]!r}: no norm layer takes it "
                             f"(they take {', '.join(sorted(NORM_OPTIONS))})")
        self.kind, self.noise = kind, noise
        self.options = {**self.DEFAULTS, **options, "groups": groups}

    @classmethod
    def from_config(cls, model, norm) -> NormSettings:
        """From a config's model and norm sections: every norm field that a norm
        layer takes, by its name; batch renorm's fields as one ``Renorm``."""
        options = {f.name: getattr(norm, f.name) for f in dataclasses.fields(norm)
                   if f.name in NORM_OPTIONS}
        options["renorm"] = Renorm.from_config(norm)
        return cls(model.norm, model.groups, norm.noise, **options)

    def make(self, channels: int, dtype) -> Layer:
        if self.kind not in NORM_LAYERS:
            raise ValueError(f"norm: got {self.kind!r}, expected one of {', '.join(NORMS)}")
        return NORM_LAYERS[self.kind].from_settings(channels, self.options, dtype)


# A layer list is a list of (kind, options) pairs:
#   ("linear", {"out": width or None for the classes, "bias": bool})
#   ("conv", {"out": channels, "kernel": k, "stride": s, "padding": p, "bias": bool})
#   ("norm", {}), ("act", {"fn": name}), ("dropout", {"p": p}),
#   ("maxpool" | "avgpool", {"kernel": k, "stride": s}), ("flatten", {}), ("gap", {})
#   ("fork", {}), ("shortcut", {}), ("add", {"projection": bool}): a residual block
#     (``residual``): fork, the body, then shortcut and the projection's layers
#     when it has one, then add
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


def _conv(block: shapes.ConvBlock, norm: str, placement: str, bias: bool | None = None
          ) -> Spec:
    return ("conv", {"out": block.out, "kernel": block.kernel, "stride": block.stride,
                     "padding": block.padding,
                     "bias": _bias(norm, placement) if bias is None else bias,
                     "weight_norm": norm == "weight"})


def cnn_layers(blocks: Sequence[shapes.ConvBlock | int], *, kernel: int = 3, pool: str = "max",
               pool_window: tuple[int, int] = (2, 2), head: str = "flatten",
               hidden: Sequence[int] = (), activation: str = "relu", norm: str = "none",
               placement: str = "before", dropout: float = 0.0,
               dropout_at: str = "blocks") -> list[Spec]:
    """Per conv block: Conv(k x k, its stride and padding) -> [Norm, Act] ->
    pooling (``pool``: max, avg or none, over ``pool_window`` = (window,
    stride)); then Flatten or global average pooling (``head``); then the
    MLP's hidden blocks and the output Linear. A block given as a channel
    count is a ``kernel`` x ``kernel`` convolution, stride 1, padded to keep
    the size."""
    _check_choices(activation, norm, placement)
    if pool not in POOLS:
        raise ValueError(f"pool: got {pool!r}, expected one of {', '.join(POOLS)}")
    if head not in HEADS:
        raise ValueError(f"head: got {head!r}, expected one of {', '.join(HEADS)}")
    specs: list[Spec] = []
    for block in blocks:
        if not isinstance(block, shapes.ConvBlock):
            block = shapes.ConvBlock(block, kernel, 1, kernel // 2)
        specs.append(_conv(block, norm, placement))
        specs += _block_tail(norm, placement, activation,
                             dropout if dropout_at == "blocks" else 0.0)
        if pool != "none":
            specs.append((f"{pool}pool", {"kernel": pool_window[0], "stride": pool_window[1]}))
    specs.append(("flatten" if head == "flatten" else "gap", {}))
    return specs + mlp_layers(hidden, activation=activation, norm=norm, placement=placement,
                              dropout_at=dropout_at,
                              dropout=dropout)


def basic_block(c_in: int, c_out: int, stride: int, *, activation: str, norm: str,
                placement: str) -> list[Spec]:
    """He et al. 2016's basic block: two 3 x 3 convolutions (the first with
    ``stride``) and a shortcut, the identity where the shape is kept, else a
    1 x 1 convolution with ``stride`` (their option B). Norm before the
    activation: conv -> norm -> act -> conv -> norm, (+) shortcut (its conv
    -> norm), act. After: conv -> act -> norm -> conv, (+) shortcut (its
    conv), act -> norm."""
    k = shapes.RESNET_STEM
    project = stride != 1 or c_in != c_out
    act: Spec = ("act", {"fn": activation})
    normed = norm not in ("none", "weight")
    specs: list[Spec] = [("fork", {}), _conv(shapes.ConvBlock(c_out, k, stride, 1), norm, placement)]
    specs += _block_tail(norm, placement, activation, 0.0)
    specs.append(_conv(shapes.ConvBlock(c_out, k, 1, 1), norm, placement))
    if normed and placement == "before":
        specs.append(("norm", {}))
    if project:
        specs += [("shortcut", {}), _conv(shapes.ConvBlock(c_out, 1, stride, 0), norm, placement)]
        if normed and placement == "before":
            specs.append(("norm", {}))
    specs += [("add", {"projection": project}), act]
    if normed and placement == "after":
        specs.append(("norm", {}))
    return specs


def resnet_layers(channels: Sequence[int], blocks: int, *, hidden: Sequence[int] = (), activation: str = "relu", norm: str = "none",
                  placement: str = "before") -> list[Spec]:
    """He et al. 2016's CIFAR ResNet (section 4.2): a 3 x 3 stem to
    ``channels[0]`` -> [Norm, Act], then per width in ``channels`` a stage of
    ``blocks`` basic blocks (stride 2 at the start of every stage but the
    first), global average pooling, the MLP's hidden blocks and the output
    Linear. ``[16, 32, 64]`` with 3 blocks is ResNet-20."""
    _check_choices(activation, norm, placement)
    specs = [_conv(shapes.ConvBlock(channels[0], shapes.RESNET_STEM, 1, 1), norm, placement)]
    specs += _block_tail(norm, placement, activation, 0.0)
    c_in = channels[0]
    for width, stride in shapes.resnet_stages(channels):
        for i in range(blocks):
            specs += basic_block(c_in, width, stride if i == 0 else 1, activation=activation,
                                 norm=norm, placement=placement)
            c_in = width
    specs.append(("gap", {}))
    return specs + mlp_layers(hidden, activation=activation, norm=norm, placement=placement)


class _Builder:
    """The state of ``build`` between layers: the current sample shape, the
    block count, and the layers and names made so far. One method per layer
    kind returns the (name, layer) it makes, drawing weights from ``rng`` in
    layer order."""

    def __init__(self, in_shape, classes: int, rng: np.random.Generator, norm: NormSettings,
                 weight_scale: float | str, dtype) -> None:
        self.shape, self.classes, self.rng, self.norm = tuple(in_shape), classes, rng, norm
        self.weight_scale, self.dtype = weight_scale, dtype
        self.block = self.residual = 0
        self.open: list[tuple[Junction, tuple]] = []  # residual blocks begun, not yet added
        self.layers: list[Layer] = []
        self.names: list[str] = []

    def linear(self, opt: dict) -> tuple[str, Layer]:
        if len(self.shape) != 1:
            raise ValueError(f"linear after a {len(self.shape)}-D output {self.shape}: "
                             "flatten first")
        out = self.classes if opt["out"] is None else opt["out"]
        name = "linear_out" if opt["out"] is None else f"linear{self.block + 1}"
        self.block += opt["out"] is not None
        layer = Linear(self.shape[0], out, opt["bias"], rng=self.rng, dtype=self.dtype,
                       **init_args(self.weight_scale, self.shape[0], out))
        self.shape = (out,)
        return name, layer

    def conv(self, opt: dict) -> tuple[str, Layer]:
        if len(self.shape) != 3:
            raise ValueError(f"conv needs (C, H, W) inputs, got {self.shape}")
        self.block += 1
        k, s, p = opt["kernel"], opt["stride"], opt["padding"]
        C, H, W = self.shape
        layer = Conv2d(C, opt["out"], k, s, p, opt["bias"], rng=self.rng, dtype=self.dtype,
                       **init_args(self.weight_scale, C * k * k, opt["out"] * k * k))
        self.shape = (opt["out"], out_size(H, k, s, p), out_size(W, k, s, p))
        return f"conv{self.block}", layer

    def norm_layer(self, opt: dict) -> tuple[str, Layer]:
        name, layer = f"{self.norm.kind}norm{self.block}", self.norm.make(self.shape[0],
                                                                          self.dtype)
        if self.norm.noise > 0:  # the noise layer follows (its stream: after the loop)
            self.names.append(name)
            self.layers.append(layer)
            name, layer = f"noise{self.block}", NoisyShift(self.norm.noise, rng=None)
        return name, layer

    def act(self, opt: dict) -> tuple[str, Layer]:
        return f"{opt['fn']}{self.block}", ACTIVATIONS[opt["fn"]]()

    def dropout(self, opt: dict) -> tuple[str, Layer]:
        rng = np.random.default_rng(self.rng.integers(2**63))
        return f"dropout{self.block}", Dropout(opt["p"], rng=rng)

    def pool(self, kind: str, opt: dict) -> tuple[str, Layer]:
        k, s = opt["kernel"], opt.get("stride", opt["kernel"])
        layer = (MaxPool2d if kind == "maxpool" else AvgPool2d)(k, s)
        self.shape = (self.shape[0], out_size(self.shape[1], k, s, 0),
                      out_size(self.shape[2], k, s, 0))
        return f"{kind}{self.block}", layer

    def junction(self, kind: str, opt: dict) -> tuple[str, Layer]:
        """The marker layers of a residual block (``residual``): the fork keeps
        the shape it was given, which the shortcut's branch starts from and the
        add must meet."""
        if kind == "fork":
            self.residual += 1
            self.open.append((Junction(), self.shape))
            return f"fork{self.residual}", Fork(self.open[-1][0])
        if not self.open:
            raise ValueError(f"{kind} without a fork before it")
        junction, start = self.open[-1]
        if kind == "shortcut":
            self.open[-1] = (junction, self.shape)  # the add meets the body's output
            self.shape = start
            return f"shortcut{self.residual}", Shortcut(junction, projection=True)
        self.open.pop()
        if self.shape != start:
            raise ValueError(f"add{self.residual}: the block gives {self.shape} but its shortcut "
                             f"{start}: a block that changes the shape needs a projection")
        return f"add{self.residual}", Add(junction, projection=opt["projection"])

    def head(self, kind: str) -> tuple[str, Layer]:
        if kind == "flatten":
            self.shape = (math.prod(self.shape),)
            return kind, Flatten()
        self.shape = (self.shape[0],)
        return kind, GlobalAvgPool()

    def add(self, kind: str, opt: dict) -> None:
        if kind in ("linear", "conv", "act", "dropout"):
            name, layer = getattr(self, kind)(opt)
        elif kind == "norm":
            name, layer = self.norm_layer(opt)
        elif kind in ("maxpool", "avgpool"):
            name, layer = self.pool(kind, opt)
        elif kind in ("flatten", "gap"):
            name, layer = self.head(kind)
        elif kind in ("fork", "shortcut", "add"):
            name, layer = self.junction(kind, opt)
        else:
            raise ValueError(f"unknown layer kind {kind!r}")
        if opt.get("weight_norm"):
            layer = WeightNorm(layer)
        if min(self.shape) < 1:
            raise ValueError(f"{name}: output shape {self.shape} is empty")
        self.names.append(name)
        self.layers.append(layer)


def build(specs: Sequence[Spec], in_shape: Sequence[int], classes: int, *,
          rng: np.random.Generator, norm: NormSettings | None = None,
          weight_scale: float | str = "he", dtype=np.float32,
          kernels: str | Backend = "numpy") -> Network:
    """The network a layer list describes, for samples of shape ``in_shape``
    ((D,) for rows, (C, H, W) for images). Weights are drawn from ``rng`` in
    layer order; each Dropout gets its own stream drawn from it in turn.

    Names: ``linear{i}`` / ``conv{i}`` for the i-th weight layer and
    ``{norm}norm{i}``, ``{act}{i}``, ``dropout{i}``, ``{max|avg}pool{i}`` for
    what follows it; ``flatten``, ``gap`` and ``linear_out`` (the logits)."""
    b = _Builder(in_shape, classes, rng, norm or NormSettings(), weight_scale, dtype)
    for kind, opt in specs:
        b.add(kind, opt)
    if b.open:
        raise ValueError(f"fork{b.residual}: a residual block with no add")
    for layer in b.layers:  # drawn after every weight, so noise leaves the weights as they were
        if isinstance(layer, NoisyShift):
            layer.rng = np.random.default_rng(rng.integers(2**63))
    spatial = len(in_shape) > 1
    return Network(b.layers, b.names, dtype, input_shape=tuple(in_shape) if spatial else None,
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
    settings = NormSettings(norm, groups, momentum=momentum, eps=eps, affine=affine,
                            track_running_stats=track_running_stats, convention=convention)
    return build(specs, (in_dim,), out_dim, rng=rng, norm=settings, weight_scale=weight_scale,
                 dtype=dtype, kernels=kernels)


def layer_list(cfg) -> list[Spec]:
    """The layer list a config's model section describes."""
    m = cfg.model
    common = {"activation": m.activation, "norm": m.norm, "placement": m.placement}
    if m.arch == "resnet":
        return resnet_layers(m.channels, m.blocks, hidden=m.hidden, **common)
    common.update(dropout=m.dropout, dropout_at=m.dropout_at)
    if m.arch == "cnn":
        return cnn_layers(shapes.cnn_blocks(m), pool=m.pool, pool_window=shapes.pool_window(m),
                          head=m.head, hidden=m.hidden, **common)
    return mlp_layers(m.hidden, **common)


def build_model(cfg, in_dim: int, classes: int, rng: np.random.Generator) -> Network:
    """The network a config describes, for samples of ``in_dim`` values and
    ``classes`` classes, on the config's backend (``train.kernels``)."""
    m = cfg.model
    image = image_shape(cfg.data) or IMAGE_SHAPE
    in_shape = image if m.arch != "mlp" else (in_dim,)
    if m.arch != "mlp" and in_dim != math.prod(image):
        raise ValueError(f"model.arch {m.arch} needs {'x'.join(map(str, image))} images, "
                         f"got samples of {in_dim} values")
    return build(layer_list(cfg), in_shape, classes, rng=rng,
                 norm=NormSettings.from_config(m, cfg.norm),
                 weight_scale=cfg.init.weight_scale, dtype=np.dtype(cfg.train.dtype),
                 kernels=cfg.train.kernels)
