"""The backend: which kernels run the passes around the matrix products,
``numpy`` (the reference engine, always there) or ``numba`` (compiled, fused
kernels from the optional ``fast`` extra: ``pip install "bnexp[fast]"``).

One ``Backend`` object per choice is handed to a network (``Network(...,
kernels=...)``, ``Network.use_backend``) and to an optimizer; layers with a
compiled path read its kernel module from their ``kernels`` attribute, None
on the NumPy backend."""

from __future__ import annotations

import ctypes
import functools
import importlib.util
from dataclasses import dataclass
from types import ModuleType

import numpy as np

from ..choices import KERNELS


def available(name: str) -> bool:
    """Whether ``name``'s kernels can run here (without importing them)."""
    return name == "numpy" or (name == "numba" and importlib.util.find_spec("numba") is not None)


@dataclass(frozen=True)
class Backend:
    """A backend: its name and its kernel module (None for numpy: the layers'
    own code). ``Backend.named`` gives the one object per name."""

    name: str
    kernels: ModuleType | None

    @property
    def compiled(self) -> bool:
        return self.kernels is not None

    @staticmethod
    def named(name: str | Backend) -> Backend:
        """The backend called ``name`` (a Backend is returned as it is)."""
        return name if isinstance(name, Backend) else _backend(name)


@functools.cache
def _backend(name: str) -> Backend:
    return Backend(name, load(name))


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


def gemm_address(dtype) -> int | None:
    """The address of NumPy's own BLAS ``cblas_sgemm`` or ``cblas_dgemm``
    (64-bit integers) for ``dtype``, which compiled kernels call for their
    products; None where NumPy's BLAS has no such symbol, or where calling
    it does not give np.matmul's products (another interface under that name)."""
    found = _gemm_addresses()
    address = None if found is None else found.get(np.dtype(dtype))
    return address if address is not None and _gives_matmul(address, np.dtype(dtype)) else None


@functools.cache
def _gives_matmul(address: int, dtype: np.dtype) -> bool:
    """Whether the function at ``address`` computes small products as np.matmul
    does (to rounding), with and without a transposed operand."""
    from .numba_kernels import mm

    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((5, 7)).astype(dtype), rng.standard_normal((7, 3)).astype(dtype)
    rtol = 1e-5 if dtype == np.float32 else 1e-12
    for p, q, ta, tb, ref in ((a, b, False, False, a @ b), (a, a, False, True, a @ a.T),
                              (b, b, True, False, b.T @ b)):
        out = np.full_like(ref, np.nan)
        mm(address, p, q, out, ta, tb)
        if not np.allclose(out, ref, rtol=rtol, atol=0):
            return False
    return True


@functools.cache
def _gemm_addresses() -> dict | None:
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return None
    for info in threadpool_info():
        if info.get("user_api") != "blas" or "numpy" not in str(info.get("filepath")):
            continue
        lib = ctypes.CDLL(info["filepath"])
        for prefix in ("scipy_cblas_", "cblas_"):
            try:
                return {np.dtype(np.float32): ctypes.cast(getattr(lib, f"{prefix}sgemm64_"),
                                                          ctypes.c_void_p).value,
                        np.dtype(np.float64): ctypes.cast(getattr(lib, f"{prefix}dgemm64_"),
                                                          ctypes.c_void_p).value}
            except AttributeError:
                continue
    return None
