"""BatchNorm folding for inference: ``fold_batchnorm(net)`` -> a new Network
in which every eval-mode BatchNorm is merged into the Linear or Conv2d right
before it, or FoldError saying why it cannot be."""

from __future__ import annotations

import numpy as np

from ..errors import BnexpError
from .conv import Conv2d
from .layers import Linear
from .network import Network
from .norms import BatchNorm, GroupNorm, InstanceNorm, LayerNorm
from .spec import build_layer, describe_layer


class FoldError(BnexpError, ValueError):
    """A network whose normalization cannot be folded; the message says why."""


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
