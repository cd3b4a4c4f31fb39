"""Runs out of bnexp, into the trackers people compare runs in: TensorBoard
event files (``tensorboardX``'s writer, the ``tensorboard`` extra) and an
MLflow file store (``mlflow``'s client, the ``mlflow`` extra).

``export(path, to, out)`` takes a run folder or a sweep folder and writes
one tracker run per run folder that has metrics:

- TensorBoard: ``OUT/<run>/``, every per-epoch metric of metrics.csv as a
  scalar (step = epoch), the config's keys as hparams with the final
  metrics beside them.
- MLflow: ``OUT`` is a file store (``mlflow ui --backend-store-uri OUT``);
  one experiment per sweep (or per run, named after it), params from the
  config, metrics per epoch, status and seed as tags, and the run folder's
  files as artifacts.

``OUT`` must not exist yet (a second export would duplicate runs in a
tracker); an export that fails removes the folder it made. (It is written in
place, not renamed into place: an MLflow store records its own absolute path.)
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from .config import dotted, load_saved
from .errors import BnexpError
from .store import (
    CONFIG_FILE,
    METRICS_FILE,
    is_sweep_dir,
    open_sweep,
    read_json,
    read_metrics,
)

TARGETS = ("tensorboard", "mlflow")
SCALARS = ("train_loss", "train_acc", "test_loss", "test_acc")  # metrics.csv, per epoch
EXTRAS = {"tensorboard": ("tensorboardX", "tensorboard"), "mlflow": ("mlflow", "mlflow")}


class ExportError(BnexpError):
    pass


@dataclass(frozen=True)
class Source:
    """One run folder to export: its name in the tracker and what it holds."""

    name: str
    path: Path
    experiment: str
    status: str
    seed: int | None


def _settings(run_dir: Path) -> dict:
    """A run's config as dotted keys -> values a tracker takes (lists and None
    as text)."""
    flat = dotted(load_saved(run_dir / CONFIG_FILE).to_dict())
    return {k: v if isinstance(v, (bool, int, float, str)) else str(v) for k, v in flat.items()}


def sources(path: str | Path) -> list[Source]:
    """The run folders of a run or sweep folder that have metrics."""
    path = Path(path)
    if is_sweep_dir(path):
        folder = open_sweep(path)
        runs = [Source(r.run_id, r.path, folder.name, r.status, r.seed) for r in folder.runs]
    elif (path / CONFIG_FILE).is_file():
        info = read_json(path / "run.json") or {}
        runs = [Source(path.name, path, path.name, info.get("status", "pending"),
                       info.get("seed"))]
    else:
        raise ExportError(f"{path}: neither a run folder (config.yaml) nor a sweep folder "
                          "(sweep.yaml)")
    found = [s for s in runs if (s.path / METRICS_FILE).is_file()]
    if not found:
        raise ExportError(f"{path}: no run with metrics.csv to export")
    return found


def _module(to: str):
    name, extra = EXTRAS[to]
    try:
        if to == "tensorboard":
            import tensorboardX
            import tensorboardX.summary  # noqa: F401  (hparams)

            return tensorboardX
        import mlflow.tracking

        return mlflow
    except ImportError:
        raise ExportError(f"export to {to} needs {name}, which the {extra} extra installs: "
                          f'pip install "bnexp[{extra}]"') from None


def _tensorboard(module, runs: list[Source], root: Path) -> None:
    for s in runs:
        rows = read_metrics(s.path)
        writer = module.SummaryWriter(str(root / s.name))
        try:
            for row in rows:
                for key in SCALARS:
                    writer.add_scalar(key, row[key], int(row["epoch"]))
            hparams = _settings(s.path)
            final = {f"final/{k}": rows[-1][k] for k in SCALARS} if rows else {}
            # add_hparams itself would open a second writer on the same file name
            for summary in module.summary.hparams(hparams, final):
                writer.file_writer.add_summary(summary)
            for key, value in final.items():
                writer.add_scalar(key, value, int(rows[-1]["epoch"]))
        finally:
            writer.close()


def _mlflow(module, runs: list[Source], root: Path) -> None:
    saved = os.environ.get("MLFLOW_ALLOW_FILE_STORE")
    os.environ["MLFLOW_ALLOW_FILE_STORE"] = "true"  # MLflow 3 keeps it, in maintenance mode
    try:
        client = module.tracking.MlflowClient(tracking_uri=root.resolve().as_uri())
        experiments: dict[str, str] = {}
        for s in runs:
            if s.experiment not in experiments:
                experiments[s.experiment] = client.create_experiment(s.experiment)
            run = client.create_run(experiments[s.experiment], run_name=s.name,
                                    tags={"bnexp.status": s.status,
                                          "bnexp.seed": str(s.seed)})
            rid = run.info.run_id
            params = _settings(s.path)
            for key, value in params.items():
                client.log_param(rid, key, str(value)[:6000])
            for row in read_metrics(s.path):
                for key in SCALARS:
                    client.log_metric(rid, key, row[key], step=int(row["epoch"]))
            client.log_artifacts(rid, str(s.path))
            client.set_terminated(rid, "FINISHED" if s.status in ("completed", "diverged")
                                  else "FAILED")
    finally:
        if saved is None:
            os.environ.pop("MLFLOW_ALLOW_FILE_STORE", None)
        else:
            os.environ["MLFLOW_ALLOW_FILE_STORE"] = saved


def export(path: str | Path, to: str, out: str | Path) -> tuple[Path, int]:
    """Export the runs under ``path`` to ``to`` (one of TARGETS) into ``out``
    (a folder that does not exist yet); returns (out, number of runs)."""
    if to not in TARGETS:
        raise ExportError(f"to: got {to!r}, expected one of {', '.join(TARGETS)}")
    out = Path(out)
    if out.exists() or out.is_symlink():
        raise ExportError(f"{out}: exists; export into a new folder (a second export would "
                          "duplicate its runs)")
    runs = sources(path)
    module = _module(to)
    if not out.parent.is_dir():
        raise ExportError(f"{out}: its folder {out.parent} does not exist")
    try:
        out.mkdir()
    except OSError as exc:
        raise ExportError(f"{out}: cannot make it ({exc.strerror})") from None
    try:
        (_tensorboard if to == "tensorboard" else _mlflow)(module, runs, out)
    except BaseException:
        shutil.rmtree(out, ignore_errors=True)
        raise
    return out, len(runs)
