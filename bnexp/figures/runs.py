"""The runs a figure reads: a sweep folder's runs through its filters
(``key=value``), and their metrics as figures aggregate them (the mean and
band per epoch, a run's final or best value)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from .. import values as V
from ..metrics import kind as metric_kind
from ..store import RunRecord, StoreError, SweepFolder, open_sweep
from .common import PlotError
from .style import short


@dataclass
class SweepData:
    path: Path
    axes: list[tuple[str, list[str]]]  # key -> value labels, in grid order
    runs: list[RunRecord]
    zipped: tuple[str, ...] = ()  # keys of the sweep's zip section (one dimension)
    counts: dict[str, int] = field(default_factory=dict)  # statuses of every run of the sweep
    selection: list[str] = field(default_factory=list)  # the filters chosen, as key=value
    config: dict = field(default_factory=dict)  # the sweep's resolved base config

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

    def varying(self) -> list[str]:
        """The dimensions that vary; zipped keys vary together, the first stands for them."""
        return [k for k, vals in self.axes if len(vals) > 1
                and (k not in self.zipped or k == self.zipped[0])]


def load_sweep(path: str | Path, filters: list[str] = ()) -> SweepData:
    """The runs of a sweep folder that have metrics, through ``filters``
    (``key=value``: one value exactly, in any spelling: ``train.lr=1e-3``
    names 0.001; ``seed=N``: one seed)."""
    try:
        folder = open_sweep(path)
    except StoreError as exc:
        raise PlotError(str(exc)) from None
    axes = [(k, [V.label(v) for v in vals]) for k, vals in folder.axes]
    data = SweepData(Path(path), axes, list(folder.runs), folder.zipped, folder.counts(),
                     config=folder.config)
    for text in filters:
        _apply_filter(data, folder, text)
    total = len(data.runs)
    data.runs = [r for r in data.runs if r.status not in ("pending",)]
    # Values no selected run has are gone (a filter on one zipped key fixes the others).
    data.axes = [(k, [v for v in vals if any(r.labels[k] == v for r in data.runs)])
                 for k, vals in data.axes]
    if not data.runs:
        raise PlotError(f"{path}: no runs to plot" + (" after filters" if filters else
                        f" yet ({total} pending)" if total else ""))
    return data


def _apply_filter(data: SweepData, folder: SweepFolder, text: str) -> None:
    """Keep the runs of ``data`` that the filter ``text`` (``key=value``) selects."""
    key, sep, value = text.partition("=")
    if not sep:
        raise PlotError(f"filters: {text}: expected key=value", "filters")
    if key == "seed":
        seed = V.from_text(value)
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise PlotError(f"filters: {text}: seed {value} is not an integer", "filters")
        data.runs = [r for r in data.runs if r.seed == seed]
        data.selection.append(f"seed={seed}")
        return
    try:
        data.axis(key)  # one line naming the swept keys where KEY is not one
    except PlotError as exc:
        raise PlotError(f"filters: {text}: {exc}", "filters") from None
    hits = V.match(folder.axis(key), value)
    if not hits:
        raise PlotError(f"filters: {text}: {key} has no value {value} "
                        f"(values: {V.listing(folder.axis(key))})", "filters")
    want = V.label(hits[0])
    data.selection.append(f"{short(key)}={want}")
    data.runs = [r for r in data.runs if r.labels[key] == want]
    data.axes = [(k, [want] if k == key else v) for k, v in data.axes]


def half_band(values: list[float], band: str) -> float:
    """Half-width of the band around the mean of ``values``: the 95% interval
    of the mean (Student t, ``ci``), or one sample sd (``sd``); 0 for a single
    value."""
    from ..stats import mean_interval, mean_sd

    sd = mean_sd(values)[1] if len(values) >= 2 else 0.0
    if band == "sd" or sd == 0.0:
        return sd
    iv = mean_interval(values)
    return iv.hi - iv.estimate


def band_edges(mean, half, metric: str):
    """(low, high): ``mean`` -+ ``half`` (floats or arrays), cut to the range
    ``metric`` can take (accuracies [0, 1], losses >= 0), so that no band or
    error bar claims a value the metric cannot have."""
    import numpy as np

    lo, hi = metric_kind(metric).bounds
    mean, half = np.asarray(mean, dtype=float), np.asarray(half, dtype=float)
    return np.clip(mean - half, lo, hi), np.clip(mean + half, lo, hi)


def all_diverged(runs: list[RunRecord]) -> bool:
    """Every one of ``runs`` (a grid point's seeds) diverged: its metrics are
    where each run stopped, not a result to average or colour."""
    return bool(runs) and all(r.status == "diverged" for r in runs)


def series(runs: list[RunRecord], metric: str, band: str = "ci"):
    """(epochs, mean, band half-width, stops): ``metric`` per epoch over
    ``runs`` (each epoch over the runs that reached it), arrays of shape (E,);
    stops: the (epoch, value) where each diverged run stopped."""
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
    half = np.array([half_band(by_epoch[e], band) for e in epochs])
    return np.array(epochs), mean, half, stops


def run_stat(run: RunRecord, metric: str, stat: str) -> float:
    """A run's ``final`` (last evaluation) or ``best`` value of ``metric``
    (the lowest loss, the highest accuracy)."""
    vals = [row[metric] for row in run.metrics]
    if stat == "final":
        return vals[-1]
    return min(vals) if metric.endswith("loss") else max(vals)
