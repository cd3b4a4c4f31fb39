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
    n = len(result.checks)
    held = sum(c.outcome == "holds" for c in result.checks)
    out = [f"**Verdict: {result.verdict}** ({held} of {n} "
           f"{'checks hold' if n > 1 else 'check holds'}; computed from the runs: a check holds when its whole 95% interval over "
           "seeds meets the criterion, and does not hold when the whole interval misses it).",
           "", "| check | statistic | measured [95% interval] | criterion | result |",
           "|---|---|---|---|---|"]
    for c in result.checks:
        stat = f"{c.stat} of {c.metric}" + (f" ({c.detail})" if c.detail else "")
        out.append(f"| {c.text} | {stat} | {fmt_interval(c.interval)} | {c.criterion} | "
                   f"{c.shown} |")
    return out


def _provenance(folder: SweepFolder) -> str | None:
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
        return f"**Made by** {next(iter(made))}."
    return "**Made by** " + "; ".join(f"{k} ({n} runs)" for k, n in made.items()) + "."


def aggregate_table(folder: SweepFolder, table: Table, metrics: list[str]) -> str:
    """Every grid point: mean [95% interval] of each metric over its finished runs."""
    keys = table.keys()
    head = [*keys, *[METRIC_LABELS.get(m, m) for m in metrics], "n", "diverged", "failed"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for point, runs in table.points({}).items():
        done = [r for r in runs if r.status in FINISHED]
        cells = list(point)
        for m in metrics:
            cells.append(fmt_interval(table.interval(done, m)))
        cells += [str(len(done)), str(sum(r.status == "diverged" for r in done)),
                  str(sum(r.status == "failed" for r in runs))]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def sweep_section(sweep_dir: str | Path, figures_dir: str | Path, page_dir: str | Path,
                  level: int = 2) -> Section:
    """The Markdown section of one sweep; figures are drawn into ``figures_dir``
    and linked relative to ``page_dir``."""
    sweep_dir, figures_dir, page_dir = Path(sweep_dir), Path(figures_dir), Path(page_dir)
    folder, table = open_checked(sweep_dir)
    report = folder.report or {}
    name = sweep_dir.name
    h = "#" * level
    out = [f"{h} {report.get('title', name)}", ""]
    for label, key in (("Claim", "claim"), ("Source", "source")):
        if report.get(key):
            out += [f"**{label}.** {report[key]}", ""]
    counts = folder.counts()
    finished = sum(counts.get(s, 0) for s in FINISHED)
    if finished < len(folder.runs):
        others = ", ".join(f"{n} {s}" for s, n in counts.items() if s not in FINISHED)
        out += [f"**Incomplete.** {finished} of {len(folder.runs)} runs finished ({others}); "
                "everything below covers the finished runs.", ""]
    try:
        result = claims.evaluate(report, table)
    except (ClaimError, StoreError) as exc:
        raise ReportError(f"{sweep_dir}: {exc}") from None
    if result is not None:
        out += [*_verdict_lines(result), ""]
        if result.notes:
            out += [f"**Interpretation** (written by hand; its numbers are filled in from the "
                    f"runs). {result.notes.strip()}", ""]
    command = " ".join(folder.command) if folder.command else f"bnexp sweep <config of {name}>"
    seeds = ", ".join(map(str, folder.seeds))
    out += [f"**Command.** `{command}` ({len(folder.runs)} runs, seeds {seeds}; this section: "
            f"`bnexp report {sweep_dir}`)", ""]
    provenance = _provenance(folder)
    if provenance:
        out += [provenance, ""]
    ensure_dir(figures_dir)
    for i, spec in enumerate(report.get("figures") or [{}]):
        spec = dict(spec)
        kind = spec.pop("kind", None)
        target = figures_dir / f"{name}-{kind or 'default'}-{i}.png"
        try:
            path = plot_path(sweep_dir, kind, out=target, **spec)
        except PlotError as exc:
            raise ReportError(f"{name}: figure {i + 1}: {exc}") from None
        rel = Path(os.path.relpath(Path(path).resolve(), page_dir.resolve()))
        out += [f"![{name}: {kind or 'default figure'}]({rel.as_posix()})", ""]
    metrics = report.get("metrics") or ["final_train_acc", "final_test_acc"]
    out += ["Every grid point, mean [95% interval] over its seeds (n finished runs), from the "
            f"run folders of `{name}`:", "", aggregate_table(folder, table, metrics), ""]
    return Section(name, "\n".join(out), result)


def write_report(sweep_dirs: list[str | Path], out: str | Path | None = None,
                 figures_dir: str | Path | None = None, title: str | None = None,
                 intro: str | None = None) -> tuple[Path, list[Section]]:
    """One Markdown page for one or more sweeps (default: SWEEP/report.md)."""
    if not sweep_dirs:
        raise ReportError("no sweep folder given")
    out = Path(out) if out else Path(sweep_dirs[0]) / "report.md"
    check_user_output(out)  # before any figure is drawn: a refused page writes nothing
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
