"""A run's final (or best) metric over two swept keys, its mean over seeds in
each cell."""

from __future__ import annotations

from .common import target
from .runs import SweepData, run_stat
from .style import metric_label


def heatmap_figure(data: SweepData, x: str, y: str, metric: str, stat: str, ax=None, fig=None):
    """Mean final (or best) ``metric`` over two swept keys, values in the cells."""
    import numpy as np

    xv, yv = data.axis(x), data.axis(y)
    grid = np.full((len(yv), len(xv)), np.nan)  # (values of y, values of x)
    for i, b in enumerate(yv):
        for j, a in enumerate(xv):
            vals = [run_stat(r, metric, stat) for r in data.runs
                    if r.labels[x] == a and r.labels[y] == b and r.metrics]
            if vals:
                grid[i, j] = np.mean(vals)
    fig, ax, made = target(ax, fig, (1.0 + 0.75 * len(xv) + 1.5, 1.0 + 0.5 * len(yv) + 1))
    im = ax.imshow(grid, cmap="viridis", aspect="auto",
                   vmin=0 if metric.endswith("acc") else None,
                   vmax=1 if metric.endswith("acc") else None)
    for i in range(len(yv)):
        for j in range(len(xv)):
            if not np.isnan(grid[i, j]):
                ax.text(j, i, f"{grid[i, j]:.2f}", ha="center", va="center", fontsize=8,
                        color="white" if grid[i, j] < np.nanmean(grid) else "black")
    ax.set_xticks(range(len(xv)), [v for v in xv], rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(len(yv)), [v for v in yv], fontsize=8)
    ax.set_xlabel(x)
    ax.set_ylabel(y)
    fig.colorbar(im, ax=ax, label=f"{stat} {metric}")
    ax.set_title(f"{data.title}\n{stat} {metric_label(metric)}: mean over "
                 f"seeds{data.progress_note()}", fontsize=9)
    if made:
        fig.tight_layout()
    return fig
