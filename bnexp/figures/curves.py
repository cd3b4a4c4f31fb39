"""Curves against epoch: a run's accuracy and loss (train and test), and a
sweep's metric per grid point (the mean over its seeds, with a band)."""

from __future__ import annotations

import threading

from ..store import RunRecord
from .common import pyplot, reach_whole_epoch, render, target, whole_ticks
from .runs import SweepData, band_edges, series
from .style import BANDS, PALETTE, metric_label, settings_caption, short, value_style

CURVES_SIZE = (9, 3.6)
MAX_LEGEND = 12


def curves_figure(rows: list[dict], info: dict, fig=None, *, config: dict | None = None):
    """Accuracy (left) and loss (right) against epoch, train and test, of one
    run; its title names the run, its status and its settings from ``config``
    (the run's config.yaml as a mapping: norm, lr, batch size)."""
    if fig is None:
        fig = pyplot().figure(figsize=CURVES_SIZE)
    _curves_data(_curves_axes(fig), rows, info, [], config or {})
    return fig


def _curves_axes(fig):
    """A run's curves figure without its data: both panels, labels and margins."""
    ax_acc, ax_loss = fig.subplots(1, 2)
    ax_acc.set(xlabel="epoch", ylabel="accuracy", ylim=(0, 1.02), title="accuracy")
    ax_loss.set(xlabel="epoch", ylabel="cross-entropy loss", title="loss")
    for ax in (ax_acc, ax_loss):
        ax.grid(alpha=0.3)
        whole_ticks(ax)
    # Fixed margins, not tight_layout: this figure is drawn once per run of every
    # sweep, and tight_layout renders it an extra time to measure it (40% of its cost).
    fig.subplots_adjust(left=0.075, right=0.985, bottom=0.14, top=0.83, wspace=0.3)
    return ax_acc, ax_loss


def _curves_data(axes, rows: list[dict], info: dict, added: list, config: dict) -> None:
    """Draw one run into ``_curves_axes``'s panels, appending each artist it
    adds to ``added`` as it goes (so that a failure midway can take them away)."""
    ax_acc, ax_loss = axes
    epochs = [r["epoch"] for r in rows]
    for split, color in (("train", PALETTE[0]), ("test", PALETTE[1])):
        added.extend(ax_acc.plot(epochs, [r[f"{split}_acc"] for r in rows], color=color,
                                 marker="o", markersize=3, label=f"{split} (eval mode)"))
        added.extend(ax_loss.plot(epochs, [r[f"{split}_loss"] for r in rows], color=color,
                                  marker="o", markersize=3, label=split))
    if info.get("status") == "diverged" and info.get("diverged_at"):
        at = info["diverged_at"]["epoch"]
        for ax in (ax_acc, ax_loss):
            added.append(ax.axvline(at, color=PALETTE[7], linestyle=":", linewidth=1))
            added.append(reach_whole_epoch(ax, at))
        added.extend(ax_acc.plot([], [], color=PALETTE[7], linestyle=":",
                                 label=f"diverged at epoch {at:.2f}"))
    added.append(ax_acc.legend(loc="lower right", fontsize=8))
    added.append(ax_loss.legend(loc="upper right", fontsize=8))
    ax_acc.figure.suptitle(run_title(info, config), fontsize=10)


def run_title(info: dict, config: dict) -> str:
    """``lr=0.1,norm=batch,seed=0 (completed): norm=batch, lr=0.1, batch_size=50``:
    the run's name and status (run.json), then its settings (config.yaml)."""
    head = " ".join(p for p in (info.get("name") or "", f"({info.get('status', '?')})") if p)
    settings = settings_caption(config)
    return f"{head}: {settings}" if settings else head


_kept = threading.local()


def curves_png(rows: list[dict], info: dict, config: dict | None = None) -> bytes:
    """A run's curves figure as PNG: the bytes of ``figure_bytes(curves_figure(rows,
    info, config=config))``, drawn into a figure kept by this thread. A sweep draws
    one per run, and building the panels and their ticks again each time was 40%
    of the cost."""
    if getattr(_kept, "curves", None) is None:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        pyplot()  # Agg, and pyplot's rc defaults, as for a fresh figure
        fig = Figure(figsize=CURVES_SIZE)
        FigureCanvasAgg(fig)
        _kept.curves = _curves_axes(fig)
    axes, added = _kept.curves, []
    try:  # whatever happens, the kept figure is left without this run's artists
        _curves_data(axes, rows, info, added, config or {})
        for ax in axes:
            ax.relim()  # the limits of this run's lines only, not of the last run's
            ax.autoscale_view()
        return render(axes[0].figure, "png")
    finally:
        for artist in added:
            artist.remove()


def sweep_curves_figure(data: SweepData, metric: str = "test_acc", band: str = "ci",
                        ax=None, fig=None):
    """``metric`` against epoch, one line per grid point (the mean over its
    seeds, with a band cut to the metric's range); labelled while there are at
    most MAX_LEGEND points. The title states the settings no grid point varies."""
    fig, ax, made = target(ax, fig)
    keys = [k for k, vals in data.axes if len(vals) > 1]
    groups: dict[tuple, list[RunRecord]] = {}
    for r in data.runs:
        if r.metrics:
            groups.setdefault(tuple(r.labels[k] for k in keys), []).append(r)
    for j, (point, runs) in enumerate(groups.items()):
        epochs, mean, half, stops = series(runs, metric, band)
        color, style = value_style(point[0] if len(point) == 1 else None, j)
        label = ", ".join(f"{short(k)}={v}" for k, v in zip(keys, point)) or data.title
        ax.plot(epochs, mean, color=color, linestyle=style, label=label)
        if len(runs) > 1:
            ax.fill_between(epochs, *band_edges(mean, half, metric), color=color, alpha=0.15,
                            linewidth=0)
        for at, value in stops:
            ax.plot([at], [value], marker="x", color=color, linestyle="none")
            reach_whole_epoch(ax, at)
    ax.set(xlabel="epoch", ylabel=metric_label(metric))
    if metric.endswith("acc"):
        ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    whole_ticks(ax)
    note = ""
    if 0 < len(groups) <= MAX_LEGEND:
        ax.legend(fontsize=7)
    elif groups:
        note = f"; {len(groups)} grid points, unlabelled: --filter to pick some"
    settings = settings_caption(data.config, *_swept_settings(data))
    ax.set_title(f"{data.title}{': ' + settings if settings else ''}\n"
                 f"{metric_label(metric)} per grid point: mean over "
                 f"seeds, {BANDS[band]}{note}{data.progress_note()}", fontsize=9)
    if made:
        fig.tight_layout()
    return fig


def _swept_settings(data: SweepData) -> tuple[tuple[str, ...], dict[str, str]]:
    """(skip, given) for ``settings_caption`` of a sweep's title: a swept key
    that varies is in the legend and one chosen by a filter in the title
    already; one with a single value states it."""
    chosen = {text.partition("=")[0] for text in data.selection}
    skip = tuple(k for k, vals in data.axes if len(vals) > 1 or short(k) in chosen)
    return skip, {k: vals[0] for k, vals in data.axes if len(vals) == 1}
