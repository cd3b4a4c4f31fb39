"""Seeded Gaussian clusters: quick, any size and dimension."""

from __future__ import annotations

import numpy as np


def make_clusters(n: int, dim: int, classes: int, rng: np.random.Generator,
                  separation: float = 2.0) -> tuple[np.ndarray, np.ndarray]:
    """``n`` samples (n, dim) float64 around ``classes`` random centres
    (spread ``separation``), unit noise; labels (n,) balanced and shuffled."""
    centres = rng.standard_normal((classes, dim)) * separation
    labels = rng.permutation(np.arange(n) % classes)
    x = centres[labels] + rng.standard_normal((n, dim))
    return x, labels.astype(np.int64)
