"""An ast-based mutation tester for bnexp (standard library only).

For one module it parses the source, lists mutation points, and runs a pytest
command once per mutant against a *copy* of the package in which only that
module is mutated: the real ``bnexp/`` folder is never written. A mutant is
killed when the tests fail, survives when they pass, and times out when they
run past the limit (counted as killed: the mutant changed behaviour).

Mutations (one per point):

- comparisons: ``<`` <-> ``<=``, ``>`` <-> ``>=``, ``==`` <-> ``!=``,
  ``in`` <-> ``not in``, ``is`` <-> ``is not``;
- arithmetic: ``+`` <-> ``-``, ``*`` <-> ``/``, ``//`` -> ``/``, ``**`` -> ``*``,
  ``%`` -> ``*``; augmented assignments likewise (``+=`` -> ``-=``);
- ``and`` <-> ``or``; ``not x`` -> ``x``; ``-x`` -> ``x``;
- numbers: ``0`` <-> ``1``, else ``c`` -> ``c + 1``; ``True`` <-> ``False``;
- string constants that are outcome, verdict, status or statistic words
  (``holds`` -> ``does not hold``, ``completed`` -> ``diverged``, ...);
  other strings are not mutated (file names, message text);
- ``min`` <-> ``max``;
- ``return X`` -> ``return None`` (X not None);
- slices: a non-constant bound ``b`` -> ``b + 1`` (constant bounds and
  indices are covered by the number mutation);
- conditions of ``if``, ``while``, ``x if c else y`` and comprehension ``if``s
  negated.

Never mutated: docstrings, the literal text of f-strings (their ``{...}``
expressions are mutated), annotations (``from __future__ import annotations``
leaves them unevaluated), ``__future__`` imports.

Examples (from the repository root)::

    python tests/mutation.py --module bnexp/stats.py --list
    python tests/mutation.py --module bnexp/stats.py \\
        --tests "tests/test_stats.py tests/test_conclusions_stats.py" --sample 80 --seed 1
    python tests/mutation.py --module bnexp/stats.py --tests "tests/test_stats.py" --only stats-17

Each run: ``python -m pytest -x -q -p no:cacheprovider --rootdir ROOT TESTS`` with
the working directory set to the copy (so ``import bnexp`` finds the copy
first). Before the mutants, a baseline run of the unmutated copy must pass and
a copy with a deliberately broken module must fail (proving the copy is what
the tests import).
"""

from __future__ import annotations

import argparse
import ast
import hashlib
import json
import os
import random
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = "bnexp"

CMP_SWAP = {ast.Lt: ast.LtE, ast.LtE: ast.Lt, ast.Gt: ast.GtE, ast.GtE: ast.Gt,
            ast.Eq: ast.NotEq, ast.NotEq: ast.Eq, ast.In: ast.NotIn, ast.NotIn: ast.In,
            ast.Is: ast.IsNot, ast.IsNot: ast.Is}
BIN_SWAP = {ast.Add: ast.Sub, ast.Sub: ast.Add, ast.Mult: ast.Div, ast.Div: ast.Mult,
            ast.FloorDiv: ast.Div, ast.Pow: ast.Mult, ast.Mod: ast.Mult}
WORD_GROUPS = [
    ("holds", "does not hold", "inconclusive", "partly holds"),
    ("completed", "diverged", "failed", "interrupted", "running", "pending"),
    ("above", "below", "within"),
    ("mean", "difference", "spread", "count"),
    ("at_least", "at_most"),
    ("each", "across"),
    ("where", "a", "b"),
    ("train", "test"),
]
WORD_SWAP = {}
for _group in WORD_GROUPS:
    for _i, _w in enumerate(_group):
        WORD_SWAP.setdefault(_w, _group[(_i + 1) % len(_group)])


@dataclass
class Mutant:
    id: str
    index: int  # position of the node in ast.walk order
    kind: str
    line: int
    col: int
    original: str
    mutated: str
    status: str = ""  # killed | survived | timeout | error
    seconds: float = 0.0


# --- finding mutation points --------------------------------------------------------

def _skipped_nodes(tree: ast.AST) -> set[int]:
    """ids of nodes that are never mutated: docstrings, annotations, f-string text."""
    skip: set[int] = set()

    def skip_all(node: ast.AST | None) -> None:
        if node is not None:
            skip.update(id(n) for n in ast.walk(node))

    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
                    and isinstance(body[0].value.value, str):
                skip_all(body[0])
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            skip_all(node.returns)
        if isinstance(node, ast.arg):
            skip_all(node.annotation)
        if isinstance(node, ast.AnnAssign):
            skip_all(node.annotation)
        if isinstance(node, ast.ImportFrom):
            skip_all(node)
        if isinstance(node, ast.JoinedStr):
            for part in node.values:
                if isinstance(part, ast.Constant):
                    skip.add(id(part))
        if isinstance(node, ast.FormattedValue):
            skip_all(node.format_spec)
    return skip


def _mutations(node: ast.AST) -> list[tuple[str, object]]:
    """(kind, parameter) of every mutation of ``node`` itself."""
    out: list[tuple[str, object]] = []
    if isinstance(node, ast.Compare):
        for i, op in enumerate(node.ops):
            if type(op) in CMP_SWAP:
                out.append(("compare", i))
    elif isinstance(node, ast.BinOp) and type(node.op) in BIN_SWAP:
        out.append(("binop", None))
    elif isinstance(node, ast.AugAssign) and type(node.op) in BIN_SWAP:
        out.append(("augassign", None))
    elif isinstance(node, ast.BoolOp):
        out.append(("boolop", None))
    elif isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.Not, ast.USub)):
        out.append(("unary", None))
    elif isinstance(node, ast.Constant):
        v = node.value
        if isinstance(v, bool):
            out.append(("bool", None))
        elif isinstance(v, (int, float)):
            out.append(("number", None))
        elif isinstance(v, str) and v in WORD_SWAP:
            out.append(("word", None))
    elif isinstance(node, ast.Name) and node.id in ("min", "max"):
        out.append(("minmax", None))
    elif isinstance(node, ast.Return) and node.value is not None and not (
            isinstance(node.value, ast.Constant) and node.value.value is None):
        out.append(("return", None))
    elif isinstance(node, ast.Slice):
        for part in ("lower", "upper"):
            b = getattr(node, part)
            if b is not None and not isinstance(b, ast.Constant) and not (
                    isinstance(b, ast.UnaryOp) and isinstance(b.operand, ast.Constant)):
                out.append(("slice", part))
    elif isinstance(node, (ast.If, ast.While, ast.IfExp)):
        out.append(("negate", None))
    elif isinstance(node, ast.comprehension):
        for i in range(len(node.ifs)):
            out.append(("negate-if", i))
    return out


def _negated(test: ast.expr) -> ast.expr:
    return ast.UnaryOp(op=ast.Not(), operand=test)


def _apply(node: ast.AST, kind: str, param: object, parents: dict[int, ast.AST]) -> ast.AST:
    """Mutate ``node`` in place (or in its parent); returns the node to show."""
    if kind == "compare":
        node.ops[param] = CMP_SWAP[type(node.ops[param])]()
    elif kind == "binop" or kind == "augassign":
        node.op = BIN_SWAP[type(node.op)]()
    elif kind == "boolop":
        node.op = ast.Or() if isinstance(node.op, ast.And) else ast.And()
    elif kind == "unary":
        parent = parents[id(node)]
        _replace_child(parent, node, node.operand)
        return node.operand
    elif kind == "bool":
        node.value = not node.value
    elif kind == "number":
        v = node.value
        node.value = (1 if v == 0 else 0 if v == 1 else v + 1) if isinstance(v, int) else (
            1.0 if v == 0.0 else 0.0 if v == 1.0 else v + 1.0)
    elif kind == "word":
        node.value = WORD_SWAP[node.value]
    elif kind == "minmax":
        node.id = "max" if node.id == "min" else "min"
    elif kind == "return":
        node.value = ast.Constant(value=None)
    elif kind == "slice":
        setattr(node, param, ast.BinOp(left=getattr(node, param), op=ast.Add(),
                                       right=ast.Constant(value=1)))
    elif kind == "negate":
        node.test = _negated(node.test)
    elif kind == "negate-if":
        node.ifs[param] = _negated(node.ifs[param])
    else:  # pragma: no cover
        raise ValueError(kind)
    return node


def _replace_child(parent: ast.AST, old: ast.AST, new: ast.AST) -> None:
    for name, value in ast.iter_fields(parent):
        if value is old:
            setattr(parent, name, new)
            return
        if isinstance(value, list):
            for i, item in enumerate(value):
                if item is old:
                    value[i] = new
                    return
    raise ValueError("child not found")


def _parents(tree: ast.AST) -> dict[int, ast.AST]:
    return {id(child): node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}


def _short(text: str, width: int = 90) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[:width - 3] + "..."


def _shown(source: str, node: ast.AST) -> str:
    if isinstance(node, (ast.If, ast.While)):
        return "if " + (ast.get_source_segment(source, node.test) or ast.unparse(node.test))
    if isinstance(node, ast.comprehension):
        return "for ... " + ast.unparse(node)
    return ast.get_source_segment(source, node) or ast.unparse(node)


def _shown_mutated(node: ast.AST) -> str:
    if isinstance(node, (ast.If, ast.While)):
        return "if " + ast.unparse(node.test)
    if isinstance(node, ast.comprehension):
        return "for ... " + ast.unparse(node)
    return ast.unparse(node)


def find_mutants(source: str, stem: str) -> list[Mutant]:
    tree = ast.parse(source)
    skip = _skipped_nodes(tree)
    out = []
    for index, node in enumerate(ast.walk(tree)):
        if id(node) in skip:
            continue
        for kind, param in _mutations(node):
            original = _shown(source, node)
            mutated_src, shown = mutate(source, index, kind, param)
            where = node.ifs[param] if isinstance(node, ast.comprehension) else node
            out.append(Mutant(f"{stem}-{len(out)}", index, f"{kind}:{param}" if param is not None
                              else kind, getattr(where, "lineno", 0),
                              getattr(where, "col_offset", -1) + 1, _short(original), _short(shown)))
    return out


def mutate(source: str, index: int, kind: str, param: object) -> tuple[str, str]:
    """The mutated module source and the mutated node's text."""
    tree = ast.parse(source)
    parents = _parents(tree)
    node = next(n for i, n in enumerate(ast.walk(tree)) if i == index)
    shown = _shown_mutated(_apply(node, kind, param, parents))
    return ast.unparse(ast.fix_missing_locations(tree)) + "\n", shown


def mutant_source(source: str, m: Mutant) -> str:
    kind, _, param = m.kind.partition(":")
    p: object = None
    if param:
        p = int(param) if param.isdigit() else param
    return mutate(source, m.index, kind, p)[0]


# --- running ------------------------------------------------------------------------

def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


class Workspace:
    """A private copy of the package: /tmp/.../wN/bnexp; the module under test
    is rewritten there for each mutant and restored (checked by hash) after."""

    def __init__(self, base: Path, n: int, module_rel: Path) -> None:
        self.dir = base / f"w{n}"
        shutil.copytree(ROOT / PACKAGE, self.dir / PACKAGE,
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        self.module = self.dir / module_rel
        self.original = self.module.read_text()
        self.digest = sha(self.module)

    def _clear_pyc(self) -> None:
        cache = self.module.parent / "__pycache__"
        for p in cache.glob(f"{self.module.stem}.*.pyc"):
            p.unlink(missing_ok=True)

    def write(self, text: str) -> None:
        self._clear_pyc()
        self.module.write_text(text)

    def restore(self) -> None:
        self._clear_pyc()
        self.module.write_text(self.original)
        if sha(self.module) != self.digest:
            raise RuntimeError(f"{self.module}: not restored (hash differs)")


_PROCS: set[subprocess.Popen] = set()
_LOCK = threading.Lock()


def run_tests(ws: Workspace, tests: list[str], timeout: float) -> tuple[str, float, str]:
    """(killed | survived | timeout, seconds, output tail)."""
    cmd = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider",
           "--rootdir", str(ROOT), *tests]
    env = {**os.environ, "PYTHONPATH": str(ws.dir)}
    start = time.monotonic()
    proc = subprocess.Popen(cmd, cwd=ws.dir, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    with _LOCK:
        _PROCS.add(proc)
    try:
        out, _ = proc.communicate(timeout=timeout)
        status = "survived" if proc.returncode == 0 else "killed"
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
        status = "timeout"
    finally:
        with _LOCK:
            _PROCS.discard(proc)
    return status, time.monotonic() - start, out[-3000:]


def _absolute(tests: list[str]) -> list[str]:
    out = []
    for t in tests:
        path_part = t.split("::")[0]
        if not t.startswith("-") and (ROOT / path_part).exists():
            out.append(str(ROOT / t))
        else:
            out.append(t)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--module", required=True, help="e.g. bnexp/stats.py")
    ap.add_argument("--tests", default="", help='pytest arguments, e.g. "tests/test_stats.py -k t_"')
    ap.add_argument("--sample", type=int, default=0, help="run a random sample of N mutants")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--list", action="store_true", help="print the mutants, run nothing")
    ap.add_argument("--only", default="", help="comma-separated mutant ids")
    ap.add_argument("--jobs", type=int, default=1)
    ap.add_argument("--timeout", type=float, default=0, help="seconds per run (default: from the baseline)")
    ap.add_argument("--json", default="", help="write every mutant's result to this file")
    ap.add_argument("--verbose", action="store_true", help="show the test output of survivors")
    args = ap.parse_args(argv)

    module_rel = Path(args.module)
    real = ROOT / module_rel
    if module_rel.parts[0] != PACKAGE or not real.is_file():
        ap.error(f"--module {args.module}: expected a file under {PACKAGE}/")
    source = real.read_text()
    stem = module_rel.stem if module_rel.parent.name == PACKAGE else \
        f"{module_rel.parent.name}.{module_rel.stem}"
    mutants = find_mutants(source, stem)
    if args.only:
        wanted = set(args.only.split(","))
        mutants = [m for m in mutants if m.id in wanted]
    elif args.sample and args.sample < len(mutants):
        chosen = random.Random(args.seed).sample(range(len(mutants)), args.sample)
        mutants = [mutants[i] for i in sorted(chosen)]
    if args.list:
        for m in mutants:
            print(f"{m.id:14} {module_rel}:{m.line}:{m.col}  {m.original} -> {m.mutated}")
        print(f"{len(mutants)} mutants", file=sys.stderr)
        return 0
    tests = _absolute(shlex.split(args.tests))
    if not tests:
        ap.error("--tests: which tests to run")

    real_digest = sha(real)
    base = Path(tempfile.mkdtemp(prefix="mut-", dir="/tmp"))
    old_int = signal.getsignal(signal.SIGINT)

    def interrupted(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGINT, interrupted)
    signal.signal(signal.SIGTERM, interrupted)
    workspaces: list[Workspace] = []
    try:
        workspaces = [Workspace(base, n, module_rel) for n in range(max(1, args.jobs))]
        ws = workspaces[0]
        if ws.original != source:
            print("note: the module changed while copying; mutating the copied version",
                  file=sys.stderr)
            source = ws.original
            mutants = [m for m in find_mutants(source, stem)
                       if m.id in {x.id for x in mutants}]
        # Sanity: the copy is what the tests import; the unmutated copy passes.
        ws.write(source + "\nraise RuntimeError('mutation-sanity: the copy is imported')\n")
        st, secs, out = run_tests(ws, tests, 600)
        ws.restore()
        if st != "killed" or "mutation-sanity" not in out:
            print("sanity check failed: a broken copy did not fail the tests\n" + out)
            return 2
        # The baseline runs the module as the mutants are written (ast.unparse).
        ws.write(ast.unparse(ast.parse(source)) + "\n")
        st, base_secs, out = run_tests(ws, tests, 600)
        ws.restore()
        if st != "survived":
            print("baseline failed: the unmutated code fails these tests\n" + out)
            return 2
        timeout = args.timeout or max(10.0, 3 * base_secs + 5)
        print(f"{module_rel}: {len(mutants)} mutants; baseline {base_secs:.1f}s, "
              f"timeout {timeout:.0f}s", flush=True)

        free = list(workspaces)
        free_lock = threading.Lock()

        def one(m: Mutant) -> Mutant:
            with free_lock:
                w = free.pop()
            try:
                w.write(mutant_source(w.original, m))
                m.status, m.seconds, tail = run_tests(w, tests, timeout)
                if m.status == "survived" and args.verbose:
                    print(tail)
            finally:
                w.restore()
                with free_lock:
                    free.append(w)
            print(f"  {m.status:8} {m.seconds:5.1f}s {m.id:14} {module_rel}:{m.line}:{m.col}  "
                  f"{m.original} -> {m.mutated}", flush=True)
            return m

        with ThreadPoolExecutor(max_workers=len(workspaces)) as pool:
            results = list(pool.map(one, mutants))
    except KeyboardInterrupt:
        with _LOCK:
            for p in list(_PROCS):
                os.killpg(p.pid, signal.SIGKILL)
        print("interrupted", file=sys.stderr)
        return 130
    finally:
        for w in workspaces:
            try:
                w.restore()
            except Exception as exc:  # the copy only; reported, never fatal
                print(f"warning: {exc}", file=sys.stderr)
        shutil.rmtree(base, ignore_errors=True)
        signal.signal(signal.SIGINT, old_int)
        if sha(real) != real_digest:
            print(f"warning: {real} changed during the run (not by this tool: it writes only "
                  f"to copies under {base})", file=sys.stderr)

    killed = sum(m.status in ("killed", "timeout") for m in results)
    survivors = [m for m in results if m.status == "survived"]
    print(f"\n{module_rel}: {killed}/{len(results)} killed "
          f"({100.0 * killed / max(1, len(results)):.1f}%), {len(survivors)} survived, "
          f"{sum(m.status == 'timeout' for m in results)} timed out")
    for m in survivors:
        print(f"  {m.id:14} {module_rel}:{m.line}:{m.col}  {m.original} -> {m.mutated}")
    if args.json:
        Path(args.json).write_text(json.dumps({"module": str(module_rel), "tests": tests,
                                               "mutants": [asdict(m) for m in results]}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
