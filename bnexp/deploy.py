"""Using a trained model again: ``bnexp eval`` (rebuild a run's model from its
model file and evaluate it) and ``bnexp fold`` (merge each BatchNorm into the
layer before it for inference, check the folded model against the original,
and time both)."""

from __future__ import annotations

import dataclasses
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import store
from .config import Config, ConfigError, from_dict
from .datasets import Dataset, load_dataset
from .engine.spec import FoldError, fold_batchnorm
from .modelfile import FOLDED_FILE, MODEL_FILE, ModelFileError, load_model, save_model
from .provenance import one_blas_thread
from .yamlio import read_yaml

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
    path = Path(model) if model else Path(run_dir) / MODEL_FILE
    if not path.is_file():
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


def evaluate_run(run_dir: str | Path, dataset: str | None = None, root: str | None = None,
                 model: str | None = None) -> list[Evaluation]:
    """Evaluate the run's saved model in eval mode on both splits of its own
    data (or, with ``dataset``, on another dataset's splits)."""
    run_dir = Path(run_dir)
    cfg = run_config(run_dir)
    net, _ = load_model(_model_path(run_dir, model))
    net.use_kernels(cfg.train.kernels)  # the kernels that made the run's own evaluations
    data = run_data(cfg, dataset, root)
    if data.dim != int(np.prod(net.input_shape or net.layers[0].params["W"].shape[:1])):
        raise DeployError(f"--data {dataset}: samples of {data.dim} values do not fit this model")
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


def fold_run(run_dir: str | Path, out: str | Path | None = None, repeats: int = 5) -> FoldReport:
    """Fold the run's model, compare its logits with the original's on the
    run's test split, time both there, and write the folded model (only when
    it agrees within FOLD_TOLERANCE). Raises DeployError (with FoldError's
    reason) for a model that cannot be folded."""
    run_dir = Path(run_dir)
    cfg = run_config(run_dir)
    net, meta = load_model(_model_path(run_dir, None))
    try:
        folded, names = fold_batchnorm(net)
    except FoldError as exc:
        raise DeployError(f"{run_dir}: cannot fold: {exc}") from None
    x = run_data(cfg).x_test
    with one_blas_thread():
        original = net.logits(x).astype(np.float64)
        merged = folded.logits(x).astype(np.float64)
        scale = max(float(np.abs(original).max()), np.finfo(np.float64).tiny)
        diff = float(np.abs(merged - original).max()) / scale
        t_orig = _median_time(lambda: net.predict(x), repeats)
        t_fold = _median_time(lambda: folded.predict(x), repeats)
    tolerance = FOLD_TOLERANCE[net.dtype.name]
    target = Path(out) if out else run_dir / FOLDED_FILE
    report = FoldReport(names, target, diff, tolerance, t_orig, t_fold, len(x))
    if not diff <= tolerance:
        raise DeployError(f"{run_dir}: the folded model's logits differ by {diff:.3g} of the "
                          f"largest logit (allowed {tolerance:g} in {net.dtype.name}); "
                          "nothing written")
    facts = {k: v for k, v in meta.items() if k not in ("kind", "network")}
    save_model(target, folded, **facts, folded=names)
    return report


__all__ = ["DeployError", "Evaluation", "FoldReport", "ModelFileError", "evaluate_run",
           "fold_run"]
