"""The training loop: one config in, metrics (and what the config asks to
measure) out. Nothing else: the model comes from ``engine.model``, the
measurements from ``analysis``, the checkpoint's format from ``checkpoint``.

No files are touched here; ``runner`` writes the run folder through ``store``
(whose METRIC_COLUMNS and TABLES name the keys of the rows made here).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from .analysis import PROBES, diagnostics, precise_bn, variance_shift
from .checkpoint import RECORDS, Checkpoint
from .config import Config, steps_per_epoch
from .datasets import Dataset, load_dataset
from .engine import Dropout, Network, NoisyShift, make_optimizer
from .engine.model import build_model
from .provenance import one_blas_thread

__all__ = ["Streams", "TrainResult", "train"]


@dataclass
class TrainResult:
    """What a run produced. ``status`` is ``completed`` or ``diverged``."""

    status: str
    metrics: list[dict] = field(default_factory=list)
    diagnostics: list[dict] = field(default_factory=list)
    steps: list[dict] = field(default_factory=list)
    diverged_at: dict | None = None  # {"step": s, "epoch": e} of the first non-finite loss
    model: Network | None = None  # the trained model (in the state training left it)
    landscape: list[dict] = field(default_factory=list)  # eval.landscape_every probes
    ics: list[dict] = field(default_factory=list)  # eval.ics_every measurements
    variance_shift: float | None = None  # BN inputs after dropout: train-mode / eval variance
    step_seconds: float | None = None  # mean wall time of a training step (batch, fwd, bwd, update)


@dataclass(frozen=True)
class Streams:
    """Independent random streams, all from the config's seed. (A stream added
    later takes the next child of the seed sequence, so the others keep their
    numbers.)"""

    data: np.random.Generator
    init: np.random.Generator
    batches: np.random.Generator
    precise: np.random.Generator  # the batches precise BN averages over
    shift: np.random.Generator  # the dropout masks of the variance-shift measurement

    @classmethod
    def from_seed(cls, seed: int) -> Streams:
        return cls(*(np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(5)))


def _batches(cfg: Config, n: int, rng: np.random.Generator):
    B = cfg.train.batch_size
    if cfg.train.sampling == "replacement":  # as the book: np.random.choice(n, B) per step
        return [rng.integers(0, n, B) for _ in range(steps_per_epoch(cfg, n))]
    perm = rng.permutation(n)
    return [perm[i * B : (i + 1) * B] for i in range(steps_per_epoch(cfg, n))]


class _Loop:
    """One run's training state (model, optimizer, streams, what has been
    recorded, the step count) and the loop's parts: a step, the end of an
    epoch, an evaluation, a checkpoint."""

    def __init__(self, cfg: Config, data: Dataset | None, on_eval, threads: int,
                 on_checkpoint, on_step=None) -> None:
        self.cfg, self.on_eval, self.threads, self.on_checkpoint = cfg, on_eval, threads, on_checkpoint
        self.on_step = on_step
        self.streams = Streams.from_seed(cfg.seed)
        dtype = np.dtype(cfg.train.dtype)
        self.data = data if data is not None else load_dataset(cfg.data, self.streams.data, dtype)
        self.model = build_model(cfg, self.data.dim, self.data.classes, self.streams.init)
        t = cfg.train
        self.opt = make_optimizer(t.optimizer, self.model.layers, t.lr, momentum=t.momentum,
                                  nesterov=t.nesterov, weight_decay=t.weight_decay,
                                  kernels=self.model.backend)
        self.result = TrainResult(status="completed", model=self.model)
        self.n = len(self.data.y_train)
        self.per_epoch = steps_per_epoch(cfg, self.n)
        self.xb = np.empty((t.batch_size, self.data.dim), dtype=dtype)  # reused batch buffer
        self.start = time.perf_counter()
        self.step, self.first_epoch = 0, 1
        self.own_streams = {name: layer for name, layer in self.model.named_layers()
                            if isinstance(layer, (Dropout, NoisyShift))}  # dropout, noise
        self.timed = [0.0, 0]  # seconds and count of timed training steps (in this process)
        e = cfg.eval
        self.probes = [(every, name) for every, name in ((e.ics_every, "ics"),
                                                         (e.landscape_every, "landscape"))
                       if every]

    def resume(self, ckpt: Checkpoint) -> None:
        self.model.load_state_dict(ckpt.model)
        self.opt.load_state_dict(ckpt.optimizer)
        self.streams.batches.bit_generator.state = ckpt.rngs["batches"]
        for name, layer in self.own_streams.items():
            layer.rng.bit_generator.state = ckpt.rngs[name]
        for name in RECORDS:
            setattr(self.result, name, [dict(r) for r in getattr(ckpt, name)])
        self.step, self.first_epoch = ckpt.step, ckpt.epoch + 1
        self.start -= ckpt.elapsed

    def checkpoint(self, epoch: int) -> None:
        rngs = {"batches": self.streams.batches.bit_generator.state,
                **{name: layer.rng.bit_generator.state
                   for name, layer in self.own_streams.items()}}
        r = self.result
        self.on_checkpoint(Checkpoint(epoch, self.step,
                                      round(time.perf_counter() - self.start, 4),
                                      self.model.state_dict(), self.opt.state_dict(), rngs,
                                      **{name: [dict(row) for row in getattr(r, name)]
                                         for name in RECORDS}))

    def evaluate(self, epoch: int) -> None:
        d, model = self.data, self.model
        train_loss, train_acc = model.evaluate(d.x_train, d.y_train, threads=self.threads)
        test_loss, test_acc = model.evaluate(d.x_test, d.y_test, threads=self.threads)
        row = {"epoch": epoch, "step": self.step, "train_loss": train_loss,
               "train_acc": train_acc, "test_loss": test_loss, "test_acc": test_acc,
               "elapsed": round(time.perf_counter() - self.start, 4)}
        self.result.metrics.append(row)
        if self.on_eval:
            self.on_eval(row, self.result)

    def diverged(self, step: int, epoch: float) -> TrainResult:
        self.result.status = "diverged"
        self.result.diverged_at = {"step": step, "epoch": epoch}
        return self.result

    def train_step(self, epoch: int, idx: np.ndarray) -> bool:
        """One step on the samples ``idx``, with what this step measures;
        False where its loss is not finite (the run diverged)."""
        cfg, model, step = self.cfg, self.model, self.step
        t_step = time.perf_counter()
        np.take(self.data.x_train, idx, axis=0, out=self.xb)
        labels = self.data.y_train[idx]
        record = cfg.eval.diagnostics_every > 0 and step % cfg.eval.diagnostics_every == 0
        probes = [name for every, name in self.probes if step % every == 0]
        drawn = ({name: layer.rng.bit_generator.state  # before this step's draws
                  for name, layer in self.own_streams.items()} if probes else None)
        loss = model.loss_and_backward(self.xb, labels, record=record)
        frac_epoch = epoch - 1 + (step % self.per_epoch) / self.per_epoch
        if cfg.eval.step_loss:
            self.result.steps.append({"step": step, "epoch": frac_epoch, "loss": loss})
        if not np.isfinite(loss):
            self.diverged(step, frac_epoch)
            return False
        if record:
            self.result.diagnostics += diagnostics(model, cfg, step, frac_epoch)
        for name in probes:
            getattr(self.result, name).extend(PROBES[name](
                model, self.opt, self.xb, labels, cfg.train.lr, step, frac_epoch,
                self.own_streams, drawn))
        self.opt.step()
        if not (record or probes):  # steps that measure more are not timed
            self.timed[0] += time.perf_counter() - t_step
            self.timed[1] += 1
        self.step += 1
        return True

    def end_epoch(self, epoch: int) -> bool:
        """After the epoch's steps: the last epoch's measurements, the
        evaluation and the checkpoint due; False where the evaluation diverged."""
        cfg, t, r = self.cfg, self.cfg.train, self.result
        if epoch == t.epochs and cfg.eval.precise_bn:
            precise_bn(self.model, self.data.x_train, t.batch_size, cfg.eval.precise_bn,
                       self.streams.precise)
        if epoch == t.epochs and cfg.model.dropout > 0:
            r.variance_shift = variance_shift(self.model,
                                              self.data.x_test[:self.model.eval_chunk],
                                              self.streams.shift)
        r.step_seconds = self.timed[0] / self.timed[1] if self.timed[1] else None
        if epoch % cfg.eval.every == 0 or epoch == t.epochs:
            self.evaluate(epoch)
            last = r.metrics[-1]
            if not (np.isfinite(last["train_loss"]) and np.isfinite(last["test_loss"])):
                self.diverged(self.step, float(epoch))
                return False
        every = t.checkpoint_every
        if self.on_checkpoint is not None and every and epoch % every == 0 and epoch < t.epochs:
            self.checkpoint(epoch)
        return True

    def run(self, fresh: bool) -> TrainResult:
        # Overflow in a diverging network is a result, recorded as such, not a
        # warning. One BLAS thread: the numbers must not depend on the thread count.
        with one_blas_thread(), np.errstate(over="ignore", invalid="ignore", divide="ignore",
                                            under="ignore"):
            if fresh:
                self.evaluate(0)
            on_step, total = self.on_step, self.cfg.train.epochs * self.per_epoch
            for epoch in range(self.first_epoch, self.cfg.train.epochs + 1):
                for idx in _batches(self.cfg, self.n, self.streams.batches):
                    if not self.train_step(epoch, idx):
                        return self.result
                    if on_step is not None:
                        on_step(self.step, total)
                if not self.end_epoch(epoch):
                    return self.result
        return self.result


def train(cfg: Config, data: Dataset | None = None,
          on_eval: Callable[[dict, TrainResult], None] | None = None,
          threads: int = 1, on_checkpoint: Callable[[Checkpoint], None] | None = None,
          resume: Checkpoint | None = None,
          on_step: Callable[[int, int], None] | None = None) -> TrainResult:
    """Train one model as ``cfg`` says; evaluate at epoch 0 and every
    ``eval.every`` epochs (and after the last), both splits in eval mode.

    ``on_eval(row, result)`` is called after each evaluation (for progress and
    incremental saving). A non-finite training loss stops the run with status
    ``diverged``, keeping the metrics so far. Every computation runs with BLAS
    on one thread; ``threads`` threads share the evaluation, which does not
    change its result. With ``train.checkpoint_every`` N > 0,
    ``on_checkpoint(checkpoint)`` receives the state after every N-th epoch
    (but the last); ``resume`` continues from such a state.
    ``on_step(step, total)`` is called after each finished training step with
    the steps taken so far (those before a resume included) and the run's
    total; it runs on the loop's time, so it should return at once on most calls.
    """
    loop = _Loop(cfg, data, on_eval, threads, on_checkpoint, on_step)
    if resume is not None:
        loop.resume(resume)
    return loop.run(fresh=resume is None)
