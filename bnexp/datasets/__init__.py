"""Datasets: the bundled ``mnist5k``, ``synthetic`` clusters, full-size
``mnist`` / ``fashion-mnist`` from IDX files and ``cifar10`` from its binary
record files; seeded stratified subsets and preprocessing to float."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..choices import DATASETS, DOWNLOADED
from . import cifar, download, idx, mnist5k, synthetic
from .sources import DataError
from .split import stratified_split

__all__ = ["DataError", "Dataset", "available", "check", "inventory", "load_dataset",
           "split_sizes"]


@dataclass(frozen=True)
class Dataset:
    x_train: np.ndarray  # (N_train, D) float
    y_train: np.ndarray  # (N_train,) int64
    x_test: np.ndarray  # (N_test, D) float
    y_test: np.ndarray  # (N_test,) int64
    classes: int

    @property
    def dim(self) -> int:
        return self.x_train.shape[1]


def _subset(x, y, n, rng, what):
    if n is None:
        return x, y
    if n > len(y):
        raise DataError(f"data.{what}: got {n}, expected at most {len(y)} (the split's size)")
    (i,) = stratified_split(y, [n], rng)
    return x[i], y[i]


def _preprocess(x_train, x_test, how: str, dtype):
    """uint8 images to [0, 1] (``scale``), other data min-max scaled to [0, 1]
    from the training split; ``standardize`` then maps each feature to mean 0,
    std 1 over the training split. One float copy of each array."""
    if x_train.dtype == np.uint8:
        lo, span = 0.0, 255.0
    else:
        lo = x_train.min(axis=0)
        span = np.maximum(x_train.max(axis=0) - lo, 1e-12)
    out = []
    for x in (x_train, x_test):
        f = x.astype(dtype)
        f -= np.asarray(lo, dtype=dtype)
        f /= np.asarray(span, dtype=dtype)
        out.append(f)
    if how == "standardize":
        mean = out[0].mean(axis=0)
        std = out[0].std(axis=0)
        std[std < 1e-6] = 1.0  # constant pixels (MNIST's border) stay at 0
        for f in out:
            f -= mean
            f /= std
    return out


def available(name: str, root: str | None = None) -> bool:
    """Whether ``name`` can be loaded without downloading: bundled or
    generated, or its files are in a folder bnexp searches (not read)."""
    return name not in DOWNLOADED or download.located(name, root) is not None


def inventory(root: str | None = None) -> list[dict]:
    """What is on disk for each downloaded dataset (``bnexp data ls``): one row
    per file with dataset, file, folder, bytes and check."""
    return idx.inventory(root) + cifar.inventory(root)


def _load_raw(name: str, root: str | None):
    """(train_x, train_y, test_x, test_y) uint8 of a downloaded dataset
    (rows C-major, see ``choices.IMAGE_SHAPES``), found or fetched, checked."""
    return download.load_located(name, download.find_files(name, root))


MNIST5K_TEST_DEFAULT = 1000  # mnist5k with n_test null keeps 1000 images for testing


def split_sizes(cfg, fetch: bool = True) -> tuple[int, int] | None:
    """(train, test) sizes the data config gives, checked against the data
    itself; None when its files are not on this machine and ``fetch`` is off.
    IDX and CIFAR-10 files are located (downloaded with ``fetch``) and fully
    checked."""
    if cfg.dataset == "mnist5k":
        total = len(mnist5k.load_raw()[1])
        n_test = cfg.n_test if cfg.n_test is not None else MNIST5K_TEST_DEFAULT
        n_train = cfg.n_train if cfg.n_train is not None else total - n_test
        if n_test >= total or n_train + n_test > total:
            raise DataError(f"data.n_train: got {n_train}, expected n_train + n_test <= {total} "
                            f"for mnist5k (n_test is {n_test})")
        return n_train, n_test
    if cfg.dataset == "synthetic":
        return cfg.n_train, cfg.n_test
    if cfg.dataset in DOWNLOADED:
        if not fetch and not available(cfg.dataset, cfg.root):
            return None
        xtr, _, xte, _ = _load_raw(cfg.dataset, cfg.root)
        for key, n, have, split in (("n_train", cfg.n_train, len(xtr), "training"),
                                    ("n_test", cfg.n_test, len(xte), "test")):
            if n is not None and n > have:
                raise DataError(f"data.{key}: got {n}, expected at most {have} (the "
                                f"{split} split of {cfg.dataset})")
        return (cfg.n_train or len(xtr), cfg.n_test or len(xte))
    raise DataError(f"data.dataset: got {cfg.dataset!r}, expected one of {', '.join(DATASETS)}")


def check(cfg, fetch: bool = True) -> str | None:
    """Check a run's data before anything is written: the files (found,
    downloaded with ``fetch``, readable, what they claim), the split sizes,
    and a batch that fits in the training split. Returns a note when the data
    is not here and ``fetch`` is off (it will be downloaded when the run starts)."""
    sizes = split_sizes(cfg.data, fetch)
    if sizes is None:
        return (f"{cfg.data.dataset}: not on this machine yet; the first run downloads it "
                f"(or: bnexp data download {cfg.data.dataset})")
    n_train = sizes[0]
    if cfg.train.batch_size > n_train:
        raise DataError(f"train.batch_size: got {cfg.train.batch_size}, expected at most the "
                        f"{n_train} training samples")
    return None


def load_dataset(cfg, rng: np.random.Generator, dtype=np.float32) -> Dataset:
    """Load ``cfg`` (a DataConfig) with splits drawn from ``rng``."""
    name = cfg.dataset
    if name == "mnist5k":
        x, y = mnist5k.load_raw()
        n_train, n_test = split_sizes(cfg)
        tr, te = stratified_split(y, [n_train, n_test], rng)
        xtr, ytr, xte, yte = x[tr], y[tr], x[te], y[te]
        classes = 10
    elif name == "synthetic":
        x, y = synthetic.make_clusters(cfg.n_train + cfg.n_test, cfg.dim, cfg.classes, rng)
        xtr, ytr, xte, yte = x[: cfg.n_train], y[: cfg.n_train], x[cfg.n_train :], y[cfg.n_train :]
        classes = cfg.classes
    elif name in DOWNLOADED:
        xtr, ytr, xte, yte = _load_raw(name, cfg.root)
        xtr, ytr = _subset(xtr, ytr, cfg.n_train, rng, "n_train")
        xte, yte = _subset(xte, yte, cfg.n_test, rng, "n_test")
        classes = 10
    else:
        raise DataError(f"data.dataset: got {name!r}, expected one of {', '.join(DATASETS)}")
    xtr, xte = _preprocess(xtr, xte, cfg.preprocess, dtype)
    return Dataset(xtr, ytr.astype(np.int64), xte, yte.astype(np.int64), classes)
