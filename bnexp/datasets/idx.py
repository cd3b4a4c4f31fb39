"""Full-size MNIST and Fashion-MNIST from the four standard IDX files.

Files are looked for, in order, in ``data.root``, ``$BNEXP_DATA`` (each as
given and with the dataset's name appended), known system directories
(Debian's ``dataset-fashion-mnist`` package) and the bnexp cache
(``$XDG_CACHE_HOME/bnexp/NAME`` or ``~/.cache/bnexp/NAME``); if none holds
them they are downloaded into the cache (``download``).

Memory: the 60,000 x 784 training images are read as 47 MB of bytes (no copy
into NumPy) and converted once to float32 (188 MB); with the test split, a
full-size load peaks near 280 MB.
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
    from .download import cache_dir

    dirs.append(cache_dir(name))
    return dirs


def locate(name: str, root: str | None) -> dict[str, Path] | None:
    """The files of the first directory holding all four (``.gz`` or not)."""
    for d in search_dirs(name, root):
        found = {}
        for key, stem in FILES.items():
            for candidate in (d / f"{stem}.gz", d / stem):
                if candidate.is_file():
                    found[key] = candidate
                    break
        if len(found) == len(FILES):
            return found
    return None


def find_files(name: str, root: str | None, download: bool = True) -> dict[str, Path]:
    """Locate the four files, downloading them into the cache if no folder has them."""
    found = locate(name, root)
    if found is not None:
        return found
    looked = ", ".join(str(d) for d in search_dirs(name, root))
    if not download:
        raise DataError(
            f"{name}: the four IDX files ({', '.join(s + '.gz' for s in FILES.values())}) "
            f"were not found; looked in: {looked}. Put them in a directory and set data.root "
            f"or $BNEXP_DATA to it, or run: bnexp data download {name}")
    from .download import download as fetch

    try:
        fetch(name)
    except DataError as exc:
        raise DataError(f"{exc} (no local copy in: {looked})") from None
    found = locate(name, root)
    if found is None:  # pragma: no cover - download() raises when it cannot deliver
        raise DataError(f"{name}: download finished but the files are missing; looked in: {looked}")
    return found


def read_idx(path: Path, name: str | None = None) -> np.ndarray:
    """Parse an IDX file of unsigned bytes (magic 0x0000080N, N dims); with
    ``name``, also check the decompressed bytes' SHA-256 where it is known."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as fh:
            data = fh.read()
    except (OSError, EOFError) as exc:
        raise DataError(f"{path}: cannot read ({exc})") from None
    if name is not None:
        from .download import verify_raw

        verify_raw(name, path.name.removesuffix(".gz"), data, path)
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
    arrays = {key: read_idx(p, name) for key, p in paths.items()}
    for split in ("train", "test"):
        x, y = arrays[f"{split}_images"], arrays[f"{split}_labels"]
        if x.ndim != 3 or y.ndim != 1 or len(x) != len(y):
            raise DataError(f"{name}: {split} images {x.shape} and labels {y.shape} do not match")
    return (arrays["train_images"].reshape(len(arrays["train_images"]), -1),
            arrays["train_labels"],
            arrays["test_images"].reshape(len(arrays["test_images"]), -1),
            arrays["test_labels"])


def inventory(root: str | None = None) -> list[dict]:
    """What is on disk for each full-size dataset: one row per file with its
    folder, size and check (MD5 of the .gz or SHA-256 of the content where
    known, else the IDX structure)."""
    from .download import MD5, SHA256_RAW, file_md5

    rows = []
    for name in SYSTEM_DIRS:
        found = locate(name, root)
        if found is None:
            rows.append({"dataset": name, "file": "-", "folder": "not found", "bytes": 0,
                         "check": "-"})
            continue
        for path in found.values():
            check = "structure ok"
            try:
                if path.suffix == ".gz" and MD5[name].get(path.name) == file_md5(path):
                    check = "verified (MD5)"
                else:
                    read_idx(path, name)
                    if SHA256_RAW.get(name, {}).get(path.name.removesuffix(".gz")):
                        check = "verified (SHA-256)"
            except DataError as exc:
                check = f"BAD: {exc}"
            rows.append({"dataset": name, "file": path.name, "folder": str(path.parent),
                         "bytes": path.stat().st_size, "check": check})
    return rows
