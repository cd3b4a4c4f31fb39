"""Training throughput of a small CNN (issue 14's network: 1x28x28 -> conv3x3
16 -> BN -> ReLU -> maxpool 2 -> conv3x3 32 -> BN -> ReLU -> maxpool 2 ->
linear 10; SGD, float32) for bnexp's engine (NumPy and numba kernels),
PyTorch CPU eager and JAX (one jitted call per step, NHWC; the same
network, batch and thread count), interleaved blocks, medians; then one full
Fashion-MNIST epoch of `bnexp train` (60,000 training images, with the
evaluation of both splits before and after), where the data is found.

    python benchmarks/cnn_throughput.py [--threads 1] [--repeats 7] [--block 0.5]

Targets: issue 14, bnexp >= 1.0x PyTorch eager at batch 64 on one thread;
issue 17, >= 1.5x PyTorch eager and >= 1.2x JAX at every batch size. The
PyTorch, JAX and numba columns are skipped where they are not installed.
"""

from __future__ import annotations

import os
import sys

for _var in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE"):  # as throughput.py: see there
    os.environ.pop(_var, None)

import argparse  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import jax_book  # noqa: E402
from throughput import (  # noqa: E402
    cycling,
    medians,
    pin_one_core,
    report_environment,
    torch_training_step,
)

from bnexp.engine import backend as kernels  # noqa: E402
from bnexp.engine import make_optimizer
from bnexp.engine.model import NormSettings, build, cnn_layers  # noqa: E402

CHANNELS, LR = [16, 32], 0.01
BATCHES = [8, 64, 256]


def image_batches(batch: int, rng) -> list[tuple[np.ndarray, np.ndarray]]:
    x = rng.random((batch * 8, 784), dtype=np.float32)
    y = rng.integers(0, 10, batch * 8)
    return [(x[i * batch:(i + 1) * batch], y[i * batch:(i + 1) * batch]) for i in range(8)]


def bnexp_step_fn(batch: int, kernel_name: str = "numpy"):
    rng = np.random.default_rng(0)
    model = build(cnn_layers(CHANNELS, norm="batch"), (1, 28, 28), 10, rng=rng,
                  norm=NormSettings("batch"), weight_scale="he", kernels=kernel_name)
    opt = make_optimizer("sgd", model.layers, LR, kernels=kernel_name)
    chunks = image_batches(batch, rng)

    def step_on(i):
        model.loss_and_backward(*chunks[i])
        opt.step()
    return cycling(step_on)


def torch_step_fn(batch: int, threads: int):
    import torch

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    nn = torch.nn
    net = nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1, bias=False), nn.BatchNorm2d(32), nn.ReLU(),
        nn.MaxPool2d(2), nn.Flatten(), nn.Linear(32 * 7 * 7, 10))
    chunks = [(torch.from_numpy(x).reshape(-1, 1, 28, 28), torch.from_numpy(y))
              for x, y in image_batches(batch, np.random.default_rng(0))]
    return torch_training_step(net, chunks)


def fashion_epoch(kernel_name: str) -> str:
    """Wall time of `bnexp train` for one Fashion-MNIST epoch at batch 64."""
    from bnexp import config
    from bnexp.datasets import DataError
    from bnexp.train import train

    cfg = config.from_dict({"data": {"dataset": "fashion-mnist", "n_train": None,
                                     "n_test": None},
                            "model": {"arch": "cnn", "channels": CHANNELS, "norm": "batch"},
                            "init": {"weight_scale": "he"},
                            "train": {"epochs": 1, "batch_size": 64, "lr": 0.05,
                                      "kernels": kernel_name}})
    try:
        t0 = time.perf_counter()
        result = train(cfg)
    except DataError as exc:
        return f"skipped ({exc})"
    total = time.perf_counter() - t0
    evals = result.metrics[0]["elapsed"] + (total - result.metrics[-1]["elapsed"])
    return (f"{total:.1f} s in all (about {total - evals:.1f} s of training steps, "
            f"{result.metrics[-1]['test_acc']:.3f} test accuracy after it)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=1, help="BLAS / torch threads (default 1)")
    ap.add_argument("--repeats", type=int, default=7, help="blocks per implementation")
    ap.add_argument("--block", type=float, default=0.5, help="seconds per block")
    ap.add_argument("--batches", default=",".join(map(str, BATCHES)))
    ap.add_argument("--no-epoch", action="store_true", help="skip the Fashion-MNIST epoch")
    args = ap.parse_args()
    pin_one_core(args.threads)
    jax_book.configure_threads(args.threads)
    torch = report_environment(args.threads, args.repeats, args.block)
    fast, have_jax = kernels.available("numba"), jax_book.available()
    cols = ["numpy", "numba", "torch", "jax"]
    head = (f"{'batch':>6} " + " ".join(f"{c + '/s':>9}" for c in cols)
            + f" {'vs torch':>9} {'vs jax':>7}")
    print("bnexp's columns: numpy and numba kernels; the ratios are bnexp's faster column's\n")
    print(head)
    print("-" * len(head))
    for batch in [int(b) for b in args.batches.split(",")]:
        fns = {"numpy": bnexp_step_fn(batch)}
        if fast:
            fns["numba"] = bnexp_step_fn(batch, "numba")
        if torch is not None:
            fns["torch"] = torch_step_fn(batch, args.threads)
        if have_jax:
            steps = max(4, 512 // batch)
            call = jax_book.stepping_trainer(image_batches(batch, np.random.default_rng(0)),
                                             steps, cnn=True)
            call()  # compile before timing
            fns["jax"] = (call, steps * batch)
        med = medians(fns, batch, args.repeats, args.block)
        best = max(med.get("numba", 0), med["numpy"])
        rates = " ".join(f"{med[c]:>9.0f}" if c in med else f"{'-':>9}" for c in cols)
        ratio = {c: f"{best / med[c]:.2f}x" if c in med else "-" for c in ("torch", "jax")}
        print(f"{batch:>6} {rates} {ratio['torch']:>9} {ratio['jax']:>7}")
    if not args.no_epoch:
        print()
        for name in ("numpy", "numba") if fast else ("numpy",):
            print(f"one Fashion-MNIST epoch, batch 64, {name} kernels: {fashion_epoch(name)}")


if __name__ == "__main__":
    main()
