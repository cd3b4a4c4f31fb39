"""Sweeps: a grid over dotted config keys and seeds (``grid``), run in
parallel and resumably (``execute``), summarized over seeds (``summary``);
a dry run's plan and time (``estimate``), and what is reported after the runs:
the sweep's figure and its failed runs (``finish``).

    <out>/<name>/sweep.yaml      the sweep as resolved (base config, axes, seeds, report, command)
    <out>/<name>/<run_id>/       one run folder per point, as ``bnexp train`` writes
    <out>/<name>/summary.csv     one row per run
    <out>/<name>/aggregate.csv   one row per grid point: mean, sd, 95% interval, n over seeds
"""

from .estimate import DryRun, dry_run
from .execute import (
    Outcome,
    check_data,
    execute,
    jobs_note,
    make_executor,
    plan,
    train_guard,
    train_run,
)
from .finish import draw_figure, failure_report
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

__all__ = ["MAX_POINTS", "DryRun", "Outcome", "check_data", "Point", "SUMMARY_METRICS", "Summary",
           "Sweep", "SweepError", "aggregate_rows", "build", "draw_figure", "dry_run",
           "dry_run_rows", "execute", "failure_report", "jobs_note", "load", "make_executor",
           "parse_grid_option", "plan", "run_id", "train_guard", "train_run", "write_summaries"]
