"""A sweep's summary.csv (one row per run) and aggregate.csv (one row per
grid point: mean, sample sd, Student-t 95% interval and n over seeds),
kept current while the sweep runs so that an interrupted or running sweep
can be plotted and reported on.
"""

from __future__ import annotations

import math
from pathlib import Path

from .. import values as V
from ..choices import SUMMARY_METRICS
from ..metrics import kind as metric_kind
from ..stats import mean_interval, mean_sd
from ..store import (
    AGGREGATE_FILE,
    FINISHED,
    RUN_FILE,
    SUMMARY_FILE,
    RunRecord,
    atomic_write,
    csv_line,
    final_values,
    read_json,
)
from .grid import Point, Sweep

STATS = ("mean", "std", "ci_lo", "ci_hi", "n")  # ci: the 95% interval of the mean


def summary_row(p: Point | RunRecord, info: dict) -> dict:
    """The summary.csv row of one run, from its run.json (``{}``: not started)."""
    row = {"run_id": p.run_id, **{k: V.to_text(v) for k, v in p.values.items()},
           "seed": p.seed, "status": info.get("status") or "pending"}
    row.update({k: "" if v is None else v for k, v in final_values(info).items()})
    return row


def aggregate_rows(keys: list[str], rows: list[dict]) -> list[dict]:
    """Per grid point (first appearance order): n finished runs, how many
    diverged and failed, and for each metric the mean, sample sd (ddof=1) and
    95% interval of the mean (``stats.mean_interval`` within the metric's
    range; -inf/inf where there is none) over the finished runs that have it,
    and their number (``METRIC_n``: losses leave diverged runs out)."""
    groups: dict[tuple, list[dict]] = {}
    for row in rows:
        groups.setdefault(tuple(str(row[k]) for k in keys), []).append(row)
    out = []
    for members in groups.values():
        ok = [r for r in members if r["status"] in FINISHED]
        agg = {k: members[0][k] for k in keys}
        agg.update(n=len(ok), n_diverged=sum(r["status"] == "diverged" for r in ok),
                   n_failed=sum(r["status"] == "failed" for r in members))
        for metric in SUMMARY_METRICS:
            mk = metric_kind(metric)
            vals = [float(r[metric]) for r in ok if r[metric] != ""
                    and (mk.with_diverged or r["status"] != "diverged")]
            vals = [v for v in vals if math.isfinite(v)]
            iv = mean_interval(vals, bounds=mk.bounds)
            sd = mean_sd(vals)[1]
            agg.update({f"{metric}_mean": iv.estimate, f"{metric}_std": sd,
                        f"{metric}_ci_lo": iv.lo if vals else math.nan,
                        f"{metric}_ci_hi": iv.hi if vals else math.nan,
                        f"{metric}_n": len(vals)})
        out.append(agg)
    return out


def columns(keys: list[str]) -> tuple[list[str], list[str]]:
    """summary.csv's and aggregate.csv's columns for a sweep over ``keys``."""
    summary = ["run_id", *keys, "seed", "status", *SUMMARY_METRICS]
    aggregate = [*keys, "n", "n_diverged", "n_failed",
                 *[f"{m}_{s}" for m in SUMMARY_METRICS for s in STATS]]
    return summary, aggregate


class Summary:
    """summary.csv and aggregate.csv of one sweep, held in memory and
    rewritten (atomically) after every change. Each file's lines are kept, and
    a change formats only its run's line and its grid point's: a sweep of n
    runs writes both files 2n times, so reformatting every line was O(n^2)."""

    def __init__(self, sweep: Sweep, sweep_dir: Path) -> None:
        self.sweep, self.dir = sweep, Path(sweep_dir)
        self.columns, self.agg_columns = columns(sweep.keys)
        self.headers = [csv_line(dict(zip(c, c)), c) for c in (self.columns, self.agg_columns)]
        self.rows = {p.run_id: summary_row(p, read_json(self.dir / p.run_id / RUN_FILE) or {})
                     for p in sweep.points}
        self.groups: dict[tuple, list[str]] = {}  # grid point -> its runs, in grid order
        for p in sweep.points:
            self.groups.setdefault(self._group(self.rows[p.run_id]), []).append(p.run_id)
        self.lines = {run_id: csv_line(row, self.columns) for run_id, row in self.rows.items()}
        self.agg_lines = {g: self._agg_line(g) for g in self.groups}

    def _group(self, row: dict) -> tuple:
        return tuple(str(row[k]) for k in self.sweep.keys)  # as aggregate_rows groups

    def _agg_line(self, group: tuple) -> str:
        (agg,) = aggregate_rows(self.sweep.keys, [self.rows[r] for r in self.groups[group]])
        return csv_line(agg, self.agg_columns)

    def update(self, p: Point, info: dict) -> None:
        row = self.rows[p.run_id] = summary_row(p, info)
        self.lines[p.run_id] = csv_line(row, self.columns)
        group = self._group(row)
        self.agg_lines[group] = self._agg_line(group)
        self.write()

    def write(self) -> None:
        header, agg_header = self.headers
        atomic_write(self.dir / SUMMARY_FILE, header + "".join(
            self.lines[p.run_id] for p in self.sweep.points))
        atomic_write(self.dir / AGGREGATE_FILE, agg_header + "".join(self.agg_lines.values()))


def write_summaries(sweep: Sweep, sweep_dir: Path) -> None:
    """Rebuild summary.csv and aggregate.csv from the run folders."""
    Summary(sweep, sweep_dir).write()
