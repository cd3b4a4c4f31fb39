"""Write small IDX files (the real format) from the bundled images, for tests."""

import gzip
from pathlib import Path

import numpy as np

from bnexp.datasets import mnist5k


def idx_bytes(a: np.ndarray) -> bytes:
    header = bytes([0, 0, 0x08, a.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in a.shape)
    return header + np.ascontiguousarray(a, dtype=np.uint8).tobytes()


def write_idx_set(folder: Path, n_train: int = 600, n_test: int = 200) -> Path:
    """Four gzipped IDX files holding mnist5k images (train first, test after)."""
    x, y = mnist5k.load_raw()
    order = np.random.default_rng(0).permutation(len(y))
    x = x[order].reshape(-1, 28, 28)
    y = y[order]
    folder.mkdir(parents=True, exist_ok=True)
    parts = {
        "train-images-idx3-ubyte.gz": x[:n_train], "train-labels-idx1-ubyte.gz": y[:n_train],
        "t10k-images-idx3-ubyte.gz": x[n_train : n_train + n_test],
        "t10k-labels-idx1-ubyte.gz": y[n_train : n_train + n_test],
    }
    for name, a in parts.items():
        (folder / name).write_bytes(gzip.compress(idx_bytes(a), mtime=0))
    return folder
