"""Compiled kernels for the passes NumPy cannot fuse (``train.kernels: numba``).

Each kernel does in one or two sweeps over memory what the NumPy engine does
in several whole-array calls: batch norm forward on (N, C) rows or (N, C, L)
images (statistics, normalization, running update and, fused, the ReLU after
it) and backward (both sums and the input gradient in two sweeps), ReLU, a
residual block's addition (and, fused, the ReLU after it), 2x2 max pooling,
a Linear's bias gradient, softmax cross-entropy with its gradient, and the
optimizer updates. Then the whole training pass of a plain
MLP as two functions that call NumPy's own BLAS for the matrix products
(planned by ``numba_step``); elsewhere a Linear's products stay with NumPy.
Last, convolution (any stride, padding up to k - 1) one sample at a time:
im2col, the product through the same BLAS call, col2im.

The NumPy engine is the reference: these kernels agree with it to float32
rounding (the tests compare every layer), not bit for bit, because they sum
in another order (partial sums in the array's dtype, added into float64)
than NumPy's BLAS does. The optimizer kernels repeat NumPy's operations in its order
and dtype, so they agree bit for bit. No kernel is parallel and none uses
fast-math: a run is bit-identical on one machine whatever the thread count.

Compiled on first use and cached on disk (``cache=True``: next to this file,
or in numba's per-user cache where that is not writable), so sweep workers
load them instead of compiling them again.
"""

from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic

# One module for all compiled code: numba's disk cache notices a change to a
# function's own file only, so kernels and the functions that call them live
# together (``numba_step`` plans the whole-pass calls from Python).
_JIT = {"cache": True, "nogil": True, "error_model": "numpy", "boundscheck": False}
_ROW_MAJOR, _NO_TRANS, _TRANS = 101, 111, 112
u = np.uint64


@njit(**_JIT)
def bn_train_forward(x, gamma, beta, eps, relu, stats, sv, y, update, running, keep, c_mean,
                     c_var):
    """Batch norm over the rows of x (N, D) with the batch's mean and biased
    variance; y = (x - mean) * sv + beta, sv = gamma / sqrt(var + eps), then
    max(y, 0) when ``relu``. Writes stats[0] (mean), stats[1] (variance) and
    sv in x's dtype; with ``update``, also running = keep * running +
    [c_mean, c_var] * stats in the buffers' dtype (the NumPy engine's
    arithmetic). The statistics take one pass: float64 sums of x - x[0] and
    of its square (shifted by the first row, so no cancellation)."""
    N, D = x.shape
    s = np.zeros(D, np.float64)
    q = np.zeros(D, np.float64)
    shift = x[0]
    i = 0
    while i + 4 <= N:  # four rows per sweep, summed in x's dtype, then into float64
        for j in range(D):
            d0, d1 = x[i, j] - shift[j], x[i + 1, j] - shift[j]
            d2, d3 = x[i + 2, j] - shift[j], x[i + 3, j] - shift[j]
            s[j] += (d0 + d1) + (d2 + d3)
            q[j] += (d0 * d0 + d1 * d1) + (d2 * d2 + d3 * d3)
        i += 4
    for i in range(i, N):
        for j in range(D):
            d = x[i, j] - shift[j]
            s[j] += d
            q[j] += d * d
    for j in range(D):
        _set_stats(j, shift[j], s[j], q[j], N, gamma, eps, stats, sv)
    if update:
        _update_running(running, stats, keep, c_mean, c_var)
    _normalize(x, stats[0], sv, beta, relu, y)


@njit(**_JIT)
def _set_stats(j, shift, s, q, M, gamma, eps, stats, sv):
    """Channel j's mean and biased variance from the sums s and q of its M
    values less ``shift`` and of their squares; and sv = gamma / std."""
    m = s / M
    var = max(q / M - m * m, 0.0)
    stats[0, j] = np.float64(shift) + m
    stats[1, j] = var
    sv[j] = gamma[j] / np.sqrt(var + eps)


@njit(**_JIT)
def _update_running(running, stats, keep, c_mean, c_var):
    """running = keep * running + [c_mean, c_var] * stats, in the buffers' dtype
    (the NumPy engine's arithmetic)."""
    for j in range(running.shape[1]):
        running[0, j] = running[0, j] * keep + stats[0, j] * c_mean
        running[1, j] = running[1, j] * keep + stats[1, j] * c_var


@njit(**_JIT)
def bn_eval_forward(x, mean, var, gamma, beta, eps, relu, sv, y):
    """Batch norm with given (running) statistics: one pass."""
    D = x.shape[1]
    for j in range(D):
        sv[j] = gamma[j] / np.sqrt(var[j] + eps)
    _normalize(x, mean, sv, beta, relu, y)


@njit(**_JIT)
def _normalize(x, mean, sv, beta, relu, y):
    N, D = x.shape
    zero = y.dtype.type(0)
    for i in range(N):
        if relu:
            for j in range(D):
                v = (x[i, j] - mean[j]) * sv[j] + beta[j]
                y[i, j] = zero if v < zero else v
        else:
            for j in range(D):
                y[i, j] = (x[i, j] - mean[j]) * sv[j] + beta[j]


@njit(**_JIT)
def bn_backward(dy, x, relu, batch_stats, mean, var, beta, eps, sv, dgamma, dbeta, dx):
    """The gradient of batch norm (fused: of max(BN(x), 0) when ``relu``, the
    ReLU's mask recomputed from x exactly as the forward pass computed it).
    Float64 sums of g and g * (x - mean) give dbeta and dgamma; then
    dx = sv * g + a * (x - mean) + c, a = -sv * sum(g * xc) / (N (var + eps)),
    c = -sv * sum(g) / N (the last two terms only with batch statistics)."""
    N, D = dy.shape
    zero = dx.dtype.type(0)
    s1 = np.zeros(D, np.float64)
    s2 = np.zeros(D, np.float64)
    i = 0
    while i + 4 <= N:  # four rows per sweep, as in the forward pass
        for j in range(D):
            m, v, bj = mean[j], sv[j], beta[j]
            xc0, xc1 = x[i, j] - m, x[i + 1, j] - m
            xc2, xc3 = x[i + 2, j] - m, x[i + 3, j] - m
            g0, g1, g2, g3 = dy[i, j], dy[i + 1, j], dy[i + 2, j], dy[i + 3, j]
            if relu:  # the fused ReLU's mask, recomputed as the forward pass computed it
                g0 = g0 if xc0 * v + bj > zero else zero
                g1 = g1 if xc1 * v + bj > zero else zero
                g2 = g2 if xc2 * v + bj > zero else zero
                g3 = g3 if xc3 * v + bj > zero else zero
            s1[j] += (g0 + g1) + (g2 + g3)
            s2[j] += (g0 * xc0 + g1 * xc1) + (g2 * xc2 + g3 * xc3)
        i += 4
    for i in range(i, N):
        for j in range(D):
            xc = x[i, j] - mean[j]
            g = dy[i, j]
            if relu and not xc * sv[j] + beta[j] > zero:
                g = zero
            s1[j] += g
            s2[j] += np.float64(g) * xc
    a = np.zeros(D, dx.dtype)
    c = np.zeros(D, dx.dtype)
    for j in range(D):
        vpe = np.float64(var[j]) + eps
        dbeta[j] = s1[j]
        dgamma[j] = s2[j] / np.sqrt(vpe)
        if batch_stats:
            a[j] = -sv[j] * s2[j] / (N * vpe)
            c[j] = -sv[j] * s1[j] / N
    for i in range(N):
        if relu:
            for j in range(D):
                xc = x[i, j] - mean[j]
                g = dy[i, j] if xc * sv[j] + beta[j] > zero else zero
                dx[i, j] = sv[j] * g + a[j] * xc + c[j]
        else:
            for j in range(D):
                xc = x[i, j] - mean[j]
                dx[i, j] = sv[j] * dy[i, j] + a[j] * xc + c[j]


@njit(**_JIT)
def bn_nd_train_forward(x, gamma, beta, eps, relu, stats, sv, y, update, running, keep, c_mean,
                        c_var):
    """``bn_train_forward`` for x (N, C, L): statistics per channel over N and
    L, shifted by the channel's first value. The float64 sums run down the
    batch for every (channel, position) at once, in (C, L) accumulators, and
    then along L: the sweep down the batch reads x in order and vectorizes
    (a single running sum per channel would wait on each addition)."""
    N, C, L = x.shape
    s, q = np.zeros((C, L), np.float64), np.zeros((C, L), np.float64)
    for n in range(N):
        for c in range(C):
            shift, sc, qc = x[0, c, 0], s[c], q[c]
            for i in range(L):
                d = np.float64(x[n, c, i] - shift)
                sc[i] += d
                qc[i] += d * d
    for c in range(C):
        _set_stats(c, x[0, c, 0], s[c].sum(), q[c].sum(), N * L, gamma, eps, stats, sv)
    if update:
        _update_running(running, stats, keep, c_mean, c_var)
    _normalize_nd(x, stats[0], sv, beta, relu, y)


@njit(**_JIT)
def bn_nd_eval_forward(x, mean, var, gamma, beta, eps, relu, sv, y):
    for c in range(x.shape[1]):
        sv[c] = gamma[c] / np.sqrt(var[c] + eps)
    _normalize_nd(x, mean, sv, beta, relu, y)


@njit(**_JIT)
def _normalize_nd(x, mean, sv, beta, relu, y):
    N, C, L = x.shape
    zero = y.dtype.type(0)
    for n in range(N):
        for c in range(C):
            m, v, b = mean[c], sv[c], beta[c]
            if relu:
                for i in range(L):
                    t = (x[n, c, i] - m) * v + b
                    y[n, c, i] = zero if t < zero else t
            else:
                for i in range(L):
                    y[n, c, i] = (x[n, c, i] - m) * v + b


@njit(**_JIT)
def bn_nd_backward(dy, x, relu, batch_stats, mean, var, beta, eps, sv, dgamma, dbeta, dx):
    """``bn_backward`` for (N, C, L) inputs (sums over N and L per channel,
    down the batch into (C, L) accumulators first, as the forward pass sums)."""
    N, C, L = dy.shape
    zero = dx.dtype.type(0)
    M = N * L
    s1, s2 = np.zeros((C, L), np.float64), np.zeros((C, L), np.float64)
    for n in range(N):
        for c in range(C):
            m, v, b, a1, a2 = mean[c], sv[c], beta[c], s1[c], s2[c]
            for i in range(L):
                xc = x[n, c, i] - m
                g = dy[n, c, i]
                if relu:  # the fused ReLU's mask, recomputed as the forward pass computed it
                    g = g if xc * v + b > zero else zero
                a1[i] += g
                a2[i] += np.float64(g) * xc
    a, cc = np.zeros(C, dx.dtype), np.zeros(C, dx.dtype)
    for c in range(C):
        t1, t2 = s1[c].sum(), s2[c].sum()
        vpe = np.float64(var[c]) + eps
        dbeta[c] = t1
        dgamma[c] = t2 / np.sqrt(vpe)
        if batch_stats:
            a[c] = -sv[c] * t2 / (M * vpe)
            cc[c] = -sv[c] * t1 / M
    for n in range(N):
        for c in range(C):
            m, v, b, ac, ccc = mean[c], sv[c], beta[c], a[c], cc[c]
            if relu:
                for i in range(L):
                    xc = x[n, c, i] - m
                    g = dy[n, c, i] if xc * v + b > zero else zero
                    dx[n, c, i] = v * g + ac * xc + ccc
            else:
                for i in range(L):
                    xc = x[n, c, i] - m
                    dx[n, c, i] = v * dy[n, c, i] + ac * xc + ccc


@njit(**_JIT)
def maxpool2_forward(x, y, win):
    """2x2, stride-2 max pooling of x (N, C, H, W) into y, as the NumPy
    engine's two pairwise steps take it (np.maximum across each column pair,
    then across the rows; the first of equals wins, NaN propagates); ``win``
    records the winner of each window (bit 0: right column of the top pair,
    bit 1: of the bottom pair, bit 2: the bottom row)."""
    N, C, Ho, Wo = y.shape
    for n in range(N):
        for c in range(C):
            for i in range(Ho):
                for j in range(Wo):
                    a, b = x[n, c, 2 * i, 2 * j], x[n, c, 2 * i, 2 * j + 1]
                    p, q = x[n, c, 2 * i + 1, 2 * j], x[n, c, 2 * i + 1, 2 * j + 1]
                    top = a if (a >= b or a != a) else b
                    bottom = p if (p >= q or p != p) else q
                    y[n, c, i, j] = top if (top >= bottom or top != top) else bottom
                    win[n, c, i, j] = (b > a) | ((q > p) << 1) | ((bottom > top) << 2)


@njit(**_JIT)
def maxpool2_backward(dy, win, dx):
    """dy to each window's winner, 0 to the rest of the window (rows and
    columns beyond the last whole window are left as they are: 0)."""
    N, C, Ho, Wo = dy.shape
    zero = dx.dtype.type(0)
    for n in range(N):
        for c in range(C):
            for i in range(Ho):
                for j in range(Wo):
                    w, g = win[n, c, i, j], dy[n, c, i, j]
                    low = (w >> 2) & 1
                    right = (w >> low) & 1
                    dx[n, c, 2 * i, 2 * j] = zero
                    dx[n, c, 2 * i, 2 * j + 1] = zero
                    dx[n, c, 2 * i + 1, 2 * j] = zero
                    dx[n, c, 2 * i + 1, 2 * j + 1] = zero
                    dx[n, c, 2 * i + low, 2 * j + right] = g


@njit(**_JIT)
def col_sums(a, out):
    """out = the sums of a's columns (float64 sums, four rows per sweep): a
    Linear's bias gradient."""
    N, D = a.shape
    s = np.zeros(D, np.float64)
    i = 0
    while i + 4 <= N:
        for j in range(D):
            s[j] += (a[i, j] + a[i + 1, j]) + (a[i + 2, j] + a[i + 3, j])
        i += 4
    for i in range(i, N):
        for j in range(D):
            s[j] += a[i, j]
    for j in range(D):
        out[j] = s[j]


@njit(**_JIT)
def relu_forward(x, y):
    n = x.size
    xf, yf = x.reshape(n), y.reshape(n)
    for i in range(n):
        v = xf[i]
        yf[i] = 0 if v < 0 else v


@njit(**_JIT)
def relu_backward(dy, y, dx):
    n = dy.size
    df, yf, of = dy.reshape(n), y.reshape(n), dx.reshape(n)
    for i in range(n):
        of[i] = df[i] if yf[i] > 0 else 0


@njit(**_JIT)
def add_forward(a, b, relu, y):
    """y = a + b, a residual block's two branches (same shape, C-contiguous);
    with ``relu``, max(a + b, 0) as ``relu_forward`` takes it, in the same pass."""
    n = y.size
    af, bf, yf = a.reshape(n), b.reshape(n), y.reshape(n)
    if relu:
        for i in range(n):
            v = af[i] + bf[i]
            yf[i] = 0 if v < 0 else v
    else:
        for i in range(n):
            yf[i] = af[i] + bf[i]


@njit(**_JIT)
def xent_shift(logits, labels, shifted, true):
    """The first half of softmax cross-entropy: each row of logits (N, C) less
    its maximum into ``shifted`` (no exponent is then positive), and the
    shifted logit of each row's label into ``true``. Returns False if a label
    is outside [0, C). (NumPy's vectorized exp runs between the halves.)"""
    N, C = logits.shape
    for i in range(N):
        if labels[i] < 0 or labels[i] >= C:
            return False
        m = logits[i, 0]
        for k in range(1, C):
            if logits[i, k] > m:
                m = logits[i, k]
        for k in range(C):
            shifted[i, k] = logits[i, k] - m
        true[i] = shifted[i, labels[i]]
    return True


@njit(**_JIT)
def xent_finish(labels, p, true):
    """The second half: from p = exp(shifted), the mean loss (returned) and,
    in place, its gradient (softmax - onehot) / N (float64 sums)."""
    N, C = p.shape
    total = 0.0
    for i in range(N):
        s = 0.0
        for k in range(C):
            s += p[i, k]
        total += np.log(s) - true[i]
        inv = 1.0 / (s * N)
        for k in range(C):
            p[i, k] = p[i, k] * inv
        p[i, labels[i]] -= 1.0 / N
    return total / N


@njit(**_JIT)
def sgd_step(params, grads, neg_lr):
    """params += grads * neg_lr, each product rounded to the params' dtype
    first (NumPy's multiply-then-add)."""
    for i in range(params.size):
        t = grads[i] * neg_lr
        params[i] = params[i] + t


@njit(**_JIT)
def momentum_step(params, grads, velocity, mu, neg_lr, nesterov):
    """v = v * mu + g; params += v * neg_lr (Nesterov: (v * mu + g) * neg_lr),
    in NumPy's order and dtype."""
    for i in range(params.size):
        v = velocity[i] * mu
        v = v + grads[i]
        velocity[i] = v
        if nesterov:
            t = v * mu
            t = t + grads[i]
            t = t * neg_lr
        else:
            t = v * neg_lr
        params[i] = params[i] + t


@njit(**_JIT)
def adam_step(params, grads, m, v, beta1, one_m_beta1, beta2, one_m_beta2, inv_c2, eps,
              step_size):
    """Adam's update in NumPy's order and dtype: m = m * b1 + g * (1 - b1);
    v = v * b2 + (g * g) * (1 - b2); params += m / (sqrt(v * inv_c2) + eps)
    * step_size (step_size = -lr / c1)."""
    for i in range(params.size):
        g = grads[i]
        mi = m[i] * beta1
        mi = mi + g * one_m_beta1
        m[i] = mi
        vi = v[i] * beta2
        gg = g * g
        vi = vi + gg * one_m_beta2
        v[i] = vi
        t = vi * inv_c2
        t = np.sqrt(t)
        t = t + eps
        t = mi / t
        t = t * step_size
        params[i] = params[i] + t


# --- the whole training pass of a plain MLP (see numba_step) ----------------------

@intrinsic
def _gemm_call(typingctx, fn, ta, tb, m, n, k, alpha, a, lda, b, ldb, c, ldc):
    """cblas_?gemm(RowMajor, ta, tb, m, n, k, alpha, a, lda, b, ldb, 0, c, ldc)
    through the function at address ``fn`` (64-bit integers: NumPy's ILP64
    OpenBLAS); pointers arrive as integers."""
    sig = types.void(fn, ta, tb, m, n, k, alpha, a, lda, b, ldb, c, ldc)

    def codegen(context, builder, signature, args):
        fn, ta, tb, m, n, k, alpha, a, lda, b, ldb, c, ldc = args
        i32, i64, ptr = ir.IntType(32), ir.IntType(64), ir.IntType(8).as_pointer()
        real = alpha.type
        fnty = ir.FunctionType(ir.VoidType(), [i32, i32, i32, i64, i64, i64, real, ptr, i64,
                                               ptr, i64, real, ptr, i64])
        builder.call(builder.inttoptr(fn, fnty.as_pointer()),
                     [ir.Constant(i32, _ROW_MAJOR), builder.trunc(ta, i32),
                      builder.trunc(tb, i32), m, n, k, alpha, builder.inttoptr(a, ptr), lda,
                      builder.inttoptr(b, ptr), ldb, ir.Constant(real, 0.0),
                      builder.inttoptr(c, ptr), ldc])
    return sig, codegen


@njit(**_JIT)
def mm(fn, a, b, c, ta, tb):
    """c = op(a) @ op(b), op the transpose where asked; C-contiguous arrays."""
    m, n = c.shape
    k = a.shape[0] if ta else a.shape[1]
    _gemm_call(fn, _TRANS if ta else _NO_TRANS, _TRANS if tb else _NO_TRANS, m, n, k,
               c.dtype.type(1.0), a.ctypes.data, a.shape[1], b.ctypes.data, b.shape[1],
               c.ctypes.data, n)


@njit(**_JIT)
def mlp_forward(fn, x, labels, Ws, bs, has_bias, zs, hs, has_bn, update, gammas, betas, eps,
            stats, svs, runnings, counts, coefs, logits, shifted, true):
    """Train-mode forward to the shifted logits (the loss's first half);
    updates every BatchNorm's running statistics, counting the update and
    moving them by its (keep, c_mean, c_var) in ``coefs`` (``norms.running``'s
    rule, worked out by the caller). False on a bad label."""
    L = len(hs)
    h = x
    for l in range(L + 1):
        z = zs[l] if l < L else logits
        mm(fn, h, Ws[l], z, False, False)
        if has_bias[l]:
            b = bs[l]
            N, D = z.shape
            for i in range(N):
                for j in range(D):
                    z[i, j] = z[i, j] + b[j]
        if l == L:
            break
        if has_bn[l]:
            keep, cm, cv = stats[l][0, 0], stats[l][0, 0], stats[l][0, 0]
            if update[l]:
                counts[l][()] += 1
                keep, cm, cv = coefs[l][0], coefs[l][1], coefs[l][2]
            bn_train_forward(z, gammas[l], betas[l], eps[l], True, stats[l], svs[l], hs[l],
                               update[l], runnings[l], keep, cm, cv)
        else:
            relu_forward(z, hs[l])
        h = hs[l]
    return xent_shift(logits, labels, shifted, true)


@njit(**_JIT)
def mlp_backward(fn, x, labels, p, true, Ws, dWs, dbs, has_bias, zs, hs, dhs, dzs, has_bn,
             gammas, betas, dgammas, dbetas, eps, stats, svs):
    """From p = exp(shifted logits): the mean loss (returned) and, when it is
    finite, every gradient."""
    loss = xent_finish(labels, p, true)
    if not np.isfinite(loss):
        return loss
    L = len(hs)
    g = p
    for l in range(L, -1, -1):
        inp = x if l == 0 else hs[l - 1]
        mm(fn, inp, g, dWs[l], True, False)
        if has_bias[l]:
            col_sums(g, dbs[l])
        if l == 0:
            break
        dh = dhs[l - 1]
        mm(fn, g, Ws[l], dh, False, True)
        dz = dzs[l - 1]
        if has_bn[l - 1]:
            st = stats[l - 1]
            bn_backward(dh, zs[l - 1], True, True, st[0], st[1], betas[l - 1], eps[l - 1],
                          svs[l - 1], dgammas[l - 1], dbetas[l - 1], dz)
        else:
            relu_backward(dh, hs[l - 1], dz)
        g = dz
    return loss


# --- convolution: stride 1, padding <= k - 1 (conv.py's row layout) -----------------
#
# One sample at a time, so that its padded planes, im2col columns and product
# stay in cache (the whole batch's columns are megabytes): pad, im2col, one
# product, crop. The backward pass rebuilds the columns from the input instead
# of keeping them. Planes are flat with rows of Wr = W + p values (a row's right
# padding is the next row's left padding), so window (i, j) is the contiguous
# run starting at i*Wr + j and every output row is computed Wr wide; the extra
# columns are cropped, and their upstream gradient is held at zero.

@njit(**_JIT)
def _im2col_rows(xf, n, C, H, W, p, Wr, k, L, xp, cols):
    """cols[(c*k + i)*k + j, r] = padded plane c of sample n at i*Wr + j + r;
    xp holds the padded planes (only the image is written: the border stays 0).
    Flat arrays and unsigned indices (``u``): with signed ones numba checks
    every index for wrap-around and these copies do not vectorize (8x slower)."""
    P = u(xp.size) // C
    for c in range(C):
        src = (n * C + c) * H * W
        for h in range(H):
            dst = c * P + (h + p) * Wr + p
            s = src + h * W
            for w in range(W):
                xp[dst + w] = xf[s + w]
        for i in range(k):
            for j in range(k):
                dst = ((c * k + i) * k + j) * L
                s = c * P + i * Wr + j
                for r in range(L):
                    cols[dst + r] = xp[s + r]


@njit(**_JIT)
def conv_forward(fn, x, W2, b, has_bias, k, p, xp, cols, yw, y):
    """y (N, O, Ho, Wo) = the convolution of x (N, C, H, W) with W2 (O, C*k*k), plus b."""
    N, O, Ho, Wo = u(y.shape[0]), u(y.shape[1]), u(y.shape[2]), u(y.shape[3])
    C, H, W = u(x.shape[1]), u(x.shape[2]), u(x.shape[3])
    k, p = u(k), u(p)
    Wr = W + p
    L = Ho * Wr
    xf, xpf, colf, ywf, yf = x.ravel(), xp.ravel(), cols.ravel(), yw.ravel(), y.ravel()
    for n in range(N):
        _im2col_rows(xf, n, C, H, W, p, Wr, k, L, xpf, colf)
        mm(fn, W2, cols, yw, False, False)
        for o in range(O):
            for h in range(Ho):
                src, dst = o * L + h * Wr, ((n * O + o) * Ho + h) * Wo
                if has_bias:
                    for w in range(Wo):
                        yf[dst + w] = ywf[src + w] + b[o]
                else:
                    for w in range(Wo):
                        yf[dst + w] = ywf[src + w]


@njit(**_JIT)
def conv_backward(fn, x, dy, W2, k, p, xp, cols, dyw, dwn, dWt, dW2, has_bias, db, input_grad,
                  dcols, dxp, dx):
    """dW2 (O, C*k*k): the sum over samples of dy[n] @ columns[n].T, in sample
    order (computed transposed, in dWt: columns[n] @ dy[n].T, as the NumPy
    engine does, because OpenBLAS is faster that way on these shapes); db: dy summed over
    samples and positions (in float64); with ``input_grad``, dx (N, C, H, W)
    by col2im of W2.T @ dy[n]."""
    N, O, Ho, Wo = u(dy.shape[0]), u(dy.shape[1]), u(dy.shape[2]), u(dy.shape[3])
    C, H, W = u(x.shape[1]), u(x.shape[2]), u(x.shape[3])
    k, p = u(k), u(p)
    Wr = W + p
    L = Ho * Wr
    Kc = u(dWt.shape[0])
    P = u(xp.size) // C
    xf, xpf, colf, dywf, dyf = x.ravel(), xp.ravel(), cols.ravel(), dyw.ravel(), dy.ravel()
    dWtf, dwnf, dcolf, dxpf, dxf = dWt.ravel(), dwn.ravel(), dcols.ravel(), dxp.ravel(), dx.ravel()
    sums = np.zeros(dy.shape[1])
    for n in range(N):
        for o in range(O):
            acc = 0.0
            for h in range(Ho):
                src, dst = ((n * O + o) * Ho + h) * Wo, o * L + h * Wr
                for w in range(Wo):
                    dywf[dst + w] = dyf[src + w]  # columns Wo..Wr-1 stay 0
                if has_bias:
                    for w in range(Wo):
                        acc += dyf[src + w]
            sums[o] += acc
        _im2col_rows(xf, n, C, H, W, p, Wr, k, L, xpf, colf)
        if n == 0:
            mm(fn, cols, dyw, dWt, False, True)
        else:
            mm(fn, cols, dyw, dwn, False, True)
            for q in range(Kc * O):
                dWtf[q] = dWtf[q] + dwnf[q]
        if not input_grad:
            continue
        mm(fn, W2, dyw, dcols, True, False)
        dxpf[:] = 0
        for c in range(C):
            for i in range(k):
                for j in range(k):
                    src, dst = ((c * k + i) * k + j) * L, c * P + i * Wr + j
                    for r in range(L):
                        dxpf[dst + r] += dcolf[src + r]
            for h in range(H):
                src, dst = c * P + (h + p) * Wr + p, ((n * C + c) * H + h) * W
                for w in range(W):
                    dxf[dst + w] = dxpf[src + w]
    for o in range(O):
        for q in range(Kc):
            dW2[o, q] = dWt[q, o]
        if has_bias:
            db[o] = sums[o]


# --- convolution: any stride, padding <= k - 1 (columns Ho*Wo wide) -------------
#
# Strided windows do not line up as contiguous runs of a row layout, so the
# columns are the plain im2col ones, (C*k*k, Ho*Wo) per sample, gathered
# straight from the unpadded input: a window position that falls in the
# padding is never written, and stays 0 from the columns' allocation (it is
# in the padding for every sample alike). The product then lands directly in
# the sample's (O, Ho*Wo) output, and col2im adds straight into dx.

@njit(**_JIT)
def _span(count, s, off, size):
    """The outputs o in [lo, hi) of ``count`` whose input position o*s + off
    lies inside [0, size) (signed arithmetic: off may be negative)."""
    lo = 0 if off >= 0 else (s - 1 - off) // s
    last = size - 1 - off
    hi = min(count, last // s + 1) if last >= 0 else 0
    return lo, max(lo, hi)


@njit(**_JIT)
def _im2col_strided(xf, n, C, H, W, k, s, p, Ho, Wo, cols):
    """cols[(c*k + i)*k + j, h*Wo + w] = x[n, c, h*s + i - p, w*s + j - p] where
    that lies inside the image (xf: x flat); the rest of cols is left as it is."""
    L = Ho * Wo
    for i in range(k):
        h0, h1 = _span(Ho, s, i - p, H)
        for j in range(k):
            w0, w1 = _span(Wo, s, j - p, W)
            run, us = u(w1 - w0), u(s)
            for c in range(C):
                row = ((c * k + i) * k + j) * L
                for h in range(h0, h1):
                    src = u(((n * C + c) * H + h * s + i - p) * W + w0 * s + j - p)
                    dst = u(row + h * Wo + w0)
                    for t in range(run):
                        cols[dst + t] = xf[src + t * us]


@njit(**_JIT)
def conv_forward_strided(fn, x, W2, b, has_bias, k, s, p, cols, y):
    """y (N, O, Ho, Wo) = the convolution of x (N, C, H, W) with W2 (O, C*k*k)
    at stride s, plus b; cols (C*k*k, Ho*Wo) must start as zeros."""
    N, O, Ho, Wo = y.shape
    C, H, W = x.shape[1], x.shape[2], x.shape[3]
    L, Kc = Ho * Wo, W2.shape[1]
    xf, yf, colf, size = x.ravel(), y.ravel(), cols.ravel(), y.itemsize
    for n in range(N):
        _im2col_strided(xf, n, C, H, W, k, s, p, Ho, Wo, colf)
        _gemm_call(fn, _NO_TRANS, _NO_TRANS, O, L, Kc, y.dtype.type(1.0), W2.ctypes.data, Kc,
                   cols.ctypes.data, L, y.ctypes.data + u(n * O * L * size), L)
        if has_bias:
            for o in range(O):
                start = (n * O + o) * L
                for r in range(L):
                    yf[start + r] = yf[start + r] + b[o]


@njit(**_JIT)
def conv_backward_strided(fn, x, dy, W2, k, s, p, cols, dwn, dWt, dW2, has_bias, db, input_grad,
                          dcols, dx):
    """The strided ``conv_backward``: dW2 (O, C*k*k) as the sum over samples of
    columns[n] @ dy[n].T (computed transposed, in dWt, in sample order); db
    in float64; with ``input_grad``, dx (N, C, H, W) by col2im of W2.T @ dy[n],
    each window offset (i, j) added in turn, as the NumPy engine adds them."""
    N, O, Ho, Wo = dy.shape
    C, H, W = x.shape[1], x.shape[2], x.shape[3]
    L, Kc = Ho * Wo, W2.shape[1]
    xf, dyf, dxf, colf, dcolf = x.ravel(), dy.ravel(), dx.ravel(), cols.ravel(), dcols.ravel()
    dWtf, dwnf = dWt.ravel(), dwn.ravel()
    one, size = dy.dtype.type(1.0), dy.itemsize
    sums = np.zeros(O)
    for n in range(N):
        at = dy.ctypes.data + u(n * O * L * size)  # the sample's (O, L) gradient
        if has_bias:
            for o in range(O):
                acc, start = 0.0, (n * O + o) * L
                for r in range(L):
                    acc += dyf[start + r]
                sums[o] += acc
        _im2col_strided(xf, n, C, H, W, k, s, p, Ho, Wo, colf)
        target = dWt if n == 0 else dwn
        _gemm_call(fn, _NO_TRANS, _TRANS, Kc, O, L, one, cols.ctypes.data, L, at, L,
                   target.ctypes.data, O)
        if n > 0:
            for q in range(Kc * O):
                dWtf[q] = dWtf[q] + dwnf[q]
        if not input_grad:
            continue
        _gemm_call(fn, _TRANS, _NO_TRANS, Kc, L, O, one, W2.ctypes.data, Kc, at, L,
                   dcols.ctypes.data, L)
        base = n * C * H * W
        dxf[base:base + C * H * W] = 0
        for c in range(C):
            for i in range(k):
                h0, h1 = _span(Ho, s, i - p, H)
                for j in range(k):
                    w0, w1 = _span(Wo, s, j - p, W)
                    run, us = u(w1 - w0), u(s)
                    row = ((c * k + i) * k + j) * L
                    for h in range(h0, h1):
                        dst = u(base + (c * H + h * s + i - p) * W + w0 * s + j - p)
                        src = u(row + h * Wo + w0)
                        for t in range(run):
                            dxf[dst + t * us] += dcolf[src + t]
    for o in range(O):
        for q in range(Kc):
            dW2[o, q] = dWt[q, o]
        if has_bias:
            db[o] = sums[o]
