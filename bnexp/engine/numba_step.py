"""A whole training pass of a plain MLP in two compiled calls (``train.kernels:
numba``): forward, loss and backward of ``Linear -> [BatchNorm] -> ReLU``
blocks and an output Linear, calling the BLAS library that NumPy itself calls
(its ``cblas_?gemm``, found through threadpoolctl) for the products, and the
kernels of ``numba_kernels`` for everything else. Python then runs once per
step instead of once per layer.

It gives exactly the numbers of the layer-by-layer numba path: the same
kernels, and the same BLAS calls as ``np.matmul`` makes (checked on the
network's own shapes when a plan is made; where they differ, or where the
BLAS is not one this module can call, ``plan`` returns None and the network
runs layer by layer). Networks of another form (dropout, other norms or
activations, ghost batches, batch renorm, weight norm, images) run layer by
layer too.
"""

from __future__ import annotations

import numpy as np

from .backend import gemm_address
from .layers import Linear, ReLU
from .loss import SoftmaxCrossEntropy
from .norms import BatchNorm
from .norms import running as rule
from .numba_kernels import mlp_backward, mlp_forward, mm


def _blocks(net):
    """[(linear, batchnorm or None)] per hidden block and the output Linear, or
    None where the network is not Linear -> [BatchNorm] -> ReLU blocks."""
    steps, blocks, i = net.steps, [], 0
    while i + 1 < len(steps):
        (lin, _), (nxt, relu) = steps[i], steps[i + 1]
        if type(lin) is not Linear:
            return None
        if type(nxt) is BatchNorm and type(relu) is ReLU:
            if not nxt.plain:
                return None
            blocks.append((lin, nxt))
        elif type(nxt) is ReLU and relu is None:
            blocks.append((lin, None))
        else:
            return None
        i += 2
    if i != len(steps) - 1 or type(steps[i][0]) is not Linear or not blocks:
        return None
    return blocks, steps[i][0]


class Plan:
    """The arrays one batch size's compiled step works on, gathered once: the
    layers' parameters, gradients and buffers (the same arrays, so updates
    land in the layers) and the work arrays."""

    def __init__(self, net, blocks, out: Linear, N: int, fn: int) -> None:
        # Tuples of arrays: numba's typed lists compile their methods in every process.
        dtype = net.dtype
        linears = [lin for lin, _ in blocks] + [out]
        bns = [bn for _, bn in blocks]
        widths = [lin.out_features for lin in linears[:-1]]
        self.fn = fn
        self.params = [(layer.params, key, layer.params[key])
                       for layer in linears + [bn for bn in bns if bn is not None]
                       for key in layer.params]
        empty = np.zeros(0, dtype)
        self.Ws = tuple(lin.params["W"] for lin in linears)
        self.dWs = tuple(lin.grads["W"] for lin in linears)
        self.bs = tuple(lin.params.get("b", empty) for lin in linears)
        self.dbs = tuple(lin.grads.get("b", empty) for lin in linears)
        self.has_bias = np.array(["b" in lin.params for lin in linears])
        self.zs, self.hs, self.dhs, self.dzs = (
            tuple(np.empty((N, w), dtype) for w in widths) for _ in range(4))
        self.has_bn = np.array([bn is not None for bn in bns])
        self.update = np.array([bn is not None and bn.track_running_stats for bn in bns])

        def per_bn(get, fill, where=lambda bn: bn.affine):
            """get(bn) where a block's norm has it, else fill(width)."""
            return tuple(get(bn) if bn is not None and where(bn) else fill(w)
                         for bn, w in zip(bns, widths))

        def ones(w):
            return np.ones(w, dtype)

        def zeros(w):
            return np.zeros(w, dtype)

        self.gammas = per_bn(lambda bn: bn.params["gamma"], ones)
        self.betas = per_bn(lambda bn: bn.params["beta"], zeros)
        self.dgammas = per_bn(lambda bn: bn.grads["gamma"], zeros)  # else: written, unread
        self.dbetas = per_bn(lambda bn: bn.grads["beta"], zeros)
        self.runnings = per_bn(lambda bn: bn.running, lambda w: np.zeros((2, w), dtype),
                               lambda bn: bn.track_running_stats)
        self.counts = per_bn(lambda bn: bn.buffers["num_batches_tracked"],
                             lambda w: np.zeros((), np.int64), lambda bn: bn.track_running_stats)
        self.eps = np.array([bn.eps if bn is not None else 0.0 for bn in bns])
        # The running update's coefficients per block, by the rule in norms.running:
        # fixed for a fixed momentum, made per step for a cumulative average.
        self.coefs = tuple(np.zeros(3, dtype) for _ in widths)
        self.cumulative = []
        for bn, coef in zip(bns, self.coefs):
            if bn is None or not bn.track_running_stats:
                continue
            if bn.momentum is None:
                self.cumulative.append((bn, coef))
            else:
                coef[:] = rule.coefficients(bn.momentum, N, bn.convention)
        self.N = N
        self.stats = tuple(np.zeros((2, w), dtype) for w in widths)
        self.svs = tuple(np.empty(w, dtype) for w in widths)
        C = out.out_features
        self.logits, self.p = np.empty((N, C), dtype), np.empty((N, C), dtype)
        self.true = np.empty(N, dtype)

    def current(self) -> bool:
        """Whether the layers still hold the arrays gathered (an optimizer
        packs parameters into one array when it is made)."""
        return all(store[key] is a for store, key, a in self.params)

    def run(self, x: np.ndarray, labels: np.ndarray) -> float:
        for bn, coef in self.cumulative:  # 1 / count, the count including this update
            f = rule.factor(None, int(bn.buffers["num_batches_tracked"]) + 1)
            coef[:] = rule.coefficients(f, self.N, bn.convention)
        if not mlp_forward(self.fn, x, labels, self.Ws, self.bs, self.has_bias, self.zs, self.hs,
                       self.has_bn, self.update, self.gammas, self.betas, self.eps, self.stats,
                       self.svs, self.runnings, self.counts, self.coefs,
                       self.logits, self.p, self.true):
            SoftmaxCrossEntropy._bad_labels(labels, self.p.shape[1])
        np.exp(self.p, self.p)
        return float(mlp_backward(self.fn, x, labels, self.p, self.true, self.Ws, self.dWs,
                              self.dbs, self.has_bias, self.zs, self.hs, self.dhs, self.dzs,
                              self.has_bn, self.gammas, self.betas, self.dgammas, self.dbetas,
                              self.eps, self.stats, self.svs))


def _same_as_numpy(fn: int, dtype, shapes) -> bool:
    """Whether the BLAS calls give np.matmul's results, bit for bit, on these
    (N, in, out) shapes: forward, weight gradient and input gradient."""
    rng = np.random.default_rng(0)
    for N, a, b in shapes:
        x, W = rng.standard_normal((N, a)).astype(dtype), rng.standard_normal((a, b)).astype(dtype)
        dy = rng.standard_normal((N, b)).astype(dtype)
        for (p, q, ta, tb), ref in (((x, W, False, False), x @ W), ((x, dy, True, False), x.T @ dy),
                                    ((dy, W, False, True), dy @ W.T)):
            out = np.empty_like(ref)
            mm(fn, p, q, out, ta, tb)
            if not np.array_equal(out, ref):
                return False
    return True


def plan(net, x: np.ndarray) -> Plan | None:
    """The compiled step's plan for ``net`` on batches like ``x``, or None where
    the network, the batch or the BLAS is not one it takes."""
    found = _blocks(net)
    fn = gemm_address(net.dtype)
    N = x.shape[0]
    if found is None or fn is None or x.ndim != 2 or N < 2 or x.dtype != net.dtype:
        return None
    blocks, out = found
    linears = [lin for lin, _ in blocks] + [out]
    if min(min(lin.in_features, lin.out_features) for lin in linears) < 2:
        return None  # NumPy takes vectors to gemv, not gemm
    if not _same_as_numpy(fn, net.dtype, {(N, lin.in_features, lin.out_features)
                                          for lin in linears}):
        return None
    return Plan(net, blocks, out, N, fn)
