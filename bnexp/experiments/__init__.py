"""The ready experiments, the YAML files of the repository's ``configs/``,
installed with bnexp (as ``bnexp/configs/``): ``bnexp list``
shows them, ``bnexp init NAME`` copies one out to edit, and ``bnexp sweep
NAME`` / ``bnexp train NAME`` run one by name."""

from __future__ import annotations

import re
from pathlib import Path

from ..errors import BnexpError


class NotFound(BnexpError):
    """Neither a file nor a shipped experiment; the message lists what is shipped."""


def folder() -> Path:
    """Where the shipped experiments are: ``bnexp/configs/`` in an installed
    package, the repository's top-level ``configs/`` in a clone."""
    installed = Path(__file__).resolve().parent.parent / "configs"
    if installed.is_dir():
        return installed
    return Path(__file__).resolve().parents[2] / "configs"


def names() -> list[str]:
    return sorted(p.stem for p in folder().glob("*.yaml"))


def path(name: str) -> Path:
    return folder() / f"{name}.yaml"


# Words whose period does not end a sentence: ``et al. 2018``, ``sec. 4.1``, ``ch. 6``.
ABBREVIATIONS = {"al", "cf", "ch", "e.g", "eq", "fig", "i.e", "no", "p", "pp", "ref", "sec", "vs"}


def describe(name: str) -> str:
    """The first sentence of the experiment's opening comment, whole, however
    many comment lines it spans: it ends at a period (or ! or ?) before a
    space and anything but a lower-case letter, not after an abbreviation,
    or where the comment's first paragraph ends."""
    words = []
    for line in path(name).read_text(encoding="utf-8").splitlines():
        text = line[1:].strip() if line.startswith("#") else ""
        if not text or line.startswith("#  "):  # the paragraph ends (a blank, an example)
            break
        words.append(text)
    paragraph = " ".join(words)
    for end in re.finditer(r"""(\S*?)[.!?]["')]*(?=\s+[^a-z\s]|\s*$)""", paragraph):
        if end.group(1).lstrip("(\"'").lower() not in ABBREVIATIONS:
            return paragraph[:end.end()]
    return paragraph


def missing_data(configs) -> list[str]:
    """The datasets that ``configs`` (``Config`` objects: a sweep's points) use
    and that are neither bundled nor in a folder bnexp searches, in the order
    of ``choices.DOWNLOADED``. Looks for files only: reads and downloads nothing."""
    from ..choices import DOWNLOADED
    from ..datasets import available

    used = {(c.data.dataset, c.data.root) for c in configs if c.data.dataset in DOWNLOADED}
    missing = {name for name, root in used if not available(name, root)}
    return [name for name in DOWNLOADED if name in missing]


def needs_note(missing: list[str]) -> str:
    """What ``bnexp list`` adds to an experiment whose data is not here yet."""
    if not missing:
        return ""
    return "(needs: " + "; ".join(f"bnexp data download {name}" for name in missing) + ")"


def resolve(arg: str) -> Path:
    """A config argument: an existing file, else a shipped experiment's name
    (``weight_scale`` or ``weight_scale.yaml``)."""
    given = Path(arg)
    if given.exists():
        return given
    stem = given.name.removesuffix(".yaml").removesuffix(".yml")
    if stem in names() and (given.parent == Path(".") or given.parent.name == "configs"):
        return path(stem)
    hint = ""
    if stem in names():
        hint = f"; the shipped experiment is `{stem}`"
    raise NotFound(f"{arg}: no such file, and no shipped experiment of that name{hint} "
                   f"(shipped: {', '.join(names())}; `bnexp list` describes them)")
