"""What ``pip install .`` installs: every package of the source tree (the
tests run against the installed copy, so a package missing from
pyproject.toml breaks a user's install, not only a test)."""

import re
from pathlib import Path

ROOT = Path(__file__).parents[1]


def test_every_package_in_the_tree_is_installed():
    text = (ROOT / "pyproject.toml").read_text()
    listed = set(re.findall(r'"(bnexp[\w.]*)"', re.search(r"packages = \[(.*?)\]", text,
                                                            re.S).group(1)))
    found = {".".join(p.parent.relative_to(ROOT).parts)
             for p in (ROOT / "bnexp").rglob("__init__.py") if "__pycache__" not in p.parts}
    assert found - listed == set(), "packages missing from pyproject.toml"
    assert listed - found - {"bnexp.configs"} == set(), "listed packages that do not exist"
