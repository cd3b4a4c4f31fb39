"""``import bnexp``: the notebook API (bnexp.api) gives the same numbers as the
command line, loads runs and sweeps as tables, and draws into given axes."""

import subprocess
import sys

import pytest
import yaml
from clitools import invoke, read

import bnexp
from bnexp.figures import PlotError

TINY = {"name": "tiny", "data": {"dataset": "synthetic", "n_train": 60, "n_test": 30, "dim": 6,
                                 "classes": 3},
        "model": {"hidden": [8, 8]}, "init": {"weight_scale": "he"},
        "train": {"epochs": 2, "batch_size": 20, "lr": 0.1}}


def _no_elapsed(rows):
    return [{k: v for k, v in r.items() if k != "elapsed"} for r in rows]


def test_run_in_memory_equals_bnexp_train_and_writes_nothing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    r = bnexp.run(TINY, model__norm="none", overrides={"train.epochs": 3})
    assert list(tmp_path.iterdir()) == []
    assert r.status == "completed" and r.config.model.norm == "none" and len(r.metrics) == 4
    cfg = tmp_path / "tiny.yaml"
    cfg.write_text(yaml.safe_dump(TINY))
    res = invoke("train", cfg, "--set", "model.norm=none", "--set", "train.epochs=3",
                 "--out", tmp_path / "runs", "--no-plot", "-q")
    assert res.exit_code == 0
    cli = [{k: float(v) for k, v in row.items()} for row in read(tmp_path / "runs" / "tiny" /
                                                                  "metrics.csv")]
    assert _no_elapsed(cli) == _no_elapsed(r.metrics)


def test_run_into_a_folder_and_load_it_back(tmp_path):
    r = bnexp.run(TINY, out=tmp_path)
    assert r.path == tmp_path / "tiny" and (tmp_path / "tiny" / "metrics.csv").is_file()
    again = bnexp.load_run(tmp_path / "tiny")
    assert _no_elapsed(again.metrics) == _no_elapsed(r.metrics) and again.status == "completed"
    assert again.config == r.config
    with pytest.raises(Exception, match="already holds a run"):
        bnexp.run(TINY, out=tmp_path)


def test_shipped_experiments_load_by_name():
    cfg = bnexp.load_config("book_bn", train__epochs=1)
    assert cfg.name == "book-bn" and cfg.train.epochs == 1 and cfg.model.norm == "batch"


@pytest.fixture(scope="module")
def sweep_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("api")
    raw = {**TINY, "name": "s", "sweep": {"grid": {"model.norm": ["batch", "none"]},
                                         "seeds": [0, 1]},
           "report": {"claim": "c", "checks": [{"text": "t", "mean": "final_test_acc",
                                                "where": {"model.norm": "batch"},
                                                "above": 0.0}]}}
    result = bnexp.run_sweep(raw, out=out, jobs=2, plot=False)
    return result.path


def test_load_sweep_gives_the_tables_and_the_claim(sweep_dir):
    sw = bnexp.load_sweep(sweep_dir)
    assert [r["status"] for r in sw.summary] == ["completed"] * 4
    on_disk = read(sweep_dir / "aggregate.csv")
    assert [a["final_test_acc_mean"] for a in sw.aggregate] == pytest.approx(
        [float(a["final_test_acc_mean"]) for a in on_disk])
    assert sw.claim.verdict in ("holds", "inconclusive")
    assert sw.run(sw.runs[0].run_id).config.seed == 0


def test_figure_draws_into_the_given_axes(sweep_dir):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2)
    assert bnexp.figure(sweep_dir, "final", x="model.norm", ax=left) is fig
    assert len(left.patches) == 2 and not right.patches  # two bars, in the left axes only
    with pytest.raises(PlotError, match="several panels: pass fig="):
        bnexp.figure(sweep_dir, "grid", ax=right)
    sub = fig.subfigures(1, 1)
    assert bnexp.figure(sweep_dir, "grid", fig=sub) is sub
    plt.close(fig)


def test_frame_without_pandas_names_the_extra(sweep_dir, monkeypatch):
    sw = bnexp.load_sweep(sweep_dir)
    monkeypatch.setitem(sys.modules, "pandas", None)  # import pandas now raises ImportError
    with pytest.raises(ImportError, match=r'pip install "bnexp\[frames\]"'):
        sw.frame()


def test_frame_is_the_table_as_a_dataframe(sweep_dir):
    pd = pytest.importorskip("pandas")  # the frames extra; CI installs it
    sw = bnexp.load_sweep(sweep_dir)
    summary = sw.frame("summary")
    assert isinstance(summary, pd.DataFrame) and summary.shape[0] == len(sw.summary) == 4
    assert list(summary.columns) == list(sw.summary[0])
    run = sw.run(sw.summary[0]["run_id"])
    metrics = run.frame()
    assert metrics["test_acc"].tolist() == [row["test_acc"] for row in run.metrics]


def test_import_bnexp_loads_no_numpy():
    code = "import sys, bnexp; print('numpy' in sys.modules, callable(bnexp.run))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "True"]
