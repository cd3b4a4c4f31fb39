"""Which kernels run the passes around the matrix products: ``numpy`` (the
reference engine, always there) or ``numba`` (compiled, fused kernels from
the optional ``fast`` extra: ``pip install "bnexp[fast]"``)."""

from __future__ import annotations

import importlib.util
from types import ModuleType

from ..choices import KERNELS


def available(name: str) -> bool:
    """Whether ``name``'s kernels can run here (without importing them)."""
    return name == "numpy" or (name == "numba" and importlib.util.find_spec("numba") is not None)


def load(name: str) -> ModuleType | None:
    """The kernel module for ``name``: None for numpy (the layers' own code)."""
    if name not in KERNELS:
        raise ValueError(f"kernels: got {name!r}, expected one of {', '.join(KERNELS)}")
    if name == "numpy":
        return None
    if not available(name):
        raise ImportError('kernels numba needs numba: pip install "bnexp[fast]"')
    from . import numba_kernels

    return numba_kernels
