"""Sweeps: a grid over dotted config keys and seeds, expanded into runs that
execute in parallel and resumably, one run folder each, plus a summary.

    <out>/<name>/sweep.yaml      the sweep as resolved (base config, axes, seeds)
    <out>/<name>/<run_id>/       one run folder per point, as ``bnexp train`` writes
    <out>/<name>/summary.csv     one row per run
    <out>/<name>/aggregate.csv   one row per grid point: mean, std, n over seeds
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import math
import os
import signal
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from . import config as cfgmod
from .config import Config, ConfigError, show
from .rundir import FINISHED, atomic_write, csv_text, read_json, run_status

SUMMARY_METRICS = ["final_train_acc", "final_test_acc", "best_test_acc", "final_train_loss",
                   "final_test_loss", "epochs", "seconds"]
MAX_RUN_ID = 120
BLAS_ENV = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
            "BLIS_NUM_THREADS", "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS")


class SweepError(Exception):
    """A bad sweep request; the message has one line per problem."""


@dataclass(frozen=True)
class Point:
    run_id: str
    values: dict[str, Any]  # swept dotted key -> value
    seed: int
    config: Config


@dataclass(frozen=True)
class Sweep:
    name: str
    base: dict  # the raw config, without its sweep section
    axes: list[tuple[str, list]]  # (dotted key, values), in order; zipped keys included
    seeds: list[int]
    points: list[Point] = field(default_factory=list)
    zipped: tuple[str, ...] = ()  # keys of the zip section (they vary together)
    report: dict | None = None  # the report section, kept for `bnexp report`

    def resolved(self) -> dict:
        grid = {k: list(v) for k, v in self.axes if k not in self.zipped}
        sweep: dict[str, Any] = {"grid": grid}
        if self.zipped:
            sweep["zip"] = {k: list(v) for k, v in self.axes if k in self.zipped}
        sweep["seeds"] = list(self.seeds)
        out = {"config": cfgmod.from_dict(self.base).to_dict(), "sweep": sweep}
        if self.report:
            out["report"] = self.report
        return out


# --- grid values -----------------------------------------------------------------

def _generator(key: str, spec: Mapping, where: str = "grid") -> list:
    """``{logspace: [a, b, n]}`` (10**a .. 10**b), ``{linspace: [a, b, n]}``,
    ``{range: [start, stop(, step)]}`` (integers, stop excluded)."""
    if len(spec) != 1:
        raise SweepError(f"sweep.{where}.{key}: got {show(dict(spec))}, expected a list of values "
                         "or one of {logspace: [a, b, n]}, {linspace: [a, b, n]}, "
                         "{range: [start, stop, step]}")
    (kind, args), = spec.items()
    loc = f"sweep.{where}.{key}.{kind}"
    nums = args if isinstance(args, list) else None
    if kind in ("logspace", "linspace"):
        ok = (nums is not None and len(nums) == 3 and all(cfgmod._is_number(a) for a in nums)
              and isinstance(nums[2], int) and nums[2] >= 1)
        if not ok:
            raise SweepError(f"{loc}: got {show(args)}, expected [start, stop, num] with "
                             "num an integer >= 1")
        a, b, n = nums
        grid = [a + (b - a) * i / (n - 1) for i in range(n)] if n > 1 else [float(a)]
        return [float(10.0 ** g) for g in grid] if kind == "logspace" else grid
    if kind == "range":
        ok = (nums is not None and len(nums) in (2, 3) and
              all(isinstance(a, int) and not isinstance(a, bool) for a in nums)
              and (len(nums) == 2 or nums[2] != 0))
        if not ok:
            raise SweepError(f"{loc}: got {show(args)}, expected [start, stop] or "
                             "[start, stop, step] of integers, step != 0")
        return list(range(*nums))
    raise SweepError(f"sweep.{where}.{key}: got generator {kind!r}, expected logspace, linspace "
                     "or range")


def parse_grid_option(text: str) -> tuple[str, Any]:
    """``--grid key=v1,v2,...`` (YAML scalars) or ``key=logspace:0,-4,16``."""
    if "=" not in text:
        raise SweepError(f"--grid {text}: expected key=v1,v2,... or key=logspace:a,b,n")
    key, _, rest = text.partition("=")
    key = key.strip()
    for kind in ("logspace", "linspace", "range"):
        if rest.startswith(kind + ":"):
            return key, {kind: [yaml.safe_load(v) for v in rest[len(kind) + 1:].split(",")]}
    return key, [yaml.safe_load(v) for v in rest.split(",")]


# --- run ids ---------------------------------------------------------------------

def _fmt_value(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.6g}"
    if isinstance(v, (list, tuple)):
        return "x".join(_fmt_value(x) for x in v)
    text = "null" if v is None else str(v).lower() if isinstance(v, bool) else str(v)
    return text.replace("/", "_").replace(",", "_")


def _labels(keys: list[str]) -> dict[str, str]:
    """The shortest unambiguous label per key: its last part, else the full key."""
    leaves = [k.rsplit(".", 1)[-1] for k in keys]
    return {k: (leaf if leaves.count(leaf) == 1 and leaf != "seed" else k)
            for k, leaf in zip(keys, leaves)}


def run_id(values: dict[str, Any], seed: int, labels: dict[str, str]) -> str:
    """Readable and stable, e.g. ``norm=batch,weight_scale=0.01,seed=0``;
    hashed when longer than MAX_RUN_ID characters."""
    text = ",".join(f"{labels[k]}={_fmt_value(v)}" for k, v in values.items()) + f",seed={seed}"
    text = text.lstrip(",")
    if len(text) > MAX_RUN_ID:
        digest = hashlib.sha1(text.encode()).hexdigest()[:10]
        text = f"{text[:MAX_RUN_ID - 12]}~{digest}"
    return text


# --- building a sweep ------------------------------------------------------------

def build(raw: Mapping, grid_options: list[str] = (), seeds: list[int] | None = None,
          overrides: list[str] = ()) -> Sweep:
    """Expand and validate every point of the sweep described by ``raw`` (a
    config mapping with a ``sweep:`` section), ``--grid`` options, ``--seeds``
    and ``--set`` overrides. Raises SweepError/ConfigError listing every problem."""
    raw = dict(raw or {})
    section = raw.pop("sweep", None) or {}
    report = raw.pop("report", None)
    errors: list[str] = []
    if not isinstance(section, Mapping):
        raise SweepError(f"sweep: got {show(section)}, expected a mapping with grid and seeds")
    for key in section:
        if key not in ("grid", "zip", "seeds"):
            errors.append(f"sweep.{key}: unknown key (expected grid, zip or seeds)")
    grid = section.get("grid") or {}
    if not isinstance(grid, Mapping):
        raise SweepError(f"sweep.grid: got {show(grid)}, expected a mapping of dotted keys to values")
    grid = dict(grid)
    for text in grid_options:
        key, values = parse_grid_option(text)
        grid[key] = values
    raw = cfgmod.apply_settings(raw, list(overrides), errors)

    zipped = section.get("zip") or {}
    if not isinstance(zipped, Mapping):
        raise SweepError(f"sweep.zip: got {show(zipped)}, expected a mapping of dotted keys to "
                         "equally long value lists")
    grid_axes = _axes(grid, "grid", errors)
    zip_axes = _axes(zipped, "zip", errors)
    for key, _ in zip_axes:
        if key in dict(grid_axes):
            errors.append(f"sweep.zip.{key}: also in sweep.grid; a key can be in one of them")
    lengths = {len(v) for _, v in zip_axes}
    if len(lengths) > 1:
        errors.append("sweep.zip: got lists of lengths "
                      f"{', '.join(f'{k}={len(v)}' for k, v in zip_axes)}, expected equal lengths "
                      "(the i-th values of every zipped key go together)")
    axes = grid_axes + zip_axes
    # Product dimensions: each grid key alone, the zipped keys together.
    dims = [[(k, v)] for k, v in grid_axes] + ([zip_axes] if zip_axes else [])

    if seeds is None:
        seeds = section.get("seeds", [raw.get("seed", 0)])
    if (not isinstance(seeds, list) or not seeds or
            any(isinstance(s, bool) or not isinstance(s, int) or s < 0 for s in seeds)):
        errors.append(f"sweep.seeds: got {show(seeds)}, expected a list of integers >= 0")
        seeds = []
    elif len(set(seeds)) != len(seeds):
        errors.append(f"sweep.seeds: got {show(seeds)}, expected no repeats")
    if errors:
        raise SweepError("\n".join(errors))

    try:
        base_cfg = cfgmod.from_dict(raw)
    except ConfigError as exc:
        raise SweepError(str(exc)) from None
    name = base_cfg.name
    labels = _labels([k for k, _ in axes])
    points, seen = [], {}
    for combo in itertools.product(*[range(len(dim[0][1])) for dim in dims]):
        values = {k: vals[i] for dim, i in zip(dims, combo) for k, vals in dim}
        values = {k: values[k] for k, _ in axes}  # in axis order
        for seed in seeds:
            rid = run_id(values, seed, labels)
            point_raw = cfgmod.apply_overrides(raw, [*values.items(), ("seed", seed),
                                                     ("name", rid)])
            try:
                cfg = cfgmod.from_dict(point_raw)
            except ConfigError as exc:
                errors += [f"{rid}: {e}" for e in exc.errors]
                continue
            if rid in seen:
                errors.append(f"{rid}: two grid points share this run id "
                              f"({show(seen[rid])} and {show(values)}); make the values distinct")
            seen[rid] = values
            points.append(Point(rid, values, seed, cfg))
    from .datasets import DataError, check_available

    for data_cfg in {p.config.data for p in points}:
        try:
            check_available(data_cfg)
        except DataError as exc:
            errors.append(str(exc))
    if errors:
        shown = errors[:20] + ([f"... and {len(errors) - 20} more"] if len(errors) > 20 else [])
        raise SweepError("\n".join(shown))
    return Sweep(name, raw, axes, list(seeds), points, tuple(k for k, _ in zip_axes), report)


def _axes(section: Mapping, where: str, errors: list[str]) -> list[tuple[str, list]]:
    """Validated (key, values) pairs of a grid or zip section."""
    known = set(cfgmod.all_keys())
    axes = []
    for key, spec in section.items():
        key = str(key)
        if key == "seed":
            errors.append(f"sweep.{where}.seed: seeds are their own axis; use sweep.seeds or --seeds")
            continue
        if key not in known:
            errors.append(cfgmod._unknown(key).replace(f"{key}:", f"sweep.{where}.{key}:", 1))
            continue
        try:
            values = _generator(key, spec, where) if isinstance(spec, Mapping) else spec
        except SweepError as exc:
            errors.append(str(exc))
            continue
        if not isinstance(values, list) or not values:
            errors.append(f"sweep.{where}.{key}: got {show(values)}, expected a non-empty list")
            continue
        axes.append((key, values))
    return axes


def load(path: str | Path, grid_options=(), seeds=None, overrides=()) -> Sweep:
    raw = cfgmod.read_yaml(path)
    if raw is not None and not isinstance(raw, Mapping):
        raise SweepError(f"{path}: got {show(raw)}, expected a mapping of keys")
    return build(raw or {}, list(grid_options), seeds, list(overrides))


# --- execution -------------------------------------------------------------------

def _pin_blas() -> None:
    """Worker initializer: one BLAS thread per worker; Ctrl-C is the parent's."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    for var in BLAS_ENV:
        os.environ[var] = "1"
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return
    threadpool_limits(1)


def run_point(config_dict: dict, plot: bool) -> dict:
    """Worker side: compute one run and return its payload (plain data)."""
    from .rundir import compute

    # The parent fills in the command that reproduces the run (it knows the folder).
    return compute(cfgmod.from_dict(config_dict), plot=plot, command=[])


def reproduce_command(run_id: str, sweep_dir: str | Path | None = None) -> list[str]:
    where = Path(sweep_dir) if sweep_dir is not None else Path("<sweep dir>")
    return ["bnexp", "train", str(where / run_id / "config.yaml"), "--out", str(where), "--force"]


@dataclass
class Outcome:
    """What happened to each point in this invocation."""

    done: list[str] = field(default_factory=list)
    diverged: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    cancelled: list[str] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        return {k: len(getattr(self, k)) for k in ("done", "diverged", "failed", "skipped")}


@contextlib.contextmanager
def lock(sweep_dir: Path):
    """Refuse a second sweep on the same folder while one is running."""
    sweep_dir.mkdir(parents=True, exist_ok=True)
    path = sweep_dir / ".lock"
    fh = open(path, "a+")
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX: no lock
        fcntl = None
    if fcntl is not None:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            fh.seek(0)
            holder = fh.read().strip() or "another process"
            fh.close()
            raise SweepError(f"{sweep_dir} is in use by another sweep ({holder}); wait for it "
                             "to finish or stop it first") from None
    fh.seek(0)
    fh.truncate()
    fh.write(f"pid {os.getpid()} on {os.uname().nodename if hasattr(os, 'uname') else '?'}")
    fh.flush()
    try:
        yield
    finally:
        fh.close()  # releases the lock


def _config_conflicts(sweep: Sweep, sweep_dir: Path, todo_ids: set[str]) -> list[str]:
    """Finished runs whose saved config differs from this sweep's: resuming
    would silently mix two experiments."""
    problems = []
    for p in sweep.points:
        if p.run_id in todo_ids:
            continue
        saved = sweep_dir / p.run_id / "config.yaml"
        try:
            old = yaml.safe_load(saved.read_text())
        except (OSError, yaml.YAMLError):
            continue
        new = _flatten(p.config.to_dict())
        old = _flatten(old if isinstance(old, dict) else {})
        diffs = [k for k in new if k != "name" and old.get(k) != new[k]]
        if diffs:
            problems.append(f"{saved.parent}: holds a run of a different config "
                            f"({', '.join(diffs[:3])} differ); use --force to rerun it or "
                            "give the sweep another name")
    return problems


def _flatten(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def plan(sweep: Sweep, sweep_dir: Path, force: bool, retry_failed: bool) -> list[Point]:
    """The points to run now: all with ``force``; else those not finished
    (failed ones only with ``retry_failed``)."""
    todo = []
    for p in sweep.points:
        status = run_status(sweep_dir / p.run_id)
        if force or status not in (*FINISHED, "failed") or (status == "failed" and retry_failed):
            todo.append(p)
    if not force:
        problems = _config_conflicts(sweep, sweep_dir, {p.run_id for p in todo})
        if problems:
            raise SweepError("\n".join(problems[:10]))
    return todo


def make_executor(kind: str, jobs: int | None, address: str | None):
    """``(executor, close, width)``: a ``concurrent.futures`` executor (a spawn
    process pool, or a Dask cluster's with the optional extra ``bnexp[dask]``),
    a function that shuts it down, and how many runs to keep in flight (``jobs``,
    else all local cores or all the cluster's worker threads)."""
    if kind == "dask":
        try:
            from distributed import Client
        except ImportError:
            raise SweepError('--executor dask needs Dask: pip install "bnexp[dask]"') from None
        if not address:
            raise SweepError("--executor dask needs --address tcp://HOST:PORT of a scheduler")
        try:
            client = Client(address, timeout="10s")
        except (OSError, TimeoutError) as exc:
            raise SweepError(f"--address {address}: cannot reach a Dask scheduler ({exc})") from None
        width = jobs or max(sum(client.nthreads().values()), 1)
        return client.get_executor(pure=False), client.close, width
    if kind != "local":
        raise SweepError(f"--executor: got {kind!r}, expected local or dask")
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    saved = {v: os.environ.get(v) for v in BLAS_ENV}
    os.environ.update({v: "1" for v in BLAS_ENV})  # inherited by the spawned workers
    jobs = jobs or os.cpu_count() or 1
    pool = ProcessPoolExecutor(max_workers=jobs, mp_context=multiprocessing.get_context("spawn"),
                               initializer=_pin_blas)

    def close():
        pool.shutdown(wait=True, cancel_futures=True)
        for var, value in saved.items():
            if value is None:
                os.environ.pop(var, None)
            else:
                os.environ[var] = value
    return pool, close, jobs


def execute(sweep: Sweep, out: str | Path, *, jobs: int | None = None, force: bool = False,
            retry_failed: bool = False, fail_fast: bool = False, plot: bool = True,
            executor: str = "local", address: str | None = None,
            progress: Callable[[str, Outcome], None] | None = None) -> tuple[Path, Outcome]:
    """Run every point of ``sweep`` not yet finished into ``out/<name>/`` and
    write the summaries. ``progress(run_id, outcome)`` is called after each run."""
    from .rundir import write

    sweep_dir = Path(out) / sweep.name
    outcome = Outcome()
    with lock(sweep_dir):
        atomic_write(sweep_dir / "sweep.yaml", cfgmod.dump_yaml(sweep.resolved()))
        todo = plan(sweep, sweep_dir, force, retry_failed)
        todo_ids = {p.run_id for p in todo}
        outcome.skipped = [p.run_id for p in sweep.points if p.run_id not in todo_ids]
        if todo:
            pool, close, width = make_executor(executor, jobs, address)
            # SIGTERM behaves as Ctrl-C: cancel what is pending, keep what finished.
            old_term = signal.signal(signal.SIGTERM, _raise_interrupt)
            try:
                _run_all(pool, min(width, len(todo)), todo, sweep_dir, outcome, fail_fast,
                         progress, write, plot)
            finally:
                signal.signal(signal.SIGTERM, old_term)
                _shutdown(pool, close)
        write_summaries(sweep, sweep_dir)
    return sweep_dir, outcome


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt


def _shutdown(pool, close) -> None:
    """Stop workers now: anything still running is killed (the parent writes
    every file, so no file is left half-written) and reruns next time."""
    procs = getattr(pool, "_processes", None) or {}
    for proc in list(procs.values()):
        if proc.is_alive():
            proc.terminate()
    with contextlib.suppress(Exception):
        close()


def _run_all(pool, width, todo, sweep_dir, outcome, fail_fast, progress, write, plot) -> None:
    """Keep ``width`` runs in flight, writing each result as it comes back. Only
    that many are ever handed to the executor, so a stop (--fail-fast, Ctrl-C)
    leaves the rest untouched for the next invocation."""
    from concurrent.futures import FIRST_COMPLETED, wait

    from .rundir import mark, prepare

    pending = list(reversed(todo))
    in_flight = {}

    def submit():
        # A run's old files go only when it is handed out: a stopped --force
        # sweep keeps every result it has not yet redone.
        p = pending.pop()
        prepare(sweep_dir / p.run_id, force=True)
        mark(sweep_dir / p.run_id, p.config, "running")
        in_flight[pool.submit(run_point, p.config.to_dict(), plot)] = p

    try:
        while pending and len(in_flight) < width:
            submit()
        while in_flight:
            done, _ = wait(in_flight, return_when=FIRST_COMPLETED)
            for fut in done:
                p = in_flight.pop(fut)
                status = _record(fut, p, sweep_dir, outcome, write)
                if progress:
                    progress(p.run_id, outcome)
                if status == "failed" and fail_fast:
                    outcome.cancelled = [q.run_id for q in pending]
                    pending.clear()
            while pending and len(in_flight) < width:
                submit()
    except BaseException:
        for fut in in_flight:
            fut.cancel()
        raise


def _record(fut, p: Point, sweep_dir: Path, outcome: Outcome, write) -> str:
    """Write one finished run's folder and count it; returns its status."""
    try:
        payload = fut.result()
    except Exception as exc:  # the worker itself died, e.g. killed or out of memory
        import traceback

        from .rundir import run_info

        info = run_info(p.config, None)
        info.update(status="failed", error=f"{type(exc).__name__}: {exc}",
                    traceback="".join(traceback.format_exception(exc)))
        payload = {"info": info, "metrics": [], "diagnostics": [], "steps": [], "curves": None}
    payload["info"]["command"] = reproduce_command(p.run_id, sweep_dir)
    write(sweep_dir / p.run_id, p.config, payload)
    status = payload["info"]["status"]
    {"completed": outcome.done, "diverged": outcome.diverged}.get(
        status, outcome.failed).append(p.run_id)
    return status


# --- summaries -------------------------------------------------------------------

def summary_rows(sweep: Sweep, sweep_dir: Path) -> list[dict]:
    rows = []
    for p in sweep.points:
        info = read_json(sweep_dir / p.run_id / "run.json") or {}
        final = info.get("final") or {}
        row = {"run_id": p.run_id, **{k: _csv_value(v) for k, v in p.values.items()},
               "seed": p.seed, "status": info.get("status", "missing")}
        row.update({
            "final_train_acc": final.get("train_acc", ""), "final_test_acc": final.get("test_acc", ""),
            "best_test_acc": info.get("best_test_acc", ""),
            "final_train_loss": final.get("train_loss", ""),
            "final_test_loss": final.get("test_loss", ""),
            "epochs": final.get("epoch", ""), "seconds": info.get("seconds", "") or "",
        })
        rows.append(row)
    return rows


def _csv_value(v):
    """Swept values as YAML writes them (true, null, [1, 2]), as plots match them."""
    if isinstance(v, (list, tuple, dict, bool)) or v is None:
        return show(v)
    return v


def aggregate_rows(sweep: Sweep, rows: list[dict]) -> list[dict]:
    """Mean, sample std and n over seeds of each metric, per grid point; runs
    that failed or never ran are left out (n says how many are in)."""
    keys = [k for k, _ in sweep.axes]
    groups: dict[tuple, list[dict]] = {}
    for row in rows:
        groups.setdefault(tuple(str(row[k]) for k in keys), []).append(row)
    out = []
    for _, members in groups.items():
        ok = [r for r in members if r["status"] in FINISHED]
        agg = {k: members[0][k] for k in keys}
        agg.update(n=len(ok), n_diverged=sum(r["status"] == "diverged" for r in ok),
                   n_failed=sum(r["status"] == "failed" for r in members))
        for metric in SUMMARY_METRICS:
            vals = [float(r[metric]) for r in ok if r[metric] != ""]
            mean = sum(vals) / len(vals) if vals else float("nan")
            std = (math.sqrt(sum((v - mean) ** 2 for v in vals) / (len(vals) - 1))
                   if len(vals) > 1 else 0.0 if vals else float("nan"))
            agg[f"{metric}_mean"], agg[f"{metric}_std"] = mean, std
        out.append(agg)
    return out


def write_summaries(sweep: Sweep, sweep_dir: Path) -> None:
    keys = [k for k, _ in sweep.axes]
    rows = summary_rows(sweep, sweep_dir)
    cols = ["run_id", *keys, "seed", "status", *SUMMARY_METRICS]
    atomic_write(sweep_dir / "summary.csv", csv_text(rows, cols))
    agg = aggregate_rows(sweep, rows)
    agg_cols = [*keys, "n", "n_diverged", "n_failed",
                *[f"{m}_{s}" for m in SUMMARY_METRICS for s in ("mean", "std")]]
    atomic_write(sweep_dir / "aggregate.csv", csv_text(agg, agg_cols))


def dry_run_rows(sweep: Sweep) -> tuple[list[str], list[list[str]]]:
    """Header and one row per run (run_id, each swept value, seed) for --dry-run."""
    keys = [k for k, _ in sweep.axes]
    rows = [[p.run_id, *[_fmt_value(p.values[k]) for k in keys], str(p.seed)]
            for p in sweep.points]
    return ["run_id", *keys, "seed"], rows


__all__ = ["Sweep", "Point", "Outcome", "SweepError", "build", "load", "execute",
           "write_summaries", "dry_run_rows"]
