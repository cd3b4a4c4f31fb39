"""Measurements and corrections of batch norm's statistics after training:
Li et al. (2019)'s variance shift under dropout, and precise BN (Wu &
Johnson 2021's name for recomputing the running statistics as a true
average)."""

from __future__ import annotations

import numpy as np

from ..engine import BatchNorm, Dropout, Network


def variance_shift(model: Network, x: np.ndarray, rng: np.random.Generator) -> float | None:
    """Li et al. (2019)'s variance shift: for every BatchNorm with a Dropout
    somewhere before it, the variance of each of its input units over ``x``
    with the dropouts active (train mode) over the same with them off (eval
    mode; every other layer in eval mode both times), averaged over units and
    such layers. Above 1: BN's running statistics, gathered in training, see
    a wider input than it gets at test time. None where no BN follows a dropout."""
    def inputs(dropout_on: bool) -> dict[int, np.ndarray]:
        h, seen, out = model.as_input(x), False, {}
        for i, layer in enumerate(model.layers):
            if isinstance(layer, BatchNorm) and seen:
                out[i] = h.astype(np.float64)
            seen |= isinstance(layer, Dropout)
            h = layer.forward(h, isinstance(layer, Dropout) and dropout_on)
        return out

    dropouts = [layer for layer in model.layers if isinstance(layer, Dropout)]
    saved = [d.rng for d in dropouts]
    for d in dropouts:
        d.rng = rng
    try:
        on, off = inputs(True), inputs(False)
    finally:
        for d, r in zip(dropouts, saved):
            d.rng = r
    ratios = []
    for i in on:
        axes = (0, *range(2, on[i].ndim))
        v_on, v_off = on[i].var(axis=axes), off[i].var(axis=axes)
        keep = v_off > 0
        ratios.append(float(np.mean(v_on[keep] / v_off[keep])))
    return float(np.mean(ratios)) if ratios else None


def precise_bn(model: Network, x: np.ndarray, batch_size: int, batches: int,
               rng: np.random.Generator) -> None:
    """Precise BN: replace every BatchNorm's running statistics by the
    average, over ``batches`` batches of training samples (drawn without
    replacement within each pass), of the batch means and unbiased variances,
    the average the running statistics only approximate with their momentum.
    Train-mode forward passes only: no parameter changes."""
    bns = [layer for layer in model.layers if isinstance(layer, BatchNorm)]
    saved = [bn.momentum for bn in bns]
    for bn in bns:
        bn.set_momentum(None)  # a cumulative average from here
        bn.buffers["num_batches_tracked"].fill(0)
    order = np.empty(0, dtype=np.int64)
    for _ in range(batches):
        if len(order) < batch_size:
            order = np.concatenate([order, rng.permutation(len(x))])
        idx, order = order[:batch_size], order[batch_size:]
        model.forward(x[idx], train=True)
    for bn, momentum in zip(bns, saved):
        bn.set_momentum(momentum)
