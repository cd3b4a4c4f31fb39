"""How figures look and say things: colours and line styles of swept values,
the band captions, a swept key's short name, a run's settings in a title."""

from __future__ import annotations

from collections.abc import Mapping

from .. import values as V
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
# The settings a curves title states (the rest is in the run's config.yaml).
TITLE_SETTINGS = ("model.norm", "train.lr", "train.batch_size")
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


def settings_caption(config: Mapping, skip: tuple[str, ...] = (),
                     given: Mapping[str, object] | None = None) -> str:
    """``norm=batch, lr=0.1, batch_size=50``: each of TITLE_SETTINGS but those in
    ``skip``, its value from ``given`` (dotted key -> value) or else from
    ``config`` (nested, as config.yaml holds it), in its one spelling; empty
    where neither sets any."""
    given = given or {}
    parts = []
    for key in TITLE_SETTINGS:
        if key in skip:
            continue
        value = given.get(key)
        if value is None:
            value = config
            for part in key.split("."):
                value = value.get(part) if isinstance(value, Mapping) else None
        if value is not None:
            parts.append(f"{short(key)}={V.label(value)}")
    return ", ".join(parts)
