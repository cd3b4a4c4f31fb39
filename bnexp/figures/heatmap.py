"""A run's final (or best) metric over two swept keys, its mean over seeds in
each cell. Axes run as the final plot's do: numeric values increasing to the
right and upward; a cell where every seed diverged is hatched grey, not
coloured by where its runs stopped."""

from __future__ import annotations

from .common import target
from .runs import SweepData, all_diverged, run_stat
from .style import metric_label

DIVERGED_TEXT = "div."


def heatmap_figure(data: SweepData, x: str, y: str, metric: str, stat: str, ax=None, fig=None):
    """Mean final (or best) ``metric`` over two swept keys, values in the cells;
    ``x`` along the bottom, ``y`` up the side, each in increasing order where
    numeric (else in grid order, the first at the left and at the bottom)."""
    import numpy as np
    from matplotlib.patches import Rectangle

    xv, yv = _ordered(data, x), _ordered(data, y)
    grid = np.full((len(yv), len(xv)), np.nan)  # (values of y, values of x); row 0 at the bottom
    dead = []  # (row, column) of each cell where every seed diverged
    for i, b in enumerate(yv):
        for j, a in enumerate(xv):
            runs = [r for r in data.runs if r.labels[x] == a and r.labels[y] == b and r.metrics]
            if all_diverged(runs):
                dead.append((i, j))
            elif runs:
                grid[i, j] = np.mean([run_stat(r, metric, stat) for r in runs])
    xt, yt = [tick_label(v) for v in xv], [tick_label(v) for v in yv]
    fig, ax, made = target(ax, fig, heatmap_size(len(xv), len(yv), max(map(len, xt))))
    im = ax.imshow(grid, cmap="viridis", aspect="auto", origin="lower",
                   vmin=0 if metric.endswith("acc") else None,
                   vmax=1 if metric.endswith("acc") else None)
    fontsize = 8 if len(xv) <= 12 else 7
    for i in range(len(yv)):
        for j in range(len(xv)):
            if not np.isnan(grid[i, j]):
                ax.text(j, i, f"{grid[i, j]:.2f}", ha="center", va="center", fontsize=fontsize,
                        color="white" if grid[i, j] < np.nanmean(grid) else "black")
    for i, j in dead:
        ax.add_patch(Rectangle((j - 0.5, i - 0.5), 1, 1, facecolor="0.85", edgecolor="0.55",
                               hatch="///", linewidth=0))
        ax.text(j, i, DIVERGED_TEXT, ha="center", va="center", fontsize=fontsize, color="black",
                bbox={"facecolor": "0.85", "edgecolor": "none", "pad": 1})
    ax.set_xticks(range(len(xv)), xt, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(len(yv)), yt, fontsize=8)
    ax.set_xlabel(x)
    ax.set_ylabel(y)
    fig.colorbar(im, ax=ax, label=f"{stat} {metric}")
    note = f"; {DIVERGED_TEXT}: every seed diverged" if dead else ""
    ax.set_title(f"{data.title}\n{stat} {metric_label(metric)}: mean over "
                 f"seeds{note}{data.progress_note()}", fontsize=9)
    if made:
        fig.tight_layout()
    return fig


def tick_label(label: str) -> str:
    """A swept value as a tick shows it: a number spelled with more than 8
    characters (a logspace value, 0.00018478497974222906) to 3 significant
    digits; anything else as it is. Filters still take the exact spelling."""
    try:
        value = float(label)
    except ValueError:
        return label
    return f"{value:.3g}" if len(label) > 8 else label


def heatmap_size(columns: int, rows: int, label_chars: int = 0) -> tuple[float, float]:
    """(width, height) in inches: 6 to 8 wide as the columns need; the height
    grows with the rows and with the longest x label (slanted, ``label_chars``
    long), never under 3, so that the cells keep room beside title and labels."""
    height = 1.8 + 0.45 * rows + 0.04 * label_chars
    return min(8.0, max(6.0, 2.5 + 0.55 * columns)), min(9.0, max(3.0, height))


def _ordered(data: SweepData, key: str) -> list[str]:
    """The values of ``key``: increasing where all are numbers, else in grid order."""
    values = data.axis(key)
    return sorted(values, key=float) if data.numeric(key) else list(values)
