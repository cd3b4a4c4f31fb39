"""Figures drawn from saved runs (never from live objects).

Headless (Agg), matplotlib's object API, every figure closed; PNGs carry no
timestamp or software metadata, so the same inputs give the same bytes.
"""

from __future__ import annotations

import io
import math
import textwrap
import threading
from dataclasses import dataclass, field
from pathlib import Path

from . import values as V
from .choices import FIGURE_FORMATS, METRIC_LABELS, PLOT_KINDS, PLOT_METRICS, PLOT_STATS
from .errors import BnexpError
from .store import (
    DIAGNOSTIC_COLUMNS,
    DIAGNOSTICS_FILE,
    METRICS_FILE,
    RUN_FILE,
    SWEEP_FILE,
    RunRecord,
    StoreError,
    atomic_write,
    check_user_output,
    open_sweep,
    read_csv,
    read_json,
    read_metrics,
    short_name,
)


class PlotError(BnexpError):
    """A plot request that cannot be met; one line saying why."""


# Okabe & Ito's colour-blind-safe palette.
PALETTE = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#F0E442",
           "#000000"]
DASHES = ["-", "--", "-.", ":"]
# The same value looks the same in every figure (BN is always solid blue, no
# norm dashed orange); other values take the palette in their grid order.
VALUE_STYLES = {
    "batch": (PALETTE[0], "-"), "none": (PALETTE[1], "--"), "layer": (PALETTE[2], "-."),
    "group": (PALETTE[3], ":"), "instance": (PALETTE[4], "-"),
    "before": (PALETTE[0], "-"), "after": (PALETTE[1], "--"),
    "relu": (PALETTE[0], "-"), "sigmoid": (PALETTE[1], "--"), "tanh": (PALETTE[2], "-."),
    "pytorch": (PALETTE[0], "-"), "book": (PALETTE[1], "--"),
    "true": (PALETTE[0], "-"), "false": (PALETTE[1], "--"),
}


def value_style(label: str | None, index: int) -> tuple[str, str]:
    """(colour, line style) of a swept value: fixed for the named values above,
    else by its position among its key's values."""
    if label in VALUE_STYLES:
        return VALUE_STYLES[label]
    return PALETTE[index % 7], DASHES[(index // 7) % len(DASHES)]


def _target(ax=None, fig=None, figsize=(6.4, 4.2)):
    """(figure, axes, made here): draw into ``ax``, or a new axes of ``fig``
    (a Figure or SubFigure), or a new figure."""
    if ax is not None:
        return ax.figure, ax, False
    if fig is not None:
        return fig, fig.add_subplot(), False
    plt = _pyplot()
    new, axes = plt.subplots(figsize=figsize)
    return new, axes, True


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def load_matplotlib() -> None:
    """Import matplotlib with the Agg backend, the one every figure draws with."""
    _pyplot()


def figure_bytes(fig, fmt: str = "png") -> bytes:
    """Render and close ``fig``, without metadata that changes between runs."""
    try:
        return _render(fig, fmt)
    finally:
        _pyplot().close(fig)


def _render(fig, fmt: str) -> bytes:
    plt = _pyplot()
    metadata = {"png": {"Software": None}, "svg": {"Date": None, "Creator": None},
                "pdf": {"CreationDate": None, "Producer": None, "Creator": None}}.get(fmt, {})
    buf = io.BytesIO()
    with plt.rc_context({"svg.hashsalt": "bnexp"}):  # stable SVG element ids
        fig.savefig(buf, format=fmt, metadata=metadata, dpi=100)
    return buf.getvalue()


def save_figure(fig, path: str | Path, fmt: str | None = None) -> Path:
    """Render ``fig`` to ``path`` atomically (format from ``fmt`` or the suffix)."""
    path = Path(path)
    atomic_write(path, figure_bytes(fig, fmt or path.suffix.lstrip(".") or "png"))
    return path


def curves_figure(rows: list[dict], info: dict, fig=None):
    """Accuracy (left) and loss (right) against epoch, train and test, of one run."""
    if fig is None:
        fig = _pyplot().figure(figsize=CURVES_SIZE)
    _curves_data(_curves_axes(fig), rows, info, [])
    return fig


CURVES_SIZE = (9, 3.6)


def _curves_axes(fig):
    """A run's curves figure without its data: both panels, labels and margins."""
    ax_acc, ax_loss = fig.subplots(1, 2)
    ax_acc.set(xlabel="epoch", ylabel="accuracy", ylim=(0, 1.02), title="accuracy")
    ax_loss.set(xlabel="epoch", ylabel="cross-entropy loss", title="loss")
    for ax in (ax_acc, ax_loss):
        ax.grid(alpha=0.3)
    # Fixed margins, not tight_layout: this figure is drawn once per run of every
    # sweep, and tight_layout renders it an extra time to measure it (40% of its cost).
    fig.subplots_adjust(left=0.075, right=0.985, bottom=0.14, top=0.83, wspace=0.3)
    return ax_acc, ax_loss


def _curves_data(axes, rows: list[dict], info: dict, added: list) -> None:
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
        added.extend(ax_acc.plot([], [], color=PALETTE[7], linestyle=":",
                                 label=f"diverged at epoch {at:.2f}"))
    added.append(ax_acc.legend(loc="lower right", fontsize=8))
    added.append(ax_loss.legend(loc="upper right", fontsize=8))
    ax_acc.figure.suptitle(f"{info.get('name', '')}  ({info.get('status', '?')})", fontsize=10)


_kept = threading.local()


def curves_png(rows: list[dict], info: dict) -> bytes:
    """A run's curves figure as PNG: the bytes of ``figure_bytes(curves_figure(rows,
    info))``, drawn into a figure kept by this thread. A sweep draws one per run, and
    building the panels and their ticks again each time was 40% of the cost."""
    if getattr(_kept, "curves", None) is None:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        _pyplot()  # Agg, and pyplot's rc defaults, as for a fresh figure
        fig = Figure(figsize=CURVES_SIZE)
        FigureCanvasAgg(fig)
        _kept.curves = _curves_axes(fig)
    axes, added = _kept.curves, []
    try:  # whatever happens, the kept figure is left without this run's artists
        _curves_data(axes, rows, info, added)
        for ax in axes:
            ax.relim()  # the limits of this run's lines only, not of the last run's
            ax.autoscale_view()
        return _render(axes[0].figure, "png")
    finally:
        for artist in added:
            artist.remove()


# --- sweeps ------------------------------------------------------------------------



@dataclass
class SweepData:
    path: Path
    axes: list[tuple[str, list[str]]]  # key -> value labels, in grid order
    runs: list[RunRecord]
    zipped: tuple[str, ...] = ()  # keys of the sweep's zip section (one dimension)
    counts: dict[str, int] = field(default_factory=dict)  # statuses of every run of the sweep
    selection: list[str] = field(default_factory=list)  # the --filter choices, as key=value

    @property
    def title(self) -> str:
        """The sweep's name, with the values the figure is restricted to."""
        chosen = f" [{', '.join(self.selection)}]" if self.selection else ""
        return f"{self.path.name}{chosen}"

    def progress_note(self) -> str:
        """``; 8 of 96 runs finished (2 running, 86 pending)`` for an incomplete sweep."""
        total = sum(self.counts.values())
        done = self.counts.get("completed", 0) + self.counts.get("diverged", 0)
        if done == total:
            return ""
        rest = ", ".join(f"{n} {st}" for st, n in self.counts.items()
                         if st not in ("completed", "diverged"))
        return f"; {done} of {total} runs finished ({rest})"

    def axis(self, key: str) -> list[str]:
        for k, values in self.axes:
            if k == key:
                return values
        swept = ", ".join(k for k, _ in self.axes) or "none"
        raise PlotError(f"{key}: not a swept key of {self.path} (swept: {swept})")

    def numeric(self, key: str) -> bool:
        try:
            [float(v) for v in self.axis(key)]
        except ValueError:
            return False
        return True


def load_sweep(path: str | Path, filters: list[str] = ()) -> SweepData:
    """The runs of a sweep folder that have metrics, through ``--filter key=value``
    (one value exactly, in any spelling: ``train.lr=1e-3`` names 0.001)."""
    try:
        folder = open_sweep(path)
    except StoreError as exc:
        raise PlotError(str(exc)) from None
    axes = [(k, [V.label(v) for v in vals]) for k, vals in folder.axes]
    data = SweepData(Path(path), axes, list(folder.runs), folder.zipped, folder.counts())
    for text in filters:
        key, sep, value = text.partition("=")
        if not sep:
            raise PlotError(f"--filter {text}: expected key=value")
        if key == "seed":
            seed = V.from_text(value)
            if isinstance(seed, bool) or not isinstance(seed, int):
                raise PlotError(f"--filter {text}: seed {value} is not an integer")
            data.runs = [r for r in data.runs if r.seed == seed]
            data.selection.append(f"seed={seed}")
            continue
        try:
            data.axis(key)  # one line naming the swept keys where KEY is not one
        except PlotError as exc:
            raise PlotError(f"--filter {text}: {exc}") from None
        hits = V.match(folder.axis(key), value)
        if not hits:
            raise PlotError(f"--filter {text}: {key} has no value {value} "
                            f"(values: {V.listing(folder.axis(key))})")
        want = V.label(hits[0])
        data.selection.append(f"{_short(key)}={want}")
        data.runs = [r for r in data.runs if r.labels[key] == want]
        data.axes = [(k, [want] if k == key else v) for k, v in data.axes]
    total = len(data.runs)
    data.runs = [r for r in data.runs if r.status not in ("pending",)]
    # Values no selected run has are gone (a filter on one zipped key fixes the others).
    data.axes = [(k, [v for v in vals if any(r.labels[k] == v for r in data.runs)])
                 for k, vals in data.axes]
    if not data.runs:
        raise PlotError(f"{path}: no runs to plot" + (" after --filter" if filters else
                        f" yet ({total} pending)" if total else ""))
    return data


def _short(key: str) -> str:
    return key.rsplit(".", 1)[-1]


BANDS = {"ci": "band = 95% interval of the mean", "sd": "band = +-1 sd"}


def _band(values: list[float], band: str) -> float:
    """Half-width of the band around the mean of ``values``: the 95% interval
    of the mean (Student t), or one sample sd; 0 for a single value."""
    from .stats import mean_interval, mean_sd

    sd = mean_sd(values)[1] if len(values) >= 2 else 0.0
    if band == "sd" or sd == 0.0:
        return sd
    iv = mean_interval(values)
    return iv.hi - iv.estimate


def _series(runs: list[RunRecord], metric: str, band: str = "ci"):
    """Mean and band half-width over runs of ``metric`` per epoch (each epoch
    over the runs that reached it), and the (epoch, value) where diverged runs
    stopped."""
    import numpy as np

    by_epoch: dict[float, list[float]] = {}
    stops = []
    for r in runs:
        for row in r.metrics:
            by_epoch.setdefault(row["epoch"], []).append(row[metric])
        if r.status == "diverged" and r.metrics:
            last = r.metrics[-1]
            at = (r.info.get("diverged_at") or {}).get("epoch", last["epoch"])
            stops.append((at, last[metric]))
    epochs = sorted(by_epoch)
    mean = np.array([np.mean(by_epoch[e]) for e in epochs])
    half = np.array([_band(by_epoch[e], band) for e in epochs])
    return np.array(epochs), mean, half, stops


def grid_figure(data: SweepData, panels: str, lines: str | None, metric: str,
                band: str = "ci", fig=None):
    """Small multiples: one panel per value of ``panels``, one line per value
    of ``lines``; ``metric`` against epoch, mean over seeds with a band (the
    95% interval of the mean, or +-1 sd). Drawn into ``fig`` (a Figure or
    SubFigure) when given."""
    plt = _pyplot()
    panel_values = data.axis(panels) if panels else [None]
    line_values = data.axis(lines) if lines else [None]
    ncols = math.ceil(math.sqrt(len(panel_values)))
    nrows = math.ceil(len(panel_values) / ncols)
    made = fig is None
    if made:
        fig = plt.figure(figsize=(2.6 * ncols + 1.2, 2.2 * nrows + 0.8))
    axes = fig.subplots(nrows, ncols, sharex=True, sharey=True, squeeze=False)
    handles = {}
    for i, pv in enumerate(panel_values):
        ax = axes[i // ncols][i % ncols]
        for j, lv in enumerate(line_values):
            runs = [r for r in data.runs if (pv is None or r.labels[panels] == pv)
                    and (lv is None or r.labels[lines] == lv)]
            runs = [r for r in runs if r.metrics]
            if not runs:
                continue
            epochs, mean, half, stops = _series(runs, metric, band)
            color, style = value_style(lv, j)
            (h,) = ax.plot(epochs, mean, color=color, linestyle=style, linewidth=1.5)
            if len(runs) > 1:
                ax.fill_between(epochs, mean - half, mean + half, color=color, alpha=0.2,
                                linewidth=0)
            for at, value in stops:
                ax.plot([at], [value], marker="x", color=color, markersize=7, linestyle="none")
            handles.setdefault(lv, (h, f"{_short(lines)}={lv}" if lines else f"n={len(runs)}"))
        if panels:
            ax.set_title(f"{_short(panels)}={pv}", fontsize=9)
        ax.grid(alpha=0.3)
        if metric.endswith("acc"):
            ax.set_ylim(0, 1.02)
    if not handles:
        if made:
            plt.close(fig)
        raise PlotError(f"{data.path}: no run has metrics yet to draw")
    for k in range(len(panel_values), nrows * ncols):
        axes[k // ncols][k % ncols].set_visible(False)
    for ax in axes[-1]:
        ax.set_xlabel("epoch")
    for row in axes:
        row[0].set_ylabel(METRIC_LABELS.get(metric, metric))
    seeds = len({r.seed for r in data.runs})
    if any(r.status == "diverged" for r in data.runs):
        (hx,) = axes[0][0].plot([], [], marker="x", color="black", linestyle="none")
        handles["__diverged"] = (hx, "x: run diverged (stopped)")
    fig.legend([h for h, _ in handles.values()], [lab for _, lab in handles.values()],
               loc="lower center", ncol=min(len(handles), 4), frameon=False, fontsize=9)
    title = (f"{data.title}: {METRIC_LABELS.get(metric, metric)} per epoch "
             f"(mean over {seeds} seed{'s' if seeds > 1 else ''}"
             f"{', ' + BANDS[band] if seeds > 1 else ''}{data.progress_note()})")
    # Wrapped to the figure's width (about 12 characters of 10 pt per inch), so
    # that a grid of few panels keeps its whole title.
    width_in = fig.bbox.width / fig.dpi  # a Figure or a SubFigure
    lines = textwrap.wrap(title, width=max(40, int(width_in * 12)))
    fig.suptitle("\n".join(lines), fontsize=10)
    if made:  # tight_layout leaves room for the (wrapped) title itself
        fig.tight_layout(rect=(0, 0.06, 1, 0.97))
    return fig


def final_figure(data: SweepData, x: str, lines: str | None, metric: str, stat: str,
                 band: str = "ci", ax=None, fig=None):
    """Final (or best) ``metric`` against swept key ``x``: mean over seeds with
    a band (95% interval of the mean, or +-1 sd), one line per value of
    ``lines``; bars with error bars when ``x`` is a category (a norm, say)."""
    import numpy as np

    if not data.numeric(x):
        return bars_figure(data, x, lines, metric, stat, band, ax, fig)
    xs_all = data.axis(x)
    line_values = data.axis(lines) if lines else [None]
    fig, ax, made = _target(ax, fig)
    for j, lv in enumerate(line_values):
        xs, means, halves, ns, div_x, div_y = [], [], [], [], [], []
        for xv in xs_all:
            runs = [r for r in data.runs if r.labels[x] == xv
                    and (lv is None or r.labels[lines] == lv) and r.metrics]
            if not runs:
                continue
            vals = [_stat(r, metric, stat) for r in runs]
            xs.append(float(xv))
            means.append(np.mean(vals))
            halves.append(_band(vals, band))
            ns.append(len(vals))
            for r, v in zip(runs, vals):
                if r.status == "diverged":
                    div_x.append(float(xv))
                    div_y.append(v)
        if not xs:
            continue
        order = np.argsort(xs)
        xs, means, halves = (np.array(a)[order] for a in (xs, means, halves))
        color, style = value_style(lv, j)
        n = min(ns)
        label = (f"{_short(lines)}={lv} " if lines else "") + (f"(n={n})" if n == max(ns)
                                                             else f"(n={n}-{max(ns)})")
        ax.plot(xs, means, color=color, linestyle=style, marker="o", markersize=4, label=label)
        ax.fill_between(xs, means - halves, means + halves, color=color, alpha=0.2, linewidth=0)
        if div_x:
            ax.plot(div_x, div_y, marker="x", color=color, linestyle="none", markersize=8)
    if any(r.status == "diverged" for r in data.runs):
        ax.plot([], [], marker="x", color="black", linestyle="none", label="diverged run")
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
    ax.set_xlabel(x)
    ax.set_ylabel(f"{stat} {METRIC_LABELS.get(metric, metric)}")
    if metric.endswith("acc"):
        ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=9)
    ax.set_title(f"{data.title}\n{stat} {METRIC_LABELS.get(metric, metric)}: mean over seeds, "
                 f"{BANDS[band]}{data.progress_note()}", fontsize=9)
    if made:
        fig.tight_layout()
    return fig


def bars_figure(data: SweepData, x: str, lines: str | None, metric: str, stat: str,
                band: str = "ci", ax=None, fig=None):
    """Final (or best) ``metric`` per value of a categorical key ``x``: bars of
    the mean over seeds with error bars (95% interval of the mean, or +-1 sd),
    grouped by ``lines``; the number of seeds under each bar."""
    import numpy as np

    categories = data.axis(x)
    line_values = data.axis(lines) if lines else [None]
    fig, ax, made = _target(ax, fig, figsize=(max(6.4, 1.2 * len(categories) *
                                                   max(1, len(line_values)) ** 0.5 + 2), 4.2))
    width = 0.8 / len(line_values)
    for j, lv in enumerate(line_values):
        means, halves, where, ns = [], [], [], []
        for i, cv in enumerate(categories):
            runs = [r for r in data.runs if r.labels[x] == cv
                    and (lv is None or r.labels[lines] == lv) and r.metrics]
            if not runs:
                continue
            vals = [_stat(r, metric, stat) for r in runs]
            means.append(float(np.mean(vals)))
            halves.append(_band(vals, band))
            where.append(i + (j - (len(line_values) - 1) / 2) * width)
            ns.append(len(vals))
        if not means:
            continue
        color, _ = value_style(lv if lines else None, j)
        if not lines:
            color = [value_style(cv, i)[0] for i, cv in enumerate(categories)][:len(means)]
        label = f"{_short(lines)}={lv}" if lines else None
        ax.bar(where, means, width * 0.92, yerr=halves, color=color, alpha=0.85,
               capsize=3, label=label, error_kw={"linewidth": 1})
        for pos, n in zip(where, ns):
            ax.text(pos, 0.01, f"n={n}", ha="center", va="bottom", fontsize=7, color="white")
    ax.set_xticks(range(len(categories)), categories)
    ax.set_xlabel(x)
    ax.set_ylabel(f"{stat} {METRIC_LABELS.get(metric, metric)}")
    if metric.endswith("acc"):
        ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3, axis="y")
    if lines:
        ax.legend(fontsize=9)
    bars = "error bars = 95% interval of the mean" if band == "ci" else "error bars = +-1 sd"
    ax.set_title(f"{data.title}\n{stat} {METRIC_LABELS.get(metric, metric)}: mean over seeds, "
                 f"{bars}{data.progress_note()}", fontsize=9)
    if made:
        fig.tight_layout()
    return fig


def _stat(run: RunRecord, metric: str, stat: str) -> float:
    vals = [row[metric] for row in run.metrics]
    if stat == "final":
        return vals[-1]
    return min(vals) if metric.endswith("loss") else max(vals)


def heatmap_figure(data: SweepData, x: str, y: str, metric: str, stat: str, ax=None, fig=None):
    """Mean final (or best) ``metric`` over two swept keys, values in the cells."""
    import numpy as np

    xv, yv = data.axis(x), data.axis(y)
    grid = np.full((len(yv), len(xv)), np.nan)
    for i, b in enumerate(yv):
        for j, a in enumerate(xv):
            vals = [_stat(r, metric, stat) for r in data.runs
                    if r.labels[x] == a and r.labels[y] == b and r.metrics]
            if vals:
                grid[i, j] = np.mean(vals)
    fig, ax, made = _target(ax, fig, (1.0 + 0.75 * len(xv) + 1.5, 1.0 + 0.5 * len(yv) + 1))
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
    ax.set_title(f"{data.title}\n{stat} {METRIC_LABELS.get(metric, metric)}: mean over "
                 f"seeds{data.progress_note()}", fontsize=9)
    if made:
        fig.tight_layout()
    return fig


def activations_figure(runs: list[tuple[str, Path]], layer: int | None, fig=None):
    """Ioffe & Szegedy 2015 Fig. 1 (b, c): the 15th/50th/85th percentiles over
    the batch of one unit's input to the activation in a hidden layer (the
    last by default), against training step; one panel per run."""
    plt = _pyplot()
    if not runs:
        raise PlotError("no runs to plot")
    tables = []
    for label, path in runs:
        f = path / DIAGNOSTICS_FILE
        if not f.is_file():
            raise PlotError(f"{path}: no diagnostics.csv (set eval.diagnostics_every > 0)")
        try:
            rows = read_csv(f, DIAGNOSTIC_COLUMNS)
        except StoreError as exc:
            raise PlotError(str(exc)) from None
        layers = sorted({r["layer"] for r in rows})
        pick = layer if layer is not None else (layers[-1] if layers else None)
        if pick not in layers:
            raise PlotError(f"--layer {layer}: {path} has hidden layers "
                            f"{', '.join(map(str, layers))}")
        tables.append((label, [r for r in rows if r["layer"] == pick], pick))
    made = fig is None
    if made:
        fig = plt.figure(figsize=(4.2 * len(tables), 3.4))
    axes = fig.subplots(1, len(tables), sharey=True, squeeze=False)
    for ax, (label, rows, pick) in zip(axes[0], tables):
        steps = [r["step"] for r in rows]
        for q, style in (("unit_p15", ":"), ("unit_p50", "-"), ("unit_p85", "--")):
            ax.plot(steps, [r[q] for r in rows], color=PALETTE[0], linestyle=style,
                    label=f"{q[-2:]}th percentile")
        ax.set_title(f"{label}\nhidden layer {pick}, unit 0", fontsize=9)
        ax.set_xlabel("training step")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("input to the activation")
    axes[0][0].legend(fontsize=8)
    if made:
        fig.tight_layout()
    return fig


def output_format(out: str | Path | None, fmt: str | None) -> str:
    """The file format: ``--format``, else ``--out``'s extension, else png; the
    two must agree when both are given."""
    ext = Path(out).suffix.lstrip(".").lower() if out else ""
    if ext and ext not in FIGURE_FORMATS:
        raise PlotError(f"--out {out}: unknown extension .{ext}, expected "
                        f"{', '.join('.' + f for f in FIGURE_FORMATS)}")
    if fmt and ext and fmt != ext:
        raise PlotError(f"--format {fmt} contradicts --out {out}; drop one of them")
    if fmt and fmt not in FIGURE_FORMATS:
        raise PlotError(f"--format: got {fmt!r}, expected one of {', '.join(FIGURE_FORMATS)}")
    return fmt or ext or "png"


def plot_path(path: str | Path, kind: str | None = None, *, out: str | Path | None = None,
              fmt: str | None = None, force: bool = False, **options) -> Path:
    """Draw the figure ``kind`` for a run or sweep folder into a file and return
    its path; ``options`` as ``figure``. Without ``out`` the file goes into the
    folder under a name that says what it shows (``default_name``): the folder's
    own figure (``grid.png``, a run's ``curves.png``: the plain name, no options)
    is replaced only where it would not change or with ``force``, so a filtered
    or otherwise derived plot never overwrites it."""
    path = Path(path)
    fmt = output_format(out, fmt)
    if out:
        check_user_output(Path(out))
    fig, kind, (own_kind, selection) = _figure(path, kind, **options)
    if out:
        return save_figure(fig, Path(out), fmt)
    options.pop("filters", None)
    target = path / default_name(kind, fmt, selection, **options)
    if force or target.name != f"{kind}.{fmt}" or not target.is_file() or kind != own_kind:
        return save_figure(fig, target, fmt)
    data = figure_bytes(fig, fmt)
    try:
        unchanged = target.read_bytes() == data
    except OSError:
        unchanged = False
    if not unchanged:
        raise PlotError(f"{target} is the folder's own figure and would change; pass "
                        "--force to redraw it, or --out FILE to draw elsewhere")
    return target


OPTION_DEFAULTS = {"panels": None, "lines": None, "x": None, "y": None, "metric": None,
                   "stat": "final", "band": "ci", "layer": None}


def default_name(kind: str, fmt: str, filters: list[str] = (), **options) -> str:
    """A figure's file name in its folder: the kind, then every option that
    differs from its default and every filter, with values in their one
    spelling (``grid.png``; ``grid_metric=test_acc_lr=0.001.png``)."""
    parts = [kind]
    for key, default in OPTION_DEFAULTS.items():
        value = options.get(key, default)
        if value is not None and value != default:
            parts.append(f"{key}={_short(str(value))}")
    for text in filters:
        key, _, value = text.partition("=")
        parts.append(f"{_short(key)}={value}")
    stem = "_".join(parts).replace("/", "_").replace("\\", "_").replace("\0", "_")
    return f"{short_name(stem, 200)}.{fmt}"


def figure(path: str | Path, kind: str | None = None, *, ax=None, fig=None, **options):
    """The figure ``kind`` for a run or sweep folder, as a matplotlib Figure.

    ``ax``: draw a one-panel kind (final, heatmap, curves of a sweep) into
    these axes; ``fig``: draw any kind into this Figure or SubFigure (grid,
    activations and a run's curves have several panels). Options: panels,
    lines, x, y, metric, stat (final|best), filters (["key=value"]), layer,
    band (ci|sd). Defaults: a run -> its curves; a sweep -> chosen from its
    axes (the book's grid when it sweeps ``init.weight_scale`` and ``model.norm``).
    """
    return _figure(Path(path), kind, ax=ax, fig=fig, **options)[0]


def _figure(path: Path, kind: str | None, *, ax=None, fig=None, panels: str | None = None,
            lines: str | None = None, x: str | None = None, y: str | None = None,
            metric: str | None = None, stat: str = "final", filters: list[str] = (),
            layer: int | None = None, band: str = "ci"):
    """(figure, kind drawn, (the folder's own kind, the --filter choices as
    ``key=value`` in each value's one spelling))."""
    if metric is not None and metric not in PLOT_METRICS:
        raise PlotError(f"--metric: got {metric!r}, expected one of {', '.join(PLOT_METRICS)}")
    if stat not in PLOT_STATS:
        raise PlotError(f"--stat: got {stat!r}, expected {' or '.join(PLOT_STATS)}")
    if band not in BANDS:
        raise PlotError(f"--band: got {band!r}, expected {' or '.join(BANDS)}")
    if kind is not None and kind not in PLOT_KINDS:
        raise PlotError(f"--kind: got {kind!r}, expected one of {', '.join(PLOT_KINDS)}")
    if (path / METRICS_FILE).is_file() and not (path / SWEEP_FILE).is_file():
        return (_run_figure(path, kind or "curves", layer, ax, fig), kind or "curves",
                ("curves", []))
    if not path.is_dir():
        raise PlotError(f"{path}: no such folder")
    if not (path / SWEEP_FILE).is_file():
        raise PlotError(f"{path}: neither a run folder (metrics.csv) nor a sweep folder "
                        "(sweep.yaml)")
    data = load_sweep(path, list(filters))
    for key in (panels, lines, x, y):
        if key is not None:
            data.axis(key)  # a key that is not swept is an error, before anything else
    # The dimensions that vary; zipped keys vary together, the first stands for them.
    keys = [k for k, vals in data.axes if len(vals) > 1
            and (k not in data.zipped or k == data.zipped[0])]
    default = _default_kind(data, keys)  # what the sweep itself draws, unfiltered
    kind = kind or default
    own = (default, list(data.selection))
    several = kind in ("grid", "activations")
    if several and ax is not None:
        raise PlotError(f"--kind {kind} draws several panels: pass fig= (a Figure or SubFigure), "
                        "not ax=")
    if kind == "grid":
        if panels is None and len(keys) == 1 and lines in (None, keys[0]):
            lines = keys[0]  # one swept key: one panel, a line per value
        else:
            panels = panels or _pick_panels(data, keys, lines)
        if lines is None:
            lines = _pick_lines(data, keys, panels)
        if lines == panels:
            raise PlotError("--lines and --panels must be different keys")
        _check_others(data, [panels, lines])
        return grid_figure(data, panels, lines, metric or "train_acc", band, fig), kind, own
    if kind == "final":
        x = x or _pick_x(data, keys)
        if lines is None:
            lines = _pick_lines(data, keys, x)
        _check_others(data, [x, lines])
        return final_figure(data, x, lines, metric or "test_acc", stat, band, ax, fig), kind, own
    if kind == "heatmap":
        if not (x and y):
            if len(keys) < 2:
                raise PlotError("--kind heatmap needs two swept keys (--x KEY --y KEY)")
            x, y = x or keys[0], y or next(k for k in keys if k != (x or keys[0]))
        _check_others(data, [x, y])
        return heatmap_figure(data, x, y, metric or "test_acc", stat, ax, fig), kind, own
    if kind == "activations":
        runs = [(r.run_id, r.path) for r in data.runs if r.seed == min(q.seed for q in data.runs)]
        return activations_figure(runs, layer, fig), kind, own
    if kind == "landscape":
        lines = lines or (keys[0] if keys else None)
        _check_others(data, [lines])
        return landscape_figure(data, lines, ax, fig), kind, own
    return sweep_curves_figure(data, metric or "test_acc", band, ax, fig), kind, own


def _check_others(data: SweepData, used: list[str | None]) -> None:
    """A figure shows at most the keys it is given; any other key that still
    varies would be silently averaged over, so it must be fixed by --filter."""
    tied = set(data.zipped) if any(u in data.zipped for u in used) else set()
    others = [k for k, vals in data.axes if len(vals) > 1 and k not in used and k not in tied]
    if others:
        k = others[0]
        raise PlotError(f"{data.path.name} also varies {', '.join(others)}; pick one value with "
                        f"--filter {k}={data.axis(k)[0]} (or show it with --panels/--lines)")


def _default_kind(data: SweepData, keys: list[str]) -> str:
    """Runs only: their curves. The book's weight-scale sweep: its grid. A
    numeric key with several values: the final metric against it. Else a grid."""
    if not keys:
        return "curves"
    if "init.weight_scale" in keys and len(keys) == 2:
        return "grid"
    if len(keys) <= 2 and any(data.numeric(k) and len(data.axis(k)) >= 4 for k in keys):
        return "final"
    return "grid"


def _pick_panels(data: SweepData, keys: list[str], lines: str | None) -> str:
    if "init.weight_scale" in keys and lines != "init.weight_scale":
        return "init.weight_scale"  # the book's Figure 6-19 layout
    rest = [k for k in keys if k != lines] or [k for k, _ in data.axes]
    return max(rest, key=lambda k: len(data.axis(k)))


def _pick_lines(data: SweepData, keys: list[str], other: str | None) -> str | None:
    """The varying key with the fewest values, other than ``other``."""
    rest = [k for k in keys if k != other]
    return min(rest, key=lambda k: len(data.axis(k))) if rest else None


def _pick_x(data: SweepData, keys: list[str]) -> str:
    numeric = [k for k in keys if data.numeric(k) and len(data.axis(k)) > 1]
    if not numeric:
        raise PlotError("--kind final needs a numeric swept key (--x KEY)")
    return max(numeric, key=lambda k: len(data.axis(k)))


MAX_LEGEND = 12


def landscape_figure(data: SweepData, lines: str | None, ax=None, fig=None):
    """Santurkar et al.'s Figure 4a: per value of ``lines``, the band between
    the smallest and the largest loss found along the gradient at each probed
    step (landscape.csv; means over seeds), over training."""
    fig, ax, made = _target(ax, fig)
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
                        label=f"{_short(lines)}={label}" if lines else label)
        drawn += 1
    if not drawn:
        raise PlotError(f"{data.path}: no landscape.csv; run with eval.landscape_every > 0")
    ax.set(xlabel="training step", ylabel="loss along the gradient (min to max)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title(f"{data.title}\nloss at step sizes 0.25-4 x lr along the gradient: range, "
                 f"mean over seeds{data.progress_note()}", fontsize=9)
    if made:
        fig.tight_layout()
    return fig


def sweep_curves_figure(data: SweepData, metric: str = "test_acc", band: str = "ci",
                        ax=None, fig=None):
    """``metric`` against epoch, one line per grid point (the mean over its
    seeds, with a band); labelled while there are at most MAX_LEGEND points."""
    fig, ax, made = _target(ax, fig)
    keys = [k for k, vals in data.axes if len(vals) > 1]
    groups: dict[tuple, list[RunRecord]] = {}
    for r in data.runs:
        if r.metrics:
            groups.setdefault(tuple(r.labels[k] for k in keys), []).append(r)
    for j, (point, runs) in enumerate(groups.items()):
        epochs, mean, half, stops = _series(runs, metric, band)
        color, style = value_style(point[0] if len(point) == 1 else None, j)
        label = ", ".join(f"{_short(k)}={v}" for k, v in zip(keys, point)) or data.title
        ax.plot(epochs, mean, color=color, linestyle=style, label=label)
        if len(runs) > 1:
            ax.fill_between(epochs, mean - half, mean + half, color=color, alpha=0.15,
                            linewidth=0)
        for at, value in stops:
            ax.plot([at], [value], marker="x", color=color, linestyle="none")
    ax.set(xlabel="epoch", ylabel=METRIC_LABELS.get(metric, metric))
    if metric.endswith("acc"):
        ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    note = ""
    if 0 < len(groups) <= MAX_LEGEND:
        ax.legend(fontsize=7)
    elif groups:
        note = f"; {len(groups)} grid points, unlabelled: --filter to pick some"
    ax.set_title(f"{data.title}\n{METRIC_LABELS.get(metric, metric)} per grid point: mean over "
                 f"seeds, {BANDS[band]}{note}{data.progress_note()}", fontsize=9)
    if made:
        fig.tight_layout()
    return fig


def _run_figure(path: Path, kind: str, layer: int | None, ax=None, fig=None):
    if kind == "curves":
        if ax is not None:
            raise PlotError("a run's curves have two panels: pass fig= (a Figure or SubFigure), "
                            "not ax=")
        try:
            rows = read_metrics(path)
        except StoreError as exc:
            raise PlotError(str(exc)) from None
        info = read_json(path / RUN_FILE) or {"name": path.name}
        return curves_figure(rows, info, fig)
    if kind == "activations":
        return activations_figure([(path.name, path)], layer, fig)
    raise PlotError(f"--kind {kind}: needs a sweep folder; {path} is a single run "
                    "(use curves or activations)")
