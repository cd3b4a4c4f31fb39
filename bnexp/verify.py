"""``bnexp verify``: rerun saved runs from their own config.yaml and compare.

Each run is recomputed in memory (its folder is never written) and its
metrics, diagnostics and per-step losses are compared value by value with
what the folder holds, every column but ``elapsed``. A run is identical, or
it differs: then the report says by how much (the largest difference per
column, and the first row that differs) and which of the facts recorded in
its run.json that decide numbers (code, numpy, BLAS, CPU, engine) changed.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from . import provenance, runner, store
from .config import ConfigError, load_saved
from .errors import BnexpError
from .store import METRIC_COLUMNS, StoreError

FILES = ((store.METRICS_FILE, "metrics", METRIC_COLUMNS),
         *((filename, name, columns) for name, (filename, columns) in store.TABLES.items()))
IGNORED = ("elapsed",)  # wall-clock time: never the same twice


class VerifyError(BnexpError):
    """PATH is neither a run nor a sweep that can be rerun; one line."""


@dataclass
class RunCheck:
    run_id: str
    result: str  # identical | differs | skipped
    detail: str = ""
    changed: list[str] = field(default_factory=list)  # deciding facts that differ


def _differences(old: list[dict], new: list[dict], columns: list[str], what: str) -> list[str]:
    """Where ``new`` rows differ from ``old``: the largest absolute difference
    per column and the first differing row."""
    if len(old) != len(new):
        return [f"{what}: {len(new)} rows, the saved run has {len(old)}"]
    worst: dict[str, float] = {}
    first = None
    for i, (a, b) in enumerate(zip(old, new)):
        for col in columns:
            if col in IGNORED:
                continue
            x, y = a[col], b[col]
            if store.same_result(x, y):
                continue
            first = first if first is not None else (i, col)
            try:
                d = abs(float(x) - float(y))
            except (TypeError, ValueError):
                d = math.inf
            worst[col] = max(worst.get(col, 0.0), d if math.isfinite(d) else math.inf)
    if not worst:
        return []
    spread = ", ".join(f"{c} by up to {v:.3g}" for c, v in worst.items())
    row = old[first[0]]
    at = f"epoch {row.get('epoch')}" if "epoch" in row else f"row {first[0] + 1}"
    return [f"{what}: {spread} (first at {at}, {first[1]})"]


def _result_differences(old: dict, new: dict) -> list[str]:
    """run.json's results (``store.RESULT_KEYS``: what tables and verdicts read)
    that the recomputed run does not reproduce exactly."""
    out = []
    for key in store.RESULT_KEYS:
        a, b = old.get(key), new.get(key)
        if isinstance(a, dict) or isinstance(b, dict):
            a, b = a if isinstance(a, dict) else {}, b if isinstance(b, dict) else {}
            for sub in sorted(set(a) | set(b)):
                if sub not in IGNORED and not store.same_result(a.get(sub), b.get(sub)):
                    out.append(f"run.json: {key}.{sub} {b.get(sub)}, the saved run has "
                               f"{a.get(sub)}")
        elif not store.same_result(a, b):
            out.append(f"run.json: {key} {b}, the saved run has {a}")
    return out


def compare(run_dir: Path, payload: dict) -> RunCheck:
    """A saved run folder against a fresh computation of its config."""
    run_dir = Path(run_dir)
    old_info = store.read_json(run_dir / store.RUN_FILE) or {}
    new_info = payload["info"]
    problems = []
    if new_info["status"] != old_info.get("status"):
        problems.append(f"status {new_info['status']}, the saved run is {old_info.get('status')}"
                        + (f" ({new_info.get('error')})" if new_info.get("error") else ""))
    else:
        problems += _result_differences(old_info, new_info)
    for filename, key, columns in FILES:
        path = run_dir / filename
        if not path.is_file() and not payload.get(key):
            continue
        try:
            old = store.read_csv(path, columns) if path.is_file() else []
        except StoreError as exc:
            problems.append(str(exc))
            continue
        new = [{c: r[c] for c in columns} for r in payload.get(key) or []]
        problems += _differences(old, new, columns, filename.removesuffix(".csv"))
    changed = provenance.changed(old_info.get("provenance") or {}, new_info.get("provenance")
                                 or {})
    if problems:
        return RunCheck(run_dir.name, "differs", "; ".join(problems), changed)
    return RunCheck(run_dir.name, "identical", "", changed)


def _saved_config(run_dir: Path):
    try:
        return load_saved(run_dir / store.CONFIG_FILE)
    except ConfigError as exc:
        raise VerifyError(f"{run_dir}: its config.yaml cannot be loaded ({exc})") from None


def targets(path: str | Path) -> list[Path]:
    """The run folders PATH names: itself (a run) or every finished run of a sweep."""
    path = Path(path)
    if store.is_sweep_dir(path):
        folder = store.open_sweep(path)
        return [r.path for r in folder.runs]
    if (path / store.RUN_FILE).is_file() and (path / store.CONFIG_FILE).is_file():
        return [path]
    if not path.is_dir():
        raise VerifyError(f"{path}: no such folder")
    raise VerifyError(f"{path}: neither a run folder (run.json and config.yaml) nor a sweep "
                      "folder (sweep.yaml)")


def verify(path: str | Path, jobs: int | None = None,
           progress: Callable[[RunCheck], None] | None = None) -> list[RunCheck]:
    """Rerun every finished run under PATH and compare; runs in parallel (one
    BLAS thread each) when there are several."""
    from .sweep.execute import make_executor, shutdown

    checks: list[RunCheck] = []
    todo = []
    run_dirs = targets(path)
    for run_dir in run_dirs:
        status = store.run_status(run_dir)
        if status not in store.FINISHED:
            checks.append(RunCheck(run_dir.name, "skipped", f"status {status or 'pending'}: "
                                   "not a finished run"))
            continue
        todo.append((run_dir, _saved_config(run_dir)))
    if len(todo) == 1:
        run_dir, cfg = todo[0]
        result = compare(run_dir, runner.compute(cfg, plot=False))
        checks.append(result)
        if progress:
            progress(result)
    elif todo:
        from concurrent.futures import as_completed

        pool, close, _ = make_executor("local", jobs, None)
        try:
            futures = {pool.submit(runner.run_point, cfg.to_dict(), False): run_dir
                       for run_dir, cfg in todo}
            for fut in as_completed(futures):
                result = compare(futures[fut], fut.result())
                checks.append(result)
                if progress:
                    progress(result)
        finally:
            shutdown(pool, close)
    order = {p.name: i for i, p in enumerate(run_dirs)}
    return sorted(checks, key=lambda c: order.get(c.run_id, 0))
