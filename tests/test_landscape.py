"""Loss-landscape probes (Santurkar et al. 2018): known answers, no effect on
training, and the check metrics computed from landscape.csv."""

import json

import numpy as np
import pytest
import yaml
from clitools import invoke

from bnexp import analysis, config
from bnexp import train as train_mod
from bnexp.engine import make_optimizer
from bnexp.engine.model import NormSettings, build, mlp_layers

RAW = {"name": "probe", "data": {"n_train": 300, "n_test": 100},
       "model": {"hidden": [20, 20], "norm": "batch", "dropout": 0.1},
       "norm": {"noise": 0.1}, "init": {"weight_scale": "he"},
       "train": {"epochs": 2, "batch_size": 30, "lr": 0.1, "optimizer": "adam"}}


def test_a_zero_step_changes_nothing_and_a_quadratic_is_exact():
    rng = np.random.default_rng(0)
    net = build(mlp_layers([6], norm="batch"), (4,), 3, rng=rng, norm=NormSettings("batch"),
                dtype=np.float64)
    opt = make_optimizer("sgd", net.layers, 0.1)
    x, y = rng.standard_normal((8, 4)), rng.integers(0, 3, 8)
    loss = net.loss_and_backward(x, y)
    rows = analysis.landscape(net, opt, x, y, 0.0, 0, 0.0, {}, {})  # lr 0: every eta is 0
    assert all(r["loss"] == pytest.approx(loss, abs=1e-12) and r["grad_change"] < 1e-12
               for r in rows)
    rows = analysis.landscape(net, opt, x, y, 0.01, 0, 0.0, {}, {})
    g2 = rows[0]["grad_norm"] ** 2
    for r in rows:  # to first order the loss falls by eta * ||g||^2 along -g
        assert r["loss"] - loss == pytest.approx(-r["eta"] * g2, rel=0.2)


def test_probes_leave_training_exactly_as_it_was():
    """Adam, dropout, noise and BN's running statistics all untouched by the probes."""
    plain = train_mod.train(config.from_dict(RAW))
    probed = train_mod.train(config.from_dict({**RAW, "eval": {"landscape_every": 3}}))
    strip = lambda rows: [{k: v for k, v in r.items() if k != "elapsed"} for r in rows]  # noqa
    assert strip(probed.metrics) == strip(plain.metrics)
    assert len(probed.landscape) == len(analysis.LANDSCAPE_MULTIPLIERS) * len(range(0, 20, 3))
    for k, v in plain.model.state_dict().items():
        np.testing.assert_array_equal(probed.model.state_dict()[k], v, err_msg=k)


def test_loss_range_and_beta_smoothness_come_from_the_run_folder(tmp_path):
    from bnexp import claims
    from bnexp.store import RunRecord, read_csv

    raw = {**RAW, "eval": {"landscape_every": 5}}
    path = tmp_path / "probe.yaml"
    path.write_text(yaml.safe_dump(raw))
    assert invoke("train", path, "--out", tmp_path, "--no-plot").exit_code == 0
    rows = read_csv(tmp_path / "probe" / "landscape.csv")
    info = json.loads((tmp_path / "probe" / "run.json").read_text())
    run = RunRecord("probe", tmp_path / "probe", {}, 0, info)
    by_step = {}
    for r in rows:
        by_step.setdefault(r["step"], []).append(r)
    expect_range = np.mean([max(r["loss"] for r in v) - min(r["loss"] for r in v)
                            for v in by_step.values()])
    expect_beta = np.mean([max(r["grad_change"] / (r["eta"] * r["grad_norm"]) for r in v)
                           for v in by_step.values()])
    assert claims.run_value(run, "loss_range") == pytest.approx(expect_range, rel=1e-12)
    assert claims.run_value(run, "beta_smoothness") == pytest.approx(expect_beta, rel=1e-12)
    expect_pred = np.mean([max(r["grad_change"] / r["grad_norm"] for r in v)
                           for v in by_step.values()])
    assert claims.run_value(run, "grad_predictiveness") == pytest.approx(expect_pred, rel=1e-12)


def test_the_landscape_figure_draws_a_band_per_line_value(tmp_path, monkeypatch):
    from bnexp import figures
    from bnexp.figures import dispatch

    raw = {**RAW, "name": "lands", "model": {"hidden": [20, 20]}, "norm": {},
           "train": {"epochs": 1, "batch_size": 30, "lr": 0.1},
           "eval": {"landscape_every": 4},
           "sweep": {"grid": {"model.norm": ["none", "batch"]}, "seeds": [0, 1]}}
    path = tmp_path / "lands.yaml"
    path.write_text(yaml.safe_dump(raw))
    assert invoke("sweep", path, "--out", tmp_path, "-j", "1", "--no-plot", "-q").exit_code == 0
    figs = []
    monkeypatch.setattr(dispatch, "save_figure", lambda fig, out, fmt=None: figs.append(fig) or out)
    figures.plot_path(tmp_path / "lands", "landscape", lines="model.norm")
    ax = figs[-1].axes[0]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["norm=none", "norm=batch"]
    assert len(ax.collections) == 2
    res = invoke("plot", tmp_path / "lands", "--kind", "landscape", "--out", tmp_path / "x.png")
    assert res.exit_code == 0
    no_probe = {**raw, "name": "flat", "eval": {}}
    path.write_text(yaml.safe_dump(no_probe))
    invoke("sweep", path, "--out", tmp_path, "-j", "1", "--no-plot", "-q")
    res = invoke("plot", tmp_path / "flat", "--kind", "landscape", "--out", tmp_path / "y.png")
    assert res.exit_code == 2 and "run with eval.landscape_every > 0" in res.output
