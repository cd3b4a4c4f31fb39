"""What one BLAS thread costs a single run.

Every run trains with BLAS pinned to one thread, so its numbers do not depend
on the thread count (bnexp.provenance). This times ``bnexp.train.train`` as
shipped against the same run with the pin lifted and BLAS on ``--threads``
threads (what a run would do without the pin on an idle multi-core machine),
in interleaved repetitions, and prints medians and the ratio, with the CPU
and BLAS kernel. The unpinned runs' numbers differ from the pinned ones in
the last bits: that difference is why the pin exists.

    python benchmarks/pinning.py                 # book_bn (mnist5k) and 1 epoch of Fashion-MNIST
    python benchmarks/pinning.py --repeats 7 --threads 2
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import sys
import time
from pathlib import Path

for var in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE"):  # see benchmarks/README.md
    os.environ.pop(var, None)

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from threadpoolctl import threadpool_limits  # noqa: E402

from bnexp import train as train_mod  # noqa: E402
from bnexp.api import load_config  # noqa: E402
from bnexp.datasets import load_dataset  # noqa: E402
from bnexp.provenance import blas, cpu_model  # noqa: E402
from bnexp.train import Streams  # noqa: E402

CASES = {
    "book_bn (mnist5k, 20 epochs, batch 100)": ("book_bn", {}),
    "fashion-mnist full size, 1 epoch, batch 100": (
        "weight_scale_fashion", {"train.epochs": 1, "init.weight_scale": 0.01,
                                 "model.norm": "batch", "name": "bench"}),
}


def timed(cfg, data, threads: int | None) -> float:
    """Seconds of one run; ``threads`` None: as shipped (pinned to one)."""
    pin = train_mod.one_blas_thread
    if threads is not None:  # lift the pin: BLAS keeps ``threads`` threads
        train_mod.one_blas_thread = contextlib.nullcontext
    try:
        with threadpool_limits(limits=threads or 1):
            t0 = time.perf_counter()
            train_mod.train(cfg, data=data)
            return time.perf_counter() - t0
    finally:
        train_mod.one_blas_thread = pin


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2, help="BLAS threads without the pin")
    args = ap.parse_args()
    with threadpool_limits(limits=1):
        b = blas()
    print(f"machine: {cpu_model()}, {os.cpu_count()} cores; BLAS {b['library']} {b['version']} "
          f"({b['kernel']} kernel); medians of {args.repeats} interleaved repetitions")
    print(f"{'run':46s} {'pinned (1 thread)':>18s} {f'unpinned ({args.threads})':>16s} "
          f"{'pinned / unpinned':>18s}")
    for label, (name, overrides) in CASES.items():
        cfg = load_config(name, overrides)
        try:
            data = load_dataset(cfg.data, Streams.from_seed(cfg.seed).data, cfg.train.dtype)
        except Exception as exc:  # noqa: BLE001 - a missing dataset skips the case
            print(f"{label:46s} skipped ({exc})")
            continue
        one, many = [], []
        timed(cfg, data, None)  # warm
        for _ in range(args.repeats):
            one.append(timed(cfg, data, None))
            many.append(timed(cfg, data, args.threads))
        m1, m2 = statistics.median(one), statistics.median(many)
        print(f"{label:46s} {m1:16.2f} s {m2:14.2f} s {m1 / m2:17.2f}x")


if __name__ == "__main__":
    main()
