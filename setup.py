"""Build hook: record the git commit (and whether the tree differed from it)
in bnexp/_build.json inside the built package, so that a non-editable install
(``pip install .``) still knows which code it is; an editable install asks git
at run time instead (bnexp.provenance.code_version)."""

import json
import subprocess
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py


def _git(*args):
    try:
        out = subprocess.run(["git", *args], capture_output=True, text=True, timeout=10,
                             cwd=Path(__file__).parent)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


class BuildWithCommit(build_py):
    def run(self):
        super().run()
        commit = _git("rev-parse", "HEAD")
        status = _git("status", "--porcelain", "--untracked-files=no") if commit else None
        info = {"commit": commit, "dirty": bool(status) if status is not None else None}
        target = Path(self.build_lib) / "bnexp" / "_build.json"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps(info))


setup(cmdclass={"build_py": BuildWithCommit})
