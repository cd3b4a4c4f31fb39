"""Bad input and hostile folders: every case ends as one clear line naming
the problem, exit code 2, nothing written and nothing existing damaged.

Classes (as issue 13 lists them): train vs a running sweep; YAML that lies
(duplicate keys, alias bombs, deep nesting, bytes that are not UTF-8); data
that is not what it claims and sizes that cannot work; tracebacks where a line
belongs; refused commands that wrote anyway; temporary files left behind;
non-finite numbers; paths read from files that escape their folder; unclear
messages.
"""

import errno
import gzip
import json
import os
import shutil
import time
from pathlib import Path

import pytest
import yaml
from clitools import invoke, read
from idxdata import write_idx_set

from bnexp import store

BASE = {"name": "r", "data": {"dataset": "synthetic", "n_train": 60, "n_test": 30, "dim": 6,
                              "classes": 3},
        "model": {"hidden": [8]}, "init": {"weight_scale": "he"},
        "train": {"epochs": 1, "batch_size": 20, "lr": 0.1}}


def write(tmp_path, raw, name="c.yaml"):
    path = tmp_path / name
    path.write_text(yaml.safe_dump(raw) if not isinstance(raw, str) else raw)
    return path


def snapshot(folder: Path) -> dict:
    """Every file under ``folder`` with its bytes (the lock file aside)."""
    if not folder.exists():
        return {}
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and p.name != ".lock"}


def one_error(res, line: str, exact: bool = True):
    """Exit 2 and exactly one line, ``error: LINE`` (or starting with it)."""
    assert res.exit_code == 2, res.output
    lines = [ln for ln in res.output.splitlines() if ln.strip()]
    assert len(lines) == 1, res.output
    assert "Traceback" not in res.output
    if exact:
        assert lines[0] == f"error: {line}"
    else:
        assert lines[0].startswith(f"error: {line}"), lines[0]


# --- train vs a running sweep ------------------------------------------------------

@pytest.fixture
def finished_sweep(tmp_path):
    cfg = write(tmp_path, {**BASE, "name": "sw", "sweep": {"grid": {"model.norm": ["batch",
                                                                                    "none"]}}})
    res = invoke("sweep", cfg, "--out", tmp_path / "runs", "--no-plot", "-q")
    assert res.exit_code == 0, res.output
    return cfg, tmp_path / "runs" / "sw"


def test_train_into_a_run_of_a_running_sweep_is_refused(finished_sweep):
    cfg, sdir = finished_sweep
    run = sdir / "norm=none,seed=0"
    before = snapshot(sdir)
    with store.lock(sdir, "sweep"):
        res = invoke("train", run / "config.yaml", "--out", sdir, "--force")
    one_error(res, f"{sdir} is in use by another bnexp process (bnexp sweep, pid {os.getpid()}",
              exact=False)
    assert snapshot(sdir) == before


def test_train_into_a_sweeps_own_folder_is_refused(finished_sweep, tmp_path):
    cfg, sdir = finished_sweep
    before = snapshot(sdir)
    res = invoke("train", cfg, "--out", tmp_path / "runs", "--set", "name=sw")
    one_error(res, f"{sdir} is a sweep folder; train into another folder (--out) or under "
                   "another name (--set name=...)")
    assert snapshot(sdir) == before


def test_train_into_a_sweeps_run_with_another_config_is_refused(finished_sweep):
    cfg, sdir = finished_sweep
    run = sdir / "norm=none,seed=0"
    before = snapshot(sdir)
    res = invoke("train", run / "config.yaml", "--out", sdir, "--force", "--set", "train.lr=0.5")
    one_error(res, f"{run} is run norm=none,seed=0 of the sweep {sdir}, whose config differs "
                   "(train.lr); train a variant into another folder (--out)")
    res = invoke("train", run / "config.yaml", "--out", sdir, "--set", "name=stray")
    one_error(res, f"{sdir / 'stray'} is inside the sweep folder {sdir} but is not one of its "
                   "runs; train into another folder (--out)")
    assert snapshot(sdir) == before


def test_rerunning_a_sweeps_run_as_recorded_keeps_the_sweep_consistent(finished_sweep):
    cfg, sdir = finished_sweep
    run = sdir / "norm=none,seed=0"
    info = json.loads((run / "run.json").read_text())
    res = invoke(*info["command"][1:], "-q", "--no-plot")
    assert res.exit_code == 0, res.output
    rows = {r["run_id"]: r for r in read(sdir / "summary.csv")}
    assert rows["norm=none,seed=0"]["status"] == "completed"
    res = invoke("sweep", cfg, "--out", sdir.parent, "--no-plot")
    assert res.exit_code == 0 and "2 skipped" in res.output


def test_a_sweep_into_a_single_runs_folder_is_refused(tmp_path):
    cfg = write(tmp_path, {**BASE, "name": "one"})
    assert invoke("train", cfg, "--out", tmp_path / "runs", "-q", "--no-plot").exit_code == 0
    before = snapshot(tmp_path / "runs")
    sweep_cfg = write(tmp_path, {**BASE, "name": "one", "sweep": {"grid": {"model.norm":
                                                                           ["none"]}}}, "s.yaml")
    res = invoke("sweep", sweep_cfg, "--out", tmp_path / "runs")
    one_error(res, f"{tmp_path / 'runs' / 'one'} holds a single run, not a sweep; give the sweep "
                   "another name (--set name=...) or --out")
    assert snapshot(tmp_path / "runs") == before


# --- YAML that lies ----------------------------------------------------------------

@pytest.mark.parametrize("text,line", [
    ("name: a\nmodel: {hidden: [16, 16]}\ntrain: {epochs: 1}\nmodel: {norm: none}\n",
     "{p}: model: duplicate key at line 4 (first at line 2); keep one"),
    ("name: a\ntrain:\n  lr: 0.1\n  lr: 0.5\n",
     "{p}: train.lr: duplicate key at line 4 (first at line 3); keep one"),
    ("a: &a [x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
     "c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]\n"
     "e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d]\nf: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e]\n"
     "g: [*f, *f, *f, *f, *f, *f, *f, *f, *f]\n",
     "{p}: expands to more than 1,000,000 values through aliases (&anchor / *alias); write the "
     "values out"),
    ("name: &n [*n]\n", "{p}: a recursive alias at line 1 (a value that contains itself)"),
    ("x: " + "[" * 20000 + "]" * 20000 + "\n", "{p}: nested deeper than 64 levels at line 1"),
])
def test_yaml_that_lies_is_refused(tmp_path, text, line):
    path = tmp_path / "c.yaml"
    path.write_text(text)
    t0 = time.perf_counter()
    for command in ("train", "sweep"):
        res = invoke(command, path, "--out", tmp_path / "runs")
        one_error(res, line.format(p=path))
    assert time.perf_counter() - t0 < 10
    assert not (tmp_path / "runs").exists()


def test_the_issues_alias_bomb_in_report_and_grid_is_refused_at_once(tmp_path):
    bomb = ("name: s\nreport:\n  a: &a [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]\n"
            "  b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
            "  c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\n"
            "  d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]\n"
            "  e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d]\n"
            "  f: &i [*e, *e, *e, *e, *e, *e, *e, *e, *e, *e]\n"
            "sweep:\n  grid:\n    model.hidden: [*i]\n")
    path = tmp_path / "s.yaml"
    path.write_text(bomb)
    t0 = time.perf_counter()
    res = invoke("sweep", path, "--dry-run")
    assert time.perf_counter() - t0 < 5
    one_error(res, f"{path}: expands to more than 1,000,000 values through aliases", exact=False)


def test_text_that_is_not_utf8_is_refused(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_bytes(b"name: caf\xe9\n")
    one_error(invoke("train", path, "--out", tmp_path / "runs"),
              f"{path}: not UTF-8 text (byte 0xe9 at offset 9); save it as UTF-8")
    intro = tmp_path / "intro.md"
    intro.write_bytes(b"\xff\xfe intro")
    res = invoke("report", tmp_path, "--intro", intro)
    one_error(res, f"--intro {intro}: not UTF-8 text (byte 0xff at offset 0); save it as UTF-8")
    assert not (tmp_path / "runs").exists() and not (tmp_path / "report.md").exists()


@pytest.mark.parametrize("grid,line", [
    ("model.hidden=[10,10],[20", "--grid model.hidden=[10,10],[20: invalid YAML"),
    ("train.lr=logspace:0,-4,100000000", "sweep.grid.train.lr.logspace: got [0, -4, 100000000], "
                                         "expected [start, stop, num] with finite numbers and num "
                                         "an integer from 1 to 100,000"),
    ("train.lr=", "--grid train.lr=: no values after '='"),
    ("=1,2", "--grid =1,2: expected key=v1,v2,... or key=logspace:a,b,n"),
])
def test_bad_grid_options_are_one_line(tmp_path, grid, line):
    cfg = write(tmp_path, BASE)
    t0 = time.perf_counter()
    one_error(invoke("sweep", cfg, "--grid", grid, "--out", tmp_path / "runs"), line,
              exact=False)
    assert time.perf_counter() - t0 < 5 and not (tmp_path / "runs").exists()


def test_list_values_in_grid_options(tmp_path):
    cfg = write(tmp_path, BASE)
    res = invoke("sweep", cfg, "--grid", "model.hidden=[10,10],[20]", "--dry-run")
    assert res.exit_code == 0, res.output
    assert "2 runs (2 grid points x 1 seed)" in res.output


# --- data that is not what it claims, sizes that cannot work --------------------------

def _idx_case(tmp_path, case):
    folder = write_idx_set(tmp_path / "data", n_train=200, n_test=60)
    labels = folder / "train-labels-idx1-ubyte.gz"
    images = folder / "train-images-idx3-ubyte.gz"
    if case == "truncated":
        images.write_bytes(images.read_bytes()[:500])
    elif case == "magic":
        raw = bytearray(gzip.decompress(images.read_bytes()))
        raw[2] = 0x0D  # float, not unsigned bytes
        images.write_bytes(gzip.compress(bytes(raw)))
    elif case == "counts":
        raw = bytearray(gzip.decompress(labels.read_bytes()))
        raw[4:8] = (150).to_bytes(4, "big")
        labels.write_bytes(gzip.compress(bytes(raw[:8 + 150])))
    elif case == "labels":
        raw = bytearray(gzip.decompress(labels.read_bytes()))
        raw[20] = 200
        labels.write_bytes(gzip.compress(bytes(raw)))
    return folder


@pytest.mark.parametrize("case,line", [
    ("truncated", "{d}/train-images-idx3-ubyte.gz: cannot read"),
    ("magic", "{d}/train-images-idx3-ubyte.gz: not an IDX file of unsigned bytes"),
    ("counts", "mnist: 200 train images but (150,) labels in {d}/train-labels-idx1-ubyte.gz; "
               "the files do not belong together"),
    ("labels", "{d}/train-labels-idx1-ubyte.gz: labels from 0 to 200, expected 0 to 9 (mnist)"),
])
def test_corrupt_data_files_are_refused_before_any_folder(tmp_path, case, line):
    folder = _idx_case(tmp_path, case)
    raw = {**BASE, "data": {"dataset": "mnist", "root": str(folder), "n_train": 100,
                            "n_test": 50}}
    cfg = write(tmp_path, {**raw, "sweep": {"grid": {"model.norm": ["batch", "none"]}}})
    for command in ("train", "sweep"):
        res = invoke(command, cfg, "--out", tmp_path / "runs")
        one_error(res, line.format(d=folder), exact=False)
    assert not (tmp_path / "runs").exists()


def test_a_checksum_mismatch_is_refused(tmp_path, monkeypatch):
    from bnexp.datasets import sources

    folder = write_idx_set(tmp_path / "fashion-mnist", n_train=200, n_test=60)
    monkeypatch.setitem(sources.SHA256_RAW, "fashion-mnist",
                        {"train-images-idx3-ubyte": "0" * 64})
    cfg = write(tmp_path, {**BASE, "data": {"dataset": "fashion-mnist", "root": str(tmp_path),
                                            "n_train": 100, "n_test": 50}})
    res = invoke("train", cfg, "--out", tmp_path / "runs")
    one_error(res, f"{folder}/train-images-idx3-ubyte.gz: SHA-256 of the decompressed data is",
              exact=False)
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("setting,line", [
    ("data.n_train=10000000000000000000000000000000000000000",
     "data.n_train: got 10000000000000000000000000000000000000000, expected an integer from 1 "
     "to 10,000,000 or null"),
    ("model.hidden=[100000000000]", "model.hidden: got [100000000000], expected a list of at "
                                    "most 100 integers from 1 to 100,000, e.g. [100, 100] (or "
                                    "null: the default for model.arch)"),
    ("model.hidden=[100000,100000]", "model.hidden: got [100000, 100000], a model of "
                                     "10,079,600,010 parameters; at most 100,000,000 (memory)"),
    ("train.batch_size=5000", "train.batch_size: got 5000, expected <= data.n_train (1000)"),
])
def test_impossible_sizes_are_refused(tmp_path, setting, line):
    cfg = write(tmp_path, {**BASE, "data": {"dataset": "mnist5k"}})
    one_error(invoke("train", cfg, "--set", setting, "--out", tmp_path / "runs"), line)
    assert not (tmp_path / "runs").exists()


def test_a_batch_larger_than_the_whole_training_split_is_refused(tmp_path):
    folder = write_idx_set(tmp_path / "data", n_train=200, n_test=60)
    cfg = write(tmp_path, {**BASE, "data": {"dataset": "mnist", "root": str(folder),
                                            "n_train": None, "n_test": None},
                           "train": {"batch_size": 500}})
    one_error(invoke("train", cfg, "--out", tmp_path / "runs"),
              "train.batch_size: got 500, expected at most the 200 training samples")
    one_error(invoke("train", cfg, "--set", "data.n_train=300", "--set", "train.batch_size=20",
                     "--out", tmp_path / "runs"),
              "data.n_train: got 300, expected at most 200 (the training split of mnist)")
    assert not (tmp_path / "runs").exists()


def test_a_dry_run_never_downloads(tmp_path, monkeypatch):
    from bnexp.datasets import download, sources

    def refuse(*args, **kwargs):
        raise AssertionError("a dry run must not download")

    monkeypatch.setattr(download, "download", refuse)
    cfg = write(tmp_path, {**BASE, "data": {"dataset": "mnist"},
                           "sweep": {"grid": {"model.norm": ["none"]}}})
    res = invoke("sweep", cfg, "--dry-run", "--out", tmp_path / "runs")
    assert res.exit_code == 0, res.output
    assert ("note: mnist: not on this machine yet; the first run downloads it (or: bnexp data "
            "download mnist)") in res.output
    assert not sources.cache_dir("mnist").exists() and not (tmp_path / "runs").exists()


# --- tracebacks where a line belongs -----------------------------------------------

@pytest.fixture
def sweep_copy(finished_sweep, tmp_path):
    """A copy of a finished sweep to damage."""
    _, sdir = finished_sweep
    copy = tmp_path / "copy" / "sw"
    shutil.copytree(sdir, copy)
    return copy


@pytest.mark.parametrize("damage,line", [
    (lambda d: (d / "summary.csv").unlink(),
     "{d}: no summary.csv yet: the sweep has not started its first run (run its `bnexp sweep` "
     "command)"),
    (lambda d: (d / "sweep.yaml").write_text("- just\n- a list\n"),
     "{d}/sweep.yaml: expected a mapping with config and sweep (the file is damaged or was "
     "edited; run the sweep's `bnexp sweep` command again to rewrite it)"),
    (lambda d: (d / "sweep.yaml").write_text("sweep: [1, 2]\n"),
     "{d}/sweep.yaml: sweep: expected a mapping with grid and seeds (the file is damaged or was "
     "edited; run the sweep's `bnexp sweep` command again to rewrite it)"),
    (lambda d: (d / "sweep.yaml").write_text("sweep: {grid: {a: [1]}\n"),
     "{d}/sweep.yaml: invalid YAML at line 2, column 1: expected ',' or '}}', but got "
     "'<stream end>'"),
    (lambda d: (d / "summary.csv").write_text("run_id,seed\nx,0\n"),
     "{d}/summary.csv: missing column(s) model.norm, status (damaged, or written by another "
     "program)"),
    (lambda d: (d / "summary.csv").write_text(
        "run_id,model.norm,seed,status\n../victim,none,0,completed\n"),
     "{d}/summary.csv: line 2: run_id '../victim' is not a folder name inside the sweep "
     "(damaged or edited file)"),
])
def test_damaged_sweep_folders_give_one_line(sweep_copy, damage, line):
    damage(sweep_copy)
    before = snapshot(sweep_copy)
    for args in (("plot", sweep_copy), ("report", sweep_copy), ("verify", sweep_copy)):
        one_error(invoke(*args), line.format(d=sweep_copy))
    assert snapshot(sweep_copy) == before


def test_a_truncated_metrics_file_gives_one_line(sweep_copy, tmp_path):
    metrics = sweep_copy / "norm=batch,seed=0" / "metrics.csv"
    lines = metrics.read_text().splitlines()
    lines[-1] = ",".join(lines[-1].split(",")[:3])  # a write cut short in its last line
    metrics.write_text("\n".join(lines))
    one_error(invoke("plot", sweep_copy, "--out", tmp_path / "x.png"),
              f"{metrics}: line 3 has 3 fields, expected 7 (truncated or damaged file)")
    one_error(invoke("plot", metrics.parent, "--out", tmp_path / "x.png"),
              f"{metrics}: line 3 has 3 fields, expected 7 (truncated or damaged file)")
    assert not (tmp_path / "x.png").exists()


def test_hand_edited_report_sections_give_one_line(sweep_copy):
    data = yaml.safe_load((sweep_copy / "sweep.yaml").read_text())
    data["report"] = {"figures": [{"kind": "grid", "colour": "red"}], "metrics": ["accuracy"]}
    (sweep_copy / "sweep.yaml").write_text(yaml.safe_dump(data))
    res = invoke("report", sweep_copy)
    assert res.exit_code == 2 and "Traceback" not in res.output
    assert res.output.splitlines() == [
        f"error: {sweep_copy}/sweep.yaml: report.metrics: got accuracy in the list, expected "
        "only final_train_acc, final_test_acc, best_test_acc, final_train_loss, "
        "final_test_loss, epochs, seconds (the table's columns)",
        f"error: {sweep_copy}/sweep.yaml: report.figures[0].colour: unknown option (expected "
        "kind, panels, lines, x, y, metric, stat, filters, layer, band)"]


@pytest.mark.parametrize("name,line", [
    ("a\x00b", "name: got 'a\\x00b', expected a folder name: not empty, no '/', no control "
               "characters, not starting with '.', at most 255 bytes"),
    ("é" * 200, "name: got '" + "é" * 200 + "', expected a folder name: not empty, no '/', no "
                "control characters, not starting with '.', at most 255 bytes"),
    ("../up", "name: got '../up', expected a folder name: not empty, no '/', no control "
              "characters, not starting with '.', at most 255 bytes"),
])
def test_names_that_are_not_one_folder_are_refused(tmp_path, name, line):
    cfg = write(tmp_path, {**BASE, "name": name})
    one_error(invoke("train", cfg, "--out", tmp_path / "runs"), line)
    assert not (tmp_path / "runs").exists()


def test_long_swept_values_give_short_run_ids(tmp_path):
    cfg = write(tmp_path, {**BASE, "sweep": {"grid": {"data.root": ["ü" * 200, "ö" * 200]}}})
    res = invoke("sweep", cfg, "--out", tmp_path / "runs", "--no-plot", "-q")
    assert res.exit_code == 0, res.output
    ids = [r["run_id"] for r in read(tmp_path / "runs" / "r" / "summary.csv")]
    assert len(set(ids)) == 2 and all(len(i.encode()) <= 120 for i in ids)


def test_unwritable_places_give_one_line_and_leave_nothing(tmp_path):
    cfg = write(tmp_path, {**BASE, "sweep": {"grid": {"model.norm": ["none"]}}})
    afile = tmp_path / "afile"
    afile.write_text("keep me")
    for command in ("train", "sweep"):
        one_error(invoke(command, cfg, "--out", afile / "runs"),
                  f"cannot create folder {afile / 'runs' / 'r'}: {afile} is a file, not a folder")
    assert afile.read_text() == "keep me"
    assert invoke("train", cfg, "--out", tmp_path / "ok", "-q").exit_code == 0
    one_error(invoke("plot", tmp_path / "ok" / "r", "--out", afile / "x.png"),
              f"cannot create folder {afile}: {afile} is a file, not a folder")
    if not os.access("/sys", os.W_OK) or _refuses_writes("/sys"):
        one_error(invoke("train", cfg, "--out", "/sys/bnexp-test"),
                  "cannot create folder /sys/bnexp-test/r: Operation not permitted", exact=False)


def _refuses_writes(path: str) -> bool:
    try:
        os.mkdir(os.path.join(path, "bnexp-probe"))
    except OSError:
        return True
    os.rmdir(os.path.join(path, "bnexp-probe"))
    return False


def test_a_full_disk_gives_one_line_and_keeps_what_was_written(tmp_path, monkeypatch):
    cfg = write(tmp_path, {**BASE, "train": {**BASE["train"], "epochs": 2}})
    assert invoke("train", cfg, "--out", tmp_path, "-q", "--no-plot").exit_code == 0
    before = snapshot(tmp_path / "r")
    real = os.replace

    def full(src, dst):
        if str(dst).endswith("metrics.csv"):
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(src, dst)

    monkeypatch.setattr(os, "replace", full)
    res = invoke("train", cfg, "--out", tmp_path, "--set", "name=r2", "-q", "--no-plot")
    one_error(res, f"cannot write {tmp_path / 'r2' / 'metrics.csv'}: No space left on device")
    assert snapshot(tmp_path / "r") == before  # the other run is untouched
    assert not list((tmp_path / "r2").glob(".*.tmp"))  # no temporary left


# --- refused commands write nothing ------------------------------------------------

def test_a_refused_sweep_changes_nothing(finished_sweep):
    cfg, sdir = finished_sweep
    before = snapshot(sdir)
    res = invoke("sweep", cfg, "--out", sdir.parent, "--set", "train.lr=0.5")
    assert res.exit_code == 2
    assert "holds a run of a different config (train.lr differ)" in res.output
    assert snapshot(sdir) == before


def test_dask_without_a_scheduler_leaves_no_folder(tmp_path):
    pytest.importorskip("distributed")
    cfg = write(tmp_path, {**BASE, "sweep": {"grid": {"model.norm": ["none"]}}})
    res = invoke("sweep", cfg, "--out", tmp_path / "runs", "--executor", "dask",
                 "--address", "tcp://127.0.0.1:9")
    assert res.exit_code == 2 and "cannot reach a Dask scheduler" in res.output
    assert not (tmp_path / "runs").exists()


# --- temporary files left behind ---------------------------------------------------

def test_resuming_removes_temporary_files_a_killed_writer_left(finished_sweep):
    cfg, sdir = finished_sweep
    stale = [sdir / ".summary.csv.k1ll3d.tmp", sdir / "norm=none,seed=0" / ".metrics.csv.x.tmp"]
    for p in stale:
        p.write_text("half")
    res = invoke("sweep", cfg, "--out", sdir.parent, "--no-plot")
    assert res.exit_code == 0
    assert not any(p.exists() for p in stale)


# --- non-finite numbers ------------------------------------------------------------

@pytest.mark.parametrize("setting,line", [
    ("train.lr=.inf", "train.lr: got .inf, expected a finite number (a number > 0; not inf or "
                      "nan)"),
    ("train.lr=Infinity", "train.lr: got 'Infinity', expected a finite number (a number > 0; "
                          "not inf or nan)"),
    ("norm.eps=.inf", "norm.eps: got .inf, expected a finite number (a number >= 1e-30; not inf "
                      "or nan)"),
    ("norm.momentum=.nan", "norm.momentum: got .nan, expected a finite number (a number in "
                           "[0, 1] or null; not inf or nan)"),
    ("model.dropout=nan", "model.dropout: got 'nan', expected a finite number (a number in "
                          "[0, 0.99]; not inf or nan)"),
    ("train.weight_decay=-.inf", "train.weight_decay: got -.inf, expected a finite number (a "
                                 "number >= 0; not inf or nan)"),
])
def test_non_finite_numbers_are_refused(tmp_path, setting, line):
    cfg = write(tmp_path, BASE)
    one_error(invoke("train", cfg, "--set", setting, "--out", tmp_path / "runs"), line)
    assert not (tmp_path / "runs").exists()


# --- paths read from files stay in their folder ------------------------------------

def test_run_ids_in_summary_csv_cannot_reach_outside_the_sweep(sweep_copy, tmp_path):
    victim = sweep_copy.parent / "victim"
    shutil.copytree(sweep_copy / "norm=batch,seed=0", victim)
    rows = (sweep_copy / "summary.csv").read_text().replace("norm=batch,seed=0", "../victim")
    (sweep_copy / "summary.csv").write_text(rows)
    for args in (("plot", sweep_copy, "--out", tmp_path / "x.png"), ("report", sweep_copy)):
        res = invoke(*args)
        one_error(res, f"{sweep_copy}/summary.csv: line 2: run_id '../victim' is not a folder "
                       "name inside the sweep (damaged or edited file)")


# --- unclear messages --------------------------------------------------------------

@pytest.mark.parametrize("args,line", [
    (["--set", "=5"], "--set =5: expected dotted.key=value, e.g. model.norm=none (the key "
                      "before '=' is empty)"),
    (["--set", "model=5"], "model: is a section, not a key; set one of its keys, e.g. "
                           "model.arch=... (keys: arch, hidden, channels, kernel, stride, "
                           "padding, pool, pool_kernel, pool_stride, head, blocks, activation, "
                           "norm, placement, groups, dropout, dropout_at)"),
])
def test_settings_name_what_is_wrong(tmp_path, args, line):
    cfg = write(tmp_path, BASE)
    one_error(invoke("train", cfg, *args, "--out", tmp_path / "runs"), line)


def test_address_without_dask_is_an_error_and_too_many_jobs_a_note(tmp_path):
    cfg = write(tmp_path, {**BASE, "sweep": {"grid": {"model.norm": ["none"]}}})
    one_error(invoke("sweep", cfg, "--address", "tcp://127.0.0.1:8786", "--out",
                     tmp_path / "runs"),
              "--address tcp://127.0.0.1:8786: only used with --executor dask (add it, or drop "
              "--address to run on this machine)")
    assert not (tmp_path / "runs").exists()
    many = (os.cpu_count() or 1) + 62
    res = invoke("sweep", cfg, "-j", many, "--dry-run")
    assert res.exit_code == 0
    assert f"note: -j {many} runs {many} processes on {os.cpu_count()} core" in res.output


# --- friction a first user meets ---------------------------------------------------

def test_shipped_experiments_are_listed_copied_and_run_by_name(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    res = invoke("list")
    assert res.exit_code == 0
    rows = {ln.split()[0]: ln.split()[1] for ln in res.output.splitlines()[1:]
            if not ln.startswith(" ")}  # not a description's continuation line
    assert rows["weight_scale"] == "160" and rows["book_bn"] == "1"
    assert "The book's Figure 6-19" in res.output
    res = invoke("init", "weight_scale")
    assert res.exit_code == 0 and (tmp_path / "weight_scale.yaml").is_file()
    one_error(invoke("init", "weight_scale"),
              "weight_scale.yaml exists; pass --force to overwrite it or name another file")
    res = invoke("sweep", "weight_scale", "--dry-run")
    assert res.exit_code == 0 and "160 runs (32 grid points x 5 seeds)" in res.output
    assert invoke("sweep", "configs/weight_scale.yaml", "--dry-run").exit_code == 0  # old path
    one_error(invoke("sweep", "weight_scael"),
              "weight_scael: no such file, and no shipped experiment of that name (shipped: ",
              exact=False)


def test_progress_without_a_terminal_is_a_line_per_run(tmp_path):
    cfg = write(tmp_path, {**BASE, "sweep": {"grid": {"model.norm": ["batch", "none"]}}})
    res = invoke("sweep", cfg, "--out", tmp_path / "runs", "--no-plot", "-j", "1")
    assert res.exit_code == 0
    lines = [ln for ln in res.output.splitlines() if ln.startswith("[")]
    assert [ln.split(" ")[0] for ln in lines] == ["[1/2]", "[2/2]"]
    assert all(": completed, test acc " in ln for ln in lines)
    res = invoke("train", cfg, "--out", tmp_path / "one", "--no-plot")
    assert [ln.split(":")[1] for ln in res.output.splitlines() if ": epoch " in ln] == [
        " epoch 0/1", " epoch 1/1"]


def test_data_download_skips_a_verified_copy(tmp_path, monkeypatch):
    from bnexp.datasets import download

    folder = write_idx_set(tmp_path / "mnist", n_train=200, n_test=60)
    monkeypatch.setenv("BNEXP_DATA", str(tmp_path))
    monkeypatch.setattr(download, "download", lambda *a, **k: pytest.fail("downloaded"))
    res = invoke("data", "download", "mnist")
    assert res.exit_code == 0
    assert res.output.strip() == (f"mnist: already here and verified in {folder}; nothing to "
                                  "download (--dest DIR downloads a copy there)")


def test_a_signal_during_a_write_leaves_no_temporary_file(tmp_path):
    """Ctrl-C (or a sweep's SIGTERM, which raises the same way) may arrive at
    any moment of a write. It must leave the old file or the new one, never a
    stray ``.*.tmp`` or a half-written file."""
    import signal
    import threading

    armed = [False]

    def handler(signum, frame):
        if armed[0]:
            armed[0] = False
            raise KeyboardInterrupt

    old = signal.signal(signal.SIGINT, handler)
    stop = threading.Event()

    def pester():
        main = threading.main_thread().ident
        while not stop.is_set():
            signal.pthread_kill(main, signal.SIGINT)
            time.sleep(1e-5)

    interrupted = 0
    pest = threading.Thread(target=pester)
    pest.start()
    try:
        for i in range(1500):
            try:
                armed[0] = True
                store.atomic_write(tmp_path / "a.csv", f"{i}\n" * 200)
                armed[0] = False
            except KeyboardInterrupt:
                interrupted += 1
    finally:
        stop.set()
        pest.join()
        signal.signal(signal.SIGINT, old)
    assert interrupted > 100  # the signals did arrive, and raised
    assert not list(tmp_path.glob(".*.tmp"))
    lines = (tmp_path / "a.csv").read_text().splitlines()
    assert len(lines) == 200 and len(set(lines)) == 1
