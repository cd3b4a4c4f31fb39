"""The options of a figure of a run or sweep folder, stated once: ``figure``
and ``plot_path`` take them as keywords, a report's ``figures:`` entries
write them (``claims.FIGURE_KEYS``), the CLI's ``bnexp plot`` as flags."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields

from ..choices import PLOT_KINDS, PLOT_METRICS, PLOT_STATS
from .common import PlotError
from .style import BANDS


@dataclass(frozen=True)
class FigureOptions:
    kind: str | None = None  # one of PLOT_KINDS; None: chosen from what the folder holds
    panels: str | None = None  # grid: one panel per value of this swept key
    lines: str | None = None  # grid, final, landscape: a line per value; bars: a bar group
    x: str | None = None  # final, bars, heatmap: the swept key along x
    y: str | None = None  # heatmap: the swept key along y
    metric: str | None = None  # one of PLOT_METRICS; None: the kind's own (train_acc for grid)
    stat: str = "final"  # final, bars, heatmap: a run's last evaluation or its best one
    filters: Sequence[str] = ()  # only the runs with these values: "key=value" or "seed=N"
    layer: int | None = None  # activations: the hidden layer; None: the last
    band: str = "ci"  # grid, final, bars, curves: the 95% interval of the mean, or +-1 sd

    def check(self) -> None:
        """Refuse a value outside its choices, naming the option and its choices."""
        if self.metric is not None and self.metric not in PLOT_METRICS:
            raise PlotError(f"metric: got {self.metric!r}, expected one of "
                            f"{', '.join(PLOT_METRICS)}", "metric")
        if self.stat not in PLOT_STATS:
            raise PlotError(f"stat: got {self.stat!r}, expected {' or '.join(PLOT_STATS)}",
                            "stat")
        if self.band not in BANDS:
            raise PlotError(f"band: got {self.band!r}, expected {' or '.join(BANDS)}", "band")
        if self.kind is not None and self.kind not in PLOT_KINDS:
            raise PlotError(f"kind: got {self.kind!r}, expected one of {', '.join(PLOT_KINDS)}",
                            "kind")

    def changed(self) -> list[tuple[str, object]]:
        """(option, value) of each option but kind and filters that is set and
        differs from its default, in the order above."""
        return [(f.name, getattr(self, f.name)) for f in fields(self)
                if f.name not in ("kind", "filters") and getattr(self, f.name) is not None
                and getattr(self, f.name) != f.default]


FIGURE_KEYS = tuple(f.name for f in fields(FigureOptions))
