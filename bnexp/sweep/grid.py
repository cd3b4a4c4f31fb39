"""A sweep's grid: dotted config keys and their values (crossed, or zipped to
vary together) times seeds, expanded into validated points with stable run ids.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import config as cfgmod
from .. import values as V
from ..config import Config, ConfigError, show
from ..errors import BnexpError
from ..store import short_name
from ..yamlio import YamlError, parse_value

MAX_RUN_ID_BYTES = 120  # longer ids are shortened with a hash (folder names stay short)
MAX_POINTS = 100_000  # runs in one sweep (grid points x seeds)
SECTION_KEYS = ("grid", "zip", "seeds")


class SweepError(BnexpError):
    """A bad sweep request; the message has one line per problem."""


@dataclass(frozen=True)
class Point:
    run_id: str
    values: dict[str, Any]  # swept dotted key -> value
    seed: int
    config: Config


@dataclass(frozen=True)
class Sweep:
    name: str
    base: dict  # the raw config, without its sweep and report sections
    axes: list[tuple[str, list]]  # (dotted key, values), in order; zipped keys included
    seeds: list[int]
    points: list[Point] = field(default_factory=list)
    zipped: tuple[str, ...] = ()  # keys of the zip section (they vary together)
    report: dict | None = None  # the report section, kept for `bnexp report`

    @property
    def keys(self) -> list[str]:
        return [k for k, _ in self.axes]

    def resolved(self, command: list[str] | None = None) -> dict:
        """What sweep.yaml holds: the resolved base config, the axes, the seeds,
        the report section and the command that ran the sweep."""
        grid = {k: list(v) for k, v in self.axes if k not in self.zipped}
        sweep: dict[str, Any] = {"grid": grid}
        if self.zipped:
            sweep["zip"] = {k: list(v) for k, v in self.axes if k in self.zipped}
        sweep["seeds"] = list(self.seeds)
        out: dict[str, Any] = {"config": _resolved_base(self), "sweep": sweep}
        if self.report:
            out["report"] = self.report
        if command:
            out["command"] = list(command)
        return out


# --- grid values -----------------------------------------------------------------

def _generator(key: str, spec: Mapping, where: str = "grid") -> list:
    """``{logspace: [a, b, n]}`` (10**a .. 10**b), ``{linspace: [a, b, n]}``,
    ``{range: [start, stop(, step)]}`` (integers, stop excluded)."""
    if len(spec) != 1:
        raise SweepError(f"sweep.{where}.{key}: got {show(dict(spec))}, expected a list of values "
                         "or one of {logspace: [a, b, n]}, {linspace: [a, b, n]}, "
                         "{range: [start, stop, step]}")
    (kind, args), = spec.items()
    loc = f"sweep.{where}.{key}.{kind}"
    nums = args if isinstance(args, list) else None
    if kind in ("logspace", "linspace"):
        ok = (nums is not None and len(nums) == 3 and all(cfgmod._is_number(a) for a in nums)
              and all(math.isfinite(a) for a in nums)
              and isinstance(nums[2], int) and 1 <= nums[2] <= MAX_POINTS)
        if not ok:
            raise SweepError(f"{loc}: got {show(args)}, expected [start, stop, num] with "
                             f"finite numbers and num an integer from 1 to {MAX_POINTS:,}")
        a, b, n = nums
        if kind == "logspace" and max(a, b) > 300:
            raise SweepError(f"{loc}: got {show(args)}, expected exponents of 10 up to 300")
        grid = [a + (b - a) * i / (n - 1) for i in range(n)] if n > 1 else [float(a)]
        return [float(10.0 ** g) for g in grid] if kind == "logspace" else grid
    if kind == "range":
        ok = (nums is not None and len(nums) in (2, 3) and
              all(isinstance(a, int) and not isinstance(a, bool) for a in nums)
              and (len(nums) == 2 or nums[2] != 0))
        if not ok:
            raise SweepError(f"{loc}: got {show(args)}, expected [start, stop] or "
                             "[start, stop, step] of integers, step != 0")
        r = range(*nums)
        if len(r) > MAX_POINTS:
            raise SweepError(f"{loc}: got {show(args)}, which has {len(r):,} values; at most "
                             f"{MAX_POINTS:,}")
        return list(r)
    raise SweepError(f"sweep.{where}.{key}: got generator {kind!r}, expected logspace, linspace "
                     "or range")


def parse_grid_option(text: str) -> tuple[str, Any]:
    """``--grid key=v1,v2,...`` (a YAML list without its brackets, so
    ``model.hidden=[10,10],[20]`` is two values) or ``key=logspace:0,-4,16``."""
    key, sep, rest = text.partition("=")
    key = key.strip()
    if not sep or not key:
        raise SweepError(f"--grid {text}: expected key=v1,v2,... or key=logspace:a,b,n")
    for kind in ("logspace", "linspace", "range"):
        if rest.startswith(kind + ":"):
            args = _grid_list(rest[len(kind) + 1:], text)
            return key, {kind: args}
    return key, _grid_list(rest, text)


def _grid_list(items: str, text: str) -> list:
    if not items.strip():
        raise SweepError(f"--grid {text}: no values after '='")
    try:
        values = parse_value(f"[{items}]", f"--grid {text}")
    except YamlError as exc:
        first = exc.errors[0].split(": ", 1)[-1]
        raise SweepError(f"--grid {text}: {first} (values are a YAML list without its "
                         "brackets, e.g. 0.1,0.2 or [10,10],[20])") from None
    if not isinstance(values, list):  # pragma: no cover - a flow sequence always is
        raise SweepError(f"--grid {text}: expected a list of values")
    return values


# --- run ids ---------------------------------------------------------------------

def _id_value(v: Any) -> str:
    return V.label(v).replace("/", "_").replace(",", "_").replace("\0", "_")


def _labels(keys: list[str]) -> dict[str, str]:
    """The shortest unambiguous label per key: its last part, else the full key."""
    leaves = [k.rsplit(".", 1)[-1] for k in keys]
    return {k: (leaf if leaves.count(leaf) == 1 and leaf != "seed" else k)
            for k, leaf in zip(keys, leaves)}


def run_id(values: dict[str, Any], seed: int, labels: dict[str, str]) -> str:
    """Readable and stable, e.g. ``norm=batch,weight_scale=0.01,seed=0``;
    shortened with a hash when longer than MAX_RUN_ID_BYTES bytes."""
    text = ",".join(f"{labels[k]}={_id_value(v)}" for k, v in values.items()) + f",seed={seed}"
    return short_name(text.lstrip(","), MAX_RUN_ID_BYTES)


# --- building a sweep ------------------------------------------------------------

def _resolved_base(sweep: "Sweep") -> dict:
    """The base config as sweep.yaml holds it. Where ``model.arch`` is swept,
    an mlp base keeps the CNN-only keys it sets for the sweep's cnn points, as
    given (``cnn_keys_dropped`` takes them off its mlp points; each cnn
    point's config checks them)."""
    base = sweep.base
    if "model.arch" not in dict(sweep.axes):
        return cfgmod.from_dict(base).to_dict()
    out = cfgmod.from_dict(cfgmod.cnn_keys_dropped(base)).to_dict()
    model = base.get("model") if isinstance(base.get("model"), Mapping) else {}
    out["model"].update({k: model[k] for k in cfgmod.CNN_ONLY if k in model})
    return out


def build(raw: Mapping, grid_options: list[str] = (), seeds: list[int] | None = None,
          overrides: list[str] = ()) -> Sweep:
    """Expand and validate every point of the sweep described by ``raw`` (a
    config mapping with a ``sweep:`` section), ``--grid`` options, ``--seeds``
    and ``--set`` overrides. Raises SweepError listing every problem."""
    raw = dict(raw or {})
    section = raw.pop("sweep", None) or {}
    report = raw.pop("report", None)
    errors: list[str] = []
    grid = _grid_section(section, grid_options, errors)
    raw = cfgmod.apply_settings(raw, list(overrides), errors)
    grid_axes, zip_axes = _grid_and_zip_axes(grid, section.get("zip") or {}, errors)
    axes = grid_axes + zip_axes
    # Product dimensions: each grid key alone, the zipped keys together.
    dims = [[(k, v)] for k, v in grid_axes] + ([zip_axes] if zip_axes else [])
    seeds = _seeds(section, raw, seeds, errors)
    _check_size(dims, seeds, errors)  # before the report section, whose checks walk the grid
    if report is not None and not errors:
        from ..claims import validate

        errors += validate(report, axes, zipped=tuple(k for k, _ in zip_axes))
    if errors:
        raise SweepError("\n".join(errors))

    arch_swept = any(k == "model.arch" for k, _ in axes)
    fit = cfgmod.cnn_keys_dropped if arch_swept else dict  # see cnn_keys_dropped
    try:
        name = cfgmod.from_dict(fit(raw)).name
    except ConfigError as exc:
        raise SweepError(str(exc)) from None
    points = _points(raw, axes, dims, seeds, fit)
    return Sweep(name, raw, axes, list(seeds), points, tuple(k for k, _ in zip_axes), report)


def _grid_section(section: Any, grid_options: list[str], errors: list[str]) -> dict:
    """The sweep section's grid with the ``--grid`` options applied over it;
    unknown keys of the section and malformed options go to ``errors``."""
    if not isinstance(section, Mapping):
        raise SweepError(f"sweep: got {show(section)}, expected a mapping with grid and seeds")
    for key in section:
        if key not in SECTION_KEYS:
            errors.append(f"sweep.{key}: unknown key (expected grid, zip or seeds)")
    grid = section.get("grid") or {}
    if not isinstance(grid, Mapping):
        raise SweepError(f"sweep.grid: got {show(grid)}, expected a mapping of dotted keys to "
                         "values")
    grid = dict(grid)
    for text in grid_options:
        try:
            key, values = parse_grid_option(text)
        except SweepError as exc:
            errors.append(str(exc))
            continue
        grid[key] = values
    return grid


def _grid_and_zip_axes(grid: Mapping, zipped: Any, errors: list[str]
                       ) -> tuple[list[tuple[str, list]], list[tuple[str, list]]]:
    """The validated axes of the grid and of the zip section; zipped keys must
    be outside the grid, their lists equally long, each combination given once."""
    if not isinstance(zipped, Mapping):
        raise SweepError(f"sweep.zip: got {show(zipped)}, expected a mapping of dotted keys to "
                         "equally long value lists")
    grid_axes = _axes(grid, "grid", errors)
    zip_axes = _axes(zipped, "zip", errors)
    for key, _ in zip_axes:
        if key in dict(grid_axes):
            errors.append(f"sweep.zip.{key}: also in sweep.grid; a key can be in one of them")
    lengths = {len(v) for _, v in zip_axes}
    if len(lengths) > 1:
        errors.append("sweep.zip: got lists of lengths "
                      f"{', '.join(f'{k}={len(v)}' for k, v in zip_axes)}, expected equal lengths "
                      "(the i-th values of every zipped key go together)")
    if len(lengths) == 1:
        tuples = [tuple(v[i] for _, v in zip_axes) for i in range(lengths.pop())]
        repeats = _repeats(tuples, tuples)
        if repeats:
            errors.append(f"sweep.zip: the values at one position, {repeats}; give each "
                          "combination once")
    return grid_axes, zip_axes


def _seeds(section: Mapping, raw: Mapping, seeds: list[int] | None, errors: list[str]) -> list:
    """The seeds to run: ``--seeds``, else the section's, else the config's
    one seed; ``[]`` where they are not distinct integers >= 0."""
    if seeds is None:
        seeds = section.get("seeds", [raw.get("seed", 0)])
    if (not isinstance(seeds, list) or not seeds or
            any(isinstance(s, bool) or not isinstance(s, int) or s < 0 for s in seeds)):
        errors.append(f"sweep.seeds: got {show(seeds)}, expected a list of integers >= 0")
        return []
    if len(set(seeds)) != len(seeds):
        errors.append(f"sweep.seeds: got {show(seeds)}, expected no repeats")
    return seeds


def _check_size(dims: list[list[tuple[str, list]]], seeds: list, errors: list[str]) -> None:
    """At most MAX_POINTS runs: the grid's values multiplied out, times the seeds."""
    total = math.prod(len(dim[0][1]) for dim in dims) * max(len(seeds), 1)
    if total > MAX_POINTS:
        errors.append(f"sweep: {total:,} runs ({' x '.join(str(len(d[0][1])) for d in dims)} "
                      f"grid values x {len(seeds)} seeds); at most {MAX_POINTS:,} in one sweep")


def _points(raw: dict, axes: list[tuple[str, list]], dims: list[list[tuple[str, list]]],
            seeds: list[int], fit) -> list[Point]:
    """Every combination of the grid's values, for every seed, as a validated
    config under its run id; SweepError listing the first 20 problems."""
    labels = _labels([k for k, _ in axes])
    points, seen, errors = [], {}, []
    for combo in itertools.product(*[range(len(dim[0][1])) for dim in dims]):
        values = {k: vals[i] for dim, i in zip(dims, combo) for k, vals in dim}
        values = {k: values[k] for k, _ in axes}  # in axis order
        for seed in seeds:
            rid = run_id(values, seed, labels)
            point_raw = cfgmod.apply_overrides(raw, [*values.items(), ("seed", seed),
                                                     ("name", rid)])
            try:
                cfg = cfgmod.from_dict(fit(point_raw))
            except ConfigError as exc:
                errors += [f"{rid}: {e}" for e in exc.errors]
                continue
            if rid in seen:
                errors.append(f"{rid}: two grid points share this run id "
                              f"({show(seen[rid])} and {show(values)}); make the values distinct")
            seen[rid] = values
            points.append(Point(rid, values, seed, cfg))
    if errors:
        shown = errors[:20] + ([f"... and {len(errors) - 20} more"] if len(errors) > 20 else [])
        raise SweepError("\n".join(shown))
    return points


def _axes(section: Mapping, where: str, errors: list[str]) -> list[tuple[str, list]]:
    """Validated (key, values) pairs of a grid or zip section."""
    known = set(cfgmod.all_keys())
    axes = []
    for key, spec in section.items():
        key = str(key)
        if key == "seed":
            errors.append(f"sweep.{where}.seed: seeds are their own axis; use sweep.seeds or "
                          "--seeds")
            continue
        if key not in known:
            errors.append(cfgmod.unknown_key(key).replace(f"{key}:", f"sweep.{where}.{key}:", 1))
            continue
        try:
            values = _generator(key, spec, where) if isinstance(spec, Mapping) else spec
        except SweepError as exc:
            errors.append(str(exc))
            continue
        if not isinstance(values, list) or not values:
            errors.append(f"sweep.{where}.{key}: got {show(values)}, expected a non-empty list")
            continue
        if len(values) > MAX_POINTS:
            errors.append(f"sweep.{where}.{key}: {len(values):,} values; at most {MAX_POINTS:,}")
            continue
        typed = [_typed(key, v) for v in values]
        repeats = None if where == "zip" else _repeats(values, typed)  # zip: tuples, below
        if repeats:
            errors.append(f"sweep.{where}.{key}: {repeats}; give each value once")
            continue
        values = typed
        axes.append((key, values))
    return axes


def _typed(key: str, value: Any) -> Any:
    """A grid value in the form the config holds it, so that every spelling of
    one value is one value: ``1e-3`` (text to YAML 1.1) and 0.001 are the float
    0.001, and 1 is 1.0 where the key takes a number (text stays text where the
    key takes text). A value the key refuses is kept as typed, for the config's
    own error."""
    typed, problem = cfgmod.coerce(key, value)
    return value if problem else typed


def _repeats(raw: list, typed: list) -> str | None:
    """``1e-3 and 0.001 are one value (0.001)`` for the first repeat, else None."""
    first: dict[tuple, int] = {}
    for i, v in enumerate(typed):
        j = first.setdefault(V.identity(v), i)
        if j != i:
            a, b = (x if isinstance(x, str) else show(x) for x in (raw[j], raw[i]))
            return (f"{a} is given twice" if a == b else
                    f"{a} and {b} are one value ({V.label(v)})")
    return None


def load(path: str | Path, grid_options=(), seeds=None, overrides=()) -> Sweep:
    raw = cfgmod.read_config_file(path)
    return build(raw, list(grid_options), seeds, list(overrides))


def dry_run_rows(sweep: Sweep) -> tuple[list[str], list[list[str]]]:
    """Header and one row per run (run_id, each swept value, seed) for --dry-run."""
    keys = sweep.keys
    rows = [[p.run_id, *[V.label(p.values[k]) for k in keys], str(p.seed)]
            for p in sweep.points]
    return ["run_id", *keys, "seed"], rows
