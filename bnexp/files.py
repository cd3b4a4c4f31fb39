"""Reading and writing files that a user names, safely: regular files only,
every read bounded before anything is allocated.

A path on the command line can be a device (``/dev/zero`` never ends,
``/dev/full`` is replaced by a rename onto it when running as root), a fifo
(opening it blocks until a writer comes), a folder, or a regular file far
larger than anything bnexp writes. ``open_regular`` refuses all but the
last without blocking; ``read_bytes`` also refuses the last; ``check_output``
refuses to replace anything that is not a regular file. Each refusal is a
``FileError`` with one line naming the path and what it is.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import BinaryIO

from .errors import BnexpError

MiB = 1 << 20


class FileError(BnexpError):
    """A path that is not a regular file, or one too large to read; one line."""


def kind(mode: int) -> str:
    """What a stat mode is, in words ("a folder", "a fifo", ...)."""
    for test, words in ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a fifo (named pipe)"),
                        (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                        (stat.S_ISSOCK, "a socket"), (stat.S_ISREG, "a regular file")):
        if test(mode):
            return words
    return "not a regular file"


def _problem(path: Path, exc: OSError) -> FileError:
    if isinstance(exc, FileNotFoundError):
        return FileError(f"{path}: no such file")
    return FileError(f"{path}: cannot read ({exc.strerror or exc})")


def open_regular(path: str | Path, what: str = "file") -> BinaryIO:
    """``path`` opened for reading in binary, or FileError where it is not a
    regular file. Opened without blocking (a fifo would wait for a writer)
    and checked on the open descriptor (no window between check and open)."""
    path = Path(path)
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0)
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        if isinstance(exc, IsADirectoryError):
            raise FileError(f"{path}: is a folder, expected a {what}") from None
        raise _problem(path, exc) from None
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise FileError(f"{path}: is {kind(mode)}, expected a {what} (a regular file)")
        # Left non-blocking: no effect on a real file, but a kernel file that
        # calls itself regular and waits for data (/proc/kmsg) then says so.
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def size_of(fh: BinaryIO) -> int:
    return os.fstat(fh.fileno()).st_size


def _mib(n: int) -> str:
    return f"{n / MiB:.1f} MiB" if n >= MiB else f"{n:,} bytes"


def read_bytes(path: str | Path, limit: int, what: str = "file") -> bytes:
    """The whole of a regular file of at most ``limit`` bytes (checked before
    reading, and again while reading: a file that grows is cut off)."""
    with open_regular(path, what) as fh:
        size = size_of(fh)
        if size > limit:
            raise FileError(f"{path}: {_mib(size)} is too large for a {what} (at most "
                            f"{_mib(limit)})")
        try:
            data = fh.read(limit + 1)
        except OSError as exc:
            raise _problem(Path(path), exc) from None
    if data is None:  # it would block: not a file that holds its data
        raise FileError(f"{path}: waits for data instead of holding it (a kernel or device "
                        f"file?), expected a {what}")
    if len(data) > limit:
        raise FileError(f"{path}: grew past {_mib(limit)} while being read (at most that "
                        f"for a {what})")
    return data


def read_exactly(fh: BinaryIO, n: int, path: str | Path, what: str) -> bytes:
    """``n`` bytes from ``fh`` (a stream, a decompressor), refusing a short one."""
    data = fh.read(n)
    if data is None:
        raise FileError(f"{path}: waits for data instead of holding it, expected a {what}")
    if len(data) != n:
        raise FileError(f"{path}: ends after {len(data):,} of the {n:,} bytes its header "
                        f"promises ({what}: truncated or corrupt)")
    return data


def check_output(path: str | Path) -> None:
    """Refuse to write ``path`` unless it is new or an existing regular file
    (not a symbolic link): writing replaces it by a rename, which would
    replace a device node, a fifo or a link with a file."""
    path = Path(path)
    try:
        if stat.S_ISLNK(os.lstat(path).st_mode):
            raise FileError(f"{path}: is a symbolic link; bnexp replaces a file by renaming a "
                            "new one onto it, which would replace the link: give the path "
                            "it points to")
        mode = os.stat(path).st_mode
    except OSError:
        return  # new; else the write itself says why
    if not stat.S_ISREG(mode):
        what = "a folder" if stat.S_ISDIR(mode) else kind(mode)
        raise FileError(f"{path}: is {what}, not a regular file; bnexp writes only to a new "
                        "path or over a regular file (choose another)")
