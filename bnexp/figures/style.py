"""How figures look and say things: colours and line styles of swept values,
the band captions, a swept key's short name."""

from __future__ import annotations

from ..choices import METRIC_LABELS

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
# The bands a figure may shade around a mean over seeds, and how its title says so.
BANDS = {"ci": "band = 95% interval of the mean", "sd": "band = +-1 sd"}


def value_style(label: str | None, index: int) -> tuple[str, str]:
    """(colour, line style) of a swept value: fixed for the named values above,
    else by its position among its key's values."""
    if label in VALUE_STYLES:
        return VALUE_STYLES[label]
    return PALETTE[index % 7], DASHES[(index // 7) % len(DASHES)]


def short(key: str) -> str:
    """A dotted key as figures label it: ``init.weight_scale`` -> ``weight_scale``."""
    return key.rsplit(".", 1)[-1]


def metric_label(metric: str) -> str:
    """``test_acc`` -> ``test accuracy``, for axes and titles."""
    return METRIC_LABELS.get(metric, metric)
