"""Training speed of ResNet-20 (He et al. 2016's CIFAR ResNet: a 3x3 stem to
16 channels, three stages of three basic blocks at 16, 32 and 64 channels,
stride 2 and a 1x1 projection at the start of the last two, BN before each
ReLU, global average pooling, linear 10; SGD with momentum 0.9, float32) on
3x32x32 (CIFAR) and 1x28x28 inputs: bnexp's engine on the NumPy and numba
kernels, PyTorch CPU eager (NCHW and channels_last) and JAX (the whole step
one ``jax.jit``, NHWC and NCHW), the same network, batch and thread count,
and a GEMM floor (bnexp's convolution products alone, nothing else).
Interleaved blocks, medians of ms per step.

    python benchmarks/resnet20.py [--threads 1] [--repeats 5] [--block 2] [--profile]

Targets (the ResNet issue): bnexp on numba >= 1.5x PyTorch eager and >= 1.0x
JAX at batch 32 and 128. Ratios are against each peer's faster form in the
same run (the table says which). The PyTorch, JAX and numba columns are
skipped where they are not installed.
"""

from __future__ import annotations

import os
import sys

for _var in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE"):  # as throughput.py: see there
    os.environ.pop(_var, None)

import argparse  # noqa: E402
import math  # noqa: E402
import re  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
from collections import defaultdict  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import jax_book  # noqa: E402
from throughput import pin_one_core, report_environment  # noqa: E402

from bnexp.engine import Conv2d, make_optimizer  # noqa: E402
from bnexp.engine import backend as kernels  # noqa: E402
from bnexp.engine.model import NormSettings, build, resnet_layers  # noqa: E402

CHANNELS, BLOCKS, LR, MOMENTUM, CLASSES = [16, 32, 64], 3, 0.05, 0.9, 10
SHAPES = {"3x32x32": (3, 32, 32), "1x28x28": (1, 28, 28)}
BATCHES = [32, 128]
EPS, BN_MOMENTUM = 1e-5, 0.1


def block_plan() -> list[tuple[int, int, int]]:
    """(in channels, out channels, stride) of each basic block, in order."""
    plan, c_in = [], CHANNELS[0]
    for width, first_stride in zip(CHANNELS, [1] + [2] * (len(CHANNELS) - 1)):
        for i in range(BLOCKS):
            plan.append((c_in, width, first_stride if i == 0 else 1))
            c_in = width
    return plan


def image_batches(batch: int, shape, rng) -> list[tuple[np.ndarray, np.ndarray]]:
    """Eight batches of random images (rows of C*H*W values) and labels that
    every column cycles through, so each step reads a new batch from memory."""
    x = rng.random((batch * 8, math.prod(shape)), dtype=np.float32)
    y = rng.integers(0, CLASSES, batch * 8)
    return [(x[i * batch:(i + 1) * batch], y[i * batch:(i + 1) * batch]) for i in range(8)]


class Cycle:
    """A no-argument training step on the next of eight batches."""

    def __init__(self, step_on):
        self.step_on, self.i = step_on, 0

    def __call__(self):
        out = self.step_on(self.i % 8)
        self.i += 1
        return out


# --- bnexp ---------------------------------------------------------------------------

def bnexp_model(batch: int, shape, kernel_name: str):
    rng = np.random.default_rng(0)
    model = build(resnet_layers(CHANNELS, BLOCKS, norm="batch"), shape, CLASSES, rng=rng,
                  norm=NormSettings("batch"), weight_scale="he", dtype=np.float32,
                  kernels=kernel_name)
    opt = make_optimizer("momentum", model.layers, LR, momentum=MOMENTUM, kernels=kernel_name)
    return model, opt, image_batches(batch, shape, rng)


def bnexp_step_fn(batch: int, shape, kernel_name: str) -> Cycle:
    model, opt, chunks = bnexp_model(batch, shape, kernel_name)

    def step_on(i):
        loss = model.loss_and_backward(*chunks[i])
        opt.step()
        return loss
    return Cycle(step_on)


def conv_products(model, batch: int) -> list[tuple[Conv2d, object]]:
    """For each convolution of a bnexp numba model (after a step), a function
    running only its products for one batch, one sample at a time through the
    same BLAS call: forward, weight gradient and (but for the first layer)
    input gradient, on operands shaped as the kernels' work arrays and kept
    hot (a floor no trainer reaches). Nothing else: no im2col or col2im."""
    from numba import njit

    from bnexp.engine.numba_kernels import mm

    @njit(nogil=True)
    def products(fn, n, W2, cols, y, dy, dw, dcols, input_grad):
        for _ in range(n):
            mm(fn, W2, cols, y, False, False)
            mm(fn, cols, dy, dw, False, True)
            if input_grad:
                mm(fn, W2, dy, dcols, True, False)

    fn = kernels.gemm_address(np.float32)
    rng = np.random.default_rng(1)
    out = []
    for layer in model.layers:
        if isinstance(layer, Conv2d):
            (K, L), O = layer._fast.cols.shape, layer.out_channels
            arrays = [rng.random(s, dtype=np.float32) for s in ((O, K), (K, L), (O, L), (O, L),
                                                                (K, O), (K, L))]
            out.append((layer, lambda a=arrays, g=layer.input_grad: products(fn, batch, *a, g)))
    return out


def floor_step_fn(batch: int, shape):
    """The GEMM floor: every convolution's products (``conv_products``) and
    nothing else (no batch norm, ReLU, additions, loss or update either)."""
    model, _, chunks = bnexp_model(batch, shape, "numba")
    model.loss_and_backward(*chunks[0])
    runs = [run for _, run in conv_products(model, batch)]

    def step():
        for run in runs:
            run()
    step()
    return step


def conv_kind(model, layer) -> str:
    if layer is model.layers[0]:
        return "conv stem"
    k = layer.kernel
    return f"conv {k}x{k} stride {layer.stride}, {layer.out_channels} ch"


def profile(batch: int, shape, steps: int = 4) -> tuple[dict[str, float], dict[str, float]]:
    """ms per step by layer kind of a bnexp numba step (perf_counter around
    every step of the network's plan, forward and backward), and the
    products alone of each kind of convolution (``conv_products``)."""
    model, opt, chunks = bnexp_model(batch, shape, "numba")
    names = {id(layer): name for name, layer in model.named_layers()}
    spent: dict[str, float] = defaultdict(float)

    def kind(layer, relu) -> str:
        if isinstance(layer, Conv2d):
            return conv_kind(model, layer)
        return re.sub(r"\d+$", "", names[id(layer)]) + (" + relu" if relu is not None else "")

    def step(i, record):
        x, y = chunks[i % 8]
        h = model.as_input(x)
        clock = time.perf_counter
        for layer, relu in model.steps:
            t = clock()
            h = layer.forward(h, True) if relu is None else layer.forward_relu(h, True, relu)
            if record:
                spent[kind(layer, relu)] += clock() - t
        model._ran = model.steps
        t = clock()
        model.loss.forward(h, y)
        g = model.loss.backward()
        if record:
            spent["loss"] += clock() - t
        for layer, relu in reversed(model.steps):
            t = clock()
            g = layer.backward(g) if relu is None else layer.backward_relu(g, relu)
            if record:
                spent[kind(layer, relu)] += clock() - t
            if g is None:
                break
        t = clock()
        opt.step()
        if record:
            spent["optimizer"] += clock() - t
    for i in range(2):
        step(i, False)
    for i in range(steps):
        step(i, True)
    products: dict[str, float] = defaultdict(float)
    for layer, run in conv_products(model, batch):
        run()
        t = time.perf_counter()
        for _ in range(steps):
            run()
        products[conv_kind(model, layer)] += time.perf_counter() - t
    return ({k: v / steps * 1e3 for k, v in spent.items()},
            {k: v / steps * 1e3 for k, v in products.items()})


# --- PyTorch -------------------------------------------------------------------------

def torch_resnet20(in_channels: int):
    import torch.nn as nn

    class Block(nn.Module):
        def __init__(self, c_in, c_out, stride):
            super().__init__()
            self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(c_out)
            self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
            self.bn2 = nn.BatchNorm2d(c_out)
            self.project = None
            if stride != 1 or c_in != c_out:
                self.project = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, 0, bias=False),
                                             nn.BatchNorm2d(c_out))

        def forward(self, x):
            h = self.bn2(self.conv2(self.bn1(self.conv1(x)).relu()))
            return (h + (x if self.project is None else self.project(x))).relu()

    layers = [nn.Conv2d(in_channels, CHANNELS[0], 3, 1, 1, bias=False),
              nn.BatchNorm2d(CHANNELS[0]), nn.ReLU()]
    layers += [Block(c_in, c_out, stride) for c_in, c_out, stride in block_plan()]
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(CHANNELS[-1], CLASSES)]
    net = nn.Sequential(*layers)
    for m in net.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
    return net


def torch_step_fn(batch: int, shape, threads: int, channels_last: bool) -> Cycle:
    import torch

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    net = torch_resnet20(shape[0])
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    net = net.to(memory_format=fmt)
    chunks = [(torch.from_numpy(x).reshape(-1, *shape).contiguous(memory_format=fmt),
               torch.from_numpy(y)) for x, y in image_batches(batch, shape,
                                                              np.random.default_rng(0))]
    opt = torch.optim.SGD(net.parameters(), lr=LR, momentum=MOMENTUM)

    def step_on(i):
        opt.zero_grad(set_to_none=True)
        loss = torch.nn.functional.cross_entropy(net(chunks[i][0]), chunks[i][1])
        loss.backward()
        opt.step()
        return loss.item()
    return Cycle(step_on)


# --- JAX -----------------------------------------------------------------------------

def jax_init(shape, layout: str, seed: int = 0):
    """ResNet-20's parameters (He-normal convolutions; HWIO for NHWC, OIHW for
    NCHW), and its BN layers' running statistics, as float32 JAX arrays."""
    import jax
    import jax.numpy as jnp

    key = [jax.random.PRNGKey(seed)]

    def conv(c_in, c_out, k):
        key[0], sub = jax.random.split(key[0])
        dims = (k, k, c_in, c_out) if layout == "NHWC" else (c_out, c_in, k, k)
        return jax.random.normal(sub, dims, jnp.float32) * (2 / (c_in * k * k)) ** 0.5

    def bn(c):
        return {"gamma": jnp.ones(c, jnp.float32), "beta": jnp.zeros(c, jnp.float32)}

    params = {"stem": conv(shape[0], CHANNELS[0], 3), "stem_bn": bn(CHANNELS[0]), "blocks": []}
    widths = [CHANNELS[0]]  # of every BN, in the order the forward pass meets them
    for c_in, width, stride in block_plan():
        block = {"w1": conv(c_in, width, 3), "bn1": bn(width),
                 "w2": conv(width, width, 3), "bn2": bn(width)}
        widths += [width, width]
        if stride != 1 or c_in != width:
            block.update(wp=conv(c_in, width, 1), bnp=bn(width))
            widths.append(width)
        params["blocks"].append(block)
    key[0], sub = jax.random.split(key[0])
    c = CHANNELS[-1]
    params["W"] = jax.random.normal(sub, (c, CLASSES), jnp.float32) * (1 / c) ** 0.5
    params["b"] = jnp.zeros(CLASSES, jnp.float32)
    running = [(jnp.zeros(w, jnp.float32), jnp.ones(w, jnp.float32)) for w in widths]
    return params, running


def _jax_loss(params, x, y, shape, layout):
    """Cross-entropy of ResNet-20 in train mode, and each BN's batch mean,
    variance and count (for the running statistics)."""
    import jax
    import jax.numpy as jnp

    nhwc = layout == "NHWC"
    axes = (0, 1, 2) if nhwc else (0, 2, 3)
    dims = ("NHWC", "HWIO", "NHWC") if nhwc else ("NCHW", "OIHW", "NCHW")
    stats = []

    def conv(h, w, stride, pad):
        return jax.lax.conv_general_dilated(h, w, (stride, stride), ((pad, pad), (pad, pad)),
                                            dimension_numbers=dims)

    def bn(h, p):
        mu = h.mean(axis=axes, keepdims=True)
        var = ((h - mu) ** 2).mean(axis=axes, keepdims=True)
        stats.append((mu.reshape(-1), var.reshape(-1), h.size // mu.size))
        c = (1, 1, 1, -1) if nhwc else (1, -1, 1, 1)
        return (h - mu) * (p["gamma"].reshape(c) / jnp.sqrt(var + EPS)) + p["beta"].reshape(c)

    h = x.reshape(-1, *shape)
    if nhwc:
        h = h.transpose(0, 2, 3, 1)
    h = jax.nn.relu(bn(conv(h, params["stem"], 1, 1), params["stem_bn"]))
    for block, (_, _, stride) in zip(params["blocks"], block_plan()):
        body = jax.nn.relu(bn(conv(h, block["w1"], stride, 1), block["bn1"]))
        body = bn(conv(body, block["w2"], 1, 1), block["bn2"])
        short = bn(conv(h, block["wp"], stride, 0), block["bnp"]) if "wp" in block else h
        h = jax.nn.relu(body + short)
    logits = h.mean(axis=(1, 2) if nhwc else (2, 3)) @ params["W"] + params["b"]
    lse = jax.nn.logsumexp(logits, axis=1)
    loss = jnp.mean(lse - jnp.take_along_axis(logits, y[:, None], axis=1)[:, 0])
    return loss, stats


def jax_step_fn(batch: int, shape, layout: str) -> Cycle:
    """One jitted call per step (for CNNs XLA's CPU convolutions ran far slower
    inside ``lax.scan``: see jax_book.stepping_trainer), waited for each step."""
    import functools

    import jax
    import jax.numpy as jnp

    loss_fn = functools.partial(_jax_loss, shape=shape, layout=layout)

    @jax.jit
    def train_step(params, velocity, running, x, y):
        (loss, batch_stats), grads = jax.value_and_grad(loss_fn, has_aux=True)(params, x, y)
        velocity = jax.tree_util.tree_map(lambda v, g: MOMENTUM * v + g, velocity, grads)
        params = jax.tree_util.tree_map(lambda p, v: p - LR * v, params, velocity)
        running = [((1 - BN_MOMENTUM) * m + BN_MOMENTUM * mu,
                    (1 - BN_MOMENTUM) * v + BN_MOMENTUM * var * (n / (n - 1)))
                   for (m, v), (mu, var, n) in zip(running, batch_stats)]
        return params, velocity, running, loss

    params, running = jax_init(shape, layout)
    state = {"c": (params, jax.tree_util.tree_map(jnp.zeros_like, params), running)}
    data = [(jnp.asarray(x), jnp.asarray(y, dtype=jnp.int32))
            for x, y in image_batches(batch, shape, np.random.default_rng(0))]

    def step_on(i):
        *state["c"], loss = train_step(*state["c"], *data[i])
        return float(loss)  # waits for the step
    step = Cycle(step_on)
    step()  # compile before timing
    return step


# --- timing --------------------------------------------------------------------------

def ms_per_step(step, seconds: float) -> float:
    """One block: an untimed step, then whole steps for at least ``seconds``
    (and at least two); ms per step."""
    step()
    n, t0 = 0, time.perf_counter()
    while True:
        step()
        n += 1
        dt = time.perf_counter() - t0
        if dt >= seconds and n >= 2:
            return dt / n * 1e3


def medians(fns: dict, repeats: int, block: float) -> dict[str, float]:
    times = {k: [] for k in fns}
    for _ in range(repeats):
        for k, fn in fns.items():
            times[k].append(ms_per_step(fn, block))
    return {k: statistics.median(v) for k, v in times.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=1, help="BLAS / torch / XLA threads (default 1)")
    ap.add_argument("--repeats", type=int, default=5, help="blocks per implementation")
    ap.add_argument("--block", type=float, default=2.0, help="seconds per block")
    ap.add_argument("--batches", default=",".join(map(str, BATCHES)))
    ap.add_argument("--shapes", default=",".join(SHAPES), help="of " + ", ".join(SHAPES))
    ap.add_argument("--profile", action="store_true",
                    help="also print where a bnexp numba step's time goes, by layer kind")
    args = ap.parse_args()
    pin_one_core(args.threads)
    jax_book.configure_threads(args.threads)
    torch = report_environment(args.threads, args.repeats, args.block)
    fast, have_jax = kernels.available("numba"), jax_book.available()
    if not fast:
        print('numba: not installed, numba and floor columns skipped (pip install "bnexp[fast]")')
    best = "numba" if fast else "numpy"
    cols = ["numpy", "numba", "torch", "torch-cl", "jax-nhwc", "jax-nchw", "floor"]
    head = (f"{'input':>8} {'batch':>5} " + " ".join(f"{c:>9}" for c in cols)
            + f" {'vs torch':>9} {'vs jax':>7} {'of floor':>8}")
    print(f"ms per step (lower is faster); ratios: bnexp with {best} kernels against the "
          "faster form of each peer (peer ms / bnexp ms), and floor ms / bnexp ms;\n"
          "torch-cl: channels_last; floor: the convolutions' products alone\n")
    print(head)
    print("-" * len(head))
    profiles = {}
    for name in args.shapes.split(","):
        shape = SHAPES[name]
        for batch in [int(b) for b in args.batches.split(",")]:
            fns = {"numpy": bnexp_step_fn(batch, shape, "numpy")}
            if fast:
                fns["numba"] = bnexp_step_fn(batch, shape, "numba")
                fns["floor"] = floor_step_fn(batch, shape)
            if torch is not None:
                fns["torch"] = torch_step_fn(batch, shape, args.threads, False)
                fns["torch-cl"] = torch_step_fn(batch, shape, args.threads, True)
            if have_jax:
                fns["jax-nhwc"] = jax_step_fn(batch, shape, "NHWC")
                fns["jax-nchw"] = jax_step_fn(batch, shape, "NCHW")
            med = medians(fns, args.repeats, args.block)
            for k in ("numpy", "numba"):  # a diverged run would skip its backward passes
                if k in fns and not math.isfinite(fns[k]()):
                    raise SystemExit(f"bnexp {k}: the loss is not finite; lower LR")
            b = med[best]
            peer = {}  # each peer's faster form: (ms, column)
            for p in ("torch", "jax"):
                forms = [(med[c], c) for c in med if c.startswith(p)]
                peer[p] = min(forms) if forms else None
            ratio = {p: f"{v[0] / b:.2f}x" if v else "-" for p, v in peer.items()}
            floor = f"{med['floor'] / b:.0%}" if "floor" in med else "-"
            ms = " ".join(f"{med[c]:>9.1f}" if c in med else f"{'-':>9}" for c in cols)
            print(f"{name:>8} {batch:>5} {ms} {ratio['torch']:>9} {ratio['jax']:>7} {floor:>8}")
            faster = ", ".join(f"{p}: {v[1]}" for p, v in peer.items() if v)
            print(f"{'':>14} (faster form: {faster})")
            if args.profile and fast:
                profiles[(name, batch)] = profile(batch, shape)
    for (name, batch), (spent, products) in profiles.items():
        total = sum(spent.values())
        print(f"\nbnexp numba, {name}, batch {batch}: {total:.1f} ms a step, timed per layer "
              "(products: the convolutions' products alone)")
        for k, v in sorted(spent.items(), key=lambda kv: -kv[1]):
            if v >= 0.005 * total:
                alone = f"  products {products[k]:7.2f} ms" if k in products else ""
                print(f"  {k:30} {v:8.2f} ms {v / total:6.1%}{alone}")

if __name__ == "__main__":
    main()
