"""A network as plain data and back: what a model file stores besides the
arrays (every layer's type and settings, in order), and BatchNorm folding.

``describe(net)`` -> a JSON-able dict; ``rebuild(desc)`` -> a Network with
the same layers (parameters zero-initialised: load the arrays with
``load_state_dict``). ``fold_batchnorm(net)`` -> a new Network in which every
eval-mode BatchNorm is merged into the Linear or Conv2d right before it.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from .conv import AvgPool2d, Conv2d, Flatten, GlobalAvgPool, MaxPool2d
from .layers import Dropout, Identity, Layer, Linear, NoisyShift, ReLU, Sigmoid, Tanh
from .model import Network
from .norms import BatchNorm, GroupNorm, InstanceNorm, LayerNorm, Renorm, WeightNorm

FORMAT = 1
_SIMPLE = {"ReLU": ReLU, "Sigmoid": Sigmoid, "Tanh": Tanh, "Identity": Identity,
           "Flatten": Flatten, "GlobalAvgPool": GlobalAvgPool}


class FoldError(ValueError):
    """A network whose normalization cannot be folded; the message says why."""


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
    if isinstance(layer, BatchNorm):
        return {"type": kind, "channels": layer.D, "momentum": layer.momentum, "eps": layer.eps,
                "affine": layer.affine, "track_running_stats": layer.track_running_stats,
                "convention": layer.convention, "ghost_batch": layer.ghost_batch,
                "renorm": dataclasses.asdict(layer.renorm) if layer.renorm else None}
    if isinstance(layer, InstanceNorm):
        return {"type": kind, "channels": layer.D, "eps": layer.eps, "momentum": layer.momentum,
                "affine": layer.affine, "track_running_stats": layer.track_running_stats}
    if isinstance(layer, GroupNorm):
        return {"type": kind, "channels": layer.D, "groups": layer.G, "eps": layer.eps,
                "affine": layer.affine}
    if isinstance(layer, LayerNorm):
        return {"type": kind, "channels": layer.D, "eps": layer.eps, "affine": layer.affine}
    if isinstance(layer, Dropout):
        return {"type": kind, "p": layer.p}
    if isinstance(layer, NoisyShift):
        return {"type": kind, "sigma": layer.sigma}
    if isinstance(layer, WeightNorm):
        return {"type": kind, "inner": describe_layer(layer.inner)}
    if isinstance(layer, (MaxPool2d, AvgPool2d)):
        return {"type": kind, "kernel": layer.kernel, "stride": layer.stride}
    raise ValueError(f"no description for layer {layer!r}")


def _renorm(d: dict | list | None) -> Renorm | None:
    """A model file's batch renorm settings. Files from before the plain-BN
    phase and the running sigma hold [rmax, dmax, warm-up]: their layers
    averaged the variance and ramped from step 0."""
    if not d:
        return None
    if isinstance(d, list):
        rmax, dmax, warmup = d
        return Renorm(rmax, dmax, warmup, bn_steps=0, running="variance")
    return Renorm(**d)


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
    if kind == "BatchNorm":
        return BatchNorm(d["channels"], d["momentum"], d["eps"], d["affine"],
                         d["track_running_stats"], convention=d["convention"],
                         ghost_batch=d.get("ghost_batch"),
                         renorm=_renorm(d.get("renorm")), dtype=dtype)
    if kind == "InstanceNorm":
        return InstanceNorm(d["channels"], d["eps"], d["momentum"], d["affine"],
                            d["track_running_stats"], dtype=dtype)
    if kind == "GroupNorm":
        return GroupNorm(d["channels"], d["groups"], d["eps"], d["affine"], dtype=dtype)
    if kind == "LayerNorm":
        return LayerNorm(d["channels"], d["eps"], d["affine"], dtype=dtype)
    if kind == "Dropout":
        return Dropout(d["p"], rng=zero)  # eval mode only: the identity
    if kind == "NoisyShift":
        return NoisyShift(d["sigma"], rng=zero)  # eval mode only: the identity
    if kind == "WeightNorm":
        return WeightNorm(build_layer(d["inner"], dtype))
    if kind in ("MaxPool2d", "AvgPool2d"):
        return (MaxPool2d if kind == "MaxPool2d" else AvgPool2d)(d["kernel"], d["stride"])
    raise ValueError(f"unknown layer type {kind!r}")


def describe(net: Network) -> dict:
    return {"format": FORMAT, "dtype": net.dtype.name,
            "input_shape": list(net.input_shape) if net.input_shape else None,
            "eval_chunk": net.eval_chunk,
            "layers": [{"name": n, **describe_layer(layer)} for n, layer in net.named_layers()]}


def rebuild(desc: dict) -> Network:
    if desc.get("format") != FORMAT:
        raise ValueError(f"model format {desc.get('format')!r}; this bnexp reads {FORMAT}")
    dtype = np.dtype(desc["dtype"])
    layers = [build_layer(d, dtype) for d in desc["layers"]]
    shape = desc["input_shape"]
    return Network(layers, [d["name"] for d in desc["layers"]], dtype,
                   input_shape=tuple(shape) if shape else None, eval_chunk=desc["eval_chunk"])


def fold_batchnorm(net: Network) -> tuple[Network, list[str]]:
    """A copy of ``net`` for inference with every BatchNorm merged into the
    Linear or Conv2d before it, and the names of the folded norms. In eval
    mode BN is ``y = (z - mean) * s + beta`` with ``s = gamma / sqrt(var +
    eps)`` per channel, and ``z = W x + b``, so ``y = (W s) x + (b - mean) s +
    beta``: the weights scaled per output channel and a new bias. Raises
    FoldError for what has no such form."""
    names, layers = net.names, net.layers
    per_sample = [n for n, layer in zip(names, layers)
                  if isinstance(layer, (LayerNorm, GroupNorm, InstanceNorm))]
    if per_sample:
        raise FoldError(f"{per_sample[0]}: {type(layers[names.index(per_sample[0])]).__name__} "
                        "normalizes each sample by its own statistics, computed at inference "
                        "too; only batch norm's fixed running statistics fold into a layer")
    out_layers, out_names, folded = [], [], []
    for i, (name, layer) in enumerate(zip(names, layers)):
        if not isinstance(layer, BatchNorm):
            out_layers.append(layer)
            out_names.append(name)
            continue
        prev = layers[i - 1] if i else None
        if not layer.track_running_stats:
            raise FoldError(f"{name}: keeps no running statistics (track_running_stats false), "
                            "so eval mode normalizes with each batch's own: nothing fixed to fold")
        if not isinstance(prev, (Linear, Conv2d)):
            what = names[i - 1] if i else "the input"
            raise FoldError(f"{name}: follows {what}, not a Linear or Conv2d (BN after the "
                            "activation: the nonlinearity between them stops the folding)")
        out_layers[-1] = _merged(prev, layer)
        folded.append(name)
    if not folded:
        raise FoldError("no BatchNorm to fold in this model")
    return Network(out_layers, out_names, net.dtype, input_shape=net.input_shape,
                   eval_chunk=net.eval_chunk), folded


def _merged(prev: Linear | Conv2d, bn: BatchNorm) -> Linear | Conv2d:
    """``prev`` with ``bn`` (eval mode) folded in, as a new layer with a bias.
    The arithmetic runs in float64 and is rounded once to the model's dtype."""
    dtype = prev.params["W"].dtype
    mean, var = (bn.buffers[k].astype(np.float64) for k in ("running_mean", "running_var"))
    gamma = bn.params["gamma"].astype(np.float64) if bn.affine else np.ones_like(mean)
    beta = bn.params["beta"].astype(np.float64) if bn.affine else np.zeros_like(mean)
    s = gamma / np.sqrt(var + bn.eps)
    W = prev.params["W"].astype(np.float64)
    b = prev.params["b"].astype(np.float64) if "b" in prev.params else np.zeros_like(mean)
    desc = {**describe_layer(prev), "bias": True}
    new = build_layer(desc, dtype)
    if isinstance(prev, Linear):  # W: (in, out), out = channels
        new.params["W"][...] = W * s
    else:  # W: (out, in, k, k)
        new.params["W"][...] = W * s[:, None, None, None]
    new.params["b"][...] = (b - mean) * s + beta
    new.input_grad = prev.input_grad
    return new
