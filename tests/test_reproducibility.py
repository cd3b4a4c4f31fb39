"""Runs reproduce by construction: the same config and seed give identical
metrics whatever the thread count, job count or executor, and whether the run
came from ``train`` or ``sweep``; run.json records what decides the numbers;
``bnexp verify`` reruns and compares."""

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from clitools import invoke, read

from bnexp import provenance

# The case: BN at weight scale 6.3e-4 with PyTorch's settings in float32 is
# chaotic, so a last-bit difference (e.g. from 2 BLAS threads) ends far apart:
# train accuracy 0.321 on one thread, 0.577 on two, before BLAS was pinned.
CHAOTIC = {
    "name": "chaos",
    "data": {"dataset": "mnist5k", "n_train": 1000, "n_test": 1000},
    "model": {"hidden": [100, 100, 100, 100, 100], "norm": "batch"},
    "init": {"weight_scale": 0.000630957344480193},
    "train": {"epochs": 20, "batch_size": 100, "lr": 0.01},
}


def _metrics(path):
    return [{k: v for k, v in row.items() if k != "elapsed"} for row in read(path)]


@pytest.fixture
def blas_two_threads():
    """The test process's BLAS on two threads (as a notebook or a multi-core
    machine has it), so that a run not pinned to one thread would differ."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=2):
        yield


@pytest.mark.parametrize("kernels", ["numpy", "numba"])
def test_train_threads_sweep_and_dask_give_identical_metrics(tmp_path, blas_two_threads,
                                                             kernels):
    """On either kernels (numba: the whole compiled pass, its BLAS calls pinned
    as NumPy's are)."""
    distributed = pytest.importorskip("distributed")
    if kernels == "numba":
        pytest.importorskip("numba")
    cfg = tmp_path / "chaos.yaml"
    chaos = {**CHAOTIC, "train": {**CHAOTIC["train"], "kernels": kernels}}
    cfg.write_text(yaml.safe_dump({**chaos, "sweep": {"grid": {"model.norm": ["batch"]},
                                                      "seeds": [0]}}))
    runs = {}
    for threads in (1, 2):
        res = invoke("train", cfg, "--out", tmp_path / f"t{threads}", "--threads", threads,
                     "--no-plot", "-q")
        assert res.exit_code == 0, res.output
        runs[f"train --threads {threads}"] = tmp_path / f"t{threads}" / "chaos" / "metrics.csv"
    res = invoke("sweep", cfg, "--out", tmp_path / "local", "-j", "2", "--no-plot", "-q")
    assert res.exit_code == 0, res.output
    runs["sweep"] = tmp_path / "local" / "chaos" / "norm=batch,seed=0" / "metrics.csv"
    with distributed.LocalCluster(n_workers=1, threads_per_worker=2, processes=True,
                                  dashboard_address=None) as cluster:
        res = invoke("sweep", cfg, "--out", tmp_path / "dask", "--executor", "dask",
                     "--address", cluster.scheduler_address, "--no-plot", "-q")
    assert res.exit_code == 0, res.output
    runs["dask"] = tmp_path / "dask" / "chaos" / "norm=batch,seed=0" / "metrics.csv"
    reference = _metrics(runs["sweep"])
    assert len(reference) == 21
    for how, path in runs.items():
        assert _metrics(path) == reference, how


def test_run_json_records_what_decides_the_numbers(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump({**CHAOTIC, "train": {**CHAOTIC["train"], "epochs": 1}}))
    assert invoke("train", cfg, "--out", tmp_path, "--no-plot", "-q").exit_code == 0
    info = json.loads((tmp_path / "chaos" / "run.json").read_text())
    p = info["provenance"]
    assert p["engine"] == "numpy" and p["blas"]["threads"] == 1
    assert p["blas"]["library"] and p["cpu"] and p["numpy"]
    if provenance.code_version()["commit_from"] is not None:  # a checkout or a built package
        assert re.fullmatch(r"[0-9a-f]{40}", p["commit"]) and isinstance(p["dirty"], bool)
    # The recorded command reruns the run from its own config, into its own folder.
    assert info["command"] == ["bnexp", "train", str(tmp_path / "chaos" / "config.yaml"),
                               "--out", str(tmp_path), "--force"]
    assert info["argv"][:2] == ["bnexp", "train"]
    before = _metrics(tmp_path / "chaos" / "metrics.csv")
    res = invoke(*info["command"][1:], "--no-plot", "-q")
    assert res.exit_code == 0, res.output
    assert _metrics(tmp_path / "chaos" / "metrics.csv") == before


def test_the_build_records_the_commit(tmp_path):
    """A non-editable install knows its commit: setup.py's build step writes it."""
    pytest.importorskip("setuptools")
    root = Path(__file__).parents[1]
    head = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True,
                          text=True)
    if head.returncode != 0:
        pytest.skip("not a git checkout")
    out = subprocess.run([sys.executable, "setup.py", "-q", "build_py", "--build-lib",
                          str(tmp_path)], cwd=root, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    built = json.loads((tmp_path / "bnexp" / "_build.json").read_text())
    assert built["commit"] == head.stdout.strip() and isinstance(built["dirty"], bool)


def test_one_blas_thread_is_shared_by_overlapping_runs():
    """Runs that overlap in one process (Dask worker threads) hold the limit
    together: it is lifted only when the last one ends."""
    from threadpoolctl import threadpool_info, threadpool_limits

    def threads():
        return {i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"}

    with threadpool_limits(limits=2):
        with provenance.one_blas_thread():
            with provenance.one_blas_thread():
                assert threads() == {1}
            assert threads() == {1}  # the outer run still holds it
        assert threads() == {2}


@pytest.fixture(scope="module")
def small_sweep(tmp_path_factory):
    out = tmp_path_factory.mktemp("verify")
    cfg = out / "v.yaml"
    cfg.write_text(yaml.safe_dump({
        "name": "v", "data": {"dataset": "synthetic", "n_train": 60, "n_test": 30, "dim": 6,
                              "classes": 3},
        "model": {"hidden": [8]}, "init": {"weight_scale": "he"},
        "train": {"epochs": 2, "batch_size": 20, "lr": 0.1},
        "eval": {"diagnostics_every": 1, "step_loss": True},
        "sweep": {"grid": {"model.norm": ["batch", "none"]}, "seeds": [0, 1]}}))
    assert invoke("sweep", cfg, "--out", out, "--no-plot", "-q").exit_code == 0
    return out / "v"


def test_verify_reports_identical_runs(small_sweep):
    res = invoke("verify", small_sweep)
    assert res.exit_code == 0, res.output
    lines = res.output.strip().splitlines()
    assert lines[-1] == f"{small_sweep}: 4 runs: 4 identical, 0 differ, 0 skipped"
    assert all(line.split(": ")[1] == "identical" for line in lines[:-1])


def test_verify_says_how_far_a_run_differs_and_which_facts_changed(small_sweep, tmp_path):
    import shutil

    run = tmp_path / "copy"
    shutil.copytree(small_sweep / "norm=batch,seed=1", run)
    rows = (run / "metrics.csv").read_text().splitlines()
    cells = rows[2].split(",")
    cells[4] = repr(float(cells[4]) + 0.25)  # test_loss of epoch 1
    rows[2] = ",".join(cells)
    (run / "metrics.csv").write_text("\n".join(rows) + "\n")
    info = json.loads((run / "run.json").read_text())
    info["provenance"]["numpy"] = "1.0.0"
    info["provenance"]["blas"]["kernel"] = "NoSuchCore"
    (run / "run.json").write_text(json.dumps(info))
    before = {p.name: p.read_bytes() for p in run.iterdir()}
    res = invoke("verify", run)
    assert res.exit_code == 1
    first = res.output.splitlines()[0]
    assert first.startswith("copy: differs: metrics: test_loss by up to 0.25 (first at epoch 1, "
                            "test_loss)")
    assert "numpy: 1.0.0 -> " in first and "blas.kernel: NoSuchCore -> " in first
    assert {p.name: p.read_bytes() for p in run.iterdir()} == before  # nothing written


def test_verify_refuses_what_is_not_a_run(tmp_path):
    res = invoke("verify", tmp_path)
    assert res.exit_code == 2
    assert res.output.strip() == (f"error: {tmp_path}: neither a run folder (run.json and "
                                  "config.yaml) nor a sweep folder (sweep.yaml)")
