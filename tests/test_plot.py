"""``bnexp plot``: every kind from small real runs, checked through the
matplotlib objects; byte-identical reruns; error cases."""

import matplotlib.colors as mcolors
import pytest
import yaml
from clitools import invoke

from bnexp import figures
from bnexp import sweep as sweep_mod
from bnexp.figures import dispatch

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
    monkeypatch.setattr(dispatch, "save_figure", lambda fig, out, fmt=None: figs.append(fig) or out)
    figures.plot_path(sweep_dir)  # default for weight_scale x norm: the book's grid
    (fig,) = figs
    axes = [ax for ax in fig.axes if ax.get_visible()]
    assert [ax.get_title() for ax in axes] == ["weight_scale=10.0", "weight_scale=1.0",
                                               "weight_scale=0.1", "weight_scale=0.01"]
    for ax in axes:
        assert ax.get_ylim() == (0, 1.02)
        assert len([ln for ln in ax.get_lines() if len(ln.get_xdata()) > 1]) == 2
        assert len(ax.collections) == 2  # a +-1 sd band per line (2 seeds)
    assert axes[0].get_ylabel() == "train accuracy"
    (legend,) = fig.legends
    labels = [t.get_text() for t in legend.get_texts()]
    assert labels[:2] == ["norm=batch", "norm=none"]
    diverged = [r for r in figures.load_sweep(sweep_dir).runs if r.status == "diverged"]
    assert ("x: run diverged (stopped)" in labels) == bool(diverged)


@pytest.mark.parametrize("band", ["ci", "sd"])
def test_the_band_is_the_interval_of_the_mean_or_one_sd(sweep_dir, monkeypatch, band):
    from bnexp.stats import mean_interval, mean_sd

    figs = []
    monkeypatch.setattr(dispatch, "save_figure", lambda fig, out, fmt=None: figs.append(fig) or out)
    figures.plot_path(sweep_dir, "grid", filters=["init.weight_scale=0.1"], lines="model.norm",
                       panels="init.weight_scale", band=band)
    ax = [a for a in figs[-1].axes if a.get_visible()][0]
    runs = [r for r in figures.load_sweep(sweep_dir).runs
            if r.labels == {"init.weight_scale": "0.1", "model.norm": "batch"}]
    last = [r.metrics[-1]["train_acc"] for r in runs]
    want = (mean_interval(last).hi - mean_interval(last).estimate if band == "ci"
            else mean_sd(last)[1])
    ys = ax.collections[0].get_paths()[0].vertices[:, 1]
    top = max(ys)
    assert top == pytest.approx(min(1.0, sum(last) / len(last) + want))  # accuracy: <= 1
    assert band in figs[-1].texts[0].get_text() or "interval" in figs[-1].texts[0].get_text()


def test_final_heatmap_curves_and_activations(sweep_dir, monkeypatch):
    figs = []
    monkeypatch.setattr(dispatch, "save_figure", lambda fig, out, fmt=None: figs.append(fig) or out)
    figures.plot_path(sweep_dir, "final", x="init.weight_scale", lines="model.norm", stat="best")
    ax = figs[-1].axes[0]
    assert ax.get_xscale() == "log" and ax.get_xlabel() == "init.weight_scale"
    assert ax.get_ylabel() == "best test accuracy"
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels[:2] == ["norm=batch (n=2)", "norm=none (n=2)"]
    figures.plot_path(sweep_dir, "heatmap", x="init.weight_scale", y="model.norm")
    ax = figs[-1].axes[0]
    assert len(ax.texts) == 8 and ax.get_ylabel() == "model.norm"
    figures.plot_path(sweep_dir / "weight_scale=1.0,norm=batch,seed=0", force=True)
    assert [a.get_ylabel() for a in figs[-1].axes] == ["accuracy", "cross-entropy loss"]
    figures.plot_path(sweep_dir, "activations", filters=["init.weight_scale=1"])
    axes = figs[-1].axes
    assert len(axes) == 2  # batch and none, seed 0
    assert [len(a.get_lines()) for a in axes] == [3, 3]  # 15th, 50th, 85th percentiles
    assert "hidden layer 2" in axes[0].get_title()


def test_pngs_are_byte_identical_across_reruns(sweep_dir, tmp_path):
    for kind in ("grid", "final"):
        a = figures.plot_path(sweep_dir, kind, out=tmp_path / f"a-{kind}.png")
        b = figures.plot_path(sweep_dir, kind, out=tmp_path / f"b-{kind}.png")
        assert a.read_bytes() == b.read_bytes()
    svg1 = figures.plot_path(sweep_dir, "final", out=tmp_path / "1.svg", fmt="svg").read_bytes()
    svg2 = figures.plot_path(sweep_dir, "final", out=tmp_path / "2.svg", fmt="svg").read_bytes()
    assert svg1 == svg2 and b"<svg" in svg1


def test_a_runs_curves_png_is_the_same_whatever_was_drawn_before(sweep_dir):
    """Sweeps draw each run's curves.png into one figure kept per thread (cheaper than
    a new one): it must give the bytes of a fresh figure whatever runs came before,
    including a diverged run with its marker line and non-finite losses."""
    runs = figures.load_sweep(sweep_dir).runs[:3]
    cases = [(r.metrics, r.info) for r in runs]
    rows = [{"epoch": e / 4, "train_acc": 0.1 + e / 9, "test_acc": 0.1 + e / 11,
             "train_loss": 2.3 / (1 + e) if e < 3 else float("nan"),
             "test_loss": 40.0 * e if e < 3 else float("inf")} for e in range(6)]
    cases.append((rows, {"name": "far/diverged", "status": "diverged",
                         "diverged_at": {"epoch": 0.75}}))
    cases.append(cases[0])  # the first again, after the others' limits and legends
    for metrics, info in cases + cases[::-1]:
        fresh = figures.figure_bytes(figures.curves_figure(metrics, info))
        assert figures.curves_png(metrics, info) == fresh, info["name"]
        # A failure midway (rows without test losses, after three lines are
        # drawn) leaves nothing behind for the next run.
        broken = [{k: v for k, v in r.items() if k != "test_loss"} for r in metrics]
        with pytest.raises(KeyError):
            figures.curves_png(broken, info)

def test_cli_plot_writes_the_file(sweep_dir, tmp_path):
    res = invoke("plot", sweep_dir, "--kind", "final", "--out", tmp_path / "f.png")
    assert res.exit_code == 0 and res.output.strip() == str(tmp_path / "f.png")
    assert (tmp_path / "f.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize("args,message", [
    (["--kind", "grid", "--panels", "train.lr"],
     "train.lr: not a swept key of {d} (swept: init.weight_scale, model.norm)"),
    (["--filter", "model.norm=group"],
     "--filter: model.norm=group: model.norm has no value group (values: batch, none)"),
    (["--filter", "seed=7"], "{d}: no runs to plot after filters"),
    (["--format", "svg"], "--format: svg contradicts out {out}; drop one of them"),
])
def test_bad_requests_exit_2_with_one_line(sweep_dir, args, message, tmp_path):
    res = invoke("plot", sweep_dir, *args, "--out", tmp_path / "x.png")
    assert res.exit_code == 2
    assert res.output.strip() == "error: " + message.format(d=sweep_dir, out=tmp_path / "x.png")
    assert not (tmp_path / "x.png").exists()


def test_folders_without_runs(tmp_path):
    res = invoke("plot", tmp_path)
    assert res.exit_code == 2
    assert "neither a run folder (metrics.csv) nor a sweep folder (sweep.yaml)" in res.output
    (tmp_path / "sweep.yaml").write_text(yaml.safe_dump({"sweep": {"grid": {}}}))
    res = invoke("plot", tmp_path)
    assert res.exit_code == 2 and res.output.strip() == (
        f"error: {tmp_path}: no summary.csv yet: the sweep has not started its first run "
        "(run its `bnexp sweep` command)")


def test_filters_name_one_value_exactly_in_any_spelling(tmp_path):
    sw = sweep_mod.build({**RAW, "sweep": {"grid": {"init.weight_scale": [0.000630957344480193,
                                                                          0.01, 0.0136]},
                                           "seeds": [0]}})
    sdir, _ = sweep_mod.execute(sw, tmp_path, jobs=1, plot=False)
    # The value as every figure and folder name shows it finds its runs ...
    data = figures.load_sweep(sdir, ["init.weight_scale=0.000630957344480193"])
    assert [r.labels["init.weight_scale"] for r in data.runs] == ["0.000630957344480193"]
    assert data.title == "ps [weight_scale=0.000630957344480193]"
    assert [r.run_id for r in data.runs] == ["weight_scale=0.000630957344480193,seed=0"]
    # ... so does another spelling of the same number ...
    data = figures.load_sweep(sdir, ["init.weight_scale=1e-2"])
    assert [r.labels["init.weight_scale"] for r in data.runs] == ["0.01"]
    # ... but 0.01 is 0.01, never 0.0136 by rounding, and a rounded value is refused.
    assert [r.run_id for r in figures.load_sweep(sdir, ["init.weight_scale=0.01"]).runs] == [
        "weight_scale=0.01,seed=0"]
    for typed in ("0.000631", "0.0007", "0.014"):
        res = invoke("plot", sdir, "--filter", f"init.weight_scale={typed}", "--out",
                     tmp_path / "x.png")
        assert res.exit_code == 2
        assert res.output == (f"error: --filter: init.weight_scale={typed}: init.weight_scale has "
                              f"no value {typed} (values: 0.000630957344480193, 0.01, 0.0136)\n")
        assert not (tmp_path / "x.png").exists()


def test_the_extension_decides_the_format(sweep_dir, tmp_path):
    svg = invoke("plot", sweep_dir, "--kind", "final", "--out", tmp_path / "f.svg")
    pdf = invoke("plot", sweep_dir, "--kind", "final", "--out", tmp_path / "f.pdf")
    assert svg.exit_code == 0 and pdf.exit_code == 0
    assert b"<svg" in (tmp_path / "f.svg").read_bytes()[:400]
    assert (tmp_path / "f.pdf").read_bytes()[:5] == b"%PDF-"
    res = invoke("plot", sweep_dir, "--out", tmp_path / "f.jpeg")
    assert res.exit_code == 2 and "unknown extension .jpeg, expected .png, .svg, .pdf" in res.output


def test_a_category_on_x_is_a_bar_chart_with_intervals(sweep_dir, monkeypatch):
    from bnexp.stats import mean_interval

    figs = []
    monkeypatch.setattr(dispatch, "save_figure", lambda fig, out, fmt=None: figs.append(fig) or out)
    figures.plot_path(sweep_dir, "final", x="model.norm", filters=["init.weight_scale=0.1"])
    ax = figs[-1].axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["batch", "none"]
    bars = ax.patches
    runs = figures.load_sweep(sweep_dir, ["init.weight_scale=0.1"]).runs
    for bar, norm in zip(bars, ["batch", "none"]):
        vals = [r.metrics[-1]["test_acc"] for r in runs if r.labels["model.norm"] == norm]
        assert bar.get_height() == pytest.approx(sum(vals) / len(vals))
    (errs,) = [c for c in ax.containers if hasattr(c, "errorbar") and c.errorbar]
    segs = errs.errorbar.lines[2][0].get_segments()
    vals = [r.metrics[-1]["test_acc"] for r in runs if r.labels["model.norm"] == "batch"]
    iv = mean_interval(vals, bounds=(0.0, 1.0))  # an accuracy's bars stay in [0, 1]
    assert (segs[0][0][1], segs[0][1][1]) == pytest.approx((iv.lo, iv.hi))
    assert bars[0].get_facecolor()[:3] == pytest.approx(mcolors.to_rgb(figures.PALETTE[0]))


def test_the_same_value_has_the_same_colour_in_every_figure(sweep_dir, monkeypatch):
    figs = []
    monkeypatch.setattr(dispatch, "save_figure", lambda fig, out, fmt=None: figs.append(fig) or out)
    figures.plot_path(sweep_dir, "grid", panels="init.weight_scale", lines="model.norm")
    figures.plot_path(sweep_dir, "final", x="init.weight_scale", lines="model.norm")
    grid_ax, final_ax = figs[0].axes[0], figs[1].axes[0]
    for ax in (grid_ax, final_ax):
        colours = {ln.get_label().split(" ")[0]: ln.get_color() for ln in ax.get_lines()
                   if len(ln.get_xdata()) > 1}
        assert not colours or all(c in figures.PALETTE for c in colours.values())
    grid_lines = [ln for ln in grid_ax.get_lines() if len(ln.get_xdata()) > 1]
    assert grid_lines[0].get_color() == figures.VALUE_STYLES["batch"][0]
    assert grid_lines[1].get_color() == figures.VALUE_STYLES["none"][0]
    labels = {t.get_text(): h for t, h in zip(final_ax.get_legend().get_texts(),
                                              final_ax.get_legend().legend_handles)}
    assert labels["norm=batch (n=2)"].get_color() == figures.VALUE_STYLES["batch"][0]


def test_log_axes_have_a_tick_at_each_value(sweep_dir, monkeypatch):
    figs = []
    monkeypatch.setattr(dispatch, "save_figure", lambda fig, out, fmt=None: figs.append(fig) or out)
    figures.plot_path(sweep_dir, "final", x="init.weight_scale", lines="model.norm")
    ax = figs[-1].axes[0]
    assert list(ax.get_xticks()) == [10.0, 1.0, 0.1, 0.01]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["10.0", "1.0", "0.1", "0.01"]


def test_curves_of_a_sweep_are_one_mean_line_per_grid_point(sweep_dir, monkeypatch):
    figs = []
    monkeypatch.setattr(dispatch, "save_figure", lambda fig, out, fmt=None: figs.append(fig) or out)
    figures.plot_path(sweep_dir, "curves")
    ax = figs[-1].axes[0]
    lines = [ln for ln in ax.get_lines() if len(ln.get_xdata()) > 1]
    assert len(lines) == 8  # 4 scales x 2 norms, not 16 runs
    assert len(ax.get_legend().get_texts()) == 8


def test_an_unfinished_sweep_says_so_on_its_figures(sweep_dir, tmp_path, monkeypatch):
    import json
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(sweep_dir, copy)
    victim = copy / "weight_scale=10.0,norm=batch,seed=1" / "run.json"
    victim.write_text(json.dumps({**json.loads(victim.read_text()), "status": "running"}))
    figs = []
    monkeypatch.setattr(dispatch, "save_figure", lambda fig, out, fmt=None: figs.append(fig) or out)
    from bnexp.store import StoreWarning

    with pytest.warns(StoreWarning, match="line 3: status completed, but .* says running"):
        figures.plot_path(copy, "final", x="init.weight_scale", lines="model.norm")
    assert figs[-1].axes[0].get_title().endswith("; 15 of 16 runs finished (1 running)")


def test_a_grid_of_few_panels_keeps_its_whole_title_on_the_figure(sweep_dir, monkeypatch):
    """Two panels make a narrow figure: the title wraps instead of running off it."""
    figs = []
    monkeypatch.setattr(dispatch, "save_figure", lambda fig, out, fmt=None: figs.append(fig) or out)
    figures.plot_path(sweep_dir, "grid", panels="model.norm", lines="init.weight_scale",
                       metric="test_acc")
    fig = figs[-1]
    fig.canvas.draw()
    title = fig._suptitle
    box = title.get_window_extent(fig.canvas.get_renderer())
    assert "\n" in title.get_text()  # it did need wrapping
    assert box.x0 >= 0 and box.x1 <= fig.bbox.width


def test_long_value_spellings_on_a_log_axis_stand_upright(tmp_path):
    """Each value is ticked with its one spelling; long ones are turned upright,
    so that neighbours do not overlap."""
    sw = sweep_mod.build({**RAW, "sweep": {"grid": {"init.weight_scale": {
        "logspace": [0, -1, 3]}}, "seeds": [0]}})
    sdir, _ = sweep_mod.execute(sw, tmp_path, jobs=1, plot=False)
    fig = figures.figure(sdir, "final", x="init.weight_scale")
    ax = fig.axes[0]
    labels = ax.get_xticklabels()
    assert [t.get_text() for t in labels] == ["1.0", "0.31622776601683794", "0.1"]
    assert {t.get_rotation() for t in labels} == {90.0}
