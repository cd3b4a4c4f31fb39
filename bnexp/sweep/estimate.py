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
STANDARD_SIZES = {"mnist": (60000, 10000), "fashion-mnist": (60000, 10000)}


def _costs(cfg) -> tuple[float, float]:
    """(seconds per training step, seconds per evaluated sample) for ``cfg``'s model."""
    import numpy as np

    from ..engine import make_optimizer
    from ..engine.model import build_model
    from ..provenance import one_blas_thread

    dim = cfg.data.dim if cfg.data.dataset == "synthetic" else 784
    classes = cfg.data.classes if cfg.data.dataset == "synthetic" else 10
    rng = np.random.default_rng(0)
    dtype = np.dtype(cfg.train.dtype)
    model = build_model(cfg, dim, classes, rng)
    opt = make_optimizer(cfg.train.optimizer, model.layers, cfg.train.lr,
                         kernels=cfg.train.kernels)
    B = cfg.train.batch_size
    x = rng.random((B, dim)).astype(dtype)
    y = rng.integers(0, classes, B)
    xe = rng.random((1024, dim)).astype(dtype)
    ye = rng.integers(0, classes, 1024)
    with one_blas_thread(), np.errstate(all="ignore"):
        model.loss_and_backward(x, y)  # warm: work arrays
        t0 = time.perf_counter()
        for _ in range(TIMED_STEPS):
            model.loss_and_backward(x, y)
            opt.step()
        step = (time.perf_counter() - t0) / TIMED_STEPS
        model.evaluate(xe, ye)
        t0 = time.perf_counter()
        model.evaluate(xe, ye)
        per_sample = (time.perf_counter() - t0) / len(xe)
    return step, per_sample


def seconds(points: list[Point], workers: int, plot: bool = True) -> float:
    """Estimated wall time of running ``points`` on ``workers`` processes
    (``plot``: drawing each run's figure)."""
    from ..config import steps_per_epoch
    from ..datasets import DataError, split_sizes

    cache: dict[tuple, tuple[float, float]] = {}
    total = 0.0
    for p in points:
        cfg = p.config
        key = (cfg.data.dataset, cfg.data.dim, cfg.data.classes, cfg.model, cfg.norm,
               cfg.train.batch_size, cfg.train.dtype, cfg.train.optimizer, cfg.train.kernels)
        if key not in cache:
            cache[key] = _costs(cfg)
        step, per_sample = cache[key]
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
