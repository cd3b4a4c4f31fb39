"""Small multiples: one panel per value of one swept key, one line per value
of another, a metric against epoch (the book's Figure 6-19 layout)."""

from __future__ import annotations

import math
import textwrap

from .common import PlotError, pyplot, reach_whole_epoch, whole_ticks
from .runs import SweepData, band_edges, series
from .style import BANDS, metric_label, short, value_style


def grid_figure(data: SweepData, panels: str, lines: str | None, metric: str,
                band: str = "ci", fig=None):
    """Small multiples: one panel per value of ``panels``, one line per value
    of ``lines``; ``metric`` against epoch, mean over seeds with a band (the
    95% interval of the mean, or +-1 sd). Drawn into ``fig`` (a Figure or
    SubFigure) when given."""
    plt = pyplot()
    panel_values = data.axis(panels) if panels else [None]
    line_values = data.axis(lines) if lines else [None]
    ncols = math.ceil(math.sqrt(len(panel_values)))
    nrows = math.ceil(len(panel_values) / ncols)
    made = fig is None
    if made:
        fig = plt.figure(figsize=(2.6 * ncols + 1.2, 2.2 * nrows + 0.8))
    axes = fig.subplots(nrows, ncols, sharex=True, sharey=True, squeeze=False)
    handles = {}  # line value -> (artist, legend label), in the order first drawn
    for i, pv in enumerate(panel_values):
        _draw_panel(axes[i // ncols][i % ncols], data, panels, pv, lines, line_values,
                    metric, band, handles)
    if not handles:
        if made:
            plt.close(fig)
        raise PlotError(f"{data.path}: no run has metrics yet to draw")
    for k in range(len(panel_values), nrows * ncols):
        axes[k // ncols][k % ncols].set_visible(False)
    _label_grid(fig, axes, data, metric, band, handles)
    if made:  # tight_layout leaves room for the (wrapped) title itself
        fig.tight_layout(rect=(0, 0.06, 1, 0.97))
    return fig


def _draw_panel(ax, data: SweepData, panels: str | None, pv: str | None, lines: str | None,
                line_values: list, metric: str, band: str, handles: dict) -> None:
    """The panel of value ``pv`` of ``panels``: a line (mean and band) per value
    of ``lines`` in ``line_values``, an ``x`` where a run diverged; adds each
    line value first drawn to ``handles``. Bands are cut to the metric's range."""
    for j, lv in enumerate(line_values):
        runs = [r for r in data.runs if (pv is None or r.labels[panels] == pv)
                and (lv is None or r.labels[lines] == lv)]
        runs = [r for r in runs if r.metrics]
        if not runs:
            continue
        epochs, mean, half, stops = series(runs, metric, band)
        color, style = value_style(lv, j)
        (h,) = ax.plot(epochs, mean, color=color, linestyle=style, linewidth=1.5)
        if len(runs) > 1:
            ax.fill_between(epochs, *band_edges(mean, half, metric), color=color, alpha=0.2,
                            linewidth=0)
        for at, value in stops:
            ax.plot([at], [value], marker="x", color=color, markersize=7, linestyle="none")
            reach_whole_epoch(ax, at)
        handles.setdefault(lv, (h, f"{short(lines)}={lv}" if lines else f"n={len(runs)}"))
    if panels:
        ax.set_title(f"{short(panels)}={pv}", fontsize=9)
    ax.grid(alpha=0.3)
    whole_ticks(ax)
    if metric.endswith("acc"):
        ax.set_ylim(0, 1.02)


def _label_grid(fig, axes, data: SweepData, metric: str, band: str, handles: dict) -> None:
    """Axis labels on the outer panels, one legend for the figure, and a title
    wrapped to the figure's width."""
    for ax in axes[-1]:
        ax.set_xlabel("epoch")
    for row in axes:
        row[0].set_ylabel(metric_label(metric))
    seeds = len({r.seed for r in data.runs})
    if any(r.status == "diverged" for r in data.runs):
        (hx,) = axes[0][0].plot([], [], marker="x", color="black", linestyle="none")
        handles["__diverged"] = (hx, "x: run diverged (stopped)")
    fig.legend([h for h, _ in handles.values()], [lab for _, lab in handles.values()],
               loc="lower center", ncol=min(len(handles), 4), frameon=False, fontsize=9)
    title = (f"{data.title}: {metric_label(metric)} per epoch "
             f"(mean over {seeds} seed{'s' if seeds > 1 else ''}"
             f"{', ' + BANDS[band] if seeds > 1 else ''}{data.progress_note()})")
    # Wrapped to the figure's width (about 12 characters of 10 pt per inch), so
    # that a grid of few panels keeps its whole title.
    width_in = fig.bbox.width / fig.dpi  # a Figure or a SubFigure
    fig.suptitle("\n".join(textwrap.wrap(title, width=max(40, int(width_in * 12)))),
                 fontsize=10)
