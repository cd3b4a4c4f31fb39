"""Full-size MNIST and Fashion-MNIST from the four standard IDX files.

Files are looked for, in order, in ``data.root``, ``$BNEXP_DATA`` (each as
given and with the dataset's name appended), known system directories
(Debian's ``dataset-fashion-mnist`` package) and the bnexp cache
(``$XDG_CACHE_HOME/bnexp/NAME`` or ``~/.cache/bnexp/NAME``); if none holds
them, ``download.find_files`` downloads them into the cache.

Memory: the 60,000 x 784 training images are read as 47 MB of bytes (no copy
into NumPy) and converted once to float32 (188 MB); with the test split, a
full-size load peaks near 280 MB.
"""

from __future__ import annotations

import functools
import gzip
import os
import zlib
from pathlib import Path

import numpy as np

from .. import files
from .sources import FILES, SYSTEM_DIRS, DataError, cache_dir, verify_raw


def search_dirs(name: str, root: str | None) -> list[Path]:
    dirs: list[Path] = []
    for base in (root, os.environ.get("BNEXP_DATA")):
        if base:
            dirs += [Path(base).expanduser(), Path(base).expanduser() / name]
    dirs += SYSTEM_DIRS.get(name, [])
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


MAX_IDX_BYTES = 1 << 30  # full MNIST's training images are 47 MB


def read_idx(path: Path, name: str | None = None) -> np.ndarray:
    """Parse an IDX file of unsigned bytes (magic 0x0000080N, N dims); with
    ``name``, also check the decompressed bytes' SHA-256 where it is known.
    Bounded: a regular file only; the header's shape is checked against
    MAX_IDX_BYTES (and, uncompressed, against the file's size) before the
    data is read, and decompression stops at the size the header promises."""
    try:
        with files.open_regular(path, "IDX file") as raw:
            packed = path.suffix == ".gz"
            fh = gzip.GzipFile(fileobj=raw, mode="rb") if packed else raw
            head = _idx_header(fh, path)
            shape = tuple(int.from_bytes(head[4 + 4 * i: 8 + 4 * i], "big")
                          for i in range(head[3]))
            n = int(np.prod(shape, dtype=object))
            if n > MAX_IDX_BYTES:
                raise DataError(f"{path}: the header declares shape {shape} ({n:,} bytes); "
                                f"at most {MAX_IDX_BYTES:,} for an IDX file")
            if not packed and files.size_of(raw) != len(head) + n:
                raise DataError(f"{path}: {files.size_of(raw):,} bytes, expected "
                                f"{len(head) + n:,} for shape {shape} (truncated or corrupt)")
            body = files.read_exactly(fh, n, path, f"shape {shape}")
            if fh.read(1):
                raise DataError(f"{path}: longer than the {len(head) + n:,} bytes its header "
                                f"promises for shape {shape} (corrupt)")
    except files.FileError as exc:
        raise DataError(str(exc)) from None
    except (OSError, EOFError, gzip.BadGzipFile, zlib.error) as exc:
        raise DataError(f"{path}: cannot read ({exc})") from None
    data = head + body
    if name is not None:
        verify_raw(name, path.name.removesuffix(".gz"), data, path)
    return np.frombuffer(data, dtype=np.uint8, offset=len(head)).reshape(shape)


def _idx_header(fh, path: Path) -> bytes:
    """The magic number and the dimensions, read and checked."""
    magic = fh.read(4)
    if len(magic) < 4 or magic[:3] != b"\x00\x00\x08" or not 1 <= magic[3] <= 4:
        raise DataError(f"{path}: not an IDX file of unsigned bytes (bad magic number)")
    dims = fh.read(4 * magic[3])
    if len(dims) < 4 * magic[3]:
        raise DataError(f"{path}: truncated IDX header")
    return magic + dims


CLASSES = 10  # MNIST and Fashion-MNIST labels are 0..9


def load_raw(name: str, paths: dict[str, Path]):
    """(train_x (60000, 784) uint8, train_y, test_x (10000, 784), test_y) from
    the four located files, each checked: IDX structure, SHA-256 where known,
    28x28 images, as many labels as images, labels 0..9. Read once per process
    for unchanged files (checking a config's data before a run, then loading
    it, reads the files once)."""
    stamp = tuple((key, str(p), p.stat().st_mtime_ns, p.stat().st_size)
                  for key, p in sorted(paths.items()))
    return _load_checked(name, stamp)


@functools.lru_cache(maxsize=4)
def _load_checked(name: str, stamp: tuple):
    paths = {key: Path(p) for key, p, _, _ in stamp}
    arrays = {key: read_idx(p, name) for key, p in paths.items()}
    for split in ("train", "test"):
        x, y = arrays[f"{split}_images"], arrays[f"{split}_labels"]
        if x.ndim != 3 or x.shape[1:] != (28, 28):
            raise DataError(f"{paths[f'{split}_images']}: images of shape {x.shape[1:]}, "
                            f"expected 28x28 ({name})")
        if y.ndim != 1 or len(x) != len(y):
            raise DataError(f"{name}: {len(x)} {split} images but {y.shape} labels in "
                            f"{paths[f'{split}_labels']}; the files do not belong together")
        if len(y) and int(y.max()) >= CLASSES:
            raise DataError(f"{paths[f'{split}_labels']}: labels from {int(y.min())} to "
                            f"{int(y.max())}, expected 0 to {CLASSES - 1} ({name})")
    return (arrays["train_images"].reshape(len(arrays["train_images"]), -1),
            arrays["train_labels"],
            arrays["test_images"].reshape(len(arrays["test_images"]), -1),
            arrays["test_labels"])


def inventory(root: str | None = None) -> list[dict]:
    """What is on disk for each full-size dataset: one row per file with its
    folder, size and check (MD5 of the .gz or SHA-256 of the content where
    known, else the IDX structure)."""
    from .sources import MD5, SHA256_RAW, file_md5

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
