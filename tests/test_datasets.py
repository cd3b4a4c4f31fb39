"""Datasets: the bundled subset, splits, preprocessing, IDX parsing and lookup."""

import gzip
import hashlib
from importlib import resources

import numpy as np
import pytest
from idxdata import idx_bytes, write_idx_set

from bnexp.config import DataConfig
from bnexp.datasets import DataError, idx, load_dataset, mnist5k
from bnexp.datasets.split import stratified_counts


def test_bundled_file_is_the_documented_one():
    data = resources.files("bnexp.datasets").joinpath("mnist5k.npz").read_bytes()
    assert hashlib.sha256(data).hexdigest() == mnist5k.SHA256
    x, y = mnist5k.load_raw()
    assert x.shape == (5000, 784) and x.dtype == np.uint8 and x.max() == 255
    assert np.bincount(y).tolist() == [500] * 10


def test_mnist5k_split_is_stratified_disjoint_and_seeded():
    cfg = DataConfig(n_train=1000, n_test=300)
    a = load_dataset(cfg, np.random.default_rng(0))
    b = load_dataset(cfg, np.random.default_rng(0))
    c = load_dataset(cfg, np.random.default_rng(1))
    assert a.x_train.shape == (1000, 784) and a.x_test.shape == (300, 784)
    assert a.x_train.dtype == np.float32 and 0 <= a.x_train.min() and a.x_train.max() == 1
    assert np.bincount(a.y_train).tolist() == [100] * 10
    assert np.bincount(a.y_test).tolist() == [30] * 10
    np.testing.assert_array_equal(a.x_train, b.x_train)
    assert not np.array_equal(a.x_train, c.x_train)
    train_rows = {r.tobytes() for r in a.x_train}
    assert not any(r.tobytes() in train_rows for r in a.x_test)  # disjoint
    assert len(set(a.y_train[:20])) > 3  # shuffled, not ordered by class


def test_stratified_counts_add_up():
    counts = stratified_counts(np.array([500] * 10), 1003)
    assert counts.sum() == 1003 and counts.max() - counts.min() == 1


def test_standardize_uses_training_statistics():
    d = load_dataset(DataConfig(preprocess="standardize", n_train=500, n_test=100),
                     np.random.default_rng(0), np.float64)
    active = d.x_train.std(axis=0) > 0
    np.testing.assert_allclose(d.x_train.mean(axis=0), 0, atol=1e-9)
    np.testing.assert_allclose(d.x_train.std(axis=0)[active], 1, rtol=1e-6)
    assert abs(d.x_test.mean()) < 0.2


def test_synthetic_clusters_are_learnable_shape():
    d = load_dataset(DataConfig(dataset="synthetic", n_train=90, n_test=30, dim=7, classes=3),
                     np.random.default_rng(0))
    assert d.x_train.shape == (90, 7) and d.x_test.shape == (30, 7) and d.classes == 3
    assert set(d.y_train) == {0, 1, 2}


def test_idx_files_load_with_subsets(tmp_path):
    write_idx_set(tmp_path / "mnist")
    d = load_dataset(DataConfig(dataset="mnist", root=str(tmp_path), n_train=100, n_test=50),
                     np.random.default_rng(0))
    assert d.x_train.shape == (100, 784) and d.x_test.shape == (50, 784)
    full = load_dataset(DataConfig(dataset="mnist", root=str(tmp_path / "mnist"), n_train=None,
                                   n_test=None), np.random.default_rng(0))
    assert full.x_train.shape == (600, 784) and full.x_test.shape == (200, 784)
    with pytest.raises(DataError, match=r"data.n_train: got 700, expected at most 600"):
        load_dataset(DataConfig(dataset="mnist", root=str(tmp_path), n_train=700),
                     np.random.default_rng(0))


def test_missing_files_say_where_bnexp_looked(tmp_path, monkeypatch):
    monkeypatch.setenv("BNEXP_DATA", str(tmp_path / "env"))
    with pytest.raises(DataError) as info:
        load_dataset(DataConfig(dataset="mnist", root=str(tmp_path / "nope")),
                     np.random.default_rng(0))
    msg = str(info.value)
    assert "train-images-idx3-ubyte.gz" in msg and "no network" in msg
    for where in (tmp_path / "nope", tmp_path / "env", "/usr/share/datasets/mnist"):
        assert str(where) in msg


def test_idx_parser_rejects_foreign_and_truncated_files(tmp_path):
    good = idx_bytes(np.zeros((3, 2, 2), dtype=np.uint8))
    (tmp_path / "ok").write_bytes(good)
    assert idx.read_idx(tmp_path / "ok").shape == (3, 2, 2)
    (tmp_path / "trunc.gz").write_bytes(gzip.compress(good[:-1]))
    with pytest.raises(DataError, match="truncated or corrupt"):
        idx.read_idx(tmp_path / "trunc.gz")
    (tmp_path / "foreign").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(20))
    with pytest.raises(DataError, match="bad magic number"):
        idx.read_idx(tmp_path / "foreign")
    (tmp_path / "notgz.gz").write_bytes(b"plain text")
    with pytest.raises(DataError, match="cannot read"):
        idx.read_idx(tmp_path / "notgz.gz")
