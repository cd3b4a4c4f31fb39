"""The reduction-axes figure (after Wu & He 2018, Figure 2), measured rather
than drawn: which values share one set of statistics under batch, layer,
group and instance norm, beside the per-(sample, channel) statistics each
one leaves in a real batch.

A batch of images goes through one randomly initialised 3x3 convolution; its
output (N, C, H, W) is normalized by each of the four engine layers in train
mode. The left column shows, for one marked (sample, channel) plane, which
outputs change when only that plane's input changes: exactly the values
whose statistics it enters, found by probing the layer itself. The other
two columns show the mean and standard deviation over (H, W) of every
(sample, channel) plane after the norm: BN zeroes each channel's mean over
the batch, LN each sample's, GN each sample's group, IN every plane.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .config import IMAGE_SIZE, DataConfig
from .datasets import load_dataset
from .engine import Conv2d
from .engine.model import NORM_LAYERS, NormSettings

AXIS_NAMES = ("N", "C", "H", "W")
NORM_KINDS = tuple(NORM_LAYERS)  # batch, layer, group, instance


@dataclass
class Panel:
    name: str
    axes: tuple[int, ...]  # the axes one statistic runs over
    shared: np.ndarray  # (N, C) bool: planes that share the marked plane's statistics
    mean: np.ndarray  # (N, C): mean over (H, W) after the norm
    std: np.ndarray  # (N, C): std over (H, W) after the norm


def _layer(kind: str, C: int, groups: int):
    """The engine's norm layer of ``kind`` in float64, as a model builds it
    (gamma 1, beta 0: the figure shows the normalization itself)."""
    return NormSettings(kind, groups).make(C, np.float64)


def shared_planes(layer, x: np.ndarray, mark: tuple[int, int]) -> np.ndarray:
    """(N, C) mask of the planes whose outputs move when only plane ``mark``
    of the input moves (by a non-constant perturbation)."""
    base = layer.forward(x, True).copy()
    bumped = x.copy()
    n, c = mark
    bumped[n, c] += np.linspace(0.5, 1.5, x[n, c].size).reshape(x.shape[2:])
    moved = np.abs(layer.forward(bumped, True) - base).max(axis=(2, 3))
    return moved > 1e-9 * max(1.0, float(np.abs(base).max()))


def measure(batch: int = 6, channels: int = 8, groups: int = 2, seed: int = 0,
            mark: tuple[int, int] = (1, 2)) -> tuple[np.ndarray, list[Panel]]:
    """The conv output of ``batch`` mnist5k images and the four panels."""
    rng = np.random.default_rng(seed)
    data = load_dataset(DataConfig(dataset="mnist5k", n_train=batch, n_test=10), rng,
                        np.float64)
    images = data.x_train.reshape(batch, 1, IMAGE_SIZE, IMAGE_SIZE)
    conv = Conv2d(1, channels, 3, 1, 1, True, rng=rng, dtype=np.float64)
    conv.params["b"][...] = rng.standard_normal(channels)  # planes with different means
    x = conv.forward(images, True).copy()
    panels = []
    for kind in NORM_KINDS:
        layer = _layer(kind, channels, groups)
        y = layer.forward(x, True)
        mean, std = y.mean(axis=(2, 3)), y.std(axis=(2, 3))  # before probing reuses y
        label = f"{kind} norm" + (f", G={groups}" if kind == "group" else "")
        panels.append(Panel(label, layer.reduce_axes(x.ndim), shared_planes(layer, x, mark),
                            mean, std))
    return x, panels


def axes_text(axes: tuple[int, ...], grouped: bool) -> str:
    names = [AXIS_NAMES[a] for a in axes]
    if grouped:
        names = ["C/G" if n == "C" else n for n in names]
    return "statistics over (" + ", ".join(names) + ")"


def reduction_figure(batch: int = 6, channels: int = 8, groups: int = 2, seed: int = 0):
    """The figure: one row per norm (shared planes | mean | std)."""
    from .figures import pyplot

    plt = pyplot()
    mark = (1, 2)
    _, panels = measure(batch, channels, groups, seed, mark)
    fig, axs = plt.subplots(len(panels), 3, figsize=(9.6, 2.35 * len(panels)),
                            layout="constrained")
    for row, p in zip(axs, panels):
        grouped = p.name.startswith("group")
        row[0].imshow(p.shared, cmap="Blues", vmin=0, vmax=1.4, aspect="auto")
        row[0].add_patch(plt.Rectangle((mark[1] - 0.5, mark[0] - 0.5), 1, 1, fill=False,
                                       lw=2, ec="tab:red"))
        row[0].set_title(f"{p.name}: {axes_text(p.axes, grouped)}", fontsize=8.5, loc="left")
        mean_max = max(float(np.abs(p.mean).max()), 1e-12)
        im = row[1].imshow(p.mean, cmap="RdBu_r", vmin=-1.5, vmax=1.5, aspect="auto")
        row[1].set_title(f"mean over (H, W); largest |mean| {mean_max:.2f}", fontsize=8.5,
                         loc="left")
        fig.colorbar(im, ax=row[1], shrink=0.8)
        im = row[2].imshow(p.std, cmap="viridis", vmin=0, vmax=2, aspect="auto")
        row[2].set_title("std over (H, W)", fontsize=9, loc="left")
        fig.colorbar(im, ax=row[2], shrink=0.8)
        for ax in row:
            ax.set_xticks(range(channels))
            ax.set_yticks(range(batch))
            ax.tick_params(labelsize=7)
        row[0].set_ylabel("sample n", fontsize=8)
    for ax in axs[-1]:
        ax.set_xlabel("channel c", fontsize=8)
    fig.suptitle(f"Which values share one mean and variance (blue; measured by moving only "
                 f"the red plane) and what each norm leaves\n{batch} mnist5k images through "
                 f"a random 3x3 conv with {channels} channels, seed {seed}; each cell is one "
                 f"(sample, channel) plane of 28x28", fontsize=10)
    return fig


def write_reduction_figure(out: str | Path, **options) -> Path:
    from .figures import output_format, save_figure
    from .store import check_user_output

    check_user_output(Path(out))
    fig = reduction_figure(**options)
    return save_figure(fig, out, output_format(out, None))
