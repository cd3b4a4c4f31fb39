"""Seeded, class-stratified subsets."""

from __future__ import annotations

import numpy as np


def stratified_counts(class_counts: np.ndarray, n: int) -> np.ndarray:
    """How many of ``n`` samples each class gets, proportional to its count
    (largest remainders, ties to the lower class)."""
    total = int(class_counts.sum())
    exact = class_counts * (n / total)
    counts = np.floor(exact).astype(int)
    short = n - int(counts.sum())
    order = np.argsort(-(exact - counts), kind="stable")
    counts[order[:short]] += 1
    return np.minimum(counts, class_counts)


def stratified_split(labels: np.ndarray, sizes: list[int], rng: np.random.Generator
                     ) -> list[np.ndarray]:
    """Disjoint index sets of the given sizes, each stratified by class and
    shuffled. ``sum(sizes)`` must not exceed ``len(labels)``."""
    if sum(sizes) > len(labels):
        raise ValueError(f"asked for {sum(sizes)} samples, only {len(labels)} exist")
    classes, inverse = np.unique(labels, return_inverse=True)
    per_class = [rng.permutation(np.flatnonzero(inverse == c)) for c in range(len(classes))]
    class_counts = np.array([len(p) for p in per_class])
    taken = np.zeros(len(classes), dtype=int)
    out = []
    for n in sizes:
        counts = stratified_counts(class_counts - taken, n)
        idx = np.concatenate([per_class[c][taken[c] : taken[c] + counts[c]]
                              for c in range(len(classes))])
        taken += counts
        out.append(rng.permutation(idx))
    return out
