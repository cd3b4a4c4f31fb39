"""A sweep's ``--dry-run`` (``dry_run``: its runs, notes on its data, their
count) and how long the sweep will take on this machine: a few real
training steps and one evaluation chunk of each distinct model shape are
timed on random inputs (no data is read), then multiplied out by each run's
steps and evaluations, plus a fixed cost per run (process work, files, and
its figure unless figures are off), and shared among the workers."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

from .grid import Point, Sweep, dry_run_rows

# Seconds of a run outside its steps and evaluations, on 2 workers, from
# benchmarks/sweep_overhead.py (weight_scale: 0.03-0.05 s with --no-plot,
# 0.13 s with the per-run figures and the sweep's figure).
PER_RUN = 0.04
PER_FIGURE = 0.09
TIMED_STEPS = 8
STANDARD_SIZES = {"mnist": (60000, 10000), "fashion-mnist": (60000, 10000),
                  "cifar10": (50000, 10000)}


def _model(cfg):
    import numpy as np

    from ..config import data_shape
    from ..engine.model import build_model

    dim, classes = data_shape(cfg)
    rng = np.random.default_rng(0)
    return build_model(cfg, dim, classes, rng), dim, classes, rng


def _step_cost(cfg) -> float:
    """Seconds per training step of ``cfg``'s model at its batch size."""
    import numpy as np

    from ..engine import make_optimizer
    from ..provenance import one_blas_thread

    model, dim, classes, rng = _model(cfg)
    opt = make_optimizer(cfg.train.optimizer, model.layers, cfg.train.lr,
                         kernels=cfg.train.kernels)
    B = cfg.train.batch_size
    x = rng.random((B, dim)).astype(np.dtype(cfg.train.dtype))
    y = rng.integers(0, classes, B)
    with one_blas_thread(), np.errstate(all="ignore"):
        model.loss_and_backward(x, y)  # warm: work arrays
        t0 = time.perf_counter()
        for _ in range(TIMED_STEPS):
            model.loss_and_backward(x, y)
            opt.step()
        return (time.perf_counter() - t0) / TIMED_STEPS


def _eval_cost(cfg) -> float:
    """Seconds per evaluated sample of ``cfg``'s model (any batch size: the
    evaluation runs in chunks of its own)."""
    import numpy as np

    from ..provenance import one_blas_thread

    model, dim, classes, rng = _model(cfg)
    n = min(EVAL_SAMPLES, model.eval_chunk)
    xe = rng.random((n, dim)).astype(np.dtype(cfg.train.dtype))
    ye = rng.integers(0, classes, n)
    with one_blas_thread(), np.errstate(all="ignore"):
        model.evaluate(xe, ye)
        t0 = time.perf_counter()
        model.evaluate(xe, ye)
        return (time.perf_counter() - t0) / n


EVAL_SAMPLES = 1024  # timed per model (a CNN's chunk, 256, when smaller)


def seconds(points: list[Point], workers: int, plot: bool = True) -> float:
    """Estimated wall time of running ``points`` on ``workers`` processes
    (``plot``: drawing each run's figure). Each distinct model is timed once
    per batch size for its steps and once for its evaluation."""
    from ..config import steps_per_epoch
    from ..datasets import DataError, split_sizes

    steps_cache: dict[tuple, float] = {}
    eval_cache: dict[tuple, float] = {}
    total = 0.0
    for p in points:
        cfg = p.config
        model_key = (cfg.data.dataset, cfg.data.dim, cfg.data.classes, cfg.model, cfg.norm,
                     cfg.train.dtype, cfg.train.kernels)
        step_key = (*model_key, cfg.train.batch_size, cfg.train.optimizer)
        if step_key not in steps_cache:
            steps_cache[step_key] = _step_cost(cfg)
        if model_key not in eval_cache:
            eval_cache[model_key] = _eval_cost(cfg)
        step, per_sample = steps_cache[step_key], eval_cache[model_key]
        try:
            sizes = split_sizes(cfg.data, fetch=False)
        except DataError:
            sizes = None
        n_train, n_test = sizes or STANDARD_SIZES.get(cfg.data.dataset, (1000, 1000))
        steps = cfg.train.epochs * steps_per_epoch(cfg, n_train)
        evals = cfg.train.epochs // cfg.eval.every + 1
        total += (PER_RUN + PER_FIGURE * plot + steps * step
                  + evals * (n_train + n_test) * per_sample)
    return total / max(1, min(workers, len(points)))


def human(seconds_: float) -> str:
    """``about 1 min 10 s``."""
    s = round(seconds_)
    if s < 60:
        return f"about {max(s, 1)} s"
    if s < 3600:
        return f"about {s // 60} min {s % 60:02d} s"
    return f"about {s // 3600} h {(s % 3600) // 60:02d} min"


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


@dataclass(frozen=True)
class DryRun:
    """What ``bnexp sweep --dry-run`` shows of a sweep, without running it."""

    header: list[str]  # the table of runs: run_id, each swept key, seed
    rows: list[list[str]]
    notes: list[str]  # data a real sweep would download first
    count: str  # ``6 runs (3 grid points x 2 seeds) -> runs/name``
    points: list[Point]
    workers: int
    plot: bool

    def estimate(self) -> str:
        """The estimated time, as a line; times a few steps of each model now
        (a moment per distinct model)."""
        return (f"estimated time: {human(seconds(self.points, self.workers, self.plot))} with "
                f"{_count(self.workers, 'worker')} (from a few timed steps of each model here)")


def dry_run(sweep: Sweep, out: str | Path, jobs: int | None, executor: str,
            plot: bool, address: str | None = None) -> DryRun:
    """``sweep`` into ``out`` as a dry run: its data checked, never downloaded
    (SweepError where it is missing or wrong), its runs listed and counted."""
    from .execute import check_data

    notes = check_data(sweep.points, fetch=False)
    header, rows = dry_run_rows(sweep)
    n, seeds = len(sweep.points), len(sweep.seeds)
    count = (f"{_count(n, 'run')} ({_count(n // seeds, 'grid point')} x {_count(seeds, 'seed')})"
             f" -> {Path(out) / sweep.name}")
    cores = os.cpu_count() or 1
    # Dask without an address starts a local cluster of -j workers, all cores by default.
    workers = (jobs or cores) if executor == "local" or not address else (jobs or 1)
    return DryRun(header, rows, notes, count, sweep.points, workers, plot)
