"""Probes of a training step that leave training as it was: the loss
landscape along the gradient and internal covariate shift (Santurkar et al.
2018). The training loop calls them through ``PROBES``: each takes the
model, the optimizer, the step's batch and where it is, and returns rows."""

from __future__ import annotations

import numpy as np

from ..engine import Network

# Step sizes of a landscape probe, as multiples of train.lr (Santurkar et al. move
# along the gradient over a range of step sizes around the one training takes).
LANDSCAPE_MULTIPLIERS = (0.25, 0.5, 1.0, 2.0, 4.0)


class _Probe:
    """Extra forward and backward passes on a training step's batch that must
    leave training as it was (the landscape and ICS measurements). On entry it
    saves the parameters and gradients, every buffer (BN's running statistics)
    and the random streams of dropout and noise layers; ``reset()`` puts the
    buffers back and rewinds those streams to ``drawn`` (their state before the
    step, so a probe sees the step's own masks and noise); ``close()`` restores
    everything, the streams to where the step left them."""

    def __init__(self, model: Network, opt, own_streams: dict, drawn: dict) -> None:
        self.opt, self.own_streams, self.drawn = opt, own_streams, drawn
        self.theta, self.g = opt.params.copy(), opt.grads.copy()
        self.buffers = [(layer, {k: v.copy() for k, v in layer.buffers.items()})
                        for layer in model.layers if layer.buffers]
        self.after = {name: layer.rng.bit_generator.state
                      for name, layer in own_streams.items()}
        self.reset()

    def _streams(self, states: dict) -> None:
        for name, layer in self.own_streams.items():
            layer.rng.bit_generator.state = states[name]

    def reset(self) -> None:
        for layer, saved in self.buffers:
            for k, v in saved.items():
                layer.buffers[k][...] = v
        self._streams(self.drawn)

    def close(self) -> None:
        self.reset()
        self._streams(self.after)
        self.opt.params[...] = self.theta
        self.opt.grads[...] = self.g


def landscape(model: Network, opt, x: np.ndarray, y: np.ndarray, lr: float, step: int,
               epoch: float, own_streams: dict, drawn: dict) -> list[dict]:
    """Probe the loss and gradient at theta - eta * g for each step size eta, on
    this step's batch, in train mode (Santurkar et al. 2018, section 3.1): rows
    of (eta, loss there, ||gradient there - g||, ||g||). Training goes on
    exactly as without the probe (``_Probe``)."""
    probe = _Probe(model, opt, own_streams, drawn)
    theta, g = probe.theta, probe.g
    g_norm = float(np.linalg.norm(g))
    rows = []
    for m in LANDSCAPE_MULTIPLIERS:
        eta = m * lr
        np.subtract(theta, eta * g, out=opt.params)
        loss = model.loss_and_backward(x, y)
        change = float(np.linalg.norm(opt.grads - g)) if np.isfinite(loss) else float("nan")
        rows.append({"step": step, "epoch": epoch, "eta": eta, "loss": float(loss),
                     "grad_change": change, "grad_norm": g_norm})
        probe.reset()
    probe.close()
    return rows


def ics(model: Network, opt, x: np.ndarray, y: np.ndarray, lr: float, step: int,
         epoch: float, own_streams: dict, drawn: dict) -> list[dict]:
    """Internal covariate shift as Santurkar et al. (2018, section 2.2) define it:
    for the i-th weight layer, G is its weight gradient now, and G' its weight
    gradient on the same batch after every layer before it has taken this
    step's update (an SGD step of size lr); rows of (layer i, ||G - G'|| /
    ||G||, cos(G, G')). Zero for the first layer by definition. Training goes
    on exactly as without it (``_Probe``)."""
    probe = _Probe(model, opt, own_streams, drawn)
    theta, g = probe.theta, probe.g
    # Each layer's slice of the packed parameters, in order; a weight layer's "W"
    # (or weight norm's "v") gradient is what ICS compares.
    offsets, i = {}, 0
    for layer, key in opt.slots:
        offsets[(id(layer), key)] = (i, i + layer.params[key].size)
        i += layer.params[key].size
    weight_layers = [layer for layer in model.layers
                     if "W" in layer.params or "v" in layer.params]
    rows = []
    for index, layer in enumerate(weight_layers, start=1):
        lo, hi = offsets[(id(layer), "W" if "W" in layer.params else "v")]
        start = min(offsets[(id(layer), k)][0] for k in layer.params)
        opt.params[...] = theta
        opt.params[:start] -= lr * g[:start]  # every layer before this one takes its step
        model.loss_and_backward(x, y)
        G, G2 = g[lo:hi].astype(np.float64), opt.grads[lo:hi].astype(np.float64)
        norm, norm2 = np.linalg.norm(G), np.linalg.norm(G2)
        rows.append({"step": step, "epoch": epoch, "layer": index,
                     "l2": float(np.linalg.norm(G - G2) / norm) if norm > 0 else float("nan"),
                     "cosine": float(G @ G2 / (norm * norm2)) if norm * norm2 > 0
                     else float("nan")})
        probe.reset()
    probe.close()
    return rows


# name in the config's eval section (``{name}_every``) and in TrainResult -> probe
PROBES = {"ics": ics, "landscape": landscape}
