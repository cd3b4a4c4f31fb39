"""Where a run's numbers come from, and the one BLAS thread that keeps them
the same whatever the machine's thread settings.

Why one thread: OpenBLAS splits a matrix product differently on 1 and 2
threads (measured: a (100, 784) @ (784, 100) float32 product differs in the
last bits), and training amplifies last-bit differences (one run of the
weight-scale sweep ended at train accuracy 0.321 on one thread, 0.577 on
two). So every computation that decides a run's metrics runs with BLAS pinned
to one thread, in every process that trains (the CLI, sweep workers, Dask
workers, a notebook); sweeps run in parallel across runs instead.

``facts()`` records what decides the numbers on this machine (bnexp and its
commit, numpy, the BLAS library, kernel and threads, the CPU, the engine
path); ``bnexp verify`` compares them when a rerun differs.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import platform
import subprocess
import threading
from pathlib import Path

from . import __version__

ENGINE = "numpy"  # the reference engine path (train.kernels numba records "numba")
BLAS_ENV = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
            "BLIS_NUM_THREADS", "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS")

_pin_lock = threading.Lock()
_pin_depth = 0
_pin_limiter = None


def single_thread_env() -> None:
    """Ask for one BLAS thread through the environment, for a process whose
    numpy has not loaded yet: no idle BLAS threads are even started. (Pinning
    with ``one_blas_thread`` is what guarantees it; this only saves threads.)"""
    for var in BLAS_ENV:
        os.environ[var] = "1"


@contextlib.contextmanager
def one_blas_thread():
    """Run the body with every BLAS (and OpenMP) pool of the process limited to
    one thread. Re-entrant and shared by threads: the limit is set by the
    first caller and restored by the last, so runs that overlap in one process
    (Dask worker threads) never see it lifted under them."""
    global _pin_depth, _pin_limiter
    from threadpoolctl import threadpool_limits

    with _pin_lock:
        if _pin_depth == 0:
            _pin_limiter = threadpool_limits(limits=1)
        _pin_depth += 1
    try:
        yield
    finally:
        with _pin_lock:
            _pin_depth -= 1
            if _pin_depth == 0 and _pin_limiter is not None:
                _pin_limiter.restore_original_limits()
                _pin_limiter = None


def blas() -> dict:
    """The BLAS numpy calls: library, version, kernel and threads now."""
    import numpy as np  # noqa: F401  (loads the BLAS library threadpoolctl inspects)
    from threadpoolctl import threadpool_info

    libs = [i for i in threadpool_info() if i.get("user_api") == "blas"]
    if not libs:
        return {"library": "unknown", "version": None, "kernel": None, "threads": None}
    info = libs[0]
    return {"library": info.get("internal_api"), "version": info.get("version"),
            "kernel": info.get("architecture"), "threads": info.get("num_threads")}


@functools.cache
def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def _git(*args: str, cwd: Path) -> str | None:
    try:
        out = subprocess.run(["git", "-C", str(cwd), *args], capture_output=True, text=True,
                             timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def git_state(source: Path) -> dict:
    """The commit of the checkout holding ``source``, and whether its tracked
    files differ from it (then the commit alone does not identify the code)."""
    commit = _git("rev-parse", "HEAD", cwd=source)
    if not commit:
        return {"commit": None, "dirty": None}
    status = _git("status", "--porcelain", "--untracked-files=no", cwd=source)
    return {"commit": commit, "dirty": bool(status) if status is not None else None}


@functools.cache
def code_version() -> dict:
    """bnexp's version and commit: from ``_build.json`` (written when a wheel
    is built, so a plain ``pip install .`` knows its commit), else asked of
    git when running from a checkout (an editable install). Cached per process."""
    here = Path(__file__).resolve().parent
    built = here / "_build.json"
    if built.is_file():
        try:
            data = json.loads(built.read_text())
            return {"bnexp": __version__, "commit": data.get("commit"),
                    "dirty": data.get("dirty"), "commit_from": "build"}
        except ValueError:
            pass
    state = git_state(here)
    return {"bnexp": __version__, **state, "commit_from": "git" if state["commit"] else None}


def facts(kernels: str = "numpy") -> dict:
    """Everything on this machine that decides a run's numbers (besides its
    config): with ``kernels`` numba, the engine path is ``numba`` and the
    numba and llvmlite versions that compiled it are recorded too."""
    import numpy as np

    out = {**code_version(), "engine": ENGINE if kernels == "numpy" else kernels,
           "numpy": np.__version__}
    if kernels == "numba":
        import llvmlite
        import numba

        out.update(numba=numba.__version__, llvmlite=llvmlite.__version__)
    return {**out, "python": platform.python_version(), "blas": blas(), "cpu": cpu_model(),
            "platform": platform.platform(), "host": platform.node()}


# The facts whose change can explain a difference between two runs of one config.
DECIDING = ("bnexp", "commit", "dirty", "engine", "numpy", "numba", "llvmlite", "blas.library",
            "blas.version", "blas.kernel", "blas.threads", "cpu", "python", "platform")


def flat(facts_: dict) -> dict:
    out = {}
    for k, v in (facts_ or {}).items():
        if isinstance(v, dict):
            out.update({f"{k}.{kk}": vv for kk, vv in v.items()})
        else:
            out[k] = v
    return out


def changed(old: dict, new: dict) -> list[str]:
    """``key: old -> new`` for each deciding fact that differs."""
    a, b = flat(old), flat(new)
    return [f"{k}: {a.get(k)} -> {b.get(k)}" for k in DECIDING if a.get(k) != b.get(k)]
