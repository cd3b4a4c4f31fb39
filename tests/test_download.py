"""Downloading full-size datasets, against a local HTTP server on 127.0.0.1
serving IDX files written from the bundled data. Never the internet."""

import gzip
import hashlib
import http.server
import os
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from idxdata import write_idx_set

from bnexp.cli import main
from bnexp.config import DataConfig
from bnexp.datasets import DataError, download, idx, load_dataset

FILES = ["train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
         "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"]


class Server:
    """Serves ``folder`` on 127.0.0.1; ``mode`` = ok | missing | hang | corrupt."""

    def __init__(self, folder: Path, mode: str = "ok"):
        outer = self
        self.folder, self.mode, self.requests = folder, mode, []

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802
                outer.requests.append(self.path)
                name = self.path.rsplit("/", 1)[-1]
                if outer.mode == "missing" or not (outer.folder / name).is_file():
                    self.send_error(404)
                    return
                if outer.mode == "hang":
                    time.sleep(3)
                    return
                body = (outer.folder / name).read_bytes()
                if outer.mode == "corrupt":
                    body = body[:-10] + b"0123456789"
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/data/"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def served(tmp_path, monkeypatch):
    """IDX files, their MD5s pinned as the 'published' ones, and servers."""
    folder = write_idx_set(tmp_path / "origin", n_train=300, n_test=100)
    md5 = {f: hashlib.md5((folder / f).read_bytes()).hexdigest() for f in FILES}
    monkeypatch.setitem(download.MD5, "mnist", md5)
    servers = []

    def start(mode="ok"):
        s = Server(folder, mode)
        servers.append(s)
        return s

    yield start, md5
    for s in servers:
        s.close()


def test_download_then_cache_hit(served, monkeypatch, tmp_path):
    start, _ = served
    server = start()
    monkeypatch.setitem(download.MIRRORS, "mnist", [server.url])
    cfg = DataConfig(dataset="mnist", n_train=100, n_test=50)
    d = load_dataset(cfg, np.random.default_rng(0))
    assert d.x_train.shape == (100, 784)
    cached = download.cache_dir("mnist")
    assert sorted(p.name for p in cached.iterdir()) == sorted(FILES)  # no temporary files
    assert len(server.requests) == 4
    load_dataset(cfg, np.random.default_rng(0))
    assert len(server.requests) == 4  # second call: from the cache


def test_failing_mirror_falls_through_to_the_next(served, monkeypatch, tmp_path):
    start, _ = served
    bad, good = start("missing"), start()
    path = download.download("mnist", tmp_path / "dl", mirrors=[bad.url, good.url], progress=False)
    assert sorted(p.name for p in path.iterdir()) == sorted(FILES)
    assert len(bad.requests) == 4 and len(good.requests) == 4


def test_corrupted_file_is_rejected_and_not_cached(served, tmp_path):
    start, _ = served
    server = start("corrupt")
    with pytest.raises(DataError) as info:
        download.download("mnist", tmp_path / "dl", mirrors=[server.url], progress=False)
    msg = str(info.value)
    assert "could not download train-images-idx3-ubyte.gz from any mirror" in msg
    assert f"{server.url}train-images-idx3-ubyte.gz: MD5" in msg and "does not match" in msg
    assert not (tmp_path / "dl").exists()  # nothing cached, no temporary, no empty folder


def test_hanging_server_hits_the_timeout(served, tmp_path):
    start, _ = served
    server = start("hang")
    t0 = time.perf_counter()
    with pytest.raises(DataError, match="could not download train-images-idx3-ubyte.gz"):
        download.download("mnist", tmp_path / "dl", mirrors=[server.url], timeout=0.3,
                          retries=2, progress=False)
    assert time.perf_counter() - t0 < 3
    assert len(server.requests) == 2  # retried once
    assert not (tmp_path / "dl").exists()


def test_no_network_is_one_line_with_where_to_put_files(monkeypatch):
    monkeypatch.setitem(download.MIRRORS, "mnist", ["https://mirror.example.org/mnist/"])
    res = CliRunner().invoke(main, ["data", "download", "mnist"])
    assert res.exit_code == 2
    (line,) = res.output.strip().splitlines()
    assert line.startswith("error: mnist: cannot download train-images-idx3-ubyte.gz: no "
                           "network. Put the four files")
    assert str(download.cache_dir("mnist")) in line


def test_cli_download_and_ls(served, monkeypatch):
    start, _ = served
    server = start()
    monkeypatch.setitem(download.MIRRORS, "mnist", [server.url])
    res = CliRunner().invoke(main, ["data", "download", "mnist"])
    assert res.exit_code == 0, res.output
    assert res.output.strip() == f"mnist: ready in {download.cache_dir('mnist')}"
    res = CliRunner().invoke(main, ["data", "ls"])
    assert res.exit_code == 0
    lines = [ln for ln in res.output.splitlines() if ln.startswith("mnist ")]
    assert len(lines) == 4 and all("verified (MD5)" in ln for ln in lines)


def test_local_files_are_checked_by_content_hash_where_known(tmp_path, monkeypatch):
    folder = write_idx_set(tmp_path / "fashion-mnist", n_train=50, n_test=20)
    raw = gzip.decompress((folder / FILES[0]).read_bytes())
    # Pin the real hash for three files and a wrong one for the fourth.
    known = {f.removesuffix(".gz"): hashlib.sha256(gzip.decompress((folder / f).read_bytes()))
             .hexdigest() for f in FILES}
    known["t10k-labels-idx1-ubyte"] = "0" * 64
    monkeypatch.setitem(download.SHA256_RAW, "fashion-mnist", known)
    with pytest.raises(DataError, match="t10k-labels-idx1-ubyte.gz: SHA-256 of the decompressed"):
        load_dataset(DataConfig(dataset="fashion-mnist", root=str(tmp_path), n_train=20,
                                n_test=10), np.random.default_rng(0))
    assert idx.read_idx(folder / FILES[0], "fashion-mnist").shape == (50, 28, 28)
    assert len(raw) == 16 + 50 * 784


DEBIAN = Path("/usr/share/datasets/fashion-mnist")


@pytest.mark.skipif(not (DEBIAN / "train-images-idx3-ubyte.gz").exists(),
                    reason="Debian's dataset-fashion-mnist is not installed")
def test_debian_fashion_mnist_full_size():
    d = load_dataset(DataConfig(dataset="fashion-mnist", n_train=None, n_test=None),
                     np.random.default_rng(0))
    assert d.x_train.shape == (60000, 784) and d.x_test.shape == (10000, 784)
    assert d.x_train.dtype == np.float32 and d.x_train.max() == 1.0
    assert np.bincount(d.y_train).tolist() == [6000] * 10
    sub = load_dataset(DataConfig(dataset="fashion-mnist", n_train=1000, n_test=500),
                       np.random.default_rng(0))
    assert np.bincount(sub.y_train).tolist() == [100] * 10
    assert os.environ.get("XDG_CACHE_HOME")  # and nothing was downloaded
    assert not download.cache_dir("fashion-mnist").exists()
