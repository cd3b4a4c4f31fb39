"""How far below the matmul floor can NumPy calls go? The book's network
(784-100x5-10, ReLU, BN before the activation, SGD, float32) trained by
bnexp's engine, by the same operations written as one straight-line function
with every buffer preallocated and no layer classes, and by the matmuls alone
(the floor of throughput.py), side by side. The straight-line step is first
checked against the engine: same losses and parameters after a few steps.

    python benchmarks/straight_line.py [--batch 100] [--repeats 7] [--block 0.4]
"""

from __future__ import annotations

import os

for _var in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE"):  # see throughput.py
    os.environ.pop(_var, None)

import argparse  # noqa: E402
import statistics  # noqa: E402

import numpy as np  # noqa: E402
from throughput import (  # noqa: E402
    LR,
    SIZES,
    batches,
    blas_info,
    book_network,
    cycling,
    floor_step_fn,
    rate,
)

EPS, MOMENTUM = 1e-5, 0.1  # BatchNorm's defaults, as book_network builds it


def engine():
    return book_network(np.random.default_rng(0))


def straight_line(model, batch: int):
    """The engine's operations for this one network, as one function over
    preallocated arrays. Starts from ``model``'s parameters (copies); returns
    the step and its parameters keyed like the engine's (layer name, key)."""
    f32, N, L = np.float32, batch, len(SIZES) - 2
    layers = dict(model.named_layers())
    # One packed parameter / gradient vector, as the engine's optimizer keeps.
    shapes = [(a, b) for a, b in zip(SIZES, SIZES[1:])] + [(10,)] + [(100,)] * (2 * L)
    P = np.empty(sum(int(np.prod(s)) for s in shapes), f32)
    G, TMP = np.zeros_like(P), np.empty_like(P)
    views, i = [], 0
    for s in shapes:
        n = int(np.prod(s))
        views.append((P[i:i + n].reshape(s), G[i:i + n].reshape(s)))
        i += n
    W, dW = [v[0] for v in views[:6]], [v[1] for v in views[:6]]
    b_out, db_out = views[6]
    gam, dgam = [v[0] for v in views[7:7 + L]], [v[1] for v in views[7:7 + L]]
    bet, dbet = [v[0] for v in views[7 + L:]], [v[1] for v in views[7 + L:]]
    for j in range(L):
        W[j][...] = layers[f"linear{j + 1}"].params["W"]
        gam[j][...] = layers[f"batchnorm{j + 1}"].params["gamma"]
        bet[j][...] = layers[f"batchnorm{j + 1}"].params["beta"]
    W[L][...] = layers["linear_out"].params["W"]
    b_out[...] = layers["linear_out"].params["b"]

    def full():
        return [np.empty((N, 100), f32) for _ in range(L)]
    h, xc, z, a, scale = full(), full(), full(), full(), full()
    mask = [np.empty((N, 100), bool) for _ in range(L)]
    stats = [np.empty((2, 100), f32) for _ in range(L)]
    running = [np.zeros((2, 100), f32) for _ in range(L)]
    for r in running:
        r[1] = 1.0
    vpe, std, sv = ([np.empty(100, f32) for _ in range(L)] for _ in range(3))
    s2, va, vc = np.empty(100, f32), np.empty(100, f32), np.empty(100, f32)
    tmp, dz, g = np.empty((N, 100), f32), np.empty((N, 100), f32), np.empty((N, 100), f32)
    zeros, avg, ones = np.zeros((N, 100), f32), np.full(N, 1.0 / N, f32), np.ones(N, f32)
    coef = np.array([[MOMENTUM], [MOMENTUM * N / (N - 1)]], f32)
    logits, p, t = np.empty((N, 10), f32), np.empty((N, 10), f32), np.empty((10, N), f32)
    m, sums, lse, true = (np.empty(N, f32) for _ in range(4))
    ones10, offsets, idx = np.ones(10, f32), np.arange(N) * 10, np.empty(N, np.int64)

    def step(x, y):
        inp = x
        for j in range(L):
            np.matmul(inp, W[j], h[j])
            np.matmul(avg, h[j], stats[j][0])
            np.subtract(h[j], stats[j][0], xc[j])
            np.multiply(xc[j], xc[j], z[j])
            np.matmul(avg, z[j], stats[j][1])
            np.add(stats[j][1], EPS, vpe[j])
            np.sqrt(vpe[j], std[j])
            np.divide(gam[j], std[j], sv[j])
            np.copyto(scale[j], sv[j])
            np.multiply(xc[j], scale[j], z[j])
            np.add(z[j], bet[j], z[j])
            np.multiply(running[j], 1.0 - MOMENTUM, running[j])
            np.multiply(stats[j], coef, stats[j])
            np.add(running[j], stats[j], running[j])
            np.maximum(z[j], zeros, out=a[j])
            np.greater(z[j], zeros, mask[j])
            inp = a[j]
        np.matmul(inp, W[L], logits)
        np.add(logits, b_out, logits)
        np.copyto(t, logits.T)
        np.max(t, axis=0, out=m)
        np.subtract(logits, m[:, None], p)
        np.add(offsets, y, idx)
        pf = p.reshape(-1)
        np.take(pf, idx, out=true)
        np.exp(p, p)
        np.matmul(p, ones10, sums)
        np.log(sums, lse)
        np.subtract(lse, true, lse)
        loss = float(np.sum(lse, dtype=np.float64)) / N
        np.multiply(sums, N, sums)
        np.divide(1.0, sums, sums)
        np.multiply(p, sums[:, None], p)
        pf[idx] = pf.take(idx) - 1.0 / N
        np.matmul(a[L - 1].T, p, dW[L])
        np.matmul(ones, p, db_out)
        np.matmul(p, W[L].T, g)
        for j in reversed(range(L)):
            np.multiply(g, mask[j], dz)
            np.matmul(ones, dz, dbet[j])
            np.multiply(dz, xc[j], tmp)
            np.matmul(ones, tmp, s2)
            np.divide(s2, std[j], dgam[j])
            np.multiply(dz, scale[j], dz)
            np.multiply(s2, sv[j], va)
            np.divide(va, vpe[j], va)
            np.multiply(va, -1.0 / N, va)
            np.multiply(dbet[j], sv[j], vc)
            np.multiply(vc, -1.0 / N, vc)
            np.multiply(xc[j], va, tmp)
            np.add(dz, tmp, dz)
            np.add(dz, vc, dz)
            np.matmul(a[j - 1].T if j else x.T, dz, dW[j])
            if j:
                np.matmul(dz, W[j].T, g)
        np.multiply(G, -LR, TMP)
        np.add(P, TMP, P)
        return loss

    named = {(f"linear{j + 1}", "W"): W[j] for j in range(L)}
    named.update({(f"batchnorm{j + 1}", "gamma"): gam[j] for j in range(L)})
    named.update({(f"batchnorm{j + 1}", "beta"): bet[j] for j in range(L)})
    named.update({("linear_out", "W"): W[L], ("linear_out", "b"): b_out})
    return step, named


def check(batch: int) -> float:
    """Largest relative difference between the engine and the straight-line
    step after 5 steps: losses and every parameter."""
    model, opt = engine()
    step, params = straight_line(model, batch)
    worst = 0.0
    for x, y in batches(batch, np.random.default_rng(1))[:5]:
        ours = model.loss_and_backward(x, y)
        opt.step()
        worst = max(worst, abs(step(x, y) - ours) / abs(ours))
    for name, layer in model.named_layers():
        for key, value in layer.params.items():
            diff = np.max(np.abs(params[name, key] - value)) / np.max(np.abs(value))
            worst = max(worst, float(diff))
    return worst


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=100)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--block", type=float, default=0.4)
    args = ap.parse_args()
    print(f"BLAS: {blas_info(1)}")
    diff = check(args.batch)
    print(f"straight-line vs engine after 5 steps: max relative difference {diff:.1e}")
    if diff > 1e-4:
        raise SystemExit("straight-line step does not match the engine; not timing it")
    N = args.batch
    model, opt = engine()
    step, _ = straight_line(engine()[0], N)
    chunks = batches(N, np.random.default_rng(0))

    def engine_step(i):
        model.loss_and_backward(*chunks[i])
        opt.step()
    fns = {"bnexp": cycling(engine_step), "straight-line": cycling(lambda i: step(*chunks[i])),
           "floor": floor_step_fn(N)}
    results = {k: [] for k in fns}
    for _ in range(args.repeats):
        for k, fn in fns.items():
            results[k].append(rate(fn, N, args.block))
    med = {k: statistics.median(v) for k, v in results.items()}
    print(f"\nbatch {N}, medians of {args.repeats} interleaved blocks of {args.block} s")
    for k, v in med.items():
        print(f"{k:>14} {v:>10.0f} samples/s  {v / med['floor']:>5.0%} of floor")


if __name__ == "__main__":
    main()
