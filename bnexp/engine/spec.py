"""A network as plain data and back: what a model file stores besides the
arrays (every layer's type and settings, in order).

``describe(net)`` -> a JSON-able dict; ``rebuild(desc)`` -> a Network with
the same layers (parameters zero-initialised: load the arrays with
``load_state_dict``). BatchNorm folding, which rebuilds layers through it, is
``fold``.

A description read from a file is checked before anything is built:
``check_description(desc)`` (every field's type and range, and that the
layers fit together, from the input shape to the logits) and
``check_arrays(desc, arrays)`` (each parameter and buffer the layers would
make has the shape and dtype of the file's array; none missing, none extra).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping

import numpy as np

from . import fields
from .conv import AvgPool2d, Conv2d, Flatten, GlobalAvgPool, MaxPool2d, out_size
from .layers import Dropout, Identity, Layer, Linear, NoisyShift, ReLU, Sigmoid, Tanh
from .network import Network
from .norms import BatchNorm, GroupNorm, InstanceNorm, LayerNorm, WeightNorm
from .residual import Add, Fork, Junction, Shortcut

FORMAT = 1
# The norm layers by type name, in the format's order: each describes and checks
# its own settings (their OPTIONS).
_NORM_TYPES = {cls.__name__: cls for cls in (BatchNorm, InstanceNorm, GroupNorm, LayerNorm)}
_SIMPLE = {"ReLU": ReLU, "Sigmoid": Sigmoid, "Tanh": Tanh, "Identity": Identity,
           "Flatten": Flatten, "GlobalAvgPool": GlobalAvgPool}


def describe_layer(layer: Layer) -> dict:
    kind = type(layer).__name__
    if kind in _SIMPLE:
        return {"type": kind}
    if isinstance(layer, Linear):
        return {"type": kind, "in": layer.in_features, "out": layer.out_features,
                "bias": "b" in layer.params}
    if isinstance(layer, Conv2d):
        return {"type": kind, "in": layer.in_channels, "out": layer.out_channels,
                "kernel": layer.kernel, "stride": layer.stride, "padding": layer.padding,
                "bias": "b" in layer.params}
    if kind in _NORM_TYPES:
        return {"type": kind, **layer.describe()}
    if isinstance(layer, Dropout):
        return {"type": kind, "p": layer.p}
    if isinstance(layer, NoisyShift):
        return {"type": kind, "sigma": layer.sigma}
    if isinstance(layer, WeightNorm):
        return {"type": kind, "inner": describe_layer(layer.inner)}
    if isinstance(layer, (MaxPool2d, AvgPool2d)):
        return {"type": kind, "kernel": layer.kernel, "stride": layer.stride}
    if isinstance(layer, (Fork, Shortcut)):
        return {"type": kind}
    if isinstance(layer, Add):
        return {"type": kind, "projection": layer.projection}
    raise ValueError(f"no description for layer {layer!r}")


def build_layer(d: dict, dtype) -> Layer:
    kind = d["type"]
    if kind in _SIMPLE:
        return _SIMPLE[kind]()
    zero = np.random.default_rng(0)  # placeholder weights: the model file's arrays replace them
    if kind == "Linear":
        return Linear(d["in"], d["out"], d["bias"], rng=zero, dtype=dtype)
    if kind == "Conv2d":
        return Conv2d(d["in"], d["out"], d["kernel"], d["stride"], d["padding"], d["bias"],
                      rng=zero, dtype=dtype)
    if kind in _NORM_TYPES:
        return _NORM_TYPES[kind].from_description(d, dtype)
    if kind == "Dropout":
        return Dropout(d["p"], rng=zero)  # eval mode only: the identity
    if kind == "NoisyShift":
        return NoisyShift(d["sigma"], rng=zero)  # eval mode only: the identity
    if kind == "WeightNorm":
        return WeightNorm(build_layer(d["inner"], dtype))
    if kind in ("MaxPool2d", "AvgPool2d"):
        return (MaxPool2d if kind == "MaxPool2d" else AvgPool2d)(d["kernel"], d["stride"])
    if kind in ("Fork", "Shortcut"):  # ``rebuild`` joins a block's markers to one junction
        return (Fork if kind == "Fork" else Shortcut)(Junction(), projection=kind == "Shortcut")
    if kind == "Add":
        return Add(Junction(), projection=d["projection"])
    raise ValueError(f"unknown layer type {kind!r}")


def _join_junctions(layers: list[Layer]) -> None:
    """Give each residual block's Fork, Shortcut and Add one shared junction,
    pairing them by nesting, as the builder made them (a checked description
    nests them properly)."""
    open_blocks: list[Junction] = []
    for layer in layers:
        if isinstance(layer, Fork):
            open_blocks.append(layer.junction)
        elif isinstance(layer, Shortcut):
            layer.junction = open_blocks[-1]
        elif isinstance(layer, Add):
            layer.junction = open_blocks.pop()


def describe(net: Network) -> dict:
    return {"format": FORMAT, "dtype": net.dtype.name,
            "input_shape": list(net.input_shape) if net.input_shape else None,
            "eval_chunk": net.eval_chunk,
            "layers": [{"name": n, **describe_layer(layer)} for n, layer in net.named_layers()]}


def rebuild(desc: dict) -> Network:
    """The Network ``desc`` describes (checked first: ValueError, one line)."""
    check_description(desc)
    dtype = np.dtype(desc["dtype"])
    layers = [build_layer(d, dtype) for d in desc["layers"]]
    _join_junctions(layers)
    shape = desc["input_shape"]
    return Network(layers, [d["name"] for d in desc["layers"]], dtype,
                   input_shape=tuple(shape) if shape else None, eval_chunk=desc["eval_chunk"])


# --- checking a description read from a file ------------------------------------

MAX_SAMPLE_VALUES = 1 << 24  # one sample at any layer: its output, or a conv's windows
MAX_EVAL_CHUNK = 1 << 16  # samples per evaluation chunk
MAX_CHUNK_VALUES = 1 << 28  # eval_chunk x the largest of those: a chunk's work arrays
MAX_NAME = 200  # characters of a layer name
DTYPES = ("float32", "float64")
_TOP_KEYS = ("format", "dtype", "input_shape", "eval_chunk", "layers")
_NORMS = tuple(_NORM_TYPES)
_IMAGE_ONLY = ("Conv2d", "MaxPool2d", "AvgPool2d", "GlobalAvgPool")


@dataclasses.dataclass(frozen=True)
class Shapes:
    """What a checked description takes and gives, per sample."""

    input: tuple[int, ...]  # as the first layer takes it: (D,) rows or (C, H, W) images
    outputs: int  # logits: one per class


_FIELDS = {
    "Linear": {"in": fields.size, "out": fields.size, "bias": fields.flag},
    "Conv2d": {"in": fields.size, "out": fields.size, "kernel": fields.size, "stride": fields.size,
               "padding": fields.padding, "bias": fields.flag},
    **{kind: {"channels": fields.size, **{k: check for k, (check, _) in cls.OPTIONS.items()}}
       for kind, cls in _NORM_TYPES.items()},
    "Dropout": {"p": fields.probability},
    "NoisyShift": {"sigma": fields.nonnegative},
    "WeightNorm": {"inner": None},  # checked as a layer of its own
    "MaxPool2d": {"kernel": fields.size, "stride": fields.size},
    "AvgPool2d": {"kernel": fields.size, "stride": fields.size},
    "Fork": {}, "Shortcut": {}, "Add": {"projection": fields.flag},
    **{kind: {} for kind in _SIMPLE},
}
# Settings newer than the format, which older files lack (the layer's default then)
_OPTIONAL = {(kind, k) for kind, cls in _NORM_TYPES.items()
             for k, (_, optional) in cls.OPTIONS.items() if optional}


def _check_layer(d, where: str, named: bool = True) -> None:
    """One layer's description: a known type with exactly its fields, each of
    the type and in the range its layer accepts."""
    if not isinstance(d, dict):
        raise ValueError(f"{where}: got {fields.show(d)}, expected a layer (an object with a type)")
    kind = d.get("type")
    if not isinstance(kind, str) or kind not in _FIELDS:
        raise ValueError(f"{where}: type {fields.show(kind)} is not a layer bnexp knows "
                         f"({', '.join(_FIELDS)})")
    expected = _FIELDS[kind]
    extra = sorted(set(d) - set(expected) - {"type"} - ({"name"} if named else set()))
    if extra:
        raise ValueError(f"{where}: {kind} has no field {fields.show(extra[0])} (its fields: "
                         f"{', '.join(expected) or 'none'})")
    for key, check in expected.items():
        if key not in d:
            if (kind, key) in _OPTIONAL:
                continue
            raise ValueError(f"{where}: {kind} needs {key!r}")
        want = check(d[key]) if check else None
        if want:
            raise ValueError(f"{where}: {key}: got {fields.show(d[key])}, expected {want}")
    if kind in _NORM_TYPES:
        wrong = _NORM_TYPES[kind].check_description(d)
        if wrong:
            raise ValueError(f"{where}: {wrong}")
    if kind == "WeightNorm":
        _check_layer(d["inner"], f"{where}: inner", named=False)
        if d["inner"]["type"] not in ("Linear", "Conv2d"):
            raise ValueError(f"{where}: inner: type {d['inner']['type']!r}, expected Linear "
                             "or Conv2d (weight norm reparametrizes a weight)")


def _check_top(desc) -> None:
    if not isinstance(desc, dict):
        raise ValueError(f"network: got {fields.show(desc)}, expected a layer list's description")
    extra = sorted(set(desc) - set(_TOP_KEYS))
    missing = [k for k in _TOP_KEYS if k not in desc]
    if extra or missing:
        what = f"no key {extra[0]!r}" if extra else f"needs {missing[0]!r}"
        raise ValueError(f"network: {what} (its keys: {', '.join(_TOP_KEYS)})")
    fmt = desc["format"]
    if not fields.is_int(fmt) or fmt != FORMAT:
        raise ValueError(f"model format {fields.show(fmt)}; this bnexp reads {FORMAT}")
    if desc["dtype"] not in DTYPES:
        raise ValueError(f"dtype: got {fields.show(desc['dtype'])}, expected {' or '.join(DTYPES)}")
    chunk = desc["eval_chunk"]
    if not (fields.is_int(chunk) and 1 <= chunk <= MAX_EVAL_CHUNK):
        raise ValueError(f"eval_chunk: got {fields.show(chunk)}, expected an integer from 1 to "
                         f"{MAX_EVAL_CHUNK:,}")
    shape = desc["input_shape"]
    if shape is not None and not (isinstance(shape, list) and 1 <= len(shape) <= 3
                                  and all(fields.size(n) is None for n in shape)):
        raise ValueError(f"input_shape: got {fields.show(shape)}, expected null (rows) or a list of "
                         "1 to 3 sizes >= 1 ([C, H, W] for images)")
    layers = desc["layers"]
    if not isinstance(layers, list) or not layers:
        raise ValueError(f"layers: got {fields.show(layers)}, expected a non-empty list of layers")


def check_description(desc) -> Shapes:
    """Check a description (as ``describe`` writes it, read from a file)
    before anything is built: ValueError with one line saying what is wrong.
    Returns the shape of a sample and the number of outputs."""
    _check_top(desc)
    seen = set()
    for i, d in enumerate(desc["layers"]):
        if not isinstance(d, dict):
            raise ValueError(f"layers[{i}]: got {fields.show(d)}, expected a layer (an object)")
        name = d.get("name")
        where = f"layers[{i}]" + (f" ({fields.show(name)})" if isinstance(name, str) else "")
        if not (isinstance(name, str) and 1 <= len(name) <= MAX_NAME):
            raise ValueError(f"{where}: name: got {fields.show(name)}, expected a text of 1 to "
                             f"{MAX_NAME} characters")
        if name in seen:
            raise ValueError(f"{where}: a second layer named {name!r} (names must be unique)")
        seen.add(name)
        _check_layer(d, where)
    return _propagate(desc)


def _first_width(layers: list[dict]) -> int:
    """Features per sample of a description without input_shape (rows): what
    the first layer that has a size takes."""
    for i, d in enumerate(layers):
        inner = d["inner"] if d["type"] == "WeightNorm" else d
        if inner["type"] == "Linear":
            return inner["in"]
        if d["type"] in _NORMS:
            return d["channels"]
        if inner["type"] in _IMAGE_ONLY:
            raise ValueError(f"input_shape: got null (rows), but layers[{i}] ({d['name']!r}) "
                             f"is a {inner['type']}, which takes images: expected [C, H, W]")
    raise ValueError("input_shape: got null, and no layer says how many features a sample has")


def _in_words(shape: tuple[int, ...]) -> str:
    return f"{shape[0]} features" if len(shape) == 1 else f"inputs shaped {shape}"


def _spatial(d: dict, shape: tuple[int, ...], where: str, channels: int | None,
             padding: int = 0) -> tuple[int, int]:
    """Output height and width of a conv or pool on (C, H, W) inputs."""
    if len(shape) != 3 or (channels is not None and shape[0] != channels):
        want = f"({channels}, H, W)" if channels is not None else "(C, H, W)"
        raise ValueError(f"{where}: {d['type']} takes images {want}, but gets "
                         f"{_in_words(shape)}")
    k, s = d["kernel"], d["stride"]
    Ho, Wo = out_size(shape[1], k, s, padding), out_size(shape[2], k, s, padding)
    if Ho < 1 or Wo < 1:
        raise ValueError(f"{where}: its {k}x{k} window does not fit in a {shape[1]}x{shape[2]} "
                         "input")
    return Ho, Wo


def _output_shape(d: dict, shape: tuple[int, ...], where: str) -> tuple[tuple[int, ...], int]:
    """A layer's output shape per sample for inputs of ``shape``, and the size
    of its largest work array per sample beyond input and output (0 if none)."""
    kind = d["type"]
    if kind == "WeightNorm":
        return _output_shape(d["inner"], shape, where)
    if kind == "Linear":
        if shape != (d["in"],):
            raise ValueError(f"{where}: Linear takes {d['in']} features, but gets "
                             f"{_in_words(shape)}")
        return (d["out"],), 0
    if kind == "Conv2d":
        Ho, Wo = _spatial(d, shape, where, d["in"], d["padding"])
        k = d["kernel"]  # im2col: k*k windows per channel and output position
        return (d["out"], Ho, Wo), d["in"] * k * k * Ho * (shape[2] + 2 * d["padding"])
    if kind in ("MaxPool2d", "AvgPool2d"):
        return (shape[0], *_spatial(d, shape, where, None)), 0
    if kind == "GlobalAvgPool":
        if len(shape) != 3:
            raise ValueError(f"{where}: GlobalAvgPool takes images (C, H, W), but gets "
                             f"{_in_words(shape)}")
        return (shape[0],), 0
    if kind == "Flatten":
        return (math.prod(shape),), 0
    if kind in _NORMS:
        C = d["channels"]
        if shape[0] != C or (kind == "InstanceNorm" and len(shape) < 2):
            want = f"({C}, L) or ({C}, H, W)" if kind == "InstanceNorm" else f"{C} channels"
            raise ValueError(f"{where}: {kind} takes {want}, but gets {_in_words(shape)}")
    return shape, 0


def _junction_shape(d: dict, shape: tuple[int, ...], blocks: list[list], where: str
                    ) -> tuple[int, ...]:
    """The shape after a residual block's marker, checking that Fork, Shortcut
    and Add come in order and that the add's two branches agree."""
    kind = d["type"]
    if kind == "Fork":
        blocks.append([shape, None])
        return shape
    if not blocks:
        raise ValueError(f"{where}: a {kind} with no Fork before it")
    start, body = blocks[-1]
    if kind == "Shortcut":
        if body is not None:
            raise ValueError(f"{where}: a second Shortcut in one residual block")
        blocks[-1][1] = shape
        return start
    blocks.pop()
    if d["projection"] != (body is not None):
        raise ValueError(f"{where}: projection {d['projection']}, but its block "
                         f"{'has' if body is not None else 'has no'} Shortcut")
    other = body if body is not None else start
    if other != shape:
        raise ValueError(f"{where}: adds {_in_words(shape)} to {_in_words(other)}; a residual "
                         "block's two branches must agree")
    return shape


def _propagate(desc: dict) -> Shapes:
    """Follow a sample's shape from input_shape through the layers to the
    logits, checking each layer takes what the one before it gives and that
    no layer's arrays grow past MAX_SAMPLE_VALUES / MAX_CHUNK_VALUES."""
    layers = desc["layers"]
    given = desc["input_shape"]
    shape = first = tuple(given) if given else (_first_width(layers),)
    largest = math.prod(shape)
    blocks: list[list] = []  # per open residual block: [its input shape, body output or None]
    for i, d in enumerate(layers):
        where = f"layers[{i}] ({d['name']!r})"
        if d["type"] in ("Fork", "Shortcut", "Add"):
            shape = _junction_shape(d, shape, blocks, where)
            continue
        shape, work = _output_shape(d, shape, where)
        largest = max(largest, work, math.prod(shape))
        if largest > MAX_SAMPLE_VALUES:
            raise ValueError(f"{where}: {largest:,} values per sample (at most "
                             f"{MAX_SAMPLE_VALUES:,}); the sizes cannot be right")
    if blocks:
        raise ValueError("a residual block's Fork has no Add after it")
    if len(shape) != 1:
        raise ValueError(f"the last layer gives {shape} per sample; expected logits, one "
                         "value per class (end with Flatten or GlobalAvgPool, then Linear)")
    if desc["eval_chunk"] * largest > MAX_CHUNK_VALUES:
        raise ValueError(f"eval_chunk: got {desc['eval_chunk']}: chunks of that many samples "
                         f"of up to {largest:,} values exceed {MAX_CHUNK_VALUES:,} values")
    return Shapes(first, shape[0])


def _layer_arrays(d: dict, dtype: np.dtype) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
    """The shape and dtype of each parameter and buffer the layer would make."""
    kind = d["type"]
    if kind == "WeightNorm":  # v: the inner weight; g: one per output unit or channel
        inner = _layer_arrays(d["inner"], dtype)
        W = inner.pop("W")[0]
        unit = W[1] if d["inner"]["type"] == "Linear" else W[0]
        return {"v": (W, dtype), "g": ((unit,), dtype), **inner}
    arrays = {}
    if kind == "Linear":
        arrays["W"] = ((d["in"], d["out"]), dtype)  # (in, out)
    if kind == "Conv2d":
        arrays["W"] = ((d["out"], d["in"], d["kernel"], d["kernel"]), dtype)
    if kind in ("Linear", "Conv2d") and d["bias"]:
        arrays["b"] = ((d["out"],), dtype)
    if kind in _NORMS and d["affine"]:
        arrays["gamma"] = arrays["beta"] = ((d["channels"],), dtype)
    if kind in ("BatchNorm", "InstanceNorm") and d["track_running_stats"]:
        arrays["running_mean"] = arrays["running_var"] = ((d["channels"],), dtype)
        arrays["num_batches_tracked"] = ((), np.dtype(np.int64))
    return arrays


def expected_arrays(desc: dict) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
    """``layer.key`` -> (shape, dtype) of every array a checked description's
    network holds (its ``state_dict``), computed without building it."""
    dtype = np.dtype(desc["dtype"])
    return {f"{d['name']}.{key}": spec for d in desc["layers"]
            for key, spec in _layer_arrays(d, dtype).items()}


def check_arrays(desc: dict, arrays: Mapping[str, tuple[tuple[int, ...], np.dtype]],
                 prefix: str = "") -> None:
    """Check that ``arrays`` (``layer.key`` -> (shape, dtype), as a file holds
    them) are exactly those a checked description's network holds: ValueError
    naming the first missing, extra or misshapen one (``prefix`` + key)."""
    want = expected_arrays(desc)
    for key, (shape, dtype) in want.items():
        if key not in arrays:
            raise ValueError(f"no array {prefix}{key}: the layer list's "
                             f"{key.rsplit('.', 1)[0]!r} has one of shape {shape}")
        got_shape, got_dtype = arrays[key]
        if tuple(got_shape) != shape:
            raise ValueError(f"{prefix}{key}: shape {tuple(got_shape)}, but the layer list "
                             f"says {shape}")
        if np.dtype(got_dtype) != dtype:
            raise ValueError(f"{prefix}{key}: dtype {np.dtype(got_dtype)}, but the layer list "
                             f"says {dtype}")
    extra = sorted(set(arrays) - set(want))
    if extra:
        raise ValueError(f"{prefix}{extra[0]}: no layer in the layer list has such an array")


def check_values(desc: dict, state: Mapping[str, np.ndarray], prefix: str = "") -> None:
    """Values no trained norm holds: a negative running variance, or one
    that with eps is 0 (1/sqrt(var + eps) would be inf). ValueError, one line."""
    for d in desc["layers"]:
        key = f"{d['name']}.running_var"
        if d["type"] not in ("BatchNorm", "InstanceNorm") or key not in state:
            continue
        var = np.asarray(state[key])
        if (var < 0).any() or (var + var.dtype.type(d["eps"]) <= 0).any():  # in its dtype
            raise ValueError(f"{prefix}{key}: holds {float(var.min()):g}; a running variance "
                             f"is >= 0 and, with eps {d['eps']:g}, > 0")
