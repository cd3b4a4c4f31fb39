"""Download full-size MNIST / Fashion-MNIST once, verify, cache.

Each file comes from the first mirror that serves it with the pinned MD5 of
the official ``.gz``; it is downloaded to a temporary file in the cache
folder and renamed only once verified, so the cache never holds a partial or
corrupt file. Files found in local folders are checked by the SHA-256 of
their decompressed bytes where known (Debian recompresses its copies, so
their ``.gz`` checksums differ) and always structurally (``idx.read_idx``).
"""

from __future__ import annotations

import hashlib
import os
import socket
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

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

__all__ = ["MD5", "MIRRORS", "SHA256_RAW", "cache_dir", "download", "file_md5", "find_files"]

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
    skipping files already there with the right checksum. Returns ``dest``."""
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
        _fetch_all(name, dest, mirrors, md5, timeout, retries, progress)
    except BaseException:
        for folder in created:  # leave no empty folder behind
            try:
                folder.rmdir()
            except OSError:
                break
        raise
    return dest


def _fetch_all(name, dest, mirrors, md5, timeout, retries, progress) -> None:
    for stem in FILES.values():
        filename = f"{stem}.gz"
        target = dest / filename
        if target.is_file() and (filename not in md5 or file_md5(target) == md5[filename]):
            continue
        failures, offline, ok = [], 0, False
        for mirror in mirrors:
            url = mirror.rstrip("/") + "/" + filename
            for attempt in range(retries):
                try:
                    _fetch_one(url, dest, filename, md5.get(filename), timeout, progress)
                    ok = True
                    break
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
            if ok:
                break
        if not ok:
            if offline == len(mirrors):
                raise DataError(
                    f"{name}: cannot download {filename}: no network. Put the four files "
                    f"({', '.join(s + '.gz' for s in FILES.values())}) in {dest} or set "
                    "data.root / $BNEXP_DATA to their folder")
            raise DataError(f"{name}: could not download {filename} from any mirror: "
                            + "; ".join(failures))


def verified_copy(name: str, root: str | None = None) -> Path | None:
    """The folder of a local copy of ``name`` that reads and checks (by SHA-256
    where known), or None."""
    from .idx import load_raw

    found = locate(name, root)
    if found is None:
        return None
    try:
        load_raw(name, found)
    except DataError:
        return None
    return next(iter(found.values())).parent


def find_files(name: str, root: str | None, fetch: bool = True) -> dict[str, Path]:
    """Locate the four files, downloading them into the cache if no folder has them."""
    found = locate(name, root)
    if found is not None:
        return found
    looked = ", ".join(str(d) for d in search_dirs(name, root))
    if not fetch:
        raise DataError(
            f"{name}: the four IDX files ({', '.join(s + '.gz' for s in FILES.values())}) "
            f"were not found; looked in: {looked}. Put them in a directory and set data.root "
            f"or $BNEXP_DATA to it, or run: bnexp data download {name}")
    try:
        download(name)
    except DataError as exc:
        raise DataError(f"{exc} (no local copy in: {looked})") from None
    found = locate(name, root)
    if found is None:  # pragma: no cover - download() raises when it cannot deliver
        raise DataError(f"{name}: download finished but the files are missing; looked in: {looked}")
    return found
