"""Download full-size MNIST / Fashion-MNIST / CIFAR-10 once, verify, cache.

Each file comes from the first mirror that serves it with the pinned MD5 of
the official ``.gz`` (CIFAR-10: of its one ``.tar.gz``); it is downloaded to a
temporary file in the cache folder and renamed only once verified, so the
cache never holds a partial or corrupt file. CIFAR-10's archive is then
unpacked by ``cifar.extract`` (its six record files only) and removed. Files
found in local folders are checked by the SHA-256 of their decompressed bytes
where known (Debian recompresses its copies, so their ``.gz`` checksums
differ) and always structurally (``idx.read_idx``, ``cifar.read_batch``).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import socket
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

from . import cifar
from .idx import locate, search_dirs
from .sources import (
    CHUNK,
    FILES,
    MD5,
    MIRRORS,
    SHA256_RAW,
    DataError,
    cache_dir,
    file_md5,
)

__all__ = ["MD5", "MIRRORS", "SHA256_RAW", "cache_dir", "download", "file_md5", "find_files",
           "load_located", "located", "verified_copy"]

TIMEOUT = 30.0  # seconds without data before a connection is given up
RETRIES = 3  # attempts per mirror for transient errors


def _is_offline(exc: BaseException) -> bool:
    """No route to anything: name resolution failed or the network is unreachable."""
    reason = getattr(exc, "reason", exc)
    return isinstance(reason, socket.gaierror) or (
        isinstance(reason, OSError) and reason.errno in (101, 113))  # ENETUNREACH, EHOSTUNREACH


def _fetch_one(url: str, dest_dir: Path, filename: str, md5: str | None, timeout: float,
               progress: bool) -> Path:
    """Download ``url`` into ``dest_dir/filename`` via a verified temporary file."""
    fd, tmp_name = tempfile.mkstemp(prefix=f".{filename}.", suffix=".part", dir=dest_dir)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as resp:
            total = int(resp.headers.get("Content-Length") or 0) or None
            bar = None
            if progress:
                from tqdm import tqdm

                bar = tqdm(total=total, unit="B", unit_scale=True, desc=filename, leave=False,
                           disable=None)
            h = hashlib.md5()
            try:
                for block in iter(lambda: resp.read(CHUNK), b""):
                    out.write(block)
                    h.update(block)
                    if bar is not None:
                        bar.update(len(block))
            finally:
                if bar is not None:
                    bar.close()
        if md5 is not None and h.hexdigest() != md5:
            raise DataError(f"{filename} from {url}: MD5 {h.hexdigest()} does not match the "
                            f"published {md5}; the file was discarded")
        final = dest_dir / filename
        os.replace(tmp, final)
        return final
    finally:
        tmp.unlink(missing_ok=True)


def download(name: str, dest: Path | None = None, *, mirrors: list[str] | None = None,
             md5: dict[str, str] | None = None, timeout: float | None = None,
             retries: int | None = None, progress: bool = True) -> Path:
    """Fetch the four files of ``name`` into ``dest`` (the cache by default),
    skipping files already there with the right checksum; for ``cifar10``,
    its archive, unpacked into ``dest/cifar-10-batches-bin/`` unless six
    readable files are already in ``dest``. Returns ``dest``."""
    if name not in MIRRORS:
        raise DataError(f"download: got {name!r}, expected one of {', '.join(MIRRORS)}")
    dest = Path(dest) if dest is not None else cache_dir(name)
    mirrors = MIRRORS[name] if mirrors is None else mirrors
    md5 = MD5[name] if md5 is None else md5
    timeout = TIMEOUT if timeout is None else timeout
    retries = RETRIES if retries is None else retries
    created = [p for p in (dest, *dest.parents) if not p.exists()]
    try:
        dest.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DataError(f"{dest}: cannot create the folder ({exc.strerror or exc})") from None
    try:
        if name == cifar.NAME:
            _fetch_cifar(dest, mirrors, md5, timeout, retries, progress)
        else:
            _fetch_all(name, dest, mirrors, md5, timeout, retries, progress)
    except BaseException:
        for folder in created:  # leave no empty folder behind
            try:
                folder.rmdir()
            except OSError:
                break
        raise
    return dest


IDX_WORDS = f"the four files ({', '.join(s + '.gz' for s in FILES.values())})"


def _fetch_all(name, dest, mirrors, md5, timeout, retries, progress) -> None:
    for stem in FILES.values():
        filename = f"{stem}.gz"
        target = dest / filename
        if target.is_file() and (filename not in md5 or file_md5(target) == md5[filename]):
            continue
        _fetch_verified(name, filename, dest, mirrors, md5, timeout, retries, progress, IDX_WORDS)


def _fetch_cifar(dest, mirrors, md5, timeout, retries, progress) -> None:
    """The archive into a temporary folder in ``dest``, verified, unpacked, removed."""
    if _cifar_in(dest) is not None:
        return
    staging = Path(tempfile.mkdtemp(prefix=f".{cifar.ARCHIVE}.", suffix=".part", dir=dest))
    try:
        archive = _fetch_verified(cifar.NAME, cifar.ARCHIVE, staging, mirrors, md5, timeout,
                                  retries, progress, cifar.FILES_WORDS, shown_dest=dest)
        cifar.extract(archive, dest)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _cifar_in(dest: Path) -> Path | None:
    """The folder in ``dest`` (itself or its cifar-10-batches-bin/) whose six files read."""
    for folder in (dest, dest / cifar.FOLDER):
        paths = {f: folder / f for f in cifar.FILES}
        if all(p.is_file() for p in paths.values()):
            try:
                cifar.load_raw(paths)
            except DataError:
                continue
            return folder
    return None


def _fetch_verified(name, filename, dest, mirrors, md5, timeout, retries, progress, what,
                    shown_dest=None) -> Path:
    """``filename`` from the first mirror that serves it with its pinned MD5,
    into ``dest``; transient errors are retried. ``what`` names the files a
    user could put in ``shown_dest`` (default ``dest``) by hand."""
    failures, offline = [], 0
    for mirror in mirrors:
        url = mirror.rstrip("/") + "/" + filename
        for attempt in range(retries):
            try:
                return _fetch_one(url, dest, filename, md5.get(filename), timeout, progress)
            except DataError as exc:  # checksum mismatch: this mirror is wrong, try the next
                failures.append(str(exc))
                break
            except urllib.error.HTTPError as exc:
                failures.append(f"{url}: HTTP {exc.code}")
                if exc.code < 500:
                    break
            except (urllib.error.URLError, OSError, TimeoutError) as exc:
                if _is_offline(exc):
                    offline += 1
                    failures.append(f"{url}: unreachable")
                    break
                reason = getattr(exc, "reason", exc)
                failures.append(f"{url}: {reason or type(exc).__name__}")
            if attempt + 1 < retries:
                time.sleep(min(2.0 ** attempt * 0.5, 4.0))
    if offline == len(mirrors):
        raise DataError(
            f"{name}: cannot download {filename}: no network. Put {what} in "
            f"{shown_dest or dest} or set data.root / $BNEXP_DATA to their folder")
    raise DataError(f"{name}: could not download {filename} from any mirror: "
                    + "; ".join(failures))


def located(name: str, root: str | None) -> dict[str, Path] | None:
    """The files of ``name`` in the first searched folder holding them all, or None."""
    return cifar.locate(root) if name == cifar.NAME else locate(name, root)


def load_located(name: str, paths: dict[str, Path]):
    """(train_x, train_y, test_x, test_y) uint8 from located files, fully checked."""
    from .idx import load_raw

    return cifar.load_raw(paths) if name == cifar.NAME else load_raw(name, paths)


def verified_copy(name: str, root: str | None = None) -> Path | None:
    """The folder of a local copy of ``name`` that reads and checks (by SHA-256
    where known), or None."""
    found = located(name, root)
    if found is None:
        return None
    try:
        load_located(name, found)
    except DataError:
        return None
    return next(iter(found.values())).parent


def find_files(name: str, root: str | None, fetch: bool = True) -> dict[str, Path]:
    """Locate the files of ``name``, downloading them into the cache if no folder has them."""
    found = located(name, root)
    if found is not None:
        return found
    looked = ", ".join(str(d) for d in search_dirs(name, root))
    if not fetch:
        what = (cifar.FILES_WORDS if name == cifar.NAME else
                f"the four IDX files ({', '.join(s + '.gz' for s in FILES.values())})")
        raise DataError(
            f"{name}: {what} were not found; looked in: {looked}. Put them in a directory "
            f"and set data.root or $BNEXP_DATA to it, or run: bnexp data download {name}")
    try:
        download(name)
    except DataError as exc:
        raise DataError(f"{exc} (no local copy in: {looked})") from None
    found = located(name, root)
    if found is None:  # pragma: no cover - download() raises when it cannot deliver
        raise DataError(f"{name}: download finished but the files are missing; looked in: {looked}")
    return found
