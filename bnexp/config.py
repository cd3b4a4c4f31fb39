"""Experiment configuration: frozen dataclasses with a default for every key,
built from YAML and validated in one place.

Every problem is collected and reported at once, one line each, as
``dotted.key: got VALUE, expected WHAT``.
"""

from __future__ import annotations

import dataclasses
import difflib
import importlib.util
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from . import shapes
from .choices import (
    ACTIVATIONS,
    ARCHS,
    CONVENTIONS,
    DATASETS,
    DTYPES,
    HEADS,
    IMAGE_SHAPES,
    INIT_NAMES,
    KERNELS,
    NORMS,
    OPTIMIZERS,
    PLACEMENTS,
    POOLS,
    PREPROCESS,
    RENORM_RUNNING,
    SAMPLING,
)
from .errors import BnexpError
from .shapes import PADDING_NAMES
from .yamlio import YamlError, dump_yaml, parse_value, read_yaml


class ConfigError(BnexpError):
    """One or more configuration problems, one line each."""

    def __init__(self, errors: list[str]) -> None:
        self.errors = list(errors)
        super().__init__("\n".join(self.errors))


# --- field checks: each returns (value, None) or (None, "expected ...") -----------

Check = Callable[[Any], tuple[Any, str | None]]


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _as_float(v: Any) -> float | None:
    """A number, or a string YAML 1.1 left unparsed such as ``1e-5``."""
    if _is_number(v):
        return float(v)
    if isinstance(v, str):
        try:
            return float(v)
        except ValueError:
            return None
    return None


def integer(lo: int | None = None, hi: int | None = None, allow_none: bool = False) -> Check:
    if lo is not None and hi is not None:
        want = f"an integer from {lo} to {hi:,}"
    else:
        want = "an integer" + (f" >= {lo}" if lo is not None else "") + (
            f" <= {hi:,}" if hi is not None else "")
    want += " or null" if allow_none else ""

    def check(v):
        if v is None and allow_none:
            return None, None
        if isinstance(v, bool) or not isinstance(v, int):
            return None, want
        if (lo is not None and v < lo) or (hi is not None and v > hi):
            return None, want
        return v, None
    return check


def number(lo: float | None = None, hi: float | None = None, lo_open: bool = False,
           allow_none: bool = False) -> Check:
    if lo is not None and hi is not None:
        want = f"a number in {'(' if lo_open else '['}{lo:g}, {hi:g}]"
    elif lo is not None:
        want = f"a number {'>' if lo_open else '>='} {lo:g}"
    else:
        want = "a number"
    want += " or null" if allow_none else ""

    def check(v):
        if v is None and allow_none:
            return None, None
        f = _as_float(v)
        if f is None:
            return None, want
        if not math.isfinite(f):
            return None, f"a finite number ({want}; not inf or nan)"
        if lo is not None and (f <= lo if lo_open else f < lo):
            return None, want
        if hi is not None and f > hi:
            return None, want
        return f, None
    return check


def choice(options: tuple[str, ...]) -> Check:
    want = "one of " + ", ".join(options)

    def check(v):
        return (v, None) if isinstance(v, str) and v in options else (None, want)
    return check


def boolean(v):
    return (v, None) if isinstance(v, bool) else (None, "true or false")


def boolean_or_null(v):
    return (v, None) if v is None or isinstance(v, bool) else (None, "true, false or null")


def optional_path(v):
    return (v, None) if v is None or isinstance(v, str) else (None, "a directory path or null")


def word(v):
    """A run or sweep name: one folder name (no '/', no control characters, not
    hidden, at most 255 bytes: what file systems allow in one name)."""
    ok = (isinstance(v, str) and v.strip() == v and v and "/" not in v and "\\" not in v
          and not v.startswith(".") and all(ord(c) >= 32 and ord(c) != 127 for c in v)
          and len(v.encode("utf-8", "surrogatepass")) <= 255)
    return (v, None) if ok else (None, "a folder name: not empty, no '/', no control "
                                       "characters, not starting with '.', at most 255 bytes")


MAX_WIDTH, MAX_LAYERS = 100_000, 100
MAX_PARAMS = 100_000_000  # 400 MB of float32 weights, 800 MB of float64
MAX_SAMPLES = 10_000_000
MAX_WEIGHT_SCALE = 1e6
MIN_EPS = 1e-30  # a norm's eps: above float32's smallest normal (1.2e-38), so never 0
MAX_SYNTHETIC_VALUES = 100_000_000  # n x dim floats of a synthetic dataset (800 MB)


def widths(allow_empty: bool = False, allow_none: bool = False, example: str = "[100, 100]"
           ) -> Check:
    least = 0 if allow_empty else 1
    count = f"at most {MAX_LAYERS}" if allow_empty else f"1 to {MAX_LAYERS}"
    want = f"a list of {count} integers from 1 to {MAX_WIDTH:,}, e.g. {example}"
    want += " (or null: the default for model.arch)" if allow_none else ""

    def check(v):
        if v is None and allow_none:
            return None, None
        if isinstance(v, int) and not isinstance(v, bool):
            v = [v]
        if not isinstance(v, (list, tuple)) or len(v) < least or len(v) > MAX_LAYERS:
            return None, want
        if any(isinstance(w, bool) or not isinstance(w, int) or not 1 <= w <= MAX_WIDTH
               for w in v):
            return None, want
        return tuple(v), None
    return check


MAX_KERNEL = 15


def _one_padding(v) -> bool:
    return v in PADDING_NAMES or (isinstance(v, int) and not isinstance(v, bool)
                                  and 0 <= v < MAX_KERNEL)


def paddings(v):
    """same | valid | zeros per side, or a list of those, one per conv block."""
    if _one_padding(v):
        return v, None
    if isinstance(v, (list, tuple)) and 1 <= len(v) <= MAX_LAYERS and all(map(_one_padding, v)):
        return tuple(v), None
    return None, ("same, valid, a number of zeros from 0 to kernel - 1, or a list of those, one "
                  "per conv block (e.g. [2, valid])")


def strides(v):
    """A conv stride from 1 to MAX_KERNEL, or a list of those, one per conv block."""
    def one(s):
        return isinstance(s, int) and not isinstance(s, bool) and 1 <= s <= MAX_KERNEL
    if one(v):
        return v, None
    if isinstance(v, (list, tuple)) and 1 <= len(v) <= MAX_LAYERS and all(map(one, v)):
        return tuple(v), None
    return None, f"an integer from 1 to {MAX_KERNEL}, or a list of those, one per conv block"


def weight_scale(v):
    if isinstance(v, str) and v in INIT_NAMES:
        return v, None
    f = _as_float(v)
    if f is not None and 0 < f <= MAX_WEIGHT_SCALE:
        return f, None
    return None, (f"a positive number up to {MAX_WEIGHT_SCALE:,.0f} (the Gaussian std; larger "
                  "weights overflow float32 within a few layers), or one of "
                  f"{', '.join(INIT_NAMES)}")


def spec(default: Any, check: Check, help: str = "") -> Any:
    """A dataclass field with its validator in the metadata."""
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: default, metadata={"check": check, "help": help})
    return field(default=default, metadata={"check": check, "help": help})


# --- the sections ----------------------------------------------------------------

@dataclass(frozen=True)
class DataConfig:
    dataset: str = spec("mnist5k", choice(DATASETS))
    n_train: int | None = spec(1000, integer(lo=1, hi=MAX_SAMPLES, allow_none=True), "null = all")
    n_test: int | None = spec(1000, integer(lo=1, hi=MAX_SAMPLES, allow_none=True), "null = all")
    root: str | None = spec(None, optional_path)
    preprocess: str = spec("scale", choice(PREPROCESS))
    dim: int = spec(20, integer(lo=1, hi=100_000), "synthetic only: features")
    classes: int = spec(10, integer(lo=2, hi=10_000), "synthetic only: clusters")



MLP_HIDDEN = (100, 100, 100, 100, 100)  # model.hidden when null, by model.arch
CNN_HIDDEN = ()


@dataclass(frozen=True)
class ModelConfig:
    arch: str = spec("mlp", choice(ARCHS),
                     "mlp | cnn | resnet (He et al. 2016's CIFAR ResNet; image datasets)")
    hidden: tuple[int, ...] | None = spec(
        None, widths(allow_empty=True, allow_none=True),
        "fully connected widths; null = [100, 100, 100, 100, 100] (mlp), [] (cnn, resnet)")
    channels: tuple[int, ...] | None = spec(
        None, widths(example="[16, 32]", allow_none=True),
        "cnn: a conv block per entry | resnet: a stage per entry; null = [16, 32] (cnn), "
        "[16, 32, 64] (resnet)")
    kernel: int = spec(3, integer(lo=1, hi=MAX_KERNEL), "cnn only: k x k convolutions")
    stride: int | tuple[int, ...] = spec(1, strides, "cnn only: the convolutions' stride, or "
                                         "a list, one per conv block")
    padding: str | int | tuple = spec("same", paddings,
                                      "cnn only: same (k // 2, odd kernels) | valid (0) | zeros "
                                      "per side, 0 to k - 1 | a list, one per conv block")
    pool: str = spec("max", choice(POOLS), "cnn only: pooling after each conv block")
    pool_kernel: int = spec(2, integer(lo=1, hi=MAX_KERNEL), "cnn only: the pooling window")
    pool_stride: int | None = spec(None, integer(lo=1, hi=MAX_KERNEL, allow_none=True),
                                   "cnn only: null = the window (PyTorch's default)")
    head: str = spec("flatten", choice(HEADS), "cnn only: flatten or global average pooling")
    blocks: int = spec(3, integer(lo=1, hi=100), "resnet only: basic blocks per stage (3: "
                       "ResNet-20, 6 x 3 + 2 weight layers)")
    activation: str = spec("relu", choice(ACTIVATIONS))
    norm: str = spec("batch", choice(NORMS))
    placement: str = spec("before", choice(PLACEMENTS))
    groups: int = spec(4, integer(lo=1))
    dropout: float = spec(0.0, number(lo=0.0, hi=0.99))
    dropout_at: str = spec("blocks", choice(("blocks", "head")),
                           "blocks: after every block (before the next norm) | head: once, "
                           "before the output layer")


@dataclass(frozen=True)
class NormConfig:
    momentum: float | None = spec(0.1, number(lo=0.0, hi=1.0, allow_none=True))
    eps: float = spec(1e-5, number(lo=MIN_EPS),
                      "> 0: keeps 1/sqrt(var + eps) finite where a batch's variance is 0")
    affine: bool | None = spec(None, boolean_or_null,
                               "null = the norm's PyTorch default (false for instance)")
    track_running_stats: bool | None = spec(
        None, boolean_or_null, "null = the norm's PyTorch default (false for instance)")
    convention: str = spec("pytorch", choice(CONVENTIONS),
                           "running_var: unbiased, starts at 1 | biased, starts at 0")
    ghost_batch: int | None = spec(None, integer(lo=1, hi=MAX_SAMPLES, allow_none=True),
                                   "batch norm: statistics per group of this many samples")
    renorm: bool = spec(False, boolean, "batch renormalization (Ioffe 2017), train mode")
    rmax: float = spec(3.0, number(lo=1.0), "batch renorm: the largest r, after warm-up")
    dmax: float = spec(5.0, number(lo=0.0), "batch renorm: the largest |d|, after warm-up")
    renorm_warmup: int = spec(0, integer(lo=0), "batch renorm: steps over which rmax and dmax "
                              "grow from 1 and 0, after norm.renorm_bn_steps")
    renorm_bn_steps: int = spec(100, integer(lo=0),
                                "batch renorm: steps of plain BN (r = 1, d = 0) first, while the "
                                "running statistics settle (Ioffe 2017, section 4)")
    renorm_running: str = spec("sigma", choice(RENORM_RUNNING),
                               "batch renorm's running statistics: sigma: mean and sqrt(var + eps) "
                               "(Ioffe 2017, Algorithm 1) | variance: mean and variance, as plain "
                               "BN's (norm.convention)")
    gamma_init: float = spec(1.0, number(lo=0.0, hi=1e6),
                             "batch norm: gamma's starting value (0: Goyal et al. 2017's "
                             "zero-init, every output starts at beta)")
    noise: float = spec(0.0, number(lo=0.0, hi=10.0),
                        "> 0: Santurkar et al.'s noisy BN, random drifting scale and shift "
                        "after every norm layer in training")


@dataclass(frozen=True)
class InitConfig:
    weight_scale: float | str = spec(0.01, weight_scale)


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = spec(20, integer(lo=0, hi=100_000))
    batch_size: int = spec(100, integer(lo=1, hi=MAX_SAMPLES))
    optimizer: str = spec("sgd", choice(OPTIMIZERS))
    lr: float = spec(0.01, number(lo=0.0, lo_open=True))
    momentum: float = spec(0.9, number(lo=0.0, hi=0.999))
    nesterov: bool = spec(False, boolean)
    weight_decay: float = spec(0.0, number(lo=0.0))
    dtype: str = spec("float32", choice(DTYPES))
    sampling: str = spec("shuffle", choice(SAMPLING))
    checkpoint_every: int = spec(0, integer(lo=0, hi=100_000),
                                 "epochs between checkpoints (resume after a kill); 0 = off")
    kernels: str = spec("numpy", choice(KERNELS),
                        "numpy: the reference engine | numba: compiled, fused kernels for "
                        "convolution, batch norm, ReLU, max pooling, the loss and the optimizer "
                        "(pip install \"bnexp[fast]\"); agrees with numpy to float32 rounding")


@dataclass(frozen=True)
class EvalConfig:
    every: int = spec(1, integer(lo=1))
    diagnostics_every: int = spec(0, integer(lo=0))
    step_loss: bool = spec(False, boolean)
    landscape_every: int = spec(0, integer(lo=0),
                                "steps between loss-landscape probes along the gradient "
                                "(Santurkar et al.); 0 = off")
    ics_every: int = spec(0, integer(lo=0),
                          "steps between measurements of internal covariate shift "
                          "(Santurkar et al.); 0 = off")
    precise_bn: int = spec(0, integer(lo=0, hi=100_000),
                           "batches to recompute BN's running statistics over after "
                           "training (precise BN); 0 = off")


@dataclass(frozen=True)
class Config:
    name: str = spec("run", word)
    seed: int = spec(0, integer(lo=0))
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    norm: NormConfig = field(default_factory=NormConfig)
    init: InitConfig = field(default_factory=InitConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)

    def to_dict(self) -> dict[str, Any]:
        return to_plain(self)

    def get(self, dotted: str) -> Any:
        obj: Any = self
        for part in dotted.split("."):
            obj = getattr(obj, part)
        return obj


SECTIONS = {"data": DataConfig, "model": ModelConfig, "norm": NormConfig,
            "init": InitConfig, "train": TrainConfig, "eval": EvalConfig}


def all_keys() -> list[str]:
    """Every dotted key a config may set."""
    keys = [f.name for f in fields(Config) if f.name not in SECTIONS]
    for section, cls in SECTIONS.items():
        keys += [f"{section}.{f.name}" for f in fields(cls)]
    return keys


def dotted(raw: Mapping, prefix: str = "") -> dict:
    """A config's nested mapping as dotted keys -> values (``train.lr``), as
    given: a saved config that no longer validates flattens all the same."""
    out = {}
    for k, v in raw.items():
        if isinstance(v, Mapping):
            out.update(dotted(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def to_plain(obj: Any) -> Any:
    """Dataclasses and tuples to dicts and lists, for YAML and JSON."""
    if dataclasses.is_dataclass(obj):
        return {f.name: to_plain(getattr(obj, f.name)) for f in fields(obj)}
    if isinstance(obj, tuple):
        return [to_plain(v) for v in obj]
    return obj


def show(v: Any) -> str:
    """A value as the user wrote it, in YAML flow style."""
    if isinstance(v, str):
        return repr(v)
    return yaml.safe_dump(to_plain(v), default_flow_style=True).strip().removesuffix("\n...")


def unknown_key(key: str) -> str:
    """``key: unknown key (did you mean ...?)`` for a dotted key no config has."""
    if key in SECTIONS:
        first = next(f.name for f in fields(SECTIONS[key]))
        return (f"{key}: is a section, not a key; set one of its keys, e.g. "
                f"{key}.{first}=... (keys: {', '.join(f.name for f in fields(SECTIONS[key]))})")
    close = difflib.get_close_matches(key, all_keys() + list(SECTIONS), n=1, cutoff=0.6)
    if not close:  # maybe the right key in the wrong section
        leaf = key.rsplit(".", 1)[-1]
        close = [k for k in all_keys() if k.rsplit(".", 1)[-1] == leaf][:1]
    hint = f" (did you mean {close[0]}?)" if close else ""
    return f"{key}: unknown key{hint}"


def _section(cls, raw: Any, prefix: str, errors: list[str]):
    values = {}
    if raw is None:
        raw = {}
    if not isinstance(raw, Mapping):
        errors.append(f"{prefix}: got {show(raw)}, expected a mapping of keys")
        return None
    names = {f.name: f for f in fields(cls)}
    for key in raw:
        if key not in names:
            errors.append(unknown_key(f"{prefix}.{key}" if prefix else str(key)))
    for name, f in names.items():
        if name not in raw or (not prefix and name in SECTIONS):
            continue
        value, problem = f.metadata["check"](raw[name])
        dotted = f"{prefix}.{name}" if prefix else name
        if problem:
            errors.append(f"{dotted}: got {show(raw[name])}, expected {problem}")
        else:
            values[name] = value
    return values


CNN_ONLY = ("channels", "kernel", "stride", "padding", "pool", "pool_kernel", "pool_stride",
            "head")  # model keys an mlp refuses
CONV_ONLY = ("kernel", "stride", "padding", "pool", "pool_kernel", "pool_stride", "head")
RESNET_ONLY = ("blocks",)
CNN_CHANNELS, RESNET_CHANNELS = (16, 32), (16, 32, 64)  # model.channels when null


def cnn_keys_dropped(raw: Mapping) -> dict:
    """``raw`` without the CNN-only model keys where it describes an mlp. A
    sweep over ``model.arch`` sets them once for its cnn points; its mlp
    points are the MLP they describe (and say so in their config.yaml)."""
    model = raw.get("model") if isinstance(raw, Mapping) else None
    if not isinstance(model, Mapping) or model.get("arch", "mlp") != "mlp":
        return dict(raw)
    return {**raw, "model": {k: v for k, v in model.items() if k not in CNN_ONLY}}


def _unused(m: ModelConfig, keys: tuple[str, ...], allowed: str, errors: list[str]) -> None:
    """A key set away from its default where the architecture has no use for it."""
    for key in keys:
        value = getattr(m, key)
        default = ModelConfig.__dataclass_fields__[key].default
        if key == "channels" and m.arch == "mlp":
            default = CNN_CHANNELS  # what an mlp's config.yaml has always said
        if value != default:
            shown = show(list(value) if isinstance(value, tuple) else value)
            errors.append(f"model.{key}: got {shown}, used only with model.arch {allowed!r}; "
                          f"remove it, or set model.arch: {allowed}")


def _group_check(m: ModelConfig, errors: list[str]) -> None:
    normed = [*(m.channels if m.arch != "mlp" else ()), *m.hidden]  # what a norm layer sees
    if m.norm != "group" or not normed:
        return
    bad = [w for w in normed if w % m.groups]
    if bad:
        g = math.gcd(*normed)
        ok = ", ".join(str(k) for k in range(1, g + 1) if g % k == 0)
        what = "hidden width" if m.arch == "mlp" else "channel count and hidden width"
        errors.append(
            f"model.groups: got {m.groups}, expected a divisor of every {what} "
            f"({', '.join(map(str, sorted(set(bad))))} is not divisible by {m.groups}; "
            f"groups that work: {ok})")


def _conv_checks(m: ModelConfig, errors: list[str]) -> None:
    """Per-block lists of the right length, paddings that fit their kernel."""
    n = len(m.channels)
    for key in ("stride", "padding"):
        value = getattr(m, key)
        if isinstance(value, tuple) and len(value) != n:
            errors.append(f"model.{key}: got {show(list(value))}, expected one value or a list "
                          f"of {n}, one per conv block (model.channels has {n})")
            return
    for p in shapes.per_block(m.padding, n):
        if p == "same" and m.kernel % 2 == 0:
            errors.append(f"model.padding: got 'same', expected a number with the even "
                          f"model.kernel {m.kernel} ('same' keeps the size only for odd kernels)")
            return
        if isinstance(p, int) and p > m.kernel - 1:
            errors.append(f"model.padding: got {p}, expected 0 to {m.kernel - 1} with "
                          f"model.kernel {m.kernel} (more would add outputs that see only zeros)")
            return


def _architecture_checks(m: ModelConfig, errors: list[str]) -> None:
    """Model settings that the architecture or the norm rules out."""
    _group_check(m, errors)
    if m.arch == "mlp":
        _unused(m, CNN_ONLY, "cnn", errors)
        _unused(m, RESNET_ONLY, "resnet", errors)
    elif m.arch == "resnet":
        _unused(m, CONV_ONLY, "cnn", errors)
        if m.dropout:
            errors.append(f"model.dropout: got {m.dropout:g}, expected 0 with model.arch resnet "
                          "(residual blocks here have no dropout)")
    else:
        _unused(m, RESNET_ONLY, "resnet", errors)
        _conv_checks(m, errors)
    if m.norm == "weight" and m.placement == "after":
        errors.append("model.placement: got 'after', expected 'before' with model.norm 'weight' "
                      "(weight norm reparametrizes the layer's own weights: it has no place "
                      "after the activation)")
    if m.arch == "mlp" and not m.hidden:
        errors.append("model.hidden: got [], expected at least one width for model.arch 'mlp'")
    if m.norm == "instance" and m.arch == "mlp":
        errors.append("model.norm: got 'instance', expected none, batch, layer, group or "
                      "weight for model.arch 'mlp' (instance norm normalizes over spatial axes: "
                      "use model.arch cnn)")
    elif m.norm == "instance" and m.hidden:
        errors.append(f"model.hidden: got {show(list(m.hidden))}, expected [] with model.norm "
                      "'instance' (fully connected layers have no spatial axes to normalize "
                      "over)")


def _cross_checks(cfg: Config, errors: list[str]) -> None:
    """Settings that are valid alone but not together (or not on this machine)."""
    _architecture_checks(cfg.model, errors)
    if cfg.train.kernels == "numba" and importlib.util.find_spec("numba") is None:
        errors.append("train.kernels: got 'numba', but numba is not installed here; expected "
                      "numpy, or install it: pip install \"bnexp[fast]\"")
    _image_checks(cfg.model, cfg.data, errors)
    _norm_checks(cfg, errors)
    _data_checks(cfg.data, cfg.train, errors)
    _size_check(cfg, errors)


def image_shape(d: DataConfig) -> tuple[int, int, int] | None:
    """(channels, height, width) of the dataset's samples; None for rows."""
    return IMAGE_SHAPES.get(d.dataset)


def _image_checks(m: ModelConfig, d: DataConfig, errors: list[str]) -> None:
    """A CNN or ResNet needs images, and an image left after its blocks."""
    image = image_shape(d)
    if m.arch != "mlp" and image is None:
        errors.append(f"model.arch: got {m.arch!r}, expected mlp for the {d.dataset} dataset "
                      f"(convolutions need images: {', '.join(IMAGE_SHAPES)})")
        return
    if m.arch != "mlp" and shapes.no_pixel_left(m, image):
        sizes = (shapes.cnn_shapes(m, image) if m.arch == "cnn"
                 else shapes.resnet_shapes(m, image)[1:])
        left = " -> ".join(f"{h}x{w}" for _, h, w in sizes)
        what = "conv blocks" if m.arch == "cnn" else "stages"
        errors.append(f"model.channels: got {show(list(m.channels))}, {len(m.channels)} "
                      f"{what} that shrink {image[1]}x{image[2]} images to nothing ({left}); "
                      "use fewer, or less pooling, stride or kernel")


def _norm_checks(cfg: Config, errors: list[str]) -> None:
    """The norm section's options that only some norms (batch norm, mostly) have."""
    m, t = cfg.model, cfg.train
    if cfg.eval.precise_bn and not (m.norm == "batch" and cfg.norm.track_running_stats):
        errors.append(f"eval.precise_bn: got {cfg.eval.precise_bn}, expected 0 unless "
                      "model.norm is batch with norm.track_running_stats true (it recomputes "
                      "batch norm's running statistics)")
    if cfg.norm.renorm and not (m.norm == "batch" and cfg.norm.track_running_stats
                                and cfg.norm.ghost_batch is None):
        errors.append("norm.renorm: got true, expected false unless model.norm is batch with "
                      "norm.track_running_stats true and no norm.ghost_batch (it corrects batch "
                      "statistics toward the running ones)")
    if cfg.norm.noise and m.norm in ("none", "weight"):
        errors.append(f"norm.noise: got {cfg.norm.noise:g}, expected 0 with model.norm "
                      f"{m.norm!r} (the noise follows a norm layer)")
    if cfg.norm.gamma_init != 1.0 and not (m.norm == "batch" and cfg.norm.affine is not False):
        errors.append(f"norm.gamma_init: got {cfg.norm.gamma_init:g}, expected 1 unless "
                      "model.norm is batch with norm.affine true (it is batch norm's gamma)")
    g = cfg.norm.ghost_batch
    if g is not None and m.norm != "batch":
        errors.append(f"norm.ghost_batch: got {g}, expected null with model.norm {m.norm!r} "
                      "(ghost batches split batch norm's statistics)")
    elif g is not None and t.batch_size % g:
        errors.append(f"norm.ghost_batch: got {g}, expected a divisor of train.batch_size "
                      f"({t.batch_size})")
    elif g is not None and g < 2 and m.arch != "cnn":
        errors.append(f"norm.ghost_batch: got {g}, expected >= 2 with model.arch 'mlp' (a "
                      "ghost batch of one sample normalizes every unit to beta)")
    if m.norm == "batch" and t.batch_size < 2:
        errors.append(f"train.batch_size: got {t.batch_size}, expected >= 2 with model.norm "
                      "'batch' (a batch of one normalizes every unit to beta)")


def _data_checks(d: DataConfig, t: TrainConfig, errors: list[str]) -> None:
    """The split sizes against the batch size and the dataset's own limits."""
    if d.n_train is not None and t.batch_size > d.n_train:
        errors.append(f"train.batch_size: got {t.batch_size}, expected <= data.n_train ({d.n_train})")
    if d.dataset == "mnist5k" and None not in (d.n_train, d.n_test) and d.n_train + d.n_test > 5000:
        errors.append(f"data.n_train: got {d.n_train}, expected n_train + n_test <= 5000 for "
                      f"mnist5k (n_test is {d.n_test})")
    if d.dataset == "synthetic" and None in (d.n_train, d.n_test):
        key = "data.n_train" if d.n_train is None else "data.n_test"
        errors.append(f"{key}: got null, expected an integer >= 1 for the synthetic dataset")
    elif d.dataset == "synthetic" and (d.n_train + d.n_test) * d.dim > MAX_SYNTHETIC_VALUES:
        errors.append(f"data.n_train: got {d.n_train}, expected (n_train + n_test) x dim <= "
                      f"{MAX_SYNTHETIC_VALUES:,} values for the synthetic dataset (dim is "
                      f"{d.dim}, n_test {d.n_test})")


def _size_check(cfg: Config, errors: list[str]) -> None:
    """At most MAX_PARAMS parameters (a CNN with no pixel left has no size to check)."""
    m = cfg.model
    image = image_shape(cfg.data)
    if m.arch != "mlp" and (image is None or shapes.no_pixel_left(m, image)):
        return
    params = param_count(cfg, *data_shape(cfg))
    if params > MAX_PARAMS:
        cnn = m.arch != "mlp"
        key, value = ("model.channels", m.channels) if cnn else ("model.hidden", m.hidden)
        errors.append(f"{key}: got {show(list(value))}, a model of {params:,} "
                      f"parameters; at most {MAX_PARAMS:,} (memory)")


def from_dict(raw: Any, errors: list[str] | None = None) -> Config:
    """Validate a plain mapping (from YAML) into a Config; raise ConfigError
    listing every problem (after any already in ``errors``)."""
    errors = list(errors or [])
    if raw is None:
        raw = {}
    if not isinstance(raw, Mapping):
        raise ConfigError([f"config: got {show(raw)}, expected a mapping of keys"])
    # The sweep and report sections belong to `bnexp sweep` and `bnexp report`.
    raw = {k: v for k, v in raw.items() if k not in ("sweep", "report")}
    top = _section(Config, raw, "", errors) or {}
    for name, cls in SECTIONS.items():
        values = _section(cls, raw.get(name), name, errors)
        if values is not None:
            try:
                top[name] = cls(**values)
            except TypeError as exc:  # pragma: no cover - guarded by _section
                errors.append(f"{name}: {exc}")
    if errors:
        raise ConfigError(errors)
    cfg = _resolve(Config(**top))
    _cross_checks(cfg, errors)
    if errors:
        raise ConfigError(errors)
    return cfg


def _resolve(cfg: Config) -> Config:
    """Fill the keys whose default depends on others (null in the file): the
    resolved config, and so a run's config.yaml, always holds the values used."""
    m, n = cfg.model, cfg.norm
    if m.hidden is None:
        m = dataclasses.replace(m, hidden=MLP_HIDDEN if m.arch == "mlp" else CNN_HIDDEN)
    if m.channels is None:
        m = dataclasses.replace(m, channels=RESNET_CHANNELS if m.arch == "resnet"
                                else CNN_CHANNELS)
    if m.arch == "cnn" and m.pool_stride is None:
        m = dataclasses.replace(m, pool_stride=m.pool_kernel)
    instance = m.norm == "instance"  # PyTorch's InstanceNorm: no affine, no running stats
    if n.affine is None:
        n = dataclasses.replace(n, affine=not instance)
    if n.track_running_stats is None:
        n = dataclasses.replace(n, track_running_stats=not instance)
    return dataclasses.replace(cfg, model=m, norm=n)


IMAGE_SIZE = 28  # mnist5k, MNIST and Fashion-MNIST: 1 x 28 x 28


IMAGE_CLASSES = 10  # mnist5k, MNIST and Fashion-MNIST


def steps_per_epoch(cfg: Config, n_train: int) -> int:
    """Full batches only: every step sees exactly ``batch_size`` samples (a
    short last batch would change BN's statistics); a new shuffle each epoch
    means every sample is still seen."""
    return max(n_train // cfg.train.batch_size, 1)


def data_shape(cfg: Config) -> tuple[int, int]:
    """Values per sample and classes of the config's data, known without
    loading it (an image dataset's pixels, all channels, and 10 classes)."""
    if cfg.data.dataset == "synthetic":
        return cfg.data.dim, cfg.data.classes
    return math.prod(IMAGE_SHAPES[cfg.data.dataset]), IMAGE_CLASSES


def param_count(cfg: Config, in_dim: int, classes: int) -> int:
    """Weights and biases of the model a config describes (norms aside)."""
    return shapes.param_count(cfg.model, image_shape(cfg.data), in_dim, classes)


def parse_override(text: str) -> tuple[str, Any]:
    """``dotted.key=value`` with the value parsed as a YAML scalar (or list)."""
    key, sep, value = text.partition("=")
    key = key.strip()
    if not sep or not key:
        why = " (the key before '=' is empty)" if sep else ""
        raise ConfigError([f"--set {text}: expected dotted.key=value, e.g. model.norm=none{why}"])
    try:
        parsed = parse_value(value, f"--set {text}")
    except YamlError as exc:
        if any("invalid YAML" in e for e in exc.errors):
            return key, value  # not YAML: the text itself (validation names what fits)
        raise ConfigError(exc.errors) from None
    return key, parsed


def apply_overrides(raw: dict, overrides: list[tuple[str, Any]],
                    errors: list[str] | None = None) -> dict:
    """A copy of ``raw`` with each dotted key set. Unknown keys are refused:
    appended to ``errors`` when given, else raised."""
    out = {k: (dict(v) if isinstance(v, Mapping) else v) for k, v in (raw or {}).items()}
    collect = errors is not None
    errors = errors if collect else []
    known = set(all_keys())
    for key, value in overrides:
        if key not in known:
            errors.append(unknown_key(key))
            continue
        parts = key.split(".")
        node = out
        for part in parts[:-1]:
            if not isinstance(node.get(part), dict):
                node[part] = {}
            node = node[part]
        node[parts[-1]] = value
    if errors and not collect:
        raise ConfigError(errors)
    return out


def read_config_file(path: str | Path) -> dict:
    """A config file's mapping (strict YAML: see ``yamlio``); empty is {}."""
    try:
        raw = read_yaml(path)
    except YamlError as exc:
        raise ConfigError(exc.errors) from None
    if raw is not None and not isinstance(raw, Mapping):
        raise ConfigError([f"{path}: got {show(raw)}, expected a mapping of keys"])
    return dict(raw or {})


def apply_settings(raw: dict, texts: list[str], errors: list[str]) -> dict:
    """A copy of ``raw`` with every ``--set dotted.key=value`` applied; problems
    (malformed settings, unknown keys) are appended to ``errors``."""
    parsed = []
    for text in texts:
        try:
            parsed.append(parse_override(text))
        except ConfigError as exc:
            errors += exc.errors
    return apply_overrides(raw, parsed, errors)


# Keys added after runs were saved without them, and the value those runs had
# (a saved config.yaml lists every key; a missing one predates it).
LEGACY_DEFAULTS = {"norm.renorm_running": "variance", "norm.renorm_bn_steps": 0}


def saved_defaults(raw: Mapping) -> dict:
    """A saved run's config (``config.yaml``, every key written) with the keys it
    predates filled in as its run had them (LEGACY_DEFAULTS), not as today's
    defaults: an old batch-renorm run averaged the variance, with no BN phase."""
    out = {k: dict(v) if isinstance(v, Mapping) else v for k, v in raw.items()}
    for dotted, value in LEGACY_DEFAULTS.items():
        section, _, key = dotted.partition(".")
        part = out.get(section)
        if isinstance(part, dict) and part and key not in part:
            part[key] = value
    return out


def coerce(dotted: str, value: Any) -> tuple[Any, str | None]:
    """``value`` as the config holds ``dotted`` (``1e-3`` -> 0.001, ``1`` -> 1.0 for
    a number, a list of widths as a list), or the problem with it."""
    section, _, name = dotted.rpartition(".")
    cls = SECTIONS.get(section) if section else Config
    fld = {f.name: f for f in fields(cls)}.get(name) if cls else None
    if fld is None or "check" not in fld.metadata:
        return value, None
    typed, problem = fld.metadata["check"](value)
    return (value, problem) if problem else (to_plain(typed), None)


def load_saved(path: str | Path) -> Config:
    """A run folder's own config.yaml (``saved_defaults`` applied)."""
    raw = read_config_file(path)
    return from_dict(saved_defaults(raw))


def load(path: str | Path, overrides: list[str] = ()) -> Config:
    """Read, override and validate a config file."""
    errors: list[str] = []
    raw = apply_settings(read_config_file(path), list(overrides), errors)
    return from_dict(raw, errors)


def dump(cfg: Config) -> str:
    """The resolved config as YAML (every key, defaults filled in)."""
    return dump_yaml(to_plain(cfg))
