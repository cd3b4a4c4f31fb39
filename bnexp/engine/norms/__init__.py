"""Normalization layers, for (N, C) and (N, C, *spatial) inputs (NCHW), with
PyTorch's semantics. Which axes each one reduces over (Wu & He 2018, Fig. 2):

    BatchNorm     per channel, over (N, *spatial)       BatchNorm1d / BatchNorm2d
    LayerNorm     per sample, over (C, *spatial)        GroupNorm(1, C)
    GroupNorm     per sample and group of channels, over (C / G, *spatial)
    InstanceNorm  per sample and channel, over (*spatial)   InstanceNorm1d / 2d

``reduce_axes(ndim)`` gives those axes for an input of ``ndim`` dimensions
(what the reduction-axes figure draws). Gamma and beta are per channel for
all four; so LayerNorm on (N, C, H, W) is PyTorch's ``GroupNorm(1, C)``, not
``nn.LayerNorm([C, H, W])``, whose affine map is per element.

Where things are: ``batch`` (batch norm, with ghost batches and batch renorm
as its options), ``rows`` (layer, group and instance norm), ``weight``
(weight norm), ``running`` (the running statistics' rule, for every path),
``common`` (affine parameters and construction checks).
"""

from .batch import BatchNorm, Renorm
from .rows import GroupNorm, InstanceNorm, LayerNorm
from .weight import WeightNorm

__all__ = ["BatchNorm", "Renorm", "LayerNorm", "GroupNorm", "InstanceNorm", "WeightNorm"]
