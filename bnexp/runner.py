"""One run: train a config, draw its curves, and write its folder through
``store``. ``bnexp train`` calls ``execute``; sweep workers call ``compute``
and send the payload back to the parent, which writes it.
"""

from __future__ import annotations

import time
import traceback
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

from . import store
from .config import Config, dump
from .errors import BnexpError


class RunFailed(BnexpError):
    """The run raised; its traceback is in run.json."""


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def run_info(cfg: Config, command: list[str] | None, argv: list[str] | None = None) -> dict:
    """The ``run.json`` fields known before a run starts: ``command`` reruns
    the run from its own config.yaml; ``argv`` is what was typed, if anything."""
    from .provenance import facts

    info = {"status": "running", "name": cfg.name, "seed": cfg.seed, "started": now(),
            "ended": None, "seconds": None, "command": list(command or [])}
    if argv:
        info["argv"] = list(argv)
    info["provenance"] = facts(cfg.train.kernels)
    return info


def resumable(run_dir: Path | None, cfg: Config):
    """The checkpoint an unfinished run of ``cfg`` left in ``run_dir``, or None
    (no folder, no checkpoint, a finished run, or a checkpoint of another config)."""
    from .modelfile import CHECKPOINT_FILE, load_checkpoint

    if run_dir is None or not (Path(run_dir) / CHECKPOINT_FILE).is_file():
        return None
    if store.run_status(Path(run_dir)) in store.FINISHED:
        return None
    path = Path(run_dir) / CHECKPOINT_FILE
    ckpt, config_text = load_checkpoint(path)
    if config_text != dump(cfg):
        return None
    from .checkpoint import check_resume
    from .modelfile import ModelFileError

    try:
        check_resume(cfg, ckpt)
    except ValueError as exc:
        raise ModelFileError(f"{path}: not a checkpoint this config's run could have written "
                             f"({exc}); pass --force to start the run over") from None
    return ckpt


def _restartable(run_dir: Path, cfg: Config) -> bool:
    """The folder holds this very config's run (its config.yaml), unfinished
    (killed, cut short, failed, or cut while its files were being cleared) and
    with no checkpoint to resume from: the same command starts it over. Call
    only holding the folder (no other process runs it)."""
    if store.run_status(run_dir) in store.FINISHED:
        return False  # a result: only --force replaces it
    from .yamlio import YamlError, read_text

    try:
        return read_text(Path(run_dir) / store.CONFIG_FILE, "config file") == dump(cfg)
    except YamlError:  # missing, not a regular file, too large, not UTF-8: not this config's
        return False


def preload(plot: bool = True) -> None:
    """Import what a run needs (numpy, the engine, matplotlib's Agg when it
    draws) before a handler turns SIGTERM into an interrupt: an interrupt
    that lands inside an extension module's initialization surfaces as an
    ImportError traceback, not as an interrupt."""
    from . import train  # noqa: F401  (numpy, the engine, the datasets)
    from .modelfile import model_bytes  # noqa: F401
    from .provenance import blas  # noqa: F401

    if plot:
        from .figures import load_matplotlib

        load_matplotlib()


def compute(cfg: Config, *, plot: bool = True, on_eval: Callable | None = None,
            command: list[str] | None = None, argv: list[str] | None = None,
            threads: int = 1, run_dir: Path | None = None, resume=None,
            on_step: Callable | None = None) -> dict:
    """Run ``cfg`` and return everything its folder will hold, as plain data
    (picklable: sweep workers send it back to the parent, which writes it).

    Training runs with BLAS pinned to one thread (``provenance``), so the
    numbers do not depend on the process or machine settings it runs under;
    ``threads`` evaluation threads do not change them either. An exception
    inside the run is caught and returned as status ``failed`` with its
    traceback; an interrupt propagates. With ``train.checkpoint_every`` and a
    ``run_dir``, checkpoints are written there as training goes; ``resume``
    (a checkpoint, see ``resumable``) continues from one. ``on_eval`` and
    ``on_step`` go to ``train.train`` (progress; they write nothing).
    """
    from . import train as train_mod
    from .provenance import blas, one_blas_thread

    info = run_info(cfg, command, argv)
    t0 = time.perf_counter()
    payload = {"info": info, "metrics": [], "diagnostics": [], "steps": [], "curves": None,
               "model": None}
    on_checkpoint = _checkpoint_writer(cfg, run_dir)
    if resume is not None:
        info["resumed_from_epoch"] = resume.epoch
    try:
        with one_blas_thread():
            info["provenance"]["blas"] = blas()  # as the run sees it: one thread
            result = train_mod.train(cfg, on_eval=on_eval, threads=threads,
                                     on_checkpoint=on_checkpoint, resume=resume,
                                     on_step=on_step)
    except store.StoreError:
        raise  # a folder that cannot be written (a full disk): the caller's problem, not the run's
    except Exception as exc:
        info.update(status="failed", ended=now(), seconds=round(time.perf_counter() - t0, 3),
                    error=f"{type(exc).__name__}: {exc}", traceback=traceback.format_exc())
        return payload
    _record_result(info, result, time.perf_counter() - t0)
    _add_tables_and_model(payload, cfg, result)
    if plot:
        payload["curves"] = _curves(result.metrics, info, cfg)
    return payload


def _checkpoint_writer(cfg: Config, run_dir: Path | None) -> Callable | None:
    """The ``on_checkpoint`` callback that writes each checkpoint into
    ``run_dir``; None without ``train.checkpoint_every`` or an existing folder."""
    from .modelfile import CHECKPOINT_FILE, checkpoint_bytes

    if not (cfg.train.checkpoint_every and run_dir is not None and Path(run_dir).is_dir()):
        return None
    config_text = dump(cfg)

    def on_checkpoint(ckpt):
        store.atomic_write(Path(run_dir) / CHECKPOINT_FILE, checkpoint_bytes(ckpt, config_text))
    return on_checkpoint


def _record_result(info: dict, result, seconds: float) -> None:
    """Fill run.json's result fields (status, final and best metrics, timings)
    from a finished training ``result`` that took ``seconds``."""
    final = result.metrics[-1]
    info.update(
        status=result.status, ended=now(), seconds=round(seconds, 3),
        diverged_at=result.diverged_at,
        final={k: final[k] for k in ("epoch", "train_loss", "train_acc", "test_loss", "test_acc")},
        best_test_acc=max(r["test_acc"] for r in result.metrics),
    )
    if result.variance_shift is not None:
        info["variance_shift"] = result.variance_shift
    if result.step_seconds is not None:  # wall time: varies with the machine and its load
        info["step_seconds"] = round(result.step_seconds, 7)


def _add_tables_and_model(payload: dict, cfg: Config, result) -> None:
    """Put the run's tables, and a completed run's model file, into ``payload``."""
    from .modelfile import model_bytes

    payload.update(metrics=result.metrics, diagnostics=result.diagnostics, steps=result.steps,
                   landscape=result.landscape, ics=result.ics)
    if result.status == "completed":
        payload["model"] = model_bytes(result.model, run=cfg.name, config=dump(cfg))


def _curves(metrics: list[dict], info: dict, cfg: Config) -> bytes:
    """curves.png of a finished run (its title states ``cfg``'s key settings),
    drawn with stop signals held."""
    from .figures import curves_png

    # Held: Ctrl-C or SIGTERM while Agg draws surfaces from its C++ as a
    # ValueError ("Invalid affine transformation matrix"), not an interrupt.
    with store.signals_deferred():
        return curves_png(metrics, info, cfg.to_dict())


def write(run_dir: Path, cfg: Config, payload: dict) -> None:
    """Write a computed run into ``run_dir``."""
    store.write_run(run_dir, dump(cfg), payload)


def mark(run_dir: Path, cfg: Config, status: str, command: list[str] | None = None,
         argv: list[str] | None = None) -> None:
    """Write config.yaml and a provisional run.json (status ``running``); a run
    left so (killed) is rerun by the next sweep."""
    info = run_info(cfg, command, argv)
    info["status"] = status
    store.atomic_write(Path(run_dir) / store.CONFIG_FILE, dump(cfg))
    store.write_json(Path(run_dir) / store.RUN_FILE, info)


def mark_interrupted(run_dir: Path) -> dict | None:
    """Turn a run's provisional run.json (``running``) into ``interrupted``,
    with the time it was cut; returns it (None where there is none)."""
    info = store.read_json(Path(run_dir) / store.RUN_FILE)
    if info is None or info.get("status") != "running":
        return None
    info.update(status="interrupted", ended=now())
    store.write_json(Path(run_dir) / store.RUN_FILE, info)
    return info


def reproduce_command(cfg: Config, run_dir: Path) -> list[str]:
    """The command that reruns this run from its own saved config, into the
    same folder (``bnexp verify RUN`` reruns it without touching the folder)."""
    run_dir = Path(run_dir)
    return ["bnexp", "train", str(run_dir / store.CONFIG_FILE), "--out", str(run_dir.parent),
            "--force"]


def execute(cfg: Config, run_dir: str | Path, *, force: bool = False,
            argv: list[str] | None = None, plot: bool = True,
            on_eval: Callable | None = None, threads: int = 1,
            on_step: Callable | None = None) -> dict:
    """``bnexp train``: run ``cfg`` into ``run_dir``, saving metrics.csv after
    every evaluation, and return the ``run.json`` contents. Raises RunFailed
    (after recording it) when the run raised; a diverged run is a result.
    ``on_step(step, total)`` after each training step (``train.train``)."""
    from .datasets import check

    run_dir = Path(run_dir)
    check(cfg)  # the data and its sizes, before anything is written
    with store.lock(run_dir, "train"):  # a second train into this folder is refused
        return _execute(cfg, run_dir, force=force, argv=argv, plot=plot, on_eval=on_eval,
                        threads=threads, on_step=on_step)


def _execute(cfg: Config, run_dir: Path, *, force: bool, argv, plot, on_eval, threads,
             on_step=None) -> dict:
    store.remove_stale_temp(run_dir)  # a killed writer's; this process holds the folder
    resume = None if force else resumable(run_dir, cfg)  # --force starts over
    if resume is None:
        store.prepare_run_dir(run_dir, force or _restartable(run_dir, cfg))
    command = reproduce_command(cfg, run_dir)
    mark(run_dir, cfg, "running", command, argv)

    def save_metrics(row, result):
        store.write_metrics(run_dir, result.metrics)
        if on_eval:
            on_eval(row, result)

    try:
        payload = compute(cfg, plot=plot, on_eval=save_metrics, command=command, argv=argv,
                          threads=threads, run_dir=run_dir, resume=resume, on_step=on_step)
    except KeyboardInterrupt:
        info = run_info(cfg, command, argv)
        info.update(status="interrupted", ended=now())
        store.write_json(run_dir / store.RUN_FILE, info)
        raise
    write(run_dir, cfg, payload)
    info = payload["info"]
    if info["status"] == "failed":
        raise RunFailed(f"{info['error']} (traceback in {run_dir / 'run.json'})")
    return info


def run_point(config_dict: dict, plot: bool, run_dir: str | None = None) -> dict:
    """Worker side of a sweep: compute one run and return its payload (plain
    data). The parent fills in the command that reproduces it. Checkpoints
    (``train.checkpoint_every``) go to ``run_dir`` where this worker sees it."""
    from .config import from_dict

    cfg, run_dir = from_dict(config_dict), Path(run_dir) if run_dir else None
    return compute(cfg, plot=plot, command=[], run_dir=run_dir,
                   resume=resumable(run_dir, cfg))
