"""Property-based attacks (issue 23): hypothesis generates configs, ``--set``
and ``--grid`` values and IDX files, and every outcome must be one of two:
exit 0 with a valid run (or plan), or exit 2 with only ``error:`` lines, no
traceback and nothing written. Derandomized, so CI sees the same examples
on every run; a failure prints the example that broke.
"""

import dataclasses
import gzip
import json
import math
import struct

import numpy as np
import pytest
import yaml
from clitools import invoke

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from bnexp import choices  # noqa: E402
from bnexp import config as C  # noqa: E402

BASE = {"name": "p", "seed": 1,
        "data": {"dataset": "synthetic", "n_train": 40, "n_test": 20, "dim": 5, "classes": 3},
        "model": {"hidden": [6]}, "init": {"weight_scale": "he"},
        "train": {"epochs": 1, "batch_size": 10, "lr": 0.1}}

# Keys whose valid values cost a download or a compile; everything else is fair game.
SKIP = {"data.dataset", "data.root", "train.kernels"}
SECTIONS = {"data": C.DataConfig, "model": C.ModelConfig, "norm": C.NormConfig,
            "init": C.InitConfig, "train": C.TrainConfig, "eval": C.EvalConfig}
KEYS = sorted(f"{s}.{f.name}" for s, cls in SECTIONS.items() for f in dataclasses.fields(cls)
              if f"{s}.{f.name}" not in SKIP)

# Hostile and ordinary values alike; the sizes stay small where they are valid.
HOSTILE = st.one_of(
    st.sampled_from([None, True, False, 0, 1, 2, 3, -1, -0.0, 0.5, 0.999, 1.5, 1e-320, 1e308,
                     10 ** 20, "", "x", [], [1], [2, 2], [0], [-3], ["a"], {}, {"a": 1}, "1e-3",
                     "0x10", ".inf", "nan"]),
    st.floats(allow_nan=True, allow_infinity=True, width=64),
    st.integers(-5, 12),
    st.text(max_size=6),
)
WORDS = sorted({w for name in dir(choices) if name.isupper()
                for w in getattr(choices, name) if isinstance(w, str)} - {"mnist", "fashion-mnist"})


def plausible(key: str):
    """Values of the kind the key takes (most of them valid), sized to train in
    milliseconds."""
    section, name = key.split(".")
    default = getattr(SECTIONS[section], name, None)
    if isinstance(default, bool):
        return st.booleans()
    if isinstance(default, int):
        return st.integers(0, 4)
    if isinstance(default, float):
        return st.sampled_from([0.0, 1e-5, 0.01, 0.1, 0.5, 0.9, 1.0, 2.0])
    if isinstance(default, tuple) or name == "hidden":
        return st.lists(st.integers(1, 8), max_size=3)
    return st.sampled_from(WORDS)


CHANGES = st.lists(st.sampled_from(KEYS), min_size=1, max_size=3, unique=True).flatmap(
    lambda keys: st.fixed_dictionaries({k: st.one_of(plausible(k), plausible(k), plausible(k),
                                                      HOSTILE) for k in keys}))
SET_TEXT = st.one_of(
    st.sampled_from(["", "[", "]", "{a: [", "&a [*a]", "!!python/object:os.system x", "1e308",
                     "-1", "0", "1", "2", "null", "~", "yes", "[1, 2]", "{}", "'x'", "\"\\x00\"",
                     "1_000", "0o17", ".nan", "-.inf", "[[[[[]]]]]", "batch", "he", "after"]),
    st.text(alphabet="0123456789.,-e[]{}:'\" abcnx&*!", max_size=10),
)


def _outcome(res, out):
    """Exit 0 with a finished run, or exit 2 with error lines and no folder."""
    assert "Traceback" not in res.output, res.output
    assert res.exception is None or isinstance(res.exception, SystemExit), repr(res.exception)
    if res.exit_code == 0:
        return "ok"
    assert res.exit_code == 2, (res.exit_code, res.output)
    lines = [ln for ln in res.output.splitlines() if ln.strip()]
    assert lines and all(ln.startswith("error: ") for ln in lines), res.output
    assert not out.exists(), f"{out} written by a refused command"
    return "refused"


def _finished_run(run):
    info = json.loads((run / "run.json").read_text())
    assert info["status"] in ("completed", "diverged"), info
    rows = (run / "metrics.csv").read_text().splitlines()
    assert len(rows) >= 2


PROPERTY = settings(max_examples=60, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.function_scoped_fixture,
                                           HealthCheck.too_slow])


@PROPERTY
@given(changes=CHANGES)
def test_generated_configs_train_or_give_error_lines(tmp_path_factory, changes):
    tmp = tmp_path_factory.mktemp("cfg")
    raw = json.loads(json.dumps(BASE))
    for key, value in changes.items():
        section, name = key.split(".")
        raw.setdefault(section, {})[name] = value
    if not _fits_yaml(raw):
        return
    path = tmp / "c.yaml"
    path.write_text(yaml.safe_dump(raw))
    out = tmp / "runs"
    res = invoke("train", path, "--out", out, "-q", "--no-plot")
    outcome = _outcome(res, out)
    hypothesis.event(outcome)
    if outcome == "ok":
        _finished_run(out / "p")


@PROPERTY
@given(key=st.one_of(st.sampled_from(KEYS), st.sampled_from(
           ["model", "nope.key", "model.nope", ".", "a..b", "name", "seed", "sweep.grid"])),
       text=SET_TEXT)
def test_generated_set_values_train_or_give_error_lines(tmp_path_factory, key, text):
    tmp = tmp_path_factory.mktemp("set")
    path = tmp / "c.yaml"
    path.write_text(yaml.safe_dump(BASE))
    out = tmp / "runs"
    res = invoke("train", path, "--set", f"{key}={text}", "--out", out, "-q", "--no-plot")
    outcome = _outcome(res, out)
    hypothesis.event(outcome)
    if outcome == "ok":
        run = next(out.iterdir())
        _finished_run(run)


def _as_text(v) -> str:
    return yaml.safe_dump(v, default_flow_style=True).strip().removesuffix("...").strip()


GRIDS = st.sampled_from([*KEYS, "seed", "nope"]).flatmap(lambda key: st.tuples(
    st.just(key), st.lists(st.one_of(SET_TEXT, *([plausible(key).map(_as_text)] * 3
                                                 if "." in key else [])),
                           min_size=1, max_size=3)))


@settings(PROPERTY, max_examples=150)
@given(key_values=GRIDS)
def test_generated_grids_plan_or_give_error_lines(tmp_path_factory, key_values):
    key, values = key_values
    tmp = tmp_path_factory.mktemp("grid")
    path = tmp / "c.yaml"
    path.write_text(yaml.safe_dump(BASE))
    out = tmp / "runs"
    res = invoke("sweep", path, "--grid", f"{key}={','.join(values)}", "--out", out,
                 "--dry-run")
    assert "Traceback" not in res.output, res.output
    hypothesis.event(f"exit {res.exit_code}")
    if res.exit_code == 0:
        assert not out.exists()  # a dry run writes nothing
        return
    _outcome(res, out)


def _fits_yaml(raw) -> bool:
    try:
        yaml.safe_load(yaml.safe_dump(raw))
    except Exception:  # a value YAML cannot carry (a lone surrogate): not a config
        return False
    return True


# --- IDX files ----------------------------------------------------------------------

CORRUPTIONS = ["none", "none", "none", "magic", "ndim", "short", "long", "huge", "header",
               "empty"]


@settings(max_examples=150, deadline=None, derandomize=True)
@given(dims=st.lists(st.integers(1, 30), min_size=1, max_size=4),
       corruption=st.sampled_from(CORRUPTIONS), amount=st.integers(1, 9),
       magic=st.sampled_from([b"\0\0\x0d", b"\x1f\x8b\x08", b"\0\0\0", b"\0\0"]),
       huge=st.integers(1 << 20, (1 << 32) - 1), packed=st.booleans())
def test_generated_idx_files_parse_or_are_refused(tmp_path_factory, dims, corruption, amount,
                                                  magic, huge, packed):
    """A valid IDX file of random shape, or one with one thing wrong: every
    read either gives exactly the array written or one DataError line."""
    from bnexp.datasets.idx import read_idx
    from bnexp.datasets.sources import DataError

    body = bytes(i % 251 for i in range(math.prod(dims)))
    shape = list(dims)
    head = b"\0\0\x08"
    if corruption == "magic":
        head = magic
    elif corruption == "huge":
        shape[0] = huge
    ndim = len(shape) + (amount if corruption == "ndim" else 0)
    data = head + bytes([ndim]) + b"".join(struct.pack(">I", d) for d in shape) + body
    if corruption == "short":
        data = data[:-amount]
    elif corruption == "long":
        data += bytes(amount)
    elif corruption == "header":
        data = data[:4 + 4 * len(shape) - amount]
    elif corruption == "empty":
        data = b""
    path = tmp_path_factory.mktemp("idx") / ("f.gz" if packed else "f")
    path.write_bytes(gzip.compress(data) if packed else data)
    try:
        arr = read_idx(path)
    except DataError as exc:
        assert "\n" not in str(exc) and str(path) in str(exc)
        assert corruption != "none", exc
        hypothesis.event("refused")
        return
    hypothesis.event("parsed")
    assert corruption == "none"
    assert arr.dtype == np.uint8 and arr.shape == tuple(dims) and arr.tobytes() == body
