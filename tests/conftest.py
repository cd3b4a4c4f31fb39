import socket
import sys
from pathlib import Path

import pytest

# Let tests import their helpers (tests/gradcheck.py) as plain modules.
sys.path.insert(0, str(Path(__file__).parent))

_real_getaddrinfo = socket.getaddrinfo


def _local_only(host, *args, **kwargs):
    if host not in ("127.0.0.1", "localhost", "::1", None):
        raise socket.gaierror(socket.EAI_NONAME, f"tests never reach the internet ({host})")
    return _real_getaddrinfo(host, *args, **kwargs)


@pytest.fixture(autouse=True)
def hermetic(tmp_path_factory, monkeypatch):
    """A private bnexp cache, no $BNEXP_DATA, and no name resolution beyond
    this machine: a test that would download from the internet fails instead."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("cache")))
    monkeypatch.delenv("BNEXP_DATA", raising=False)
    monkeypatch.setattr(socket, "getaddrinfo", _local_only)
