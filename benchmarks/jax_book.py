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


def _loss(params, stats, x, y):
    import jax
    import jax.numpy as jnp

    logits, batch_stats = _forward(params, stats, x, True)
    lse = jax.nn.logsumexp(logits, axis=1)
    true = jnp.take_along_axis(logits, y[:, None], axis=1)[:, 0]
    return jnp.mean(lse - true), batch_stats


def _train_step(params, stats, x, y):
    import jax

    grads, batch_stats = jax.grad(_loss, has_aux=True)(params, stats, x, y)
    params = jax.tree_util.tree_map(lambda p, g: p - LR * g, params, grads)
    n = x.shape[0]
    stats = {"mean": [(1 - MOMENTUM) * m + MOMENTUM * mu
                      for m, (mu, _) in zip(stats["mean"], batch_stats)],
             "var": [(1 - MOMENTUM) * v + MOMENTUM * var * (n / (n - 1))
                     for v, (_, var) in zip(stats["var"], batch_stats)]}
    return params, stats


def cycling_trainer(chunks, steps: int):
    """A no-argument function that runs ``steps`` SGD steps as one jitted scan
    over the given (x, y) batches in turn (as the NumPy columns cycle through
    them), and waits for the result. Compiled by its first call."""
    import jax
    import jax.numpy as jnp

    xs = jnp.stack([jnp.asarray(x) for x, _ in chunks])
    ys = jnp.stack([jnp.asarray(y, dtype=jnp.int32) for _, y in chunks])
    k = len(chunks)

    @jax.jit
    def run(params, stats, xs, ys):
        def body(carry, i):
            p, s = carry
            return _train_step(p, s, xs[i % k], ys[i % k]), None
        return jax.lax.scan(body, (params, stats), jnp.arange(steps))[0]

    state = {"c": init(0)}

    def call():
        state["c"] = run(*state["c"], xs, ys)
        jax.block_until_ready(state["c"])
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
