"""Write small CIFAR-10 files in the real binary format, and the archive
that holds them, deterministically from a seed; for tests.

The real files hold 10,000 records each; bnexp's reader checks that count.
``use_small`` points the check at the generated counts (the test hook
``bnexp.datasets.cifar.RECORDS_PER_FILE``) for one test:

    def test_x(tmp_path, monkeypatch):
        cifardata.use_small(monkeypatch, n_train=100, n_test=50)
        cifardata.write_folder(tmp_path / "cifar10", n_train=100, n_test=50)
        cfg = DataConfig(dataset="cifar10", root=str(tmp_path), n_train=50, n_test=20)
"""

import gzip
import io
import tarfile
from pathlib import Path

import numpy as np

from bnexp.datasets import cifar

BATCHES = len(cifar.TRAIN_FILES)  # the training records are split over five files


def arrays(n_train: int = 100, n_test: int = 50, seed: int = 0):
    """(x_train (n_train, 3072) uint8, y_train, x_test, y_test) as the
    written files hold them; labels balanced over the ten classes, shuffled."""
    rng = np.random.default_rng(seed)
    out = []
    for n in (n_train, n_test):
        out.append(rng.integers(0, 256, (n, cifar.PIXELS), dtype=np.uint8))
        out.append(rng.permutation(np.arange(n) % cifar.CLASSES).astype(np.uint8))
    return tuple(out)


def batch_bytes(x: np.ndarray, y: np.ndarray) -> bytes:
    """Records of one CIFAR-10 file: per row, the label byte then its 3072 pixels."""
    records = np.empty((len(y), cifar.RECORD), dtype=np.uint8)
    records[:, 0] = y
    records[:, 1:] = x
    return records.tobytes()


def files(n_train: int = 100, n_test: int = 50, seed: int = 0) -> dict[str, bytes]:
    """The six files' contents by name; ``n_train`` a multiple of 5 (five equal batches)."""
    if n_train % BATCHES:
        raise ValueError(f"n_train: got {n_train}, expected a multiple of {BATCHES}")
    x_train, y_train, x_test, y_test = arrays(n_train, n_test, seed)
    per = n_train // BATCHES
    out = {f: batch_bytes(x_train[i * per:(i + 1) * per], y_train[i * per:(i + 1) * per])
           for i, f in enumerate(cifar.TRAIN_FILES)}
    out[cifar.TEST_FILES[0]] = batch_bytes(x_test, y_test)
    return out


def write_folder(path: Path, n_train: int = 100, n_test: int = 50, seed: int = 0,
                 inner: bool = True) -> Path:
    """The six files in ``path/cifar-10-batches-bin/`` (``inner``) or in
    ``path`` itself; returns the folder that holds them."""
    folder = Path(path) / cifar.FOLDER if inner else Path(path)
    folder.mkdir(parents=True, exist_ok=True)
    for name, data in files(n_train, n_test, seed).items():
        (folder / name).write_bytes(data)
    return folder


def use_small(monkeypatch, n_train: int = 100, n_test: int = 50) -> None:
    """Make bnexp's record-count check expect the generated files' counts."""
    monkeypatch.setattr(cifar, "RECORDS_PER_FILE", {"train": n_train // BATCHES,
                                                    "test": n_test})


def member(name: str, data: bytes = b"", kind: bytes = tarfile.REGTYPE,
           linkname: str = "") -> tuple[tarfile.TarInfo, bytes]:
    """A tar entry (for ``write_archive``'s ``extra``): a file, folder or link."""
    info = tarfile.TarInfo(name)
    info.type, info.linkname, info.mtime = kind, linkname, 0
    info.size = len(data) if kind == tarfile.REGTYPE else 0
    info.mode = 0o755 if kind == tarfile.DIRTYPE else 0o644
    return info, data


def archive_bytes(n_train: int = 100, n_test: int = 50, seed: int = 0, extra=(),
                  omit=()) -> bytes:
    """``cifar-10-binary.tar.gz`` as the real one lays it out (its folder, the
    six files, ``batches.meta.txt`` and ``readme.html``), then the ``extra``
    entries; files named in ``omit`` are left out. Byte for byte the same
    for the same arguments (mtime 0)."""
    entries = [member(cifar.FOLDER, kind=tarfile.DIRTYPE)]
    entries += [member(f"{cifar.FOLDER}/{name}", data)
                for name, data in files(n_train, n_test, seed).items() if name not in omit]
    entries += [member(f"{cifar.FOLDER}/batches.meta.txt", b"airplane\nautomobile\n"),
                member(f"{cifar.FOLDER}/readme.html", b"<html></html>\n")]
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for info, data in [*entries, *extra]:
            tar.addfile(info, io.BytesIO(data) if info.isreg() else None)
    return gzip.compress(buf.getvalue(), mtime=0)


def write_archive(path: Path, n_train: int = 100, n_test: int = 50, seed: int = 0, extra=(),
                  omit=()) -> Path:
    """``archive_bytes`` written to ``path/cifar-10-binary.tar.gz``; returns that file."""
    Path(path).mkdir(parents=True, exist_ok=True)
    target = Path(path) / cifar.ARCHIVE
    target.write_bytes(archive_bytes(n_train, n_test, seed, extra, omit))
    return target
