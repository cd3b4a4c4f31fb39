"""Sweeps: a grid over dotted config keys and seeds (``grid``), run in
parallel and resumably (``execute``), summarized over seeds (``summary``).

    <out>/<name>/sweep.yaml      the sweep as resolved (base config, axes, seeds, report, command)
    <out>/<name>/<run_id>/       one run folder per point, as ``bnexp train`` writes
    <out>/<name>/summary.csv     one row per run
    <out>/<name>/aggregate.csv   one row per grid point: mean, sd, 95% interval, n over seeds
"""

from .execute import Outcome, check_data, execute, make_executor, plan, train_guard
from .grid import (
    MAX_POINTS,
    Point,
    Sweep,
    SweepError,
    build,
    dry_run_rows,
    load,
    parse_grid_option,
    run_id,
)
from .summary import SUMMARY_METRICS, Summary, aggregate_rows, write_summaries

__all__ = ["MAX_POINTS", "Outcome", "check_data", "Point", "SUMMARY_METRICS", "Summary", "Sweep",
           "SweepError", "aggregate_rows", "build", "dry_run_rows", "execute", "load",
           "make_executor", "parse_grid_option", "plan", "run_id", "train_guard",
           "write_summaries"]
