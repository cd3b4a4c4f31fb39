"""Figures drawn from saved runs (never from live objects).

Headless (Agg), matplotlib's object API, every figure closed; PNGs carry no
timestamp or software metadata, so the same inputs give the same bytes.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

from .choices import PLOT_KINDS, PLOT_METRICS, PLOT_STATS
from .rundir import atomic_write, read_csv, read_json

# Okabe & Ito's colour-blind-safe palette.
PALETTE = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#F0E442",
           "#000000"]


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def figure_bytes(fig, fmt: str = "png") -> bytes:
    """Render and close ``fig``, without metadata that changes between runs."""
    plt = _pyplot()
    metadata = {"png": {"Software": None}, "svg": {"Date": None, "Creator": None},
                "pdf": {"CreationDate": None, "Producer": None, "Creator": None}}.get(fmt, {})
    buf = io.BytesIO()
    try:
        with plt.rc_context({"svg.hashsalt": "bnexp"}):  # stable SVG element ids
            fig.savefig(buf, format=fmt, metadata=metadata, dpi=100)
    finally:
        plt.close(fig)
    return buf.getvalue()


def save_figure(fig, path: str | Path, fmt: str | None = None) -> Path:
    """Render ``fig`` to ``path`` atomically (format from ``fmt`` or the suffix)."""
    path = Path(path)
    atomic_write(path, figure_bytes(fig, fmt or path.suffix.lstrip(".") or "png"))
    return path


def curves_figure(rows: list[dict], info: dict):
    """Accuracy (left) and loss (right) against epoch, train and test, of one run."""
    plt = _pyplot()
    epochs = [r["epoch"] for r in rows]
    fig, (ax_acc, ax_loss) = plt.subplots(1, 2, figsize=(9, 3.6))
    for split, color in (("train", PALETTE[0]), ("test", PALETTE[1])):
        ax_acc.plot(epochs, [r[f"{split}_acc"] for r in rows], color=color, marker="o",
                    markersize=3, label=f"{split} (eval mode)")
        ax_loss.plot(epochs, [r[f"{split}_loss"] for r in rows], color=color, marker="o",
                     markersize=3, label=split)
    if info.get("status") == "diverged" and info.get("diverged_at"):
        at = info["diverged_at"]["epoch"]
        for ax in (ax_acc, ax_loss):
            ax.axvline(at, color=PALETTE[7], linestyle=":", linewidth=1)
        ax_acc.plot([], [], color=PALETTE[7], linestyle=":", label=f"diverged at epoch {at:.2f}")
    ax_acc.set(xlabel="epoch", ylabel="accuracy", ylim=(0, 1.02), title="accuracy")
    ax_loss.set(xlabel="epoch", ylabel="cross-entropy loss", title="loss")
    ax_acc.legend(loc="lower right", fontsize=8)
    ax_loss.legend(loc="upper right", fontsize=8)
    for ax in (ax_acc, ax_loss):
        ax.grid(alpha=0.3)
    fig.suptitle(f"{info.get('name', '')}  ({info.get('status', '?')})", fontsize=10)
    # Fixed margins, not tight_layout: this figure is drawn once per run of every
    # sweep, and tight_layout renders it an extra time to measure it (40% of its cost).
    fig.subplots_adjust(left=0.075, right=0.985, bottom=0.14, top=0.83, wspace=0.3)
    return fig


def plot_run_curves(run_dir: str | Path, out: str | Path, fmt: str | None = None) -> Path:
    """Redraw a run's curves from its saved metrics.csv and run.json."""
    run_dir = Path(run_dir)
    rows = read_csv(run_dir / "metrics.csv")
    info = read_json(run_dir / "run.json") or {"name": run_dir.name}
    return save_figure(curves_figure(rows, info), out, fmt)


# --- sweeps ------------------------------------------------------------------------

METRIC_LABELS = {"train_acc": "train accuracy", "test_acc": "test accuracy",
                 "train_loss": "train loss (cross-entropy)", "test_loss": "test loss (cross-entropy)"}


class PlotError(Exception):
    """A plot request that cannot be met; one line saying why."""


@dataclass
class RunData:
    run_id: str
    path: Path
    values: dict[str, str]  # swept key -> formatted value
    seed: int
    info: dict
    _metrics: list[dict] | None = None

    @property
    def status(self) -> str:
        return self.info.get("status", "missing")

    @property
    def metrics(self) -> list[dict]:
        if self._metrics is None:
            f = self.path / "metrics.csv"
            self._metrics = read_csv(f) if f.exists() else []
        return self._metrics


@dataclass
class SweepData:
    path: Path
    axes: list[tuple[str, list[str]]]  # key -> formatted values, in grid order
    runs: list[RunData]
    zipped: tuple[str, ...] = ()  # keys of the sweep's zip section (one dimension)

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


def _fmt(v) -> str:
    from .sweep import _fmt_value

    return _fmt_value(v)


def load_sweep(path: str | Path, filters: list[str] = ()) -> SweepData:
    import yaml

    path = Path(path)
    resolved = path / "sweep.yaml"
    if not resolved.is_file():
        raise PlotError(f"{path}: not a sweep folder (no sweep.yaml)")
    section = (yaml.safe_load(resolved.read_text()) or {}).get("sweep", {})
    grid = {**(section.get("grid") or {}), **(section.get("zip") or {})}
    axes = [(k, [_fmt(v) for v in vals]) for k, vals in grid.items()]
    keys = [k for k, _ in axes]
    summary = path / "summary.csv"
    rows = read_csv(summary) if summary.is_file() else []
    runs = [RunData(r["run_id"], path / r["run_id"], {k: _fmt(r[k]) for k in keys},
                    int(r["seed"]), read_json(path / r["run_id"] / "run.json") or {})
            for r in rows]
    data = SweepData(path, axes, runs, tuple(section.get("zip") or {}))
    for text in filters:
        key, sep, value = text.partition("=")
        if not sep:
            raise PlotError(f"--filter {text}: expected key=value")
        if key == "seed":
            data.runs = [r for r in data.runs if str(r.seed) == value]
            continue
        allowed = data.axis(key)
        want = _fmt(_yaml_scalar(value))
        if want not in allowed:
            raise PlotError(f"--filter {text}: {key} has no value {value} "
                            f"(values: {', '.join(allowed)})")
        data.runs = [r for r in data.runs if r.values[key] == want]
        data.axes = [(k, [want] if k == key else v) for k, v in data.axes]
    data.runs = [r for r in data.runs if r.status != "missing"]
    # Values no selected run has are gone (a filter on one zipped key fixes the others).
    data.axes = [(k, [v for v in vals if any(r.values[k] == v for r in data.runs)])
                 for k, vals in data.axes]
    if not data.runs:
        raise PlotError(f"{path}: no runs to plot" + (" after --filter" if filters else ""))
    return data


def _yaml_scalar(text: str):
    import yaml

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def _short(key: str) -> str:
    return key.rsplit(".", 1)[-1]


def _series(runs: list[RunData], metric: str):
    """Mean and sd over runs of ``metric`` per epoch (each epoch over the runs
    that reached it), and the (epoch, value) where diverged runs stopped."""
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
    sd = np.array([np.std(by_epoch[e], ddof=1) if len(by_epoch[e]) > 1 else 0.0 for e in epochs])
    return np.array(epochs), mean, sd, stops


def grid_figure(data: SweepData, panels: str, lines: str | None, metric: str):
    """Small multiples: one panel per value of ``panels``, one line per value
    of ``lines``; ``metric`` against epoch, mean over seeds with a +-1 sd band."""
    plt = _pyplot()
    import math

    panel_values = data.axis(panels) if panels else [None]
    line_values = data.axis(lines) if lines else [None]
    ncols = math.ceil(math.sqrt(len(panel_values)))
    nrows = math.ceil(len(panel_values) / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(2.6 * ncols + 1.2, 2.2 * nrows + 0.8),
                             sharex=True, sharey=True, squeeze=False)
    handles = {}
    for i, pv in enumerate(panel_values):
        ax = axes[i // ncols][i % ncols]
        for j, lv in enumerate(line_values):
            runs = [r for r in data.runs if (pv is None or r.values[panels] == pv)
                    and (lv is None or r.values[lines] == lv)]
            runs = [r for r in runs if r.metrics]
            if not runs:
                continue
            epochs, mean, sd, stops = _series(runs, metric)
            color = PALETTE[j % len(PALETTE)]
            style = "-" if j == 0 else ("--" if j == 1 else ":")
            (h,) = ax.plot(epochs, mean, color=color, linestyle=style, linewidth=1.5)
            if len(runs) > 1:
                ax.fill_between(epochs, mean - sd, mean + sd, color=color, alpha=0.2, linewidth=0)
            for at, value in stops:
                ax.plot([at], [value], marker="x", color=color, markersize=7, linestyle="none")
            handles.setdefault(lv, (h, f"{_short(lines)}={lv}" if lines else f"n={len(runs)}"))
        if panels:
            ax.set_title(f"{_short(panels)}={_tick(pv)}", fontsize=9)
        ax.grid(alpha=0.3)
        if metric.endswith("acc"):
            ax.set_ylim(0, 1.02)
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
    fig.suptitle(f"{data.path.name}: {METRIC_LABELS.get(metric, metric)} per epoch "
                 f"(mean over {seeds} seed{'s' if seeds > 1 else ''}"
                 f"{', band = +-1 sd' if seeds > 1 else ''})", fontsize=10)
    fig.tight_layout(rect=(0, 0.06, 1, 0.97))
    return fig


def final_figure(data: SweepData, x: str, lines: str | None, metric: str, stat: str):
    """Final (or best) ``metric`` against swept key ``x``: mean over seeds with
    a shaded +-1 sd band, one line per value of ``lines``."""
    plt = _pyplot()
    import numpy as np

    if not data.numeric(x):
        raise PlotError(f"--x {x}: needs numeric values (got {', '.join(data.axis(x))}); "
                        "use --kind grid or heatmap for categories")
    xs_all = data.axis(x)
    line_values = data.axis(lines) if lines else [None]
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for j, lv in enumerate(line_values):
        xs, means, sds, ns, div_x, div_y = [], [], [], [], [], []
        for xv in xs_all:
            runs = [r for r in data.runs if r.values[x] == xv
                    and (lv is None or r.values[lines] == lv) and r.metrics]
            if not runs:
                continue
            vals = [_stat(r, metric, stat) for r in runs]
            xs.append(float(xv))
            means.append(np.mean(vals))
            sds.append(np.std(vals, ddof=1) if len(vals) > 1 else 0.0)
            ns.append(len(vals))
            for r, v in zip(runs, vals):
                if r.status == "diverged":
                    div_x.append(float(xv))
                    div_y.append(v)
        if not xs:
            continue
        order = np.argsort(xs)
        xs, means, sds = np.array(xs)[order], np.array(means)[order], np.array(sds)[order]
        color = PALETTE[j % len(PALETTE)]
        n = min(ns)
        label = (f"{_short(lines)}={lv} " if lines else "") + (f"(n={n})" if n == max(ns)
                                                             else f"(n={n}-{max(ns)})")
        ax.plot(xs, means, color=color, marker="o", markersize=4, label=label)
        ax.fill_between(xs, means - sds, means + sds, color=color, alpha=0.2, linewidth=0)
        if div_x:
            ax.plot(div_x, div_y, marker="x", color=color, linestyle="none", markersize=8)
    if any(r.status == "diverged" for r in data.runs):
        ax.plot([], [], marker="x", color="black", linestyle="none", label="diverged run")
    values = [float(v) for v in xs_all]
    positive = [v for v in values if v > 0]
    if len(positive) == len(values) and max(values) / min(values) >= 10:
        ax.set_xscale("log")
    ax.set_xlabel(x)
    ax.set_ylabel(f"{stat} {METRIC_LABELS.get(metric, metric)}")
    if metric.endswith("acc"):
        ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=9)
    ax.set_title(f"{data.path.name}: {stat} {METRIC_LABELS.get(metric, metric)} "
                 "(mean +-1 sd over seeds)", fontsize=10)
    fig.tight_layout()
    return fig


def _tick(value: str) -> str:
    try:
        return f"{float(value):.3g}"
    except ValueError:
        return value


def _stat(run: RunData, metric: str, stat: str) -> float:
    vals = [row[metric] for row in run.metrics]
    if stat == "final":
        return vals[-1]
    return min(vals) if metric.endswith("loss") else max(vals)


def heatmap_figure(data: SweepData, x: str, y: str, metric: str, stat: str):
    """Mean final (or best) ``metric`` over two swept keys, values in the cells."""
    plt = _pyplot()
    import numpy as np

    xv, yv = data.axis(x), data.axis(y)
    grid = np.full((len(yv), len(xv)), np.nan)
    for i, b in enumerate(yv):
        for j, a in enumerate(xv):
            vals = [_stat(r, metric, stat) for r in data.runs
                    if r.values[x] == a and r.values[y] == b and r.metrics]
            if vals:
                grid[i, j] = np.mean(vals)
    fig, ax = plt.subplots(figsize=(1.0 + 0.75 * len(xv) + 1.5, 1.0 + 0.5 * len(yv) + 1))
    im = ax.imshow(grid, cmap="viridis", aspect="auto",
                   vmin=0 if metric.endswith("acc") else None,
                   vmax=1 if metric.endswith("acc") else None)
    for i in range(len(yv)):
        for j in range(len(xv)):
            if not np.isnan(grid[i, j]):
                ax.text(j, i, f"{grid[i, j]:.2f}", ha="center", va="center", fontsize=8,
                        color="white" if grid[i, j] < np.nanmean(grid) else "black")
    ax.set_xticks(range(len(xv)), [_tick(v) for v in xv], rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(len(yv)), [_tick(v) for v in yv], fontsize=8)
    ax.set_xlabel(x)
    ax.set_ylabel(y)
    fig.colorbar(im, ax=ax, label=f"{stat} {metric}")
    ax.set_title(f"{data.path.name}: {stat} {METRIC_LABELS.get(metric, metric)} "
                 "(mean over seeds)", fontsize=10)
    fig.tight_layout()
    return fig


def activations_figure(runs: list[tuple[str, Path]], layer: int | None):
    """Ioffe & Szegedy 2015 Fig. 1 (b, c): the 15th/50th/85th percentiles over
    the batch of one unit's input to the activation in a hidden layer (the
    last by default), against training step; one panel per run."""
    plt = _pyplot()
    if not runs:
        raise PlotError("no runs to plot")
    tables = []
    for label, path in runs:
        f = path / "diagnostics.csv"
        if not f.is_file():
            raise PlotError(f"{path}: no diagnostics.csv (set eval.diagnostics_every > 0)")
        rows = read_csv(f)
        layers = sorted({r["layer"] for r in rows})
        pick = layer if layer is not None else (layers[-1] if layers else None)
        if pick not in layers:
            raise PlotError(f"--layer {layer}: {path} has hidden layers "
                            f"{', '.join(map(str, layers))}")
        tables.append((label, [r for r in rows if r["layer"] == pick], pick))
    fig, axes = plt.subplots(1, len(tables), figsize=(4.2 * len(tables), 3.4), sharey=True,
                             squeeze=False)
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
    fig.tight_layout()
    return fig


def plot_path(path: str | Path, kind: str | None = None, *, out: str | Path | None = None,
              fmt: str = "png", panels: str | None = None, lines: str | None = None,
              x: str | None = None, y: str | None = None, metric: str | None = None,
              stat: str = "final", filters: list[str] = (), layer: int | None = None) -> Path:
    """Draw the figure ``kind`` for a run or sweep folder and return its path.

    Defaults: a run -> its curves; a sweep -> chosen from its axes (the book's
    grid when it sweeps ``init.weight_scale`` and ``model.norm``).
    """
    path = Path(path)
    if metric is not None and metric not in PLOT_METRICS:
        raise PlotError(f"--metric: got {metric!r}, expected one of {', '.join(PLOT_METRICS)}")
    if stat not in PLOT_STATS:
        raise PlotError(f"--stat: got {stat!r}, expected {' or '.join(PLOT_STATS)}")
    if kind is not None and kind not in PLOT_KINDS:
        raise PlotError(f"--kind: got {kind!r}, expected one of {', '.join(PLOT_KINDS)}")
    if (path / "metrics.csv").is_file() and not (path / "sweep.yaml").is_file():
        return _plot_run(path, kind or "curves", out, fmt, layer)
    if not path.is_dir():
        raise PlotError(f"{path}: no such folder")
    if not (path / "sweep.yaml").is_file():
        raise PlotError(f"{path}: neither a run folder (metrics.csv) nor a sweep folder (sweep.yaml)")
    data = load_sweep(path, list(filters))
    for key in (panels, lines, x, y):
        if key is not None:
            data.axis(key)  # a key that is not swept is an error, before anything else
    # The dimensions that vary; zipped keys vary together, the first stands for them.
    keys = [k for k, vals in data.axes if len(vals) > 1
            and (k not in data.zipped or k == data.zipped[0])]
    kind = kind or _default_kind(data, keys)
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
        fig = grid_figure(data, panels, lines, metric or "train_acc")
    elif kind == "final":
        x = x or _pick_x(data, keys)
        if lines is None:
            lines = _pick_lines(data, keys, x)
        _check_others(data, [x, lines])
        fig = final_figure(data, x, lines, metric or "test_acc", stat)
    elif kind == "heatmap":
        if not (x and y):
            if len(keys) < 2:
                raise PlotError("--kind heatmap needs two swept keys (--x KEY --y KEY)")
            x, y = x or keys[0], y or next(k for k in keys if k != (x or keys[0]))
        _check_others(data, [x, y])
        fig = heatmap_figure(data, x, y, metric or "test_acc", stat)
    elif kind == "activations":
        runs = [(r.run_id, r.path) for r in data.runs if r.seed == min(q.seed for q in data.runs)]
        fig = activations_figure(runs, layer)
    else:  # curves of every run
        fig = _multi_curves(data)
    out = Path(out) if out else path / f"{kind}.{fmt}"
    return save_figure(fig, out, fmt)


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


def _multi_curves(data: SweepData):
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for j, r in enumerate(data.runs):
        if r.metrics:
            ax.plot([m["epoch"] for m in r.metrics], [m["test_acc"] for m in r.metrics],
                    color=PALETTE[j % len(PALETTE)], label=r.run_id)
    ax.set(xlabel="epoch", ylabel="test accuracy", ylim=(0, 1.02))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def _plot_run(path: Path, kind: str, out, fmt: str, layer: int | None) -> Path:
    if kind == "curves":
        return plot_run_curves(path, out or path / f"curves.{fmt}", fmt)
    if kind == "activations":
        return save_figure(activations_figure([(path.name, path)], layer),
                           out or path / f"activations.{fmt}", fmt)
    raise PlotError(f"--kind {kind}: needs a sweep folder; {path} is a single run "
                    "(use curves or activations)")
