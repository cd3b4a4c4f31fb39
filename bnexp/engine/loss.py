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
        self._probs: dict[tuple[int, int], np.ndarray] = {}
        self._p: np.ndarray | None = None
        self._labels: np.ndarray | None = None

    def forward(self, logits: np.ndarray, labels: np.ndarray) -> float:
        N, C = logits.shape
        if labels.shape != (N,):
            raise ValueError(f"labels must have shape ({N},), got {labels.shape}")
        p = self._probs.get((N, C))
        if p is None or p.dtype != logits.dtype:
            p = self._probs[(N, C)] = np.empty((N, C), dtype=logits.dtype)
        np.subtract(logits, logits.max(axis=1, keepdims=True), out=p)  # <= 0
        rows = np.arange(N)
        shifted_true = p[rows, labels]  # fancy indexing copies
        np.exp(p, out=p)
        sums = p.sum(axis=1)
        loss = float(np.mean(np.log(sums) - shifted_true, dtype=np.float64))
        p /= sums[:, None]  # softmax probabilities
        self._p, self._labels = p, labels
        return loss

    def backward(self) -> np.ndarray:
        if self._p is None:
            raise RuntimeError("SoftmaxCrossEntropy.backward called before forward")
        p, labels = self._p, self._labels
        N = p.shape[0]
        p[np.arange(N), labels] -= 1.0
        p /= N
        self._p = None  # the probabilities are now gradients
        return p
