"""A run's checkpoint: everything that decides the rest of a run after a
given epoch, and the check that a checkpoint read from a file is one this
config's run could have written (``check_resume``). ``modelfile`` stores it;
``train`` makes and resumes from it."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from . import store
from .config import Config, data_shape, steps_per_epoch
from .engine import Dropout, NoisyShift, make_optimizer
from .engine.model import build_model
from .engine.spec import check_values, describe


@dataclass
class Checkpoint:
    """Everything that decides the rest of a run after ``epoch`` epochs: the
    model's parameters and buffers, the optimizer's state, the random streams
    still in use (batches, each dropout layer), and what has been recorded.
    Resuming from it gives the numbers an uninterrupted run gives."""

    epoch: int
    step: int
    elapsed: float  # seconds of training behind it (the metrics' elapsed column goes on)
    model: dict[str, np.ndarray]
    optimizer: dict[str, np.ndarray]
    rngs: dict[str, dict]  # bit generator states by stream: "batches", dropout layer names
    metrics: list[dict] = field(default_factory=list)
    diagnostics: list[dict] = field(default_factory=list)
    steps: list[dict] = field(default_factory=list)
    landscape: list[dict] = field(default_factory=list)
    ics: list[dict] = field(default_factory=list)


# The rows a run records as it goes, by their name in TrainResult and Checkpoint.
RECORDS = ("metrics", "diagnostics", "steps", "landscape", "ics")

# The columns of each record's rows: those of the CSV file each becomes.
RECORD_COLUMNS = {"metrics": store.METRIC_COLUMNS,
                  **{name: columns for name, (_, columns) in store.TABLES.items()}}


def check_resume(cfg: Config, ckpt: Checkpoint) -> None:
    """A checkpoint ``cfg``'s run could have written: ValueError, one line,
    for anything else (an epoch it never checkpoints at, records that do not
    lead up to it, random streams that are not PCG64's, arrays that do not
    fit its model and optimizer). Builds the model once, on dummy sizes."""
    t = cfg.train
    if not (isinstance(ckpt.epoch, int) and 1 <= ckpt.epoch < t.epochs and t.checkpoint_every
            and ckpt.epoch % t.checkpoint_every == 0):
        raise ValueError(f"epoch {ckpt.epoch!r}: this config checkpoints after every "
                         f"{t.checkpoint_every}-th of {t.epochs} epochs (but the last)")
    if not (isinstance(ckpt.step, int) and ckpt.step >= ckpt.epoch
            and ckpt.step % ckpt.epoch == 0):
        raise ValueError(f"step {ckpt.step!r}: not a whole number of epochs of steps by "
                         f"epoch {ckpt.epoch}")
    per_epoch = ckpt.step // ckpt.epoch
    if cfg.data.n_train is not None and per_epoch != steps_per_epoch(cfg, cfg.data.n_train):
        raise ValueError(f"step {ckpt.step}: {per_epoch} steps per epoch, but this config makes "
                         f"{steps_per_epoch(cfg, cfg.data.n_train)}")
    _check_records(cfg, ckpt, per_epoch)
    model = build_model(cfg, *data_shape(cfg), np.random.default_rng(0))
    model.load_state_dict(ckpt.model)
    check_values(describe(model), ckpt.model)
    make_optimizer(t.optimizer, model.layers, t.lr, momentum=t.momentum, nesterov=t.nesterov,
                   weight_decay=t.weight_decay).load_state_dict(ckpt.optimizer)
    streams = ["batches", *(name for name, layer in model.named_layers()
                            if isinstance(layer, (Dropout, NoisyShift)))]
    if not isinstance(ckpt.rngs, dict) or sorted(ckpt.rngs) != sorted(streams):
        got = sorted(ckpt.rngs) if isinstance(ckpt.rngs, dict) else ckpt.rngs
        raise ValueError(f"random streams {got!r}, expected {streams}")
    for name, state in ckpt.rngs.items():
        _check_pcg64(name, state)


def _check_pcg64(name: str, state) -> None:
    """A PCG64 bit generator's state as numpy writes it (numpy's own setter
    takes an even increment or has_uint32 of 2 without a word)."""
    inner = state.get("state") if isinstance(state, dict) else None
    ok = (isinstance(inner, dict) and state.get("bit_generator") == "PCG64"
          and set(state) == {"bit_generator", "state", "has_uint32", "uinteger"}
          and set(inner) == {"state", "inc"}
          and all(isinstance(v, int) and not isinstance(v, bool) for v in (
              inner["state"], inner["inc"], state["has_uint32"], state["uinteger"]))
          and 0 <= inner["state"] < 1 << 128 and 0 < inner["inc"] < 1 << 128
          and inner["inc"] % 2 == 1 and state["has_uint32"] in (0, 1)
          and 0 <= state["uinteger"] < 1 << 32)
    if not ok:
        raise ValueError(f"random stream {name!r}: not a PCG64 state as numpy writes it")


def _check_records(cfg: Config, ckpt: Checkpoint, per_epoch: int) -> None:
    """The recorded rows: exactly their columns, numbers where numbers go,
    before the checkpoint's step; the evaluations exactly those made by then."""
    for name, columns in RECORD_COLUMNS.items():
        rows = getattr(ckpt, name)
        if not isinstance(rows, list):
            raise ValueError(f"{name}: got {type(rows).__name__}, expected a list of rows")
        for i, row in enumerate(rows):
            if not isinstance(row, dict) or set(row) != set(columns) or not all(
                    isinstance(v, (int, float)) and not isinstance(v, bool)
                    and (name != "metrics" or np.isfinite(v)) for v in row.values()):
                raise ValueError(f"{name} row {i + 1}: not a row of {', '.join(columns)} "
                                 "(numbers, finite in metrics)")
            if row["step"] > ckpt.step:
                raise ValueError(f"{name} row {i + 1}: step {row['step']} is after the "
                                 f"checkpoint's step {ckpt.step}")
    for i, row in enumerate(ckpt.metrics):
        if not (all(0 <= row[k] <= 1 for k in ("train_acc", "test_acc"))
                and all(row[k] >= 0 for k in ("train_loss", "test_loss", "elapsed"))):
            raise ValueError(f"metrics row {i + 1}: an accuracy outside [0, 1] or a negative "
                             "loss or time")
    every = cfg.eval.every
    want = [(e, e * per_epoch) for e in range(0, ckpt.epoch + 1) if e % every == 0]
    got = [(r["epoch"], r["step"]) for r in ckpt.metrics]
    if got != want:
        raise ValueError(f"metrics: evaluations at (epoch, step) {_few(got)}, expected "
                         f"{_few(want)} (every {every} epochs up to epoch {ckpt.epoch})")


def _few(pairs: list) -> str:
    return str(pairs[:3])[:-1] + (", ...]" if len(pairs) > 3 else "]")
