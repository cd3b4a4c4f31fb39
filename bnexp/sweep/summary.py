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
from ..stats import mean_interval, mean_sd
from ..store import FINISHED, RunRecord, atomic_write, csv_text, final_values, read_json
from .grid import Point, Sweep

STATS = ("mean", "std", "ci_lo", "ci_hi")  # ci: the 95% interval of the mean


def summary_row(p: Point | RunRecord, info: dict) -> dict:
    """The summary.csv row of one run, from its run.json (``{}``: not started)."""
    row = {"run_id": p.run_id, **{k: V.to_text(v) for k, v in p.values.items()},
           "seed": p.seed, "status": info.get("status") or "pending"}
    row.update({k: "" if v is None else v for k, v in final_values(info).items()})
    return row


def aggregate_rows(keys: list[str], rows: list[dict]) -> list[dict]:
    """Per grid point (first appearance order): n finished runs, how many
    diverged and failed, and for each metric the mean, sample sd (ddof=1) and
    95% interval of the mean over the finished runs (unbounded, written as
    -inf/inf, with fewer than 2)."""
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
            vals = [float(r[metric]) for r in ok if r[metric] != ""]
            iv = mean_interval(vals)
            sd = mean_sd(vals)[1]
            agg.update({f"{metric}_mean": iv.estimate, f"{metric}_std": sd,
                        f"{metric}_ci_lo": iv.lo if vals else math.nan,
                        f"{metric}_ci_hi": iv.hi if vals else math.nan})
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
    rewritten (atomically) after every change."""

    def __init__(self, sweep: Sweep, sweep_dir: Path) -> None:
        self.sweep, self.dir = sweep, Path(sweep_dir)
        self.rows = {p.run_id: summary_row(p, read_json(self.dir / p.run_id / "run.json") or {})
                     for p in sweep.points}

    def update(self, p: Point, info: dict) -> None:
        self.rows[p.run_id] = summary_row(p, info)
        self.write()

    def write(self) -> None:
        keys = self.sweep.keys
        cols, agg_cols = columns(keys)
        rows = [self.rows[p.run_id] for p in self.sweep.points]
        atomic_write(self.dir / "summary.csv", csv_text(rows, cols))
        atomic_write(self.dir / "aggregate.csv", csv_text(aggregate_rows(keys, rows), agg_cols))


def write_summaries(sweep: Sweep, sweep_dir: Path) -> None:
    """Rebuild summary.csv and aggregate.csv from the run folders."""
    Summary(sweep, sweep_dir).write()
