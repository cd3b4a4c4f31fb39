"""Ioffe & Szegedy 2015, Fig. 1 (b, c): how one hidden unit's input to the
activation moves over training (diagnostics.csv)."""

from __future__ import annotations

from pathlib import Path

from ..store import DIAGNOSTIC_COLUMNS, DIAGNOSTICS_FILE, StoreError, read_csv
from .common import PlotError, pyplot, whole_ticks
from .style import PALETTE


def activations_figure(runs: list[tuple[str, Path]], layer: int | None, fig=None):
    """Ioffe & Szegedy 2015 Fig. 1 (b, c): the 15th/50th/85th percentiles over
    the batch of one unit's input to the activation in a hidden layer (the
    last by default), against training step; one panel per run (label, folder)."""
    plt = pyplot()
    if not runs:
        raise PlotError("no runs to plot")
    tables = [_unit_rows(path, label, layer) for label, path in runs]
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
        whole_ticks(ax)
    axes[0][0].set_ylabel("input to the activation")
    axes[0][0].legend(fontsize=8)
    if made:
        fig.tight_layout()
    return fig


def _unit_rows(path: Path, label: str, layer: int | None) -> tuple[str, list[dict], int]:
    """(label, the diagnostics rows of the layer, the layer): ``layer``, or the
    run's last hidden layer."""
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
        raise PlotError(f"layer: {layer}: {path} has hidden layers "
                        f"{', '.join(map(str, layers))}", "layer")
    return label, [r for r in rows if r["layer"] == pick], pick
