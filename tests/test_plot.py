"""``bnexp plot``: every kind from small real runs, checked through the
matplotlib objects; byte-identical reruns; error cases."""

import pytest
import yaml
from clitools import invoke

from bnexp import plot as plot_mod
from bnexp import sweep as sweep_mod

RAW = {
    "name": "ps",
    "data": {"dataset": "synthetic", "n_train": 60, "n_test": 30, "dim": 6, "classes": 3},
    "model": {"hidden": [8, 8]},
    "train": {"epochs": 2, "batch_size": 20, "lr": 0.5},
    "eval": {"diagnostics_every": 1},
    "sweep": {"grid": {"init.weight_scale": {"logspace": [1, -2, 4]},
                       "model.norm": ["batch", "none"]}, "seeds": [0, 1]},
}


@pytest.fixture(scope="module")
def sweep_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("plots")
    sw = sweep_mod.build(RAW)
    sdir, outcome = sweep_mod.execute(sw, out, jobs=2, plot=True)
    assert not outcome.failed
    return sdir


def test_grid_has_one_panel_per_value_and_one_line_per_value(sweep_dir, monkeypatch):
    figs = []
    monkeypatch.setattr(plot_mod, "save_figure", lambda fig, out, fmt=None: figs.append(fig) or out)
    plot_mod.plot_path(sweep_dir)  # default for weight_scale x norm: the book's grid
    (fig,) = figs
    axes = [ax for ax in fig.axes if ax.get_visible()]
    assert [ax.get_title() for ax in axes] == ["weight_scale=10", "weight_scale=1",
                                               "weight_scale=0.1", "weight_scale=0.01"]
    for ax in axes:
        assert ax.get_ylim() == (0, 1.02)
        assert len([ln for ln in ax.get_lines() if len(ln.get_xdata()) > 1]) == 2
        assert len(ax.collections) == 2  # a +-1 sd band per line (2 seeds)
    assert axes[0].get_ylabel() == "train accuracy"
    (legend,) = fig.legends
    labels = [t.get_text() for t in legend.get_texts()]
    assert labels[:2] == ["norm=batch", "norm=none"]
    diverged = [r for r in plot_mod.load_sweep(sweep_dir).runs if r.status == "diverged"]
    assert ("x: run diverged (stopped)" in labels) == bool(diverged)


def test_final_heatmap_curves_and_activations(sweep_dir, monkeypatch):
    figs = []
    monkeypatch.setattr(plot_mod, "save_figure", lambda fig, out, fmt=None: figs.append(fig) or out)
    plot_mod.plot_path(sweep_dir, "final", x="init.weight_scale", lines="model.norm", stat="best")
    ax = figs[-1].axes[0]
    assert ax.get_xscale() == "log" and ax.get_xlabel() == "init.weight_scale"
    assert ax.get_ylabel() == "best test accuracy"
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels[:2] == ["norm=batch (n=2)", "norm=none (n=2)"]
    plot_mod.plot_path(sweep_dir, "heatmap", x="init.weight_scale", y="model.norm")
    ax = figs[-1].axes[0]
    assert len(ax.texts) == 8 and ax.get_ylabel() == "model.norm"
    plot_mod.plot_path(sweep_dir / "weight_scale=1,norm=batch,seed=0")
    assert [a.get_ylabel() for a in figs[-1].axes] == ["accuracy", "cross-entropy loss"]
    plot_mod.plot_path(sweep_dir, "activations", filters=["init.weight_scale=1"])
    axes = figs[-1].axes
    assert len(axes) == 2  # batch and none, seed 0
    assert [len(a.get_lines()) for a in axes] == [3, 3]  # 15th, 50th, 85th percentiles
    assert "hidden layer 2" in axes[0].get_title()


def test_pngs_are_byte_identical_across_reruns(sweep_dir, tmp_path):
    for kind in ("grid", "final"):
        a = plot_mod.plot_path(sweep_dir, kind, out=tmp_path / f"a-{kind}.png")
        b = plot_mod.plot_path(sweep_dir, kind, out=tmp_path / f"b-{kind}.png")
        assert a.read_bytes() == b.read_bytes()
    svg1 = plot_mod.plot_path(sweep_dir, "final", out=tmp_path / "1.svg", fmt="svg").read_bytes()
    svg2 = plot_mod.plot_path(sweep_dir, "final", out=tmp_path / "2.svg", fmt="svg").read_bytes()
    assert svg1 == svg2 and b"<svg" in svg1


def test_cli_plot_writes_the_file(sweep_dir, tmp_path):
    res = invoke("plot", sweep_dir, "--kind", "final", "--out", tmp_path / "f.png")
    assert res.exit_code == 0 and res.output.strip() == str(tmp_path / "f.png")
    assert (tmp_path / "f.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize("args,message", [
    (["--kind", "grid", "--panels", "train.lr"],
     "train.lr: not a swept key of {d} (swept: init.weight_scale, model.norm)"),
    (["--filter", "model.norm=group"],
     "--filter model.norm=group: model.norm has no value group (values: batch, none)"),
    (["--filter", "seed=7"], "{d}: no runs to plot after --filter"),
    (["--kind", "final", "--x", "model.norm"],
     "--x model.norm: needs numeric values (got batch, none); use --kind grid or heatmap for categories"),
])
def test_bad_requests_exit_2_with_one_line(sweep_dir, args, message, tmp_path):
    res = invoke("plot", sweep_dir, *args, "--out", tmp_path / "x.png")
    assert res.exit_code == 2
    assert res.output.strip() == "error: " + message.format(d=sweep_dir)
    assert not (tmp_path / "x.png").exists()


def test_folders_without_runs(tmp_path):
    res = invoke("plot", tmp_path)
    assert res.exit_code == 2
    assert "neither a run folder (metrics.csv) nor a sweep folder (sweep.yaml)" in res.output
    (tmp_path / "sweep.yaml").write_text(yaml.safe_dump({"sweep": {"grid": {}}}))
    res = invoke("plot", tmp_path)
    assert res.exit_code == 2 and res.output.strip() == f"error: {tmp_path}: no runs to plot"
