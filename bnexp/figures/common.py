"""What every figure shares: the error, matplotlib with the Agg backend, where
a figure draws, and how it becomes bytes and a file.

PNGs and SVGs carry no timestamp or software metadata (and SVG element ids
are salted with a constant), so the same inputs give the same bytes.
"""

from __future__ import annotations

import io
from pathlib import Path

from ..choices import FIGURE_FORMATS
from ..errors import BnexpError
from ..store import atomic_write


class PlotError(BnexpError):
    """A figure request that cannot be met; one line saying why. ``option`` is
    the figure option at fault (``metric``, ``filters``, ...), where one is, so
    that a caller can name it in its own terms (a CLI flag, a config key)."""

    def __init__(self, message: str, option: str | None = None) -> None:
        super().__init__(message)
        self.option = option


def pyplot():
    """matplotlib.pyplot, with the Agg backend every figure draws with."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def load_matplotlib() -> None:
    """Import matplotlib with the Agg backend, the one every figure draws with."""
    pyplot()


def target(ax=None, fig=None, figsize=(6.4, 4.2)):
    """(figure, axes, made here): draw into ``ax``, or a new axes of ``fig``
    (a Figure or SubFigure), or a new figure."""
    if ax is not None:
        return ax.figure, ax, False
    if fig is not None:
        return fig, fig.add_subplot(), False
    new, axes = pyplot().subplots(figsize=figsize)
    return new, axes, True


def whole_ticks(ax) -> None:
    """Ticks on ``ax``'s x axis (epochs, steps) at whole numbers only, so that a
    run of two epochs reads 0, 1, 2 and not 0, 0.5, ... (matplotlib falls back
    to fractions only where fewer than two whole numbers are in view)."""
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))


def reach_whole_epoch(ax, epoch: float):
    """An invisible line at the first whole epoch at or after ``epoch``, so that
    an axis ending inside an epoch (a run that diverged early) runs on to a
    whole number, and ``whole_ticks`` has whole numbers to tick."""
    import math

    return ax.axvline(math.ceil(epoch), visible=False)


def render(fig, fmt: str) -> bytes:
    """``fig`` in format ``fmt`` (png, svg, pdf) at 100 dpi, without the
    metadata that changes between runs; ``fig`` stays open."""
    plt = pyplot()
    metadata = {"png": {"Software": None}, "svg": {"Date": None, "Creator": None},
                "pdf": {"CreationDate": None, "Producer": None, "Creator": None}}.get(fmt, {})
    buf = io.BytesIO()
    with plt.rc_context({"svg.hashsalt": "bnexp"}):  # stable SVG element ids
        fig.savefig(buf, format=fmt, metadata=metadata, dpi=100)
    return buf.getvalue()


def figure_bytes(fig, fmt: str = "png") -> bytes:
    """Render and close ``fig``, without metadata that changes between runs."""
    try:
        return render(fig, fmt)
    finally:
        pyplot().close(fig)


def save_figure(fig, path: str | Path, fmt: str | None = None) -> Path:
    """Render ``fig`` to ``path`` atomically (format from ``fmt`` or the suffix)."""
    path = Path(path)
    atomic_write(path, figure_bytes(fig, fmt or path.suffix.lstrip(".") or "png"))
    return path


def output_format(out: str | Path | None, fmt: str | None) -> str:
    """The file format: ``fmt``, else ``out``'s extension, else png; the two
    must agree when both are given."""
    ext = Path(out).suffix.lstrip(".").lower() if out else ""
    if ext and ext not in FIGURE_FORMATS:
        raise PlotError(f"out: {out}: unknown extension .{ext}, expected "
                        f"{', '.join('.' + f for f in FIGURE_FORMATS)}", "out")
    if fmt and ext and fmt != ext:
        raise PlotError(f"fmt: {fmt} contradicts out {out}; drop one of them", "fmt")
    if fmt and fmt not in FIGURE_FORMATS:
        raise PlotError(f"fmt: got {fmt!r}, expected one of {', '.join(FIGURE_FORMATS)}", "fmt")
    return fmt or ext or "png"
