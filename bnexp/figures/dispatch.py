"""Which figure a folder gets: a run its curves, a sweep a kind chosen from
the keys it varies; which swept keys go on panels, lines and axes; and where
the figure is written (``plot_path``), never over the folder's own figure
unless asked."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..store import (
    CONFIG_FILE,
    METRICS_FILE,
    RUN_FILE,
    SWEEP_FILE,
    StoreError,
    check_user_output,
    read_json,
    read_metrics,
    short_name,
)
from .activations import activations_figure
from .common import PlotError, figure_bytes, output_format, save_figure
from .curves import curves_figure, sweep_curves_figure
from .final import bars_figure, final_figure
from .grid import grid_figure
from .heatmap import heatmap_figure
from .landscape import landscape_figure
from .options import FigureOptions
from .runs import SweepData, load_sweep
from .style import short


@dataclass
class Drawn:
    fig: object  # a matplotlib Figure (or the Figure or SubFigure drawn into)
    kind: str  # the kind drawn
    own_kind: str  # the kind the folder draws unasked: its own figure is OWN_KIND.png
    selection: list[str]  # the filters, as key=value in each value's one spelling


def figure(path: str | Path, kind: str | None = None, *, ax=None, fig=None, **options):
    """The figure ``kind`` for a run or sweep folder, as a matplotlib Figure.

    ``ax``: draw a one-panel kind (final, bars, heatmap, curves of a sweep) into
    these axes; ``fig``: draw any kind into this Figure or SubFigure (grid,
    activations and a run's curves have several panels). Options: those of
    ``FigureOptions`` (panels, lines, x, y, metric, stat (final|best),
    filters (["key=value"]), layer, band (ci|sd)). Defaults: a run -> its
    curves; a sweep -> chosen from its axes (the book's grid when it sweeps
    ``init.weight_scale`` and ``model.norm``; bars when every swept key is a
    category).
    """
    return _draw(Path(path), FigureOptions(kind=kind, **options), ax, fig).fig


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
    opts = FigureOptions(kind=kind, **options)
    drawn = _draw(path, opts)
    if out:
        return save_figure(drawn.fig, Path(out), fmt)
    target = path / default_name(drawn.kind, fmt, drawn.selection, opts)
    if (force or target.name != f"{drawn.kind}.{fmt}" or not target.is_file()
            or drawn.kind != drawn.own_kind):
        return save_figure(drawn.fig, target, fmt)
    data = figure_bytes(drawn.fig, fmt)
    try:
        unchanged = target.read_bytes() == data
    except OSError:
        unchanged = False
    if not unchanged:
        raise PlotError(f"{target} is the folder's own figure and would change; pass "
                        "force to redraw it, or out FILE to draw elsewhere", "force")
    return target


def default_name(kind: str, fmt: str, selection: list[str] = (),
                 opts: FigureOptions = FigureOptions()) -> str:
    """A figure's file name in its folder: the kind, then every option that
    differs from its default and every filter (``selection``), with values in
    their one spelling (``grid.png``; ``grid_metric=test_acc_lr=0.001.png``)."""
    parts = [kind] + [f"{key}={short(str(value))}" for key, value in opts.changed()]
    for text in selection:
        key, _, value = text.partition("=")
        parts.append(f"{short(key)}={value}")
    stem = "_".join(parts).replace("/", "_").replace("\\", "_").replace("\0", "_")
    return f"{short_name(stem, 200)}.{fmt}"


def _draw(path: Path, opts: FigureOptions, ax=None, fig=None) -> Drawn:
    """The figure ``opts`` asks of the run or sweep folder ``path``."""
    opts.check()
    if (path / METRICS_FILE).is_file() and not (path / SWEEP_FILE).is_file():
        kind = opts.kind or "curves"
        return Drawn(_run_figure(path, kind, opts.layer, ax, fig), kind, "curves", [])
    data = _open_sweep(path, opts)
    keys = data.varying()
    own = _default_kind(data, keys)  # what the sweep itself draws, unfiltered
    kind = opts.kind or own
    if kind in ("grid", "activations") and ax is not None:
        raise PlotError(f"kind: {kind} draws several panels: pass fig= (a Figure or SubFigure), "
                        "not ax=", "kind")
    return Drawn(_SWEEP_FIGURES[kind](data, keys, opts, ax, fig), kind, own,
                 list(data.selection))


def _open_sweep(path: Path, opts: FigureOptions) -> SweepData:
    """The sweep folder's runs through ``opts.filters``, after checking that
    every key ``opts`` names is swept (before anything is drawn)."""
    if not path.is_dir():
        raise PlotError(f"{path}: no such folder")
    if not (path / SWEEP_FILE).is_file():
        raise PlotError(f"{path}: neither a run folder (metrics.csv) nor a sweep folder "
                        "(sweep.yaml)")
    data = load_sweep(path, list(opts.filters))
    for key in (opts.panels, opts.lines, opts.x, opts.y):
        if key is not None:
            data.axis(key)  # one line naming the swept keys where KEY is not one
    return data


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
        return curves_figure(rows, info, fig, config=_run_config(path))
    if kind == "activations":
        return activations_figure([(path.name, path)], layer, fig)
    raise PlotError(f"kind: {kind} needs a sweep folder; {path} is a single run "
                    "(use curves or activations)", "kind")


def _run_config(path: Path) -> dict:
    """A run folder's config.yaml as a mapping ({} where it has none), for the
    settings its curves title states."""
    from ..yamlio import YamlError, read_yaml

    if not (path / CONFIG_FILE).is_file():
        return {}
    try:
        config = read_yaml(path / CONFIG_FILE)
    except YamlError as exc:
        raise PlotError(str(exc)) from None
    return config if isinstance(config, dict) else {}


# --- a sweep's figure of each kind, its keys chosen where opts leaves them open -----

def _grid(data: SweepData, keys: list[str], opts: FigureOptions, ax, fig):
    panels, lines = opts.panels, opts.lines
    if panels is None and len(keys) == 1 and lines in (None, keys[0]):
        lines = keys[0]  # one swept key: one panel, a line per value
    else:
        panels = panels or _pick_panels(data, keys, lines)
    if lines is None:
        lines = _pick_lines(data, keys, panels)
    if lines == panels:
        raise PlotError(f"lines and panels must be different keys (both {lines})", "lines")
    _check_others(data, [panels, lines])
    return grid_figure(data, panels, lines, opts.metric or "train_acc", opts.band, fig)


def _final(data: SweepData, keys: list[str], opts: FigureOptions, ax, fig):
    x = opts.x or _pick_x(data, keys)
    lines = _pick_lines(data, keys, x) if opts.lines is None else opts.lines
    _check_others(data, [x, lines])
    return final_figure(data, x, lines, opts.metric or "test_acc", opts.stat, opts.band, ax,
                        fig)


def _bars(data: SweepData, keys: list[str], opts: FigureOptions, ax, fig):
    """Bars per value of ``x`` (the swept key with the most values), grouped by
    ``lines`` (the other)."""
    lines = opts.lines
    x = opts.x or _pick_bars_x(data, keys, lines)
    if lines is None:
        lines = _pick_lines(data, keys, x)
    if lines == x:
        raise PlotError(f"lines and x must be different keys (both {x})", "lines")
    _check_others(data, [x, lines])
    return bars_figure(data, x, lines, opts.metric or "test_acc", opts.stat, opts.band, ax, fig)


def _heatmap(data: SweepData, keys: list[str], opts: FigureOptions, ax, fig):
    """x: the key the final plot puts on x (the numeric one with the most
    values), where there is one; y: another."""
    x, y = opts.x, opts.y
    if not (x and y):
        if len(keys) < 2:
            raise PlotError("kind: heatmap needs two swept keys (x=KEY, y=KEY)", "kind")
        if x is None:
            numeric = [k for k in keys if k != y and data.numeric(k)]
            x = _pick_x(data, numeric) if numeric else next(k for k in keys if k != y)
        y = y or next(k for k in keys if k != x)
    _check_others(data, [x, y])
    return heatmap_figure(data, x, y, opts.metric or "test_acc", opts.stat, ax, fig)


def _activations(data: SweepData, keys: list[str], opts: FigureOptions, ax, fig):
    first = min(r.seed for r in data.runs)
    runs = [(r.run_id, r.path) for r in data.runs if r.seed == first]
    return activations_figure(runs, opts.layer, fig)


def _landscape(data: SweepData, keys: list[str], opts: FigureOptions, ax, fig):
    lines = opts.lines or (keys[0] if keys else None)
    _check_others(data, [lines])
    return landscape_figure(data, lines, ax, fig)


def _curves(data: SweepData, keys: list[str], opts: FigureOptions, ax, fig):
    return sweep_curves_figure(data, opts.metric or "test_acc", opts.band, ax, fig)


_SWEEP_FIGURES = {"curves": _curves, "grid": _grid, "final": _final, "bars": _bars,
                  "heatmap": _heatmap, "activations": _activations, "landscape": _landscape}


def _check_others(data: SweepData, used: list[str | None]) -> None:
    """A figure shows at most the keys it is given; any other key that still
    varies would be silently averaged over, so it must be fixed by a filter."""
    tied = set(data.zipped) if any(u in data.zipped for u in used) else set()
    others = [k for k, vals in data.axes if len(vals) > 1 and k not in used and k not in tied]
    if others:
        k = others[0]
        raise PlotError(f"{data.path.name} also varies {', '.join(others)}; pick one value with "
                        f"a filter {k}={data.axis(k)[0]} (or show it as panels or lines)",
                        "filters")


def _default_kind(data: SweepData, keys: list[str]) -> str:
    """Runs only: their curves. The book's weight-scale sweep: its grid. One or
    two keys, all categories (norm, placement): bars. A numeric key with
    several values: the final metric against it. Else a grid."""
    if not keys:
        return "curves"
    if "init.weight_scale" in keys and len(keys) == 2:
        return "grid"
    if len(keys) <= 2 and not any(data.numeric(k) for k in keys):
        return "bars"
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


def _pick_bars_x(data: SweepData, keys: list[str], lines: str | None) -> str:
    """The varying key with the most values, other than ``lines`` (else any swept key)."""
    rest = [k for k in keys if k != lines] or [k for k, _ in data.axes if k != lines]
    if not rest:
        raise PlotError("kind: bars needs a swept key for x (x=KEY)", "kind")
    return max(rest, key=lambda k: len(data.axis(k)))


def _pick_x(data: SweepData, keys: list[str]) -> str:
    numeric = [k for k in keys if data.numeric(k) and len(data.axis(k)) > 1]
    if not numeric:
        raise PlotError("kind: final needs a numeric swept key (x=KEY)", "kind")
    return max(numeric, key=lambda k: len(data.axis(k)))
