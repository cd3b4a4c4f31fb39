"""CIFAR-10 (binary version): the record reader and its checks, the archive's
download and safe extraction against a local HTTP server, the CLI, and
``bnexp list``'s note for experiments whose data is not here. Never the internet."""

import hashlib
import os
import tarfile
from pathlib import Path

import cifardata
import numpy as np
import pytest
from click.testing import CliRunner
from test_download import Server

from bnexp import experiments
from bnexp.cli import main
from bnexp.config import DataConfig
from bnexp.datasets import (
    DataError,
    available,
    cifar,
    download,
    load_dataset,
    split_sizes,
)

N_TRAIN, N_TEST = 100, 50  # 20 records per training file, 50 in the test file


@pytest.fixture
def small(monkeypatch):
    cifardata.use_small(monkeypatch, N_TRAIN, N_TEST)


def test_reader_round_trip_keeps_the_record_layout(tmp_path, small):
    folder = cifardata.write_folder(tmp_path / "cifar10", N_TRAIN, N_TEST, seed=3)
    assert cifar.locate(str(tmp_path)) == {f: folder / f for f in cifar.FILES}
    x_train, y_train, x_test, y_test = cifar.load_raw(cifar.locate(str(tmp_path)))
    for got, want in zip((x_train, y_train, x_test, y_test),
                         cifardata.arrays(N_TRAIN, N_TEST, seed=3)):
        np.testing.assert_array_equal(got, want)
        assert got.dtype == np.uint8 and not got.flags.writeable
    assert x_train.shape == (N_TRAIN, 3072) and x_test.shape == (N_TEST, 3072)
    # the files in cifar-10-batches-bin/ or directly in the folder both count
    flat = cifardata.write_folder(tmp_path / "flat", N_TRAIN, N_TEST, inner=False)
    assert cifar.locate(str(flat)) == {f: flat / f for f in cifar.FILES}


def test_a_records_first_1024_bytes_are_channel_0_row_major(tmp_path):
    planes = np.stack([np.full(1024, 10), np.arange(1024) % 256, np.full(1024, 30)])
    path = tmp_path / "data_batch_1.bin"
    path.write_bytes(bytes([7]) + planes.astype(np.uint8).tobytes())
    x, y = cifar.read_batch(path, expected=1)
    assert y.tolist() == [7] and x.shape == (1, 3072)
    img = x.reshape(1, 3, 32, 32)  # NCHW, as choices.IMAGE_SHAPES says
    assert (img[0, 0] == 10).all() and (img[0, 2] == 30).all()
    np.testing.assert_array_equal(img[0, 1, 0], np.arange(32))  # first row of green
    np.testing.assert_array_equal(img[0, 1, 1], np.arange(32, 64))


def _corrupt(data: bytes, how: str) -> bytes:
    if how == "not a multiple":
        return data + bytes(100)
    if how == "truncated":
        return data[:-1000]
    if how == "wrong count":
        return data[:-cifar.RECORD]
    records = bytearray(data)
    records[3 * cifar.RECORD] = 10  # record 3's label byte
    return bytes(records)


@pytest.mark.parametrize("how, message", [
    ("not a multiple", "61,560 bytes, not a whole number of 3,073-byte records; expected "
                       "61,460 (20 records; truncated or corrupt)"),
    ("truncated", "60,460 bytes, not a whole number of 3,073-byte records; expected 61,460 "
                  "(20 records; truncated or corrupt)"),
    ("wrong count", "19 records, expected 20 (the CIFAR-10 file data_batch_2.bin holds 20)"),
    ("bad label", "record 3 has label 10, expected 0 to 9 (1 of 20 labels out of range; "
                  "not CIFAR-10)"),
])
def test_corrupt_files_are_one_clear_line(tmp_path, small, how, message):
    folder = cifardata.write_folder(tmp_path, N_TRAIN, N_TEST)
    bad = folder / "data_batch_2.bin"
    bad.write_bytes(_corrupt(bad.read_bytes(), how))
    with pytest.raises(DataError) as info:
        load_dataset(DataConfig(dataset="cifar10", root=str(tmp_path)), np.random.default_rng(0))
    assert str(info.value) == f"{bad}: {message}"


def test_the_real_record_count_is_checked_without_the_test_hook(tmp_path):
    folder = cifardata.write_folder(tmp_path, N_TRAIN, N_TEST)
    with pytest.raises(DataError, match=r"data_batch_1.bin: 20 records, expected 10,000 \(the "
                                        r"CIFAR-10 file data_batch_1.bin holds 10,000\)$"):
        cifar.load_raw(cifar.locate(str(folder)))


def test_the_reader_refuses_what_is_not_a_regular_file(tmp_path):
    with pytest.raises(DataError, match="is a character device, expected a CIFAR-10 batch"):
        cifar.read_batch(Path("/dev/zero"))
    os.mkfifo(tmp_path / "test_batch.bin")
    with pytest.raises(DataError, match="is a fifo"):  # and does not block waiting for a writer
        cifar.read_batch(tmp_path / "test_batch.bin")


def test_load_dataset_scales_and_takes_stratified_subsets(tmp_path, small):
    cifardata.write_folder(tmp_path / "cifar10", N_TRAIN, N_TEST, seed=1)
    cfg = DataConfig(dataset="cifar10", root=str(tmp_path), n_train=50, n_test=20)
    d = load_dataset(cfg, np.random.default_rng(0))
    assert d.x_train.shape == (50, 3072) and d.x_test.shape == (20, 3072) and d.classes == 10
    assert d.x_train.dtype == np.float32 and d.y_train.dtype == np.int64
    assert 0 <= d.x_train.min() and d.x_train.max() <= 1 and d.x_train.max() > 0.99
    assert np.bincount(d.y_train).tolist() == [5] * 10
    assert np.bincount(d.y_test).tolist() == [2] * 10
    full = load_dataset(DataConfig(dataset="cifar10", root=str(tmp_path), n_train=None,
                                   n_test=None), np.random.default_rng(0))
    x_train, y_train, _, _ = cifardata.arrays(N_TRAIN, N_TEST, seed=1)
    np.testing.assert_allclose(full.x_train, x_train / 255, rtol=1e-6)
    np.testing.assert_array_equal(full.y_train, y_train)
    assert split_sizes(cfg) == (50, 20)
    with pytest.raises(DataError, match=r"data.n_train: got 101, expected at most 100 \(the "
                                        r"training split of cifar10\)"):
        split_sizes(DataConfig(dataset="cifar10", root=str(tmp_path), n_train=101))


def test_missing_files_say_where_and_how_to_get_them(tmp_path):
    cfg = DataConfig(dataset="cifar10", root=str(tmp_path / "nope"))
    assert not available("cifar10", cfg.root)
    assert split_sizes(cfg, fetch=False) is None
    with pytest.raises(DataError) as info:
        download.find_files("cifar10", cfg.root, fetch=False)
    msg = str(info.value)
    assert msg.startswith("cifar10: the six CIFAR-10 binary files (data_batch_1.bin .. "
                          "data_batch_5.bin, test_batch.bin, directly or in "
                          "cifar-10-batches-bin/) were not found; looked in: ")
    assert str(tmp_path / "nope") in msg and str(download.cache_dir("cifar10")) in msg
    assert msg.endswith("or run: bnexp data download cifar10")


@pytest.fixture
def serve(tmp_path, monkeypatch, small):
    """Serve an archive as the only mirror, its MD5 pinned as the published one."""
    servers = []

    def start(data: bytes, md5: str | None = None):
        origin = tmp_path / f"origin{len(servers)}"
        origin.mkdir()
        (origin / cifar.ARCHIVE).write_bytes(data)
        monkeypatch.setitem(download.MD5, "cifar10",
                            {cifar.ARCHIVE: md5 or hashlib.md5(data).hexdigest()})
        servers.append(Server(origin))
        monkeypatch.setitem(download.MIRRORS, "cifar10", [servers[-1].url])
        return servers[-1]

    yield start
    for s in servers:
        s.close()


def test_the_published_archive_and_its_md5_are_pinned():
    assert download.MIRRORS["cifar10"] == ["https://www.cs.toronto.edu/~kriz/"]
    assert download.MD5["cifar10"] == {"cifar-10-binary.tar.gz":
                                       "c32a1d4ab5d03f1284b67883e8d87530"}


def test_download_verifies_extracts_the_six_files_then_serves_from_cache(serve):
    server = serve(cifardata.archive_bytes(N_TRAIN, N_TEST))
    cfg = DataConfig(dataset="cifar10", n_train=50, n_test=20)
    d = load_dataset(cfg, np.random.default_rng(0))
    assert d.x_train.shape == (50, 3072) and d.x_test.shape == (20, 3072)
    cache = download.cache_dir("cifar10")
    # the six record files only: no archive, no temporary, not the readme
    assert [p.name for p in cache.iterdir()] == [cifar.FOLDER]
    assert sorted(p.name for p in (cache / cifar.FOLDER).iterdir()) == sorted(cifar.FILES)
    assert server.requests == [f"/data/{cifar.ARCHIVE}"]
    load_dataset(cfg, np.random.default_rng(0))
    download.download("cifar10", progress=False)  # six readable files there: no download
    assert len(server.requests) == 1


def test_a_wrong_md5_caches_nothing(serve):
    server = serve(cifardata.archive_bytes(N_TRAIN, N_TEST), md5="0" * 32)
    with pytest.raises(DataError) as info:
        load_dataset(DataConfig(dataset="cifar10"), np.random.default_rng(0))
    msg = str(info.value)
    assert msg.startswith("cifar10: could not download cifar-10-binary.tar.gz from any mirror: "
                          f"cifar-10-binary.tar.gz from {server.url}cifar-10-binary.tar.gz: MD5 ")
    assert f"does not match the published {'0' * 32}; the file was discarded" in msg
    assert not download.cache_dir("cifar10").exists()  # no file, no temporary, no folder


F = cifar.FOLDER


@pytest.mark.parametrize("extra, words", [
    ([cifardata.member("../evil.bin", b"x")], "'../evil.bin' points outside the archive's folder"),
    ([cifardata.member(f"{F}/../../evil.bin", b"x")], "points outside the archive's folder"),
    ([cifardata.member("/tmp/evil.bin", b"x")], "'/tmp/evil.bin' points outside"),
    ([cifardata.member(f"{F}/x", kind=tarfile.SYMTYPE, linkname="/etc/passwd")],
     f"'{F}/x' is a link (to '/etc/passwd')"),
    ([cifardata.member(f"{F}/h", kind=tarfile.LNKTYPE, linkname=f"{F}/test_batch.bin")],
     "is a link"),
    ([cifardata.member(f"{F}/dev", kind=tarfile.CHRTYPE)], "is not a plain file or folder"),
    ([cifardata.member(f"{F}/test_batch.bin", b"again")], f"'{F}/test_batch.bin' appears twice"),
])
def test_a_hostile_archive_is_refused_and_caches_nothing(serve, tmp_path, extra, words):
    serve(cifardata.archive_bytes(N_TRAIN, N_TEST, extra=extra))
    with pytest.raises(DataError) as info:
        download.download("cifar10", progress=False)
    assert words in str(info.value) and "the archive is refused" in str(info.value)
    assert not download.cache_dir("cifar10").exists()
    assert not (tmp_path / "evil.bin").exists() and not Path("/tmp/evil.bin").exists()


def test_a_record_file_replaced_by_a_link_is_refused(serve):
    link = cifardata.member(f"{F}/data_batch_3.bin", kind=tarfile.SYMTYPE, linkname="/dev/zero")
    serve(cifardata.archive_bytes(N_TRAIN, N_TEST, extra=[link], omit=["data_batch_3.bin"]))
    with pytest.raises(DataError, match="data_batch_3.bin' is a link"):
        download.download("cifar10", progress=False)
    assert not download.cache_dir("cifar10").exists()


def test_archive_members_are_capped_and_all_six_required(serve, monkeypatch):
    monkeypatch.setattr(cifar, "MAX_MEMBER_BYTES", 20 * cifar.RECORD - 1)
    serve(cifardata.archive_bytes(N_TRAIN, N_TEST))
    with pytest.raises(DataError, match=r"data_batch_1.bin' is 61,460 bytes, at most 61,459 "
                                        r"for a CIFAR-10 file; the archive is refused"):
        download.download("cifar10", progress=False)
    monkeypatch.setattr(cifar, "MAX_MEMBER_BYTES", 10_000 * cifar.RECORD)
    serve(cifardata.archive_bytes(N_TRAIN, N_TEST, omit=["test_batch.bin"]))
    with pytest.raises(DataError, match=f"lacks {F}/test_batch.bin; not cifar-10-binary.tar.gz"):
        download.download("cifar10", progress=False)
    assert not download.cache_dir("cifar10").exists()


def test_an_archive_with_a_corrupt_record_file_enters_nothing(serve):
    good = cifardata.files(N_TRAIN, N_TEST)
    bad = cifardata.member(f"{F}/test_batch.bin", good["test_batch.bin"][:-1])
    serve(cifardata.archive_bytes(N_TRAIN, N_TEST, extra=[bad], omit=["test_batch.bin"]))
    with pytest.raises(DataError, match="test_batch.bin: 153,649 bytes, not a whole number"):
        download.download("cifar10", progress=False)
    assert not download.cache_dir("cifar10").exists()


def test_cli_download_ls_and_already_here(serve):
    runner = CliRunner()
    res = runner.invoke(main, ["data", "ls"])
    assert res.exit_code == 0
    (line,) = [ln for ln in res.output.splitlines() if ln.startswith("cifar10 ")]
    assert line.split() == ["cifar10", "-", "0.0", "-", "not", "found"]
    serve(cifardata.archive_bytes(N_TRAIN, N_TEST))
    res = runner.invoke(main, ["data", "download", "cifar10"])
    assert res.exit_code == 0, res.output
    cache = download.cache_dir("cifar10")
    assert res.output.strip() == f"cifar10: ready in {cache}"
    res = runner.invoke(main, ["data", "ls"])
    lines = [ln for ln in res.output.splitlines() if ln.startswith("cifar10 ")]
    assert [ln.split()[1] for ln in lines] == list(cifar.FILES)
    assert all("structure ok" in ln and str(cache / F) in ln for ln in lines)
    res = runner.invoke(main, ["data", "download", "cifar10"])
    assert res.output.strip() == (f"cifar10: already here and verified in {cache / F}; nothing "
                                  "to download (--dest DIR downloads a copy there)")
    (cache / F / "test_batch.bin").write_bytes(b"\x0b" * cifar.RECORD * N_TEST)
    res = runner.invoke(main, ["data", "ls"])
    (line,) = [ln for ln in res.output.splitlines() if ln.split()[:2] == ["cifar10",
                                                                          "test_batch.bin"]]
    assert "BAD: " in line and "record 0 has label 11, expected 0 to 9" in line


def test_cli_download_without_network_is_one_line(monkeypatch):
    monkeypatch.setitem(download.MIRRORS, "cifar10", ["https://mirror.example.org/cifar/"])
    res = CliRunner().invoke(main, ["data", "download", "cifar10"])
    assert res.exit_code == 2
    (line,) = res.output.strip().splitlines()
    assert line == ("error: cifar10: cannot download cifar-10-binary.tar.gz: no network. Put the "
                    "six CIFAR-10 binary files (data_batch_1.bin .. data_batch_5.bin, "
                    "test_batch.bin, directly or in cifar-10-batches-bin/) in "
                    f"{download.cache_dir('cifar10')} or set data.root / $BNEXP_DATA to their "
                    "folder")
    assert not download.cache_dir("cifar10").exists()


EXPERIMENT = """# A tiny CIFAR-10 run. Nothing else.
name: tiny
data: {{dataset: {dataset}, n_train: 100, n_test: 50}}
train: {{epochs: 1, batch_size: 10}}
"""
SWEEP = EXPERIMENT.replace("tiny", "tiny-sweep") + """sweep:
  grid:
    data.dataset: [mnist5k, cifar10]
"""


def test_list_marks_experiments_whose_data_is_not_here(tmp_path, monkeypatch, small):
    folder = tmp_path / "configs"
    folder.mkdir()
    (folder / "uses_cifar.yaml").write_text(EXPERIMENT.format(dataset="cifar10"))
    (folder / "bundled.yaml").write_text(EXPERIMENT.format(dataset="mnist5k"))
    (folder / "one_point_cifar.yaml").write_text(SWEEP.format(dataset="mnist5k"))
    monkeypatch.setattr(experiments, "folder", lambda: folder)
    monkeypatch.setenv("COLUMNS", "200")

    def listed():
        res = CliRunner().invoke(main, ["list"])
        assert res.exit_code == 0, res.output
        return {ln.split()[0]: ln for ln in res.output.splitlines()[1:]}

    rows = listed()
    note = "(needs: bnexp data download cifar10)"
    assert rows["uses_cifar"].endswith("A tiny CIFAR-10 run. " + note)
    assert rows["one_point_cifar"].split()[1] == "2" and rows["one_point_cifar"].endswith(note)
    assert rows["bundled"].endswith("A tiny CIFAR-10 run.")
    monkeypatch.setenv("BNEXP_DATA", str(tmp_path / "data"))
    cifardata.write_folder(tmp_path / "data" / "cifar10", N_TRAIN, N_TEST)
    assert not any("needs:" in ln for ln in listed().values())


DEBIAN_FASHION = Path("/usr/share/datasets/fashion-mnist")
IDX_STEMS = ["train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
             "t10k-labels-idx1-ubyte"]


def test_the_shipped_experiments_are_unmarked_where_their_data_is_here(monkeypatch):
    """Decided without bnexp's own lookup: an experiment on bundled data, or
    on Fashion-MNIST where Debian's package installed it, is not marked."""
    from bnexp.sweep import load

    here = {"mnist5k", "synthetic"}
    if all((DEBIAN_FASHION / f"{stem}.gz").is_file() for stem in IDX_STEMS):
        here.add("fashion-mnist")
    clear = [name for name in experiments.names()
             if {p.config.data.dataset for p in load(experiments.path(name)).points} <= here]
    assert "book_bn" in clear  # the bundled-data experiments, at least
    monkeypatch.setenv("COLUMNS", "300")
    res = CliRunner().invoke(main, ["list"])
    assert res.exit_code == 0
    rows = {ln.split()[0]: ln for ln in res.output.splitlines()[1:] if ln[:1] != " "}
    assert [name for name in clear if "needs:" in rows[name]] == []
