"""The training loop: one config in, metrics (and optional diagnostics) out.

No files are touched here; ``runner`` writes the run folder through ``store``
(whose METRIC_COLUMNS, DIAGNOSTIC_COLUMNS and STEP_COLUMNS name the keys of
the rows made here).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from . import store
from .config import IMAGE_SIZE, Config, data_shape
from .datasets import Dataset, load_dataset
from .engine import Dropout, Network, NoisyShift, make_optimizer
from .engine.model import NormSettings, build, cnn_layers, mlp_layers
from .engine.norms import Renorm
from .engine.spec import check_values, describe
from .provenance import one_blas_thread


@dataclass
class TrainResult:
    """What a run produced. ``status`` is ``completed`` or ``diverged``."""

    status: str
    metrics: list[dict] = field(default_factory=list)
    diagnostics: list[dict] = field(default_factory=list)
    steps: list[dict] = field(default_factory=list)
    diverged_at: dict | None = None  # {"step": s, "epoch": e} of the first non-finite loss
    model: Network | None = None  # the trained model (in the state training left it)
    landscape: list[dict] = field(default_factory=list)  # eval.landscape_every probes
    ics: list[dict] = field(default_factory=list)  # eval.ics_every measurements
    variance_shift: float | None = None  # BN inputs after dropout: train-mode / eval variance
    step_seconds: float | None = None  # mean wall time of a training step (batch, fwd, bwd, update)


@dataclass
class Checkpoint:
    """Everything that decides the rest of a run after ``epoch`` epochs: the
    model's parameters and buffers, the optimizer's state, the random streams
    still in use (batches, each dropout layer), and what has been recorded.
    Resuming from it gives the numbers an uninterrupted run gives."""

    epoch: int
    step: int
    elapsed: float  # seconds of training behind it (the metrics' elapsed column goes on)
    model: dict[str, np.ndarray]
    optimizer: dict[str, np.ndarray]
    rngs: dict[str, dict]  # bit generator states by stream: "batches", dropout layer names
    metrics: list[dict] = field(default_factory=list)
    diagnostics: list[dict] = field(default_factory=list)
    steps: list[dict] = field(default_factory=list)
    landscape: list[dict] = field(default_factory=list)
    ics: list[dict] = field(default_factory=list)


# The rows a run records as it goes, by their name in TrainResult and Checkpoint.
RECORDS = ("metrics", "diagnostics", "steps", "landscape", "ics")


# Step sizes of a landscape probe, as multiples of train.lr (Santurkar et al. move
# along the gradient over a range of step sizes around the one training takes).
LANDSCAPE_MULTIPLIERS = (0.25, 0.5, 1.0, 2.0, 4.0)


class _Probe:
    """Extra forward and backward passes on a training step's batch that must
    leave training as it was (the landscape and ICS measurements). On entry it
    saves the parameters and gradients, every buffer (BN's running statistics)
    and the random streams of dropout and noise layers; ``reset()`` puts the
    buffers back and rewinds those streams to ``drawn`` (their state before the
    step, so a probe sees the step's own masks and noise); ``close()`` restores
    everything, the streams to where the step left them."""

    def __init__(self, model: Network, opt, own_streams: dict, drawn: dict) -> None:
        self.opt, self.own_streams, self.drawn = opt, own_streams, drawn
        self.theta, self.g = opt.params.copy(), opt.grads.copy()
        self.buffers = [(layer, {k: v.copy() for k, v in layer.buffers.items()})
                        for layer in model.layers if layer.buffers]
        self.after = {name: layer.rng.bit_generator.state
                      for name, layer in own_streams.items()}
        self.reset()

    def _streams(self, states: dict) -> None:
        for name, layer in self.own_streams.items():
            layer.rng.bit_generator.state = states[name]

    def reset(self) -> None:
        for layer, saved in self.buffers:
            for k, v in saved.items():
                layer.buffers[k][...] = v
        self._streams(self.drawn)

    def close(self) -> None:
        self.reset()
        self._streams(self.after)
        self.opt.params[...] = self.theta
        self.opt.grads[...] = self.g


def _landscape(model: Network, opt, x: np.ndarray, y: np.ndarray, lr: float, step: int,
               epoch: float, own_streams: dict, drawn: dict) -> list[dict]:
    """Probe the loss and gradient at theta - eta * g for each step size eta, on
    this step's batch, in train mode (Santurkar et al. 2018, section 3.1): rows
    of (eta, loss there, ||gradient there - g||, ||g||). Training goes on
    exactly as without the probe (``_Probe``)."""
    probe = _Probe(model, opt, own_streams, drawn)
    theta, g = probe.theta, probe.g
    g_norm = float(np.linalg.norm(g))
    rows = []
    for m in LANDSCAPE_MULTIPLIERS:
        eta = m * lr
        np.subtract(theta, eta * g, out=opt.params)
        loss = model.loss_and_backward(x, y)
        change = float(np.linalg.norm(opt.grads - g)) if np.isfinite(loss) else float("nan")
        rows.append({"step": step, "epoch": epoch, "eta": eta, "loss": float(loss),
                     "grad_change": change, "grad_norm": g_norm})
        probe.reset()
    probe.close()
    return rows


def _ics(model: Network, opt, x: np.ndarray, y: np.ndarray, lr: float, step: int,
         epoch: float, own_streams: dict, drawn: dict) -> list[dict]:
    """Internal covariate shift as Santurkar et al. (2018, section 2.2) define it:
    for the i-th weight layer, G is its weight gradient now, and G' its weight
    gradient on the same batch after every layer before it has taken this
    step's update (an SGD step of size lr); rows of (layer i, ||G - G'|| /
    ||G||, cos(G, G')). Zero for the first layer by definition. Training goes
    on exactly as without it (``_Probe``)."""
    probe = _Probe(model, opt, own_streams, drawn)
    theta, g = probe.theta, probe.g
    # Each layer's slice of the packed parameters, in order; a weight layer's "W"
    # (or weight norm's "v") gradient is what ICS compares.
    offsets, i = {}, 0
    for layer, key in opt.slots:
        offsets[(id(layer), key)] = (i, i + layer.params[key].size)
        i += layer.params[key].size
    weight_layers = [layer for layer in model.layers
                     if "W" in layer.params or "v" in layer.params]
    rows = []
    for index, layer in enumerate(weight_layers, start=1):
        lo, hi = offsets[(id(layer), "W" if "W" in layer.params else "v")]
        start = min(offsets[(id(layer), k)][0] for k in layer.params)
        opt.params[...] = theta
        opt.params[:start] -= lr * g[:start]  # every layer before this one takes its step
        model.loss_and_backward(x, y)
        G, G2 = g[lo:hi].astype(np.float64), opt.grads[lo:hi].astype(np.float64)
        norm, norm2 = np.linalg.norm(G), np.linalg.norm(G2)
        rows.append({"step": step, "epoch": epoch, "layer": index,
                     "l2": float(np.linalg.norm(G - G2) / norm) if norm > 0 else float("nan"),
                     "cosine": float(G @ G2 / (norm * norm2)) if norm * norm2 > 0
                     else float("nan")})
        probe.reset()
    probe.close()
    return rows


@dataclass(frozen=True)
class Streams:
    """Independent random streams, all from the config's seed. (A stream added
    later takes the next child of the seed sequence, so the others keep their
    numbers.)"""

    data: np.random.Generator
    init: np.random.Generator
    batches: np.random.Generator
    precise: np.random.Generator  # the batches precise BN averages over
    shift: np.random.Generator  # the dropout masks of the variance-shift measurement

    @classmethod
    def from_seed(cls, seed: int) -> Streams:
        return cls(*(np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(5)))


def variance_shift(model: Network, x: np.ndarray, rng: np.random.Generator) -> float | None:
    """Li et al. (2019)'s variance shift: for every BatchNorm with a Dropout
    somewhere before it, the variance of each of its input units over ``x``
    with the dropouts active (train mode) over the same with them off (eval
    mode; every other layer in eval mode both times), averaged over units and
    such layers. Above 1: BN's running statistics, gathered in training, see
    a wider input than it gets at test time. None where no BN follows a dropout."""
    from .engine import BatchNorm

    def inputs(dropout_on: bool) -> dict[int, np.ndarray]:
        h, seen, out = model.as_input(x), False, {}
        for i, layer in enumerate(model.layers):
            if isinstance(layer, BatchNorm) and seen:
                out[i] = h.astype(np.float64)
            seen |= isinstance(layer, Dropout)
            h = layer.forward(h, isinstance(layer, Dropout) and dropout_on)
        return out

    dropouts = [layer for layer in model.layers if isinstance(layer, Dropout)]
    saved = [d.rng for d in dropouts]
    for d in dropouts:
        d.rng = rng
    try:
        on, off = inputs(True), inputs(False)
    finally:
        for d, r in zip(dropouts, saved):
            d.rng = r
    ratios = []
    for i in on:
        axes = (0, *range(2, on[i].ndim))
        v_on, v_off = on[i].var(axis=axes), off[i].var(axis=axes)
        keep = v_off > 0
        ratios.append(float(np.mean(v_on[keep] / v_off[keep])))
    return float(np.mean(ratios)) if ratios else None


def precise_bn(model: Network, x: np.ndarray, batch_size: int, batches: int,
               rng: np.random.Generator) -> None:
    """Precise BN: replace every BatchNorm's running statistics by the
    average, over ``batches`` batches of training samples (drawn without
    replacement within each pass), of the batch means and unbiased variances,
    the average the running statistics only approximate with their momentum.
    Train-mode forward passes only: no parameter changes."""
    from .engine import BatchNorm

    bns = [layer for layer in model.layers if isinstance(layer, BatchNorm)]
    saved = [bn.momentum for bn in bns]
    for bn in bns:
        bn.set_momentum(None)  # a cumulative average from here
        bn.buffers["num_batches_tracked"].fill(0)
    order = np.empty(0, dtype=np.int64)
    for _ in range(batches):
        if len(order) < batch_size:
            order = np.concatenate([order, rng.permutation(len(x))])
        idx, order = order[:batch_size], order[batch_size:]
        model.forward(x[idx], train=True)
    for bn, momentum in zip(bns, saved):
        bn.set_momentum(momentum)


def layer_list(cfg: Config) -> list:
    """The layer list a config's model section describes."""
    m = cfg.model
    common = {"activation": m.activation, "norm": m.norm, "placement": m.placement,
              "dropout": m.dropout, "dropout_at": m.dropout_at}
    if m.arch == "cnn":
        return cnn_layers(m.channels, kernel=m.kernel, pool=m.pool, head=m.head,
                          hidden=m.hidden, **common)
    return mlp_layers(m.hidden, **common)


def build_model(cfg: Config, in_dim: int, classes: int, rng: np.random.Generator) -> Network:
    m, n = cfg.model, cfg.norm
    in_shape = (1, IMAGE_SIZE, IMAGE_SIZE) if m.arch == "cnn" else (in_dim,)
    if m.arch == "cnn" and in_dim != IMAGE_SIZE * IMAGE_SIZE:
        raise ValueError(f"model.arch cnn needs {IMAGE_SIZE}x{IMAGE_SIZE} images, "
                         f"got samples of {in_dim} values")
    renorm = (Renorm(n.rmax, n.dmax, n.renorm_warmup, n.renorm_bn_steps, n.renorm_running)
              if n.renorm else None)
    settings = NormSettings(m.norm, m.groups, n.momentum, n.eps, n.affine,
                            n.track_running_stats, n.convention, n.ghost_batch, n.noise, renorm)
    return build(layer_list(cfg), in_shape, classes, rng=rng, norm=settings,
                 weight_scale=cfg.init.weight_scale, dtype=np.dtype(cfg.train.dtype),
                 kernels=cfg.train.kernels)


def warm_kernels(cfgs) -> None:
    """Compile the numba kernels that ``cfgs`` will run (or load them from
    numba's disk cache), once per distinct model, by training one small step
    of it on random rows: parallel workers started afterwards then load them
    from the cache instead of each compiling them. Configs on the NumPy
    kernels need nothing."""
    seen = set()
    for cfg in cfgs:
        if cfg.train.kernels != "numba":
            continue
        key = (repr(cfg.model), repr(cfg.norm), cfg.train.dtype, cfg.train.optimizer)
        if key in seen:
            continue
        seen.add(key)
        dim, classes = data_shape(cfg)
        rng = np.random.default_rng(0)
        model = build_model(cfg, dim, classes, rng)
        opt = make_optimizer(cfg.train.optimizer, model.layers, cfg.train.lr,
                             kernels=cfg.train.kernels)
        x = rng.random((4, dim)).astype(cfg.train.dtype)
        y = np.arange(4) % classes
        with one_blas_thread(), np.errstate(all="ignore"):
            model.loss_and_backward(x, y)
            opt.step()
            model.evaluate(x, y)


# The columns of each record's rows: those of the CSV file each becomes.
RECORD_COLUMNS = {"metrics": store.METRIC_COLUMNS,
                  **{name: columns for name, (_, columns) in store.TABLES.items()}}


def check_resume(cfg: Config, ckpt: Checkpoint) -> None:
    """A checkpoint ``cfg``'s run could have written: ValueError, one line,
    for anything else (an epoch it never checkpoints at, records that do not
    lead up to it, random streams that are not PCG64's, arrays that do not
    fit its model and optimizer). Builds the model once, on dummy sizes."""
    t = cfg.train
    if not (isinstance(ckpt.epoch, int) and 1 <= ckpt.epoch < t.epochs and t.checkpoint_every
            and ckpt.epoch % t.checkpoint_every == 0):
        raise ValueError(f"epoch {ckpt.epoch!r}: this config checkpoints after every "
                         f"{t.checkpoint_every}-th of {t.epochs} epochs (but the last)")
    if not (isinstance(ckpt.step, int) and ckpt.step >= ckpt.epoch
            and ckpt.step % ckpt.epoch == 0):
        raise ValueError(f"step {ckpt.step!r}: not a whole number of epochs of steps by "
                         f"epoch {ckpt.epoch}")
    per_epoch = ckpt.step // ckpt.epoch
    if cfg.data.n_train is not None and per_epoch != steps_per_epoch(cfg, cfg.data.n_train):
        raise ValueError(f"step {ckpt.step}: {per_epoch} steps per epoch, but this config makes "
                         f"{steps_per_epoch(cfg, cfg.data.n_train)}")
    _check_records(cfg, ckpt, per_epoch)
    model = build_model(cfg, *data_shape(cfg), np.random.default_rng(0))
    model.load_state_dict(ckpt.model)
    check_values(describe(model), ckpt.model)
    make_optimizer(t.optimizer, model.layers, t.lr, momentum=t.momentum, nesterov=t.nesterov,
                   weight_decay=t.weight_decay).load_state_dict(ckpt.optimizer)
    streams = ["batches", *(name for name, layer in model.named_layers()
                            if isinstance(layer, (Dropout, NoisyShift)))]
    if not isinstance(ckpt.rngs, dict) or sorted(ckpt.rngs) != sorted(streams):
        got = sorted(ckpt.rngs) if isinstance(ckpt.rngs, dict) else ckpt.rngs
        raise ValueError(f"random streams {got!r}, expected {streams}")
    for name, state in ckpt.rngs.items():
        _check_pcg64(name, state)


def _check_pcg64(name: str, state) -> None:
    """A PCG64 bit generator's state as numpy writes it (numpy's own setter
    takes an even increment or has_uint32 of 2 without a word)."""
    inner = state.get("state") if isinstance(state, dict) else None
    ok = (isinstance(inner, dict) and state.get("bit_generator") == "PCG64"
          and set(state) == {"bit_generator", "state", "has_uint32", "uinteger"}
          and set(inner) == {"state", "inc"}
          and all(isinstance(v, int) and not isinstance(v, bool) for v in (
              inner["state"], inner["inc"], state["has_uint32"], state["uinteger"]))
          and 0 <= inner["state"] < 1 << 128 and 0 < inner["inc"] < 1 << 128
          and inner["inc"] % 2 == 1 and state["has_uint32"] in (0, 1)
          and 0 <= state["uinteger"] < 1 << 32)
    if not ok:
        raise ValueError(f"random stream {name!r}: not a PCG64 state as numpy writes it")


def _check_records(cfg: Config, ckpt: Checkpoint, per_epoch: int) -> None:
    """The recorded rows: exactly their columns, numbers where numbers go,
    before the checkpoint's step; the evaluations exactly those made by then."""
    for name, columns in RECORD_COLUMNS.items():
        rows = getattr(ckpt, name)
        if not isinstance(rows, list):
            raise ValueError(f"{name}: got {type(rows).__name__}, expected a list of rows")
        for i, row in enumerate(rows):
            if not isinstance(row, dict) or set(row) != set(columns) or not all(
                    isinstance(v, (int, float)) and not isinstance(v, bool)
                    and (name != "metrics" or np.isfinite(v)) for v in row.values()):
                raise ValueError(f"{name} row {i + 1}: not a row of {', '.join(columns)} "
                                 "(numbers, finite in metrics)")
            if row["step"] > ckpt.step:
                raise ValueError(f"{name} row {i + 1}: step {row['step']} is after the "
                                 f"checkpoint's step {ckpt.step}")
    for i, row in enumerate(ckpt.metrics):
        if not (all(0 <= row[k] <= 1 for k in ("train_acc", "test_acc"))
                and all(row[k] >= 0 for k in ("train_loss", "test_loss", "elapsed"))):
            raise ValueError(f"metrics row {i + 1}: an accuracy outside [0, 1] or a negative "
                             "loss or time")
    every = cfg.eval.every
    want = [(e, e * per_epoch) for e in range(0, ckpt.epoch + 1) if e % every == 0]
    got = [(r["epoch"], r["step"]) for r in ckpt.metrics]
    if got != want:
        raise ValueError(f"metrics: evaluations at (epoch, step) {_few(got)}, expected "
                         f"{_few(want)} (every {every} epochs up to epoch {ckpt.epoch})")


def _few(pairs: list) -> str:
    return str(pairs[:3])[:-1] + (", ...]" if len(pairs) > 3 else "]")


def steps_per_epoch(cfg: Config, n_train: int) -> int:
    """Full batches only: every step sees exactly ``batch_size`` samples (a
    short last batch would change BN's statistics); a new shuffle each epoch
    means every sample is still seen."""
    return max(n_train // cfg.train.batch_size, 1)


def _batches(cfg: Config, n: int, rng: np.random.Generator):
    B = cfg.train.batch_size
    if cfg.train.sampling == "replacement":  # as the book: np.random.choice(n, B) per step
        return [rng.integers(0, n, B) for _ in range(steps_per_epoch(cfg, n))]
    perm = rng.permutation(n)
    return [perm[i * B : (i + 1) * B] for i in range(steps_per_epoch(cfg, n))]


def _diagnostics(model: Network, cfg: Config, step: int, epoch: float) -> list[dict]:
    """Per hidden block i: percentiles of its activation's input (pooled over
    the batch, units and positions, and for unit or channel 0 alone), and the
    norm of its weight gradient (``linear{i}`` or ``conv{i}``)."""
    rows = []
    act = cfg.model.activation
    records = {r.name: r for r in model.records}
    layers = dict(model.named_layers())
    i = 1
    while f"{act}{i}" in records:
        x = records[f"{act}{i}"].x.astype(np.float64)
        p15, p50, p85 = np.percentile(x, [15, 50, 85])
        u15, u50, u85 = np.percentile(x[:, 0], [15, 50, 85])
        weights = layers.get(f"linear{i}") or layers[f"conv{i}"]
        weights = getattr(weights, "inner", weights)  # weight norm: the effective weight's
        values = {"p15": p15, "p50": p50, "p85": p85, "mean": x.mean(), "std": x.std(),
                  "unit_p15": u15, "unit_p50": u50, "unit_p85": u85,
                  "grad_norm": np.linalg.norm(weights.grads["W"])}
        rows.append({"step": step, "epoch": epoch, "layer": i,
                     **{k: float(v) for k, v in values.items()}})
        i += 1
    return rows


def train(cfg: Config, data: Dataset | None = None,
          on_eval: Callable[[dict, TrainResult], None] | None = None,
          threads: int = 1, on_checkpoint: Callable[[Checkpoint], None] | None = None,
          resume: Checkpoint | None = None) -> TrainResult:
    """Train one model as ``cfg`` says; evaluate at epoch 0 and every
    ``eval.every`` epochs (and after the last), both splits in eval mode.

    ``on_eval(row, result)`` is called after each evaluation (for progress and
    incremental saving). A non-finite training loss stops the run with status
    ``diverged``, keeping the metrics so far. Every computation runs with BLAS
    on one thread; ``threads`` threads share the evaluation, which does not
    change its result. With ``train.checkpoint_every`` N > 0,
    ``on_checkpoint(checkpoint)`` receives the state after every N-th epoch
    (but the last); ``resume`` continues from such a state.
    """
    streams = Streams.from_seed(cfg.seed)
    dtype = np.dtype(cfg.train.dtype)
    if data is None:
        data = load_dataset(cfg.data, streams.data, dtype)
    model = build_model(cfg, data.dim, data.classes, streams.init)
    t = cfg.train
    opt = make_optimizer(t.optimizer, model.layers, t.lr, momentum=t.momentum,
                         nesterov=t.nesterov, weight_decay=t.weight_decay, kernels=t.kernels)
    result = TrainResult(status="completed", model=model)
    n = len(data.y_train)
    per_epoch = steps_per_epoch(cfg, n)
    xb = np.empty((t.batch_size, data.dim), dtype=dtype)  # reused batch buffer
    start = time.perf_counter()
    step, first_epoch = 0, 1
    own_streams = {name: layer for name, layer in model.named_layers()  # dropout, noise
                if isinstance(layer, (Dropout, NoisyShift))}
    if resume is not None:
        model.load_state_dict(resume.model)
        opt.load_state_dict(resume.optimizer)
        streams.batches.bit_generator.state = resume.rngs["batches"]
        for name, layer in own_streams.items():
            layer.rng.bit_generator.state = resume.rngs[name]
        for name in RECORDS:
            setattr(result, name, [dict(r) for r in getattr(resume, name)])
        step, first_epoch = resume.step, resume.epoch + 1
        start -= resume.elapsed

    timed = [0.0, 0]  # seconds and count of timed training steps (in this process)

    def checkpoint(epoch: int) -> None:
        rngs = {"batches": streams.batches.bit_generator.state,
                **{name: layer.rng.bit_generator.state for name, layer in own_streams.items()}}
        on_checkpoint(Checkpoint(epoch, step, round(time.perf_counter() - start, 4),
                                 model.state_dict(), opt.state_dict(), rngs,
                                 **{name: [dict(r) for r in getattr(result, name)]
                                    for name in RECORDS}))

    def evaluate(epoch: int) -> None:
        train_loss, train_acc = model.evaluate(data.x_train, data.y_train, threads=threads)
        test_loss, test_acc = model.evaluate(data.x_test, data.y_test, threads=threads)
        row = {"epoch": epoch, "step": step, "train_loss": train_loss, "train_acc": train_acc,
               "test_loss": test_loss, "test_acc": test_acc,
               "elapsed": round(time.perf_counter() - start, 4)}
        result.metrics.append(row)
        if on_eval:
            on_eval(row, result)

    # Overflow in a diverging network is a result, recorded as such, not a
    # warning. One BLAS thread: the numbers must not depend on the thread count.
    with one_blas_thread(), np.errstate(over="ignore", invalid="ignore", divide="ignore",
                                        under="ignore"):
        if resume is None:
            evaluate(0)
        for epoch in range(first_epoch, t.epochs + 1):
            for idx in _batches(cfg, n, streams.batches):
                t_step = time.perf_counter()
                np.take(data.x_train, idx, axis=0, out=xb)
                record = cfg.eval.diagnostics_every > 0 and step % cfg.eval.diagnostics_every == 0
                probes = [(every, fn) for every, fn in ((cfg.eval.ics_every, _ics),
                                                        (cfg.eval.landscape_every, _landscape))
                          if every and step % every == 0]
                drawn = ({name: layer.rng.bit_generator.state  # before this step's draws
                          for name, layer in own_streams.items()} if probes else None)
                loss = model.loss_and_backward(xb, data.y_train[idx], record=record)
                frac_epoch = epoch - 1 + (step % per_epoch) / per_epoch
                if cfg.eval.step_loss:
                    result.steps.append({"step": step, "epoch": frac_epoch, "loss": loss})
                if not np.isfinite(loss):
                    result.status = "diverged"
                    result.diverged_at = {"step": step, "epoch": frac_epoch}
                    return result
                if record:
                    result.diagnostics += _diagnostics(model, cfg, step, frac_epoch)
                for _, fn in probes:
                    rows = fn(model, opt, xb, data.y_train[idx], t.lr, step, frac_epoch,
                              own_streams, drawn)
                    (result.ics if fn is _ics else result.landscape).extend(rows)
                opt.step()
                if not (record or probes):  # steps that measure more are not timed
                    timed[0] += time.perf_counter() - t_step
                    timed[1] += 1
                step += 1
            if epoch == t.epochs and cfg.eval.precise_bn:
                precise_bn(model, data.x_train, t.batch_size, cfg.eval.precise_bn,
                           streams.precise)
            if epoch == t.epochs and cfg.model.dropout > 0:
                result.variance_shift = variance_shift(model, data.x_test[:model.eval_chunk],
                                                       streams.shift)
            result.step_seconds = timed[0] / timed[1] if timed[1] else None
            if epoch % cfg.eval.every == 0 or epoch == t.epochs:
                evaluate(epoch)
                last = result.metrics[-1]
                if not (np.isfinite(last["train_loss"]) and np.isfinite(last["test_loss"])):
                    result.status = "diverged"
                    result.diverged_at = {"step": step, "epoch": float(epoch)}
                    return result
            every = t.checkpoint_every
            if on_checkpoint is not None and every and epoch % every == 0 and epoch < t.epochs:
                checkpoint(epoch)
    return result
