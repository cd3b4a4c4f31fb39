"""The training loop: one config in, metrics (and optional diagnostics) out.

No files are touched here; ``runner`` writes the run folder through ``store``
(whose METRIC_COLUMNS, DIAGNOSTIC_COLUMNS and STEP_COLUMNS name the keys of
the rows made here).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from .config import Config
from .datasets import Dataset, load_dataset
from .engine import MLP, build_mlp, make_optimizer
from .provenance import one_blas_thread


@dataclass
class TrainResult:
    """What a run produced. ``status`` is ``completed`` or ``diverged``."""

    status: str
    metrics: list[dict] = field(default_factory=list)
    diagnostics: list[dict] = field(default_factory=list)
    steps: list[dict] = field(default_factory=list)
    diverged_at: dict | None = None  # {"step": s, "epoch": e} of the first non-finite loss


@dataclass(frozen=True)
class Streams:
    """Independent random streams, all from the config's seed."""

    data: np.random.Generator
    init: np.random.Generator
    batches: np.random.Generator

    @classmethod
    def from_seed(cls, seed: int) -> Streams:
        data, init, batches = (np.random.default_rng(s)
                               for s in np.random.SeedSequence(seed).spawn(3))
        return cls(data, init, batches)


def build_model(cfg: Config, in_dim: int, classes: int, rng: np.random.Generator) -> MLP:
    m, n = cfg.model, cfg.norm
    return build_mlp(
        in_dim, classes, m.hidden, rng=rng, activation=m.activation, norm=m.norm,
        placement=m.placement, groups=m.groups, dropout=m.dropout,
        weight_scale=cfg.init.weight_scale, momentum=n.momentum, eps=n.eps, affine=n.affine,
        track_running_stats=n.track_running_stats, convention=n.convention,
        dtype=np.dtype(cfg.train.dtype))


def steps_per_epoch(cfg: Config, n_train: int) -> int:
    """Full batches only: every step sees exactly ``batch_size`` samples (a
    short last batch would change BN's statistics); a new shuffle each epoch
    means every sample is still seen."""
    return max(n_train // cfg.train.batch_size, 1)


def _batches(cfg: Config, n: int, rng: np.random.Generator):
    B = cfg.train.batch_size
    if cfg.train.sampling == "replacement":  # as the book: np.random.choice(n, B) per step
        return [rng.integers(0, n, B) for _ in range(steps_per_epoch(cfg, n))]
    perm = rng.permutation(n)
    return [perm[i * B : (i + 1) * B] for i in range(steps_per_epoch(cfg, n))]


def _diagnostics(model: MLP, cfg: Config, step: int, epoch: float) -> list[dict]:
    """Percentiles of each hidden layer's activation input (pooled over the
    batch and units, and for unit 0 over the batch), and its weight-gradient norm."""
    rows = []
    act = cfg.model.activation
    records = {r.name: r for r in model.records}
    layers = dict(model.named_layers())
    for i in range(1, len(cfg.model.hidden) + 1):
        x = records[f"{act}{i}"].x.astype(np.float64)
        p15, p50, p85 = np.percentile(x, [15, 50, 85])
        u15, u50, u85 = np.percentile(x[:, 0], [15, 50, 85])
        values = {"p15": p15, "p50": p50, "p85": p85, "mean": x.mean(), "std": x.std(),
                  "unit_p15": u15, "unit_p50": u50, "unit_p85": u85,
                  "grad_norm": np.linalg.norm(layers[f"linear{i}"].grads["W"])}
        rows.append({"step": step, "epoch": epoch, "layer": i,
                     **{k: float(v) for k, v in values.items()}})
    return rows


def train(cfg: Config, data: Dataset | None = None,
          on_eval: Callable[[dict, TrainResult], None] | None = None,
          threads: int = 1) -> TrainResult:
    """Train one model as ``cfg`` says; evaluate at epoch 0 and every
    ``eval.every`` epochs (and after the last), both splits in eval mode.

    ``on_eval(row, result)`` is called after each evaluation (for progress and
    incremental saving). A non-finite training loss stops the run with status
    ``diverged``, keeping the metrics so far. Every computation runs with BLAS
    on one thread; ``threads`` threads share the evaluation, which does not
    change its result.
    """
    streams = Streams.from_seed(cfg.seed)
    dtype = np.dtype(cfg.train.dtype)
    if data is None:
        data = load_dataset(cfg.data, streams.data, dtype)
    model = build_model(cfg, data.dim, data.classes, streams.init)
    t = cfg.train
    opt = make_optimizer(t.optimizer, model.layers, t.lr, momentum=t.momentum,
                         nesterov=t.nesterov, weight_decay=t.weight_decay)
    result = TrainResult(status="completed")
    n = len(data.y_train)
    per_epoch = steps_per_epoch(cfg, n)
    xb = np.empty((t.batch_size, data.dim), dtype=dtype)  # reused batch buffer
    start = time.perf_counter()
    step = 0

    def evaluate(epoch: int) -> None:
        train_loss, train_acc = model.evaluate(data.x_train, data.y_train, threads=threads)
        test_loss, test_acc = model.evaluate(data.x_test, data.y_test, threads=threads)
        row = {"epoch": epoch, "step": step, "train_loss": train_loss, "train_acc": train_acc,
               "test_loss": test_loss, "test_acc": test_acc,
               "elapsed": round(time.perf_counter() - start, 4)}
        result.metrics.append(row)
        if on_eval:
            on_eval(row, result)

    # Overflow in a diverging network is a result, recorded as such, not a
    # warning. One BLAS thread: the numbers must not depend on the thread count.
    with one_blas_thread(), np.errstate(over="ignore", invalid="ignore", divide="ignore",
                                        under="ignore"):
        evaluate(0)
        for epoch in range(1, t.epochs + 1):
            for idx in _batches(cfg, n, streams.batches):
                np.take(data.x_train, idx, axis=0, out=xb)
                record = cfg.eval.diagnostics_every > 0 and step % cfg.eval.diagnostics_every == 0
                loss = model.loss_and_backward(xb, data.y_train[idx], record=record)
                frac_epoch = epoch - 1 + (step % per_epoch) / per_epoch
                if cfg.eval.step_loss:
                    result.steps.append({"step": step, "epoch": frac_epoch, "loss": loss})
                if not np.isfinite(loss):
                    result.status = "diverged"
                    result.diverged_at = {"step": step, "epoch": frac_epoch}
                    return result
                if record:
                    result.diagnostics += _diagnostics(model, cfg, step, frac_epoch)
                opt.step()
                step += 1
            if epoch % cfg.eval.every == 0 or epoch == t.epochs:
                evaluate(epoch)
                last = result.metrics[-1]
                if not (np.isfinite(last["train_loss"]) and np.isfinite(last["test_loss"])):
                    result.status = "diverged"
                    result.diverged_at = {"step": step, "epoch": float(epoch)}
                    return result
    return result
