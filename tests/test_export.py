"""`bnexp export`: a sweep's runs, read back by TensorBoard's own reader
(EventAccumulator) and by MLflow's search, as a user of those tools would
see them; a run folder alone; refusals that write nothing."""

import sys

import pytest
from clitools import invoke

from bnexp.store import open_sweep, read_metrics


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    root = tmp_path_factory.mktemp("export")
    out = invoke("sweep", "placement", "--out", root, "--seeds", "0,1", "--set",
                 "train.epochs=2", "--set", "data.n_train=200", "--set", "data.n_test=100",
                 "--no-plot", "-q", "-j", "1")
    assert out.exit_code == 0, out.output
    return root / "placement"


def _runs(sweep_dir):
    return {r.run_id: r for r in open_sweep(sweep_dir).runs}


def test_tensorboard_has_every_run_every_epoch_metric_and_the_config(sweep, tmp_path):
    event_accumulator = pytest.importorskip(
        "tensorboard.backend.event_processing.event_accumulator")
    pytest.importorskip("tensorboardX")
    out = tmp_path / "tb"
    result = invoke("export", sweep, "--to", "tensorboard", "--out", out)
    assert result.exit_code == 0, result.output
    runs = _runs(sweep)
    assert sorted(p.name for p in out.iterdir()) == sorted(runs)  # one folder per run
    for run_id, run in runs.items():
        ea = event_accumulator.EventAccumulator(str(out / run_id),
                                                size_guidance={"scalars": 0, "tensors": 0})
        ea.Reload()
        assert set(ea.Tags()["scalars"]) >= {"train_loss", "train_acc", "test_loss",
                                             "test_acc"}
        rows = read_metrics(run.path)
        for key in ("train_acc", "test_loss"):
            events = ea.Scalars(key)
            assert [e.step for e in events] == [r["epoch"] for r in rows]
            assert [e.value for e in events] == pytest.approx([r[key] for r in rows],
                                                              rel=1e-6)
        hp = ea.PluginTagToContent("hparams")
        session = hp["_hparams_/session_start_info"]
        assert b"model.activation" in session and b"train.lr" in session
        assert run.values["model.activation"].encode() in session


def test_mlflow_search_finds_one_experiment_with_every_run(sweep, tmp_path, monkeypatch):
    mlflow = pytest.importorskip("mlflow")
    out = tmp_path / "ml"
    result = invoke("export", sweep, "--to", "mlflow", "--out", out)
    assert result.exit_code == 0, result.output
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    mlflow.set_tracking_uri(out.resolve().as_uri())
    found = mlflow.search_runs(experiment_names=["placement"], output_format="list")
    runs = _runs(sweep)
    assert sorted(r.info.run_name for r in found) == sorted(runs)
    client = mlflow.tracking.MlflowClient(out.resolve().as_uri())
    for r in found:
        run = runs[r.info.run_name]
        assert r.data.params["model.activation"] == run.values["model.activation"]
        assert r.data.params["train.epochs"] == "2"
        assert r.data.tags["bnexp.seed"] == str(run.seed)
        history = client.get_metric_history(r.info.run_id, "test_acc")
        rows = read_metrics(run.path)
        assert [(h.step, h.value) for h in history] == [(row["epoch"], row["test_acc"])
                                                        for row in rows]
        artifacts = {a.path for a in client.list_artifacts(r.info.run_id)}
        assert {"config.yaml", "metrics.csv", "run.json"} <= artifacts
        assert r.info.status == "FINISHED"


def test_a_run_folder_exports_alone(sweep, tmp_path):
    pytest.importorskip("tensorboardX")
    run = next(iter(_runs(sweep).values()))
    result = invoke("export", run.path, "--to", "tensorboard", "--out", tmp_path / "one")
    assert result.exit_code == 0, result.output
    assert [p.name for p in (tmp_path / "one").iterdir()] == [run.run_id]
    assert "1 run" in result.output


def test_refusals_are_one_line_and_write_nothing(sweep, tmp_path, monkeypatch):
    (tmp_path / "taken").mkdir()
    cases = [
        (["--to", "tensorboard", "--out", tmp_path / "taken"], "exists; export into a new folder"),
        (["--to", "wandb", "--out", tmp_path / "x"], "'wandb' is not one of"),
    ]
    for args, message in cases:
        result = invoke("export", sweep, *args)
        assert result.exit_code == 2, result.output
        assert message in result.output and "Traceback" not in result.output
    result = invoke("export", tmp_path, "--to", "tensorboard", "--out", tmp_path / "y")
    assert result.exit_code == 2 and "neither a run folder" in result.output
    monkeypatch.setitem(sys.modules, "tensorboardX", None)  # the extra not installed
    result = invoke("export", sweep, "--to", "tensorboard", "--out", tmp_path / "z")
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [
        'error: export to tensorboard needs tensorboardX, which the tensorboard extra '
        'installs: pip install "bnexp[tensorboard]"']
    assert sorted(p.name for p in tmp_path.iterdir()) == ["taken"]  # nothing else written
