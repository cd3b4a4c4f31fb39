"""Dropout placement (model.dropout_at) and Li et al. (2019)'s variance shift."""

import numpy as np
import pytest

from bnexp import config
from bnexp.analysis import variance_shift
from bnexp.engine import BatchNorm, Dropout, Network
from bnexp.engine.model import build_model


def test_dropout_at_the_head_comes_once_after_every_norm():
    blocks = build_model(config.from_dict({"model": {"hidden": [8, 8], "dropout": 0.3}}), 784,
                         10, np.random.default_rng(0))
    head = build_model(config.from_dict({"model": {"hidden": [8, 8], "dropout": 0.3,
                                                   "dropout_at": "head"}}), 784, 10,
                       np.random.default_rng(0))
    assert [n for n in blocks.names if n.startswith("dropout")] == ["dropout1", "dropout2"]
    assert head.names[-2:] == ["dropout2", "linear_out"]
    assert [n for n in head.names if n.startswith("dropout")] == ["dropout2"]


@pytest.mark.parametrize("p", [0.2, 0.5])
def test_the_variance_shift_of_inverted_dropout_on_centred_inputs_is_one_over_keep(p):
    """x ~ N(0, 1) per unit, then inverted dropout: the variance with dropout
    on is E[x^2] / (1 - p) = 1 / (1 - p) times the variance with it off."""
    rng = np.random.default_rng(1)
    net = Network([Dropout(p, rng=np.random.default_rng(2)), BatchNorm(3, dtype=np.float64)],
                  ["dropout1", "batchnorm1"], np.float64)
    x = rng.standard_normal((40000, 3))
    shift = variance_shift(net, x, np.random.default_rng(3))
    assert shift == pytest.approx(1 / (1 - p), rel=0.03)
    assert variance_shift(Network([BatchNorm(3, dtype=np.float64), Dropout(p, rng=rng)],
                                  ["batchnorm1", "dropout1"], np.float64), x, rng) is None


def test_runs_record_their_time_per_training_step(tmp_path):
    import json

    import yaml
    from clitools import invoke

    path = tmp_path / "t.yaml"
    path.write_text(yaml.safe_dump({"name": "t", "data": {"n_train": 200, "n_test": 50},
                                    "model": {"hidden": [10]}, "train": {"epochs": 2,
                                                                          "batch_size": 20}}))
    assert invoke("train", path, "--out", tmp_path, "--no-plot").exit_code == 0
    info = json.loads((tmp_path / "t" / "run.json").read_text())
    assert 0 < info["step_seconds"] < info["seconds"] / 20  # 20 steps, evaluations aside
