"""Softmax cross-entropy, numerically stable for logits of any size."""

from __future__ import annotations

import numpy as np


class SoftmaxCrossEntropy:
    """Mean cross-entropy of softmax(logits) against integer labels.

    ``forward(logits (N, C), labels (N,)) -> float`` and ``backward() ->
    dlogits (N, C)``, the gradient of the mean loss. Logits are shifted by
    their row maximum, so no exponent is positive and nothing overflows.
    The returned gradient is a work buffer reused by the next call.
    """

    def __init__(self) -> None:
        self._work: dict[tuple, np.ndarray] = {}
        self._p: np.ndarray | None = None
        self._labels: np.ndarray | None = None

    def _arrays(self, N: int, C: int, dtype):
        """Reused work arrays: probabilities (N, C), row indices, ones (C,)."""
        key = (N, C, dtype)
        if key not in self._work:
            self._work[key] = (np.empty((N, C), dtype=dtype), np.arange(N),
                               np.ones(C, dtype=dtype))
        return self._work[key]

    def forward(self, logits: np.ndarray, labels: np.ndarray) -> float:
        N, C = logits.shape
        if labels.shape != (N,):
            raise ValueError(f"labels must have shape ({N},), got {labels.shape}")
        p, rows, ones = self._arrays(N, C, logits.dtype)
        np.subtract(logits, logits.max(axis=1, keepdims=True), out=p)  # <= 0: exp cannot overflow
        shifted_true = p[rows, labels]  # (N,), a copy
        np.exp(p, out=p)
        sums = np.matmul(p, ones)  # (N,) row sums, >= 1
        loss = float(np.sum(np.log(sums) - shifted_true, dtype=np.float64)) / N
        p *= (1.0 / sums)[:, None]  # softmax probabilities
        self._p, self._labels = p, labels
        return loss

    def backward(self) -> np.ndarray:
        if self._p is None:
            raise RuntimeError("SoftmaxCrossEntropy.backward called before forward")
        p, labels = self._p, self._labels
        N, C = p.shape
        p[self._arrays(N, C, p.dtype)[1], labels] -= 1.0
        p *= 1.0 / N
        self._p = None  # the probabilities are now gradients
        return p
