"""Running statistics: the one statement of how the normalization layers'
running mean and variance move, used by every path that moves them (the
NumPy batch norm, its ghost-batch and renorm forms, the compiled kernels and
the compiled whole-MLP step, instance norm).

    running = keep * running + [c_mean, c_var] * [batch mean, biased batch var]
    keep = 1 - f,  c_mean = f,  c_var = f * unbias

``f`` is the momentum, or 1 / count (a cumulative average) when the momentum
is None. PyTorch stores the *unbiased* variance of the M values each
statistic ran over (unbias = M / (M - 1)); "Deep Learning from Scratch"
stores the biased one (unbias = 1).
"""

from __future__ import annotations

import numpy as np


def factor(momentum: float | None, count: int) -> float:
    """f: how far this update moves the running statistics; ``count`` is the
    number of updates including this one."""
    return 1.0 / count if momentum is None else momentum


def unbias(M: int, convention: str) -> float:
    """What the biased variance of M values is multiplied by before it is
    stored: M / (M - 1) in PyTorch's convention, 1 in the book's."""
    return M / (M - 1) if convention == "pytorch" else 1.0


def coefficients(f: float, M: int, convention: str) -> tuple[float, float, float]:
    """(keep, c_mean, c_var) of the update, as Python floats: callers cast them
    to the buffers' dtype (NumPy scalars or a (2, 1) column)."""
    return 1.0 - f, f, f * unbias(M, convention)


class RunningStats:
    """Running mean and variance as the rows of one (2, C) array, ``running``,
    updated together; ``buffers`` holds views of its rows (what model files
    and state dicts store) and ``num_batches_tracked``."""

    running: np.ndarray

    def init_running(self, C: int, dtype, start_var: float) -> None:
        self.running = np.zeros((2, C), dtype=dtype)
        self.running[1] = start_var
        self.buffers["running_mean"] = self.running[0]
        self.buffers["running_var"] = self.running[1]
        self.buffers["num_batches_tracked"] = np.zeros((), dtype=np.int64)

    def count(self) -> int:
        """Count this update in ``num_batches_tracked``; the new count."""
        nbt = self.buffers["num_batches_tracked"]
        count = int(nbt) + 1
        nbt.fill(count)
        return count
