"""Reference runs for refactoring: train a fixed set of small runs on both
kernels and print a digest of everything that decides their numbers, so that
a change meant to move code and not numbers can be checked to be exactly
that.

    python benchmarks/reference_runs.py save /tmp/before.json
    ... change the code ...
    python benchmarks/reference_runs.py compare /tmp/before.json

A digest covers every table a run writes (metrics.csv without its elapsed
column, steps.csv, diagnostics.csv, ics.csv, landscape.csv), every array of
model.npz and, for the runs that fold, of model_folded.npz (and, apart
from the arrays, the rest of each model file: its description). Digests are
bit-exact on one machine (same CPU, same BLAS kernel), not across machines:
save and compare on the same one. Not a test: a few minutes on 2 cores.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np

BASE = ["data.n_train=300", "data.n_test=200", "train.epochs=2", "train.batch_size=50",
        "init.weight_scale=he", "model.hidden=[32, 32]", "train.lr=0.1"]
CNN = ["model.arch=cnn", "model.channels=[4, 6]", "model.hidden=[16]", "data.n_train=100",
       "data.n_test=50", "train.batch_size=25"]

# name: (extra --set values, fold the model?)
RUNS = {
    "mlp_bn": (["eval.step_loss=true", "eval.diagnostics_every=3"], True),
    "mlp_bn_after_dropout": (["model.placement=after", "model.dropout=0.2",
                              "norm.momentum=null"], False),
    "mlp_book": (["norm.convention=book", "norm.eps=1e-6", "train.optimizer=adam",
                  "train.lr=0.001"], True),
    "mlp_float64_momentum": (["train.dtype=float64", "train.optimizer=momentum",
                              "train.nesterov=true", "train.weight_decay=1e-4"], True),
    "mlp_no_affine_untracked": (["norm.affine=false", "norm.track_running_stats=false"], False),
    "ghost": (["norm.ghost_batch=10"], True),
    "renorm_sigma": (["norm.renorm=true", "norm.renorm_bn_steps=3", "norm.renorm_warmup=4"],
                     True),
    "renorm_variance": (["norm.renorm=true", "norm.renorm_bn_steps=2",
                         "norm.renorm_running=variance"], False),
    "noise": (["norm.noise=0.5"], False),
    "weight_norm": (["model.norm=weight"], False),
    "layer_norm": (["model.norm=layer"], False),
    "group_norm": (["model.norm=group", "model.groups=4"], False),
    "no_norm_sigmoid": (["model.norm=none", "model.activation=sigmoid"], False),
    "ics": (["eval.ics_every=3", "model.dropout=0.1"], False),
    "landscape": (["eval.landscape_every=3", "model.norm=none"], False),
    "precise_bn": (["eval.precise_bn=4"], True),
    "cnn_bn": (CNN + ["eval.diagnostics_every=2"], True),
    "cnn_bn_after_avg_gap": (CNN + ["model.placement=after", "model.pool=avg",
                                    "model.head=gap"], False),
    "cnn_group": (CNN + ["model.norm=group", "model.groups=2"], False),
    "cnn_instance": (CNN + ["model.norm=instance", "model.hidden=[]"], False),
    "cnn_ghost": (CNN + ["norm.ghost_batch=5"], False),
    "cnn_renorm": (CNN + ["norm.renorm=true", "norm.renorm_bn_steps=2"], False),
    "cnn_weight": (CNN + ["model.norm=weight"], False),
}
KERNELS = ("numpy", "numba")
TABLES = ("metrics.csv", "steps.csv", "diagnostics.csv", "ics.csv", "landscape.csv")


def _table_digest(path: Path) -> str:
    with path.open(newline="") as f:
        rows = list(csv.reader(f))
    head = rows[0]
    keep = [i for i, col in enumerate(head) if col != "elapsed"]
    text = "\n".join(",".join(row[i] for i in keep) for row in rows)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _npz_digests(path: Path) -> tuple[str, str]:
    """(the arrays', the rest's): a model file's numbers and its description."""
    arrays, rest = hashlib.sha256(), hashlib.sha256()
    with zipfile.ZipFile(path) as z:
        for name in sorted(z.namelist()):
            data = z.read(name)
            a = np.load(io.BytesIO(data), allow_pickle=False) if name.endswith(".npy") else None
            if a is not None and a.dtype.kind in "fiub":
                arrays.update(name.encode() + str(a.dtype).encode() + str(a.shape).encode())
                arrays.update(np.ascontiguousarray(a).tobytes())
            else:
                rest.update(name.encode() + data)
    return arrays.hexdigest()[:16], rest.hexdigest()[:16]


def _bnexp(*args: str) -> None:
    proc = subprocess.run([sys.executable, "-m", "bnexp", *args], capture_output=True, text=True)
    if proc.returncode:
        raise SystemExit(f"bnexp {' '.join(args)}: exit {proc.returncode}\n{proc.stderr}")


def digests() -> dict:
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        for kernels in KERNELS:
            for name, (extra, fold) in RUNS.items():
                key = f"{name}/{kernels}"
                sets = [f"name={name}-{kernels}", f"train.kernels={kernels}", *BASE, *extra]
                args = ["train", "book_bn", "--out", tmp, "--quiet", "--no-plot"]
                _bnexp(*args, *(a for s in sets for a in ("--set", s)))
                run = Path(tmp) / f"{name}-{kernels}"
                if fold:
                    _bnexp("fold", str(run))
                d = {t: _table_digest(run / t) for t in TABLES if (run / t).exists()}
                for f in ("model.npz", "model_folded.npz"):
                    if (run / f).exists():
                        d[f], d[f"{f} description"] = _npz_digests(run / f)
                out[key] = d
                print(key, " ".join(f"{k}={v}" for k, v in d.items()), flush=True)
    return out


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[0] not in ("save", "compare"):
        print(__doc__)
        return 2
    now = digests()
    path = Path(argv[1])
    if argv[0] == "save":
        path.write_text(json.dumps(now, indent=1, sort_keys=True))
        print(f"saved {len(now)} runs to {path}")
        return 0
    before = json.loads(path.read_text())
    diff = [f"{k}: {before.get(k)} -> {now.get(k)}" for k in sorted(set(before) | set(now))
            if before.get(k) != now.get(k)]
    print("\n".join(diff) if diff else f"all {len(now)} runs identical "
          f"({sum(len(v) for v in now.values())} files)")
    return 1 if diff else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
