"""Swept values: one identity and one spelling each.

A swept value (a number, a name, a list of widths, true/false, null) appears
in run ids, summary.csv, figure legends and titles, tables, ``--filter``,
report selections and errors. Every one of them shows ``label(v)`` and
compares with ``same``:

- any spelling of a number is the same value: ``1e-3``, ``0.001`` and
  ``1.0E-3`` (YAML 1.1 reads the first and the last as text) are all the
  float 0.001, and its one spelling is the shortest text that reads back as
  exactly that float (``repr``: ``0.001``, ``1e-05``, ``0.013593563908785255``);
- an integer and the float of the same number are one value (``same(1, 1.0)``);
- lists show their items joined by ``x`` (``[100, 100]`` -> ``100x100``);
- true/false/null are written as YAML writes them.

``to_text``/``from_text`` round-trip the exact value through a CSV cell.
"""

from __future__ import annotations

import math
from typing import Any

import yaml


def _number_text(text: str) -> float | None:
    """The float a string spells (``1e-3``, ``1.0E-2``, ``.5``), or None. Words
    Python's float() also reads (``inf``, ``nan``, ``infinity``) are not numbers
    here: YAML spells those ``.inf`` and ``.nan``."""
    t = text.strip()
    if not t or t.lower().lstrip("+-") in ("inf", "infinity", "nan") or "_" in t:
        return None
    try:
        return float(t)
    except ValueError:
        return None


def canonical(v: Any) -> Any:
    """The one form of a value: a string that spells a number becomes that
    float; tuples become lists; a numpy scalar its Python number; everything
    else is kept as it is."""
    if hasattr(v, "item") and not isinstance(v, (list, tuple, dict, str)):
        v = v.item()  # a numpy scalar
    if isinstance(v, str):
        f = _number_text(v)
        return v if f is None else f
    if isinstance(v, (list, tuple)):
        return [canonical(x) for x in v]
    return v


def identity(v: Any) -> tuple:
    """What ``same`` compares: numbers by their float value (so 1 and 1.0 are one
    value), never a bool as a number, lists item by item."""
    v = canonical(v)
    if isinstance(v, bool):
        return ("bool", v)
    if v is None:
        return ("null",)
    if isinstance(v, (int, float)):
        # An int and the float of the same number compare (and hash) equal.
        return ("num", "nan") if isinstance(v, float) and math.isnan(v) else ("num", v)
    if isinstance(v, list):
        return ("list", tuple(identity(x) for x in v))
    if isinstance(v, dict):
        return ("map", yaml.safe_dump(v, default_flow_style=True, sort_keys=True).strip())
    return ("text", str(v))


def same(a: Any, b: Any) -> bool:
    """True where ``a`` and ``b`` are one value (``1e-3`` and ``0.001``; 1 and 1.0)."""
    return identity(a) == identity(b)


def label(v: Any) -> str:
    """The one spelling: numbers as the shortest text that reads back exactly
    (``0.001``, ``1e-05``, ``1.0``), lists joined by ``x``, true/false/null as
    YAML writes them."""
    v = canonical(v)
    if isinstance(v, bool):
        return "true" if v else "false"
    if v is None:
        return "null"
    if isinstance(v, float):
        return _float_text(v)
    if isinstance(v, list):
        return "x".join(label(x) for x in v)
    if isinstance(v, dict):
        return yaml.safe_dump(v, default_flow_style=True).strip()
    return str(v)


def _float_text(f: float) -> str:
    if math.isnan(f):
        return "nan"
    if math.isinf(f):
        return "inf" if f > 0 else "-inf"
    return "0.0" if f == 0 else repr(float(f))  # -0.0 is 0.0, one value


def to_text(v: Any) -> str:
    """The exact form for a CSV cell: ``same(from_text(to_text(v)), v)``."""
    v = canonical(v)
    if isinstance(v, float):
        return _float_text(v)
    if isinstance(v, (bool, list, dict)) or v is None:
        return yaml.safe_dump(v, default_flow_style=True).strip().removesuffix("\n...")
    text = str(v)
    if isinstance(v, str) and not same(from_text(text), v):  # "yes", "null", "[1, 2]", ""
        return yaml.safe_dump(v, default_flow_style=True).strip().removesuffix("\n...")
    return text


def from_text(text: str) -> Any:
    """A CSV cell, or a value typed on the command line, back to its value: an
    integer, a number in any spelling, else the YAML value, else the text."""
    try:
        return int(text)
    except ValueError:
        pass
    f = _number_text(text)
    if f is not None:
        return f
    if text.strip() in ("nan", "inf", "-inf"):
        return float(text)
    try:
        return canonical(yaml.safe_load(text))
    except yaml.YAMLError:
        return text


def match(values: list[Any], text: Any) -> list[Any]:
    """The values among ``values`` that ``text`` names exactly: the same value in
    any spelling (``1e-3`` names 0.001), or the same label (``100x100``)."""
    want = from_text(text) if isinstance(text, str) else text
    shown = text if isinstance(text, str) else label(text)
    return [v for v in values if same(v, want) or label(v) == shown]


def listing(values: list[Any]) -> str:
    """The values as every error lists them: ``0.001, 0.01``."""
    return ", ".join(label(v) for v in values)
