"""One epoch of full Fashion-MNIST end to end: 600 steps of the book's network
(784-100x5-10, BN before ReLU, SGD lr 0.01, batch 100, float32) on a fresh
shuffle, then the loss and accuracy of both splits (60,000 + 10,000 images)
in eval mode. bnexp's ``train`` (NumPy kernels, and numba kernels where
numba is installed) against the same work as one jitted JAX program (the
shuffle, the batch gathers, the scan of steps and both evaluations inside
one ``jax.jit``; compiled before timing). One process pinned to one core,
interleaved, medians.

    python benchmarks/epoch_vs_jax.py [--repeats 5] [--root DIR]

bnexp's ``train`` also evaluates both splits before the first step (epoch 0
of metrics.csv); that evaluation is timed apart and left out of the ratio,
so both sides do the same work. Needs Fashion-MNIST (Debian's
``dataset-fashion-mnist`` or ``bnexp data fetch fashion-mnist``).
"""

from __future__ import annotations

import os
import sys

for _var in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE"):  # as throughput.py
    os.environ.pop(_var, None)

import argparse  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import jax_book  # noqa: E402
from throughput import pin_one_core, report_environment  # noqa: E402

from bnexp import config  # noqa: E402
from bnexp.datasets import load_dataset  # noqa: E402
from bnexp.engine import backend as kernels  # noqa: E402
from bnexp.train import Streams, train  # noqa: E402


def book_config(kernel_name: str, root: str | None):
    return config.from_dict({
        "name": "epoch", "data": {"dataset": "fashion-mnist", "n_train": None, "n_test": None,
                                  "root": root},
        "train": {"epochs": 1, "batch_size": 100, "lr": 0.01, "kernels": kernel_name}})


def bnexp_epoch(cfg, data):
    """Seconds of the epoch and its final evaluation (the epoch-0 evaluation
    left out), and the final test accuracy."""
    t0 = time.perf_counter()
    result = train(cfg, data=data)
    total = time.perf_counter() - t0
    return total - result.metrics[0]["elapsed"], result.metrics[-1]["test_acc"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--root", default=None, help="folder with the Fashion-MNIST IDX files")
    args = ap.parse_args()
    pin_one_core(1)
    jax_book.configure_threads(1)
    report_environment(1, args.repeats, 0)
    names = ["numpy"] + (["numba"] if kernels.available("numba") else [])
    cfgs = {k: book_config(k, args.root) for k in names}
    data = load_dataset(cfgs["numpy"].data, Streams.from_seed(0).data, np.dtype("float32"))
    fns = {f"bnexp {k}": (lambda c=c: bnexp_epoch(c, data)) for k, c in cfgs.items()}
    if jax_book.available():
        run = jax_book.epoch_program(data.x_train, data.y_train, data.x_test, data.y_test, 100)
        t0 = time.perf_counter()
        run()
        print(f"JAX compile + first epoch: {time.perf_counter() - t0:.2f} s (not counted)")

        def jax_epoch():
            t = time.perf_counter()
            acc = run()[3]
            return time.perf_counter() - t, acc
        fns["jax"] = jax_epoch
    for fn in fns.values():  # warm: numba's cache, page faults
        fn()
    times = {k: [] for k in fns}
    accs = {}
    for _ in range(args.repeats):
        for k, fn in fns.items():
            seconds, accs[k] = fn()
            times[k].append(seconds)
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"\n{'':14} {'seconds':>8} {'test acc':>9}")
    for k in fns:
        print(f"{k:14} {med[k]:>8.3f} {accs[k]:>9.4f}")
    if "jax" in med:
        for k in cfgs:
            print(f"bnexp {k} vs jax: {med['jax'] / med[f'bnexp {k}']:.2f}x")


if __name__ == "__main__":
    main()
