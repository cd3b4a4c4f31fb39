"""Figures that stand on a slide: whole-epoch ticks, bands inside the metric's
range, grid points where every seed diverged marked (not averaged, not
coloured), the heatmap oriented as the final plot and of a sensible size,
bars for a sweep of categories, and curves titles that state the settings.

Most tests draw from sweeps built in memory (``SweepData`` of ``RunRecord``s
with the metrics given), so that each band and value is known exactly; the
dispatch and title tests run two tiny real sweeps."""

import re
from pathlib import Path

import numpy as np
import pytest
from clitools import invoke

from bnexp import figures
from bnexp import sweep as sweep_mod
from bnexp import values as V
from bnexp.choices import PLOT_KINDS
from bnexp.figures import FigureOptions, SweepData
from bnexp.figures.curves import run_title
from bnexp.store import RunRecord


@pytest.fixture(autouse=True)
def _close_figures():
    """Every figure open is closed around each test (the library leaves them to
    the caller; earlier test files leave some open)."""
    figures.pyplot().close("all")
    yield
    figures.pyplot().close("all")


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    figures.pyplot().close("all")


# --- sweeps built in memory --------------------------------------------------------


def _run(values: dict, seed: int, accs: list[float], losses: list[float] | None = None,
         diverged_at: float | None = None) -> RunRecord:
    """A run with ``accs`` (and ``losses``) at epochs 0, 1, ...; diverged at
    epoch ``diverged_at`` where given."""
    losses = losses or [2.0 - a for a in accs]
    rows = [{"epoch": e, "step": 3 * e, "train_acc": a, "test_acc": a, "train_loss": lo,
             "test_loss": lo} for e, (a, lo) in enumerate(zip(accs, losses))]
    info = {"status": "completed", "name": "r"}
    if diverged_at is not None:
        info.update(status="diverged", diverged_at={"epoch": diverged_at, "step": 1})
    rid = ",".join(f"{k.rsplit('.', 1)[-1]}={v}" for k, v in values.items()) + f",seed={seed}"
    return RunRecord(rid, Path("/nowhere") / rid, dict(values), seed, info, _metrics=rows)


def _sweep(axes: list[tuple[str, list]], runs: list[RunRecord]) -> SweepData:
    labelled = [(k, [V.label(v) for v in vals]) for k, vals in axes]
    return SweepData(Path("/nowhere/s"), labelled, runs,
                     config={"model": {"norm": "batch"}, "train": {"lr": 0.1, "batch_size": 50}})


# Two seeds far apart at every point: a 95% interval of the mean over two
# values is +-12.7 sd, far outside [0, 1] for accuracies and below 0 for losses.
SPREAD = _sweep([("train.lr", [0.01, 0.1, 1.0]), ("model.norm", ["batch", "none"])], [
    _run({"train.lr": lr, "model.norm": norm}, seed, [0.1, acc, acc], [2.3, loss, loss])
    for lr in (0.01, 0.1, 1.0) for norm in ("batch", "none")
    for seed, acc, loss in ((0, 0.95, 0.05), (1, 0.35, 1.5))])

# Every seed of lr=1.0 diverged in its first epoch, at chance (0.1).
DIVERGED = _sweep([("train.lr", [0.01, 0.1, 1.0]), ("model.norm", ["batch", "none"])], [
    _run({"train.lr": lr, "model.norm": norm}, seed,
         [0.1] if lr == 1.0 else [0.1, 0.5 + lr + 0.01 * seed, 0.6 + lr + 0.01 * seed],
         diverged_at=0.5 if lr == 1.0 else None)
    for lr in (0.01, 0.1, 1.0) for norm in ("batch", "none") for seed in (0, 1)])


def _visible_xticks(ax) -> list[float]:
    lo, hi = sorted(ax.get_xlim())
    return [t for t in ax.get_xticks() if lo - 1e-9 <= t <= hi + 1e-9]


def _band_ys(ax) -> np.ndarray:
    """The y of every vertex of every band (fill_between) on ``ax``."""
    return np.concatenate([p.vertices[:, 1] for c in ax.collections for p in c.get_paths()])


def _error_bar_ys(ax) -> np.ndarray:
    segs = [s for c in ax.containers if getattr(c, "errorbar", None)
            for s in c.errorbar.lines[2][0].get_segments()]
    return np.array([y for seg in segs for _, y in seg])


# --- 1. whole-epoch ticks ----------------------------------------------------------

def test_epoch_axes_of_a_two_epoch_run_tick_whole_epochs_only():
    rows = SPREAD.runs[0].metrics  # epochs 0, 1, 2
    axes = list(figures.curves_figure(rows, {"name": "r", "status": "completed"}).axes)
    axes.append(figures.sweep_curves_figure(SPREAD).axes[0])
    axes += [a for a in figures.grid_figure(SPREAD, "train.lr", "model.norm", "test_acc").axes
             if a.get_visible()]
    for ax in axes:
        ticks = _visible_xticks(ax)
        assert ticks == [0, 1, 2], (ax.get_title(), ticks)


def test_a_run_that_diverged_inside_its_first_epoch_still_ticks_whole_epochs():
    (run,) = [r for r in DIVERGED.runs if r.status == "diverged"][:1]
    fig = figures.curves_figure(run.metrics, run.info)
    png = figures.curves_png(run.metrics, run.info)  # the kept figure a sweep draws into
    assert png == figures.figure_bytes(figures.curves_figure(run.metrics, run.info))
    for ax in fig.axes:
        assert _visible_xticks(ax) == [0, 1]


# --- 2. bands inside the metric's range --------------------------------------------

def test_bands_and_error_bars_of_accuracies_stay_within_0_and_1():
    line_ax = figures.final_figure(SPREAD, "train.lr", "model.norm", "test_acc", "final").axes[0]
    curves_ax = figures.sweep_curves_figure(SPREAD, "test_acc").axes[0]
    grid_axes = [a for a in figures.grid_figure(SPREAD, "train.lr", "model.norm",
                                                "train_acc").axes if a.get_visible()]
    for ax in [line_ax, curves_ax, *grid_axes]:
        ys = _band_ys(ax)
        assert ys.min() == pytest.approx(0.0) and ys.max() == pytest.approx(1.0)
    bars = figures.bars_figure(SPREAD, "model.norm", "train.lr", "test_acc", "final").axes[0]
    ys = _error_bar_ys(bars)
    assert len(ys) == 2 * 6  # an error bar per bar (2 norms x 3 rates)
    assert ys.min() == pytest.approx(0.0) and ys.max() == pytest.approx(1.0)


def test_bands_of_losses_stay_at_or_above_0_and_keep_their_top():
    from bnexp.stats import mean_interval

    ax = figures.final_figure(SPREAD, "train.lr", None, "test_loss", "final").axes[0]
    ys = _band_ys(ax)
    iv = mean_interval([0.05, 1.5] * 2)  # 4 runs per rate: 2 seeds x 2 norms
    assert ys.min() == pytest.approx(0.0)
    assert ys.max() == pytest.approx(iv.hi)  # the top is not cut


# --- 3. a grid point where every seed diverged -------------------------------------

def test_the_final_plot_marks_an_all_diverged_point_and_leaves_it_out_of_the_line():
    ax = figures.final_figure(DIVERGED, "train.lr", "model.norm", "test_acc", "final").axes[0]
    lines = [ln for ln in ax.get_lines() if len(ln.get_xdata()) > 1]
    assert len(lines) == 2
    for ln in lines:
        assert list(ln.get_xdata()) == [0.01, 0.1]  # not 1.0, where every seed stopped
        assert min(ln.get_ydata()) > 0.5
    for band in ax.collections:  # nor in the bands
        assert band.get_paths()[0].vertices[:, 0].max() == pytest.approx(0.1)
    marks = [ln for ln in ax.get_lines() if list(ln.get_xdata()) == [1.0]]
    assert len(marks) == 2 and all(m.get_marker() == "X" for m in marks)
    for m in marks:  # at the foot of the axes, whatever the limits
        assert m.get_transform() == ax.get_xaxis_transform()
        assert m.get_ydata()[0] < 0.1
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert "every seed diverged" in labels
    assert "diverged run" not in labels  # no run diverged at a point that kept a mean


def test_bars_leave_out_a_category_where_every_seed_diverged_and_mark_it():
    data = _sweep([("model.norm", ["batch", "none"])], [
        _run({"model.norm": "batch"}, s, [0.1, 0.7 + 0.1 * s]) for s in (0, 1)] + [
        _run({"model.norm": "none"}, s, [0.1], diverged_at=0.5) for s in (0, 1)])
    ax = figures.bars_figure(data, "model.norm", None, "test_acc", "final").axes[0]
    assert len(ax.patches) == 1 and ax.patches[0].get_height() == pytest.approx(0.75)
    (mark,) = [ln for ln in ax.get_lines() if list(ln.get_xdata()) == [1]]
    assert mark.get_marker() == "X"
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["every seed diverged"]
    assert ax.get_xlim()[1] >= 1.5  # the marked category keeps its room


def test_the_heatmap_marks_an_all_diverged_cell_instead_of_colouring_it():
    ax = figures.heatmap_figure(DIVERGED, "train.lr", "model.norm", "test_acc", "final").axes[0]
    cells = ax.images[0].get_array()
    texts = {(round(t.get_position()[0]), round(t.get_position()[1])): t.get_text()
             for t in ax.texts}
    column = [t.get_text() for t in ax.get_xticklabels()].index("1.0")
    for row in range(2):
        assert np.ma.is_masked(cells[row, column]) or np.isnan(cells[row, column])
        assert texts[(column, row)] == "div."
    assert "0.10" not in texts.values()
    hatched = [p for p in ax.patches if p.get_hatch()]
    assert len(hatched) == 2
    assert "div.: every seed diverged" in ax.get_title()


# --- 4. the heatmap's orientation and size -----------------------------------------

def _display_order(ax, axis: str) -> list[str]:
    """Tick labels of ``axis`` from left to right (x) or bottom to top (y), on screen."""
    if axis == "x":
        labels = ax.get_xticklabels()
        where = [ax.transData.transform((t.get_position()[0], 0))[0] for t in labels]
    else:
        labels = ax.get_yticklabels()
        where = [ax.transData.transform((0, t.get_position()[1]))[1] for t in labels]
    return [t.get_text() for _, t in sorted(zip(where, labels), key=lambda p: p[0])]


def test_the_heatmap_runs_left_to_right_and_upward_in_increasing_order():
    # x in decreasing grid order (as a logspace from 0 down gives it), y increasing.
    data = _sweep([("train.lr", [1.0, 0.1, 0.01]), ("train.batch_size", [10, 100])], [
        _run({"train.lr": lr, "train.batch_size": bs}, 0, [0.1, 0.5])
        for lr in (1.0, 0.1, 0.01) for bs in (10, 100)])
    ax = figures.heatmap_figure(data, "train.lr", "train.batch_size", "test_acc", "final").axes[0]
    assert _display_order(ax, "x") == ["0.01", "0.1", "1.0"]
    assert _display_order(ax, "y") == ["10", "100"]


def test_a_wide_heatmap_is_a_slide_not_a_strip():
    scales = [10.0 ** (-k / 4) for k in range(16)]
    data = _sweep([("init.weight_scale", scales), ("model.norm", ["batch", "none"])], [
        _run({"init.weight_scale": w, "model.norm": n}, 0, [0.1, 0.4]) for w in scales
        for n in ("batch", "none")])
    fig = figures.heatmap_figure(data, "init.weight_scale", "model.norm", "test_acc", "final")
    width, height = fig.get_size_inches()
    assert 6 <= width <= 8 and height >= 3
    assert width / height < 3  # 1440 x 290 pixels was 5 to 1
    few = figures.heatmap_figure(DIVERGED, "train.lr", "model.norm", "test_acc", "final")
    many_rows = _sweep([("train.lr", [0.1, 1.0]), ("train.batch_size", list(range(1, 11)))], [
        _run({"train.lr": lr, "train.batch_size": b}, 0, [0.1, 0.3])
        for lr in (0.1, 1.0) for b in range(1, 11)])
    tall = figures.heatmap_figure(many_rows, "train.lr", "train.batch_size", "test_acc", "final")
    assert few.get_size_inches()[1] >= 3
    assert tall.get_size_inches()[1] > few.get_size_inches()[1]  # grows with the rows


# --- real sweeps: default kinds, the heatmap's keys, titles ------------------------

TINY = {"data": {"dataset": "synthetic", "n_train": 60, "n_test": 30, "dim": 6, "classes": 3},
        "model": {"hidden": [8, 8]}, "train": {"epochs": 2, "batch_size": 20, "lr": 0.5}}


@pytest.fixture(scope="module")
def categorical(tmp_path_factory):
    raw = {**TINY, "name": "cat", "sweep": {"grid": {"model.norm": ["batch", "layer", "none"],
                                                     "model.placement": ["before", "after"]},
                                            "seeds": [0, 1]}}
    sdir, outcome = sweep_mod.execute(sweep_mod.build(raw), tmp_path_factory.mktemp("cat"),
                                      jobs=2, plot=True)
    assert not outcome.failed
    return sdir


@pytest.fixture(scope="module")
def mixed(tmp_path_factory):
    """A category first, a number second: the heatmap must still put the number on x."""
    raw = {**TINY, "name": "mixed", "sweep": {"grid": {"model.norm": ["batch", "none"],
                                                       "train.lr": [0.5, 0.05, 0.1, 0.2]},
                                              "seeds": [0]}}
    sdir, outcome = sweep_mod.execute(sweep_mod.build(raw), tmp_path_factory.mktemp("mixed"),
                                      jobs=2, plot=False)
    assert not outcome.failed
    return sdir


def test_a_sweep_of_categories_draws_grouped_bars_by_default(categorical, tmp_path):
    own, why = sweep_mod.draw_figure(categorical)  # what `bnexp sweep` draws at its end
    assert why is None and own == categorical / "bars.png"
    fig = figures.figure(categorical)
    (ax,) = fig.axes
    assert [t.get_text() for t in ax.get_xticklabels()] == ["batch", "layer", "none"]
    assert len(ax.patches) == 6  # 3 norms x 2 placements
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels == ["placement=before", "placement=after"]
    assert len(_error_bar_ys(ax)) == 2 * 6  # error bars over the seeds
    res = invoke("plot", categorical, "--kind", "bars", "--x", "model.placement",
                 "--lines", "model.norm", "--out", tmp_path / "b.png")
    assert res.exit_code == 0, res.output


def test_bars_is_a_kind_everywhere_kinds_are_listed():
    assert "bars" in PLOT_KINDS
    FigureOptions(kind="bars").check()
    readme = (Path(__file__).parents[1] / "README.md").read_text()
    listed = re.search(r"--kind ([a-z|]+)\]", readme).group(1).split("|")
    assert listed == list(PLOT_KINDS)


def test_the_heatmap_puts_the_final_plots_x_key_along_x(mixed):
    final_ax = figures.figure(mixed, "final").axes[0]
    heat_ax = figures.figure(mixed, "heatmap").axes[0]
    assert heat_ax.get_xlabel() == final_ax.get_xlabel() == "train.lr"
    assert heat_ax.get_ylabel() == "model.norm"
    assert _display_order(heat_ax, "x") == ["0.05", "0.1", "0.2", "0.5"]


def test_a_runs_curves_title_states_its_settings_without_double_spaces(categorical):
    run = categorical / "norm=layer,placement=after,seed=1"
    title = figures.figure(run).get_suptitle()
    assert title == ("norm=layer,placement=after,seed=1 (completed): "
                     "norm=layer, lr=0.5, batch_size=20")
    # The curves.png the run wrote has the same title: redrawing it changes nothing.
    assert figures.plot_path(run) == run / "curves.png"
    for info in ({"status": "diverged"}, {"name": "", "status": "completed"}, {}):
        text = run_title(info, {"train": {"lr": 0.1}})
        assert "  " not in text and not text.startswith(" ") and text.endswith("lr=0.1")


def test_a_sweeps_curves_title_states_the_settings_its_lines_share(categorical):
    ax = figures.figure(categorical, "curves", filters=["model.placement=before"]).axes[0]
    title = ax.get_title()
    assert "  " not in title
    first = title.splitlines()[0]
    assert first == "cat [placement=before]: lr=0.5, batch_size=20"  # norm: one per line
    assert [t.get_text() for t in ax.get_legend().get_texts()] == [
        "norm=batch", "norm=layer", "norm=none"]
    one = figures.figure(categorical, "curves", filters=["model.norm=layer",
                                                         "model.placement=after"]).axes[0]
    assert one.get_title().splitlines()[0] == (
        "cat [norm=layer, placement=after]: lr=0.5, batch_size=20")


def test_heatmap_ticks_show_long_numbers_to_three_digits(tmp_path):
    from test_report import fake_sweep

    from bnexp.figures.heatmap import tick_label

    assert tick_label("0.00018478497974222906") == "0.000185"
    assert [tick_label(v) for v in ("0.0001", "1e-4", "batch", "12345678")] == [
        "0.0001", "1e-4", "batch", "12345678"]  # short spellings and words as they are
    sdir = fake_sweep(tmp_path, {"init.weight_scale": [0.00018478497974222906, 0.5],
                                 "model.norm": ["batch", "none"]},
                      {(0.00018478497974222906, "batch"): [0.9, 0.8], (0.5, "batch"): [0.7, 0.6],
                       (0.00018478497974222906, "none"): [0.1, 0.2], (0.5, "none"): [0.3, 0.4]})
    fig = figures.figure(sdir, "heatmap", x="init.weight_scale", y="model.norm")
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["0.000185", "0.5"]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["batch", "none"]
