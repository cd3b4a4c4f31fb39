"""The run folder: what one run leaves on disk, written atomically.

    <run_dir>/config.yaml       the resolved config (loading it reproduces the run)
    <run_dir>/metrics.csv       one row per evaluation
    <run_dir>/diagnostics.csv   activation percentiles / gradient norms, when enabled
    <run_dir>/steps.csv         per-step training loss, when enabled
    <run_dir>/run.json          status, times, versions, command, error
    <run_dir>/curves.png        accuracy and loss against epoch

Every file is written to a temporary name in the same folder and renamed, so
a killed run never leaves a half-written file.
"""

from __future__ import annotations

import csv
import functools
import io
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

from . import __version__
from .config import Config, dump

RUN_FILES = ("config.yaml", "metrics.csv", "diagnostics.csv", "steps.csv", "run.json",
             "curves.png")
FINISHED = ("completed", "diverged")  # a result; "failed" and "running" are not


_UMASK = os.umask(0o022)
os.umask(_UMASK)


class RunExistsError(Exception):
    pass


def atomic_write(path: Path, data: str | bytes) -> None:
    """Write ``data`` to ``path`` via a temporary file in the same folder and a rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data.encode() if isinstance(data, str) else data)
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; give the usual mode
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def csv_text(rows: list[dict], columns: list[str]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: _fmt(row[k]) for k in columns})
    return buf.getvalue()


def _fmt(v):
    if hasattr(v, "item"):  # a numpy scalar
        v = v.item()
    if isinstance(v, float):
        return repr(v)  # shortest exact round trip
    return v


def read_csv(path: Path) -> list[dict]:
    """Rows with numbers parsed back (``repr`` floats round-trip exactly)."""
    with open(path, newline="") as fh:
        return [{k: _parse(v) for k, v in row.items()} for row in csv.DictReader(fh)]


def _parse(v: str):
    for cast in (int, float):
        try:
            return cast(v)
        except ValueError:
            pass
    return v


def read_json(path: Path) -> dict | None:
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None


def run_status(run_dir: Path) -> str | None:
    """The status in ``run.json``, or None where there is no readable run."""
    info = read_json(Path(run_dir) / "run.json")
    return info.get("status") if info else None


@functools.cache
def git_commit() -> str | None:
    """The commit of the bnexp checkout this code runs from, if any (asked of
    git once per process: every run's run.json records it, twice per run)."""
    here = Path(__file__).resolve().parent
    try:
        out = subprocess.run(["git", "-C", str(here), "rev-parse", "HEAD"], capture_output=True,
                             text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def prepare(run_dir: Path, force: bool) -> None:
    """Refuse to overwrite an existing run unless ``force``; with it, remove
    the old run's files (and nothing else)."""
    if run_status(run_dir) is not None or (run_dir / "metrics.csv").exists():
        if not force:
            raise RunExistsError(f"{run_dir} already holds a run; pass --force to overwrite it "
                                 "or choose another name (--set name=...)")
        for name in RUN_FILES:
            (run_dir / name).unlink(missing_ok=True)
    run_dir.mkdir(parents=True, exist_ok=True)


def run_info(cfg: Config, command: list[str] | None) -> dict:
    """The ``run.json`` fields known before a run starts."""
    import numpy as np

    return {
        "status": "running", "name": cfg.name, "seed": cfg.seed, "started": _now(),
        "ended": None, "seconds": None,
        "versions": {"bnexp": __version__, "numpy": np.__version__,
                     "python": platform.python_version()},
        "platform": platform.platform(),
        "host": platform.node(),
        "command": command if command is not None else sys.argv,
        "git_commit": git_commit(),
    }


def compute(cfg: Config, *, plot: bool = True, on_eval: Callable | None = None,
            command: list[str] | None = None) -> dict:
    """Run ``cfg`` and return everything its folder will hold, as plain data
    (picklable: sweep workers send it back to the parent, which writes it).

    An exception inside the run is caught and returned as status ``failed``
    with its traceback; an interrupt propagates.
    """
    from . import train as train_mod

    info = run_info(cfg, command)
    t0 = time.perf_counter()
    payload = {"info": info, "metrics": [], "diagnostics": [], "steps": [], "curves": None}
    try:
        result = train_mod.train(cfg, on_eval=on_eval)
    except Exception as exc:
        info.update(status="failed", ended=_now(), seconds=round(time.perf_counter() - t0, 3),
                    error=f"{type(exc).__name__}: {exc}", traceback=traceback.format_exc())
        return payload
    final = result.metrics[-1]
    info.update(
        status=result.status, ended=_now(), seconds=round(time.perf_counter() - t0, 3),
        diverged_at=result.diverged_at,
        final={k: final[k] for k in ("epoch", "train_loss", "train_acc", "test_loss", "test_acc")},
        best_test_acc=max(r["test_acc"] for r in result.metrics),
    )
    payload.update(metrics=result.metrics, diagnostics=result.diagnostics, steps=result.steps)
    if plot:
        from .plot import curves_figure, figure_bytes

        payload["curves"] = figure_bytes(curves_figure(result.metrics, info), "png")
    return payload


def write(run_dir: Path, cfg: Config, payload: dict) -> None:
    """Write a computed run into ``run_dir`` (``run.json`` last: it marks the run done)."""
    from .train import DIAGNOSTIC_COLUMNS, METRIC_COLUMNS, STEP_COLUMNS

    run_dir = Path(run_dir)
    atomic_write(run_dir / "config.yaml", dump(cfg))
    if payload["metrics"]:
        atomic_write(run_dir / "metrics.csv", csv_text(payload["metrics"], METRIC_COLUMNS))
    if cfg.eval.diagnostics_every and payload["info"]["status"] != "failed":
        atomic_write(run_dir / "diagnostics.csv",
                     csv_text(payload["diagnostics"], DIAGNOSTIC_COLUMNS))
    if cfg.eval.step_loss and payload["info"]["status"] != "failed":
        atomic_write(run_dir / "steps.csv", csv_text(payload["steps"], STEP_COLUMNS))
    if payload.get("curves"):
        atomic_write(run_dir / "curves.png", payload["curves"])
    atomic_write(run_dir / "run.json", json.dumps(payload["info"], indent=2))


def mark(run_dir: Path, cfg: Config, status: str, command: list[str] | None = None) -> None:
    """Write config.yaml and a provisional run.json (status ``running``); a run
    left so (killed) is rerun by the next sweep."""
    info = run_info(cfg, command)
    info["status"] = status
    atomic_write(Path(run_dir) / "config.yaml", dump(cfg))
    atomic_write(Path(run_dir) / "run.json", json.dumps(info, indent=2))


class RunFailed(Exception):
    """The run raised; its traceback is in run.json."""


def execute(cfg: Config, run_dir: str | Path, *, force: bool = False,
            command: list[str] | None = None, plot: bool = True,
            on_eval: Callable | None = None) -> dict:
    """``bnexp train``: run ``cfg`` into ``run_dir``, saving metrics.csv after
    every evaluation, and return the ``run.json`` contents. Raises RunFailed
    (after recording it) when the run raised; a diverged run is a result."""
    from .datasets import check_available
    from .train import METRIC_COLUMNS

    run_dir = Path(run_dir)
    check_available(cfg.data)
    prepare(run_dir, force)
    mark(run_dir, cfg, "running", command)

    def save_metrics(row, result):
        atomic_write(run_dir / "metrics.csv", csv_text(result.metrics, METRIC_COLUMNS))
        if on_eval:
            on_eval(row, result)

    try:
        payload = compute(cfg, plot=plot, on_eval=save_metrics, command=command)
    except KeyboardInterrupt:
        info = run_info(cfg, command)
        info.update(status="interrupted", ended=_now())
        atomic_write(run_dir / "run.json", json.dumps(info, indent=2))
        raise
    write(run_dir, cfg, payload)
    info = payload["info"]
    if info["status"] == "failed":
        raise RunFailed(f"{info['error']} (traceback in {run_dir / 'run.json'})")
    return info
