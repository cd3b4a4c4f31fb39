"""Softmax cross-entropy, numerically stable for logits of any size."""

from __future__ import annotations

import numpy as np


class _LossWork:
    """Work arrays for one (N, C, dtype), made once and reused every step."""

    def __init__(self, N: int, C: int, dtype: np.dtype) -> None:
        self.p = np.empty((N, C), dtype=dtype)  # probabilities, then gradients
        self.t = np.empty((C, N), dtype=dtype)  # logits transposed, for the row max
        self.m = np.empty(N, dtype=dtype)  # row max
        self.sums = np.empty(N, dtype=dtype)
        self.lse = np.empty(N, dtype=dtype)
        self.true = np.empty(N, dtype=dtype)
        self.ones = np.ones(C, dtype=dtype)
        self.offsets = np.arange(N) * C  # flat index of each row's first logit
        self.idx = np.empty(N, dtype=self.offsets.dtype)  # flat index of each label


class SoftmaxCrossEntropy:
    """Mean cross-entropy of softmax(logits) against integer labels.

    ``forward(logits (N, C), labels (N,)) -> float`` and ``backward() ->
    dlogits (N, C)``, the gradient of the mean loss. Logits are shifted by
    their row maximum, so no exponent is positive and nothing overflows.
    The returned gradient is a work buffer reused by the next call.
    """

    def __init__(self, kernels=None) -> None:
        self.kernels = kernels  # None, or the backend's compiled kernels (see Layer)
        self._plans: dict[tuple, _LossWork] = {}
        self._w: _LossWork | None = None
        self._compiled = False

    def forward(self, logits: np.ndarray, labels: np.ndarray) -> float:
        N, C = logits.shape
        if labels.shape != (N,):
            raise ValueError(f"labels must have shape ({N},), got {labels.shape}")
        # Labels index the flattened logits below, where an out-of-range label
        # would silently read a neighbouring row: check them (about 2 us).
        w = self._plans.get((N, C, logits.dtype))
        if w is None:
            w = self._plans[(N, C, logits.dtype)] = _LossWork(N, C, logits.dtype)
        p = w.p
        self._compiled = self.kernels is not None
        if self._compiled:  # two kernels around NumPy's exp (it is vectorized)
            if not self.kernels.xent_shift(logits, labels, p, w.true):
                self._bad_labels(labels, C)
            np.exp(p, p)
            self._w = w
            return float(self.kernels.xent_finish(labels, p, w.true))
        if N and (labels.min() < 0 or labels.max() >= C):
            self._bad_labels(labels, C)
        # Row maxima as a reduction down the columns of the transposed logits:
        # a short reduction along each row is 2-3x slower at these sizes.
        np.copyto(w.t, logits.T)
        np.max(w.t, axis=0, out=w.m)
        np.subtract(logits, w.m[:, None], p)  # <= 0: exp cannot overflow
        np.add(w.offsets, labels, w.idx)
        pf = p.reshape(-1)
        np.take(pf, w.idx, out=w.true)  # shifted logit of the true class
        np.exp(p, p)
        np.matmul(p, w.ones, w.sums)  # (N,) row sums, >= 1
        np.log(w.sums, w.lse)
        np.subtract(w.lse, w.true, w.lse)  # per-sample loss
        loss = float(np.sum(w.lse, dtype=np.float64)) / N
        np.multiply(w.sums, N, w.sums)
        np.divide(1.0, w.sums, w.sums)
        np.multiply(p, w.sums[:, None], p)  # softmax probabilities / N
        self._w = w
        return loss

    @staticmethod
    def _bad_labels(labels: np.ndarray, C: int) -> None:
        raise ValueError(f"labels must be in [0, {C}), got values from "
                         f"{labels.min()} to {labels.max()}")

    def backward(self) -> np.ndarray:
        w = self._w
        if w is None:
            raise RuntimeError("SoftmaxCrossEntropy.backward called before forward")
        if self._compiled:
            self._w = None
            return w.p
        pf = w.p.reshape(-1)
        pf[w.idx] = pf.take(w.idx) - 1.0 / w.p.shape[0]  # (softmax - onehot) / N
        self._w = None  # the probabilities are now gradients
        return w.p
