"""Checks of the values a model file's layer descriptions hold, one per kind
of setting, shared by the layers that declare their settings (the norms'
``OPTIONS``) and by ``spec``. Each check returns what is expected, in words,
or None when the value is fine."""

from __future__ import annotations

import math

from ..choices import CONVENTIONS

MAX_SIZE = 2**31 - 1  # any width, channel count, kernel, stride or padding


def show(value) -> str:
    """A value as an error message quotes it: its repr, cut at 40 characters."""
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def is_number(v) -> bool:
    """A finite int or float (as a float: JSON's 10**400 is an int no float holds)."""
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return False
    try:
        return math.isfinite(float(v))
    except OverflowError:
        return False


def size(v):
    return None if is_int(v) and 1 <= v <= MAX_SIZE else f"an integer from 1 to {MAX_SIZE:,}"


def padding(v):
    return None if is_int(v) and 0 <= v <= MAX_SIZE else f"an integer from 0 to {MAX_SIZE:,}"


def optional_size(v):
    return None if v is None else size(v)


def flag(v):
    return None if isinstance(v, bool) else "true or false"


def nonnegative(v):
    return None if is_number(v) and v >= 0 else "a finite number >= 0"


def momentum(v):
    return None if v is None or (is_number(v) and 0 <= v <= 1) else "null or a number in [0, 1]"


def probability(v):
    return None if is_number(v) and 0 <= v < 1 else "a number in [0, 1)"


def convention(v):
    return None if v in CONVENTIONS else " or ".join(CONVENTIONS)
