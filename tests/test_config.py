"""Config: defaults, validation messages (all at once), overrides, round trip."""

import pytest
import yaml

from bnexp import config
from bnexp.config import Config, ConfigError, from_dict


def errors_of(raw):
    with pytest.raises(ConfigError) as info:
        from_dict(raw)
    return info.value.errors


def test_every_default_is_the_value_the_readme_documents():
    """The README's example config lists every key with its default (its
    comments say what each means); the name is the example's own. Compared
    resolved: a null default stands for a value that depends on other keys."""
    import re
    from pathlib import Path

    readme = (Path(__file__).parents[1] / "README.md").read_text()
    documented = yaml.safe_load(re.search(r"```yaml\n(.*?)```", readme, re.S).group(1))
    defaults = config.from_dict({})
    for key in config.all_keys():
        if key == "name":
            continue
        section, _, leaf = key.rpartition(".")
        value = documented[section][leaf] if section else documented[key]
        expected = config.from_dict({section: {leaf: value}} if section else {key: value})
        assert defaults.get(key) == expected.get(key), key
    assert defaults.name == "run" and documented["name"] == "book-bn"
    assert Config().model.hidden is None and defaults.model.hidden == (100,) * 5


def test_every_problem_is_reported_at_once_one_line_each():
    errs = errors_of({
        "model": {"actvation": "relu", "norm": "batchy", "hidden": [100, 0]},
        "train": {"lr": -1, "batch_size": "big"},
        "norm": {"momentum": 2},
        "data": {"dataset": "cifar"},
    })
    assert errs == [
        "data.dataset: got 'cifar', expected one of mnist5k, synthetic, mnist, fashion-mnist, "
        "cifar10",
        "model.actvation: unknown key (did you mean model.activation?)",
        "model.hidden: got [100, 0], expected a list of at most 100 integers from 1 to 100,000, "
        "e.g. [100, 100] (or null: the default for model.arch)",
        "model.norm: got 'batchy', expected one of none, batch, layer, group, instance, "
        "weight",
        "norm.momentum: got 2, expected a number in [0, 1] or null",
        "train.batch_size: got 'big', expected an integer from 1 to 10,000,000",
        "train.lr: got -1, expected a number > 0",
    ]


def test_unknown_top_level_keys_get_suggestions():
    assert errors_of({"modle": {}, "momentum": 0.9}) == [
        "modle: unknown key (did you mean model?)",
        "momentum: unknown key (did you mean norm.momentum?)",
    ]


def test_cross_field_checks():
    assert errors_of({"model": {"norm": "group", "groups": 3, "hidden": [12, 100]}}) == [
        "model.groups: got 3, expected a divisor of every hidden width (100 is not divisible "
        "by 3; groups that work: 1, 2, 4)"]
    assert errors_of({"train": {"batch_size": 1}}) == [
        "train.batch_size: got 1, expected >= 2 with model.norm 'batch' (a batch of one "
        "normalizes every unit to beta)"]
    assert errors_of({"data": {"n_train": 4500, "n_test": 1000}})[0].startswith(
        "data.n_train: got 4500, expected n_train + n_test <= 5000")


def test_types_are_strict_but_yaml_number_strings_are_numbers():
    cfg = from_dict({"norm": {"eps": "1e-5", "momentum": None}, "init": {"weight_scale": "he"}})
    assert cfg.norm.eps == 1e-5 and cfg.norm.momentum is None
    assert cfg.init.weight_scale == "he"
    assert errors_of({"init": {"weight_scale": "big"}}) == [
        "init.weight_scale: got 'big', expected a positive number up to 1,000,000 (the Gaussian "
        "std; larger weights overflow float32 within a few layers), or one of he, xavier, "
        "kaiming_uniform, glorot_normal, glorot_uniform"]
    assert errors_of({"norm": {"affine": "yes please"}}) == [
        "norm.affine: got 'yes please', expected true, false or null"]
    assert errors_of({"seed": True}) == ["seed: got true, expected an integer >= 0"]


def test_malformed_yaml_names_line_and_column(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("name: x\nmodel:\n  norm: [batch\n  hidden: 3\n")
    with pytest.raises(ConfigError) as info:
        config.load(path)
    (line,) = info.value.errors
    assert line.startswith(f"{path}: invalid YAML at line 4, column")


def test_overrides_are_yaml_scalars_and_validated(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("name: a\nmodel: {norm: batch}\n")
    cfg = config.load(path, ["model.norm=none", "init.weight_scale=1e-4", "model.hidden=[10, 20]",
                             "norm.momentum=null", "name=b"])
    assert (cfg.model.norm, cfg.init.weight_scale, cfg.model.hidden) == ("none", 1e-4, (10, 20))
    assert cfg.norm.momentum is None and cfg.name == "b"
    with pytest.raises(ConfigError) as info:
        config.load(path, ["model.nrom=none", "train.lr=0", "oops"])
    assert info.value.errors == [
        "--set oops: expected dotted.key=value, e.g. model.norm=none",
        "model.nrom: unknown key (did you mean model.norm?)",
        "train.lr: got 0, expected a number > 0",
    ]


def test_resolved_config_round_trips_exactly(tmp_path):
    cfg = from_dict({"name": "x", "init": {"weight_scale": 0.00630957344480193},
                     "norm": {"momentum": None}, "model": {"hidden": [7, 9]}})
    path = tmp_path / "config.yaml"
    path.write_text(config.dump(cfg))
    assert config.load(path) == cfg
    assert set(yaml.safe_load(path.read_text())["train"]) >= {"epochs", "lr", "sampling"}
