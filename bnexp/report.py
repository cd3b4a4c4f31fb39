"""Markdown reports of sweeps, regenerated from what is on disk.

A sweep's YAML may carry a ``report:`` section (kept in ``sweep.yaml``):

    report:
      title: Batch norm vs weight scale
      source: Deep Learning from Scratch, ch. 6, Fig. 6-19
      claim: BN learns across a far wider range of initial weight scales.
      checks:                                          # the verdict is computed from these
        - text: "BN reaches train accuracy 0.8 at 6 or more of the 16 scales"
          count: final_train_acc
          across: init.weight_scale
          where: {model.norm: batch}
          at_least: 0.8
          above: 5
      notes: "BN reaches it at {bn_scales} scales."    # interpretation; {names} are filled in
      metrics: [final_train_acc, final_test_acc]       # table columns (mean, 95% interval)
      figures:                                         # plot options, as `bnexp plot`
        - {kind: grid}

``bnexp report`` writes, per sweep: the claim, the verdict computed from the
checks with each check's measured interval, the interpretation with its
numbers filled in from the runs, the command that ran the sweep, which code
and machine made the runs, the figures, and a table of every grid point
(mean and 95% interval over seeds). No number on the page is typed by hand.
See ``claims`` for the checks.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from . import claims
from .choices import METRIC_LABELS
from .claims import ClaimError, ClaimResult, Table, fmt_interval
from .errors import BnexpError
from .figures import PlotError, plot_path
from .store import (
    FINISHED,
    SWEEP_FILE,
    StoreError,
    SweepFolder,
    atomic_write,
    check_user_output,
    ensure_dir,
    open_sweep,
)


class ReportError(BnexpError):
    pass


@dataclass
class Section:
    """One sweep's section: its Markdown and its evaluated claim."""

    name: str
    markdown: str
    claim: ClaimResult | None


def open_checked(sweep_dir: str | Path) -> tuple[SweepFolder, Table]:
    """A sweep folder whose report section is valid for its grid and runs."""
    try:
        folder = open_sweep(sweep_dir)
    except StoreError as exc:
        raise ReportError(str(exc)) from None
    table = Table(folder.axes, folder.zipped, folder.runs)
    try:
        errors = claims.validate(folder.report, folder.axes, table)
    except StoreError as exc:
        errors = [str(exc)]
    if errors:
        where = Path(sweep_dir) / SWEEP_FILE
        raise ReportError("\n".join(f"{where}: {e}" for e in errors))
    return folder, table


def _verdict_lines(result: ClaimResult) -> list[str]:
    out = [f"**Verdict: {result.verdict}** ({result.tally}; computed from the runs: a check "
           "holds when its whole 95% interval over seeds meets the criterion, and does not "
           "hold when the whole interval misses it).",
           "", "| check | statistic | measured [95% interval] | criterion | result |",
           "|---|---|---|---|---|"]
    for c in result.checks:
        out.append(f"| {c.text} | {c.statistic} | {fmt_interval(c.interval)} | {c.criterion} | "
                   f"{c.shown} |")
    return out


def _provenance(folder: SweepFolder) -> str | None:
    """The "Made by" line of a section, in Markdown (``made_by``)."""
    made = made_by(folder)
    return None if made is None else f"**Made by** {made}."


def made_by(folder: SweepFolder) -> str | None:
    """Which code, numpy, BLAS and CPU made the runs (each combination, with
    its count): the numbers of a chaotic setting can differ on another one."""
    made: dict[str, int] = {}
    for r in folder.runs:
        p = r.info.get("provenance")
        if not p or r.status not in (*FINISHED, "failed"):
            continue
        commit = p.get("commit")
        code = f"bnexp {p.get('bnexp')}" + (f" (commit {commit[:10]}"
                                             f"{', modified' if p.get('dirty') else ''})"
                                             if commit else "")
        b = p.get("blas") or {}
        blas = (f"{b.get('library', '?')} {b.get('version', '')}".strip()
                + (f" ({b.get('kernel')} kernel, {b.get('threads')} thread"
                   f"{'s' if b.get('threads') != 1 else ''})" if b.get("kernel") else ""))
        key = (f"{code}, numpy {p.get('numpy')}, {blas}, engine {p.get('engine')}, on "
               f"{p.get('cpu')}")
        made[key] = made.get(key, 0) + 1
    if not made:
        return None
    if len(made) == 1:
        return next(iter(made))
    return "; ".join(f"{k} ({n} runs)" for k, n in made.items())


def aggregate_rows(table: Table, metrics: list[str]) -> tuple[list[str], list[list[str]]]:
    """Every grid point: mean [95% interval] of each metric over its finished
    runs, as (header, rows of cells)."""
    head = [*table.keys(), *[METRIC_LABELS.get(m, m) for m in metrics], "n", "diverged",
            "failed"]
    rows = []
    for point, runs in table.points({}).items():
        done = [r for r in runs if r.status in FINISHED]
        cells = list(point)
        for m in metrics:
            cells.append(fmt_interval(table.interval(done, m)))
        cells += [str(len(done)), str(sum(r.status == "diverged" for r in done)),
                  str(sum(r.status == "failed" for r in runs))]
        rows.append(cells)
    return head, rows


def aggregate_table(folder: SweepFolder, table: Table, metrics: list[str]) -> str:
    """``aggregate_rows`` as a Markdown table."""
    return _markdown_table(*aggregate_rows(table, metrics))


@dataclass
class Parts:
    """What one sweep's section says, gathered once from its folder, for the
    Markdown and the HTML page alike."""

    name: str
    sweep_dir: Path
    title: str
    claim: str | None
    source: str | None
    incomplete: str | None  # how many runs finished, where not all did
    result: ClaimResult | None
    command: str  # the command line that ran the sweep
    runs_note: str  # "(N runs, seeds ...; this section: `bnexp report DIR`)"
    made_by: str | None
    figures: list[dict]  # figure options, as `bnexp plot` takes them
    head: list[str]  # the grid-point table: the swept keys' columns, then numbers
    rows: list[list[str]]
    n_keys: int


def gather(sweep_dir: str | Path) -> Parts:
    """One sweep's section, checked and evaluated (ReportError, one line)."""
    sweep_dir = Path(sweep_dir)
    folder, table = open_checked(sweep_dir)
    report = folder.report or {}
    name = sweep_dir.name
    counts = folder.counts()
    finished = sum(counts.get(s, 0) for s in FINISHED)
    incomplete = None
    if finished < len(folder.runs):
        others = ", ".join(f"{n} {s}" for s, n in counts.items() if s not in FINISHED)
        incomplete = (f"{finished} of {len(folder.runs)} runs finished ({others}); "
                      "everything below covers the finished runs.")
    try:
        result = claims.evaluate(report, table)
    except (ClaimError, StoreError) as exc:
        raise ReportError(f"{sweep_dir}: {exc}") from None
    command = " ".join(folder.command) if folder.command else f"bnexp sweep <config of {name}>"
    seeds = ", ".join(map(str, folder.seeds))
    head, rows = aggregate_rows(table, report.get("metrics")
                                or ["final_train_acc", "final_test_acc"])
    return Parts(name, sweep_dir, report.get("title", name), report.get("claim"),
                 report.get("source"), incomplete, result, command,
                 f"({len(folder.runs)} runs, seeds {seeds}; this section: "
                 f"`bnexp report {sweep_dir}`)", made_by(folder),
                 [dict(spec) for spec in report.get("figures") or [{}]], head, rows,
                 len(table.keys()))


def draw(parts: Parts, i: int, out: Path | None = None, fmt: str = "png"):
    """Figure ``i`` of a section: into the file ``out``, or (without) as a
    matplotlib Figure. ReportError, one line, where it cannot be drawn."""
    from .figures import figure

    spec = dict(parts.figures[i])
    kind = spec.pop("kind", None)
    try:
        if out is None:
            return figure(parts.sweep_dir, kind, **spec)
        return plot_path(parts.sweep_dir, kind, out=out, fmt=fmt, **spec)
    except PlotError as exc:
        raise ReportError(f"{parts.name}: figure {i + 1}: {exc}") from None


def sweep_section(sweep_dir: str | Path, figures_dir: str | Path, page_dir: str | Path,
                  level: int = 2) -> Section:
    """The Markdown section of one sweep; figures are drawn into ``figures_dir``
    and linked relative to ``page_dir``."""
    figures_dir, page_dir = Path(figures_dir), Path(page_dir)
    p = gather(sweep_dir)
    name = p.name
    out = [f"{'#' * level} {p.title}", ""]
    for label, text in (("Claim", p.claim), ("Source", p.source)):
        if text:
            out += [f"**{label}.** {text}", ""]
    if p.incomplete:
        out += [f"**Incomplete.** {p.incomplete}", ""]
    result = p.result
    if result is not None:
        out += [*_verdict_lines(result), ""]
        if result.notes:
            out += [f"**Interpretation** (written by hand; its numbers are filled in from the "
                    f"runs). {result.notes.strip()}", ""]
    out += [f"**Command.** `{p.command}` {p.runs_note}", ""]
    if p.made_by:
        out += [f"**Made by** {p.made_by}.", ""]
    ensure_dir(figures_dir)
    for i, spec in enumerate(p.figures):
        kind = spec.get("kind")
        path = draw(p, i, figures_dir / f"{name}-{kind or 'default'}-{i}.png")
        rel = Path(os.path.relpath(Path(path).resolve(), page_dir.resolve()))
        out += [f"![{name}: {kind or 'default figure'}]({rel.as_posix()})", ""]
    out += ["Every grid point, mean [95% interval] over its seeds (n finished runs), from the "
            f"run folders of `{name}`:", "", _markdown_table(p.head, p.rows), ""]
    return Section(name, "\n".join(out), result)


def _markdown_table(head: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    return "\n".join(lines + ["| " + " | ".join(cells) + " |" for cells in rows])


HTML_SUFFIXES = (".html", ".htm")


def write_report(sweep_dirs: list[str | Path], out: str | Path | None = None,
                 figures_dir: str | Path | None = None, title: str | None = None,
                 intro: str | None = None) -> tuple[Path, list[Section]]:
    """One page for one or more sweeps (default: SWEEP/report.md): Markdown
    with its figures in ``figures_dir``, or, where ``out`` ends in .html, one
    self-contained HTML page with every figure inline (``report_html``)."""
    if not sweep_dirs:
        raise ReportError("no sweep folder given")
    out = Path(out) if out else Path(sweep_dirs[0]) / "report.md"
    check_user_output(out)  # before any figure is drawn: a refused page writes nothing
    if out.suffix.lower() in HTML_SUFFIXES:
        return _write_html(sweep_dirs, out, figures_dir, title, intro)
    figures_dir = Path(figures_dir) if figures_dir else out.parent / "figures"
    parts = []
    if title:
        parts += [f"# {title}", ""]
    if intro:
        parts += [intro.strip(), ""]
    level = 2 if title else 1
    new_folder = not figures_dir.exists()
    try:
        sections = [sweep_section(d, figures_dir, out.parent, level) for d in sweep_dirs]
        parts += [s.markdown for s in sections]
        atomic_write(out, "\n".join(parts).rstrip() + "\n")
    except BaseException:
        if new_folder:  # a refused page leaves no folder of figures for it behind
            shutil.rmtree(figures_dir, ignore_errors=True)
        raise
    return out, sections


def _write_html(sweep_dirs: list, out: Path, figures_dir, title: str | None,
                intro: str | None) -> tuple[Path, list[Section]]:
    from . import report_html

    if figures_dir is not None:
        raise ReportError(f"figures: {figures_dir}: an HTML page holds its figures inline; "
                          "a figures folder goes with a Markdown page (.md)")
    parts = [gather(d) for d in sweep_dirs]
    report_html.write_html(parts, out, title, intro, draw)
    return out, [Section(p.name, "", p.result) for p in parts]
