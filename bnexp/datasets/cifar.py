"""CIFAR-10 from its binary version: the six record files of
``cifar-10-binary.tar.gz`` (folder ``cifar-10-batches-bin/``), located,
checked, read, and safely extracted from the verified archive.

A file is a run of 3,073-byte records: one label byte (0..9), then 3,072
pixel bytes, 1,024 red, 1,024 green, 1,024 blue, each plane 32x32 row-major.
Rows keep that order, so ``x.reshape(N, 3, 32, 32)`` is the NCHW image.

Files are looked for where the IDX datasets are (``idx.search_dirs``): in
``data.root`` / ``$BNEXP_DATA`` (as given and with ``cifar10`` appended) and
the bnexp cache; a folder counts when it holds the six files directly or in
``cifar-10-batches-bin/``. Memory: the training rows are 154 MB of bytes,
float32 after preprocessing 614 MB.
"""

from __future__ import annotations

import functools
import os
import shutil
import tarfile
import tempfile
import zlib
from pathlib import Path, PurePosixPath

import numpy as np

from .. import files
from .idx import search_dirs
from .sources import CHUNK, DataError

NAME = "cifar10"
ARCHIVE = "cifar-10-binary.tar.gz"
FOLDER = "cifar-10-batches-bin"  # the archive's folder of record files
TRAIN_FILES = tuple(f"data_batch_{i}.bin" for i in range(1, 6))
TEST_FILES = ("test_batch.bin",)
FILES = TRAIN_FILES + TEST_FILES
PIXELS = 3 * 32 * 32
RECORD = 1 + PIXELS  # bytes per record: the label, then the pixels
CLASSES = 10
# Records in each file of the real set. The record-count check reads this;
# tests that generate small files monkeypatch it (tests/cifardata.use_small).
RECORDS_PER_FILE = {"train": 10_000, "test": 10_000}
MAX_MEMBER_BYTES = 10_000 * RECORD  # the most extracted from the archive per file
MAX_MEMBERS = 1_000  # archive entries read before giving up (the real one has 9)
FILES_WORDS = ("the six CIFAR-10 binary files (data_batch_1.bin .. data_batch_5.bin, "
               f"test_batch.bin, directly or in {FOLDER}/)")


def _split(filename: str) -> str:
    return "train" if filename in TRAIN_FILES else "test"


def locate(root: str | None) -> dict[str, Path] | None:
    """The six files of the first searched folder holding all of them, by file name."""
    for d in search_dirs(NAME, root):
        for folder in (d, d / FOLDER):
            found = {f: folder / f for f in FILES}
            if all(p.is_file() for p in found.values()):
                return found
    return None


def read_batch(path: Path, expected: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """One record file: pixels (N, 3072) uint8 in file order (channel, row,
    column) and labels (N,) uint8 in 0..9. ``expected`` records (default: the
    real file's count). Bounded: a regular file whose size is checked before
    anything is read."""
    if expected is None:
        expected = RECORDS_PER_FILE[_split(path.name)]
    try:
        with files.open_regular(path, "CIFAR-10 batch file") as fh:
            size = files.size_of(fh)
            if size % RECORD:
                raise DataError(f"{path}: {size:,} bytes, not a whole number of {RECORD:,}-byte "
                                f"records; expected {expected * RECORD:,} ({expected:,} "
                                "records; truncated or corrupt)")
            if size // RECORD != expected:
                raise DataError(f"{path}: {size // RECORD:,} records, expected {expected:,} "
                                f"(the CIFAR-10 file {path.name} holds {expected:,})")
            data = files.read_exactly(fh, size, path, f"{expected:,} records")
            if fh.read(1):
                raise DataError(f"{path}: grew past {size:,} bytes while being read")
    except files.FileError as exc:
        raise DataError(str(exc)) from None
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({exc.strerror or exc})") from None
    records = np.frombuffer(data, dtype=np.uint8).reshape(expected, RECORD)
    labels = records[:, 0]
    bad = np.flatnonzero(labels >= CLASSES)
    if bad.size:
        i = int(bad[0])
        raise DataError(f"{path}: record {i} has label {int(labels[i])}, expected 0 to "
                        f"{CLASSES - 1} ({bad.size:,} of {expected:,} labels out of range; "
                        "not CIFAR-10)")
    return records[:, 1:], labels


def load_raw(paths: dict[str, Path]):
    """(train_x (50000, 3072) uint8, train_y, test_x (10000, 3072), test_y)
    from the six located files, each checked (:func:`read_batch`). Read once
    per process for unchanged files; the arrays are read-only."""
    stamp = tuple((f, str(paths[f]), paths[f].stat().st_mtime_ns, paths[f].stat().st_size)
                  for f in FILES)
    return _load_checked(stamp, tuple(sorted(RECORDS_PER_FILE.items())))


@functools.lru_cache(maxsize=1)  # 184 MB a copy; a check then a load reuse it
def _load_checked(stamp: tuple, counts: tuple):
    paths = {f: Path(p) for f, p, _, _ in stamp}
    per_file = dict(counts)
    out = []
    for group in (TRAIN_FILES, TEST_FILES):
        n = per_file[_split(group[0])]
        x = np.empty((n * len(group), PIXELS), dtype=np.uint8)  # (N, 3072)
        y = np.empty(n * len(group), dtype=np.uint8)
        for i, f in enumerate(group):  # one file's bytes at a time next to the rows
            x[i * n:(i + 1) * n], y[i * n:(i + 1) * n] = read_batch(paths[f], n)
        x.flags.writeable = y.flags.writeable = False  # shared by every caller
        out += [x, y]
    return tuple(out)


def inventory(root: str | None = None) -> list[dict]:
    """``bnexp data ls`` rows for CIFAR-10: one per file found (its folder,
    size and structural check), or one saying it is not found."""
    found = locate(root)
    if found is None:
        return [{"dataset": NAME, "file": "-", "folder": "not found", "bytes": 0, "check": "-"}]
    rows = []
    for path in found.values():
        try:
            read_batch(path)
            check = "structure ok"
        except DataError as exc:
            check = f"BAD: {exc}"
        rows.append({"dataset": NAME, "file": path.name, "folder": str(path.parent),
                     "bytes": path.stat().st_size, "check": check})
    return rows


def extract(archive: Path, dest: Path) -> Path:
    """Extract the six record files of a (verified) ``archive`` into
    ``dest/cifar-10-batches-bin/`` (``dest`` exists); returns that folder.
    Only those six members are written; other plain files and folders of the
    archive are skipped, and an archive holding a link, a device, a path
    outside its folder, an oversized or repeated record file is refused
    whole. Files are staged in a temporary folder in ``dest``, checked
    (:func:`read_batch`), and only then renamed into place."""
    wanted = {f"{FOLDER}/{f}": f for f in FILES}
    staging = Path(tempfile.mkdtemp(prefix=f".{NAME}.", suffix=".part", dir=dest))
    try:
        seen: set[str] = set()
        try:
            with tarfile.open(archive, "r:gz") as tar:
                for count, member in enumerate(tar, 1):
                    if count > MAX_MEMBERS:
                        raise DataError(f"{archive}: more than {MAX_MEMBERS:,} entries; not "
                                        f"{ARCHIVE}")
                    _check_member(archive, member, wanted, seen)
                    if member.name in wanted:
                        _copy_member(tar, member, staging / wanted[member.name])
                        seen.add(member.name)
        except (tarfile.TarError, EOFError, zlib.error, OSError) as exc:
            raise DataError(f"{archive}: cannot read the archive ({exc})") from None
        missing = [f for m, f in wanted.items() if m not in seen]
        if missing:
            raise DataError(f"{archive}: lacks {', '.join(f'{FOLDER}/{f}' for f in missing)}; "
                            f"not {ARCHIVE}")
        for f in FILES:
            read_batch(staging / f)
        final = dest / FOLDER
        try:
            final.mkdir(exist_ok=True)
            for f in FILES:
                os.replace(staging / f, final / f)
        except OSError as exc:
            raise DataError(f"{final}: cannot write the extracted files there "
                            f"({exc.strerror or exc})") from None
        return final
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _check_member(archive: Path, member: tarfile.TarInfo, wanted: dict, seen: set) -> None:
    """Refuse what extracting could abuse: links, devices, paths that leave the folder."""
    name = member.name
    where = f"{archive}: member {name!r}"
    if name.startswith("/") or ".." in PurePosixPath(name).parts:
        raise DataError(f"{where} points outside the archive's folder; the archive is refused")
    if member.issym() or member.islnk():
        raise DataError(f"{where} is a link (to {member.linkname!r}); the archive is refused")
    if not (member.isreg() or member.isdir()):
        raise DataError(f"{where} is not a plain file or folder; the archive is refused")
    if name in wanted:
        if not member.isreg():
            raise DataError(f"{where} is not a plain file; the archive is refused")
        if name in seen:
            raise DataError(f"{where} appears twice; the archive is refused")
        if member.size > MAX_MEMBER_BYTES:
            raise DataError(f"{where} is {member.size:,} bytes, at most {MAX_MEMBER_BYTES:,} "
                            f"for a CIFAR-10 file; the archive is refused")


def _copy_member(tar: tarfile.TarFile, member: tarfile.TarInfo, target: Path) -> None:
    """Stream one checked member to ``target``, at most its declared size."""
    src = tar.extractfile(member)
    left = member.size
    with src, open(target, "xb") as out:
        while left:
            block = src.read(min(CHUNK, left))
            if not block:
                raise DataError(f"{target.name}: the archive ends inside it (truncated)")
            out.write(block)
            left -= len(block)
