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
import zipfile
from pathlib import Path

import numpy as np

from . import store
from .engine import Network
from .engine.spec import describe, rebuild

MODEL_FILE, FOLDED_FILE, CHECKPOINT_FILE = (store.MODEL_FILE, store.FOLDED_FILE,
                                            store.CHECKPOINT_FILE)  # named in store


class ModelFileError(store.StoreError):
    """A model or checkpoint file that is missing or not as bnexp writes it."""


def _npz_bytes(meta: dict, arrays: dict[str, np.ndarray]) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, __meta__=np.array(json.dumps(meta)), **arrays)
    return buf.getvalue()


def _read_npz(path: Path) -> tuple[dict, dict[str, np.ndarray]]:
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"{path}: no such file")
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
        meta = json.loads(str(arrays.pop("__meta__")))
    except (OSError, ValueError, KeyError, zipfile.BadZipFile, json.JSONDecodeError) as exc:
        raise ModelFileError(f"{path}: not a bnexp model file ({type(exc).__name__}: "
                             f"{exc})") from None
    return meta, arrays


def model_bytes(net: Network, **meta) -> bytes:
    """``net`` (its layer list, parameters and buffers) as .npz bytes; ``meta``
    adds JSON-able facts (the run's name, its dataset)."""
    arrays = {f"model/{k}": v for k, v in net.state_dict().items()}
    return _npz_bytes({"kind": "model", "network": describe(net), **meta}, arrays)


def save_model(path: Path, net: Network, **meta) -> Path:
    store.atomic_write(path, model_bytes(net, **meta))
    return Path(path)


def load_model(path: Path) -> tuple[Network, dict]:
    """The network a model file holds, ready for eval mode, and its meta."""
    meta, arrays = _read_npz(path)
    if meta.get("kind") != "model":
        raise ModelFileError(f"{path}: holds a {meta.get('kind', 'different')} file, not a model")
    try:
        net = rebuild(meta["network"])
        net.load_state_dict({k.removeprefix("model/"): v for k, v in arrays.items()})
    except (KeyError, ValueError, TypeError) as exc:
        raise ModelFileError(f"{path}: cannot rebuild the model ({type(exc).__name__}: "
                             f"{exc})") from None
    return net, meta


def checkpoint_bytes(ckpt, config_text: str) -> bytes:
    """A ``train.Checkpoint`` and the config it belongs to, as .npz bytes."""
    from .train import RECORDS

    meta = {"kind": "checkpoint", "config": config_text, "epoch": ckpt.epoch,
            "step": ckpt.step, "elapsed": ckpt.elapsed, "rngs": ckpt.rngs,
            **{name: getattr(ckpt, name) for name in RECORDS}}
    arrays = {**{f"model/{k}": v for k, v in ckpt.model.items()},
              **{f"optimizer/{k}": v for k, v in ckpt.optimizer.items()}}
    return _npz_bytes(meta, arrays)


def load_checkpoint(path: Path):
    """``(Checkpoint, config_text)`` from a checkpoint file."""
    from .train import RECORDS, Checkpoint

    meta, arrays = _read_npz(path)
    if meta.get("kind") != "checkpoint":
        raise ModelFileError(f"{path}: not a checkpoint")

    def part(prefix: str) -> dict[str, np.ndarray]:
        return {k.removeprefix(prefix): v for k, v in arrays.items() if k.startswith(prefix)}

    try:
        ckpt = Checkpoint(meta["epoch"], meta["step"], meta["elapsed"], part("model/"),
                          part("optimizer/"), meta["rngs"],
                          **{name: meta[name] for name in RECORDS})
    except KeyError as exc:
        raise ModelFileError(f"{path}: incomplete checkpoint (no {exc})") from None
    return ckpt, meta["config"]
