"""A run's final (or best) metric against one swept key, mean over seeds with
a band: lines over a numeric key (log-scaled where its values span a decade),
bars with error bars over a categorical one (a norm, say). Bands and error
bars stay within the metric's range; a grid point where every seed diverged
is marked at the foot of the axes, never averaged in."""

from __future__ import annotations

from .common import target
from .runs import SweepData, all_diverged, band_edges, half_band, run_stat
from .style import BANDS, metric_label, short, value_style

# Where every seed of a grid point diverged: a mark at the foot of the axes.
DIVERGED_MARK = {"marker": "X", "markersize": 9, "markeredgecolor": "white",
                 "markeredgewidth": 0.5, "linestyle": "none", "clip_on": False}
DIVERGED_LABEL = "every seed diverged"


def final_figure(data: SweepData, x: str, lines: str | None, metric: str, stat: str,
                 band: str = "ci", ax=None, fig=None):
    """Final (or best) ``metric`` against swept key ``x``: mean over seeds with
    a band (95% interval of the mean, or +-1 sd), one line per value of
    ``lines``; bars with error bars when ``x`` is a category (a norm, say)."""
    if not data.numeric(x):
        return bars_figure(data, x, lines, metric, stat, band, ax, fig)
    line_values = data.axis(lines) if lines else [None]
    fig, ax, made = target(ax, fig)
    marks = {"run": False, "point": False}  # which diverged marks were drawn
    for j, lv in enumerate(line_values):
        _final_line(ax, data, x, lines, lv, j, metric, stat, band, marks)
    if marks["run"]:
        ax.plot([], [], marker="x", color="black", linestyle="none", label="diverged run")
    if marks["point"]:
        ax.plot([], [], color="black", label=DIVERGED_LABEL, **DIVERGED_MARK)
    _x_axis(ax, data.axis(x))
    ax.set_xlabel(x)
    ax.set_ylabel(f"{stat} {metric_label(metric)}")
    if metric.endswith("acc"):
        ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=9)
    ax.set_title(f"{data.title}\n{stat} {metric_label(metric)}: mean over seeds, "
                 f"{BANDS[band]}{data.progress_note()}", fontsize=9)
    if made:
        fig.tight_layout()
    return fig


def _final_line(ax, data: SweepData, x: str, lines: str | None, lv: str | None, j: int,
                metric: str, stat: str, band: str, marks: dict) -> None:
    """The line of value ``lv`` (the ``j``-th) of ``lines``: the mean over seeds at
    each value of ``x`` with its band, labelled with the number of seeds, and an
    ``x`` at each diverged run; a value of ``x`` where every seed diverged is
    left out of the line and marked at the foot of the axes. Sets ``marks``'
    ``run`` and ``point`` where it draws either mark."""
    import numpy as np

    xs, means, halves, ns, div_x, div_y, dead = [], [], [], [], [], [], []
    for xv in data.axis(x):
        runs = [r for r in data.runs if r.labels[x] == xv
                and (lv is None or r.labels[lines] == lv) and r.metrics]
        if not runs:
            continue
        if all_diverged(runs):
            dead.append(float(xv))
            continue
        vals = [run_stat(r, metric, stat) for r in runs]
        xs.append(float(xv))
        means.append(np.mean(vals))
        halves.append(half_band(vals, band))
        ns.append(len(vals))
        for r, v in zip(runs, vals):
            if r.status == "diverged":
                div_x.append(float(xv))
                div_y.append(v)
    color, style = value_style(lv, j)
    if dead:  # x in data, y in axes units: on the foot whatever the limits; a step per line
        ax.plot(dead, [0.025 + 0.04 * j] * len(dead), color=color,
                transform=ax.get_xaxis_transform(), **DIVERGED_MARK)
        marks["point"] = True
    if not xs:
        return
    order = np.argsort(xs)
    xs, means, halves = (np.array(a)[order] for a in (xs, means, halves))
    n = min(ns)
    label = (f"{short(lines)}={lv} " if lines else "") + (f"(n={n})" if n == max(ns)
                                                        else f"(n={n}-{max(ns)})")
    ax.plot(xs, means, color=color, linestyle=style, marker="o", markersize=4, label=label)
    ax.fill_between(xs, *band_edges(means, halves, metric), color=color, alpha=0.2,
                    linewidth=0)
    if div_x:
        ax.plot(div_x, div_y, marker="x", color=color, linestyle="none", markersize=8)
        marks["run"] = True


def _x_axis(ax, xs_all: list[str]) -> None:
    """A log x axis where the swept values (all positive) span a decade or more,
    with a tick at each value in its one spelling while there are at most 10."""
    values = [float(v) for v in xs_all]
    positive = [v for v in values if v > 0]
    if len(positive) == len(values) and max(values) / min(values) >= 10:
        ax.set_xscale("log")
        if len(values) <= 10:  # a label at each value (2, 4, ..., 128), not 10^0, 10^1, 10^2
            ticks = [v for v in xs_all]  # each value's one spelling, however long
            if max(map(len, ticks)) > 10:  # upright, they would overlap their neighbours
                ax.set_xticks(values, ticks, rotation=90, fontsize=8)
            else:
                ax.set_xticks(values, ticks, rotation=30 if sum(map(len, ticks)) > 36 else 0)
            ax.minorticks_off()


def bars_figure(data: SweepData, x: str, lines: str | None, metric: str, stat: str,
                band: str = "ci", ax=None, fig=None):
    """Final (or best) ``metric`` per value of a categorical key ``x``: bars of
    the mean over seeds with error bars (95% interval of the mean, or +-1 sd,
    cut to the metric's range), grouped by ``lines``; the number of seeds
    under each bar; a mark at the foot where every seed diverged."""
    import numpy as np

    categories = data.axis(x)
    line_values = data.axis(lines) if lines else [None]
    fig, ax, made = target(ax, fig, figsize=(max(6.4, 1.2 * len(categories) *
                                                  max(1, len(line_values)) ** 0.5 + 2), 4.2))
    width = 0.8 / len(line_values)
    marked = False  # a grid point where every seed diverged
    for j, lv in enumerate(line_values):
        means, halves, where, ns, colors = [], [], [], [], []
        line_color, _ = value_style(lv if lines else None, j)
        for i, cv in enumerate(categories):
            runs = [r for r in data.runs if r.labels[x] == cv
                    and (lv is None or r.labels[lines] == lv) and r.metrics]
            if not runs:
                continue
            pos = i + (j - (len(line_values) - 1) / 2) * width
            color = line_color if lines else value_style(cv, i)[0]
            if all_diverged(runs):  # no bar: a mark at the foot (x in data, y in axes units)
                ax.plot([pos], [0.025], color=color, transform=ax.get_xaxis_transform(),
                        **DIVERGED_MARK)
                marked = True
                continue
            vals = [run_stat(r, metric, stat) for r in runs]
            means.append(float(np.mean(vals)))
            halves.append(half_band(vals, band))
            where.append(pos)
            ns.append(len(vals))
            colors.append(color)
        if not means:
            continue
        low, high = band_edges(means, halves, metric)
        label = f"{short(lines)}={lv}" if lines else None
        ax.bar(where, means, width * 0.92, yerr=[np.array(means) - low, high - np.array(means)],
               color=colors, alpha=0.85, capsize=3, label=label, error_kw={"linewidth": 1})
        for pos, n in zip(where, ns):
            ax.text(pos, 0.01, f"n={n}", ha="center", va="bottom", fontsize=7, color="white")
    _label_bars(ax, data, x, categories, metric, stat, band, bool(lines), marked)
    if made:
        fig.tight_layout()
    return fig


def _label_bars(ax, data: SweepData, x: str, categories: list, metric: str, stat: str,
                band: str, legend: bool, marked: bool) -> None:
    """A bar chart's axes, legend (with the diverged mark's entry) and title."""
    if marked:
        ax.plot([], [], color="black", label=DIVERGED_LABEL, **DIVERGED_MARK)
    ax.set_xticks(range(len(categories)), categories)
    left, right = ax.get_xlim()  # room for every category, also one with only a mark
    ax.set_xlim(min(left, -0.5), max(right, len(categories) - 0.5))
    ax.set_xlabel(x)
    ax.set_ylabel(f"{stat} {metric_label(metric)}")
    if metric.endswith("acc"):
        ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3, axis="y")
    if legend or marked:
        ax.legend(fontsize=9)
    bars = "error bars = 95% interval of the mean" if band == "ci" else "error bars = +-1 sd"
    ax.set_title(f"{data.title}\n{stat} {metric_label(metric)}: mean over seeds, "
                 f"{bars}{data.progress_note()}", fontsize=9)
