"""Figures drawn from saved runs (never from live objects).

Headless (Agg), matplotlib's object API, every figure closed; files carry no
timestamp or software metadata, so the same inputs give the same bytes.

- ``dispatch``: which figure a folder gets and where it is written
  (``figure``, ``plot_path``); ``options``: the options a figure takes
  (``FigureOptions``, ``FIGURE_KEYS``), stated once.
- ``runs``: the runs a figure reads (a sweep through its filters) and what
  figures compute from them.
- one module per kind: ``curves`` (a run's, and a sweep's per grid point),
  ``grid``, ``final`` (lines; and ``bars``, over categories: a sweep's default
  where every swept key is one), ``heatmap``, ``activations``, ``landscape``.
- ``common``: ``PlotError``, matplotlib with Agg, rendering and saving, the
  output format; ``style``: colours, line styles and captions.
"""

from .activations import activations_figure
from .common import (
    PlotError,
    figure_bytes,
    load_matplotlib,
    output_format,
    pyplot,
    save_figure,
)
from .curves import curves_figure, curves_png, sweep_curves_figure
from .dispatch import default_name, figure, plot_path
from .final import bars_figure, final_figure
from .grid import grid_figure
from .heatmap import heatmap_figure
from .landscape import landscape_figure
from .options import FIGURE_KEYS, FigureOptions
from .runs import SweepData, load_sweep
from .style import BANDS, PALETTE, VALUE_STYLES, value_style

__all__ = [
    "BANDS", "FIGURE_KEYS", "PALETTE", "VALUE_STYLES", "FigureOptions", "PlotError", "SweepData",
    "activations_figure", "bars_figure", "curves_figure", "curves_png", "default_name",
    "figure", "figure_bytes", "final_figure", "grid_figure", "heatmap_figure",
    "landscape_figure", "load_matplotlib", "load_sweep", "output_format", "plot_path",
    "pyplot", "save_figure", "sweep_curves_figure", "value_style",
]
