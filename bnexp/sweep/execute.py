"""Running a sweep: the points not yet finished, in parallel (a spawn process
pool, or a Dask cluster), resumably, one writer (the parent) for every file.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from .. import config, runner, store
from .. import values as V
from ..provenance import BLAS_ENV
from ..yamlio import YamlError, dump_yaml, read_yaml
from .grid import Point, Sweep, SweepError, build
from .summary import Summary


@dataclass
class Outcome:
    """What happened to each point in this invocation."""

    done: list[str] = field(default_factory=list)
    diverged: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    cancelled: list[str] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)  # wall time of each run finished here
    workers: int = 1  # runs kept in flight

    def counts(self) -> dict[str, int]:
        return {k: len(getattr(self, k)) for k in ("done", "diverged", "failed", "skipped")}

    def eta(self, total: int) -> float | None:
        """Seconds until the last of ``total`` runs is back: the mean wall time
        of the runs finished here times the runs left, over the workers that
        can still be busy; None before a run has finished."""
        if not self.seconds:
            return None
        left = total - sum(self.counts().values()) - len(self.cancelled)
        per_run = sum(self.seconds) / len(self.seconds)
        return per_run * max(left, 0) / max(1, min(self.workers, left))


def _renamed_runs(sweep: Sweep, sweep_dir: Path) -> str | None:
    """A run that summary.csv holds under another id than this sweep gives the
    same point (an earlier bnexp spelled values otherwise: ``lr=1`` for
    ``lr=1.0``): resuming would rerun it beside the old folder. One line, or None."""
    summary = sweep_dir / store.SUMMARY_FILE
    if not summary.is_file():
        return None
    try:
        rows = store.read_csv(summary, ["run_id", *sweep.keys, "seed"], parse=False)
    except store.StoreError:
        return None
    by_point = {(str(p.seed), *(V.identity(p.values[k]) for k in sweep.keys)): p
                for p in sweep.points}
    axes = dict(sweep.axes)
    for row in rows:
        hits = [V.match(axes[k], row[k]) for k in sweep.keys]
        if not all(hits):
            continue
        p = by_point.get((row["seed"], *(V.identity(h[0]) for h in hits)))
        if p is not None and p.run_id != row["run_id"]:
            return (f"{sweep_dir}: run {row['run_id']} is this sweep's {p.run_id}, written "
                    "by an earlier bnexp that spelled its values otherwise; sweep into a "
                    "new folder (--out, or --set name=...) or pass --force to rerun "
                    "every run here")
    return None


def _config_conflicts(sweep: Sweep, sweep_dir: Path, todo_ids: set[str]) -> list[str]:
    """Finished runs whose saved config differs from this sweep's: resuming
    would silently mix two experiments."""
    problems = []
    for p in sweep.points:
        if p.run_id in todo_ids:
            continue
        saved = sweep_dir / p.run_id / store.CONFIG_FILE
        try:
            old = read_yaml(saved)
        except YamlError:
            continue
        diffs = _differing_keys(p.config.to_dict(), old if isinstance(old, dict) else {})
        if diffs:
            problems.append(f"{saved.parent}: holds a run of a different config "
                            f"({', '.join(diffs[:3])} differ); use --force to rerun it or "
                            "give the sweep another name")
    return problems


def _differing_keys(new: dict, old: dict) -> list[str]:
    """Dotted keys whose value differs between two configs (the name aside). A
    key the old config lacks (saved before the key existed) counts as its default."""
    new = config.dotted(new)
    old = {**config.dotted(config.from_dict({}).to_dict()),
           **config.dotted(config.saved_defaults(old))}
    return [k for k in new if k != "name" and old.get(k) != new[k]]


def check_data(points: list[Point], fetch: bool = True) -> list[str]:
    """Check every point's data and sizes (``datasets.check``); raise one
    SweepError listing each distinct problem; return the notes (data that
    will be downloaded, when ``fetch`` is off)."""
    from ..datasets import DataError, check

    problems: dict[str, list[str]] = {}
    notes: list[str] = []
    for p in points:
        try:
            note = check(p.config, fetch)
        except DataError as exc:
            problems.setdefault(str(exc), []).append(p.run_id)
            continue
        if note and note not in notes:
            notes.append(note)
    if problems:
        lines = [f"{msg} ({ids[0]}{f' and {len(ids) - 1} more' if len(ids) > 1 else ''})"
                 for msg, ids in problems.items()]
        raise SweepError("\n".join(lines))
    return notes


def plan(sweep: Sweep, sweep_dir: Path, force: bool, retry_failed: bool) -> list[Point]:
    """The points to run now: all with ``force``; else those not finished
    (failed ones only with ``retry_failed``). Reads, never writes."""
    todo = []
    for p in sweep.points:
        status = store.run_status(sweep_dir / p.run_id)
        if force or status not in (*store.FINISHED, "failed") or (
                status == "failed" and retry_failed):
            todo.append(p)
    if not force:
        renamed = _renamed_runs(sweep, sweep_dir)
        if renamed:
            raise SweepError(renamed)
        problems = _config_conflicts(sweep, sweep_dir, {p.run_id for p in todo})
        if problems:
            raise SweepError("\n".join(problems[:10]))
    return todo


def _worker_init() -> None:
    """Worker initializer: Ctrl-C is the parent's, and a worker dies with its
    parent (killed with SIGKILL, the parent cannot stop it: it would go on
    writing checkpoints beside the next sweep). (One BLAS thread: the
    environment the parent sets below, and ``train`` pins it regardless.)"""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    parent = os.getppid()
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG (Linux)
    except (OSError, AttributeError):  # pragma: no cover - not Linux
        return
    if os.getppid() != parent:  # the parent died before the call
        os._exit(1)


DASK_CONNECT_SECONDS = 20


def _dask_client(Client, address: str):
    """A connected Dask client, or SweepError in one line. Whatever answers at
    ``address`` may not be a scheduler: bytes that claim a huge message (a
    MemoryError), too few bytes, or silence after the connection; so the
    client is made in a daemon thread and waited for at most
    DASK_CONNECT_SECONDS."""
    import threading

    box: dict = {}

    def connect():
        try:
            box["client"] = Client(address, timeout=f"{DASK_CONNECT_SECONDS // 2}s")
        except BaseException as exc:  # anything the peer provokes, reported below
            box["error"] = exc

    thread = threading.Thread(target=connect, name="bnexp-dask-connect", daemon=True)
    thread.start()
    thread.join(DASK_CONNECT_SECONDS)
    if "client" in box:
        return _with_workers(box["client"], address)
    exc = box.get("error")
    why = (f"no answer as a Dask scheduler within {DASK_CONNECT_SECONDS} s" if exc is None else
           f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else 'no detail'}")
    raise SweepError(f"--address {address}: cannot reach a Dask scheduler ({why}); is it "
                     "the address `dask scheduler` printed?")


def _with_workers(client, address: str):
    """``client`` once its scheduler has a worker (waiting up to
    DASK_CONNECT_SECONDS): with none, a sweep would wait forever in silence."""
    try:
        client.wait_for_workers(1, timeout=DASK_CONNECT_SECONDS)
    except (TimeoutError, OSError) as exc:
        client.close()
        why = (f"none joined within {DASK_CONNECT_SECONDS} s" if isinstance(exc, TimeoutError)
               else f"lost the scheduler while waiting: {exc}")
        raise SweepError(f"--address {address}: the scheduler has no workers ({why}); start "
                         f"some with `dask worker {address}`, then rerun") from None
    return client


def jobs_note(jobs: int | None, executor: str, address: str | None = None) -> str | None:
    """A note where ``-j`` asks for more local processes than this machine has
    cores (they share the cores), else None. (Dask without ``address`` runs
    its workers here too.)"""
    cores = os.cpu_count() or 1
    if jobs and jobs > cores and (executor == "local" or not address):
        return (f"-j {jobs} runs {jobs} processes on {cores} core{'s' if cores > 1 else ''}; "
                f"they will share the cores (no faster than -j {cores})")
    return None


def make_executor(kind: str, jobs: int | None, address: str | None):
    """``(executor, close, width)``: a ``concurrent.futures`` executor (a spawn
    process pool, or, with the optional extra ``bnexp[dask]``, the Dask
    scheduler's at ``address`` or a local Dask cluster's), a function that shuts
    it down, and how many runs to keep in flight (``jobs``, else all local cores
    or all the cluster's worker threads)."""
    if kind == "dask":
        try:
            from distributed import Client
        except ImportError:
            raise SweepError('--executor dask needs Dask: pip install "bnexp[dask]"') from None
        if not address:
            return _local_cluster(Client, jobs or os.cpu_count() or 1)
        client = _dask_client(Client, address)
        width = jobs or max(sum(client.nthreads().values()), 1)
        return client.get_executor(pure=False), client.close, width
    if kind != "local":
        raise SweepError(f"--executor: got {kind!r}, expected local or dask")
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    restore = _one_blas_thread_env()
    jobs = jobs or os.cpu_count() or 1
    pool = ProcessPoolExecutor(max_workers=jobs, mp_context=multiprocessing.get_context("spawn"),
                               initializer=_worker_init)

    def close():
        pool.shutdown(wait=True, cancel_futures=True)
        restore()
    return pool, close, jobs


def _one_blas_thread_env() -> Callable[[], None]:
    """Set BLAS to one thread in the environment that worker processes started
    from now inherit; returns the function that puts the old values back."""
    saved = {v: os.environ.get(v) for v in BLAS_ENV}
    os.environ.update({v: "1" for v in BLAS_ENV})

    def restore():
        for var, value in saved.items():
            if value is None:
                os.environ.pop(var, None)
            else:
                os.environ[var] = value
    return restore


def _local_cluster(Client, workers: int):
    """``(executor, close, width)`` of a Dask LocalCluster started here:
    ``workers`` worker processes of one thread each, no dashboard, Dask's
    warnings silenced (the sweep reports its runs). ``close`` stops the client,
    then the cluster (a worker busy with a run is killed after Dask's 4 s
    grace), whatever stopped the sweep. The workers ignore Ctrl-C, as the
    local pool's do: the parent stops them."""
    import logging

    from distributed import LocalCluster

    restore = _one_blas_thread_env()
    cluster = client = None
    old_int = signal.signal(signal.SIGINT, signal.SIG_IGN)  # inherited by the workers
    try:
        cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                               dashboard_address=None, silence_logs=logging.ERROR)
        client = Client(cluster)
    except Exception as exc:
        _close_cluster(client, cluster, restore)
        why = str(exc).splitlines()[0] if str(exc) else "no detail"
        raise SweepError(f"--executor dask: cannot start a local Dask cluster of {workers} "
                         f"workers ({type(exc).__name__}: {why}); pass --address of a "
                         "running scheduler, or use --executor local") from None
    finally:
        signal.signal(signal.SIGINT, old_int)
    return (client.get_executor(pure=False), lambda: _close_cluster(client, cluster, restore),
            workers)


def _close_cluster(client, cluster, restore: Callable[[], None]) -> None:
    try:
        if client is not None:
            with contextlib.suppress(Exception):
                client.close()
        if cluster is not None:
            cluster.close()
    finally:
        restore()


def execute(sweep: Sweep, out: str | Path, *, jobs: int | None = None, force: bool = False,
            retry_failed: bool = False, fail_fast: bool = False, plot: bool = True,
            executor: str = "local", address: str | None = None,
            command: list[str] | None = None,
            progress: Callable[[str, dict, Outcome], None] | None = None
            ) -> tuple[Path, Outcome]:
    """Run every point of ``sweep`` not yet finished into ``out/<name>/`` and
    keep the summaries current. ``progress(run_id, info, outcome)`` is called
    after each run (``info``: its run.json). A refused sweep (conflicting
    runs, bad data, no scheduler, a folder in use) writes nothing."""
    sweep_dir = Path(out) / sweep.name
    outcome = Outcome()
    if store.safe_component(sweep.name) and (sweep_dir / store.RUN_FILE).exists():
        raise SweepError(f"{sweep_dir} holds a single run, not a sweep; give the sweep another "
                         "name (--set name=...) or --out")
    todo = plan(sweep, sweep_dir, force, retry_failed)  # refuses conflicts before any write
    check_data(todo)  # found (or downloaded), read and sized, before any write
    pool = close = None
    if todo:
        from ..warmup import warm_kernels

        warm_kernels(p.config for p in todo)  # compiled here once, not in every worker
        pool, close, width = make_executor(executor, jobs, address)
    try:
        with store.lock(sweep_dir, "sweep"):
            todo = plan(sweep, sweep_dir, force, retry_failed)
            store.remove_stale_temp(sweep_dir, recursive=True)
            store.atomic_write(sweep_dir / store.SWEEP_FILE,
                               dump_yaml(sweep.resolved(command)))
            summary = Summary(sweep, sweep_dir)
            summary.write()
            todo_ids = {p.run_id for p in todo}
            outcome.skipped = [p.run_id for p in sweep.points if p.run_id not in todo_ids]
            if todo:
                # SIGTERM behaves as Ctrl-C: cancel what is pending, keep what finished.
                old_term = signal.signal(signal.SIGTERM, _raise_interrupt)
                outcome.workers = min(width, len(todo))
                try:
                    _run_all(pool, outcome.workers, todo, sweep_dir, outcome, fail_fast,
                             progress, summary, plot, resume=not force)
                finally:
                    signal.signal(signal.SIGTERM, old_term)
    finally:
        if pool is not None:
            shutdown(pool, close)
    return sweep_dir, outcome


@contextlib.contextmanager
def train_guard(run_dir: Path, cfg):
    """``bnexp train`` into ``run_dir`` where a sweep lives. A sweep's own
    folder is refused. A run folder of a sweep is trained into only while
    holding the sweep's lock (no sweep may run beside it, and it waits for
    none), only if it is one of the sweep's runs, with that run's config; the
    sweep's summaries are brought up to date afterwards. Elsewhere: nothing."""
    run_dir = Path(run_dir)
    if store.is_sweep_dir(run_dir):
        raise SweepError(f"{run_dir} is a sweep folder; train into another folder (--out) or "
                         "under another name (--set name=...)")
    parent = run_dir.parent
    if not store.is_sweep_dir(parent):
        yield
        return
    with store.lock(parent, "train"):
        data = store.read_sweep_yaml(parent)
        try:
            sweep = build({**(data.get("config") or {}), "sweep": data["sweep"]})
        except SweepError as exc:
            raise SweepError(f"{parent}/sweep.yaml: cannot be expanded ({exc})") from None
        point = next((p for p in sweep.points if p.run_id == run_dir.name), None)
        if point is None:
            raise SweepError(f"{run_dir} is inside the sweep folder {parent} but is not one of "
                             "its runs; train into another folder (--out)")
        diffs = _differing_keys(cfg.to_dict(), point.config.to_dict())
        if diffs:
            raise SweepError(f"{run_dir} is run {point.run_id} of the sweep {parent}, whose "
                             f"config differs ({', '.join(diffs[:3])}); train a variant into "
                             "another folder (--out)")
        try:
            yield
        finally:  # a finished, failed or interrupted run alike
            Summary(sweep, parent).write()


def train_run(cfg, run_dir: Path, *, force: bool = False, argv: list[str] | None = None,
              plot: bool = True, on_eval: Callable | None = None, threads: int = 1,
              on_step: Callable | None = None) -> dict:
    """``bnexp train``: ``runner.execute`` into ``run_dir`` under ``train_guard``
    (a sweep's run folder is trained into only as that sweep allows), with
    SIGTERM raised as KeyboardInterrupt, as Ctrl-C is. Returns run.json. Call
    ``runner.preload`` first (an interrupt inside an import is an ImportError)."""
    old_term = signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        with train_guard(run_dir, cfg):
            return runner.execute(cfg, run_dir, force=force, argv=argv, plot=plot,
                                  on_eval=on_eval, threads=threads, on_step=on_step)
    finally:
        signal.signal(signal.SIGTERM, old_term)


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt


def shutdown(pool, close) -> None:
    """Stop workers now: anything still running is killed (the parent writes
    every file, so no file is left half-written) and reruns next time."""
    procs = getattr(pool, "_processes", None) or {}
    for proc in list(procs.values()):
        if proc.is_alive():
            proc.terminate()
    with contextlib.suppress(Exception):
        close()


def _run_all(pool, width, todo, sweep_dir, outcome, fail_fast, progress, summary, plot,
             resume: bool = True) -> None:
    """Keep ``width`` runs in flight, writing each result as it comes back. Only
    that many are ever handed to the executor, so a stop (--fail-fast, Ctrl-C)
    leaves the rest untouched for the next invocation. With ``resume`` an
    unfinished run keeps its checkpoint, and its worker resumes from it."""
    keep = (store.CHECKPOINT_FILE,) if resume else ()
    from concurrent.futures import FIRST_COMPLETED, wait

    pending = list(reversed(todo))
    in_flight = {}
    handed_out = {}  # run id: when its run was submitted (time.monotonic)

    def submit():
        # A run's old files go only when it is handed out: a stopped --force
        # sweep keeps every result it has not yet redone.
        p = pending.pop()
        run_dir = sweep_dir / p.run_id
        command = runner.reproduce_command(p.config, run_dir)
        # A stop never leaves a run folder without its run.json. (Not around
        # the submit: a worker started there would inherit the held signals.)
        with store.signals_deferred():
            store.prepare_run_dir(run_dir, force=True, keep=keep)
            runner.mark(run_dir, p.config, "running", command)
        summary.update(p, {"status": "running"})
        handed_out[p.run_id] = time.monotonic()
        in_flight[pool.submit(runner.run_point, p.config.to_dict(), plot, str(run_dir))] = p

    try:
        while pending and len(in_flight) < width:
            submit()
        while in_flight:
            done, _ = wait(in_flight, return_when=FIRST_COMPLETED)
            finished = []
            for fut in done:
                p = in_flight.pop(fut)
                finished.append((p, _payload(fut, p)))
                outcome.seconds.append(time.monotonic() - handed_out.pop(p.run_id))
            if fail_fast and any(run["info"]["status"] == "failed" for _, run in finished):
                outcome.cancelled = [q.run_id for q in pending]
                pending.clear()
            try:  # the next runs first: a worker idles until it has one
                while pending and len(in_flight) < width:
                    submit()
            finally:  # then the finished runs' files, even if a stop came meanwhile
                for p, payload in finished:
                    info = _record(payload, p, sweep_dir, outcome, summary)
                    if progress:
                        progress(p.run_id, info, outcome)
    except BaseException:
        for fut in in_flight:
            fut.cancel()
        # Cut runs say so, in run.json and in summary.csv, and rerun next time.
        with store.signals_deferred():
            for p in in_flight.values():
                info = runner.mark_interrupted(sweep_dir / p.run_id)
                if info is not None:
                    summary.update(p, info)
        raise


def _payload(fut, p: Point) -> dict:
    """A finished future's run, or, where the worker itself stopped (killed,
    out of memory, a Dask scheduler lost), an interrupted one: it did not fail
    by itself, and the same command runs it again."""
    try:
        return fut.result()
    except BaseException as exc:
        if isinstance(exc, KeyboardInterrupt):
            raise
        import traceback

        info = runner.run_info(p.config, None)
        info.update(status="interrupted", ended=runner.now(),
                    error=f"its worker stopped before it finished: {type(exc).__name__}: "
                          f"{exc}".rstrip(": "),
                    traceback="".join(traceback.format_exception(exc)))
        return {"info": info, "metrics": [], "diagnostics": [], "steps": [], "curves": None}


def _record(payload: dict, p: Point, sweep_dir: Path, outcome: Outcome,
            summary: Summary) -> dict:
    """Write one finished run's folder and count it; returns its run.json."""
    run_dir = sweep_dir / p.run_id
    payload["info"]["command"] = runner.reproduce_command(p.config, run_dir)
    with store.signals_deferred():  # the run's files and its summary row together
        runner.write(run_dir, p.config, payload)
        summary.update(p, payload["info"])
    status = payload["info"]["status"]
    {"completed": outcome.done, "diverged": outcome.diverged}.get(
        status, outcome.failed).append(p.run_id)
    return payload["info"]
