"""The few functions a notebook calls, re-exported by ``import bnexp``::

    import bnexp

    r = bnexp.run("book_bn", model__norm="none", train__epochs=5)   # in memory, no files
    r.metrics[-1]["test_acc"]
    bnexp.run("book_bn", out="runs")                # also writes runs/book-bn/, as `bnexp train`

    run = bnexp.load_run("runs/book-bn")            # config, info, metrics, diagnostics, steps
    sw = bnexp.load_sweep("runs/weight-scale")      # summary, aggregate (95% intervals), claim
    sw.frame("aggregate")                           # a pandas DataFrame, where pandas is installed

    fig, ax = plt.subplots()
    bnexp.figure("runs/weight-scale", kind="final", x="init.weight_scale", ax=ax)

A config is a path, the name of a shipped experiment (``bnexp list``), a
mapping (as the YAML would be) or a ``Config``; overrides are dotted keys,
given as ``overrides={"model.norm": "none"}`` or as keyword arguments with
``__`` for the dot (``model__norm="none"``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import store
from .config import Config, ConfigError, apply_overrides, from_dict, load, to_plain

__all__ = ["Run", "SweepResult", "figure", "load_config", "load_run", "load_sweep", "run",
           "run_sweep"]


def _frame(rows: list[dict]):
    try:
        import pandas as pd
    except ImportError:
        raise ImportError('frame() needs pandas, which the frames extra installs: pip install '
                          '"bnexp[frames]" (the rows themselves are plain lists of dicts)') from None
    return pd.DataFrame(rows)


def load_config(config: str | Path | Mapping | Config, overrides: Mapping | None = None,
                **kwargs: Any) -> Config:
    """A validated Config from a path, a shipped name, a mapping or a Config,
    with dotted-key overrides (``model__norm="none"`` is ``model.norm``)."""
    settings = {**(overrides or {}), **{k.replace("__", "."): v for k, v in kwargs.items()}}
    if isinstance(config, Config):
        raw = config.to_dict()
    elif isinstance(config, Mapping):
        raw = dict(config)
    else:
        from .experiments import resolve

        return load(resolve(str(config)), [f"{k}={_yaml(v)}" for k, v in settings.items()])
    raw = {k: v for k, v in raw.items() if k not in ("sweep", "report")}
    return from_dict(apply_overrides(raw, list(settings.items())))


def _yaml(value: Any) -> str:
    from .yamlio import dump_yaml

    return dump_yaml(to_plain(value)).strip().removesuffix("...").strip()


@dataclass
class Run:
    """One run: its config, run.json, and its tables as lists of dicts."""

    config: Config
    info: dict
    metrics: list[dict]
    diagnostics: list[dict] = field(default_factory=list)
    steps: list[dict] = field(default_factory=list)
    path: Path | None = None

    @property
    def status(self) -> str:
        return self.info.get("status", "?")

    def frame(self, table: str = "metrics"):
        """``metrics``, ``diagnostics`` or ``steps`` as a pandas DataFrame."""
        return _frame(getattr(self, table))


def run(config: str | Path | Mapping | Config, *, out: str | Path | None = None,
        overrides: Mapping | None = None, force: bool = False, threads: int = 1,
        **kwargs: Any) -> Run:
    """Train one config. Without ``out``, in memory: nothing is written. With
    ``out``, as ``bnexp train --out OUT``: the run folder OUT/<name>/ is
    written (and refused if it exists, unless ``force``)."""
    from . import runner

    cfg = load_config(config, overrides, **kwargs)
    if out is None:
        payload = runner.compute(cfg, plot=False, threads=threads)
        if payload["info"]["status"] == "failed":
            raise runner.RunFailed(payload["info"]["error"])
        return Run(cfg, payload["info"], payload["metrics"], payload["diagnostics"],
                   payload["steps"])
    from .sweep import train_guard

    run_dir = Path(out) / cfg.name
    with train_guard(run_dir, cfg):
        runner.execute(cfg, run_dir, force=force, threads=threads)
    return load_run(run_dir)


def load_run(path: str | Path) -> Run:
    """A run folder as ``bnexp train`` wrote it."""
    path = Path(path)
    info = store.read_json(path / store.RUN_FILE)
    if info is None or not (path / store.CONFIG_FILE).is_file():
        raise store.StoreError(f"{path}: not a run folder (run.json and config.yaml)")
    try:
        cfg = load(path / store.CONFIG_FILE)
    except ConfigError as exc:
        raise store.StoreError(f"{path}/config.yaml: {exc}") from None
    tables = {}
    for name, columns in (("metrics", store.METRIC_COLUMNS),
                          ("diagnostics", store.DIAGNOSTIC_COLUMNS),
                          ("steps", store.STEP_COLUMNS)):
        f = path / f"{name}.csv"
        tables[name] = store.read_csv(f, columns) if f.is_file() else []
    return Run(cfg, info, tables["metrics"], tables["diagnostics"], tables["steps"], path)


@dataclass
class SweepResult:
    """A sweep folder: its grid, its runs, and their summary and aggregate."""

    path: Path
    axes: list[tuple[str, list]]
    runs: list[store.RunRecord]
    summary: list[dict]  # one row per run (as summary.csv)
    aggregate: list[dict]  # one row per grid point: n, mean, sd and 95% interval per metric
    claim: Any = None  # the report section's checks evaluated (claims.ClaimResult), if any

    def frame(self, table: str = "aggregate"):
        """``summary`` or ``aggregate`` as a pandas DataFrame."""
        return _frame(getattr(self, table))

    def run(self, run_id: str) -> Run:
        return load_run(self.path / run_id)


def load_sweep(path: str | Path) -> SweepResult:
    """A sweep folder: the same reader that plots and reports use."""
    from . import claims
    from .sweep.summary import aggregate_rows, summary_row

    folder = store.open_sweep(path)
    keys = [k for k, _ in folder.axes]
    summary = [summary_row(r, r.info) for r in folder.runs]
    table = claims.Table(folder.axes, folder.zipped, folder.runs)
    claim = claims.evaluate(folder.report or {}, table) if folder.report else None
    return SweepResult(Path(path), folder.axes, folder.runs, summary,
                       aggregate_rows(keys, summary), claim)


def run_sweep(config: str | Path | Mapping, *, out: str | Path = "runs",
              jobs: int | None = None, grid: list[str] = (), seeds: list[int] | None = None,
              overrides: Mapping | None = None, force: bool = False,
              plot: bool = True) -> SweepResult:
    """Run (or resume) a sweep, as ``bnexp sweep``, and load the result."""
    from . import sweep as sweep_mod

    texts = [f"{k}={_yaml(v)}" for k, v in (overrides or {}).items()]
    if isinstance(config, Mapping):
        sw = sweep_mod.build(config, list(grid), seeds, texts)
    else:
        from .experiments import resolve

        sw = sweep_mod.load(resolve(str(config)), list(grid), seeds, texts)
    sweep_dir, _ = sweep_mod.execute(sw, out, jobs=jobs, force=force, plot=plot)
    return load_sweep(sweep_dir)


def figure(path: str | Path, kind: str | None = None, *, ax=None, fig=None, **options):
    """A figure of a run or sweep folder (see ``bnexp plot --help`` for kinds and
    options); drawn into ``ax`` (one-panel kinds) or ``fig`` (any kind) when given."""
    from .figures import figure as draw

    return draw(path, kind, ax=ax, fig=fig, **options)
