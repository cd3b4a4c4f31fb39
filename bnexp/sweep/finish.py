"""After a sweep's runs: its own figure, drawn from the folder, and the report
of the runs that failed (each one's error and the command that reproduces it,
from its run.json).
"""

from __future__ import annotations

import shlex
from collections.abc import Iterator
from pathlib import Path

from .. import store
from .execute import Outcome


def draw_figure(sweep_dir: Path) -> tuple[Path | None, str | None]:
    """The sweep's own figure, redrawn from its folder: ``(path, None)``, or
    ``(None, why)`` where none can be drawn (no finished run, say)."""
    from ..figures import PlotError, plot_path

    try:
        return plot_path(sweep_dir, force=True), None
    except PlotError as exc:
        return None, str(exc)


def failure_report(sweep_dir: Path, outcome: Outcome) -> Iterator[str]:
    """The lines that tell of ``outcome``'s failed runs: each one's error and
    the command that reproduces it; then whether some were interrupted, and
    how many runs --fail-fast cancelled. Nothing when none failed."""
    if not outcome.failed:
        return
    yield (f"{len(outcome.failed)} failed run(s); the error is in each run.json. "
           "Reproduce with:")
    interrupted = False
    for rid in outcome.failed:
        info = store.read_json(sweep_dir / rid / store.RUN_FILE) or {}
        interrupted |= info.get("status") == "interrupted"
        cmd = " ".join(shlex.quote(a) for a in info.get("command") or [])
        yield f"  {rid}: {info.get('error', '?')}\n    {cmd}"
    if interrupted:
        yield "runs whose worker stopped are marked interrupted: the same command runs them again"
    if outcome.cancelled:
        yield f"{len(outcome.cancelled)} run(s) cancelled by --fail-fast"
