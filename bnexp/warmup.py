"""Compiling the numba kernels before a sweep's workers start, so that they
load them from numba's disk cache instead of each compiling them."""

from __future__ import annotations

import numpy as np

from .config import data_shape
from .engine import make_optimizer
from .engine.model import build_model
from .provenance import one_blas_thread


def warm_kernels(cfgs) -> None:
    """Compile the numba kernels that ``cfgs`` will run (or load them from
    numba's disk cache), once per distinct model, by training one small step
    of it on random rows: parallel workers started afterwards then load them
    from the cache instead of each compiling them. Configs on the NumPy
    kernels need nothing."""
    seen = set()
    for cfg in cfgs:
        if cfg.train.kernels != "numba":
            continue
        key = (repr(cfg.model), repr(cfg.norm), cfg.train.dtype, cfg.train.optimizer)
        if key in seen:
            continue
        seen.add(key)
        dim, classes = data_shape(cfg)
        rng = np.random.default_rng(0)
        model = build_model(cfg, dim, classes, rng)
        opt = make_optimizer(cfg.train.optimizer, model.layers, cfg.train.lr,
                             kernels=cfg.train.kernels)
        x = rng.random((4, dim)).astype(cfg.train.dtype)
        y = np.arange(4) % classes
        with one_blas_thread(), np.errstate(all="ignore"):
            model.loss_and_backward(x, y)
            opt.step()
            model.evaluate(x, y)
