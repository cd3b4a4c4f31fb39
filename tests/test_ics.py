"""Internal covariate shift as Santurkar et al. (2018) measure it."""

import json

import numpy as np
import pytest
import yaml
from clitools import invoke

from bnexp import config
from bnexp.train import train

RAW = {"name": "ics", "data": {"n_train": 300, "n_test": 100},
       "model": {"hidden": [20, 20, 20], "norm": "batch", "dropout": 0.1},
       "norm": {"noise": 0.1}, "init": {"weight_scale": "he"},
       "train": {"epochs": 2, "batch_size": 30, "lr": 0.1, "optimizer": "momentum"}}


def test_the_first_layer_has_none_and_the_others_some():
    """Nothing comes before the first weight layer, so G' = G exactly: with
    dropout and noise too, since the measurement reuses the step's own draws."""
    result = train(config.from_dict({**RAW, "eval": {"ics_every": 4}}))
    first = [r for r in result.ics if r["layer"] == 1]
    rest = [r for r in result.ics if r["layer"] > 1]
    assert first and all(r["l2"] == 0.0 and r["cosine"] == pytest.approx(1.0) for r in first)
    assert rest and all(r["l2"] > 0 for r in rest)
    assert {r["layer"] for r in result.ics} == {1, 2, 3, 4}  # three hidden + the output


def test_measuring_leaves_training_exactly_as_it_was():
    plain = train(config.from_dict(RAW))
    measured = train(config.from_dict({**RAW, "eval": {"ics_every": 3,
                                                        "landscape_every": 5}}))
    strip = lambda rows: [{k: v for k, v in r.items() if k != "elapsed"} for r in rows]  # noqa
    assert strip(measured.metrics) == strip(plain.metrics)
    for k, v in plain.model.state_dict().items():
        np.testing.assert_array_equal(measured.model.state_dict()[k], v, err_msg=k)


def test_ics_metrics_average_layers_after_the_first(tmp_path):
    from bnexp import claims
    from bnexp.store import RunRecord, read_csv

    path = tmp_path / "ics.yaml"
    path.write_text(yaml.safe_dump({**RAW, "eval": {"ics_every": 5}}))
    assert invoke("train", path, "--out", tmp_path, "--no-plot").exit_code == 0
    rows = [r for r in read_csv(tmp_path / "ics" / "ics.csv") if r["layer"] > 1]
    run = RunRecord("ics", tmp_path / "ics", {}, 0,
                    json.loads((tmp_path / "ics" / "run.json").read_text()))
    assert claims.run_value(run, "ics_l2") == pytest.approx(np.mean([r["l2"] for r in rows]))
    assert claims.run_value(run, "ics_cosine") == pytest.approx(
        np.mean([r["cosine"] for r in rows]))
