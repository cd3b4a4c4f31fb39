"""Run and sweep folders on disk: atomic writes, the folder lock, and the one
reader of a sweep folder that plots, reports, claims and summaries share.

    <run_dir>/config.yaml       the resolved config (loading it reproduces the run)
    <run_dir>/metrics.csv       one row per evaluation (METRIC_COLUMNS)
    <run_dir>/diagnostics.csv   activation percentiles / gradient norms, when enabled
    <run_dir>/steps.csv         per-step training loss, when enabled
    <run_dir>/run.json          status, times, provenance, command, error
    <run_dir>/curves.png        accuracy and loss against epoch

    <sweep_dir>/sweep.yaml      the sweep as resolved: config, grid, seeds, report, command
    <sweep_dir>/<run_id>/       one run folder per point
    <sweep_dir>/summary.csv     one row per run (kept current while the sweep runs)
    <sweep_dir>/aggregate.csv   one row per grid point: mean, sd, 95% interval, n

Every file is written to a temporary name in its folder and renamed, so an
interrupted write never leaves a half-written file; a later writer in the same
folder removes temporary files left by a killed one. Storage only: nothing
here trains, draws or decides what a run is.
"""

from __future__ import annotations

import contextlib
import csv
import errno
import functools
import glob
import hashlib
import io
import json
import os
import signal
import stat
import tempfile
import threading
import warnings as _warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import files
from . import values as V
from .choices import FIGURE_FORMATS, PLOT_KINDS
from .errors import BnexpError

# Every file of a run folder and of a sweep folder, named once.
CONFIG_FILE, RUN_FILE, METRICS_FILE = "config.yaml", "run.json", "metrics.csv"
DIAGNOSTICS_FILE, STEPS_FILE, LANDSCAPE_FILE, ICS_FILE = (
    "diagnostics.csv", "steps.csv", "landscape.csv", "ics.csv")
CURVES_FILE = "curves.png"
MODEL_FILE, FOLDED_FILE, CHECKPOINT_FILE = "model.npz", "model_folded.npz", "checkpoint.npz"
SWEEP_FILE, SUMMARY_FILE, AGGREGATE_FILE = "sweep.yaml", "summary.csv", "aggregate.csv"

METRIC_COLUMNS = ["epoch", "step", "train_loss", "train_acc", "test_loss", "test_acc", "elapsed"]
DIAGNOSTIC_COLUMNS = ["step", "epoch", "layer", "p15", "p50", "p85", "mean", "std",
                      "unit_p15", "unit_p50", "unit_p85", "grad_norm"]
STEP_COLUMNS = ["step", "epoch", "loss"]
LANDSCAPE_COLUMNS = ["step", "epoch", "eta", "loss", "grad_change", "grad_norm"]
ICS_COLUMNS = ["step", "epoch", "layer", "l2", "cosine"]
RUN_FILES = (CONFIG_FILE, METRICS_FILE, DIAGNOSTICS_FILE, STEPS_FILE, RUN_FILE, CURVES_FILE,
             MODEL_FILE, FOLDED_FILE, CHECKPOINT_FILE, LANDSCAPE_FILE, ICS_FILE)
FINISHED = ("completed", "diverged")  # a result; "failed", "running", "pending" are not
STATUSES = ("completed", "diverged", "failed", "interrupted", "running", "pending")
TMP_SUFFIX = ".tmp"
MAX_TABLE_BYTES = 128 << 20  # a CSV bnexp wrote: a 100k-run summary is ~30 MB
MAX_JSON_BYTES = 64 << 20  # run.json: a few kB, a long traceback included

_UMASK = os.umask(0o022)
os.umask(_UMASK)


class StoreError(BnexpError):
    """A folder or file that cannot be written or read as bnexp wrote it; one line."""


class RunExistsError(StoreError):
    pass


class StoreWarning(UserWarning):
    """A cache (summary.csv, a metrics.csv row) that disagrees with a run's
    run.json; readers go by run.json and say so in one line."""


def _os_problem(exc: OSError, path: Path, verb: str) -> StoreError:
    """One line for a failed write or read, naming the path and the cause."""
    if exc.errno == errno.ENOTDIR or (exc.errno == errno.EEXIST and not Path(path).is_dir()):
        parent = next((p for p in [Path(path), *Path(path).parents] if p.exists()
                       and not p.is_dir()), None)
        if parent is not None:
            return StoreError(f"cannot {verb} {path}: {parent} is a file, not a folder")
    return StoreError(f"cannot {verb} {path}: {exc.strerror or exc}")


def ensure_dir(path: Path) -> Path:
    try:
        Path(path).mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise _os_problem(exc, path, "create folder") from None
    return Path(path)


_DEFERRED = tuple(getattr(signal, n) for n in ("SIGINT", "SIGTERM", "SIGHUP")
                  if hasattr(signal, n))


@contextlib.contextmanager
def signals_deferred():
    """Hold Ctrl-C, SIGTERM and SIGHUP until the block ends. A handler that
    raises (Ctrl-C's, or a sweep's SIGTERM) could otherwise stop a write between
    creating its temporary file and renaming or removing it, or a sweep between
    creating a run's folder and writing its run.json; held, the signal arrives
    just after, when the step is whole. Blocks may nest."""
    if not _DEFERRED or not hasattr(signal, "pthread_sigmask") or (
            threading.current_thread() is not threading.main_thread()):
        yield  # Python runs signal handlers in the main thread only
        return
    old = signal.pthread_sigmask(signal.SIG_BLOCK, _DEFERRED)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


def check_output(path: Path) -> None:
    """Refuse an output path that is neither new nor a regular file (a device
    node, a fifo, a folder): the rename would replace it."""
    try:
        files.check_output(path)
    except files.FileError as exc:
        raise StoreError(str(exc)) from None


def check_user_output(path: Path, allow: tuple[str, ...] = ()) -> None:
    """An output path a user named (``--out``): new or a regular file, and not
    one of the files a run or sweep folder keeps (its summary.csv, a run's
    metrics.csv...), but those in ``allow``: readers would find them damaged."""
    path = Path(path)
    check_output(path)
    parent = path.parent
    figures = {f"{kind}.{fmt}" for kind in PLOT_KINDS for fmt in FIGURE_FORMATS}
    own = {SWEEP_FILE, SUMMARY_FILE, AGGREGATE_FILE, *figures} if is_sweep_dir(parent) else set()
    if _is_file(parent / RUN_FILE) or _is_file(parent / CONFIG_FILE):
        own |= set(RUN_FILES)
    if path.name in own - set(allow):
        raise StoreError(f"{path}: is {parent}'s own {path.name}; bnexp keeps it there, so "
                         "--out may not replace it (choose another path)")


def atomic_write(path: Path, data: str | bytes) -> None:
    """Write ``data`` to ``path`` via a temporary file in the same folder and a
    rename. On any failure (a full disk, say) the old file is left as it was;
    a signal that arrives meanwhile takes effect once the write is whole."""
    path = Path(path)
    check_output(path)
    ensure_dir(path.parent)
    with signals_deferred():
        try:
            fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=TMP_SUFFIX,
                                       dir=path.parent)
        except OSError as exc:
            raise _os_problem(exc, path, "write") from None
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data.encode() if isinstance(data, str) else data)
            os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; give the usual mode
            os.replace(tmp, path)
        except BaseException as exc:
            Path(tmp).unlink(missing_ok=True)
            if isinstance(exc, OSError):
                raise _os_problem(exc, path, "write") from None
            raise


def remove_stale_temp(folder: Path, recursive: bool = False, name: str | None = None
                      ) -> list[Path]:
    """Remove temporary files that a killed writer left (``.NAME.xxxx.tmp``;
    with ``name``, only those of that file). Call only while holding the
    folder (its lock, or as its only writer)."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    pattern = f".{glob.escape(name)}.*{TMP_SUFFIX}" if name else f".*{TMP_SUFFIX}"
    found = list(folder.rglob(pattern) if recursive else folder.glob(pattern))
    for p in found:
        with contextlib.suppress(OSError):
            p.unlink()
    return found


# --- tables ------------------------------------------------------------------------

def csv_text(rows: list[dict], columns: list[str]) -> str:
    return csv_line(dict(zip(columns, columns)), columns) + "".join(
        csv_line(row, columns) for row in rows)


def csv_line(row: dict, columns: list[str]) -> str:
    """One row of ``csv_text``, with its newline."""
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerow([_fmt(row[k]) for k in columns])
    return buf.getvalue()


def _fmt(v):
    if hasattr(v, "item"):  # a numpy scalar
        v = v.item()
    if isinstance(v, float):
        return repr(v)  # shortest exact round trip
    return v


def read_csv(path: Path, columns: list[str] | tuple[str, ...] = (), parse: bool = True
             ) -> list[dict]:
    """Rows of a CSV file bnexp wrote, numbers parsed back (``repr`` floats
    round-trip exactly). A missing column or a row with the wrong number of
    fields (a truncated or edited file) is one StoreError line."""
    path = Path(path)
    try:
        text = files.read_bytes(path, MAX_TABLE_BYTES, "CSV file").decode("utf-8")
        reader = csv.reader(io.StringIO(text, newline=""))
        header = next(reader, None)
        if header is None:
            raise StoreError(f"{path}: empty file (expected a header line)")
        missing = [c for c in columns if c not in header]
        if missing:
            raise StoreError(f"{path}: missing column(s) {', '.join(missing)} "
                             "(damaged, or written by another program)")
        rows = []
        for cells in reader:
            if len(cells) != len(header):
                raise StoreError(f"{path}: line {reader.line_num} has {len(cells)} fields, "
                                 f"expected {len(header)} (truncated or damaged file)")
            rows.append({k: (_parse(v) if parse else v) for k, v in zip(header, cells)})
    except files.FileError as exc:
        raise StoreError(str(exc)) from None
    except (UnicodeDecodeError, csv.Error) as exc:
        raise StoreError(f"{path}: not a readable CSV file ({exc})") from None
    except MemoryError:
        raise StoreError(f"{path}: too many rows to read in this process's memory") from None
    return rows


def _parse(v: str):
    for cast in (int, float):
        try:
            return cast(v)
        except ValueError:
            pass
    return v


def read_json(path: Path) -> dict | None:
    """A JSON object, or None where there is none (missing, damaged or not an object)."""
    try:
        data = json.loads(files.read_bytes(path, MAX_JSON_BYTES, "JSON file"))
    except (files.FileError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def write_json(path: Path, data: dict) -> None:
    atomic_write(path, json.dumps(data, indent=2))


def final_values(info: dict) -> dict[str, float | int | None]:
    """A run.json's summary metrics (choices.SUMMARY_METRICS): its final
    evaluation, best test accuracy and seconds; None where it has none."""
    final = info.get("final") or {}
    return {"final_train_acc": final.get("train_acc"), "final_test_acc": final.get("test_acc"),
            "best_test_acc": info.get("best_test_acc"),
            "final_train_loss": final.get("train_loss"),
            "final_test_loss": final.get("test_loss"), "epochs": final.get("epoch"),
            "seconds": info.get("seconds")}


def run_status(run_dir: Path) -> str | None:
    """The status in ``run.json``, or None where there is no readable run."""
    info = read_json(Path(run_dir) / RUN_FILE)
    return info.get("status") if info else None


# --- run folders -------------------------------------------------------------------

def prepare_run_dir(run_dir: Path, force: bool, keep: tuple[str, ...] = ()) -> None:
    """Refuse to overwrite an existing run unless ``force``; with it, remove
    the old run's files (and nothing else), but those named in ``keep``."""
    run_dir = Path(run_dir)
    if run_status(run_dir) is not None or (run_dir / METRICS_FILE).exists():
        if not force:
            raise RunExistsError(f"{run_dir} already holds a run; pass --force to overwrite it "
                                 "or choose another name (--set name=...)")
        # run.json first (it says whose run this is and how far it got), config.yaml
        # last: a kill part-way leaves this config's files, which the same command
        # recognises and clears again.
        order = [RUN_FILE, *(n for n in RUN_FILES if n not in (RUN_FILE, CONFIG_FILE)),
                 CONFIG_FILE]
        doomed = [run_dir / n for n in order if n not in keep]
        for p in doomed:  # all or nothing: a folder among them would stop us half-way
            if p.is_dir() and not p.is_symlink():
                raise StoreError(f"{p}: is a folder where the run keeps a file; remove or "
                                 "rename it, then rerun")
        for p in doomed:
            try:
                p.unlink(missing_ok=True)
            except OSError as exc:
                raise _os_problem(exc, p, "remove") from None
    ensure_dir(run_dir)
    remove_stale_temp(run_dir)


def write_run(run_dir: Path, config_text: str, payload: dict) -> None:
    """Write a computed run (``runner.compute``'s payload) into ``run_dir``;
    ``run.json`` goes last: it marks the run done."""
    run_dir = Path(run_dir)
    info = payload["info"]
    atomic_write(run_dir / CONFIG_FILE, config_text)
    if payload["metrics"]:
        atomic_write(run_dir / METRICS_FILE, csv_text(payload["metrics"], METRIC_COLUMNS))
    if payload.get("diagnostics") and info["status"] != "failed":
        atomic_write(run_dir / DIAGNOSTICS_FILE,
                     csv_text(payload["diagnostics"], DIAGNOSTIC_COLUMNS))
    if payload.get("steps") and info["status"] != "failed":
        atomic_write(run_dir / STEPS_FILE, csv_text(payload["steps"], STEP_COLUMNS))
    if payload.get("landscape") and info["status"] != "failed":
        atomic_write(run_dir / LANDSCAPE_FILE,
                     csv_text(payload["landscape"], LANDSCAPE_COLUMNS))
    if payload.get("ics") and info["status"] != "failed":
        atomic_write(run_dir / ICS_FILE, csv_text(payload["ics"], ICS_COLUMNS))
    if payload.get("curves"):
        atomic_write(run_dir / CURVES_FILE, payload["curves"])
    if payload.get("model"):
        atomic_write(run_dir / MODEL_FILE, payload["model"])
    if info["status"] in FINISHED:  # a finished run needs no checkpoint to resume from;
        (run_dir / CHECKPOINT_FILE).unlink(missing_ok=True)  # killed before run.json: rerun
    write_json(run_dir / RUN_FILE, info)


def write_metrics(run_dir: Path, rows: list[dict]) -> None:
    atomic_write(Path(run_dir) / METRICS_FILE, csv_text(rows, METRIC_COLUMNS))


def read_metrics(run_dir: Path) -> list[dict]:
    return read_csv(Path(run_dir) / METRICS_FILE, METRIC_COLUMNS)


def _is_file(path: Path) -> bool:
    """``is_file``, False for a path the system cannot even look up (too long)."""
    try:
        return Path(path).is_file()
    except OSError:
        return False


def is_sweep_dir(path: Path) -> bool:
    return _is_file(Path(path) / SWEEP_FILE)


# --- the folder lock ---------------------------------------------------------------

LOCK_FILE = ".lock"


@contextlib.contextmanager
def lock(folder: Path, holder: str):
    """Hold ``folder`` for one bnexp process (a sweep, a train): a second one
    is refused, not queued. ``holder`` names the process in the refusal
    (``sweep``, ``train``). The lock is an flock on ``folder/.lock``, which
    names its holder and is removed on release (so a finished run folder
    holds only the run's files); a process that locked a file just removed
    finds the path gone or another file there, and tries again."""
    folder = ensure_dir(folder)
    path = folder / LOCK_FILE
    for _ in range(100):
        fh = _locked(path, folder)
        try:
            same = os.stat(path).st_ino == os.fstat(fh.fileno()).st_ino
        except OSError:
            same = False
        if same:
            break
        fh.close()
    else:  # pragma: no cover - another process removing and recreating it 100 times
        raise StoreError(f"{path}: keeps changing; is another bnexp process starting here?")
    fh.seek(0)
    fh.truncate()
    node = os.uname().nodename if hasattr(os, "uname") else "?"
    fh.write(f"bnexp {holder}, pid {os.getpid()} on {node}")
    fh.flush()
    try:
        yield
    finally:
        with contextlib.suppress(OSError):
            path.unlink()  # while still holding it: no one else can have it
        fh.close()  # releases the lock


def _locked(path: Path, folder: Path):
    """``path`` opened (created if need be) and flocked, or StoreError."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_NONBLOCK", 0)
                     | getattr(os, "O_NOFOLLOW", 0), 0o644)  # never through a link
    except OSError as exc:
        raise _os_problem(exc, path, "write") from None
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        raise StoreError(f"{path}: is {files.kind(mode)}, not the regular file bnexp keeps its "
                         "folder lock in; remove it")
    fh = os.fdopen(fd, "r+")
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX: no lock
        return fh
    try:
        fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        fh.seek(0)
        other = fh.read().strip() or "another process"
        fh.close()
        raise StoreError(f"{folder} is in use by another bnexp process ({other}); wait "
                         "for it to finish or stop it first") from None
    return fh


# --- the sweep-folder reader -------------------------------------------------------

def safe_component(name: Any) -> bool:
    """A name that is one folder inside its parent: not empty, no separator,
    no NUL, not '.' or '..', not hidden, at most 255 bytes."""
    return (isinstance(name, str) and bool(name) and "/" not in name and "\\" not in name
            and "\0" not in name and not name.startswith(".")
            and len(name.encode("utf-8", "surrogatepass")) <= 255)


def short_name(text: str, limit: int) -> str:
    """``text`` as one file or folder name of at most ``limit`` bytes: not hidden
    (a leading '.' becomes '_'), and, where longer, cut and ended with ``~`` and
    ten hex digits of its SHA-1, so that different names stay different."""
    if text.startswith("."):
        text = "_" + text[1:]
    raw = text.encode("utf-8", "surrogatepass")
    if len(raw) <= limit:
        return text
    digest = hashlib.sha1(raw).hexdigest()[:10]
    return f"{raw[:limit - 12].decode('utf-8', 'ignore')}~{digest}"


@dataclass
class RunRecord:
    """One run of a sweep, as its folder holds it."""

    run_id: str
    path: Path
    values: dict[str, Any]  # swept key -> value, as in the grid
    seed: int
    info: dict  # run.json ({} before the run started)
    _metrics: list[dict] | None = field(default=None, repr=False)

    @functools.cached_property
    def labels(self) -> dict[str, str]:
        """Swept key -> the value's label (``values.label``), as figures show it."""
        return {k: V.label(v) for k, v in self.values.items()}

    @property
    def status(self) -> str:
        return self.info.get("status") or "pending"

    @property
    def metrics(self) -> list[dict]:
        """metrics.csv's rows ([] where the run has none yet)."""
        if self._metrics is None:
            f = self.path / METRICS_FILE
            self._metrics = read_metrics(self.path) if f.is_file() else []
        return self._metrics

    def table(self, name: str) -> list[dict] | None:
        """One of the run's measurement tables (``diagnostics``, ``steps``,
        ``landscape``, ``ics``), its columns checked; None where the run has none."""
        filename, columns = TABLES[name]
        path = self.path / filename
        return read_csv(path, columns) if path.is_file() else None

    @property
    def final(self) -> dict[str, float | int | None]:
        """The run's summary metrics from run.json (``final_values``)."""
        return final_values(self.info)


TABLES = {"diagnostics": (DIAGNOSTICS_FILE, DIAGNOSTIC_COLUMNS),
          "steps": (STEPS_FILE, STEP_COLUMNS),
          "landscape": (LANDSCAPE_FILE, LANDSCAPE_COLUMNS), "ics": (ICS_FILE, ICS_COLUMNS)}
RESULT_KEYS = ("status", "final", "best_test_acc", "diverged_at", "variance_shift")  # run.json
FINAL_KEYS = ("train_acc", "test_acc", "train_loss", "test_loss", "epoch")  # run.json final


def check_info(info: dict, path: Path) -> None:
    """A run.json's results are of the types bnexp writes: one StoreError line
    naming the file and the key otherwise (a result no report may average)."""
    def bad(key: str, want: str) -> StoreError:
        return StoreError(f"{path}: {key} is {info_text(info, key)}, expected {want} (damaged "
                          "or edited file; rerun the run)")

    status = info.get("status")
    if status is not None and status not in STATUSES:
        raise bad("status", ", ".join(STATUSES))
    seed = info.get("seed")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise bad("seed", "an integer")
    final = info.get("final")
    if final is not None and not isinstance(final, dict):
        raise bad("final", "a mapping of the last evaluation")
    for key in FINAL_KEYS:
        v = (final or {}).get(key)
        if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float))):
            raise bad(f"final.{key}", "a number")
    for key in ("best_test_acc", "seconds", "step_seconds", "variance_shift"):
        v = info.get(key)
        if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float))):
            raise bad(key, "a number")
    if status in FINISHED and not isinstance(final, dict):
        raise bad("final", f"the last evaluation of a {status} run")


def info_text(info: dict, dotted: str) -> str:
    obj: Any = info
    for part in dotted.split("."):
        obj = obj.get(part) if isinstance(obj, dict) else None
    return json.dumps(obj)


@dataclass
class SweepFolder:
    """What a sweep folder holds, read once and checked."""

    path: Path
    config: dict  # the resolved base config
    axes: list[tuple[str, list]]  # (dotted key, values), grid keys then zipped keys
    zipped: tuple[str, ...]
    seeds: list[int]
    report: dict | None
    command: list[str] | None
    runs: list[RunRecord]
    warnings: list[str] = field(default_factory=list)  # where summary.csv disagrees

    @property
    def name(self) -> str:
        return self.path.name

    def counts(self) -> dict[str, int]:
        out = {s: 0 for s in STATUSES}
        for r in self.runs:
            out[r.status] = out.get(r.status, 0) + 1
        return {k: v for k, v in out.items() if v}

    def axis(self, key: str) -> list:
        for k, vals in self.axes:
            if k == key:
                return vals
        raise KeyError(key)


def _sweep_yaml_problem(path: Path, what: str) -> StoreError:
    return StoreError(f"{path}: {what} (the file is damaged or was edited; run the sweep's "
                      "`bnexp sweep` command again to rewrite it)")


def read_sweep_yaml(sweep_dir: Path) -> dict:
    """sweep.yaml as a checked mapping: config, sweep (grid, zip, seeds), report, command."""
    from .yamlio import YamlError, read_yaml

    sweep_dir = Path(sweep_dir)
    path = sweep_dir / SWEEP_FILE
    if not sweep_dir.is_dir():
        raise StoreError(f"{sweep_dir}: no such folder")
    if not path.is_file():
        raise StoreError(f"{sweep_dir}: not a sweep folder (no sweep.yaml)")
    try:
        data = read_yaml(path)
    except YamlError as exc:
        raise StoreError(str(exc)) from None
    if not isinstance(data, dict):
        raise _sweep_yaml_problem(path, "expected a mapping with config and sweep")
    section = data.get("sweep")
    if not isinstance(section, dict):
        raise _sweep_yaml_problem(path, "sweep: expected a mapping with grid and seeds")
    for key in ("grid", "zip"):
        part = section.get(key) or {}
        if not isinstance(part, dict) or not all(isinstance(v, list) and v for v in part.values()):
            raise _sweep_yaml_problem(path, f"sweep.{key}: expected a mapping of keys to "
                                      "value lists")
    seeds = section.get("seeds", [])
    if not isinstance(seeds, list) or not all(isinstance(s, int) for s in seeds):
        raise _sweep_yaml_problem(path, "sweep.seeds: expected a list of integers")
    for key, kind in (("config", dict), ("report", dict), ("command", list)):
        if data.get(key) is not None and not isinstance(data[key], kind):
            raise _sweep_yaml_problem(path, f"{key}: expected a {kind.__name__}")
    return data


def open_sweep(sweep_dir: str | Path) -> SweepFolder:
    """Read a sweep folder: sweep.yaml, summary.csv (which runs exist) and each
    run's run.json (their status). Run ids are confined to the folder."""
    sweep_dir = Path(sweep_dir)
    data = read_sweep_yaml(sweep_dir)
    section = data["sweep"]
    grid, zipped = section.get("grid") or {}, section.get("zip") or {}
    axes = [(str(k), [V.canonical(x) for x in v]) for k, v in {**grid, **zipped}.items()]
    keys = [k for k, _ in axes]
    summary = sweep_dir / SUMMARY_FILE
    if not summary.is_file():
        raise StoreError(f"{sweep_dir}: no summary.csv yet: the sweep has not started its first "
                         "run (run its `bnexp sweep` command)")
    rows = read_csv(summary, ["run_id", *keys, "seed", "status"], parse=False)
    runs, seen, warnings = [], {}, []
    for i, row in enumerate(rows, start=2):
        rid = row["run_id"]
        if not safe_component(rid):
            raise StoreError(f"{summary}: line {i}: run_id {rid!r} is not a folder name inside "
                             "the sweep (damaged or edited file)")
        if rid in seen:
            raise StoreError(f"{summary}: line {i}: run_id {rid} repeats line {seen[rid]} "
                             "(damaged or edited file; run the sweep's command to rewrite it)")
        seen[rid] = i
        vals = {}
        for key, axis in axes:
            hit = V.match(axis, row[key])
            if not hit:
                raise StoreError(f"{summary}: line {i}: {key}={row[key]} is not a value of the "
                                 f"sweep's grid ({V.listing(axis)}; damaged or edited file)")
            vals[key] = hit[0]
        try:
            seed = int(row["seed"])
        except ValueError:
            raise StoreError(f"{summary}: line {i}: seed {row['seed']!r} is not an "
                             "integer") from None
        run_dir = sweep_dir / rid
        info = read_json(run_dir / RUN_FILE) or {}
        check_info(info, run_dir / RUN_FILE)
        if info.get("seed") is not None and info["seed"] != seed:
            raise StoreError(f"{run_dir / RUN_FILE}: seed {info['seed']}, but {summary} line {i} "
                             f"says {seed} (damaged or edited files)")
        run = RunRecord(rid, run_dir, vals, seed, info)
        warnings += _disagreements(run, row, f"{summary}: line {i}")
        runs.append(run)
    for line in warnings:
        _warnings.warn(line, StoreWarning, stacklevel=2)
    return SweepFolder(sweep_dir, data.get("config") or {}, axes, tuple(zipped),
                       list(section.get("seeds", [])), data.get("report"), data.get("command"),
                       runs, warnings)


def _disagreements(run: RunRecord, row: dict, where: str) -> list[str]:
    """Where summary.csv's row (a cache) or metrics.csv's last row differs from
    the run's run.json, which every reader takes as the run's result."""
    out = []
    status = run.info.get("status") or "pending"
    if row["status"] != status:
        out.append(f"{where}: status {row['status']}, but {run.path / RUN_FILE} says {status}; "
                   "reports use run.json (rerun the sweep's command to rewrite the summary)")
    if status not in FINISHED:
        return out
    final = run.final
    for key, value in final.items():
        if key not in row:
            continue
        cached = _parse(row[key]) if row[key] != "" else None
        if not same_result(cached, value):
            out.append(f"{where}: {key} {row[key] or 'empty'}, but {run.path / RUN_FILE} says "
                       f"{value}; reports use run.json (rerun the sweep's command to rewrite "
                       "the summary)")
            break
    try:
        rows = run.metrics
    except StoreError:
        return out  # a damaged metrics.csv: whatever reads its rows says so
    if rows:
        last, recorded = rows[-1], run.info["final"]  # a dict: check_info saw to it
        for col in FINAL_KEYS:
            if not same_result(last[col], recorded.get(col)):
                out.append(f"{run.path / METRICS_FILE}: line {len(rows) + 1}: {col} {last[col]}, "
                           f"but {run.path / RUN_FILE} says {recorded.get(col)} (damaged or "
                           "edited file)")
                break
    return out


def same_result(a: Any, b: Any) -> bool:
    """Two recorded results are the same: numbers by value (NaN is NaN), None
    only as None, anything else by ==."""
    if a is None or b is None:
        return a is b
    try:
        fa, fb = float(a), float(b)
    except (TypeError, ValueError):
        return a == b
    return fa == fb or (fa != fa and fb != fb)
