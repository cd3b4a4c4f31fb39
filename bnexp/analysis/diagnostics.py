"""Per-block diagnostics of a recorded training step: percentiles of each
activation's input and the norm of each weight gradient (the book's
activation histograms, as numbers)."""

from __future__ import annotations

import numpy as np

from ..config import Config
from ..engine import Network


def diagnostics(model: Network, cfg: Config, step: int, epoch: float) -> list[dict]:
    """Per hidden block i: percentiles of its activation's input (pooled over
    the batch, units and positions, and for unit or channel 0 alone), and the
    norm of its weight gradient (``linear{i}`` or ``conv{i}``)."""
    rows = []
    act = cfg.model.activation
    records = {r.name: r for r in model.records}
    layers = dict(model.named_layers())
    i = 1
    while f"{act}{i}" in records:
        x = records[f"{act}{i}"].x.astype(np.float64)
        p15, p50, p85 = np.percentile(x, [15, 50, 85])
        u15, u50, u85 = np.percentile(x[:, 0], [15, 50, 85])
        weights = layers.get(f"linear{i}") or layers[f"conv{i}"]
        weights = getattr(weights, "inner", weights)  # weight norm: the effective weight's
        values = {"p15": p15, "p50": p50, "p85": p85, "mean": x.mean(), "std": x.std(),
                  "unit_p15": u15, "unit_p50": u50, "unit_p85": u85,
                  "grad_norm": np.linalg.norm(weights.grads["W"])}
        rows.append({"step": step, "epoch": epoch, "layer": i,
                     **{k: float(v) for k, v in values.items()}})
        i += 1
    return rows
