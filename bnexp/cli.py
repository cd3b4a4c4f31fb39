"""The command line: parses arguments, calls the library, reports.

Holds no numerics and no file layout. Heavy imports (numpy, matplotlib,
tqdm) happen inside the commands so that ``bnexp --help`` starts fast.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from . import __version__
from .choices import IDX_DATASETS, PLOT_KINDS, PLOT_METRICS, PLOT_STATS


class UserError(click.ClickException):
    """A bad request: one line per problem, exit code 2, no traceback."""

    exit_code = 2

    def show(self, file=None) -> None:
        for line in self.format_message().splitlines():
            click.echo(f"error: {line}", err=True)


def _user_errors():
    """Library exceptions that mean 'bad input', mapped to UserError."""
    from .config import ConfigError
    from .datasets.idx import DataError
    from .rundir import RunExistsError
    from .sweep import SweepError

    return (ConfigError, DataError, RunExistsError, SweepError)


def _load_config(path: str, overrides: tuple[str, ...]):
    from .config import ConfigError, load

    try:
        return load(path, list(overrides))
    except ConfigError as exc:
        raise UserError(str(exc)) from None


SET_HELP = "Override a config key, e.g. --set model.norm=none (repeatable; YAML values)."


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="bnexp")
def main() -> None:
    """bnexp: a lab bench for normalization experiments in neural networks.

    Train MLPs on a hand-written NumPy engine with batch, layer or group norm
    (or none), and see what normalization does.

    \b
    Example:
      bnexp sweep configs/weight_scale.yaml     # the book's weight-scale figure
      bnexp train configs/book_bn.yaml
      bnexp train configs/book_bn.yaml --set model.norm=none --set name=book-none
      bnexp plot runs/weight-scale
    """


@main.command()
@click.argument("config", type=click.Path(dir_okay=False))
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help=SET_HELP)
@click.option("--out", default="runs", show_default=True, type=click.Path(file_okay=False),
              help="Output directory; the run goes to OUT/<name>/.")
@click.option("--force", is_flag=True, help="Overwrite an existing run folder.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar and no summary.")
@click.option("--no-plot", is_flag=True, help="Skip drawing curves.png.")
@click.option("--threads", type=click.IntRange(min=1), default=None,
              help="BLAS threads (default: BLAS's own choice). Use 1 when other work "
                   "shares the cores: idle BLAS threads spin and can slow a run many-fold.")
def train(config: str, overrides: tuple[str, ...], out: str, force: bool, quiet: bool,
          no_plot: bool, threads: int | None) -> None:
    """Train one model as CONFIG (a YAML file) describes.

    Writes config.yaml (resolved), metrics.csv, run.json, curves.png and,
    when enabled, diagnostics.csv and steps.csv into OUT/<name>/.

    \b
    Example:
      bnexp train configs/book_bn.yaml
      bnexp train configs/book_bn.yaml --set init.weight_scale=1e-4 --set name=tiny --force
    """
    cfg = _load_config(config, overrides)
    _blas_threads(threads)
    from . import rundir

    run_dir = Path(out) / cfg.name
    bar = None
    if not quiet:
        from tqdm import tqdm

        bar = tqdm(total=cfg.train.epochs, desc=cfg.name, unit="epoch", leave=False,
                   disable=None, file=sys.stderr)

    def on_eval(row, result):
        if bar is not None:
            bar.n = row["epoch"]
            bar.set_postfix(train_acc=f"{row['train_acc']:.3f}", test_acc=f"{row['test_acc']:.3f}")

    try:
        info = rundir.execute(cfg, run_dir, force=force, command=sys.argv, plot=not no_plot,
                              on_eval=on_eval)
    except _user_errors() as exc:
        raise UserError(str(exc)) from None
    except rundir.RunFailed as exc:
        raise click.ClickException(f"run failed: {exc}") from None
    finally:
        if bar is not None:
            bar.close()
    if not quiet:
        f = info["final"]
        what = info["status"]
        if what == "diverged":
            what += f" at epoch {info['diverged_at']['epoch']:.2f}"
        click.echo(f"{cfg.name}: {what} in {info['seconds']:.1f} s; epoch {f['epoch']}: "
                   f"train acc {f['train_acc']:.4f}, test acc {f['test_acc']:.4f} -> {run_dir}")


def _blas_threads(threads: int | None) -> None:
    """Set the BLAS thread count before numpy loads (no effect once it has)."""
    import os

    from .sweep import BLAS_ENV

    if threads is None:
        return
    for var in BLAS_ENV:
        os.environ[var] = str(threads)


def _parse_seeds(text: str | None) -> list[int] | None:
    if text is None:
        return None
    try:
        return [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise UserError(f"--seeds: got {text!r}, expected integers like 0,1,2") from None


@main.command()
@click.argument("config", type=click.Path(dir_okay=False))
@click.option("--grid", "grid", multiple=True, metavar="KEY=V1,V2,...",
              help="Add or replace a grid axis, e.g. --grid model.norm=none,batch or "
                   "--grid init.weight_scale=logspace:0,-4,16 (repeatable).")
@click.option("--seeds", metavar="S1,S2,...", help="Seeds to run each point with, e.g. 0,1,2.")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help=SET_HELP)
@click.option("--out", default="runs", show_default=True, type=click.Path(file_okay=False),
              help="Output directory; the sweep goes to OUT/<name>/.")
@click.option("-j", "--jobs", type=click.IntRange(min=1), default=None,
              help="Parallel runs (default: all cores).")
@click.option("--dry-run", is_flag=True, help="Print the expanded runs and their count; run nothing.")
@click.option("--force", is_flag=True, help="Rerun every point, finished or not.")
@click.option("--retry-failed", is_flag=True, help="Rerun points whose run failed.")
@click.option("--fail-fast", is_flag=True, help="Stop at the first failed run.")
@click.option("--executor", type=click.Choice(["local", "dask"]), default="local",
              show_default=True, help="Where runs execute: a local process pool or a Dask cluster.")
@click.option("--address", metavar="tcp://HOST:PORT", help="Dask scheduler (with --executor dask).")
@click.option("--no-plot", is_flag=True, help="Skip per-run curves and the sweep figure.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar and no summary.")
def sweep(config, grid, seeds, overrides, out, jobs, dry_run, force, retry_failed, fail_fast,
          executor, address, no_plot, quiet) -> None:
    """Run a grid of experiments: every combination of the values in CONFIG's
    sweep section (and --grid), for every seed.

    Each point is a run folder OUT/<name>/<run_id>/ exactly as `bnexp train`
    writes it, plus summary.csv and aggregate.csv (mean, std and n over
    seeds). Rerunning the same command resumes: finished runs are skipped.

    \b
    Example:
      bnexp sweep configs/weight_scale.yaml
      bnexp sweep configs/weight_scale.yaml --dry-run
      bnexp sweep configs/book_bn.yaml --grid model.norm=none,batch --seeds 0,1,2 -j 2
    """
    from . import sweep as sweep_mod

    try:
        sw = sweep_mod.load(config, grid, _parse_seeds(seeds), overrides)
    except _user_errors() as exc:
        raise UserError(str(exc)) from None
    if dry_run:
        click.echo(_table(*sweep_mod.dry_run_rows(sw)))
        n, points, seeds = len(sw.points), len(sw.points) // len(sw.seeds), len(sw.seeds)
        click.echo(f"{_count(n, 'run')} ({_count(points, 'grid point')} x {_count(seeds, 'seed')})"
                   f" -> {Path(out) / sw.name}")
        return
    bar = None
    if not quiet:
        from tqdm import tqdm

        bar = tqdm(total=len(sw.points), desc=sw.name, unit="run", disable=None, file=sys.stderr)

    def progress(run_id, outcome):
        if bar is not None:
            bar.n = sum(outcome.counts().values())
            bar.set_postfix(outcome.counts(), refresh=True)

    try:
        sweep_dir, outcome = sweep_mod.execute(
            sw, out, jobs=jobs, force=force, retry_failed=retry_failed, fail_fast=fail_fast,
            plot=not no_plot, executor=executor, address=address, progress=progress)
    except _user_errors() as exc:
        raise UserError(str(exc)) from None
    except KeyboardInterrupt:
        if bar is not None:
            bar.close()
        click.echo("interrupted: finished runs are kept; run the same command again to resume",
                   err=True)
        sys.exit(130)
    finally:
        if bar is not None:
            bar.close()
    figure = None
    if not no_plot:
        from .plot import PlotError, plot_path

        try:
            figure = plot_path(sweep_dir)
        except PlotError as exc:
            click.echo(f"note: no sweep figure drawn ({exc})", err=True)
    if not quiet:
        c = outcome.counts()
        click.echo(f"{sw.name}: {len(sw.points)} runs: {c['done']} completed, {c['diverged']} "
                   f"diverged, {c['failed']} failed, {c['skipped']} skipped (already run) "
                   f"-> {sweep_dir}")
        if figure:
            click.echo(f"figure: {figure}")
    if outcome.failed:
        click.echo(f"{len(outcome.failed)} failed run(s); the error is in each run.json. "
                   "Reproduce with:", err=True)
        for rid in outcome.failed:
            info = _read_info(sweep_dir / rid)
            cmd = " ".join(sweep_mod.reproduce_command(rid, sweep_dir))
            click.echo(f"  {rid}: {info.get('error', '?')}\n    {cmd}", err=True)
        if outcome.cancelled:
            click.echo(f"{len(outcome.cancelled)} run(s) cancelled by --fail-fast", err=True)
        sys.exit(1)


@main.command()
@click.argument("path", type=click.Path())
@click.option("--kind", type=click.Choice(PLOT_KINDS),
              help="Figure kind (default: chosen from what PATH holds).")
@click.option("--panels", metavar="KEY", help="grid: one panel per value of this swept key.")
@click.option("--lines", metavar="KEY", help="grid/final: one line per value of this swept key.")
@click.option("--x", "x", metavar="KEY", help="final/heatmap: swept key on the x axis.")
@click.option("--y", "y", metavar="KEY", help="heatmap: swept key on the y axis.")
@click.option("--metric", type=click.Choice(PLOT_METRICS),
              help="What to show (grid default train_acc, final/heatmap default test_acc).")
@click.option("--stat", type=click.Choice(PLOT_STATS), default="final", show_default=True,
              help="final/heatmap: the last evaluation or the best one.")
@click.option("--layer", type=int, help="activations: hidden layer (default: the last).")
@click.option("--filter", "filters", multiple=True, metavar="KEY=VALUE",
              help="Only runs with this value of a swept key (repeatable).")
@click.option("--out", type=click.Path(dir_okay=False), help="Output file (default: in PATH).")
@click.option("--format", "fmt", type=click.Choice(["png", "svg", "pdf"]), default="png",
              show_default=True)
def plot(path, kind, panels, lines, x, y, metric, stat, layer, filters, out, fmt) -> None:
    """Draw a figure from a saved run or sweep folder, without training.

    \b
    Kinds:
      curves       train/test accuracy and loss vs epoch (a run's default)
      grid         small multiples: --panels KEY, --lines KEY, --metric
      final        final/best metric vs a swept key, mean +-1 sd over seeds
      heatmap      final metric over two swept keys, values in the cells
      activations  15/50/85th percentiles of a hidden unit's input (diagnostics)

    \b
    Example:
      bnexp plot runs/weight-scale
      bnexp plot runs/weight-scale --kind final --x init.weight_scale --lines model.norm
      bnexp plot runs/book-bn --format svg --out book-bn.svg
    """
    from .plot import PlotError, plot_path

    try:
        written = plot_path(path, kind, out=out, fmt=fmt, panels=panels, lines=lines, x=x, y=y,
                            metric=metric, stat=stat, filters=list(filters), layer=layer)
    except PlotError as exc:
        raise UserError(str(exc)) from None
    click.echo(str(written))


@main.command()
@click.argument("sweep_dirs", nargs=-1, required=True, type=click.Path(file_okay=False))
@click.option("--out", type=click.Path(dir_okay=False),
              help="Markdown file to write (default: SWEEP_DIR/report.md).")
@click.option("--figures", type=click.Path(file_okay=False),
              help="Folder for the figures (default: next to the page, figures/).")
@click.option("--title", help="Page title (with it, each sweep is a section).")
@click.option("--intro", type=click.Path(dir_okay=False, exists=True),
              help="A Markdown file whose text opens the page.")
def report(sweep_dirs, out, figures, title, intro) -> None:
    """Write a Markdown summary of one or more sweeps: the claim and verdict
    from the sweep's report section, its figures, and the table of
    aggregates over seeds, all drawn from the runs on disk.

    \b
    Example:
      bnexp report runs/weight-scale
      bnexp report runs/weight-scale runs/batch-size --title Experiments --out EXPERIMENTS.md
    """
    from .plot import PlotError
    from .report import ReportError, write_report

    text = Path(intro).read_text() if intro else None
    try:
        path = write_report(list(sweep_dirs), out, figures, title, text)
    except (ReportError, PlotError) as exc:
        raise UserError(str(exc)) from None
    click.echo(str(path))


@main.group()
def data() -> None:
    """Full-size datasets: download once, verify, cache.

    \b
    Example:
      bnexp data download fashion-mnist
      bnexp data ls
    """


@data.command("download")
@click.argument("name", type=click.Choice(IDX_DATASETS))
@click.option("--dest", type=click.Path(file_okay=False),
              help="Folder to download into (default: the bnexp cache).")
def data_download(name: str, dest: str | None) -> None:
    """Download NAME's four IDX files from its mirrors, verifying each
    against its published MD5 before it enters the cache.

    \b
    Example:
      bnexp data download mnist
      bnexp data download fashion-mnist --dest ~/datasets/fashion-mnist
    """
    from .datasets.download import download
    from .datasets.idx import DataError

    try:
        where = download(name, Path(dest) if dest else None)
    except DataError as exc:
        raise UserError(str(exc)) from None
    click.echo(f"{name}: ready in {where}")


@data.command("ls")
@click.option("--root", type=click.Path(file_okay=False), help="Also look in this folder first.")
def data_ls(root: str | None) -> None:
    """List the full-size datasets found (folder, sizes, verified or not).

    \b
    Example:
      bnexp data ls
    """
    from .datasets.download import cache_dir
    from .datasets.idx import inventory

    rows = inventory(root)
    header = ("dataset", "file", "MB", "check", "folder")
    body = [(r["dataset"], r["file"], f"{r['bytes'] / 1e6:.1f}", r["check"], r["folder"])
            for r in rows]
    click.echo(_table(header, body))
    click.echo(f"cache: {cache_dir()}")


def _table(header, rows) -> str:
    """Columns padded to their widest cell, two spaces apart."""
    lines = [header, *rows]
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(line, widths)).rstrip()
                     for line in lines)


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def _read_info(run_dir: Path) -> dict:
    from .rundir import read_json

    return read_json(run_dir / "run.json") or {}


if __name__ == "__main__":  # pragma: no cover
    main()
