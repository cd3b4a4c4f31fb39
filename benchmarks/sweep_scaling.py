"""Sweep scaling: the same 32-run sweep (the book's 16 weight scales x BN on/off,
one seed) with -j 1 and -j 2, side by side, repeated; prints medians and the
speed-up. Target on 2 cores: -j 2 at least 1.8x faster than -j 1.

    python benchmarks/sweep_scaling.py [--repeats 3] [--no-plot]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

from bnexp import sweep

CONFIG = Path(__file__).parents[1] / "configs" / "weight_scale.yaml"


def one(jobs: int, plot: bool) -> float:
    sw = sweep.load(CONFIG, seeds=[0])
    assert len(sw.points) == 32
    with tempfile.TemporaryDirectory() as out:
        t0 = time.perf_counter()
        _, outcome = sweep.execute(sw, out, jobs=jobs, plot=plot)
        seconds = time.perf_counter() - t0
    assert not outcome.failed and len(outcome.done) + len(outcome.diverged) == 32
    return seconds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--no-plot", action="store_true", help="skip per-run curves.png")
    args = ap.parse_args()
    times: dict[int, list[float]] = {1: [], 2: []}
    for _ in range(args.repeats):  # interleaved, so drift in machine load hits both
        for jobs in (1, 2):
            times[jobs].append(one(jobs, not args.no_plot))
    m1, m2 = statistics.median(times[1]), statistics.median(times[2])
    print(f"cores: {os.cpu_count()}, runs per sweep: 32, repeats: {args.repeats}, "
          f"per-run curves: {not args.no_plot}")
    print(f"{'jobs':>4} {'median s':>9} {'s per run':>10}  all")
    for jobs, m in ((1, m1), (2, m2)):
        print(f"{jobs:>4} {m:>9.2f} {m / 32:>10.3f}  {', '.join(f'{t:.2f}' for t in times[jobs])}")
    print(f"speed-up -j 2 vs -j 1: {m1 / m2:.2f}x (target >= 1.8x on 2 cores)")


if __name__ == "__main__":
    main()
