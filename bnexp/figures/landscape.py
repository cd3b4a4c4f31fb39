"""Santurkar et al. 2018, Fig. 4a: the range of the loss along the gradient
over training (landscape.csv)."""

from __future__ import annotations

import math

from .. import values as V
from .common import PlotError, target, whole_ticks
from .runs import SweepData
from .style import short, value_style


def landscape_figure(data: SweepData, lines: str | None, ax=None, fig=None):
    """Santurkar et al.'s Figure 4a: per value of ``lines``, the band between
    the smallest and the largest loss found along the gradient at each probed
    step (landscape.csv; means over seeds), over training."""
    fig, ax, made = target(ax, fig)
    values = data.axis(lines) if lines else [None]
    drawn = 0
    for j, value in enumerate(values):
        runs = [r for r in data.runs if lines is None or r.labels[lines] == V.label(value)]
        lo: dict[int, list[float]] = {}
        hi: dict[int, list[float]] = {}
        for r in runs:
            rows = r.table("landscape")
            if rows is None:
                continue
            by_step: dict[int, list[float]] = {}
            for row in rows:
                if math.isfinite(row["loss"]):
                    by_step.setdefault(int(row["step"]), []).append(row["loss"])
            for step, losses in by_step.items():
                lo.setdefault(step, []).append(min(losses))
                hi.setdefault(step, []).append(max(losses))
        if not lo:
            continue
        steps = sorted(lo)
        low = [sum(lo[s]) / len(lo[s]) for s in steps]
        high = [sum(hi[s]) / len(hi[s]) for s in steps]
        label = V.label(value) if lines else data.title
        color, _ = value_style(label if lines else None, j)
        ax.fill_between(steps, low, high, color=color, alpha=0.35, linewidth=0,
                        label=f"{short(lines)}={label}" if lines else label)
        drawn += 1
    if not drawn:
        raise PlotError(f"{data.path}: no landscape.csv; run with eval.landscape_every > 0")
    ax.set(xlabel="training step", ylabel="loss along the gradient (min to max)")
    ax.grid(alpha=0.3)
    whole_ticks(ax)
    ax.legend(fontsize=8)
    ax.set_title(f"{data.title}\nloss at step sizes 0.25-4 x lr along the gradient: range, "
                 f"mean over seeds{data.progress_note()}", fontsize=9)
    if made:
        fig.tight_layout()
    return fig
