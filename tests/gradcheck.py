"""Finite-difference helpers for the gradient tests (float64, central differences)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np


def numeric_grad(f: Callable[[], float], a: np.ndarray, h: float = 1e-6) -> np.ndarray:
    """d f / d a by central differences, perturbing ``a`` in place and restoring it."""
    g = np.zeros_like(a, dtype=np.float64)
    flat, gflat = a.reshape(-1), g.reshape(-1)
    for i in range(flat.size):
        old = flat[i]
        flat[i] = old + h
        fp = f()
        flat[i] = old - h
        fm = f()
        flat[i] = old
        gflat[i] = (fp - fm) / (2 * h)
    return g


def rel_error(a: np.ndarray, b: np.ndarray) -> float:
    """||a - b|| / (||a|| + ||b||): 0 when equal, 1 when unrelated."""
    denom = np.linalg.norm(a) + np.linalg.norm(b)
    return float(np.linalg.norm(a - b) / denom) if denom > 0 else 0.0


def check_layer(layer, x: np.ndarray, rng: np.random.Generator, train: bool = True,
                reset: Callable[[], None] = lambda: None) -> dict[str, float]:
    """Check dx and every param gradient of ``layer`` at ``x`` against finite
    differences of ``sum(forward(x) * dy)`` with a random upstream ``dy``.

    ``reset`` runs before every forward (e.g. to re-seed dropout). Returns the
    relative error per array, and asserts each analytic gradient is not zero.
    """
    reset()
    y = layer.forward(x, train)
    dy = rng.standard_normal(y.shape)
    dx = layer.backward(dy).copy()
    grads = {k: v.copy() for k, v in layer.grads.items()}

    def f() -> float:
        reset()
        return float(np.sum(layer.forward(x, train) * dy))

    errors = {"x": rel_error(dx, numeric_grad(f, x))}
    assert np.linalg.norm(dx) > 1e-6, "dx is trivially zero: the check would prove nothing"
    for key, g in grads.items():
        errors[key] = rel_error(g, numeric_grad(f, layer.params[key]))
        assert np.linalg.norm(g) > 1e-6, f"d{key} is trivially zero"
    return errors
