"""Swept values: their one short text form, their exact text form in CSV files,
and matching what a user types against them.

A swept value (a number, a name, a list of widths, true/false, null) appears
in run ids, summary.csv, figure legends and titles, ``--filter`` and report
selections. ``label`` is the short form every one of those shows and compares;
``to_text``/``from_text`` round-trip the exact value through a CSV cell.
"""

from __future__ import annotations

import math
from typing import Any

import yaml


def label(v: Any) -> str:
    """The short form: floats to 6 significant digits, lists joined by ``x``
    (``[100, 100]`` -> ``100x100``), true/false/null as YAML writes them."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if v is None:
        return "null"
    if isinstance(v, float):
        return f"{v:.6g}"
    if isinstance(v, (list, tuple)):
        return "x".join(label(x) for x in v)
    if isinstance(v, dict):
        return yaml.safe_dump(v, default_flow_style=True).strip()
    return str(v)


def short(text: str, digits: int = 4) -> str:
    """A label as a table cell or a figure shows it: a number to ``digits``
    significant digits (``0.0135936`` -> ``0.01359``), anything else as it is."""
    try:
        return f"{float(text):.{digits}g}"
    except ValueError:
        return text


def to_text(v: Any) -> str:
    """The exact form for a CSV cell: ``from_text(to_text(v)) == v``."""
    if isinstance(v, float):
        return repr(v)
    if isinstance(v, (bool, list, tuple, dict)) or v is None:
        return yaml.safe_dump(_plain(v), default_flow_style=True).strip().removesuffix("\n...")
    return str(v)


def _plain(v: Any) -> Any:
    return [_plain(x) for x in v] if isinstance(v, (list, tuple)) else v


def from_text(text: str) -> Any:
    """A CSV cell back to its value: an integer, a float (``1e-05`` included,
    which YAML 1.1 reads as a string), else the YAML value, else the text."""
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def _significant_digits(text: str) -> int | None:
    """How many significant digits a typed number has (``0.000631`` -> 3)."""
    mantissa = text.strip().lower().lstrip("+-").split("e")[0]
    digits = mantissa.replace(".", "").lstrip("0")
    if not digits or not all(c.isdigit() for c in digits):
        return None
    if "." not in mantissa:
        digits = digits.rstrip("0") or digits
    return len(digits)


def match(values: list[Any], text: str) -> list[Any]:
    """The values among ``values`` that ``text`` names: the same label, or for
    a number typed with fewer digits (``0.000631`` for 0.000630957...), the
    values that round to it at the precision typed."""
    want = from_text(text)
    exact = [v for v in values if label(v) == label(want)]
    if exact or not isinstance(want, (int, float)) or isinstance(want, bool):
        return exact
    digits = _significant_digits(text)
    if digits is None or not math.isfinite(float(want)):
        return []
    hits = []
    for v in values:
        if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v):
            if float(f"{float(v):.{digits}g}") == float(f"{float(want):.{digits}g}"):
                hits.append(v)
    return hits
