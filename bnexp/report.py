"""Markdown reports of sweeps, regenerated from what is on disk.

A sweep's YAML may carry a ``report:`` section (kept in ``sweep.yaml``):

    report:
      title: Batch norm vs weight scale
      source: Deep Learning from Scratch, ch. 6, Fig. 6-19
      claim: BN learns across a far wider range of initial weight scales.
      verdict: holds here: ...
      command: bnexp sweep configs/weight_scale.yaml
      metrics: [final_train_acc, final_test_acc]      # table columns (mean +- sd)
      figures:                                         # plot options, as `bnexp plot`
        - {kind: grid}
        - {kind: final, x: init.weight_scale, lines: model.norm, metric: train_acc}

``bnexp report`` writes the section's text, the figures and a table of the
aggregates over seeds, so the numbers on the page always come from the runs.
"""

from __future__ import annotations

import math
from pathlib import Path

import yaml

from .plot import PlotError, plot_path
from .rundir import read_csv

REPORT_KEYS = ("title", "source", "claim", "verdict", "command", "metrics", "figures", "notes")
METRIC_NAMES = {"final_train_acc": "final train acc", "final_test_acc": "final test acc",
                "best_test_acc": "best test acc", "final_train_loss": "final train loss",
                "final_test_loss": "final test loss", "seconds": "seconds"}


class ReportError(Exception):
    pass


def _section(sweep_dir: Path) -> tuple[dict, dict]:
    resolved = sweep_dir / "sweep.yaml"
    if not resolved.is_file():
        raise ReportError(f"{sweep_dir}: not a sweep folder (no sweep.yaml)")
    data = yaml.safe_load(resolved.read_text()) or {}
    report = data.get("report") or {}
    if not isinstance(report, dict):
        raise ReportError(f"{resolved}: report: expected a mapping")
    unknown = [k for k in report if k not in REPORT_KEYS]
    if unknown:
        raise ReportError(f"{resolved}: report.{unknown[0]}: unknown key "
                          f"(expected {', '.join(REPORT_KEYS)})")
    return data, report


def _fmt(mean: float, sd: float, n: int) -> str:
    if isinstance(mean, str) or (isinstance(mean, float) and math.isnan(mean)):
        return "-"
    return f"{mean:.3f} ± {sd:.3f}" if n > 1 else f"{mean:.3f}"


def aggregate_table(sweep_dir: Path, keys: list[str], metrics: list[str]) -> str:
    rows = read_csv(sweep_dir / "aggregate.csv")
    head = [*keys, *[METRIC_NAMES.get(m, m) for m in metrics], "n", "diverged"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cells = [_cell(r[k]) for k in keys]
        cells += [_fmt(r[f"{m}_mean"], r[f"{m}_std"], r["n"]) for m in metrics]
        cells += [str(r["n"]), str(r["n_diverged"])]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _cell(v) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def sweep_section(sweep_dir: str | Path, figures_dir: str | Path, page_dir: str | Path,
                  level: int = 2) -> str:
    """The Markdown section of one sweep; figures are drawn into ``figures_dir``
    and linked relative to ``page_dir``."""
    sweep_dir, figures_dir, page_dir = Path(sweep_dir), Path(figures_dir), Path(page_dir)
    data, report = _section(sweep_dir)
    section = data.get("sweep", {})
    keys = [*(section.get("grid") or {}), *(section.get("zip") or {})]
    seeds = section.get("seeds", [])
    name = sweep_dir.name
    h = "#" * level
    out = [f"{h} {report.get('title', name)}", ""]
    for label, key in (("Claim", "claim"), ("Source", "source")):
        if report.get(key):
            out += [f"**{label}.** {report[key]}", ""]
    command = report.get("command") or f"bnexp sweep <config of {name}>"
    summary = read_csv(sweep_dir / "summary.csv")
    out += [f"**Command.** `{command}` ({len(summary)} runs, "
            f"seeds {', '.join(map(str, seeds))}; this section: `bnexp report {sweep_dir}`)", ""]
    if report.get("verdict"):
        out += [f"**Verdict.** {report['verdict']}", ""]
    provenance = _provenance(sweep_dir, summary)
    if provenance:
        out += [provenance, ""]
    figures_dir.mkdir(parents=True, exist_ok=True)
    for i, spec in enumerate(report.get("figures") or [{}]):
        spec = dict(spec)
        kind = spec.pop("kind", None)
        target = figures_dir / f"{name}-{kind or 'default'}-{i}.png"
        try:
            path = plot_path(sweep_dir, kind, out=target, **spec)
        except (PlotError, TypeError) as exc:
            raise ReportError(f"{name}: figure {i + 1}: {exc}") from None
        rel = Path(_relpath(path, page_dir))
        out += [f"![{name}: {kind or 'default figure'}]({rel.as_posix()})", ""]
    metrics = report.get("metrics") or ["final_train_acc", "final_test_acc"]
    out += [f"Mean ± sd over seeds (n per row), from `{name}/aggregate.csv`:", "",
            aggregate_table(sweep_dir, keys, metrics), ""]
    if report.get("notes"):
        out += [str(report["notes"]), ""]
    return "\n".join(out)


def _provenance(sweep_dir: Path, summary: list[dict]) -> str | None:
    """Which bnexp (and commit) made the runs of ``summary`` (summary.csv's
    rows), from their run.json files."""
    from .rundir import read_json

    made = set()
    for row in summary:
        info = read_json(sweep_dir / row["run_id"] / "run.json") or {}
        version = (info.get("versions") or {}).get("bnexp")
        if version:
            commit = info.get("git_commit")
            made.add(f"bnexp {version}" + (f" (commit {commit[:10]})" if commit else ""))
    return f"Runs made with {', '.join(sorted(made))}." if made else None


def _relpath(path: Path, start: Path) -> str:
    import os

    return os.path.relpath(Path(path).resolve(), Path(start).resolve())


def write_report(sweep_dirs: list[str | Path], out: str | Path | None = None,
                 figures_dir: str | Path | None = None, title: str | None = None,
                 intro: str | None = None) -> Path:
    """One Markdown page for one or more sweeps (default: SWEEP/report.md)."""
    from .rundir import atomic_write

    if not sweep_dirs:
        raise ReportError("no sweep folder given")
    out = Path(out) if out else Path(sweep_dirs[0]) / "report.md"
    figures_dir = Path(figures_dir) if figures_dir else out.parent / "figures"
    parts = []
    if title:
        parts += [f"# {title}", ""]
    if intro:
        parts += [intro.strip(), ""]
    level = 2 if title else 1
    for d in sweep_dirs:
        parts.append(sweep_section(d, figures_dir, out.parent, level))
    atomic_write(out, "\n".join(parts).rstrip() + "\n")
    return out
