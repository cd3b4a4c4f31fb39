"""The command line: parses arguments, calls the library, reports.

Holds no numerics and no file layout. Heavy imports (numpy, matplotlib,
tqdm) happen inside the commands so that ``bnexp --help`` starts fast.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from . import __version__
from .choices import (
    DATASETS,
    DOWNLOADED,
    FIGURE_FORMATS,
    PLOT_KINDS,
    PLOT_METRICS,
    PLOT_STATS,
)


class UserError(click.ClickException):
    """A bad request: one line per problem, exit code 2, no traceback."""

    exit_code = 2

    def show(self, file=None) -> None:
        for line in self.format_message().splitlines():
            click.echo(f"error: {line}", err=True)


def _config_path(arg: str) -> Path:
    """CONFIG as given: a YAML file, or the name of a shipped experiment."""
    from .experiments import NotFound, resolve

    try:
        return resolve(arg)
    except NotFound as exc:
        raise UserError(str(exc)) from None


def _load_config(arg: str, overrides: tuple[str, ...]):
    from .config import ConfigError, load

    try:
        return load(_config_path(arg), list(overrides))
    except ConfigError as exc:
        raise UserError(str(exc)) from None


SET_HELP = "Override a config key, e.g. --set model.norm=none (repeatable; YAML values)."


class _Bnexp(click.Group):
    """The bnexp group; remembers the arguments it was invoked with (for the
    command line recorded in run.json and sweep.yaml, also in-process)."""

    invoked: list[str] = []

    def invoke(self, ctx):
        """Every library error (``BnexpError``) becomes its lines and exit 2."""
        from .errors import BnexpError

        try:
            return super().invoke(ctx)
        except BnexpError as exc:
            raise UserError(str(exc)) from None
        except OSError as exc:  # a path the system refuses to look up (too long, say)
            name = str(exc.filename or "")
            name = name if len(name) <= 80 else f"{name[:40]}...{name[-30:]}"
            raise UserError(f"{name or 'a path'}: {exc.strerror or exc}") from None
        except click.UsageError as exc:  # a command's own options: one line too
            where = " ".join(["bnexp", *(exc.ctx.command_path.split()[1:] if exc.ctx else [])])
            raise UserError(f"{exc.format_message()} (see {where} --help)") from None

    def main(self, args=None, *rest, **kw):
        _Bnexp.invoked = list(args) if args is not None else sys.argv[1:]
        import warnings

        _SHOWN.clear()
        with warnings.catch_warnings():
            warnings.showwarning = _show_warning
            return super().main(args, *rest, **kw)


_SHOWN: set[str] = set()


def _show_warning(message, category, *args, **kw) -> None:
    """A library warning (a summary that disagrees with its runs) as one line, once."""
    if str(message) not in _SHOWN:
        _SHOWN.add(str(message))
        click.echo(f"warning: {message}", err=True)


@click.group(cls=_Bnexp, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="bnexp")
def main() -> None:
    """bnexp: a lab bench for normalization experiments in neural networks.

    Train MLPs and small CNNs on a hand-written NumPy engine with batch,
    layer, group or instance norm (or none), and see what normalization does.

    \b
    Example:
      bnexp sweep weight_scale        # the book's weight-scale figure (a shipped experiment)
      bnexp list                      # every shipped experiment
      bnexp train book_bn --set model.norm=none --set name=book-none
      bnexp train book_bn --set model.arch=cnn --set model.norm=group --set name=cnn-gn
      bnexp plot runs/weight-scale
      bnexp report runs/weight-scale  # claim, computed verdict, figures, table
    """


@main.command()
@click.argument("config")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help=SET_HELP)
@click.option("--out", default="runs", show_default=True, type=click.Path(file_okay=False),
              help="Output directory; the run goes to OUT/<name>/.")
@click.option("--force", is_flag=True, help="Overwrite an existing run folder.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar and no summary.")
@click.option("--no-plot", is_flag=True, help="Skip drawing curves.png.")
@click.option("--threads", type=click.IntRange(min=1), default=1, show_default=True,
              help="Threads that share the evaluation of the train and test splits. "
                   "Training always runs on one BLAS thread, and the numbers are the "
                   "same for any --threads.")
def train(config: str, overrides: tuple[str, ...], out: str, force: bool, quiet: bool,
          no_plot: bool, threads: int) -> None:
    """Train one model as CONFIG (a YAML file, or a shipped experiment's name) describes.

    Writes config.yaml (resolved), metrics.csv, run.json, curves.png, the
    trained model (model.npz) and, when enabled, diagnostics.csv and steps.csv
    into OUT/<name>/. The same config and seed give the same metrics, bit for
    bit, on this machine. The same command finishes a stopped run: from its
    last checkpoint (train.checkpoint_every N) where there is one, else from
    the start (--force always starts over). A second train into a folder
    that one is writing is refused.

    \b
    Example:
      bnexp train book_bn
      bnexp train book_bn --set init.weight_scale=1e-4 --set name=tiny --force
      bnexp train my_experiment.yaml --out results --set train.checkpoint_every=5
    """
    cfg = _load_config(config, overrides)
    from .provenance import single_thread_env

    single_thread_env()  # before numpy loads: no idle BLAS threads at all
    from . import runner
    from .sweep import train_run

    run_dir = Path(out) / cfg.name
    bar, on_eval, on_step = _train_progress(cfg, quiet)
    runner.preload(plot=not no_plot)  # before SIGTERM may interrupt an import
    try:
        info = train_run(cfg, run_dir, force=force, argv=_argv(), plot=not no_plot,
                         on_eval=on_eval, threads=threads, on_step=on_step)
    except runner.RunFailed as exc:
        raise click.ClickException(f"run failed: {exc}") from None
    except KeyboardInterrupt:
        if bar is not None:
            bar.close()
        click.echo(f"interrupted: {run_dir} is marked interrupted; run the same command again "
                   "to resume", err=True)
        sys.exit(130)
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


BAR_SECONDS = 0.2  # the train bar moves at most this often


def _train_progress(cfg, quiet: bool):
    """``(bar, on_eval, on_step)`` for ``bnexp train``: on a terminal a progress
    bar over the training steps, moved at most every BAR_SECONDS; elsewhere a
    line per evaluation; nothing with --quiet (bar and on_step None off a terminal)."""
    bar = on_step = None
    if not quiet and _on_terminal():
        import time

        from tqdm import tqdm

        # mininterval 0: on_step already throttles, and a second clock could skip its redraw
        bar = tqdm(total=None, desc=cfg.name, unit="step", leave=False, file=sys.stderr,
                   mininterval=0)
        shown = [-BAR_SECONDS]  # time.monotonic() of the last redraw

        def on_step(step: int, total: int) -> None:
            now = time.monotonic()
            if now - shown[0] < BAR_SECONDS:
                return  # most steps: one clock read
            shown[0] = now
            if bar.total is None:  # the first step: the run's size, and where a resume starts
                bar.reset(total=total)
                bar.initial = bar.n = step - 1
            bar.update(step - bar.n)

    def on_eval(row, result):
        if bar is not None:
            if bar.total is not None and row["step"] > bar.n:
                bar.update(row["step"] - bar.n)
            bar.set_postfix(epoch=f"{row['epoch']}/{cfg.train.epochs}",
                            train_acc=f"{row['train_acc']:.3f}", test_acc=f"{row['test_acc']:.3f}")
        elif not quiet:  # not a terminal: a line per evaluation
            click.echo(f"{cfg.name}: epoch {row['epoch']}/{cfg.train.epochs}: train acc "
                       f"{row['train_acc']:.4f}, test acc {row['test_acc']:.4f} "
                       f"({row['elapsed']:.1f} s)", err=True)
    return bar, on_eval, on_step


def _on_terminal() -> bool:
    """Progress bars on a terminal; elsewhere (a log, a notebook) a line per step."""
    return sys.stderr.isatty()


def _argv() -> list[str]:
    """The command line as typed, with the program named ``bnexp``."""
    return ["bnexp", *_Bnexp.invoked]


def _parse_seeds(text: str | None) -> list[int] | None:
    if text is None:
        return None
    try:
        return [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise UserError(f"--seeds: got {text!r}, expected integers like 0,1,2") from None


@main.command()
@click.argument("config")
@click.option("--grid", "grid", multiple=True, metavar="KEY=V1,V2,...",
              help="Add or replace a grid axis, e.g. --grid model.norm=none,batch or "
                   "--grid init.weight_scale=logspace:0,-4,16 (repeatable).")
@click.option("--seeds", metavar="S1,S2,...", help="Seeds to run each point with, e.g. 0,1,2.")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help=SET_HELP)
@click.option("--out", default="runs", show_default=True, type=click.Path(file_okay=False),
              help="Output directory; the sweep goes to OUT/<name>/.")
@click.option("-j", "--jobs", type=click.IntRange(min=1), default=None,
              help="Parallel runs (default: all cores).")
@click.option("--dry-run", is_flag=True,
              help="List the runs, check the data (never downloading) and estimate the time; "
                   "run nothing.")
@click.option("--force", is_flag=True, help="Rerun every point, finished or not.")
@click.option("--retry-failed", is_flag=True, help="Rerun points whose run failed.")
@click.option("--fail-fast", is_flag=True, help="Stop at the first failed run.")
@click.option("--executor", type=click.Choice(["local", "dask"]), default="local",
              show_default=True,
              help="Where runs execute: a local process pool, or a Dask cluster (the scheduler "
                   "at --address, else a local cluster of -j worker processes, one thread "
                   "each, closed when the sweep ends).")
@click.option("--address", metavar="tcp://HOST:PORT",
              help="With --executor dask: the scheduler of a running cluster (default: start "
                   "a local one).")
@click.option("--no-plot", is_flag=True, help="Skip per-run curves and the sweep figure.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar and no summary.")
def sweep(config, grid, seeds, overrides, out, jobs, dry_run, force, retry_failed, fail_fast,
          executor, address, no_plot, quiet) -> None:
    """Run a grid of experiments: every combination of the values in CONFIG's
    sweep section (and --grid), for every seed.

    Each point is a run folder OUT/<name>/<run_id>/ exactly as `bnexp train`
    writes it, plus summary.csv and aggregate.csv (mean, sd, 95% interval and
    n over seeds), kept current while the sweep runs. Rerunning the same
    command resumes: finished runs are skipped.

    \b
    Example:
      bnexp sweep weight_scale
      bnexp sweep weight_scale --dry-run
      bnexp sweep book_bn --grid model.norm=none,batch --seeds 0,1,2 -j 2
    """
    from . import sweep as sweep_mod

    if address and executor != "dask":
        raise UserError(f"--address {address}: only used with --executor dask (add it, or drop "
                        "--address to run on this machine)")
    note = sweep_mod.jobs_note(jobs, executor, address)
    if note:
        click.echo(f"note: {note}", err=True)
    path = _config_path(config)
    sw = sweep_mod.load(path, grid, _parse_seeds(seeds), overrides)
    if dry_run:
        _print_dry_run(sweep_mod.dry_run(sw, out, jobs, executor, plot=not no_plot,
                                         address=address))
        return
    bar, progress = _sweep_progress(sw, quiet)
    try:
        sweep_dir, outcome = sweep_mod.execute(
            sw, out, jobs=jobs, force=force, retry_failed=retry_failed, fail_fast=fail_fast,
            plot=not no_plot, executor=executor, address=address, command=_argv(),
            progress=progress)
    except KeyboardInterrupt:
        if bar is not None:
            bar.close()
        click.echo("interrupted: finished runs are kept; run the same command again to resume",
                   err=True)
        sys.exit(130)
    finally:
        if bar is not None:
            bar.close()
    _finish_sweep(sw, sweep_dir, outcome, plot=not no_plot, quiet=quiet)


def _finish_sweep(sw, sweep_dir: Path, outcome, plot: bool, quiet: bool) -> None:
    """After the runs: the sweep's figure, the counts, and the failed runs
    with the commands that reproduce them (exit 1 where any failed)."""
    from . import sweep as sweep_mod

    figure = None
    if plot:
        figure, why = sweep_mod.draw_figure(sweep_dir)
        if why is not None:
            click.echo(f"note: no sweep figure drawn ({why})", err=True)
    if not quiet:
        c = outcome.counts()
        click.echo(f"{sw.name}: {len(sw.points)} runs: {c['done']} completed, {c['diverged']} "
                   f"diverged, {c['failed']} failed, {c['skipped']} skipped (already run) "
                   f"-> {sweep_dir}")
        if figure:
            click.echo(f"figure: {figure}")
    if outcome.failed:
        for line in sweep_mod.failure_report(sweep_dir, outcome):
            click.echo(line, err=True)
        sys.exit(1)


def _print_dry_run(plan) -> None:
    """The runs as a table, the notes on their data, their count, then the
    estimated time (printed last: timing the models takes a moment)."""
    click.echo(_table(plan.header, plan.rows))
    for note in plan.notes:
        click.echo(f"note: {note}", err=True)
    click.echo(plan.count)
    click.echo(plan.estimate())


def _sweep_progress(sw, quiet: bool):
    """``(bar, progress)`` for ``bnexp sweep``: a progress bar on a terminal, a
    line per finished run elsewhere, nothing with --quiet (bar None off a terminal)."""
    import time

    bar, start = None, time.monotonic()
    if not quiet and _on_terminal():
        from tqdm import tqdm

        bar = tqdm(total=len(sw.points), desc=sw.name, unit="run", file=sys.stderr)

    def progress(run_id, info, outcome):
        done = sum(outcome.counts().values())
        if bar is not None:
            bar.n = done
            bar.set_postfix(outcome.counts(), refresh=True)
        elif not quiet:  # not a terminal (a log, a notebook's !bnexp): a line per run
            final = info.get("final") or {}
            acc = f", test acc {final['test_acc']:.3f}" if "test_acc" in final else ""
            secs = f" in {info['seconds']:.1f} s" if info.get("seconds") is not None else ""
            eta = outcome.eta(len(sw.points))
            click.echo(f"[{done}/{len(sw.points)}] {run_id}: {info.get('status')}{acc}{secs}; "
                       f"elapsed {_clock(time.monotonic() - start)}, "
                       f"eta {'?' if eta is None else _clock(eta)}", err=True)
    return bar, progress


def _clock(seconds: float) -> str:
    """A duration, short: ``42s``, ``1m23s``, ``2h05m``."""
    s = round(seconds)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


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
@click.option("--band", type=click.Choice(["ci", "sd"]), default="ci", show_default=True,
              help="grid/final: shade the 95% interval of the mean over seeds, or +-1 sd.")
@click.option("--layer", type=int, help="activations: hidden layer (default: the last).")
@click.option("--filter", "filters", multiple=True, metavar="KEY=VALUE",
              help="Only runs with this value of a swept key (repeatable).")
@click.option("--out", type=click.Path(), help="Output file (default: in PATH).")
@click.option("--format", "fmt", type=click.Choice(FIGURE_FORMATS), default=None,
              help="File format (default: from --out's extension, else png).")
@click.option("--force", is_flag=True,
              help="Redraw the folder's own figure (grid.png, curves.png) even where it changes.")
def plot(path, kind, panels, lines, x, y, metric, stat, band, layer, filters, out, fmt,
         force) -> None:
    """Draw a figure from a saved run or sweep folder, without training.

    \b
    Kinds:
      curves       train/test accuracy and loss vs epoch (a run's default)
      grid         small multiples: --panels KEY, --lines KEY, --metric
      final        final/best metric vs a swept key, mean and 95% interval over seeds
      bars         final/best metric per category: grouped bars, error bars over seeds
                   (the default for a sweep whose keys are all categories)
      heatmap      final metric over two swept keys, values in the cells
      activations  15/50/85th percentiles of a hidden unit's input (diagnostics)
      landscape    loss along the gradient over training, min to max, per --lines
                   value (eval.landscape_every; Santurkar et al. 2018, Fig. 4)

    \b
    Example:
      bnexp plot runs/weight-scale
      bnexp plot runs/weight-scale --kind final --x init.weight_scale --lines model.norm
      bnexp plot runs/weight-scale --filter init.weight_scale=1e-4   # -> grid_weight_scale=0.0001.png
      bnexp plot runs/book-bn --format svg --out book-bn.svg

    A figure without --out goes into PATH under a name that says what it shows;
    the folder's own figure is redrawn only where it would not change, or with
    --force.
    """
    from .figures import PlotError, plot_path

    try:
        written = plot_path(path, kind, out=out, fmt=fmt, force=force, panels=panels,
                            lines=lines, x=x, y=y, metric=metric, stat=stat,
                            filters=list(filters), layer=layer, band=band)
    except PlotError as exc:  # the library names its option; here it is a flag
        raise PlotError(_in_flags(str(exc), exc.option)) from None
    click.echo(str(written))


# The figure options by the flags `bnexp plot` gives them.
PLOT_FLAGS = {"kind": "--kind", "panels": "--panels", "lines": "--lines", "x": "--x",
              "y": "--y", "metric": "--metric", "stat": "--stat", "band": "--band",
              "layer": "--layer", "filters": "--filter", "out": "--out", "fmt": "--format",
              "force": "--force"}


def _in_flags(message: str, option: str | None) -> str:
    """A figure error in the flags' terms: opened with the flag of the option at
    fault, and the options it suggests (force, out) named as flags."""
    if option in PLOT_FLAGS and message.startswith(f"{option}: "):
        message = f"{PLOT_FLAGS[option]}: {message[len(option) + 2:]}"
    if option == "force":
        message = message.replace("pass force to", "pass --force to").replace(
            "or out FILE", "or --out FILE")
    return message


@main.command()
@click.argument("sweep_dirs", nargs=-1, required=True, type=click.Path(file_okay=False))
@click.option("--out", type=click.Path(),
              help="Page to write: Markdown, or one self-contained HTML page where it ends "
                   "in .html (default: SWEEP_DIR/report.md).")
@click.option("--figures", type=click.Path(file_okay=False),
              help="Folder for a Markdown page's figures (default: next to the page, "
                   "figures/); an HTML page holds them inline.")
@click.option("--title", help="Page title (with it, each sweep is a section).")
@click.option("--intro", type=click.Path(),
              help="A Markdown file whose text opens the page.")
@click.option("--check", is_flag=True,
              help="Also print each claim's verdict, and exit 1 if any check's outcome "
                   "differs from its published one (expect:), in either direction.")
def report(sweep_dirs, out, figures, title, intro, check) -> None:
    """Write a summary of one or more sweeps, as Markdown or as one HTML page:
    the claim, the verdict computed from the checks in the sweep's report
    section (with intervals over seeds), its figures, and the table of every
    grid point, all drawn from the runs on disk.

    \b
    Example:
      bnexp report runs/weight-scale
      bnexp report runs/weight-scale runs/batch-size --title Experiments --out EXPERIMENTS.md
      bnexp report runs/weight-scale runs/batch-size --title Experiments --out page.html
      bnexp report runs/placement --check      # exit 1 if any published outcome changes
    """
    from .report import write_report

    text = _read_text(intro, "--intro") if intro else None
    path, sections = write_report(list(sweep_dirs), out, figures, title, text)
    click.echo(str(path))
    if not check:
        return
    failed = False
    for s in sections:
        if s.claim is None:
            click.echo(f"{s.name}: no checks")
            continue
        click.echo(f"{s.name}: {s.claim.verdict} ({s.claim.tally})")
        for c in s.claim.checks:
            if c.changed or c.expect is None:
                click.echo(f"  {c.shown}: {c.text}")
        for c in s.claim.changes():
            failed = True
            click.echo(f"error: {s.name}: {c.outcome} where published {c.expect}: {c.text}",
                       err=True)
    if failed:
        sys.exit(1)


@main.command()
@click.argument("path", type=click.Path(exists=True, file_okay=False))
@click.option("--to", "to", required=True, type=click.Choice(["tensorboard", "mlflow"]),
              help="The tracker: TensorBoard event files, or an MLflow file store.")
@click.option("--out", required=True, type=click.Path(),
              help="A new folder to write into (refused if it exists).")
def export(path, to, out) -> None:
    """Export a run folder, or every run of a sweep folder, to TensorBoard or
    MLflow: one tracker run per run folder, every per-epoch metric (step =
    epoch), the config as hparams or params; MLflow also gets the run folder's
    files as artifacts, in one experiment per sweep. Needs the tracker's
    extra: pip install "bnexp[tensorboard]" or "bnexp[mlflow]".

    \b
    Example:
      bnexp export runs/weight-scale --to tensorboard --out tb && tensorboard --logdir tb
      bnexp export runs/weight-scale --to mlflow --out mlruns
      MLFLOW_ALLOW_FILE_STORE=true mlflow ui --backend-store-uri mlruns
    """
    from .export import export as export_runs

    written, n = export_runs(path, to, out)
    click.echo(f"{written}: {n} run{'s' if n != 1 else ''} exported to {to}")


def _read_text(path: str, what: str) -> str:
    from .yamlio import YamlError, read_text

    try:
        return read_text(path, "text file")
    except YamlError as exc:
        raise UserError(f"{what} {exc}") from None


@main.command()
@click.argument("path", type=click.Path())
@click.option("-j", "--jobs", type=click.IntRange(min=1), default=None,
              help="Runs recomputed in parallel (default: all cores).")
@click.option("--quiet", "-q", is_flag=True, help="Only the summary line and differing runs.")
def verify(path: str, jobs: int | None, quiet: bool) -> None:
    """Rerun a run, or every finished run of a sweep, from its own config.yaml
    and compare with what the folder holds (nothing is written).

    Per run: identical, or how far it differs (largest difference per column,
    first differing row) and which recorded facts that decide numbers changed
    (bnexp commit, numpy, BLAS library/kernel/threads, CPU, engine). Exit 1 if
    any run differs.

    \b
    Example:
      bnexp verify runs/weight-scale
      bnexp verify "runs/weight-scale/weight_scale=0.01,norm=batch,seed=0"
    """
    from .provenance import single_thread_env

    single_thread_env()
    from .verify import verify as run_verify

    def show(check):
        if quiet and check.result != "differs":
            return
        facts = f" [changed: {'; '.join(check.changed)}]" if check.changed else ""
        detail = f": {check.detail}" if check.detail else ""
        click.echo(f"{check.run_id}: {check.result}{detail}{facts}")

    try:
        checks = run_verify(path, jobs, progress=None)
    except KeyboardInterrupt:
        click.echo("interrupted: nothing was written", err=True)
        sys.exit(130)
    for c in checks:
        show(c)
    counts = {r: sum(c.result == r for c in checks) for r in ("identical", "differs", "skipped")}
    click.echo(f"{path}: {len(checks)} run{'s' if len(checks) != 1 else ''}: "
               f"{counts['identical']} identical, {counts['differs']} differ, "
               f"{counts['skipped']} skipped")
    if counts["differs"]:
        sys.exit(1)


@main.command("eval")
@click.argument("run", type=click.Path())
@click.option("--data", "dataset", type=click.Choice(DATASETS),
              help="Evaluate on this dataset's full splits instead of the run's own.")
@click.option("--root", type=click.Path(file_okay=False),
              help="With --data: the folder holding its IDX files.")
@click.option("--model", type=click.Path(),
              help="Model file (default RUN/model.npz; e.g. RUN/model_folded.npz).")
def eval_run(run: str, dataset: str | None, root: str | None, model: str | None) -> None:
    """Rebuild a run's saved model and evaluate it in eval mode.

    On the run's own data (the same seed draws the same subsets) the numbers
    equal the run's last metrics row exactly, and the command says so (exit 1
    if they do not; with --model, the run's numbers are shown beside). With
    --data, the splits of another dataset, preprocessed as the run was.

    \b
    Example:
      bnexp eval runs/book-bn
      bnexp eval runs/book-bn --data mnist
      bnexp eval runs/book-bn --model runs/book-bn/model_folded.npz
    """
    from .deploy import evaluate_run

    results = evaluate_run(run, dataset, root, model)
    mismatch = False
    for r in results:
        line = f"{r.split}: loss {r.loss:.6g}, accuracy {r.accuracy:.6g} ({r.n:,} samples)"
        if r.recorded is not None:
            rec_loss, rec_acc = r.recorded[f"{r.split}_loss"], r.recorded[f"{r.split}_acc"]
            epoch = int(r.recorded["epoch"])
            if model:  # another model file (a folded one): compare, do not require equality
                line += (f"; the run's model at epoch {epoch}: loss {rec_loss:.6g}, "
                         f"accuracy {rec_acc:.6g}")
            else:
                same = r.loss == rec_loss and r.accuracy == rec_acc
                mismatch |= not same
                line += (f"; {'equals' if same else 'DIFFERS from'} the run's evaluation at "
                         f"epoch {epoch}")
        click.echo(line)
    if mismatch:
        sys.exit(1)


@main.command()
@click.argument("run", type=click.Path())
@click.option("--out", type=click.Path(),
              help="Folded model file (default RUN/model_folded.npz).")
@click.option("--force", is_flag=True, help="Replace an existing --out file.")
def fold(run: str, out: str | None, force: bool) -> None:
    """Fold every BatchNorm into the Linear or Conv2d before it, for inference.

    In eval mode BN is a fixed per-channel scale and shift, which the layer
    before it can absorb: W' = W * s, b' = (b - mean) * s + beta, with
    s = gamma / sqrt(running_var + eps). Refused, with the reason: BN after the
    activation, BN without running statistics, and layer, group or instance
    norm (their statistics are computed at inference too). The folded model is
    checked against the original on the run's test split (largest logit
    difference within 1e-5 of the largest logit in float32, 1e-12 in float64)
    and both are timed there.

    \b
    Example:
      bnexp fold runs/book-bn
      bnexp eval runs/book-bn --model runs/book-bn/model_folded.npz
    """
    from .deploy import fold_run

    r = fold_run(run, out, force=force)
    click.echo(f"folded {', '.join(r.folded)} -> {r.out}")
    click.echo(f"largest logit difference on the test split ({r.n:,} samples): "
               f"{r.max_rel_diff:.3g} of the largest logit (allowed {r.tolerance:g})")
    click.echo(f"inference on the test split, median of 5: original {r.seconds_original:.4f} s, "
               f"folded {r.seconds_folded:.4f} s "
               f"({r.seconds_original / max(r.seconds_folded, 1e-12):.2f}x)")


@main.command()
@click.option("--out", type=click.Path(), default="reduction_axes.png",
              show_default=True, help="Output file; its extension decides the format.")
@click.option("--batch", type=click.IntRange(2, 32), default=6, show_default=True,
              help="Images in the batch (rows of each panel).")
@click.option("--channels", type=click.IntRange(2, 32), default=8, show_default=True,
              help="Channels of the conv output (columns of each panel).")
@click.option("--groups", type=click.IntRange(1, 32), default=2, show_default=True,
              help="Group norm's groups (must divide --channels).")
@click.option("--seed", type=click.IntRange(0), default=0, show_default=True,
              help="Seed of the images drawn and the conv weights.")
def axes(out: str, batch: int, channels: int, groups: int, seed: int) -> None:
    """Draw which values each norm averages over, measured on a real batch.

    A batch of mnist5k images goes through a random 3x3 conv; batch, layer,
    group and instance norm each normalize its output. Per norm: which
    (sample, channel) planes share the statistics of one marked plane (found
    by moving only that plane and seeing which outputs move), and the mean and
    std over (H, W) that the norm leaves in every plane (Wu & He 2018, Fig. 2).

    \b
    Example:
      bnexp axes
      bnexp axes --channels 16 --groups 4 --out axes.svg
    """
    if channels % groups:
        raise UserError(f"--groups: got {groups}, expected a divisor of --channels {channels}")
    from .axes import write_reduction_figure
    from .figures import output_format

    output_format(out, None)
    written = write_reduction_figure(out, batch=batch, channels=channels, groups=groups,
                                     seed=seed)
    click.echo(str(written))


@main.command("list")
def list_experiments() -> None:
    """List the experiments shipped with bnexp: name, runs, what it reproduces,
    and the download an experiment needs first when its data is not here.

    \b
    Example:
      bnexp list
      bnexp sweep weight_scale          # run one by its name
      bnexp init weight_scale           # copy it here to edit
    """
    import shutil

    from . import experiments
    from .config import ConfigError
    from .sweep import SweepError, load

    rows = []
    for name in experiments.names():
        try:
            points = load(experiments.path(name)).points
        except (ConfigError, SweepError):
            points = None
        note = experiments.needs_note(experiments.missing_data(p.config for p in points or ()))
        description = " ".join(filter(None, (experiments.describe(name), note)))
        rows.append((name, "?" if points is None else str(len(points)), description))
    width = max(shutil.get_terminal_size().columns, LIST_MIN_COLUMNS)
    click.echo(_table(("name", "runs", "description"), rows, wrap_to=width))


LIST_MIN_COLUMNS = 60


@main.command()
@click.argument("name")
@click.argument("dest", required=False, type=click.Path())
@click.option("--force", is_flag=True, help="Overwrite DEST if it exists.")
def init(name: str, dest: str | None, force: bool) -> None:
    """Copy the shipped experiment NAME to DEST (default: ./NAME.yaml) to edit.

    \b
    Example:
      bnexp init weight_scale
      bnexp init batch_size my_batch_study.yaml
      bnexp sweep my_batch_study.yaml
    """
    from . import experiments
    from .store import atomic_write, check_user_output

    if name not in experiments.names():
        raise UserError(f"{name}: no shipped experiment of that name (shipped: "
                        f"{', '.join(experiments.names())})")
    target = Path(dest) if dest else Path(f"{name}.yaml")
    check_user_output(target)
    if target.exists() and not force:
        raise UserError(f"{target} exists; pass --force to overwrite it or name another file")
    atomic_write(target, experiments.path(name).read_text(encoding="utf-8"))
    click.echo(f"{target}: a copy of {name}; edit it, then: bnexp sweep {target}")


@main.group()
def data() -> None:
    """Full-size datasets: download once, verify, cache.

    \b
    Example:
      bnexp data download fashion-mnist
      bnexp data download cifar10
      bnexp data ls
    """


@data.command("download")
@click.argument("name", type=click.Choice(DOWNLOADED))
@click.option("--dest", type=click.Path(file_okay=False),
              help="Folder to download into (default: the bnexp cache).")
def data_download(name: str, dest: str | None) -> None:
    """Download NAME's files from its mirrors, verifying each against its
    published MD5 before it enters the cache (mnist, fashion-mnist: four
    IDX files; cifar10: one archive, of which the six record files are kept).

    \b
    Example:
      bnexp data download mnist
      bnexp data download fashion-mnist --dest ~/datasets/fashion-mnist
      bnexp data download cifar10
    """
    from .datasets.download import download, verified_copy
    from .datasets.sources import DataError

    if dest is None:
        here = verified_copy(name)
        if here is not None:
            click.echo(f"{name}: already here and verified in {here}; nothing to download "
                       "(--dest DIR downloads a copy there)")
            return
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
    from .datasets import inventory
    from .datasets.download import cache_dir

    rows = inventory(root)
    header = ("dataset", "file", "MB", "check", "folder")
    body = [(r["dataset"], r["file"], f"{r['bytes'] / 1e6:.1f}", r["check"], r["folder"])
            for r in rows]
    click.echo(_table(header, body))
    click.echo(f"cache: {cache_dir()}")


def _table(header, rows, wrap_to: int | None = None) -> str:
    """Columns padded to their widest cell, two spaces apart. With ``wrap_to``,
    the last column is wrapped at word boundaries so that lines fit that many
    columns, continued under itself (a hanging indent)."""
    lines = [header, *rows]
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    if wrap_to is None:
        return "\n".join("  ".join(c.ljust(w) for c, w in zip(line, widths)).rstrip()
                         for line in lines)
    import textwrap

    indent = sum(widths[:-1]) + 2 * (len(widths) - 1)
    out = []
    for line in lines:
        lead = "".join(c.ljust(w + 2) for c, w in zip(line[:-1], widths))
        parts = textwrap.wrap(line[-1], max(wrap_to - indent, 20), break_long_words=False,
                              break_on_hyphens=False) or [""]
        out.append((lead + parts[0]).rstrip())
        out += [" " * indent + part for part in parts[1:]]
    return "\n".join(out)


if __name__ == "__main__":  # pragma: no cover
    main()
