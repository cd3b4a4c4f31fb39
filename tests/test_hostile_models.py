"""Hostile model and checkpoint files (issue 23): edited metadata, arrays
that are not what bnexp writes, files that are not zips or claim more than
they hold, paths that are not files. Every case ends as one line, exit code
2, nothing written in the run folder; a NaN checkpoint is not resumed.

One tiny MLP run (synthetic data, batch norm) and one tiny CNN run (mnist5k,
batch norm, global average pooling head) are trained once per module; each
test works on its own copy of the run folder."""

import copy
import io
import json
import math
import os
import shutil
import struct
import zipfile
from pathlib import Path

import numpy as np
import pytest
import yaml
from clitools import invoke
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from numpy.lib import format as npy

from bnexp import config, modelfile, store
from bnexp.config import dump
from bnexp.deploy import evaluate_run
from bnexp.modelfile import (
    CHECKPOINT_FILE,
    MODEL_FILE,
    checkpoint_bytes,
    load_checkpoint,
)
from bnexp.train import train

MLP = {"name": "mlp", "seed": 3,
       "data": {"dataset": "synthetic", "n_train": 120, "n_test": 60, "dim": 12, "classes": 3},
       "model": {"hidden": [16, 16], "norm": "batch"}, "init": {"weight_scale": "he"},
       "train": {"epochs": 2, "batch_size": 20, "lr": 0.01, "optimizer": "adam"}}
CNN = {"name": "cnn", "seed": 2, "data": {"n_train": 100, "n_test": 50},
       "model": {"arch": "cnn", "channels": [4], "head": "gap", "hidden": [], "norm": "batch"},
       "init": {"weight_scale": "he"}, "train": {"epochs": 1, "batch_size": 20, "lr": 0.05}}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """{"mlp": run folder, "cnn": run folder}, trained once; do not modify."""
    root = tmp_path_factory.mktemp("trained")
    runs = {}
    for raw in (MLP, CNN):
        path = root / f"{raw['name']}.yaml"
        path.write_text(yaml.safe_dump(raw))
        res = invoke("train", path, "--out", root / "runs", "--no-plot", "-q")
        assert res.exit_code == 0, res.output
        runs[raw["name"]] = root / "runs" / raw["name"]
    return runs


def copy_run(trained, which: str, tmp_path: Path) -> Path:
    run = tmp_path / which
    shutil.copytree(trained[which], run)
    return run


def snapshot(folder: Path) -> dict:
    """Every file under ``folder`` with its bytes (a lock file aside)."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and p.name != ".lock"}


def one_error(res, *parts: str) -> str:
    """Exit 2, exactly one line, ``error: ...`` holding every one of ``parts``."""
    assert res.exit_code == 2, res.output
    lines = [ln for ln in res.output.splitlines() if ln.strip()]
    assert len(lines) == 1, res.output
    assert lines[0].startswith("error: ") and "Traceback" not in res.output, res.output
    for part in parts:
        assert part in lines[0], lines[0]
    return lines[0]


# --- building hostile files from a good one ---------------------------------------

def read_npz(path: Path) -> tuple[dict, dict]:
    """A model file bnexp wrote (trusted), as its meta and arrays."""
    with np.load(path) as z:
        arrays = {k: z[k] for k in z.files}
    return json.loads(str(arrays.pop("__meta__"))), arrays


def npz_bytes(meta: dict, arrays: dict) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, __meta__=np.array(json.dumps(meta)), **arrays)  # object arrays: pickled
    return buf.getvalue()


def edited(edit):
    """A case that edits a good file's (meta, arrays) in place."""
    def make(good: Path) -> bytes:
        meta, arrays = read_npz(good)
        edit(meta, arrays)
        return npz_bytes(meta, arrays)
    return make


def layers(meta):
    return meta["network"]["layers"]


def duplicate_last(meta, arrays):
    layers(meta).append(copy.deepcopy(layers(meta)[-1]))


def duplicate_renamed(meta, arrays):
    twin = {**layers(meta)[-1], "name": "linear_out2"}
    layers(meta).append(twin)
    arrays["model/linear_out2.W"] = arrays["model/linear_out.W"]
    arrays["model/linear_out2.b"] = arrays["model/linear_out.b"]


def drop_head(meta, arrays):
    """The CNN without its global average pooling and output layer."""
    del layers(meta)[-2:]
    del arrays["model/linear_out.W"], arrays["model/linear_out.b"]


def with_entry(good: Path, name: str, data: bytes) -> bytes:
    """The good file with entry ``name`` replaced by ``data`` (stored)."""
    src = zipfile.ZipFile(good)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as out:
        for info in src.infolist():
            out.writestr(info.filename, data if info.filename == name else src.read(info))
    return buf.getvalue()


def renamed_entry(good: Path, name: str, new: str) -> bytes:
    src = zipfile.ZipFile(good)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as out:
        for info in src.infolist():
            out.writestr(new if info.filename == name else info.filename, src.read(info))
    return buf.getvalue()


def header_of_2_40_rows(good: Path) -> bytes:
    """linear1.W's entry with a header declaring 2**40 rows over its own data."""
    head = io.BytesIO()
    npy.write_array_header_1_0(head, {"descr": "<f4", "fortran_order": False,
                                      "shape": (2**40, 16)})
    W = read_npz(good)[1]["model/linear1.W"]
    return with_entry(good, "model/linear1.W.npy", head.getvalue() + W.tobytes())


def zip_bomb(good: Path) -> bytes:
    """The good file plus an entry of 100 MiB of zeros deflated to ~0.5 MiB."""
    buf = io.BytesIO(good.read_bytes())
    with zipfile.ZipFile(buf, "a", zipfile.ZIP_DEFLATED, compresslevel=1) as z:
        with z.open("model/bomb.npy", "w", force_zip64=True) as fh:
            chunk = bytes(1 << 20)
            for _ in range(100):
                fh.write(chunk)
    return buf.getvalue()


def declares_4_gb(good: Path) -> bytes:
    """The good file with one entry's unpacked size in the central directory
    rewritten to 4e9 bytes (a zip that claims more than it holds)."""
    assert modelfile.MAX_FILE_BYTES < 4_000_000_000
    data = bytearray(good.read_bytes())
    at = data.index(b"PK\x01\x02")  # the first central directory record
    data[at + 24:at + 28] = struct.pack("<I", 4_000_000_000)
    return bytes(data)


# (id, run, make(good model file) -> bytes, what the line must say)
CASES = [
    ("empty layer list", "mlp", edited(lambda m, a: layers(m).clear()),
     "layers: got [], expected a non-empty list of layers"),
    ("output size 10^12", "mlp", edited(lambda m, a: layers(m)[-1].update(out=10**12)),
     "('linear_out'): out: got 1000000000000, expected an integer from 1 to 2,147,483,647"),
    ("network dtype object", "mlp", edited(lambda m, a: m["network"].update(dtype="object")),
     "dtype: got 'object', expected float32 or float64"),
    ("array of dtype object", "mlp",
     edited(lambda m, a: a.update({"model/linear1.W": a["model/linear1.W"].astype(object)})),
     "model/linear1.W holds object values"),
    ("complex weights", "mlp",
     edited(lambda m, a: a.update({"model/linear1.W": a["model/linear1.W"] + 1j})),
     "model/linear1.W holds complex64 values"),
    ("duplicated output layer", "mlp", edited(duplicate_last),
     "a second layer named 'linear_out'"),
    ("duplicated output layer, renamed", "mlp", edited(duplicate_renamed),
     "('linear_out2'): Linear takes 16 features, but gets 3 features"),
    ("eval_chunk -1", "mlp", edited(lambda m, a: m["network"].update(eval_chunk=-1)),
     "eval_chunk: got -1, expected an integer from 1 to 65,536"),
    ("NaN weights", "mlp",
     edited(lambda m, a: a["model/linear1.W"].__setitem__((0, 0), np.nan)),
     "holds NaN in model/linear1.W"),
    ("inf running variance", "mlp",
     edited(lambda m, a: a["model/batchnorm1.running_var"].__setitem__(0, np.inf)),
     "holds inf in model/batchnorm1.running_var"),
    ("eps of 10^400", "mlp", edited(lambda m, a: layers(m)[1].update(eps=10**400)),
     "('batchnorm1'): eps: got 1000000000000000000000000000000000000..., expected a finite "
     "number >= 0"),
    ("an entry named with a newline", "mlp",
     lambda good: renamed_entry(good, "model/linear1.W.npy", "model/linear1.W\n.npy"),
     "holds an entry 'model/linear1.W\\n.npy', not an .npy array"),
    ("an array missing", "mlp", edited(lambda m, a: a.pop("model/batchnorm2.running_mean")),
     "no array model/batchnorm2.running_mean"),
    ("input shape of 2 channels", "cnn",
     edited(lambda m, a: m["network"].update(input_shape=[2, 28, 28])),
     "('conv1'): Conv2d takes images (1, H, W), but gets inputs shaped (2, 28, 28)"),
    ("input shape of rows", "cnn",
     edited(lambda m, a: m["network"].update(input_shape=None)),
     "input_shape: got null (rows), but layers[0] ('conv1') is a Conv2d"),
    ("input shape that fits the layers, not the data", "cnn",
     edited(lambda m, a: m["network"].update(input_shape=[1, 20, 20])),
     "the run's own data (mnist5k): samples of 784 values do not fit"),
    ("no layer to the logits", "cnn", edited(drop_head),
     "the last layer gives (4, 14, 14) per sample; expected logits"),
    ("empty file", "mlp", lambda good: b"", "not a bnexp model file (File is not a zip file)"),
    ("not a zip", "mlp", lambda good: b"model weights, honest\n" * 10,
     "not a bnexp model file (File is not a zip file)"),
    ("truncated", "mlp", lambda good: good.read_bytes()[: good.stat().st_size // 2],
     "not a bnexp model file ("),
    ("header of 2^40 rows", "mlp", header_of_2_40_rows,
     "model/linear1.W: its header declares shape (1099511627776, 16) of float32"),
    ("zip bomb", "mlp", zip_bomb, "(a zip bomb?)"),
    ("declares 4 GB", "mlp", declares_4_gb, "its entries declare 4,000,"),
]


@pytest.mark.parametrize("command", ["eval --model", "fold"])
@pytest.mark.parametrize("case,which,make,says", CASES, ids=[c[0] for c in CASES])
def test_a_hostile_model_file_is_refused_in_one_line(trained, tmp_path, command, case, which,
                                                    make, says):
    run = copy_run(trained, which, tmp_path)
    bad = make(trained[which] / MODEL_FILE)
    if command == "fold":  # fold reads the run's own model file
        target = run / MODEL_FILE
        args = ("fold", run)
    else:
        target = tmp_path / "edited.npz"
        args = ("eval", run, "--model", target)
    target.write_bytes(bad)
    before = snapshot(run)
    res = invoke(*args)
    one_error(res, str(target), says)
    assert snapshot(run) == before


@pytest.mark.parametrize("kind", ["fifo", "/dev/zero", "folder"])
def test_a_model_path_that_is_not_a_regular_file_is_refused_without_blocking(
        trained, tmp_path, kind):
    run = copy_run(trained, "mlp", tmp_path)
    if kind == "fifo":
        path = tmp_path / "model.fifo"
        os.mkfifo(path)
        says = "is a fifo (named pipe), expected a model file"
    elif kind == "folder":  # the run's own model.npz, replaced by a folder
        path = run / MODEL_FILE
        path.unlink()
        path.mkdir()
        says = "is a folder, expected a model file"
    else:
        path, says = Path("/dev/zero"), "is a character device, expected a model file"
    before = snapshot(run)
    res = invoke("eval", run) if kind == "folder" else invoke("eval", run, "--model", path)
    one_error(res, f"{path}: {says}")
    assert snapshot(run) == before


def test_the_entry_count_is_checked_before_zipfile_reads_the_entries(trained, monkeypatch):
    path = trained["mlp"] / MODEL_FILE
    with zipfile.ZipFile(path) as z:
        count = len(z.infolist())
    monkeypatch.setattr(modelfile, "MAX_ENTRIES", count - 1)
    monkeypatch.setattr(zipfile.ZipFile, "__init__", None)  # never reached
    with pytest.raises(store.StoreError) as info:
        modelfile.load_model(path)
    assert str(info.value) == (f"{path}: declares {count} entries (at most {count - 1}): not a "
                               "bnexp model file")


def test_a_model_file_that_does_not_fit_the_data_names_the_data(trained, tmp_path):
    """Without --data the line names the run's own dataset (it said --data None)."""
    mlp, cnn = copy_run(trained, "mlp", tmp_path), copy_run(trained, "cnn", tmp_path)
    res = invoke("eval", mlp, "--model", cnn / MODEL_FILE)
    one_error(res, f"error: the run's own data (synthetic): samples of 12 values do not fit "
                   f"{cnn / MODEL_FILE}, which takes 784 (1 x 28 x 28)")
    res = invoke("eval", cnn, "--model", mlp / MODEL_FILE, "--data", "mnist5k")
    one_error(res, f"error: --data mnist5k: samples of 784 values do not fit "
                   f"{mlp / MODEL_FILE}, which takes 12")


def test_a_model_file_with_other_classes_is_refused(trained, tmp_path):
    """A consistent file whose logits are not the data's classes (3 here, not 4)."""
    run = copy_run(trained, "mlp", tmp_path)

    def four_classes(meta, arrays):
        layers(meta)[-1]["out"] = 4
        arrays["model/linear_out.W"] = np.zeros((16, 4), np.float32)
        arrays["model/linear_out.b"] = np.zeros(4, np.float32)

    target = tmp_path / "four.npz"
    target.write_bytes(edited(four_classes)(run / MODEL_FILE))
    res = invoke("eval", run, "--model", target)
    one_error(res, f"error: the run's own data (synthetic): 3 classes, but {target} gives 4 "
                   "outputs")


def test_eval_data_synthetic_works_on_a_synthetic_run_and_is_refused_on_a_cnn(trained,
                                                                            tmp_path):
    mlp, cnn = copy_run(trained, "mlp", tmp_path), copy_run(trained, "cnn", tmp_path)
    res = invoke("eval", mlp, "--data", "synthetic")  # the run's own clusters
    assert res.exit_code == 0, res.output
    assert all("equals the run's evaluation at epoch 2" in line
               for line in res.output.splitlines())
    before = snapshot(cnn)
    res = invoke("eval", cnn, "--data", "synthetic")
    one_error(res, "error: --data synthetic: this run was trained on mnist5k; synthetic "
                   "clusters are drawn for a synthetic run")
    assert snapshot(cnn) == before


def test_fold_carries_over_facts_named_like_its_own_arguments(trained, tmp_path):
    """A model file's meta with keys ``net``, ``path`` and ``folded`` (save_model's
    parameters and fold's own fact) folds; the facts are kept, ``folded`` replaced."""
    run = copy_run(trained, "mlp", tmp_path)
    path = run / MODEL_FILE
    path.write_bytes(edited(lambda m, a: m.update(net="n", path="p", folded=["x"]))(path))
    res = invoke("fold", run)
    assert res.exit_code == 0, res.output
    meta = read_npz(run / "model_folded.npz")[0]
    assert (meta["net"], meta["path"], meta["folded"]) == ("n", "p", ["batchnorm1",
                                                                      "batchnorm2"])


# --- checkpoints ---------------------------------------------------------------------

@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """(config path, its Config, the first checkpoint of its run)."""
    raw = {**MLP, "train": {**MLP["train"], "checkpoint_every": 1}}
    path = tmp_path_factory.mktemp("ckpt") / "mlp.yaml"
    path.write_text(yaml.safe_dump(raw))
    cfg = config.from_dict(raw)
    saved = []
    train(cfg, on_checkpoint=saved.append)
    return path, cfg, saved[0]


@pytest.mark.parametrize("where,value", [("model", np.nan), ("optimizer", np.inf)])
def test_a_non_finite_checkpoint_is_not_resumed(checkpoint, tmp_path, where, value):
    path, cfg, good = checkpoint
    ckpt = copy.deepcopy(good)
    key = "linear1.W" if where == "model" else "m"
    getattr(ckpt, where)[key].flat[0] = value
    run = tmp_path / "runs" / "mlp"
    run.mkdir(parents=True)
    store.atomic_write(run / CHECKPOINT_FILE, checkpoint_bytes(ckpt, dump(cfg)))
    (run / "run.json").write_text(json.dumps({"status": "running"}))
    before = snapshot(run)
    res = invoke("train", path, "--out", tmp_path / "runs", "--no-plot", "-q")
    what = "NaN" if np.isnan(value) else "inf"
    one_error(res, f"error: {run / CHECKPOINT_FILE}: holds {what} in {where}/{key}")
    assert snapshot(run) == before


def test_a_checkpoint_with_mistyped_facts_is_refused(checkpoint, tmp_path):
    path, cfg, good = checkpoint
    target = tmp_path / CHECKPOINT_FILE
    target.write_bytes(checkpoint_bytes(good, dump(cfg)))
    assert load_checkpoint(target)[0].epoch == 1  # the good one loads
    meta, arrays = read_npz(target)
    target.write_bytes(npz_bytes({**meta, "epoch": "1"}, arrays))
    with pytest.raises(store.StoreError, match="its epoch is not an integer >= 0"):
        load_checkpoint(target)


# --- any edit: a working model or one line ------------------------------------------

WEIRD = [10**12, 2**31, 2**63, 10**400, 1e308, -1, 0, 1, 2, 1.5, -0.5, float("nan"), float("inf"), "x", "",
         None, True, False, [], {}, [1], [1, 28, 28], "float16", "object", "float64",
         "Linear", "Conv2d", "GlobalAvgPool", "batch"]
ODD_ARRAYS = [np.float64, np.float32, np.int64, np.complex64, np.float16, np.bool_, object,
              ">f4", "U3"]


def _paths(node, at=()):
    """The path (keys and indices) of every value inside ``node``."""
    items = node.items() if isinstance(node, dict) else (
        enumerate(node) if isinstance(node, list) else ())
    for key, child in items:
        yield at + (key,)
        yield from _paths(child, at + (key,))


def _mutate_meta(meta: dict, data) -> None:
    path = data.draw(st.sampled_from(list(_paths(meta))))
    parent = meta
    for key in path[:-1]:
        parent = parent[key]
    key, node = path[-1], parent[path[-1]]
    op = data.draw(st.sampled_from(["delete", "replace", "duplicate", "shuffle"]))
    if op == "delete":
        del parent[key]
    elif op == "replace":
        parent[key] = data.draw(st.one_of(st.sampled_from(WEIRD), st.integers(-3, 40)))
    elif op == "duplicate" and isinstance(parent, list):
        parent.insert(key, copy.deepcopy(node))
    elif op == "shuffle" and isinstance(node, list):
        parent[key] = data.draw(st.permutations(node))


def _mutate_layers(meta: dict, arrays: dict, data) -> None:
    """Edits of the layer list that keep every array consistent with its layer:
    only the checks of how layers fit together can refuse them."""
    stack = layers(meta)
    i = data.draw(st.integers(0, len(stack) - 1))
    name = stack[i].get("name") if isinstance(stack[i], dict) else None
    own = [k for k in arrays if isinstance(name, str) and k.startswith(f"model/{name}.")]
    op = data.draw(st.sampled_from(["drop", "copy", "swap", "shuffle"]))
    if op == "drop":
        del stack[i]
        for key in own:
            del arrays[key]
    elif op == "copy" and isinstance(name, str):  # a renamed twin, with its own arrays
        stack.insert(data.draw(st.integers(0, len(stack))),
                     {**copy.deepcopy(stack[i]), "name": f"{name}_twin"})
        for key in own:
            arrays[key.replace(f"/{name}.", f"/{name}_twin.")] = arrays[key]
    elif op == "swap" and i + 1 < len(stack):
        stack[i], stack[i + 1] = stack[i + 1], stack[i]
    elif op == "shuffle":
        meta["network"]["layers"] = data.draw(st.permutations(stack))


def _mutate_arrays(arrays: dict, data) -> None:
    key = data.draw(st.sampled_from(sorted(arrays)))
    a = arrays[key]
    op = data.draw(st.sampled_from(["dtype", "flat", "axis", "shorter", "nan", "delete",
                                    "extra"]))
    if op == "dtype":
        arrays[key] = a.astype(data.draw(st.sampled_from(ODD_ARRAYS)))
    elif op == "flat":
        arrays[key] = a.ravel()
    elif op == "axis":
        arrays[key] = a[None]
    elif op == "shorter" and a.size:
        arrays[key] = a.ravel()[:-1]
    elif op == "nan" and a.dtype.kind == "f" and a.size:
        arrays[key] = a.copy()
        arrays[key].flat[data.draw(st.integers(0, a.size - 1))] = data.draw(
            st.sampled_from([np.nan, np.inf, -np.inf]))
    elif op == "delete":
        del arrays[key]
    elif op == "extra":
        arrays["model/extra.W"] = np.zeros(3, np.float32)


@pytest.fixture(scope="module")
def good_files(trained):
    return {which: read_npz(run / MODEL_FILE) for which, run in trained.items()}


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(data=st.data())
def test_any_edit_gives_a_working_model_or_one_line(trained, good_files, tmp_path, data):
    """``evaluate_run`` on an edited file: finite numbers, or StoreError with one
    line naming the file that the checks (not a failed rebuild) wrote."""
    which = data.draw(st.sampled_from(sorted(trained)))
    meta, arrays = copy.deepcopy(good_files[which])
    for _ in range(data.draw(st.integers(1, 3))):
        what = data.draw(st.sampled_from(["meta", "arrays", "layers"]))
        if what == "meta":
            _mutate_meta(meta, data)
        elif what == "arrays":
            _mutate_arrays(arrays, data)
        elif isinstance(meta.get("network"), dict) and isinstance(
                meta["network"].get("layers"), list) and meta["network"]["layers"]:
            _mutate_layers(meta, arrays, data)
    target = tmp_path / "edited.npz"
    target.write_bytes(npz_bytes(meta, arrays))
    try:
        results = evaluate_run(trained[which], model=str(target))
    except store.StoreError as exc:
        line = str(exc)
        assert "\n" not in line and str(target) in line, line
        assert "cannot rebuild" not in line, line  # the checks let something through
        event("refused")
    else:
        event("evaluated")
        assert all(math.isfinite(r.loss) and 0 <= r.accuracy <= 1 for r in results)
