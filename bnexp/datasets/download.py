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

from .idx import FILES, DataError

MIRRORS = {
    "mnist": ["https://ossci-datasets.s3.amazonaws.com/mnist/",
              "https://storage.googleapis.com/cvdf-datasets/mnist/"],
    "fashion-mnist": ["http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"],
}
# Published MD5 of each official .gz.
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
TIMEOUT = 30.0  # seconds without data before a connection is given up
RETRIES = 3  # attempts per mirror for transient errors
CHUNK = 1 << 16


def cache_dir(name: str | None = None) -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    root = Path(base) / "bnexp"
    return root / name if name else root


def file_md5(path: Path) -> str:
    """MD5 of a file, read in chunks."""
    h = hashlib.md5()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(CHUNK), b""):
            h.update(block)
    return h.hexdigest()


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
    dest.mkdir(parents=True, exist_ok=True)
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
    return dest


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
