"""Training throughput of the book's network (784-100x5-10, ReLU, BN before the
activation, SGD, float32): bnexp's engine (its NumPy kernels, and its numba
kernels where numba is installed) vs PyTorch CPU eager (same network, batch
and thread count) vs JAX at its best (the whole loop one jitted ``lax.scan``,
compiled before timing) vs a matmul-only floor (the same matmuls, nothing
else). Blocks are interleaved and repeated; the table shows medians.

    python benchmarks/throughput.py [--threads 1] [--repeats 7] [--block 0.4]

Targets (issue 17), every batch size: >= 1.2x JAX and >= 1.5x PyTorch eager;
>= 80% of the floor at batch 100. The PyTorch, JAX and numba columns are
skipped where torch, jax or numba is not installed.
"""

from __future__ import annotations

import os
import sys

# These machines may set OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE for old OpenBLAS
# builds; they slow a current numpy. Unset both for this process only, before
# numpy loads, and report the kernel that actually runs.
for _var in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE"):
    os.environ.pop(_var, None)

import argparse  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

from bnexp.engine import backend as kernels  # noqa: E402
from bnexp.engine import build_mlp, make_optimizer  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import jax_book  # noqa: E402

SIZES = [784, 100, 100, 100, 100, 100, 10]
LR = 0.01
BATCHES = [32, 100, 256, 1024]


def blas_info(threads: int) -> str:
    try:
        from threadpoolctl import threadpool_info, threadpool_limits
    except ImportError:
        return "threadpoolctl not installed (pip install threadpoolctl to pin and report BLAS)"
    threadpool_limits(threads)
    parts = [f"{i.get('internal_api')} {i.get('version')} kernel={i.get('architecture')} "
             f"threads={i.get('num_threads')}" for i in threadpool_info()
             if i.get("user_api") == "blas"]
    return "; ".join(parts) or "no BLAS found"


def batches(batch: int, rng) -> list[tuple[np.ndarray, np.ndarray]]:
    """Eight batches of random inputs and labels that every column cycles
    through, so each step reads a new batch from memory as training does."""
    x = rng.random((batch * 8, 784), dtype=np.float32)
    y = rng.integers(0, 10, batch * 8)
    return [(x[i * batch:(i + 1) * batch], y[i * batch:(i + 1) * batch]) for i in range(8)]


def cycling(step_on):
    """A no-argument step that feeds ``step_on`` the next of eight batches."""
    state = {"i": 0}

    def step():
        step_on(state["i"] % 8)
        state["i"] += 1
    return step


def book_network(rng, kernels: str = "numpy"):
    """bnexp's model of the book's network and its SGD optimizer (lr 0.01)."""
    model = build_mlp(784, 10, SIZES[1:-1], rng=rng, norm="batch", placement="before",
                      activation="relu", weight_scale=0.01, kernels=kernels)
    return model, make_optimizer("sgd", model.layers, LR, kernels=kernels)


def bnexp_step_fn(batch: int, kernels: str = "numpy"):
    rng = np.random.default_rng(0)
    model, opt = book_network(rng, kernels)
    chunks = batches(batch, rng)

    def step_on(i):
        model.loss_and_backward(*chunks[i])
        opt.step()
    return cycling(step_on)


def floor_step_fn(batch: int, fixed_input: bool = False):
    """Only the matmuls of a training step on the same eight batches: 6
    forward, 6 weight gradients and 5 input gradients (the data needs none),
    into preallocated outputs. ``fixed_input`` reads one input batch every
    step instead (it then stays in cache: a floor no trainer can reach)."""
    rng = np.random.default_rng(0)
    Ws = [rng.standard_normal((a, b), dtype=np.float32) * 0.01 for a, b in zip(SIZES, SIZES[1:])]
    acts = [rng.random((batch, d), dtype=np.float32) for d in SIZES]
    grads = [np.empty_like(W) for W in Ws]
    dxs = [np.empty((batch, d), dtype=np.float32) for d in SIZES]
    chunks = batches(batch, rng)

    def step_on(i):
        acts[0] = chunks[0 if fixed_input else i][0]
        for j, W in enumerate(Ws):
            np.matmul(acts[j], W, out=acts[j + 1])
        for j in reversed(range(len(Ws))):
            np.matmul(acts[j].T, acts[j + 1], out=grads[j])
            if j > 0:
                np.matmul(acts[j + 1], Ws[j].T, out=dxs[j])
    return cycling(step_on)


def torch_step_fn(batch: int, threads: int):
    import torch

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    layers = []
    for a, b in zip(SIZES[:-2], SIZES[1:-1]):
        layers += [torch.nn.Linear(a, b, bias=False), torch.nn.BatchNorm1d(b), torch.nn.ReLU()]
    layers.append(torch.nn.Linear(SIZES[-2], SIZES[-1]))
    net = torch.nn.Sequential(*layers)
    for m in net:
        if isinstance(m, torch.nn.Linear):
            torch.nn.init.normal_(m.weight, std=0.01)
    chunks = [(torch.from_numpy(x), torch.from_numpy(y))
              for x, y in batches(batch, np.random.default_rng(0))]
    return torch_training_step(net, chunks)


def torch_training_step(net, chunks):
    """A step function training ``net`` (SGD, lr LR, cross-entropy) on the
    next of the (input, label) tensors in ``chunks``, as a PyTorch user would."""
    import torch

    opt = torch.optim.SGD(net.parameters(), lr=LR)

    def step_on(i):
        opt.zero_grad(set_to_none=True)
        loss = torch.nn.functional.cross_entropy(net(chunks[i][0]), chunks[i][1])
        loss.backward()
        opt.step()
    return cycling(step_on)


def rate(step, samples: int, seconds: float) -> float:
    """Samples per second over a block of about ``seconds``; each call of
    ``step`` trains on ``samples`` samples."""
    for _ in range(3):
        step()
    n, t0 = 0, time.perf_counter()
    while True:
        step()
        n += 1
        dt = time.perf_counter() - t0
        if dt >= seconds:
            return n * samples / dt


def jax_step_fn(batch: int):
    """JAX's trainer on the same eight batches: one call runs a jitted scan of
    enough steps for about 2,000 samples (compiled here, before timing)."""
    steps = max(8, 2000 // batch)
    call = jax_book.cycling_trainer(batches(batch, np.random.default_rng(0)), steps)
    call()
    return call, steps * batch


def pin_one_core(threads: int) -> None:
    """With one thread, pin the whole process to one core: XLA keeps helper
    threads busy even with its thread flags (measured here: 1.3-1.6 cores),
    so "one thread" is made true for every column alike."""
    if threads == 1 and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})


def report_environment(threads: int, repeats: int, block: float):
    """Print BLAS, numpy, Python, torch and jax versions; return torch or None."""
    print(f"BLAS: {blas_info(threads)}")
    if jax_book.available():
        import jax

        print(f"jax {jax.__version__} (XLA_FLAGS={os.environ.get('XLA_FLAGS', '')!r})")
    else:
        print("jax: not installed, JAX column skipped (pip install \"jax[cpu]\")")
    print(f"numpy {np.__version__}, python {sys.version.split()[0]}, cores {os.cpu_count()}")
    try:
        import torch

        print(f"torch {torch.__version__} (threads {threads})")
    except ImportError:
        torch = None
        print("torch: not installed, PyTorch column skipped")
    print(f"medians of {repeats} interleaved blocks of {block} s\n")
    return torch


def medians(fns: dict, batch: int, repeats: int, block: float) -> dict[str, float]:
    """Samples/s of each step function: interleaved blocks, the median of each.
    A value of ``fns`` is a step function (one batch per call) or a pair
    (function, samples per call)."""
    fns = {k: fn if isinstance(fn, tuple) else (fn, batch) for k, fn in fns.items()}
    results = {k: [] for k in fns}
    for _ in range(repeats):
        for k, (fn, samples) in fns.items():
            results[k].append(rate(fn, samples, block))
    return {k: statistics.median(v) for k, v in results.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=1, help="BLAS / torch / XLA threads (default 1)")
    ap.add_argument("--repeats", type=int, default=7, help="blocks per implementation")
    ap.add_argument("--block", type=float, default=0.4, help="seconds per block")
    ap.add_argument("--batches", default=",".join(map(str, BATCHES)))
    ap.add_argument("--fixed-input-floor", action="store_true",
                    help="floor reads one input batch every step (stays in cache; "
                         "the default cycles through the same 8 batches as the trainers)")
    args = ap.parse_args()
    pin_one_core(args.threads)
    jax_book.configure_threads(args.threads)
    torch = report_environment(args.threads, args.repeats, args.block)
    have_jax, fast = jax_book.available(), kernels.available("numba")
    if not fast:
        print('numba: not installed, numba column skipped (pip install "bnexp[fast]")')
    best = "numba" if fast else "numpy"  # bnexp's fastest path: the ratios are its
    cols = ["numpy", "numba", "torch", "jax", "floor"]
    head = (f"{'batch':>6} " + " ".join(f"{c + '/s':>9}" for c in cols)
            + f" {'vs torch':>9} {'vs jax':>7} {'of floor':>9}")
    print(f"bnexp's columns: numpy and numba kernels; ratios: bnexp with {best} kernels\n")
    print(head)
    print("-" * len(head))
    for batch in [int(b) for b in args.batches.split(",")]:
        fns = {"numpy": bnexp_step_fn(batch),
               "floor": floor_step_fn(batch, args.fixed_input_floor)}
        if fast:
            fns["numba"] = bnexp_step_fn(batch, "numba")
        if torch is not None:
            fns["torch"] = torch_step_fn(batch, args.threads)
        if have_jax:
            fns["jax"] = jax_step_fn(batch)
        med = medians(fns, batch, args.repeats, args.block)
        b = med[best]
        rates = " ".join(f"{med[c]:>9.0f}" if c in med else f"{'-':>9}" for c in cols)
        ratio = {c: f"{b / med[c]:.2f}x" if c in med else "-" for c in ("torch", "jax")}
        print(f"{batch:>6} {rates} {ratio['torch']:>9} {ratio['jax']:>7} "
              f"{b / med['floor']:>8.0%}")


if __name__ == "__main__":
    main()
