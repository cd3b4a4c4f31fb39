"""What each per-run metric is, for the statistics over seeds: its range, whether
it is a 0/1 outcome, and whether a diverged run has it.

- Accuracies are proportions in [0, 1]; a diverged run has one (its last
  evaluation, usually chance), so it counts.
- ``diverged`` is a 0/1 outcome: its mean over seeds is a proportion, with an
  exact binomial interval.
- Losses and the other unbounded measurements of a diverged run are overflow
  or NaN, not a result: they are averaged over the runs that did not diverge,
  and the number left out is stated beside them.
- ``epochs``, ``seconds`` and ``step_ms`` are counts and timings a diverged run
  has as much as any (the epoch it stopped at, the time it took).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from .stats import Bounds


@dataclass(frozen=True)
class MetricKind:
    bounds: Bounds
    binary: bool = False  # a 0/1 outcome per run
    with_diverged: bool = True  # diverged runs have it and count


PROPORTION = MetricKind((0.0, 1.0))
SIGNED_UNIT = MetricKind((-1.0, 1.0))
COUNT = MetricKind((0.0, math.inf))
MEASURED = MetricKind((0.0, math.inf), with_diverged=False)

_KINDS = {
    "diverged": MetricKind((0.0, 1.0), binary=True),
    "final_train_acc": PROPORTION, "final_test_acc": PROPORTION, "best_test_acc": PROPORTION,
    "train_acc": PROPORTION, "test_acc": PROPORTION,
    "generalization_gap": SIGNED_UNIT,
    "ics_cosine": MetricKind((-1.0, 1.0), with_diverged=False),  # ics.csv, as ics_l2
    "epochs": COUNT, "seconds": COUNT, "step_ms": COUNT,
}


def kind(metric: str) -> MetricKind:
    """The kind of ``metric`` (``test_acc@3`` is a proportion like ``test_acc``);
    anything not listed (losses, landscape, ICS norms, diagnostics ratios) is a
    non-negative measurement that diverged runs do not have."""
    return _KINDS.get(metric.partition("@")[0], MEASURED)
