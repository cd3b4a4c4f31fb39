"""The book's network (784-100x5-10, ReLU, BN before the activation, no bias
before BN, SGD lr 0.01, float32) written as a careful JAX user would write it:
the whole training loop as one jitted ``lax.scan`` whose body gathers its
batch, runs forward and ``jax.grad``, updates the running statistics and
takes the SGD step. Compile time is excluded by the callers (they call once
before timing). The JAX peer of ``throughput.py`` and ``epoch_vs_jax.py``.

Import this module only after ``configure_threads`` has set XLA's flags.
"""

from __future__ import annotations

import os

SIZES = [784, 100, 100, 100, 100, 100, 10]
LR, EPS, MOMENTUM = 0.01, 1e-5, 0.1


def configure_threads(threads: int) -> None:
    """XLA's CPU client runs its own thread pool: for one thread, turn off
    Eigen's multi-threading and intra-op parallelism (before jax loads)."""
    if threads == 1:
        flags = os.environ.get("XLA_FLAGS", "")
        os.environ["XLA_FLAGS"] = (flags + " --xla_cpu_multi_thread_eigen=false "
                                   "intra_op_parallelism_threads=1").strip()


def available() -> bool:
    try:
        import jax  # noqa: F401
    except ImportError:
        return False
    return True


def init(seed: int = 0):
    """Parameters (weights N(0, 0.01^2), gamma 1, beta 0, output bias 0) and
    running statistics (mean 0, variance 1), as float32 JAX arrays."""
    import jax
    import jax.numpy as jnp

    keys = jax.random.split(jax.random.PRNGKey(seed), len(SIZES) - 1)
    params = {"W": [0.01 * jax.random.normal(k, (a, b), jnp.float32)
                    for k, a, b in zip(keys, SIZES, SIZES[1:])],
              "gamma": [jnp.ones(d, jnp.float32) for d in SIZES[1:-1]],
              "beta": [jnp.zeros(d, jnp.float32) for d in SIZES[1:-1]],
              "b_out": jnp.zeros(SIZES[-1], jnp.float32)}
    stats = {"mean": [jnp.zeros(d, jnp.float32) for d in SIZES[1:-1]],
             "var": [jnp.ones(d, jnp.float32) for d in SIZES[1:-1]]}
    return params, stats


def _forward(params, stats, x, train: bool):
    import jax.numpy as jnp

    h, batch_stats = x, []
    for i in range(len(SIZES) - 2):
        h = h @ params["W"][i]
        if train:
            mu = h.mean(axis=0)
            var = ((h - mu) ** 2).mean(axis=0)
            batch_stats.append((mu, var))
        else:
            mu, var = stats["mean"][i], stats["var"][i]
        h = (h - mu) * (params["gamma"][i] / jnp.sqrt(var + EPS)) + params["beta"][i]
        h = jnp.maximum(h, 0.0)
    return h @ params["W"][-1] + params["b_out"], batch_stats


def _xent(logits, y):
    import jax
    import jax.numpy as jnp

    lse = jax.nn.logsumexp(logits, axis=1)
    return jnp.mean(lse - jnp.take_along_axis(logits, y[:, None], axis=1)[:, 0])


def _loss(params, stats, x, y):
    logits, batch_stats = _forward(params, stats, x, True)
    return _xent(logits, y), [(mu, var, x.shape[0]) for mu, var in batch_stats]


def _sgd_step(loss, params, stats, x, y):
    """One SGD step of ``loss`` (returning the loss and each BN's batch mean,
    variance and count), and PyTorch's running-statistics update."""
    import jax

    grads, batch_stats = jax.grad(loss, has_aux=True)(params, stats, x, y)
    params = jax.tree_util.tree_map(lambda p, g: p - LR * g, params, grads)
    stats = {"mean": [(1 - MOMENTUM) * m + MOMENTUM * mu
                      for m, (mu, _, _) in zip(stats["mean"], batch_stats)],
             "var": [(1 - MOMENTUM) * v + MOMENTUM * var * (n / (n - 1))
                     for v, (_, var, n) in zip(stats["var"], batch_stats)]}
    return params, stats


def _train_step(params, stats, x, y):
    return _sgd_step(_loss, params, stats, x, y)


def cnn_init(seed: int = 0, channels=(16, 32)):
    """cnn_throughput.py's CNN: conv3x3 (no bias) -> BN -> ReLU -> maxpool 2 per
    channel count, then a linear layer to 10 classes; He-normal weights. Laid
    out NHWC (Flax's default; measured here, XLA's CPU convolutions run NCHW
    about 6x slower)."""
    import jax
    import jax.numpy as jnp

    keys = jax.random.split(jax.random.PRNGKey(seed), len(channels) + 1)
    convs, c_in = [], 1
    for k, c in zip(keys, channels):
        convs.append(jax.random.normal(k, (3, 3, c_in, c), jnp.float32) * (2 / (c_in * 9)) ** 0.5)
        c_in = c
    flat = c_in * (28 // 2 ** len(channels)) ** 2
    params = {"conv": convs, "gamma": [jnp.ones(c, jnp.float32) for c in channels],
              "beta": [jnp.zeros(c, jnp.float32) for c in channels],
              "W": jax.random.normal(keys[-1], (flat, 10), jnp.float32) * (2 / flat) ** 0.5,
              "b": jnp.zeros(10, jnp.float32)}
    stats = {"mean": [jnp.zeros(c, jnp.float32) for c in channels],
             "var": [jnp.ones(c, jnp.float32) for c in channels]}
    return params, stats


def _cnn_loss(params, stats, x, y):
    import jax
    import jax.numpy as jnp

    h, batch_stats = x.reshape(-1, 28, 28, 1), []  # NHWC: XLA's fast layout on CPU
    for i, w in enumerate(params["conv"]):
        h = jax.lax.conv_general_dilated(h, w, (1, 1), ((1, 1), (1, 1)),
                                         dimension_numbers=("NHWC", "HWIO", "NHWC"))
        mu = h.mean(axis=(0, 1, 2))
        var = ((h - mu) ** 2).mean(axis=(0, 1, 2))
        batch_stats.append((mu, var, h.size // h.shape[3]))
        h = (h - mu) * (params["gamma"][i] / jnp.sqrt(var + EPS)) + params["beta"][i]
        h = jnp.maximum(h, 0.0)
        n, hh, ww, c = h.shape  # 2x2 max pooling as a reshape and a max: XLA's CPU
        h = h.reshape(n, hh // 2, 2, ww // 2, 2, c).max(axis=(2, 4))  # reduce_window is slower
    logits = h.reshape(h.shape[0], -1) @ params["W"] + params["b"]
    return _xent(logits, y), batch_stats


def _cnn_step(params, stats, x, y):
    return _sgd_step(_cnn_loss, params, stats, x, y)


def cycling_trainer(chunks, steps: int, cnn: bool = False):
    """A no-argument function that runs ``steps`` SGD steps as one jitted scan
    over the given (x, y) batches in turn (as the NumPy columns cycle through
    them), and waits for the result. Compiled by its first call. ``cnn``: the
    CNN of cnn_throughput.py instead of the book's MLP."""
    import jax
    import jax.numpy as jnp

    xs = jnp.stack([jnp.asarray(x) for x, _ in chunks])
    ys = jnp.stack([jnp.asarray(y, dtype=jnp.int32) for _, y in chunks])
    k = len(chunks)

    @jax.jit
    def run(params, stats, xs, ys):
        def body(carry, i):
            p, s = carry
            return step(p, s, xs[i % k], ys[i % k]), None
        return jax.lax.scan(body, (params, stats), jnp.arange(steps))[0]

    step = _cnn_step if cnn else _train_step
    state = {"c": cnn_init(0) if cnn else init(0)}

    def call():
        state["c"] = run(*state["c"], xs, ys)
        jax.block_until_ready(state["c"])
    return call


def stepping_trainer(chunks, steps: int, cnn: bool = False):
    """As ``cycling_trainer``, but one jitted call per step from a Python loop.
    For the CNN this is JAX's best here: inside ``lax.scan`` XLA 0.10.2's CPU
    convolutions ran about 15x slower (149 against 10 ms a step at batch 64)."""
    import jax
    import jax.numpy as jnp

    data = [(jnp.asarray(x), jnp.asarray(y, dtype=jnp.int32)) for x, y in chunks]
    run = jax.jit(_cnn_step if cnn else _train_step)
    state = {"c": cnn_init(0) if cnn else init(0), "i": 0}

    def call():
        c = state["c"]
        for _ in range(steps):
            x, y = data[state["i"] % len(data)]
            c = run(*c, x, y)
            state["i"] += 1
        state["c"] = c
        jax.block_until_ready(c)
    return call


def epoch_program(x_train, y_train, x_test, y_test, batch: int, seed: int = 0):
    """One epoch as the issue describes it: a shuffled pass over the training
    set (the gather of each batch inside the jitted scan), then the loss and
    accuracy of both splits in eval mode (in chunks of 2048, as bnexp does).
    Returns ``run() -> (train_loss, train_acc, test_loss, test_acc)``."""
    import jax
    import jax.numpy as jnp

    X, Y = jnp.asarray(x_train), jnp.asarray(y_train, dtype=jnp.int32)
    Xt, Yt = jnp.asarray(x_test), jnp.asarray(y_test, dtype=jnp.int32)
    steps = len(x_train) // batch

    @jax.jit
    def train(params, stats, key):
        order = jax.random.permutation(key, X.shape[0])[: steps * batch].reshape(steps, batch)

        def body(carry, idx):
            p, s = carry
            return _train_step(p, s, X[idx], Y[idx]), None
        return jax.lax.scan(body, (params, stats), order)[0]

    def evaluate(params, stats, x, y, chunk=2048):
        n = x.shape[0]
        full = n // chunk * chunk

        def scores(xb, yb):
            logits, _ = _forward(params, stats, xb, False)
            lse = jax.nn.logsumexp(logits, axis=1)
            true = jnp.take_along_axis(logits, yb[:, None], axis=1)[:, 0]
            return jnp.sum(lse - true), jnp.sum(jnp.argmax(logits, axis=1) == yb)

        def body(acc, i):
            xb = jax.lax.dynamic_slice_in_dim(x, i * chunk, chunk)
            yb = jax.lax.dynamic_slice_in_dim(y, i * chunk, chunk)
            loss, hits = scores(xb, yb)
            return (acc[0] + loss, acc[1] + hits), None
        (loss, hits), _ = jax.lax.scan(body, (0.0, 0), jnp.arange(full // chunk))
        if full < n:
            rl, rh = scores(x[full:], y[full:])
            loss, hits = loss + rl, hits + rh
        return loss / n, hits / n

    @jax.jit
    def epoch(params, stats, key):
        params, stats = train(params, stats, key)
        return (params, stats, evaluate(params, stats, X, Y), evaluate(params, stats, Xt, Yt))

    key = jax.random.PRNGKey(seed)

    def run():
        params, stats = init(seed)
        out = epoch(params, stats, key)
        jax.block_until_ready(out)
        (trl, tra), (tel, tea) = out[2], out[3]
        return float(trl), float(tra), float(tel), float(tea)
    return run
