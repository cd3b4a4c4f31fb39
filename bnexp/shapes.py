"""The geometry a model config describes, worked out without numpy: each
convolution's kernel, stride and padding, the sample's shape after every
block, and the parameter count. The config's checks and the engine's layer
lists (``engine.model``) both read it, so the two never disagree.

``m`` is a config's ``model`` section (``config.ModelConfig``), resolved.
"""

from __future__ import annotations

from dataclasses import dataclass

PADDING_NAMES = ("same", "valid")
RESNET_STEM = 3  # the stem and every body convolution: 3 x 3, as He et al. 2016


@dataclass(frozen=True)
class ConvBlock:
    """One convolution: its output channels, kernel, stride and padding."""

    out: int
    kernel: int
    stride: int
    padding: int


def conv_out(size: int, kernel: int, stride: int, padding: int) -> int:
    """Output length along one spatial axis (PyTorch's floor mode)."""
    return (size + 2 * padding - kernel) // stride + 1


def per_block(value, n: int) -> list:
    """A per-conv-block setting as a list of ``n``: one value for every block,
    or a list of exactly ``n`` (the caller has checked the length)."""
    return list(value) if isinstance(value, (list, tuple)) else [value] * n


def padding_of(value: str | int, kernel: int) -> int:
    """``same`` (k // 2: the size kept at stride 1, odd kernels), ``valid``
    (0) or a number of zeros on each side."""
    if value == "same":
        return kernel // 2
    if value == "valid":
        return 0
    return int(value)


def cnn_blocks(m) -> list[ConvBlock]:
    """The conv blocks of ``model.arch cnn``: one per ``model.channels`` entry."""
    n = len(m.channels)
    return [ConvBlock(c, m.kernel, s, padding_of(p, m.kernel))
            for c, s, p in zip(m.channels, per_block(m.stride, n), per_block(m.padding, n))]


def pool_window(m) -> tuple[int, int]:
    """The pooling window and its stride (null: the window, as PyTorch)."""
    return m.pool_kernel, m.pool_stride if m.pool_stride is not None else m.pool_kernel


def cnn_shapes(m, image: tuple[int, int, int]) -> list[tuple[int, int, int]]:
    """(channels, height, width) after each conv block of a CNN (its pooling
    included); a height or width below 1 means no pixel is left."""
    _, h, w = image
    k, s = pool_window(m)
    shapes = []
    for b in cnn_blocks(m):
        h, w = conv_out(h, b.kernel, b.stride, b.padding), conv_out(w, b.kernel, b.stride, b.padding)
        if m.pool != "none" and min(h, w) >= 1:
            h, w = conv_out(h, k, s, 0), conv_out(w, k, s, 0)
        shapes.append((b.out, h, w))
    return shapes


def resnet_stages(channels) -> list[tuple[int, int]]:
    """(width, stride of its first block) per stage of ``model.arch resnet``:
    stride 2 where a stage starts, but the first (He et al. 2016, section 4.2)."""
    return [(c, 1 if i == 0 else 2) for i, c in enumerate(channels)]


def resnet_shapes(m, image: tuple[int, int, int]) -> list[tuple[int, int, int]]:
    """(channels, height, width) after the stem and after each stage."""
    _, h, w = image
    shapes = [(m.channels[0], h, w)]
    for c, s in resnet_stages(m.channels):
        h, w = conv_out(h, RESNET_STEM, s, 1), conv_out(w, RESNET_STEM, s, 1)
        shapes.append((c, h, w))
    return shapes


def no_pixel_left(m, image: tuple[int, int, int]) -> bool:
    """A CNN or ResNet whose blocks shrink the image to nothing."""
    if m.arch == "cnn":
        return min(min(h, w) for _, h, w in cnn_shapes(m, image)) < 1
    if m.arch == "resnet":
        return min(min(h, w) for _, h, w in resnet_shapes(m, image)) < 1
    return False


def _dense(sizes: list[int]) -> int:
    return sum(a * b + b for a, b in zip(sizes, sizes[1:]))


def param_count(m, image: tuple[int, int, int] | None, in_dim: int, classes: int) -> int:
    """Weights and biases of the model (norms aside; biases counted for every
    layer, an upper bound)."""
    if m.arch == "mlp":
        return _dense([in_dim, *m.hidden, classes])
    if m.arch == "cnn":
        total, c_in = 0, image[0]
        for b in cnn_blocks(m):
            total += c_in * b.out * b.kernel ** 2 + b.out
            c_in = b.out
        c, h, w = cnn_shapes(m, image)[-1]
        flat = c * h * w if m.head == "flatten" else c
        return total + _dense([flat, *m.hidden, classes])
    k2 = RESNET_STEM ** 2
    total, c_in = image[0] * m.channels[0] * k2, m.channels[0]
    for c, s in resnet_stages(m.channels):
        for i in range(m.blocks):
            total += c_in * c * k2 + c * c * k2
            if c_in != c or (i == 0 and s != 1):
                total += c_in * c  # the 1 x 1 projection
            c_in = c
    return total + _dense([c_in, *m.hidden, classes])
