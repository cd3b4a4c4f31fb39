"""Whole-sweep overhead: `bnexp sweep weight_scale` (the quick start: 160 runs)
end to end, as a user runs it, against the time its training and evaluation
steps alone take on the same cores (the sum over runs of metrics.csv's last
``elapsed``, divided by the workers). Variants interleaved, medians. Target:
wall within 1.3x of the steps.

    python benchmarks/sweep_overhead.py [--repeats 2] [--kernels numpy,numba] [--jobs 2]
"""

from __future__ import annotations

import argparse
import csv
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def one(kernels: str, plot: bool, jobs: int) -> tuple[float, float, int]:
    """(wall seconds, summed step seconds, runs) of one whole sweep in a fresh folder."""
    with tempfile.TemporaryDirectory() as out:
        cmd = [sys.executable, "-m", "bnexp", "sweep", "weight_scale", "-j", str(jobs), "--quiet",
               "--out", out, "--set", f"train.kernels={kernels}"] + ([] if plot else ["--no-plot"])
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True)
        wall = time.perf_counter() - t0
        steps, runs = 0.0, 0
        for metrics in Path(out).glob("*/*/metrics.csv"):
            with metrics.open() as fh:
                steps += float(list(csv.DictReader(fh))[-1]["elapsed"])
            runs += 1
    return wall, steps, runs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--kernels", default="numpy,numba", help="comma-separated: numpy, numba")
    ap.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1))
    args = ap.parse_args()
    variants = [(k, plot) for k in args.kernels.split(",") for plot in (True, False)]
    if "numba" in args.kernels:  # compile once (cached on disk), as a first sweep on a machine does
        one("numba", False, args.jobs)
    results: dict[tuple[str, bool], list[tuple[float, float]]] = {v: [] for v in variants}
    for _ in range(args.repeats):  # interleaved, so drift in machine load hits every variant
        for kernels, plot in variants:
            wall, steps, runs = one(kernels, plot, args.jobs)
            results[kernels, plot].append((wall, steps / args.jobs))
    print(f"bnexp sweep weight_scale: {runs} runs, -j {args.jobs}, {os.cpu_count()} cores, "
          f"{args.repeats} repeats (medians; all ratios in brackets)")
    print(f"{'kernels':<8} {'figures':<8} {'wall s':>7} {'steps s':>8} {'ratio':>6}  all ratios")
    for (kernels, plot), rows in results.items():
        ratios = [w / s for w, s in rows]
        print(f"{kernels:<8} {'yes' if plot else 'no':<8} "
              f"{statistics.median(w for w, _ in rows):>7.1f} "
              f"{statistics.median(s for _, s in rows):>8.1f} {statistics.median(ratios):>5.2f}x  "
              f"[{', '.join(f'{r:.2f}' for r in ratios)}]")
    print("target: wall within 1.3x of steps / workers")


if __name__ == "__main__":
    main()
