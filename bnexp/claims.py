"""Claims as checks: what a config's ``report:`` section asserts, evaluated
on a sweep's runs with intervals over seeds, and the verdict computed from
them. Nothing here is written by hand at report time.

A check is one statistic of one metric over the runs, with its 95% interval,
compared with a criterion::

    checks:
      - text: "BN's test accuracy at batch 2 is below its accuracy at batch 32"
        difference: final_test_acc                 # mean(a) - mean(b), Welch interval
        a: {model.norm: batch, train.batch_size: 2}
        b: {model.norm: batch, train.batch_size: 32}
        below: -0.1                                # or above: X, or within: X (|stat| <= X)
        expect: holds                              # the published outcome (none: a new check)

Statistics (``where`` fixes swept keys; every swept key must end up fixed),
each with the interval that fits its metric (``metrics.kind``, ``mean_of``):

- ``mean: METRIC`` at one grid point: Student-t interval within the metric's
  range (Clopper-Pearson for the 0/1 outcome ``diverged``).
- ``difference: METRIC`` between selections ``a`` and ``b``: Welch interval
  (Newcombe's for ``diverged``). Losses and other measurements leave diverged
  runs out, and the interval says how many (``Interval.dropped``).
- ``spread: METRIC`` ``across: KEY``: the largest minus the smallest mean over
  KEY's values; interval from the per-value intervals (max hi - min lo, and
  max lo - min hi, floored at 0).
- ``count: METRIC`` ``across: KEY`` with ``at_least: T`` (or ``at_most: T``):
  how many of KEY's values have a mean meeting T; interval from how many
  surely do (the whole interval meets T) and how many may.
- ``each: KEY`` on ``mean`` and ``difference``: the check must hold at every
  value of KEY (it fails if it fails at any; it is inconclusive otherwise).

Where several intervals combine (``spread``, ``count``, ``each``), each is
taken at level 1 - 0.05/K for K values (Bonferroni), so the combination
keeps 95% coverage.

A check holds when its whole interval meets the criterion, does not hold
when its whole interval misses it, and is inconclusive otherwise. The verdict
of a claim: holds (every check holds), does not hold (every check does not),
partly holds (some hold, some do not), inconclusive (the rest).

Metrics: the summary metrics (``final_test_acc``, ...), ``diverged`` (1 for a
run that diverged, else 0), ``METRIC@E`` (``test_acc@1``: train/test
accuracy or loss after epoch E), and ``input_spread_growth`` (the last hidden
layer's unit-0 input, 15-85th percentile spread at the last recorded step
over the first; needs diagnostics), ``input_drift`` (the mean step-to-step
move of that input's median over its mean spread; needs diagnostics),
``generalization_gap`` (final train accuracy minus final test accuracy), and
``loss_range`` and ``beta_smoothness`` (Santurkar et al.'s loss landscape and
effective smoothness along the gradient; need eval.landscape_every), and
``ics_l2`` and ``ics_cosine`` (their internal covariate shift, averaged over
layers and steps; need eval.ics_every), and ``variance_shift`` (Li et al.
2019: BN's input variance after dropout, train mode over eval mode; runs with
dropout record it), and ``step_ms`` (the run's mean wall time per training
step, in milliseconds: a timing, so it varies with the machine and its load).
"""

from __future__ import annotations

import math
import re
import string
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from . import values as V
from .choices import EPOCH_METRICS, SUMMARY_METRICS
from .errors import BnexpError
from .figures import BANDS, FIGURE_KEYS
from .metrics import kind as metric_kind
from .stats import (
    LEVEL,
    Interval,
    mean_interval,
    proportion_difference,
    proportion_interval,
    welch_interval,
)
from .store import FINISHED, RunRecord, StoreError

EXTRA_METRICS = ("diverged", "input_spread_growth", "input_drift", "generalization_gap",
                 "loss_range", "grad_predictiveness", "beta_smoothness", "ics_l2",
                 "ics_cosine", "variance_shift", "step_ms")
STATS = ("mean", "difference", "spread", "count")
COMPARISONS = ("above", "below", "within")
OUTCOMES = ("holds", "does not hold", "inconclusive")
VERDICTS = ("holds", "partly holds", "does not hold", "inconclusive")
CHECK_KEYS = ("text", "id", *STATS, "where", "a", "b", "each", "across", "at_least", "at_most",
              *COMPARISONS, "expect")
REPORT_KEYS = ("title", "source", "claim", "checks", "values", "notes", "metrics", "figures")


class ClaimError(BnexpError):
    """A report section that cannot be evaluated; one line per problem."""

    def __init__(self, errors: list[str]) -> None:
        self.errors = list(errors)
        super().__init__("\n".join(self.errors))


# --- numbers as the page shows them ------------------------------------------------

def fmt(x: float) -> str:
    """A number as reports print it: integers plainly, else 3 decimals (3
    significant digits below 0.01 or above 10)."""
    if isinstance(x, float) and not math.isfinite(x):
        return "-inf" if x < 0 else "inf" if x > 0 else "nan"
    if float(x).is_integer() and abs(x) < 1e6:
        return str(int(x))
    if 0.01 <= abs(x) < 10:
        return f"{x:.3f}"
    return f"{x:.3g}"


def fmt_interval(iv: Interval) -> str:
    """``0.959 [0.912, 1]``; ``(n = 3, 2 diverged left out)`` where runs were left out."""
    left_out = f", {iv.dropped} diverged left out" if iv.dropped else ""
    if iv.n == 0:
        return f"- (all {iv.dropped} runs diverged)" if iv.dropped else "- (no runs)"
    if math.isinf(iv.lo) and math.isinf(iv.hi):
        return f"{fmt(iv.estimate)} (no interval: n = {iv.n}{left_out})"
    text = f"{fmt(iv.estimate)} [{fmt(iv.lo)}, {fmt(iv.hi)}]"
    return text + (f" (n = {iv.n}{left_out})" if left_out else "")


# --- per-run values ----------------------------------------------------------------

def metric_names() -> str:
    return ", ".join([*SUMMARY_METRICS, *EXTRA_METRICS, "train_acc@E", "test_acc@E",
                      "train_loss@E", "test_loss@E"])


def valid_metric(name: Any) -> bool:
    if not isinstance(name, str):
        return False
    if name in SUMMARY_METRICS or name in EXTRA_METRICS:
        return True
    base, sep, epoch = name.partition("@")
    return bool(sep) and base in EPOCH_METRICS and epoch.isdigit()


def run_value(run: RunRecord, metric: str) -> float | None:
    """One finished run's value of ``metric`` (None where it has none)."""
    info = run.info
    if run.status not in FINISHED:
        return None
    if metric == "diverged":
        return 1.0 if run.status == "diverged" else 0.0
    if metric == "input_spread_growth":
        return _spread_growth(run)
    if metric == "input_drift":
        return _drift(run)
    if metric in ("loss_range", "grad_predictiveness", "beta_smoothness"):
        return _landscape(run, metric)
    if metric == "step_ms":  # mean wall time of a training step, recorded in run.json
        value = info.get("step_seconds")
        return None if value is None else 1000.0 * float(value)
    if metric == "variance_shift":  # recorded in run.json by runs with dropout
        value = info.get("variance_shift")
        return None if value is None else float(value)
    if metric in ("ics_l2", "ics_cosine"):
        return _ics(run, metric.removeprefix("ics_"))
    if metric == "generalization_gap":  # final train minus final test accuracy
        final = run.final
        if final["final_train_acc"] is None or final["final_test_acc"] is None:
            return None
        return float(final["final_train_acc"]) - float(final["final_test_acc"])
    if "@" in metric:
        base, _, epoch = metric.partition("@")
        rows = [r for r in run.metrics if r["epoch"] == int(epoch)]
        return float(rows[0][base]) if rows else None
    value = run.final[metric]
    return None if value is None else float(value)


def _last_unit(run: RunRecord) -> list[dict] | None:
    """The last hidden layer's unit-0 diagnostics rows, by step (None without any)."""
    rows = run.table("diagnostics")
    if not rows:
        return None
    last_layer = max(r["layer"] for r in rows)
    return sorted((r for r in rows if r["layer"] == last_layer), key=lambda r: r["step"])


def _spread_growth(run: RunRecord) -> float | None:
    unit = _last_unit(run)
    if unit is None:
        return None
    first = unit[0]["unit_p85"] - unit[0]["unit_p15"]
    last = unit[-1]["unit_p85"] - unit[-1]["unit_p15"]
    return last / first if first > 0 else None


def _landscape(run: RunRecord, metric: str) -> float | None:
    """From landscape.csv (eval.landscape_every), averaged over the probed steps:
    ``loss_range``, the largest minus the smallest loss along the gradient over
    the probe's step sizes; ``grad_predictiveness``, the largest change of the
    gradient there relative to the gradient, ||grad(theta - eta g) - g|| / ||g||
    (smaller: the gradient predicts better where a step will land);
    ``beta_smoothness``, the largest gradient change per unit of distance
    moved, ||grad(theta - eta g) - g|| / (eta ||g||). Non-finite probes (a step
    size that diverges) are left out."""
    rows = run.table("landscape")
    if rows is None:
        return None
    by_step: dict[int, list[dict]] = {}
    for r in rows:
        if math.isfinite(r["loss"]) and math.isfinite(r["grad_change"]):
            by_step.setdefault(r["step"], []).append(r)
    values = []
    for rows in by_step.values():
        if metric == "loss_range":
            values.append(max(r["loss"] for r in rows) - min(r["loss"] for r in rows))
        elif rows[0]["grad_norm"] > 0:
            scale = (lambda r: r["eta"]) if metric == "beta_smoothness" else (lambda r: 1.0)
            values.append(max(r["grad_change"] / (scale(r) * r["grad_norm"]) for r in rows))
    return sum(values) / len(values) if values else None


def _ics(run: RunRecord, column: str) -> float | None:
    """From ics.csv (eval.ics_every): the mean over measured steps and over every
    weight layer but the first (whose ICS is zero by definition) of ||G - G'|| /
    ||G|| (``l2``) or cos(G, G') (``cosine``)."""
    rows = run.table("ics")
    if rows is None:
        return None
    values = [r[column] for r in rows if r["layer"] > 1 and math.isfinite(r[column])]
    return sum(values) / len(values) if values else None


def _drift(run: RunRecord) -> float | None:
    """How far the last hidden layer's unit-0 input distribution moves between
    recorded steps: the mean absolute change of its median, over the mean
    15-85th percentile spread."""
    unit = _last_unit(run)
    if unit is None or len(unit) < 2:
        return None
    moves = [abs(b["unit_p50"] - a["unit_p50"]) for a, b in zip(unit, unit[1:])]
    spread = sum(r["unit_p85"] - r["unit_p15"] for r in unit) / len(unit)
    return (sum(moves) / len(moves)) / spread if spread > 0 else None


# --- selections --------------------------------------------------------------------

@dataclass
class Table:
    """A sweep's runs grouped by grid point, for evaluating checks."""

    axes: list[tuple[str, list]]
    zipped: tuple[str, ...]
    runs: list[RunRecord]
    _cache: dict = field(default_factory=dict)

    @classmethod
    def skeleton(cls, axes: list[tuple[str, list]], zipped: tuple[str, ...]) -> Table:
        """A table with one run-less point per grid point (zipped keys varying
        together): selections can be checked before anything has run."""
        import itertools

        grid = [(k, v) for k, v in axes if k not in zipped]
        zips = [(k, v) for k, v in axes if k in zipped]
        dims = [[((k, x),) for x in v] for k, v in grid]
        if zips:
            dims.append([tuple((k, v[i]) for k, v in zips) for i in range(len(zips[0][1]))])
        runs = [RunRecord(f"point{i}", Path("."), dict(kv for part in combo for kv in part), 0, {})
                for i, combo in enumerate(itertools.product(*dims))]
        return cls(axes, zipped, runs)

    def keys(self) -> list[str]:
        return [k for k, _ in self.axes]

    def axis(self, key: str) -> list:
        return dict(self.axes)[key]

    def resolve(self, selection: Mapping, where: str) -> dict[str, str]:
        """``{key: value in any spelling}`` -> ``{key: label}``, each value matched
        exactly against the key's values in the sweep (``1e-3`` names 0.001)."""
        out = {}
        for key, value in (selection or {}).items():
            key = str(key)
            if key not in self.keys():
                raise ClaimError([f"{where}.{key}: not a swept key (swept: "
                                  f"{', '.join(self.keys())})"])
            hits = V.match(self.axis(key), value)
            if not hits:
                raise ClaimError([f"{where}.{key}: {V.label(value)} is not a value of the sweep "
                                  f"(values: {V.listing(self.axis(key))})"])
            out[key] = V.label(hits[0])
        return out

    def points(self, fixed: dict[str, str]) -> dict[tuple, list[RunRecord]]:
        """Grid points (label tuples over every key) matching ``fixed``, with their runs."""
        groups: dict[tuple, list[RunRecord]] = {}
        for r in self.runs:
            labels = r.labels
            if all(labels[k] == v for k, v in fixed.items()):
                groups.setdefault(tuple(labels[k] for k in self.keys()), []).append(r)
        return groups

    def values(self, runs: list[RunRecord], metric: str) -> tuple[list[float], int]:
        """The finished runs' values of ``metric``, and how many diverged runs
        were left out because the metric is not theirs (``metrics.kind``)."""
        out, dropped = [], 0
        keep_diverged = metric_kind(metric).with_diverged
        for r in runs:
            if r.status == "diverged" and not keep_diverged:
                dropped += 1
                continue
            key = (r.run_id, metric)
            if key not in self._cache:
                self._cache[key] = run_value(r, metric)
            if self._cache[key] is not None and math.isfinite(self._cache[key]):
                out.append(self._cache[key])
        return out, dropped

    def interval(self, runs: list[RunRecord], metric: str, level: float = LEVEL) -> Interval:
        """The interval of ``metric``'s mean over ``runs`` that fits the metric."""
        vals, dropped = self.values(runs, metric)
        return replace(mean_of(vals, metric, level), dropped=dropped)

    def difference(self, a: list[RunRecord], b: list[RunRecord], metric: str,
                   level: float = LEVEL) -> Interval:
        (va, da), (vb, db) = self.values(a, metric), self.values(b, metric)
        mk = metric_kind(metric)
        iv = (proportion_difference(va, vb, level) if mk.binary else
              welch_interval(va, vb, level, mk.bounds))
        return replace(iv, dropped=da + db)

    def one_point(self, fixed: dict[str, str], where: str) -> list[RunRecord]:
        """The runs of the single grid point ``fixed`` names."""
        groups = self.points(fixed)
        if len(groups) == 1:
            return next(iter(groups.values()))
        if not groups:
            raise ClaimError([f"{where}: no runs at {_show(fixed)}"])
        free = [k for i, k in enumerate(self.keys())
                if len({g[i] for g in groups}) > 1]
        raise ClaimError([f"{where}: {_show(fixed) or 'the selection'} leaves "
                          f"{', '.join(free)} free; fix {'it' if len(free) == 1 else 'them'} "
                          "(in where, a/b, each or across)"])

    def labels_of(self, key: str, fixed: dict[str, str]) -> list[str]:
        """KEY's values (labels, in grid order) among the points matching ``fixed``."""
        i = self.keys().index(key)
        present = {g[i] for g in self.points(fixed)}
        return [V.label(v) for v in self.axis(key) if V.label(v) in present]


def mean_of(values: list[float], metric: str, level: float = LEVEL) -> Interval:
    """The interval for the mean of ``metric``'s values that fits the metric: exact
    binomial for a 0/1 outcome, else Student's t within the metric's range."""
    mk = metric_kind(metric)
    if mk.binary:
        return proportion_interval(values, level)
    return mean_interval(values, level, mk.bounds)


def _show(fixed: Mapping) -> str:
    return ", ".join(f"{k}={v}" for k, v in fixed.items())


# --- checks ------------------------------------------------------------------------

@dataclass
class CheckResult:
    text: str
    id: str | None
    stat: str
    metric: str
    interval: Interval
    criterion: str  # "above 0.8", ...
    outcome: str  # holds | does not hold | inconclusive
    expect: str | None  # the published outcome; None: a new check, never published
    detail: str = ""  # where the interval comes from (the worst point for ``each``)

    @property
    def changed(self) -> bool:
        """Published with another outcome than it has on these runs (either way)."""
        return self.expect is not None and self.outcome != self.expect

    @property
    def statistic(self) -> str:
        """What the interval is of, as a page shows it: ``final of test_acc``,
        with where it comes from when that is one point of several."""
        return f"{self.stat} of {self.metric}" + (f" ({self.detail})" if self.detail else "")

    @property
    def shown(self) -> str:
        """The outcome as a page shows it: ``holds``, ``inconclusive (published:
        holds)``, ``holds (new)``."""
        if self.expect is None:
            return f"{self.outcome} (new)"
        return f"{self.outcome} (published: {self.expect})" if self.changed else self.outcome


def _stat_key(spec: Mapping) -> str:
    (stat,) = [k for k in STATS if k in spec]
    return stat


def _compare(iv: Interval, spec: Mapping) -> tuple[str, str]:
    """(criterion text, outcome) of an interval against the spec's comparison."""
    (how,) = [k for k in COMPARISONS if k in spec]
    x = float(spec[how])
    if how == "above":
        return f"above {fmt(x)}", ("holds" if iv.lo > x else
                                   "does not hold" if iv.hi <= x else "inconclusive")
    if how == "below":
        return f"below {fmt(x)}", ("holds" if iv.hi < x else
                                   "does not hold" if iv.lo >= x else "inconclusive")
    return f"within ±{fmt(x)}", ("holds" if -x <= iv.lo and iv.hi <= x else
                                 "does not hold" if iv.lo > x or iv.hi < -x else "inconclusive")


def _level(k: int) -> float:
    """The per-interval level that keeps 95% over ``k`` intervals (Bonferroni)."""
    return 1.0 - (1.0 - LEVEL) / max(k, 1)


def _single(table: Table, spec: Mapping, fixed: dict[str, str], where: str,
            level: float) -> tuple[Interval, str]:
    """The interval of a mean or difference at the selection ``fixed``."""
    stat, metric = _stat_key(spec), spec[_stat_key(spec)]
    if stat == "mean":
        runs = table.one_point(fixed, where)
        return table.interval(runs, metric, level), _show(fixed)
    a = {**fixed, **table.resolve(spec.get("a"), f"{where}.a")}
    b = {**fixed, **table.resolve(spec.get("b"), f"{where}.b")}
    ra, rb = table.one_point(a, f"{where}.a"), table.one_point(b, f"{where}.b")
    iv = table.difference(ra, rb, metric, level)
    return iv, f"{_show(a)} minus {_show(b)}"


def statistic(table: Table, spec: Mapping, where: str, level: float = LEVEL
              ) -> tuple[Interval, str]:
    """The interval of a check's or value's statistic (``each`` aside)."""
    stat, metric = _stat_key(spec), spec[_stat_key(spec)]
    fixed = table.resolve(spec.get("where"), f"{where}.where")
    if stat in ("mean", "difference"):
        return _single(table, spec, fixed, where, level)
    key = spec["across"]
    labels = table.labels_of(key, fixed)
    if not labels:
        raise ClaimError([f"{where}: no runs at {_show(fixed)}"])
    lvl = _level(len(labels))
    ivs = [table.interval(table.one_point({**fixed, key: lab}, where), metric, lvl)
           for lab in labels]
    if stat == "spread":
        est = max(iv.estimate for iv in ivs) - min(iv.estimate for iv in ivs)
        hi = max(iv.hi for iv in ivs) - min(iv.lo for iv in ivs)
        lo = max(0.0, max(iv.lo for iv in ivs) - min(iv.hi for iv in ivs))
        return Interval(est, lo, hi, min(iv.n for iv in ivs)), f"{key} over {len(labels)} values"
    if "at_least" in spec:
        t = float(spec["at_least"])
        est = sum(iv.estimate >= t for iv in ivs)
        lo, hi = sum(iv.lo >= t for iv in ivs), sum(iv.hi >= t for iv in ivs)
    else:
        t = float(spec["at_most"])
        est = sum(iv.estimate <= t for iv in ivs)
        lo, hi = sum(iv.hi <= t for iv in ivs), sum(iv.lo <= t for iv in ivs)
    hits = [lab for lab, iv in zip(labels, ivs) if (iv.estimate >= t if "at_least"
                                                             in spec else iv.estimate <= t)]
    return (Interval(float(est), float(lo), float(hi), min(iv.n for iv in ivs)),
            f"of {len(labels)} {key} values: {', '.join(hits) or 'none'}")


def evaluate_check(table: Table, spec: Mapping, where: str) -> CheckResult:
    stat, metric = _stat_key(spec), spec[_stat_key(spec)]
    expect = spec.get("expect")
    if "each" not in spec:
        iv, detail = statistic(table, spec, where)
        criterion, outcome = _compare(iv, spec)
        return CheckResult(spec.get("text", ""), spec.get("id"), stat, metric, iv, criterion,
                           outcome, expect, detail)
    key = spec["each"]
    fixed = table.resolve(spec.get("where"), f"{where}.where")
    labels = table.labels_of(key, fixed)
    if not labels:
        raise ClaimError([f"{where}: no runs at {_show(fixed)}"])
    lvl = _level(len(labels))
    results = []
    for lab in labels:
        iv, detail = _single(table, spec, {**fixed, key: lab}, where, lvl)
        criterion, outcome = _compare(iv, spec)
        results.append((iv, f"{key}={lab}: {detail}", outcome))
    outcomes = [o for _, _, o in results]
    outcome = ("does not hold" if "does not hold" in outcomes else
               "holds" if all(o == "holds" for o in outcomes) else "inconclusive")
    # The evidence shown: the first point that decides the outcome, else the weakest.
    order = {"does not hold": 0, "inconclusive": 1, "holds": 2}
    iv, detail, _ = min(results, key=lambda r: (order[r[2]], _margin(r[0], spec)))
    return CheckResult(spec.get("text", ""), spec.get("id"), stat, metric, iv, criterion,
                       outcome, expect, f"at each {key} ({len(labels)}); shown: {detail}")


def _margin(iv: Interval, spec: Mapping) -> float:
    """How far an interval clears its criterion (smaller = weaker)."""
    if "above" in spec:
        return iv.lo - float(spec["above"])
    if "below" in spec:
        return float(spec["below"]) - iv.hi
    return float(spec["within"]) - max(abs(iv.lo), abs(iv.hi))


def verdict(results: list[CheckResult]) -> str:
    outcomes = [r.outcome for r in results]
    held, failed = outcomes.count("holds"), outcomes.count("does not hold")
    if not outcomes:
        return "inconclusive"
    if held == len(outcomes):
        return "holds"
    if failed == len(outcomes):
        return "does not hold"
    if held and failed:
        return "partly holds"
    return "inconclusive"


@dataclass
class ClaimResult:
    checks: list[CheckResult]
    values: dict[str, Interval]
    verdict: str
    notes: str | None  # the interpretation with its placeholders filled in

    @property
    def tally(self) -> str:
        """How many checks hold, in words: ``2 of 3 checks hold``."""
        n = len(self.checks)
        held = sum(c.outcome == "holds" for c in self.checks)
        return f"{held} of {n} {'checks hold' if n > 1 else 'check holds'}"

    def changes(self) -> list[CheckResult]:
        """Checks whose outcome on these runs differs from the published one."""
        return [c for c in self.checks if c.changed]


def evaluate(report: Mapping, table: Table) -> ClaimResult | None:
    """Evaluate a validated report section on ``table``; None without checks."""
    checks = report.get("checks") or []
    if not checks:
        return None
    results = [evaluate_check(table, spec, f"report.checks[{i}]") for i, spec in enumerate(checks)]
    named: dict[str, Interval] = {}
    for name, spec in (report.get("values") or {}).items():
        named[name] = statistic(table, spec, f"report.values.{name}")[0]
    for r in results:
        if r.id:
            named[r.id] = r.interval
    notes = report.get("notes")
    return ClaimResult(results, named, verdict(results),
                       fill(notes, named) if notes else None)


def fill(text: str, named: Mapping[str, Interval]) -> str:
    """Replace ``{name}`` by the value with its interval, ``{name.estimate}``,
    ``{name.lo}``, ``{name.hi}`` and ``{name.n}`` by those numbers."""
    def one(m: re.Match) -> str:
        name, _, part = m.group(1).partition(".")
        iv = named[name]
        if not part:
            return fmt_interval(iv)
        return str(iv.n) if part == "n" else fmt(getattr(iv, part))
    return re.sub(r"\{([A-Za-z_][A-Za-z0-9_]*(?:\.(?:estimate|lo|hi|n))?)\}", one, text)


# --- validation --------------------------------------------------------------------

def _placeholders(text: str) -> list[str]:
    names = []
    for _, field_name, _, _ in string.Formatter().parse(text):
        if field_name:
            names.append(field_name.split(".")[0])
    return names


def _check_stat_spec(spec: Any, where: str, keys: list[str], errors: list[str],
                     is_check: bool) -> None:
    if not isinstance(spec, Mapping):
        errors.append(f"{where}: expected a mapping (e.g. {{mean: final_test_acc, where: "
                      "{...}, above: 0.9})")
        return
    allowed = CHECK_KEYS if is_check else (*STATS, "where", "a", "b", "across", "at_least",
                                            "at_most")
    for k in spec:
        if k not in allowed:
            errors.append(f"{where}.{k}: unknown key (expected {', '.join(allowed)})")
    stats = [k for k in STATS if k in spec]
    if len(stats) != 1:
        errors.append(f"{where}: expected exactly one statistic of {', '.join(STATS)}")
        return
    stat = stats[0]
    if not valid_metric(spec[stat]):
        errors.append(f"{where}.{stat}: got {spec[stat]!r}, expected a metric: {metric_names()}")
    for sel in ("where", "a", "b"):
        if sel in spec and not isinstance(spec[sel], Mapping):
            errors.append(f"{where}.{sel}: expected a mapping of swept keys to values")
    if stat == "difference" and not ("a" in spec and "b" in spec):
        errors.append(f"{where}: difference needs a and b (the two selections)")
    if stat != "difference" and ("a" in spec or "b" in spec):
        errors.append(f"{where}: a and b belong to difference")
    for axis_key in ("each", "across"):
        if axis_key in spec and spec[axis_key] not in keys:
            errors.append(f"{where}.{axis_key}: got {spec[axis_key]!r}, expected a swept key "
                          f"({', '.join(keys)})")
    if stat in ("spread", "count") and "across" not in spec:
        errors.append(f"{where}: {stat} needs across: KEY (the swept key it runs over)")
    if stat in ("mean", "difference") and "across" in spec:
        errors.append(f"{where}: across belongs to spread and count (use each: KEY for "
                      "'at every value')")
    if "each" in spec and stat not in ("mean", "difference"):
        errors.append(f"{where}: each belongs to mean and difference")
    thresholds = [k for k in ("at_least", "at_most") if k in spec]
    if stat == "count" and len(thresholds) != 1:
        errors.append(f"{where}: count needs one of at_least: T or at_most: T")
    if stat != "count" and thresholds:
        errors.append(f"{where}: {thresholds[0]} belongs to count")
    for k in (*thresholds, *[c for c in COMPARISONS if c in spec]):
        v = spec[k]
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            errors.append(f"{where}.{k}: got {v!r}, expected a finite number")
    if is_check:
        comps = [c for c in COMPARISONS if c in spec]
        if len(comps) != 1:
            errors.append(f"{where}: expected exactly one of above: X, below: X, within: X")
        if not isinstance(spec.get("text"), str) or not spec.get("text", "").strip():
            errors.append(f"{where}.text: expected the statement this check tests")
        if spec.get("expect") is not None and spec["expect"] not in OUTCOMES:
            errors.append(f"{where}.expect: got {spec.get('expect')!r}, expected one of "
                          f"{', '.join(OUTCOMES)}")
        if "id" in spec and not (isinstance(spec["id"], str) and spec["id"].isidentifier()):
            errors.append(f"{where}.id: got {spec['id']!r}, expected a name like bn_small")


def validate(report: Any, axes: list[tuple[str, list]], table: Table | None = None,
             zipped: tuple[str, ...] = ()) -> list[str]:
    """Every problem in a ``report:`` section, one line each (empty: none).
    Selections are checked against the grid (``axes``, ``zipped``); with
    ``table`` (the runs), every statistic is computed as well."""
    if report is None:
        return []
    if not isinstance(report, Mapping):
        return [f"report: got {V.label(report)}, expected a mapping of keys "
                f"({', '.join(REPORT_KEYS)})"]
    keys = [k for k, _ in axes]
    errors = _section_errors(report)
    errors += _statistic_errors(report, keys)
    errors += _metrics_errors(report.get("metrics", []))
    errors += _figures_errors(report.get("figures", []), keys)
    if not errors:
        errors += _check_selections(report, table or Table.skeleton(axes, zipped))
    return errors


def _section_errors(report: Mapping) -> list[str]:
    """Keys the section may not have, and text that is not text."""
    errors = []
    for k in report:
        if k == "verdict":
            errors.append("report.verdict: the verdict is computed from report.checks; put an "
                          "interpretation in report.notes")
        elif k == "command":
            errors.append("report.command: the command is recorded when the sweep runs; "
                          "remove it")
        elif k not in REPORT_KEYS:
            errors.append(f"report.{k}: unknown key (expected {', '.join(REPORT_KEYS)})")
    for k in ("title", "source", "claim", "notes"):
        if k in report and not isinstance(report[k], str):
            errors.append(f"report.{k}: expected text")
    return errors


def _statistic_errors(report: Mapping, keys: list[str]) -> list[str]:
    """The checks and named values, each a statistic over swept ``keys``; their
    names, once each; the names the notes fill in."""
    errors: list[str] = []
    checks = report.get("checks", [])
    if not isinstance(checks, list):
        errors.append("report.checks: expected a list of checks")
        checks = []
    for i, spec in enumerate(checks):
        _check_stat_spec(spec, f"report.checks[{i}]", keys, errors, True)
    named = report.get("values", {})
    if not isinstance(named, Mapping):
        errors.append("report.values: expected a mapping of names to statistics")
        named = {}
    for name, spec in named.items():
        if not (isinstance(name, str) and name.isidentifier()):
            errors.append(f"report.values.{name}: expected a name like bn_small")
        _check_stat_spec(spec, f"report.values.{name}", keys, errors, False)
    ids = [c.get("id") for c in checks if isinstance(c, Mapping) and c.get("id")]
    dupes = {x for x in ids if ids.count(x) > 1} | (set(ids) & set(named))
    for d in sorted(dupes):
        errors.append(f"report: {d}: named twice (check ids and values share one namespace)")
    if isinstance(report.get("notes"), str):
        try:
            used = _placeholders(report["notes"])
        except ValueError as exc:
            errors.append(f"report.notes: bad placeholder ({exc}); write {{name}} or "
                          "{name.estimate}, and {{ }} for braces")
            used = []
        for name in used:
            if name not in named and name not in ids:
                errors.append(f"report.notes: {{{name}}} names no check id or value")
    return errors


def _metrics_errors(metrics: Any) -> list[str]:
    """``metrics:``: a list of the summary table's columns."""
    if not isinstance(metrics, list):
        return [f"report.metrics: got {V.label(metrics)}, expected a list of "
                f"{', '.join(SUMMARY_METRICS)}"]
    if not all(m in SUMMARY_METRICS for m in metrics):
        bad = ", ".join(str(m) for m in metrics if m not in SUMMARY_METRICS)
        return [f"report.metrics: got {bad} in the list, expected only "
                f"{', '.join(SUMMARY_METRICS)} (the table's columns)"]
    return []


def _figures_errors(figures: Any, keys: list[str]) -> list[str]:
    """``figures:``: a list of mappings of figure options (``FIGURE_KEYS``)."""
    if not isinstance(figures, list):
        return ["report.figures: expected a list of figure options"]
    errors = []
    for i, fig in enumerate(figures):
        where = f"report.figures[{i}]"
        if not isinstance(fig, Mapping):
            errors.append(f"{where}: expected a mapping of plot options ({', '.join(FIGURE_KEYS)})")
            continue
        errors += [f"{where}.{problem}" for k, v in fig.items()
                   if (problem := _figure_option_error(k, v, keys))]
    return errors


def _figure_option_error(k: str, v: Any, keys: list[str]) -> str | None:
    """What is wrong with figure option ``k: v`` (``KEY: ...``), or None."""
    from .choices import PLOT_KINDS, PLOT_METRICS, PLOT_STATS

    if k not in FIGURE_KEYS:
        return f"{k}: unknown option (expected {', '.join(FIGURE_KEYS)})"
    if k == "kind" and v not in PLOT_KINDS:
        return f"kind: got {v!r}, expected one of {', '.join(PLOT_KINDS)}"
    if k == "metric" and v not in PLOT_METRICS:
        return f"metric: got {v!r}, expected one of {', '.join(PLOT_METRICS)}"
    if k == "stat" and v not in PLOT_STATS:
        return f"stat: got {v!r}, expected one of {', '.join(PLOT_STATS)}"
    if k in ("panels", "lines", "x", "y") and v not in keys:
        return f"{k}: got {v!r}, expected a swept key ({', '.join(keys)})"
    if k == "filters" and not (isinstance(v, list)
                               and all(isinstance(f, str) and "=" in f for f in v)):
        return "filters: expected a list of key=value"
    if k == "layer" and (isinstance(v, bool) or not isinstance(v, int)):
        return "layer: expected an integer"
    if k == "band" and v not in BANDS:
        return f"band: got {v!r}, expected {' or '.join(BANDS)}"
    return None


def _check_selections(report: Mapping, table: Table) -> list[str]:
    """Every selection names swept keys, values of the grid and one grid point
    (or an axis to run over); every statistic can be computed."""
    errors = []
    specs = [(f"report.checks[{i}]", s) for i, s in enumerate(report.get("checks") or [])]
    specs += [(f"report.values.{n}", s) for n, s in (report.get("values") or {}).items()]
    for where, spec in specs:
        try:
            for sel in ("where", "a", "b"):
                table.resolve(spec.get(sel), f"{where}.{sel}")
            if "each" in spec:
                evaluate_check(table, spec, where)
            else:
                statistic(table, spec, where)
        except ClaimError as exc:
            errors += exc.errors
        except StoreError as exc:
            errors.append(f"{where}: {exc}")
    return errors
