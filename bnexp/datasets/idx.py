"""Full-size MNIST and Fashion-MNIST from the four standard IDX files.

Files are looked for, in order, in ``data.root``, ``$BNEXP_DATA`` and known
system directories (Debian's ``dataset-fashion-mnist`` package), each
directory as given and with the dataset's name appended.
"""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import numpy as np

FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
SYSTEM_DIRS = {
    "mnist": [Path("/usr/share/datasets/mnist")],
    "fashion-mnist": [Path("/usr/share/datasets/fashion-mnist")],
}


class DataError(Exception):
    """A dataset could not be found or read; the message says why and where."""


def search_dirs(name: str, root: str | None) -> list[Path]:
    dirs: list[Path] = []
    for base in (root, os.environ.get("BNEXP_DATA")):
        if base:
            dirs += [Path(base).expanduser(), Path(base).expanduser() / name]
    dirs += SYSTEM_DIRS.get(name, [])
    return dirs


def find_files(name: str, root: str | None) -> dict[str, Path]:
    """The directory holding all four files (``.gz`` or not), first match wins."""
    dirs = search_dirs(name, root)
    for d in dirs:
        found = {}
        for key, stem in FILES.items():
            for candidate in (d / f"{stem}.gz", d / stem):
                if candidate.is_file():
                    found[key] = candidate
                    break
        if len(found) == len(FILES):
            return found
    looked = ", ".join(str(d) for d in dirs) or "(nowhere: set data.root)"
    raise DataError(
        f"{name}: the four IDX files ({', '.join(s + '.gz' for s in FILES.values())}) "
        f"were not found; looked in: {looked}. Put them in a directory and set data.root "
        f"or $BNEXP_DATA to it")


def read_idx(path: Path) -> np.ndarray:
    """Parse an IDX file of unsigned bytes (magic 0x0000080N, N dims)."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as fh:
            data = fh.read()
    except (OSError, EOFError) as exc:
        raise DataError(f"{path}: cannot read ({exc})") from None
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] != 0x08 or not 1 <= data[3] <= 4:
        raise DataError(f"{path}: not an IDX file of unsigned bytes (bad magic number)")
    ndim = data[3]
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DataError(f"{path}: truncated IDX header")
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    expected = header + int(np.prod(shape))
    if len(data) != expected:
        raise DataError(f"{path}: {len(data)} bytes, expected {expected} for shape {shape} "
                        "(truncated or corrupt)")
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(shape)


def load_raw(name: str, root: str | None):
    """(train_x (60000, 784) uint8, train_y, test_x (10000, 784), test_y)."""
    paths = find_files(name, root)
    arrays = {key: read_idx(p) for key, p in paths.items()}
    for split in ("train", "test"):
        x, y = arrays[f"{split}_images"], arrays[f"{split}_labels"]
        if x.ndim != 3 or y.ndim != 1 or len(x) != len(y):
            raise DataError(f"{name}: {split} images {x.shape} and labels {y.shape} do not match")
    return (arrays["train_images"].reshape(len(arrays["train_images"]), -1),
            arrays["train_labels"],
            arrays["test_images"].reshape(len(arrays["test_images"]), -1),
            arrays["test_labels"])
