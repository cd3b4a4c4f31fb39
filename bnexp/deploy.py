"""Using a trained model again: ``bnexp eval`` (rebuild a run's model from its
model file and evaluate it) and ``bnexp fold`` (merge each BatchNorm into the
layer before it for inference, check the folded model against the original,
and time both)."""

from __future__ import annotations

import dataclasses
import math
import os
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import store
from .choices import DATASETS
from .config import Config, ConfigError, from_dict
from .datasets import Dataset, load_dataset
from .engine.fold import FoldError, fold_batchnorm
from .engine.spec import check_description
from .modelfile import FOLDED_FILE, MODEL_FILE, ModelFileError, load_model, save_model
from .provenance import one_blas_thread
from .yamlio import read_yaml

IMAGE_DATASETS = tuple(d for d in DATASETS if d != "synthetic")  # fixed splits: --data
# Largest folded-vs-original logit difference, relative to the largest logit.
FOLD_TOLERANCE = {"float32": 1e-5, "float64": 1e-12}


class DeployError(store.StoreError):
    """A run that cannot be evaluated or folded; one line."""


@dataclass
class Evaluation:
    split: str
    loss: float
    accuracy: float
    n: int
    recorded: dict | None = None  # the run's last metrics row, when the data is the run's own


def run_config(run_dir: Path) -> Config:
    path = Path(run_dir) / store.CONFIG_FILE
    if not path.is_file():
        raise DeployError(f"{run_dir}: no config.yaml; expected a run folder")
    try:
        return from_dict(read_yaml(path))
    except ConfigError as exc:
        raise DeployError(f"{path}: {exc.errors[0]}") from None


def _model_path(run_dir: Path, model: str | None) -> Path:
    """The model file to load: ``model`` as given (reading it says what is
    wrong with it), or the run's own, which a run without one is told about."""
    if model:
        return Path(model)
    path = Path(run_dir) / MODEL_FILE
    if not path.exists() and not path.is_symlink():
        status = store.run_status(Path(run_dir))
        why = (f"the run's status is {status}: only a completed run saves its model"
               if status and status != "completed" else
               "runs made before bnexp saved models have none; rerun it (its run.json "
               "has the command)")
        raise DeployError(f"{path}: no model file ({why})")
    return path


def run_data(cfg: Config, dataset: str | None = None, root: str | None = None) -> Dataset:
    """The run's own splits (the same seed draws the same subsets), or the
    whole of another dataset, preprocessed as the run was."""
    from .train import Streams

    data_cfg = cfg.data
    if dataset:
        data_cfg = dataclasses.replace(data_cfg, dataset=dataset, root=root, n_train=None,
                                       n_test=None)
    return load_dataset(data_cfg, Streams.from_seed(cfg.seed).data, np.dtype(cfg.train.dtype))


def _check_fits(path: Path, meta: dict, data: Dataset, what: str) -> None:
    """The model file's input and output sizes against the data's (``what``
    names the data): DeployError, one line."""
    shapes = check_description(meta["network"])  # checked when it was loaded
    width = math.prod(shapes.input)
    if data.dim != width:
        shape = f" ({' x '.join(map(str, shapes.input))})" if len(shapes.input) > 1 else ""
        raise DeployError(f"{what}: samples of {data.dim} values do not fit {path}, which "
                          f"takes {width}{shape}")
    if data.classes != shapes.outputs:
        raise DeployError(f"{what}: {data.classes} classes, but {path} gives "
                          f"{shapes.outputs} outputs")


def _other_data(cfg: Config, dataset: str | None) -> str | None:
    """``--data`` as evaluate_run uses it: None for the run's own data. The
    synthetic clusters are drawn for each run (its data.dim, data.classes and
    sizes), so they have no splits of their own to evaluate another run on."""
    if dataset != "synthetic":
        return dataset
    if cfg.data.dataset == "synthetic":
        return None  # the run's own clusters
    raise DeployError(f"--data synthetic: this run was trained on {cfg.data.dataset}; "
                      "synthetic clusters are drawn for a synthetic run and have no splits "
                      f"of their own (expected one of {', '.join(IMAGE_DATASETS)})")


def evaluate_run(run_dir: str | Path, dataset: str | None = None, root: str | None = None,
                 model: str | None = None) -> list[Evaluation]:
    """Evaluate the run's saved model in eval mode on both splits of its own
    data (or, with ``dataset``, on another dataset's splits)."""
    run_dir = Path(run_dir)
    cfg = run_config(run_dir)
    path = _model_path(run_dir, model)
    net, meta = load_model(path)
    net.use_backend(cfg.train.kernels)  # the kernels that made the run's own evaluations
    dataset = _other_data(cfg, dataset)
    data = run_data(cfg, dataset, root)
    _check_fits(path, meta, data, f"--data {dataset}" if dataset else
                f"the run's own data ({cfg.data.dataset})")
    recorded = None
    if dataset is None and (run_dir / store.METRICS_FILE).is_file():
        recorded = store.read_metrics(run_dir)[-1]
    out = []
    with one_blas_thread():
        for split, x, y in (("train", data.x_train, data.y_train),
                            ("test", data.x_test, data.y_test)):
            loss, acc = net.evaluate(x, y)
            out.append(Evaluation(split, loss, acc, len(y), recorded))
    return out


@dataclass
class FoldReport:
    folded: list[str]
    out: Path
    max_rel_diff: float
    tolerance: float
    seconds_original: float
    seconds_folded: float
    n: int


def _median_time(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def fold_target(run_dir: Path, out: str | Path | None, force: bool) -> Path:
    """Where the folded model goes: RUN/model_folded.npz (rewritten: it is
    derived from the run), or ``out``, which must be new or replaced with
    ``force``, and never one of the run's own files."""
    if out is None:
        return run_dir / FOLDED_FILE
    target = Path(out)
    store.check_user_output(target, allow=(FOLDED_FILE,))
    for name in (n for n in store.RUN_FILES if n != FOLDED_FILE):
        own = run_dir / name
        if own.exists() and target.exists() and os.path.samefile(own, target):
            raise DeployError(f"{target}: is the run's own {name}; bnexp fold never replaces "
                              "it (choose another --out)")
    if target.exists() and not force:
        raise DeployError(f"{target} exists; pass --force to replace it or choose another --out")
    return target


def fold_run(run_dir: str | Path, out: str | Path | None = None, repeats: int = 5,
             force: bool = False) -> FoldReport:
    """Fold the run's model, compare its logits with the original's on the
    run's test split, time both there, and write the folded model (only when
    it agrees within FOLD_TOLERANCE). Raises DeployError (with FoldError's
    reason) for a model that cannot be folded. Holds the run folder while it
    works (a train writing there refuses it, and it a train)."""
    run_dir = Path(run_dir)
    target = fold_target(run_dir, out, force)
    run_config(run_dir)  # a run folder, before the lock creates anything in it
    with store.lock(run_dir, "fold"):
        store.remove_stale_temp(target.parent, name=target.name)  # a killed fold's
        return _fold(run_dir, target, repeats)


def _fold(run_dir: Path, target: Path, repeats: int) -> FoldReport:
    cfg = run_config(run_dir)
    path = _model_path(run_dir, None)
    net, meta = load_model(path)
    try:
        folded, names = fold_batchnorm(net)
    except FoldError as exc:
        raise DeployError(f"{run_dir}: cannot fold: {exc}") from None
    data = run_data(cfg)
    _check_fits(path, meta, data, f"the run's own data ({cfg.data.dataset})")
    x = data.x_test
    with one_blas_thread():
        original = net.logits(x).astype(np.float64)
        merged = folded.logits(x).astype(np.float64)
        scale = max(float(np.abs(original).max()), np.finfo(np.float64).tiny)
        diff = float(np.abs(merged - original).max()) / scale
        t_orig = _median_time(lambda: net.predict(x), repeats)
        t_fold = _median_time(lambda: folded.predict(x), repeats)
    tolerance = FOLD_TOLERANCE[net.dtype.name]
    report = FoldReport(names, target, diff, tolerance, t_orig, t_fold, len(x))
    if not diff <= tolerance:
        raise DeployError(f"{run_dir}: the folded model's logits differ by {diff:.3g} of the "
                          f"largest logit (allowed {tolerance:g} in {net.dtype.name}); "
                          "nothing written")
    facts = {k: v for k, v in meta.items() if k not in ("kind", "network", "folded")}
    save_model(target, folded, **facts, folded=names)
    return report


__all__ = ["DeployError", "Evaluation", "FoldReport", "ModelFileError", "evaluate_run",
           "fold_run"]
