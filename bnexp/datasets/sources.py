"""Where the full-size datasets live and how their files are checked: the
four IDX file names, system folders, the bnexp cache, download mirrors and
published checksums (CIFAR-10's one archive included). Shared by the readers
(``idx``, ``cifar``) and the downloader (``download``), which sit above it."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from .. import files
from ..errors import BnexpError

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
MIRRORS = {
    "mnist": ["https://ossci-datasets.s3.amazonaws.com/mnist/",
              "https://storage.googleapis.com/cvdf-datasets/mnist/"],
    "fashion-mnist": ["http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"],
    "cifar10": ["https://www.cs.toronto.edu/~kriz/"],
}
# Published MD5 of each official .gz (CIFAR-10: of its archive, from the table
# on https://www.cs.toronto.edu/~kriz/cifar.html).
MD5 = {
    "mnist": {
        "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
        "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
        "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
        "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
    },
    "fashion-mnist": {
        "train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
        "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
        "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
        "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310",
    },
    "cifar10": {"cifar-10-binary.tar.gz": "c32a1d4ab5d03f1284b67883e8d87530"},
}
# SHA-256 of the decompressed bytes, where known (from Debian's dataset-fashion-mnist).
SHA256_RAW = {
    "fashion-mnist": {
        "train-images-idx3-ubyte": "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
        "train-labels-idx1-ubyte": "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
        "t10k-images-idx3-ubyte": "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
        "t10k-labels-idx1-ubyte": "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
    },
}
CHUNK = 1 << 16


class DataError(BnexpError):
    """A dataset could not be found or read; the message says why and where."""


def cache_dir(name: str | None = None) -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    root = Path(base) / "bnexp"
    return root / name if name else root


def file_md5(path: Path) -> str:
    """MD5 of a regular file, read in chunks."""
    h = hashlib.md5()
    try:
        fh = files.open_regular(path, "dataset file")
    except files.FileError as exc:
        raise DataError(str(exc)) from None
    with fh:
        for block in iter(lambda: fh.read(CHUNK), b""):
            h.update(block)
    return h.hexdigest()


def verify_raw(name: str, stem: str, raw: bytes, path: Path) -> bool:
    """Check decompressed bytes against the known SHA-256; True if checked, False
    if none is known; raise DataError on a mismatch."""
    known = SHA256_RAW.get(name, {}).get(stem)
    if known is None:
        return False
    got = hashlib.sha256(raw).hexdigest()
    if got != known:
        raise DataError(f"{path}: SHA-256 of the decompressed data is {got}, expected {known} "
                        f"for {name}; the file is corrupt or not {name}")
    return True
