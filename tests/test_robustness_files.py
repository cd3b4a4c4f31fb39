"""Robustness, third round (issue 23): outputs onto things that are not regular
files, inputs that never end or are huge, a remote peer that is not a Dask
scheduler, two writers, interrupted writes, a train that the same command
always finishes, and settings that used to be taken without a word.

Each case asserts the exit code, the one line, and that nothing was written,
replaced or left behind. Cases that could hang run in a subprocess with a
timeout, so a regression fails instead of stopping the suite.
"""

import gzip
import json
import os
import shutil
import socket
import stat
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import yaml
from clitools import invoke

BASE = {"name": "r", "seed": 3,
        "data": {"dataset": "synthetic", "n_train": 120, "n_test": 40, "dim": 6, "classes": 3},
        "model": {"hidden": [8], "norm": "batch"}, "init": {"weight_scale": "he"},
        "train": {"epochs": 2, "batch_size": 20, "lr": 0.1}}


def write(tmp_path, raw, name="c.yaml"):
    path = tmp_path / name
    path.write_text(yaml.safe_dump(raw))
    return path


def snapshot(folder: Path, live: bool = False) -> dict:
    """Every entry under ``folder`` with its bytes (files) or its kind. ``live``:
    a process is writing there, so an entry may vanish between the listing and
    the read (its temporary files are renamed into place); such an entry is left out."""
    if not folder.exists():
        return {}
    out = {}
    for p in sorted(folder.rglob("*")):
        try:
            mode = os.lstat(p).st_mode
            out[str(p.relative_to(folder))] = p.read_bytes() if stat.S_ISREG(mode) else mode
        except FileNotFoundError:
            if not live:
                raise
    return out


def one_error(res, start: str):
    """Exit 2 and exactly one line, ``error: START...``, no traceback."""
    assert res.exit_code == 2, res.output
    lines = [ln for ln in res.output.splitlines() if ln.strip()]
    assert len(lines) == 1, res.output
    assert "Traceback" not in res.output
    assert lines[0].startswith(f"error: {start}"), lines[0]
    return lines[0]


def bnexp_subprocess(*args, timeout=60, cwd=None):
    """``python -m bnexp ARGS`` in a child process; fails the test if it hangs."""
    try:
        return subprocess.run([sys.executable, "-m", "bnexp", *map(str, args)],
                              capture_output=True, text=True, timeout=timeout, cwd=cwd)
    except subprocess.TimeoutExpired:
        pytest.fail(f"bnexp {' '.join(map(str, args))} hung for {timeout} s")


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A finished run with batch norm before the activation (foldable)."""
    root = tmp_path_factory.mktemp("trained")
    res = invoke("train", write(root, BASE), "--out", root / "runs", "-q")
    assert res.exit_code == 0, res.output
    return root / "runs" / "r"


@pytest.fixture(scope="module")
def sweep_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("sweep")
    raw = {**BASE, "name": "s", "sweep": {"grid": {"train.lr": [0.05, 0.1]}, "seeds": [0]}}
    res = invoke("sweep", write(root, raw), "--out", root / "runs", "-q", "-j", "1")
    assert res.exit_code == 0, res.output
    return root / "runs" / "s"


@pytest.fixture
def fifo(tmp_path):
    path = tmp_path / "pipe"
    os.mkfifo(path)
    return path


# --- outputs onto things that are not regular files --------------------------------

def _targets(tmp_path, fifo):
    folder = tmp_path / "a-folder.png"
    folder.mkdir()
    targets = [(fifo, "a fifo (named pipe)"), (folder, "a folder")]
    if Path("/dev/null").exists() and stat.S_ISCHR(os.stat("/dev/null").st_mode):
        targets.append((Path("/dev/null"), "a character device"))
    return targets


@pytest.mark.parametrize("command", ["plot", "report", "axes", "fold"])
def test_out_onto_a_device_fifo_or_folder_is_refused_and_left_alone(
        command, trained, sweep_dir, tmp_path, fifo):
    for target, what in _targets(tmp_path, fifo):
        args = {"plot": ["plot", sweep_dir], "report": ["report", sweep_dir],
                "axes": ["axes"], "fold": ["fold", trained]}[command]
        mode = os.stat(target).st_mode
        before = snapshot(trained.parent.parent), snapshot(sweep_dir)
        res = invoke(*args, "--out", target)
        line = one_error(res, f"{target}: is {what}")
        assert "not a regular file" in line
        assert os.stat(target).st_mode == mode  # still the device, fifo or folder
        assert (snapshot(trained.parent.parent), snapshot(sweep_dir)) == before
        assert not list(target.parent.glob(f".{target.name}.*.tmp"))


def test_fold_out_onto_an_existing_file_needs_force_and_never_the_runs_own_model(
        trained, tmp_path):
    other = tmp_path / "other.npz"
    other.write_bytes(b"keep me")
    one_error(invoke("fold", trained, "--out", other), f"{other} exists; pass --force")
    assert other.read_bytes() == b"keep me"
    model = trained / "model.npz"
    before = model.read_bytes()
    hard = tmp_path / "hard-link.npz"
    os.link(model, hard)  # another name for the run's own model
    for extra in ([], ["--force"]):
        line = one_error(invoke("fold", trained, "--out", model, *extra), f"{model}: is ")
        assert "own model.npz" in line
        one_error(invoke("fold", trained, "--out", hard, *extra),
                  f"{hard}: is the run's own model.npz; bnexp fold never replaces it")
    assert model.read_bytes() == before
    res = invoke("fold", trained, "--out", other, "--force")
    assert res.exit_code == 0, res.output
    assert other.read_bytes()[:2] == b"PK"


# --- inputs that never end or are huge ----------------------------------------------

@pytest.mark.parametrize("source", ["/dev/zero", "fifo"])
def test_a_config_that_never_ends_is_refused_at_once(source, fifo, tmp_path):
    path = fifo if source == "fifo" else Path(source)
    if not path.exists():
        pytest.skip(f"{path} is not here")
    what = "a fifo (named pipe)" if source == "fifo" else "a character device"
    for args in (["train", path], ["sweep", path], ["report", tmp_path, "--intro", path]):
        res = bnexp_subprocess(*args, "--out", tmp_path / "out", timeout=60)
        assert res.returncode == 2, res.stderr
        assert res.stderr.strip() == f"error: {'--intro ' if '--intro' in args else ''}{path}: " \
                                     f"is {what}, expected a " \
                                     f"{'text' if '--intro' in args else 'YAML'} file " \
                                     "(a regular file)"
    assert not (tmp_path / "out").exists()


def _idx_root(tmp_path, images: bytes, gz: bool = True) -> Path:
    """The four Fashion-MNIST files, tiny and valid, but the training images'
    file replaced by ``images``."""
    from idxdata import write_idx_set

    root = tmp_path / "idx"
    write_idx_set(root, n_train=30, n_test=10)
    target = root / "train-images-idx3-ubyte.gz"
    for p in root.glob("train-images-idx3-ubyte*"):
        p.unlink()
    (target if gz else root / "train-images-idx3-ubyte").write_bytes(
        gzip.compress(images) if gz else images)
    return root


def _idx_config(tmp_path, root):
    return write(tmp_path, {**BASE, "data": {"dataset": "mnist", "root": str(root),
                                             "n_train": 20, "n_test": 10}})


def test_a_gzip_bomb_idx_file_stops_at_the_size_its_header_promises(tmp_path):
    # 30 images promised; 64 MiB of zeros follow (about 64 kB compressed).
    header = b"\0\0\x08\x03" + struct.pack(">III", 30, 28, 28)
    stream = gzip.compress(header + bytes(64 << 20), compresslevel=9)
    root = _idx_root(tmp_path, b"")
    (root / "train-images-idx3-ubyte.gz").write_bytes(stream)
    code = ("import resource, sys; resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30)); "
            "from bnexp.cli import main; sys.exit(main())")
    res = subprocess.run([sys.executable, "-c", code, "train", _idx_config(tmp_path, root),
                          "--out", tmp_path / "runs"], capture_output=True, text=True,
                         timeout=120)
    assert res.returncode == 2, res.stderr
    assert res.stderr.strip() == (f"error: {root / 'train-images-idx3-ubyte.gz'}: longer than "
                                  "the 23,536 bytes its header promises for shape (30, 28, 28) "
                                  "(corrupt)")
    assert not (tmp_path / "runs").exists()


def test_an_idx_header_that_declares_terabytes_is_refused_before_reading(tmp_path):
    header = b"\0\0\x08\x03" + struct.pack(">III", 1 << 31, 1 << 20, 28)
    for gz in (True, False):
        root = _idx_root(tmp_path / str(gz), header + bytes(100), gz=gz)
        res = invoke("train", _idx_config(tmp_path / str(gz), root), "--out", tmp_path / "runs")
        one_error(res, f"{root}/train-images-idx3-ubyte{'.gz' if gz else ''}: the header "
                       "declares shape (2147483648, 1048576, 28)")
    assert not (tmp_path / "runs").exists()


def test_an_idx_file_that_is_a_fifo_is_never_opened(tmp_path):
    root = _idx_root(tmp_path, b"")
    (root / "train-images-idx3-ubyte.gz").unlink()
    os.mkfifo(root / "train-images-idx3-ubyte")
    res = bnexp_subprocess("train", _idx_config(tmp_path, root), "--out", tmp_path / "runs")
    assert res.returncode == 2 and "Traceback" not in res.stderr, res.stderr
    assert len(res.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "runs").exists()


def test_read_idx_refuses_a_fifo_and_a_device(tmp_path, fifo):
    from bnexp.datasets.idx import read_idx
    from bnexp.datasets.sources import DataError

    with pytest.raises(DataError, match="is a fifo"):
        read_idx(fifo)
    if Path("/dev/zero").exists():
        with pytest.raises(DataError, match="is a character device"):
            read_idx(Path("/dev/zero"))


# --- a remote peer that is not what it claims ---------------------------------------

def _junk_server(payload: bytes):
    """A TCP server on localhost that answers every connection with ``payload``
    and then keeps it open (silence)."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(8)
    conns = []

    def serve():
        while True:
            try:
                c, _ = srv.accept()
            except OSError:
                return
            conns.append(c)
            try:
                c.sendall(payload)
            except OSError:
                pass
    threading.Thread(target=serve, daemon=True).start()
    return srv, conns


@pytest.mark.parametrize("payload", [
    struct.pack("<Q", 2) + struct.pack("<Q", 1 << 40) * 2,  # two frames of a terabyte each
    b"\x02",  # fewer bytes than a frame count
    b"HTTP/1.0 200 OK\r\n\r\n" + b"\xff" * 64,
], ids=["huge-frames", "short", "http"])
def test_a_dask_address_that_answers_with_other_bytes_is_one_line(tmp_path, payload):
    """In a child process, so that a traceback from Dask's own threads (or
    from a half-made client's cleanup at exit) would show on stderr."""
    pytest.importorskip("distributed")
    srv, conns = _junk_server(payload)
    try:
        address = f"tcp://127.0.0.1:{srv.getsockname()[1]}"
        raw = {**BASE, "sweep": {"grid": {"train.lr": [0.1]}, "seeds": [0]}}
        res = bnexp_subprocess("sweep", write(tmp_path, raw), "--executor", "dask", "--address",
                               address, "--out", tmp_path / "runs", timeout=90)
    finally:
        srv.close()
        for c in conns:
            c.close()
    assert res.returncode == 2, res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in res.stderr, res.stderr
    assert lines[0].startswith(f"error: --address {address}: cannot reach a Dask scheduler (")
    assert not (tmp_path / "runs").exists()


# --- two writers, interrupted writes ------------------------------------------------

def _slow(tmp_path, name="slow", epochs=5000):
    raw = {**BASE, "name": name, "train": {**BASE["train"], "epochs": epochs}}
    return write(tmp_path, raw, f"{name}.yaml")


def test_a_second_train_into_the_same_folder_is_refused(tmp_path):
    cfg = _slow(tmp_path)
    first = subprocess.Popen([sys.executable, "-m", "bnexp", "train", cfg, "--out",
                              tmp_path / "runs", "-q", "--no-plot"], stderr=subprocess.PIPE)
    try:
        run = tmp_path / "runs" / "slow"
        deadline = time.time() + 60
        while not (run / "metrics.csv").exists() and time.time() < deadline:
            time.sleep(0.02)
        assert first.poll() is None, "the first train ended before the second started"
        before = snapshot(run, live=True)
        for extra in ([], ["--force"]):
            res = invoke("train", cfg, "--out", tmp_path / "runs", *extra)
            line = one_error(res, f"{run} is in use by another bnexp process (bnexp train, pid "
                                  f"{first.pid} on ")
            assert line.endswith("wait for it to finish or stop it first")
        def names(snap):  # the live writer's own temporary files come and go
            return {k for k in snap if not k.endswith(".tmp")}
        assert names(snapshot(run, live=True)) >= names(before)  # the first one's files stay
        assert first.poll() is None  # and it keeps running
    finally:
        first.kill()
        first.wait()


def test_the_same_command_finishes_a_run_killed_before_any_checkpoint(tmp_path):
    cfg_path = write(tmp_path, BASE)
    reference = tmp_path / "ref"
    assert invoke("train", cfg_path, "--out", reference, "-q").exit_code == 0
    run = tmp_path / "runs" / "r"
    for status in ("running", "interrupted", "failed", None):  # None: cut while clearing
        run.mkdir(parents=True, exist_ok=True)
        (run / "config.yaml").write_bytes((reference / "r" / "config.yaml").read_bytes())
        if status:
            (run / "run.json").write_text(json.dumps({"status": status}))
        (run / "metrics.csv").write_text("epoch,step\n0,0\n")
        (run / ".model.npz.k2j3.tmp").write_bytes(b"half a model")
        res = invoke("train", cfg_path, "--out", tmp_path / "runs", "-q")
        assert res.exit_code == 0, (status, res.output)
        assert json.loads((run / "run.json").read_text())["status"] == "completed"
        assert sorted(p.name for p in run.iterdir()) == sorted(
            p.name for p in (reference / "r").iterdir())
        assert _metrics(run) == _metrics(reference / "r")
        # A run that finished is not started over by the same command.
        before = snapshot(run)
        one_error(invoke("train", cfg_path, "--out", tmp_path / "runs"),
                  f"{run} already holds a run; pass --force")
        assert snapshot(run) == before
        for p in run.iterdir():
            p.unlink()


def test_an_unfinished_run_of_another_config_is_not_started_over(tmp_path):
    cfg_path = write(tmp_path, BASE)
    run = tmp_path / "runs" / "r"
    run.mkdir(parents=True)
    other = {**BASE, "train": {**BASE["train"], "lr": 0.05}}
    from bnexp.config import dump, from_dict

    (run / "config.yaml").write_text(dump(from_dict(other)))
    (run / "run.json").write_text(json.dumps({"status": "running"}))
    before = snapshot(run)
    one_error(invoke("train", cfg_path, "--out", tmp_path / "runs"),
              f"{run} already holds a run; pass --force")
    assert snapshot(run) == before


def test_resuming_from_a_checkpoint_removes_what_a_killed_writer_left(tmp_path):
    raw = {**BASE, "train": {**BASE["train"], "epochs": 4, "checkpoint_every": 1}}
    cfg_path = write(tmp_path, raw)
    ref = tmp_path / "ref"
    assert invoke("train", cfg_path, "--out", ref, "-q").exit_code == 0
    from bnexp import config, train
    from bnexp.config import dump
    from bnexp.modelfile import checkpoint_bytes

    saved = []
    train.train(config.from_dict(raw), on_checkpoint=saved.append)
    run = tmp_path / "runs" / "r"
    run.mkdir(parents=True)
    (run / "config.yaml").write_text(dump(config.from_dict(raw)))
    (run / "run.json").write_text(json.dumps({"status": "running"}))
    (run / "checkpoint.npz").write_bytes(checkpoint_bytes(saved[1], dump(config.from_dict(raw))))
    for name in ("model.npz", "steps.csv", "checkpoint.npz"):
        (run / f".{name}.x1y2.tmp").write_bytes(b"cut short")
    res = invoke("train", cfg_path, "--out", tmp_path / "runs", "-q")
    assert res.exit_code == 0, res.output
    info = json.loads((run / "run.json").read_text())
    assert info["status"] == "completed" and info["resumed_from_epoch"] == 2
    assert sorted(p.name for p in run.iterdir()) == sorted(p.name for p in (ref / "r").iterdir())
    assert _metrics(run) == _metrics(ref / "r")


def _metrics(run: Path) -> list[dict]:
    rows = (run / "metrics.csv").read_text().splitlines()
    header = rows[0].split(",")
    return [{k: v for k, v in zip(header, r.split(",")) if k != "elapsed"} for r in rows[1:]]


# --- settings that used to be taken without a word ----------------------------------

@pytest.mark.parametrize("setting,line", [
    ("model.kernel=5", "model.kernel: got 5, used only with model.arch 'cnn'; remove it, or set "
                       "model.arch: cnn"),
    ("model.channels=[8]", "model.channels: got [8], used only with model.arch 'cnn'"),
    ("model.pool=avg", "model.pool: got 'avg', used only with model.arch 'cnn'"),
    ("model.head=gap", "model.head: got 'gap', used only with model.arch 'cnn'"),
    ("init.weight_scale=1e308", "init.weight_scale: got '1e308', expected a positive number up "
                                "to 1,000,000"),
    ("norm.eps=0", "norm.eps: got 0, expected a number >= 1e-30"),
    ("norm.eps=1e-300", "norm.eps: got '1e-300', expected a number >= 1e-30"),  # 0 in float32
    (f"seed={'9' * 5000}", "--set seed="),
])
def test_settings_that_mean_nothing_or_overflow_are_one_line(tmp_path, setting, line):
    res = invoke("train", write(tmp_path, BASE), "--set", setting, "--out", tmp_path / "runs")
    one_error(res, line)
    assert not (tmp_path / "runs").exists()


def test_weight_norm_after_the_activation_is_refused(tmp_path):
    res = invoke("train", write(tmp_path, BASE), "--set", "model.norm=weight", "--set",
                 "model.placement=after", "--out", tmp_path / "runs")
    one_error(res, "model.placement: got 'after', expected 'before' with model.norm 'weight'")


def test_a_cnn_config_saved_by_bnexp_still_loads_as_an_mlp_default(tmp_path):
    """The check looks at values, not presence: a saved MLP config lists the
    CNN keys at their defaults and reloads."""
    from bnexp.config import dump, from_dict, load

    path = tmp_path / "saved.yaml"
    path.write_text(dump(from_dict(BASE)))
    assert load(path).model.arch == "mlp"


# --- the kill loop ------------------------------------------------------------------

KILLS = 30


def test_random_kills_of_train_end_in_the_same_command_finishing_the_run(tmp_path):
    """30 random SIGKILLs (and a few SIGTERMs) of ``bnexp train`` without
    checkpoints, each followed by the same command again: the run it finally
    finishes equals an uninterrupted one, file for file, with nothing left
    behind."""
    import random

    raw = {**BASE, "name": "k", "data": {**BASE["data"], "n_train": 400},
           "model": {"hidden": [32, 32], "norm": "batch"},
           "train": {**BASE["train"], "epochs": 60, "batch_size": 10},
           "eval": {"step_loss": True}}
    cfg_path = write(tmp_path, raw)
    cmd = [sys.executable, "-m", "bnexp", "train", str(cfg_path), "--out", str(tmp_path / "runs"),
           "-q"]
    ref = subprocess.run([*cmd[:-2], str(tmp_path / "ref"), "-q"], capture_output=True,
                         text=True, timeout=300)
    assert ref.returncode == 0, ref.stderr
    t0 = time.perf_counter()
    subprocess.run(cmd, capture_output=True, timeout=300)  # time one whole run
    whole = time.perf_counter() - t0
    for p in (tmp_path / "runs" / "k").iterdir():
        p.unlink()
    rng = random.Random(23)
    run = tmp_path / "runs" / "k"
    landed = while_training = attempts = 0
    while landed < KILLS and attempts < 3 * KILLS:
        attempts += 1
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        time.sleep(rng.uniform(0.0, 0.8 * whole))
        proc.send_signal(15 if attempts % 5 == 0 else 9)
        _, err = proc.communicate(timeout=120)
        assert b"Traceback" not in err, err.decode()
        info = json.loads((run / "run.json").read_text()) if (run / "run.json").exists() else {}
        if info.get("status") == "completed":  # it ended before the signal (a quiet machine)
            shutil.rmtree(run)
            continue
        landed += 1
        while_training += info.get("status") in ("running", "interrupted")
    assert landed >= KILLS and while_training >= KILLS // 3, (landed, while_training)
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    run, ref_run = tmp_path / "runs" / "k", tmp_path / "ref" / "k"
    assert sorted(p.name for p in run.iterdir()) == sorted(p.name for p in ref_run.iterdir())
    assert _metrics(run) == _metrics(ref_run)
    assert (run / "steps.csv").read_bytes() == (ref_run / "steps.csv").read_bytes()
    import numpy as np

    from bnexp.modelfile import load_model

    a, _ = load_model(run / "model.npz")
    b, _ = load_model(ref_run / "model.npz")
    for k, v in b.state_dict().items():
        np.testing.assert_array_equal(a.state_dict()[k], v, err_msg=k)
    info = json.loads((run / "run.json").read_text())
    assert info["status"] == "completed" and "resumed_from_epoch" not in info


def test_a_sweep_over_model_arch_sets_the_cnn_keys_for_its_cnn_points_only(tmp_path):
    """The ordinary comparison of an MLP with a CNN: the CNN keys written once
    in an mlp base apply to the cnn points; the mlp points record the MLP
    they are; report and plot read the sweep back."""
    raw = {"name": "arch", "seed": 0, "data": {"n_train": 100, "n_test": 50},
           "model": {"arch": "mlp", "hidden": [16], "channels": [4], "kernel": 5},
           "train": {"epochs": 1, "batch_size": 20, "lr": 0.1},
           "sweep": {"grid": {"model.arch": ["mlp", "cnn"]}, "seeds": [0]}}
    res = invoke("sweep", write(tmp_path, raw), "--out", tmp_path / "runs", "-j", "1", "-q")
    assert res.exit_code == 0, res.output
    sweep = tmp_path / "runs" / "arch"
    mlp = yaml.safe_load((sweep / "arch=mlp,seed=0" / "config.yaml").read_text())["model"]
    cnn = yaml.safe_load((sweep / "arch=cnn,seed=0" / "config.yaml").read_text())["model"]
    assert (cnn["channels"], cnn["kernel"]) == ([4], 5)
    assert (mlp["channels"], mlp["kernel"], mlp["hidden"]) == ([16, 32], 3, [16])
    assert invoke("report", sweep).exit_code == 0
    assert invoke("plot", sweep, "--kind", "final", "--x", "model.arch").exit_code == 0
    before = snapshot(sweep)
    res = invoke("sweep", write(tmp_path, raw), "--out", tmp_path / "runs", "-j", "1", "-q")
    assert res.exit_code == 0, res.output  # resumes: sweep.yaml reads back, nothing to rerun
    assert {k: v for k, v in snapshot(sweep).items() if "/" in k} == {
        k: v for k, v in before.items() if "/" in k}


def test_every_library_exception_derives_from_one_base():
    """The CLI maps BnexpError to one line and exit 2; an exception class that
    does not derive from it would escape as a traceback."""
    import importlib
    import inspect
    import pkgutil

    import bnexp
    from bnexp.errors import BnexpError

    found = []
    for mod in pkgutil.walk_packages(bnexp.__path__, "bnexp."):
        if mod.name in ("bnexp.__main__", "bnexp.cli"):  # the CLI's UserError is click's
            continue
        module = importlib.import_module(mod.name)
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if cls.__module__ == mod.name and issubclass(cls, Exception) and not issubclass(
                    cls, Warning):
                found.append(cls)
    assert len(found) >= 14
    strays = [f"{c.__module__}.{c.__name__}" for c in found if not issubclass(c, BnexpError)]
    assert strays == []


# --- the attack after the fixes (issue 23's next round, found by a fresh attacker) --

def test_out_onto_a_symbolic_link_is_refused_and_the_link_kept(trained, sweep_dir, tmp_path):
    target = tmp_path / "target.md"
    target.write_text("keep")
    cases = {"link": target, "dangling": tmp_path / "nowhere" / "x"}
    for name, points_to in cases.items():
        link = tmp_path / f"{name}.png"
        link.symlink_to(points_to)
        for args in (["plot", sweep_dir], ["report", sweep_dir], ["axes"], ["fold", trained]):
            one_error(invoke(*args, "--out", link), f"{link}: is a symbolic link")
            assert link.is_symlink() and os.readlink(link) == str(points_to)
        one_error(invoke("init", "book_bn", link, "--force"), f"{link}: is a symbolic link")
    assert target.read_text() == "keep"


def test_out_onto_a_file_the_sweep_or_run_keeps_is_refused(trained, sweep_dir):
    run = next(p for p in sweep_dir.iterdir() if p.is_dir() and (p / "run.json").exists())
    before = snapshot(sweep_dir), snapshot(trained)
    for args, target in ((["report", sweep_dir], sweep_dir / "summary.csv"),
                         (["report", sweep_dir], sweep_dir / "sweep.yaml"),
                         (["plot", sweep_dir], run / "curves.png"),
                         (["plot", trained], trained / "curves.png"),
                         (["fold", trained, "--force"], trained / "config.yaml"),
                         (["fold", trained, "--force"], sweep_dir / "summary.csv"),
                         (["axes"], trained / "curves.png")):
        line = one_error(invoke(*args, "--out", target), f"{target}: is ")
        assert "own" in line
    assert (snapshot(sweep_dir), snapshot(trained)) == before


def test_force_refuses_before_removing_anything_when_a_run_file_is_a_folder(tmp_path):
    cfg_path = write(tmp_path, BASE)
    assert invoke("train", cfg_path, "--out", tmp_path / "runs", "-q").exit_code == 0
    run = tmp_path / "runs" / "r"
    (run / "curves.png").unlink()
    (run / "curves.png").mkdir()
    before = snapshot(run)
    one_error(invoke("train", cfg_path, "--out", tmp_path / "runs", "--force"),
              f"{run / 'curves.png'}: is a folder where the run keeps a file")
    assert snapshot(run) == before


def test_a_kernel_file_that_waits_for_data_is_refused(tmp_path):
    kmsg = Path("/proc/kmsg")
    if not kmsg.exists():
        pytest.skip("no /proc/kmsg here")
    for args in (["train", kmsg], ["report", tmp_path, "--intro", kmsg]):
        res = bnexp_subprocess(*args, "--out", tmp_path / "out", timeout=60)
        assert res.returncode == 2 and len(res.stderr.strip().splitlines()) == 1, res.stderr
        assert res.stderr.startswith("error: ") and "Traceback" not in res.stderr
    assert not (tmp_path / "out").exists()


def test_an_oversized_grid_is_refused_at_once_even_with_a_report_section(tmp_path):
    raw = {**BASE, "sweep": {"grid": {"model.norm": ["none", "batch"]}, "seeds": [0, 1]},
           "report": {"title": "t", "claim": "c", "checks": [
               {"id": "c1", "text": "x", "difference": "final_test_acc",
                "a": {"model.norm": "batch"}, "b": {"model.norm": "none"}, "above": -1}]}}
    t0 = time.perf_counter()
    res = invoke("sweep", write(tmp_path, raw), "--dry-run", "--grid",
                 "init.weight_scale=logspace:0,-4,1000", "--grid", "train.lr=logspace:0,-4,1000")
    one_error(res, "sweep: 4,000,000 runs (2 x 1000 x 1000 grid values x 2 seeds); at most")
    assert time.perf_counter() - t0 < 10


def _edited_model(run: Path, tmp_path: Path, key: str, value) -> Path:
    import numpy as np

    with np.load(run / "model.npz") as z:
        arrays = {k: z[k] for k in z.files}
    arrays[key] = np.full_like(arrays[key], value)
    out = tmp_path / "edited.npz"
    np.savez(out, **arrays)
    return out


@pytest.mark.parametrize("value", [-1.0, 0.0])
def test_a_running_variance_no_norm_could_hold_is_refused(trained, tmp_path, value):
    key = "model/batchnorm1.running_var"
    model = _edited_model(trained, tmp_path, key, value)
    if value == 0.0:  # with eps 0 a zero variance would divide by zero
        import json as _json

        import numpy as np

        with np.load(model) as z:
            arrays = {k: z[k] for k in z.files}
        meta = _json.loads(str(arrays["__meta__"]))
        for d in meta["network"]["layers"]:
            if d["type"] == "BatchNorm":
                d["eps"] = 0.0
        arrays["__meta__"] = np.array(_json.dumps(meta))
        np.savez(model, **arrays)
    before = snapshot(trained)
    one_error(invoke("eval", trained, "--model", model), f"{model}: {key}: holds ")
    assert snapshot(trained) == before


def _checkpointed(tmp_path):
    """A run stopped after its checkpoint at epoch 2 of 4, as a kill leaves it."""
    from bnexp import config, train
    from bnexp.config import dump

    raw = {**BASE, "train": {**BASE["train"], "epochs": 4, "checkpoint_every": 1},
           "eval": {"diagnostics_every": 3, "step_loss": True}}
    cfg = config.from_dict(raw)
    saved = []
    train.train(cfg, on_checkpoint=saved.append)
    run = tmp_path / "runs" / "r"
    run.mkdir(parents=True)
    (run / "config.yaml").write_text(dump(cfg))
    (run / "run.json").write_text(json.dumps({"status": "running"}))
    return write(tmp_path, raw), run, saved[1], dump(cfg)


CHECKPOINT_EDITS = {
    "epoch past the end": lambda c: setattr(c, "epoch", 1000),
    "epoch of the last": lambda c: setattr(c, "epoch", 4),
    "no metrics": lambda c: setattr(c, "metrics", []),
    "metrics cut": lambda c: setattr(c, "metrics", c.metrics[:1]),
    "nan metric": lambda c: c.metrics[-1].update(test_acc=float("nan")),
    "a future row": lambda c: c.metrics.append({**c.metrics[-1], "epoch": 3}),
    "step": lambda c: setattr(c, "step", 5),
    "rng kind": lambda c: c.rngs["batches"].update(bit_generator="MT19937"),
    "rng state huge": lambda c: c.rngs["batches"]["state"].update(state=10 ** 200),
    "rng state negative": lambda c: c.rngs["batches"]["state"].update(state=-1),
    "no rngs": lambda c: setattr(c, "rngs", {}),
    "an array missing": lambda c: c.model.pop("linear_out.b"),
    "a bad diagnostics row": lambda c: setattr(c, "diagnostics", [{"x": 1}]),
    "negative running variance": lambda c: c.model["batchnorm1.running_var"].__setitem__(
        slice(None), -1.0),
    "has_uint32 of 2": lambda c: c.rngs["batches"].update(has_uint32=2),
    "an even increment": lambda c: c.rngs["batches"]["state"].update(
        inc=c.rngs["batches"]["state"]["inc"] + 1),
    "steps per epoch doubled throughout": lambda c: (
        setattr(c, "step", 2 * c.step), [r.update(step=2 * r["step"]) for r in c.metrics]),
    "an accuracy of 2": lambda c: c.metrics[-1].update(test_acc=2.0),
}


@pytest.mark.parametrize("edit", list(CHECKPOINT_EDITS))
def test_a_checkpoint_its_config_could_not_have_written_is_not_resumed(tmp_path, edit):
    import copy

    from bnexp.modelfile import checkpoint_bytes

    cfg_path, run, ckpt, text = _checkpointed(tmp_path)
    ckpt = copy.deepcopy(ckpt)
    CHECKPOINT_EDITS[edit](ckpt)
    (run / "checkpoint.npz").write_bytes(checkpoint_bytes(ckpt, text))
    before = snapshot(run)
    res = invoke("train", cfg_path, "--out", tmp_path / "runs")
    line = one_error(res, f"{run / 'checkpoint.npz'}: ")
    assert line.endswith("pass --force to start the run over") or "holds" in line, line
    assert snapshot(run) == before
    res = invoke("train", cfg_path, "--out", tmp_path / "runs", "-q", "--force")
    assert res.exit_code == 0, res.output


def test_an_unedited_checkpoint_still_resumes(tmp_path):
    from bnexp.modelfile import checkpoint_bytes

    cfg_path, run, ckpt, text = _checkpointed(tmp_path)
    (run / "checkpoint.npz").write_bytes(checkpoint_bytes(ckpt, text))
    res = invoke("train", cfg_path, "--out", tmp_path / "runs", "-q")
    assert res.exit_code == 0, res.output
    assert json.loads((run / "run.json").read_text())["resumed_from_epoch"] == 2


def test_a_scheduler_without_workers_is_one_line_not_a_silent_wait(tmp_path):
    """A real scheduler (in this process) that has no worker; bnexp in a child
    process, so that a silent wait is a timeout, not a hung suite."""
    pytest.importorskip("distributed")
    from distributed import LocalCluster

    with LocalCluster(n_workers=0, processes=False, protocol="tcp", host="127.0.0.1",
                      dashboard_address=None) as cluster:
        raw = {**BASE, "sweep": {"grid": {"train.lr": [0.1]}, "seeds": [0]}}
        res = bnexp_subprocess("sweep", write(tmp_path, raw), "--executor", "dask",
                               "--address", cluster.scheduler_address, "--out",
                               tmp_path / "runs", timeout=90)
        address = cluster.scheduler_address
    assert res.returncode == 2, res.stderr
    assert res.stderr.strip() == (
        f"error: --address {address}: the scheduler has no workers (none joined within 20 s); "
        f"start some with `dask worker {address}`, then rerun")
    assert not (tmp_path / "runs").exists()


def test_a_finished_run_drops_its_checkpoint_before_it_says_finished(tmp_path, monkeypatch):
    """A kill between the two must leave a run the same command reruns, not a
    finished run beside a stale checkpoint."""
    from bnexp import store

    raw = {**BASE, "train": {**BASE["train"], "epochs": 3, "checkpoint_every": 1}}
    cfg_path = write(tmp_path, raw)
    run = tmp_path / "runs" / "r"
    seen = {}
    real = store.write_json

    def spy(path, data):
        if Path(path).name == "run.json" and data.get("status") == "completed":
            seen["checkpoint there"] = (run / "checkpoint.npz").exists()
        return real(path, data)
    monkeypatch.setattr(store, "write_json", spy)
    assert invoke("train", cfg_path, "--out", tmp_path / "runs", "-q").exit_code == 0
    assert seen == {"checkpoint there": False}


def test_a_report_cut_short_by_a_write_error_leaves_no_figures_folder(sweep_dir, tmp_path):
    import resource

    def small_files():
        resource.setrlimit(resource.RLIMIT_FSIZE, (8 << 10, 8 << 10))
    page = tmp_path / "page" / "r.md"
    page.parent.mkdir()
    res = subprocess.run([sys.executable, "-m", "bnexp", "report", str(sweep_dir), "--out",
                          str(page)], capture_output=True, text=True, timeout=120,
                         preexec_fn=small_files)
    assert res.returncode == 2 and "File too large" in res.stderr, res.stderr
    assert list(page.parent.iterdir()) == []


@pytest.mark.parametrize("args,line", [
    (["train", "book_bn", "--threads", "0"], "Invalid value for '--threads': 0 is not in the "
                                             "range x>=1. (see bnexp train --help)"),
    (["plot", ".", "--kind", "foo"], "Invalid value for '--kind': 'foo' is not one of"),
    (["train"], "Missing argument 'CONFIG'. (see bnexp train --help)"),
])
def test_a_commands_own_option_errors_are_one_line(args, line):
    one_error(invoke(*args), line)


def test_a_path_longer_than_the_system_allows_is_one_line(sweep_dir, tmp_path):
    deep = tmp_path / ("d/" * 2100 + "x.md")
    for args in (["report", sweep_dir], ["plot", sweep_dir], ["init", "book_bn"]):
        res = invoke(*args, *(["--out"] if args[0] != "init" else []), deep)
        assert res.exit_code == 2 and "Traceback" not in res.output, res.output
        assert res.output.startswith("error: ") and len(res.output.strip().splitlines()) == 1
    res = invoke("train", write(tmp_path, BASE), "--out", tmp_path / ("d/" * 2100))
    assert res.exit_code == 2 and res.output.startswith("error: "), res.output


def test_plot_out_may_not_replace_a_sweeps_own_figure(sweep_dir, trained):
    own = sweep_dir / "final.png" if (sweep_dir / "final.png").exists() else sweep_dir / "grid.png"
    before = own.read_bytes()
    for args in (["plot", sweep_dir, "--kind", "final", "--x", "train.lr"], ["plot", trained]):
        one_error(invoke(*args, "--out", own), f"{own}: is {sweep_dir}'s own {own.name}")
    assert own.read_bytes() == before


def test_a_killed_sweep_takes_its_workers_with_it(tmp_path):
    """With the parent killed by SIGKILL, pool workers would go on writing
    checkpoints beside the next sweep; they die with it."""
    raw = {**BASE, "name": "sk", "train": {**BASE["train"], "epochs": 5000,
                                           "checkpoint_every": 100},
           "sweep": {"grid": {"model.norm": ["none", "batch"]}, "seeds": [0]}}
    proc = subprocess.Popen([sys.executable, "-m", "bnexp", "sweep", str(write(tmp_path, raw)),
                             "--out", str(tmp_path / "runs"), "-j", "2", "--no-plot", "-q"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 90
    while time.time() < deadline and len(list((tmp_path / "runs").glob("sk/*/checkpoint.npz"))) < 2:
        time.sleep(0.1)
    workers = [int(p) for p in os.listdir("/proc") if p.isdigit() and _child_worker(int(p), proc.pid)]
    assert len(workers) == 2, "the sweep's two workers were not found running"
    proc.kill()
    proc.wait()
    deadline = time.time() + 20
    while time.time() < deadline and any(_alive(w) for w in workers):
        time.sleep(0.1)
    assert not any(_alive(w) for w in workers), "a worker outlived its killed sweep"


def _child_worker(pid: int, parent: int) -> bool:
    try:
        stat_line = Path(f"/proc/{pid}/stat").read_text()
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    ppid = int(stat_line.rsplit(")", 1)[1].split()[1])
    return ppid == parent and b"spawn_main" in cmdline


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_a_run_whose_worker_was_killed_is_rerun_by_the_same_command(tmp_path):
    """A worker killed (the OOM killer, say) did not make its run fail: it is
    marked interrupted, and the same command runs it again."""
    raw = {**BASE, "name": "wk", "train": {**BASE["train"], "epochs": 3000,
                                           "checkpoint_every": 100},
           "sweep": {"grid": {"model.norm": ["none"]}, "seeds": [0]}}
    cmd = [sys.executable, "-m", "bnexp", "sweep", str(write(tmp_path, raw)), "--out",
           str(tmp_path / "runs"), "-j", "1", "--no-plot", "-q"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    run = tmp_path / "runs" / "wk" / "norm=none,seed=0"
    deadline = time.time() + 90
    while time.time() < deadline and not (run / "checkpoint.npz").exists():
        time.sleep(0.1)
    workers = [int(p) for p in os.listdir("/proc") if p.isdigit() and _child_worker(int(p), proc.pid)]
    assert len(workers) == 1
    os.kill(workers[0], 9)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 1 and "Traceback" not in err, err
    info = json.loads((run / "run.json").read_text())
    assert info["status"] == "interrupted" and info["error"].startswith(
        "its worker stopped before it finished: "), info
    assert "the same command runs them again" in err
    again = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    assert json.loads((run / "run.json").read_text())["status"] == "completed"
