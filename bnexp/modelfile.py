"""Model and checkpoint files in a run folder (NumPy ``.npz``, read without
pickle):

    <run_dir>/model.npz          the trained model: its layer list and arrays
    <run_dir>/model_folded.npz   the same with BN folded in (``bnexp fold``)
    <run_dir>/checkpoint.npz     the latest state of an unfinished run
                                 (``train.checkpoint_every``), removed when it ends

Each holds one JSON text (``__meta__``) and arrays named ``model/<layer>.<key>``
(and ``optimizer/<key>`` in a checkpoint). Written atomically through
``store``: a killed writer never leaves a half-written file.
"""

from __future__ import annotations

import io
import json
import math
import struct
import zipfile
import zlib
from pathlib import Path

import numpy as np
from numpy.lib import format as npy

from . import files, store
from .config import MAX_PARAMS
from .engine import Network
from .engine.spec import (
    check_arrays,
    check_description,
    check_values,
    describe,
    rebuild,
)

MODEL_FILE, FOLDED_FILE, CHECKPOINT_FILE = (store.MODEL_FILE, store.FOLDED_FILE,
                                            store.CHECKPOINT_FILE)  # named in store

# Reading is bounded before anything is allocated: the file on disk, and the
# sum of the sizes its entries declare unpacked, are at most MAX_FILE_BYTES
# (the largest checkpoint a config allows: MAX_PARAMS float64 weights and
# Adam's two moments, plus 1 GiB of metadata); an entry unpacks to at most
# MAX_RATIO times its packed size (bnexp stores entries unpacked; deflate's
# own limit is about 1032), plus RATIO_SLACK; at most MAX_ENTRIES entries.
MAX_FILE_BYTES = 3 * 8 * MAX_PARAMS + (1 << 30)
MAX_RATIO, RATIO_SLACK = 100, files.MiB
MAX_ENTRIES = 100_000
# The arrays bnexp writes: parameters, buffers and optimizer state in float32
# or float64; batch counts and Adam's step in int64; __meta__ one unicode text.
ARRAY_DTYPES = ("<f4", "<f8", "<i8")
META = "__meta__"


class ModelFileError(store.StoreError):
    """A model or checkpoint file that is missing or not as bnexp writes it."""


def _npz_bytes(meta: dict, arrays: dict[str, np.ndarray]) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, __meta__=np.array(json.dumps(meta)), **arrays)
    return buf.getvalue()


class _Counted:
    """A stream that counts the bytes read from it (the .npy header's length)."""

    def __init__(self, stream) -> None:
        self.stream, self.count = stream, 0

    def read(self, n: int = -1) -> bytes:
        data = self.stream.read(n)
        self.count += len(data)
        return data


def _declared_entries(fh) -> int | None:
    """The entry count the zip's end record declares, read before zipfile
    makes a record per entry (a few hundred bytes each: a file of empty
    entries would make tens of millions). None where zipfile lacks the helper."""
    end_record = getattr(zipfile, "_EndRecData", None)  # private, in CPython since 2.x
    end = end_record(fh) if end_record else None
    return None if end is None else end[zipfile._ECD_ENTRIES_TOTAL]


def _entries(path: Path, z: zipfile.ZipFile) -> list[tuple[str, zipfile.ZipInfo]]:
    """(array name, entry) for each entry, once its declared sizes are checked."""
    infos = z.infolist()
    if len(infos) > MAX_ENTRIES:
        raise ModelFileError(f"{path}: {len(infos):,} entries (at most {MAX_ENTRIES:,})")
    names = [i.filename for i in infos]
    bad = [n for n in names if not n.endswith(".npy") or not n.isprintable()]
    if bad or len(set(names)) != len(names):
        what = f"an entry {bad[0]!r}, not an .npy array" if bad else "an entry twice"
        raise ModelFileError(f"{path}: holds {what}: not a bnexp model file")
    total = sum(i.file_size for i in infos)
    if total > MAX_FILE_BYTES:
        raise ModelFileError(f"{path}: its entries declare {total:,} bytes unpacked (at most "
                             f"{MAX_FILE_BYTES:,}): not a bnexp model file")
    for i in infos:
        if i.file_size > MAX_RATIO * i.compress_size + RATIO_SLACK:
            raise ModelFileError(f"{path}: {i.filename} unpacks {i.compress_size:,} bytes to "
                                 f"{i.file_size:,} (a zip bomb?): not a bnexp model file")
    return [(n[:-4], i) for n, i in zip(names, infos)]


def _header(path: Path, name: str, stream: _Counted, size: int) -> tuple[tuple, bool, np.dtype]:
    """An entry's .npy header, checked against what bnexp writes and against
    the entry's declared size: (shape, fortran_order, dtype)."""
    version = npy.read_magic(stream)
    if version not in ((1, 0), (2, 0)):
        raise ModelFileError(f"{path}: {name}: .npy format {version}, expected 1.0 or 2.0")
    read = npy.read_array_header_1_0 if version == (1, 0) else npy.read_array_header_2_0
    shape, fortran, dtype = read(stream)
    if name == META:
        if not dtype.str.startswith("<U") or shape != ():
            raise ModelFileError(f"{path}: {META} is {dtype} of shape {shape}, expected one text")
    elif dtype.str not in ARRAY_DTYPES:
        raise ModelFileError(f"{path}: {name} holds {dtype} values (bnexp writes float32, "
                             "float64 and int64 arrays)")
    if any(n < 0 for n in shape):
        raise ModelFileError(f"{path}: {name}: its header declares shape {shape}")
    data = math.prod(shape) * dtype.itemsize
    if stream.count + data != size:
        raise ModelFileError(f"{path}: {name}: its header declares shape {shape} of {dtype} "
                             f"({data:,} bytes), but the entry holds {size - stream.count:,}")
    return shape, fortran, dtype


def _read_into(raw, buf: memoryview, path: Path, name: str) -> None:
    """Fill ``buf`` from ``raw`` (a zip entry, which stops at its declared size)."""
    got = 0
    while got < len(buf):
        n = raw.readinto(buf[got:])
        if not n:
            raise ModelFileError(f"{path}: {name} ends after {got:,} of the {len(buf):,} bytes "
                                 "its header declares (truncated or corrupt)")
        got += n


def _entry(path: Path, z: zipfile.ZipFile, name: str, info: zipfile.ZipInfo) -> np.ndarray:
    """One entry as an array: its header checked, then exactly the bytes it
    declares read into an array of that size, then its values checked."""
    with z.open(info) as raw:
        stream = _Counted(raw)
        shape, fortran, dtype = _header(path, name, stream, info.file_size)
        flat = np.empty(math.prod(shape), dtype=dtype)
        _read_into(raw, memoryview(flat.view(np.uint8)), path, name)
        raw.read(1)  # at the entry's end: zipfile checks its CRC
    array = flat.reshape(shape, order="F" if fortran else "C")
    if dtype.kind == "f" and not np.isfinite(array).all():
        what = "NaN" if np.isnan(array).any() else "inf"
        raise ModelFileError(f"{path}: holds {what} in {name}; bnexp saves only finite "
                             "values (a damaged or edited file)")
    return array


def _read_npz(path: Path) -> tuple[dict, dict[str, np.ndarray]]:
    """The meta and arrays of a model or checkpoint file, every size checked
    before it is allocated; ModelFileError (one line) for anything else."""
    path = Path(path)
    try:
        with files.open_regular(path, "model file") as fh:
            size = files.size_of(fh)
            if size > MAX_FILE_BYTES:
                raise ModelFileError(f"{path}: {size:,} bytes is too large for a model file "
                                     f"(at most {MAX_FILE_BYTES:,})")
            count = _declared_entries(fh)
            if count is not None and count > MAX_ENTRIES:
                raise ModelFileError(f"{path}: declares {count:,} entries (at most "
                                     f"{MAX_ENTRIES:,}): not a bnexp model file")
            with zipfile.ZipFile(fh) as z:
                arrays = {name: _entry(path, z, name, info) for name, info in _entries(path, z)}
    except ModelFileError:
        raise
    except files.FileError as exc:
        raise ModelFileError(str(exc)) from None
    except (OSError, EOFError, ValueError, TypeError, SyntaxError, RuntimeError, zlib.error,
            struct.error, NotImplementedError, zipfile.BadZipFile, zipfile.LargeZipFile) as exc:
        why = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ModelFileError(f"{path}: not a bnexp model file ({why})") from None
    return _meta(path, arrays.pop(META, None)), arrays


def _meta(path: Path, text: np.ndarray | None) -> dict:
    if text is None:
        raise ModelFileError(f"{path}: no {META} entry: not a bnexp model file")
    try:
        meta = json.loads(str(text[()]))
    except (ValueError, RecursionError) as exc:
        raise ModelFileError(f"{path}: its {META} is not JSON ({exc})") from None
    if not isinstance(meta, dict):
        raise ModelFileError(f"{path}: its {META} is not a JSON object")
    return meta


def model_bytes(net: Network, /, **meta) -> bytes:
    """``net`` (its layer list, parameters and buffers) as .npz bytes; ``meta``
    adds JSON-able facts (the run's name, its dataset)."""
    arrays = {f"model/{k}": v for k, v in net.state_dict().items()}
    return _npz_bytes({"kind": "model", "network": describe(net), **meta}, arrays)


def save_model(path: Path, net: Network, /, **meta) -> Path:
    store.atomic_write(path, model_bytes(net, **meta))
    return Path(path)


def _parts(path: Path, arrays: dict[str, np.ndarray],
           prefixes: tuple[str, ...]) -> list[dict[str, np.ndarray]]:
    """The arrays under each prefix (without it); an array under none is refused."""
    stray = [k for k in arrays if not k.startswith(prefixes)]
    if stray:
        raise ModelFileError(f"{path}: holds an array {stray[0]!r}, not one of "
                             f"{' or '.join(p + '<layer>.<key>' for p in prefixes)}")
    return [{k.removeprefix(p): v for k, v in arrays.items() if k.startswith(p)}
            for p in prefixes]


def _kind(path: Path, meta: dict, want: str) -> None:
    kind = meta.get("kind")
    if kind != want:
        what = f"a {kind} file" if kind in ("model", "checkpoint") else "no kind bnexp writes"
        raise ModelFileError(f"{path}: holds {what}, not a {want}")


def load_model(path: Path) -> tuple[Network, dict]:
    """The network a model file holds, ready for eval mode, and its meta.
    Checked before anything is built: the file (``_read_npz``), its layer
    list (``spec.check_description``) and that its arrays are exactly those
    the layers hold (``spec.check_arrays``); ModelFileError, one line."""
    meta, arrays = _read_npz(path)
    _kind(path, meta, "model")
    (state,) = _parts(path, arrays, ("model/",))
    desc = meta.get("network")
    try:
        check_description(desc)
        check_arrays(desc, {k: (v.shape, v.dtype) for k, v in state.items()}, "model/")
        check_values(desc, state, "model/")
    except ValueError as exc:
        raise ModelFileError(f"{path}: {exc}") from None
    try:
        net = rebuild(desc)
        net.load_state_dict(state)
    except (KeyError, ValueError, TypeError) as exc:
        raise ModelFileError(f"{path}: cannot rebuild the model ({type(exc).__name__}: "
                             f"{exc})") from None
    return net, meta


def checkpoint_bytes(ckpt, config_text: str) -> bytes:
    """A ``checkpoint.Checkpoint`` and the config it belongs to, as .npz bytes."""
    from .checkpoint import RECORDS

    meta = {"kind": "checkpoint", "config": config_text, "epoch": ckpt.epoch,
            "step": ckpt.step, "elapsed": ckpt.elapsed, "rngs": ckpt.rngs,
            **{name: getattr(ckpt, name) for name in RECORDS}}
    arrays = {**{f"model/{k}": v for k, v in ckpt.model.items()},
              **{f"optimizer/{k}": v for k, v in ckpt.optimizer.items()}}
    return _npz_bytes(meta, arrays)


def _checkpoint_meta(path: Path, meta: dict) -> None:
    """Each fact a checkpoint's meta holds, of the type training reads back."""
    from .checkpoint import RECORDS

    def count(v) -> bool:
        return isinstance(v, int) and not isinstance(v, bool) and v >= 0

    def seconds(v) -> bool:
        return (isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
                and v >= 0)

    checks = {"config": (lambda v: isinstance(v, str), "the config's text"),
              "epoch": (count, "an integer >= 0"), "step": (count, "an integer >= 0"),
              "elapsed": (seconds, "a finite number >= 0"),
              "rngs": (lambda v: isinstance(v, dict)
                       and all(isinstance(s, dict) for s in v.values()), "random streams"),
              **{name: (lambda v: isinstance(v, list) and all(isinstance(r, dict) for r in v),
                        "a list of rows") for name in RECORDS}}
    for key, (ok, want) in checks.items():
        if key not in meta:
            raise ModelFileError(f"{path}: incomplete checkpoint (no {key!r})")
        if not ok(meta[key]):
            raise ModelFileError(f"{path}: its {key} is not {want}: not a usable checkpoint")


def load_checkpoint(path: Path):
    """``(Checkpoint, config_text)`` from a checkpoint file: read and checked
    as a model file is (sizes, dtypes, finite values) and its facts typed.
    Whether its arrays fit the config's model is for training to check."""
    from .checkpoint import RECORDS, Checkpoint

    meta, arrays = _read_npz(path)
    _kind(path, meta, "checkpoint")
    model, optimizer = _parts(path, arrays, ("model/", "optimizer/"))
    _checkpoint_meta(path, meta)
    ckpt = Checkpoint(meta["epoch"], meta["step"], meta["elapsed"], model, optimizer,
                      meta["rngs"], **{name: meta[name] for name in RECORDS})
    return ckpt, meta["config"]
