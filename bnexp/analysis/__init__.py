"""What a run measures besides its metrics, called by the training loop:
``probes`` (landscape and ICS, on a training step, through one interface),
``diagnostics`` (per-block activation statistics), ``batch_stats`` (variance
shift and precise BN, after training)."""

from .batch_stats import precise_bn, variance_shift
from .diagnostics import diagnostics
from .probes import LANDSCAPE_MULTIPLIERS, PROBES, ics, landscape

__all__ = ["LANDSCAPE_MULTIPLIERS", "PROBES", "diagnostics", "ics", "landscape", "precise_bn",
           "variance_shift"]
