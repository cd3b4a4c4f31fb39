"""The README stays true: its quick start, its commands, its example config."""

import re
from pathlib import Path

import yaml

from bnexp import config, shapes, sweep
from bnexp.cli import main

README = (Path(__file__).parents[1] / "README.md").read_text()


def test_quick_start_is_two_commands_install_and_main_job_then_tests():
    block = re.search(r"(?ims)^#+\s*quick\s*start.*?```[a-z]*\n(.*?)```", README).group(1)
    cmds = [line.strip() for line in block.splitlines() if line.strip()]
    assert cmds[0] == "pip install . && bnexp sweep weight_scale" and len(cmds) == 2
    m = re.fullmatch(r'pip install "\.\[([\w,]+)\]" && pytest -q', cmds[1])
    assert m, cmds[1]
    # the tests run with every optional extra, so that the code behind each is tested
    pyproject = (Path(__file__).parents[1] / "pyproject.toml").read_text()
    extras = re.search(r"(?ms)^\[project\.optional-dependencies\]\n(.*?)^\[", pyproject).group(1)
    assert sorted(m.group(1).split(",")) == sorted(re.findall(r"(?m)^(\w+) = \[", extras))


def test_every_command_is_documented():
    for name in main.commands:
        assert f"bnexp {name}" in README, name


def test_example_config_in_readme_is_valid_and_complete():
    block = re.search(r"```yaml\n(.*?)```", README, re.S).group(1)
    raw = yaml.safe_load(block)
    cfg = config.from_dict(raw)
    documented = set()
    for key, value in raw.items():
        if key in config.SECTIONS:
            documented |= {f"{key}.{leaf}" for leaf in value}
        elif key != "sweep":
            documented.add(key)
    assert documented == set(config.all_keys())
    assert len(sweep.build(raw).points) == 16 * 2 * 3
    assert cfg.name == "book-bn"


def _synopsis(command: str) -> str:
    """The README bullet of ``bnexp COMMAND``: from its line to the next bullet."""
    m = re.search(rf"(?ms)^- `bnexp {command}\b(.*?)(?=^- `bnexp |^\S)", README)
    assert m, f"no README bullet for bnexp {command}"
    return m.group(0)


def test_every_option_of_every_command_is_in_its_readme_synopsis():
    import click

    commands = [(name, cmd) for name, cmd in main.commands.items()
                if not isinstance(cmd, click.Group)]
    commands += [(f"data {name}", cmd) for name, cmd in main.commands["data"].commands.items()]
    for name, cmd in commands:
        text = _synopsis(name)
        for param in cmd.params:
            if isinstance(param, click.Option) and "--help" not in param.opts:
                assert any(opt in text for opt in param.opts), (name, param.opts)


def test_the_readme_lists_every_status():
    from bnexp.store import STATUSES

    for status in STATUSES:
        assert f"`{status}`" in README, status


def test_the_cnn_config_in_the_readme_is_valid_and_a_cnn():
    block = re.search(r"## Convolutional networks.*?```yaml\n(.*?)```", README, re.S).group(1)
    cfg = config.from_dict(yaml.safe_load(block))
    assert cfg.model.arch == "cnn" and cfg.model.norm == "group"
    assert shapes.cnn_shapes(cfg.model, (1, 28, 28)) == [(16, 14, 14), (32, 7, 7)]  # as its comment says
