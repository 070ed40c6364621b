"""The `lifeboat` command line. Each command is a thin call into one stage."""

from __future__ import annotations

import gc
import json
import logging
import os
import posixpath
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict
from datetime import UTC, datetime
from enum import StrEnum
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from typer.core import TyperArgument, TyperCommand, TyperGroup

from lifeboat import __version__
from lifeboat.errors import LifeboatError
from lifeboat.logs import configure_logging

if TYPE_CHECKING:
    from rich.progress import Progress

    from lifeboat.cluster import LocalCluster
    from lifeboat.config import Settings
    from lifeboat.datasets import DatasetSpec
    from lifeboat.db import Database
    from lifeboat.orchestration import BootstrapReport, JobContext

# What each command needs (settings, SQLAlchemy, MLflow, pandas) is imported inside it:
# `lifeboat --help` and the listings answer at once (tests/cli/test_startup.py).


class _PlainHelp:
    """Typer labels each flag `<bool>` and writes a required argument `{source}`: a flag
    needs no label, and arguments read as usual, SOURCE and [SOURCE]."""

    def get_params(self, ctx: typer.Context) -> list:
        params = super().get_params(ctx)  # type: ignore[misc]
        for param in params:
            if getattr(param, "is_flag", False) and param.metavar is None:
                param.metavar = ""
        return params

    def collect_usage_pieces(self, ctx: typer.Context) -> list[str]:
        pieces = [self.options_metavar] if self.options_metavar else []  # type: ignore[attr-defined]
        for param in self.get_params(ctx):
            if isinstance(param, TyperArgument):
                name = (param.metavar or param.name or "").upper()
                pieces.append(name if param.required else f"[{name}]")
            else:
                pieces.extend(param.get_usage_pieces(ctx))
        return pieces


class _Command(_PlainHelp, TyperCommand):
    pass


class _Group(_PlainHelp, TyperGroup):
    def collect_usage_pieces(self, ctx: typer.Context) -> list[str]:
        return [*super().collect_usage_pieces(ctx), self.subcommand_metavar]


SERVE, DATA, MODELS, JOBS = "Serve", "Data", "Models", "Jobs and monitoring"

app = typer.Typer(help="Lifeboat: tabular models as production software.", no_args_is_help=True,
                  pretty_exceptions_enable=False, add_completion=False, cls=_Group)
# Off a terminal (logs, CI, pipes) Rich would assume 80 columns and fold every table.
_WIDTH = None if sys.stdout.isatty() else int(os.environ.get("COLUMNS", 160))
console = Console(stderr=True, soft_wrap=True, width=_WIDTH)
out = Console(soft_wrap=True, width=_WIDTH)
# What the options common to every command (`lifeboat --home H --dataset D ...`) set; they
# win over the environment, as init arguments of the one Settings object.
_chosen: dict[str, Any] = {}


def _command(panel: str, name: str | None = None) -> Callable:
    return app.command(name, cls=_Command, rich_help_panel=panel)


def _show_version(asked: bool) -> None:
    if asked:
        out.print(f"lifeboat {__version__}")
        raise typer.Exit()


@app.callback()
def _common(
    home: Annotated[Path | None, typer.Option(
        help="The Lifeboat home (state, embedded stores). Default: LIFEBOAT_HOME, else the "
             "nearest .lifeboat folder here or above.", show_default=False)] = None,
    dataset: Annotated[str | None, typer.Option(
        help="Dataset spec to use. Default: LIFEBOAT_DATASET, else titanic.",
        show_default=False)] = None,
    version: Annotated[bool, typer.Option(
        "--version", help="Print the version and exit.", callback=_show_version,
        is_eager=True)] = False,
) -> None:
    _chosen.clear()
    _chosen.update({name: value for name, value in (("home", home), ("dataset", dataset))
                    if value is not None})


class Engine(StrEnum):
    local = "local"
    spark = "spark"


EngineOption = Annotated[Engine | None, typer.Option(
    help="Where the job runs: this process, or Spark (LIFEBOAT_SPARK_MASTER). Default: "
         "LIFEBOAT_ENGINE, else local.")]


PortOption = Annotated[int | None, typer.Option(
    help="The API's port. Default: LIFEBOAT_PORT, else 8000.", show_default=False)]


class Context:
    """What every command needs, built from the settings on first use: the common options
    and the command's own (`engine`, `port`) over the environment."""

    def __init__(self, engine: Engine | None = None, port: int | None = None) -> None:
        from lifeboat.config import Settings

        chosen = {**_chosen, **({"engine": engine.value} if engine else {}),
                  **({"port": port} if port is not None else {})}
        self.settings = Settings(**chosen)
        configure_logging(self.settings.log_level)

    @cached_property
    def spec(self) -> DatasetSpec:
        from lifeboat.datasets import load_spec

        return load_spec(self.settings.dataset)

    @cached_property
    def database(self) -> Database:
        from lifeboat.db import Database

        self.settings.ensure_home()
        return Database(self.settings.db_url)

    def upgraded(self) -> Database:
        """The database, its schema brought up to date."""
        from lifeboat.db import upgrade

        upgrade(self.database)
        return self.database

    def jobs(self) -> JobContext:
        """The context jobs run in, on an up-to-date schema."""
        from lifeboat.orchestration import JobContext

        return JobContext(self.settings, self.upgraded(), self.spec)

    def reading(self, *, database: bool = False, registry: bool = False) -> Context:
        """For a read-only command: the home must exist where the state it reads is kept
        there (the embedded database, the embedded registry), not be made empty."""
        if ((database and self.settings.database_url is None)
                or (registry and self.settings.mlflow_tracking_uri is None)):
            self.settings.existing_home()
        return self


@contextmanager
def _steps(title: str) -> Iterator[Callable[[str], None]]:
    """A spinner on a terminal; each step is logged too, so unattended runs show progress."""
    log = logging.getLogger("lifeboat")

    with console.status(title) as status:

        def progress(step: str) -> None:
            status.update(f"{title}: {step}")
            log.info("%s: %s", title, step)

        yield progress


@_command(SERVE)
def up(port: PortOption = None) -> None:
    """The main job: prepare everything that is missing, then serve the API and the web UI.

    Ctrl-C, SIGTERM and SIGHUP stop it and every process it started."""
    from lifeboat.lifecycle import stop_child, stop_on_hangup_and_terminate

    stop_on_hangup_and_terminate()
    context = Context(port=port)
    specs = _bootstrap(context)
    if not context.settings.embedded_jobs:
        _serve(context.settings)
        return
    from lifeboat.orchestration import describe, start_embedded_jobs
    from lifeboat.orchestration import schedule as periodic_jobs

    periodic = periodic_jobs(context.settings, specs)
    jobs = start_embedded_jobs(context.settings, periodic)
    console.print(f"jobs: drop {context.spec.name} files into {context.settings.landing_url}"
                  "/raw to ingest and score them (`lifeboat jobs` lists the runs); "
                  f"{describe(periodic)}")
    try:
        _serve(context.settings)
    finally:
        stop_child(jobs)


@_command(SERVE, "bootstrap")
def bootstrap_command() -> None:
    """Prepare what serving needs, then exit: schema, bundled data, features, a first champion.

    `up` does the same before it serves; where `serve` replicas and a `schedule` process run
    apart (a cluster), one `bootstrap` runs first, so that no two replicas train a first model."""
    _bootstrap(Context())


def _bootstrap(context: Context) -> list[DatasetSpec]:
    from lifeboat.orchestration import bootstrap
    from lifeboat.serving import served_specs

    specs = served_specs(context.settings)
    for spec in specs:
        with _steps(f"starting Lifeboat ({spec.name})") as progress:
            report = bootstrap(context.settings, context.database, spec, progress)
        _print_bootstrap(spec, report)
    return specs


def _print_bootstrap(spec: DatasetSpec, report: BootstrapReport) -> None:
    if report.ingested:
        rows = sum(ingested.rows_loaded for ingested in report.ingested)
        console.print(f"loaded {rows} {spec.name} rows")
    console.print(_materialized_line(report.materialized))
    if report.trained:
        metrics = report.trained.metrics
        console.print(f"trained {report.trained.model_name} v{report.trained.version} "
                      f"({report.trained.best_candidate}): held-out accuracy "
                      f"{metrics['accuracy']:.3f}, ROC AUC {metrics['roc_auc']:.3f}")
    console.print(f"champion: {report.champion.name} v{report.champion.version}")


@_command(SERVE)
def serve(port: PortOption = None) -> None:
    """Serve the API alone (the champion must exist)."""
    context = Context(port=port)
    context.upgraded()
    _serve(context.settings)


@_command(DATA)
def ingest(
    source: Annotated[str | None, typer.Argument(
        help="File, folder or URL (s3://, gs://, https://). Default: the landing zone's raw/, "
             "whose files are removed once processed.")] = None,
    engine: EngineOption = None,
) -> None:
    """Load files: good rows into the DB, bad rows to bad/ with reasons. Same content twice: no-op.

    On Spark each file's parts are validated by the executors, with the same outcomes row by
    row, and its good rows committed at once."""
    from lifeboat.ingest import expand_source
    from lifeboat.orchestration import ingest_counts, ingest_files, recorded_run
    from lifeboat.spark import stop_spark

    context = Context(engine)
    jobs = context.jobs()
    files = expand_source(source) if source else jobs.zone.waiting()
    reports = []

    def load() -> dict[str, int]:
        with _row_progress() as progress:
            def bar(name: str) -> Callable[[int], None]:
                task = progress.add_task(name, total=None)
                return lambda rows: progress.advance(task, rows)

            reports.extend(ingest_files(jobs, files, remove=source is None, progress=bar))
        return ingest_counts(reports)

    try:
        recorded_run(context.database, context.spec.name, "ingest", "cli", load)
    finally:
        stop_spark()
    out.print(_ingest_table(reports))
    if any(report.status == "rejected" for report in reports):
        raise typer.Exit(2)


@_command(DATA)
def validate(
    source: Annotated[str, typer.Argument(help="File or URL to check.", show_default=False)],
) -> None:
    """Dry run: what ingest would accept and reject, per issue type, with first examples."""
    from lifeboat.ingest import check_file

    context = Context()
    result = check_file(context.spec, source)
    if result.rejected:
        out.print(f"{source}: the whole file would be quarantined: {result.rejected}")
        raise typer.Exit(2)
    out.print(f"{source}: {result.rows_total} rows, {result.rows_valid} valid, "
              f"{result.rows_invalid} invalid")
    table = Table("issue", "count", "examples (row, column, value)")
    for issue, count in result.issues.most_common():
        examples = "; ".join(f"row {e['row']}: line {e['value']!r}" if e["column"] is None
                             else f"{e['row']}, {e['column']}, {e['value']!r}"
                             for e in result.examples[issue])
        table.add_row(issue, str(count), examples)
    if result.issues:
        out.print(table)
    if result.rows_invalid:
        raise typer.Exit(1)


@_command(MODELS)
def predict(
    source: Annotated[str, typer.Argument(
        help="CSV (plain or gzip) or Parquet file, or its URL (s3://, gs://, https://); on "
             "Spark also a folder of them.", show_default=False)],
    output: Annotated[str | None, typer.Option(
        "--output", "-o", help="Where to write the predictions; .parquet writes Parquet, "
                               ".gz compresses. Default: <stem>.predictions.csv (.parquet for "
                               "a Parquet input) beside the input. On Spark: a folder of "
                               "Parquet parts, default <stem>.predictions.")] = None,
    engine: EngineOption = None,
) -> None:
    """Score every row with the champion, write the predictions, log them as source `batch`.

    A value that cannot be used (not a number, out of range, not allowed) is scored as
    missing and named in the output's `issues` column. Rerunning the same file with the same
    champion, on either engine, logs nothing twice.
    """
    with _collector_paused():  # scoring alone: orchestration's imports cost ~2 s more
        from lifeboat.scoring import score_file
        from lifeboat.spark import score_on_spark, stop_spark

    context = Context(engine)
    settings, database, spec = context.settings, context.upgraded(), context.spec
    if settings.engine == "spark":
        try:
            report = score_on_spark(settings, database, spec, source, output)
        finally:
            stop_spark()
    else:
        with _file_progress() as progress:
            task = progress.add_task(f"scoring {posixpath.basename(source)}", total=None, rows=0)
            report = score_file(settings, database, spec, source, output,
                                lambda at: progress.update(task, completed=at.done,
                                                           total=at.total, rows=at.rows))
    out.print(f"scored {report.rows:,} rows with {report.model_name} v{report.model_version} in "
              f"{report.seconds:.1f} s ({report.rows / max(report.seconds, 1e-9):,.0f} rows/s) "
              f"→ {report.output}")
    out.print(f"logged {report.logged:,} predictions (source batch)"
              + (f", {report.already_logged:,} already logged by an earlier run"
                 if report.already_logged else "")
              + (f"; {report.with_issues:,} rows scored with a field missing (see `issues`)"
                 if report.with_issues else "")
              + (f"; {report.skipped_lines:,} unreadable lines skipped"
                 if report.skipped_lines else ""))
    gc.freeze()  # the interpreter's last collection, at exit, would walk every object: ~1 s


@contextmanager
def _collector_paused() -> Iterator[None]:
    """Imports with the garbage collector paused, their objects then frozen out of its reach:
    scoring's imports (scikit-learn, MLflow, ONNX) make millions of objects that live for
    the whole run, and full collections kept walking them (about a second, measured)."""
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        gc.enable()


def _file_progress() -> Progress:
    """A bar over the file's rows (counted in the pass that checksums a CSV file, read from
    a Parquet footer), with the rows scored so far."""
    from rich.progress import (
        BarColumn,
        Progress,
        SpinnerColumn,
        TaskProgressColumn,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    return Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(),
                    TaskProgressColumn(), TextColumn("{task.fields[rows]:,} rows"),
                    TimeElapsedColumn(), TimeRemainingColumn(), console=console, transient=True)


def _row_progress() -> Progress:
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    return Progress(SpinnerColumn(), TextColumn("{task.description}"),
                    TextColumn("{task.completed:,.0f} rows"), TimeElapsedColumn(),
                    console=console, transient=True)


def _ingest_table(reports: list) -> Table:  # noqa: ANN001
    table = Table("file", "status", "rows", "loaded", "rejected", "issues")
    for report in reports:
        issues = ", ".join(f"{k}: {v}" for k, v in (report.issues or {}).items())
        table.add_row(posixpath.basename(report.source), report.status, str(report.rows_total),
                      str(report.rows_loaded), str(report.rows_rejected), report.reason or issues)
    return table


features_app = typer.Typer(help="The feature view: offline table and online store.",
                           no_args_is_help=True, cls=_Group)
app.add_typer(features_app, name="features", rich_help_panel=DATA)


@features_app.command("materialize", cls=_Command)
def features_materialize(engine: EngineOption = None) -> None:
    """Compute features for entities that lack them and push them to the online store."""
    from lifeboat.orchestration import materialize_features
    from lifeboat.spark import stop_spark

    context = Context(engine)
    try:
        with _row_progress() as progress:
            task = progress.add_task("materializing", total=None)
            report = materialize_features(context.settings, context.upgraded(), context.spec,
                                          lambda rows: progress.advance(task, rows))
    finally:
        stop_spark()
    out.print(_materialized_line(report) + f" ({context.settings.online_store_url})")


def _materialized_line(report) -> str:  # noqa: ANN001
    return (f"features {report.view}@{report.version}: {report.computed} entities computed, "
            f"{report.pushed} vectors pushed online" + (" (full push)" if report.full_push else ""))


@_command(MODELS)
def train(
    promote: Annotated[bool, typer.Option(help="Make it champion if it beats the current one.")] = False,
    as_of: Annotated[str | None, typer.Option(
        "--as-of", metavar="VERSION",
        help="Train on exactly the data VERSION saw (rows loaded and outcomes received up "
             "to its training), and check that the data hash matches its own.")] = None,
) -> None:
    """Train with search + CV, log to MLflow and register a new version."""
    from lifeboat.registry import ModelRegistry
    from lifeboat.training import DataSeen
    from lifeboat.training import train as run_training

    context = Context()
    database = context.upgraded()
    seen, reproduced = None, None
    if as_of is not None:
        reproduced = ModelRegistry(context.settings, context.spec.model_name).get(as_of)
        seen = DataSeen.from_tags(reproduced.training_data)
        if seen is None:
            raise LifeboatError(f"v{as_of} was trained before Lifeboat recorded what data a "
                                "model saw: it cannot be reproduced")
    with _steps("training") as progress:
        result = run_training(context.settings, database, context.spec,
                              promote=promote, changed_by="cli", as_of=seen, progress=progress)
    metrics = result.metrics
    baseline = (f" (baseline {context.spec.training.baseline} alone: "
                f"{metrics['baseline_roc_auc']:.3f})" if "baseline_roc_auc" in metrics else "")
    out.print(f"registered {result.model_name} v{result.version} ({result.best_candidate}): "
              f"held-out accuracy {metrics['accuracy']:.3f} at threshold "
              f"{metrics['threshold']:.3f}, ROC AUC {metrics['roc_auc']:.3f}{baseline}, "
              f"F1 {metrics['f1']:.3f}")
    out.print(f"data hash {result.data_hash}")
    if result.promotion:
        verdict = "promoted to champion" if result.promotion.promoted else "not promoted"
        out.print(f"{verdict}: {result.promotion.reason}")
    if reproduced is not None:
        recorded = reproduced.training_data.get("data.hash")
        if recorded != result.data_hash:
            raise LifeboatError(f"the data differs from v{as_of}'s (hash {recorded}): rows "
                                "it saw were changed or removed since")
        out.print(f"same data as v{as_of}: hashes match")


@_command(DATA)
def generate(
    folder: Annotated[str, typer.Argument(help="Where the files go (created if missing).",
                                          show_default=False)],
    customers: Annotated[int, typer.Option(min=1)] = 3000,
    transactions: Annotated[int, typer.Option(min=0, help="Up to 10 million and beyond.")] = 150_000,
    seed: Annotated[int, typer.Option(help="The same seed writes the same bytes.")] = 0,
    json_array: Annotated[bool, typer.Option(help="One JSON array instead of JSON lines.")] = False,
) -> None:
    """Write the customers dataset's seeded customers.csv and transactions.json."""
    from lifeboat.synthetic import write_customers

    with _steps("generating customers and transactions"):
        written = write_customers(folder, seed, customers=customers, transactions=transactions,
                                  json_format="array" if json_array else "lines")
    for path in written:
        out.print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB)")


models_app = typer.Typer(help="Registered versions, and every change of champion.", cls=_Group)
app.add_typer(models_app, name="models", rich_help_panel=MODELS)
JsonOption = Annotated[bool, typer.Option(
    "--json", help="The rows as a JSON array on stdout, for scripts, instead of a table.")]


def _registry(context: Context):  # noqa: ANN202
    from lifeboat.registry import ChampionHistory, ModelRegistry

    return ModelRegistry(context.settings, context.spec.model_name,
                         ChampionHistory(context.database, context.spec.name))


def _print_json(rows: list[dict[str, Any]]) -> None:
    """Plain JSON, not Rich's: nothing folded or highlighted in what a script parses."""
    sys.stdout.write(json.dumps(rows, indent=2, default=str) + "\n")


@models_app.callback(invoke_without_command=True)
def models(typer_context: typer.Context, as_json: JsonOption = False) -> None:
    """List registered versions with their held-out metrics and decision thresholds."""
    if typer_context.invoked_subcommand is not None:
        return
    from lifeboat.registry import list_versions

    context = Context().reading(registry=True)
    versions = list_versions(context.settings, context.spec.model_name)
    if as_json:
        _print_json([asdict(version) for version in versions])
        return
    if not versions:
        out.print(f"no versions of {context.spec.model_name} yet: run `lifeboat train`")
        return
    table = Table(title=context.spec.model_name)
    for column in ("version", "created", "aliases", "accuracy", "ROC AUC", "F1", "threshold",
                   "gate", "run"):
        table.add_column(column)
    for version in versions:
        created = datetime.fromtimestamp(version.created_at / 1000, UTC).strftime("%Y-%m-%d %H:%M")
        gate = version.promotion or {}
        table.add_row(version.version, created, ", ".join(version.aliases),
                      *(_metric(version.metrics, f"test_{m}") for m in ("accuracy", "roc_auc", "f1")),
                      f"{version.threshold:.3f}",
                      "-" if not gate else "promoted" if gate["promoted"] else "refused",
                      version.run_id[:8])
    out.print(table)


@models_app.command("history", cls=_Command)
def models_history(limit: Annotated[int, typer.Option(help="How many changes, newest first.")] = 20,
                   as_json: JsonOption = False) -> None:
    """Every change of champion: when, from which version to which, by whom and why."""
    from lifeboat.registry import ChampionHistory

    context = Context().reading(database=True)
    changes = ChampionHistory(context.database, context.spec.name).changes(limit)
    if as_json:
        _print_json([{"changed_at": change.changed_at.isoformat(),
                      "from_version": change.from_version, "to_version": change.to_version,
                      "changed_by": change.changed_by, "reason": change.reason}
                     for change in changes])
        return
    table = Table("when", "from", "to", "by", "why", title=f"{context.spec.model_name} champions")
    for change in changes:
        table.add_row(change.changed_at.strftime("%Y-%m-%d %H:%M:%S"),
                      f"v{change.from_version}" if change.from_version else "-",
                      f"v{change.to_version}", change.changed_by, change.reason)
    out.print(table)


@_command(MODELS)
def promote(version: Annotated[str, typer.Argument(help="Registered version to make champion.",
                                                   show_default=False)]) -> None:
    """Make VERSION the champion (an admin's decision: no comparison is made)."""
    context = Context()
    context.upgraded()
    champion = _registry(context).promote(version, by="cli", reason="promoted by an admin")
    out.print(f"{champion.name} v{champion.version} is now the champion")


@_command(MODELS)
def rollback() -> None:
    """Make the previous champion the champion again (an admin's decision)."""
    context = Context()
    context.upgraded()
    champion = _registry(context).rollback(by="cli")
    out.print(f"{champion.name} v{champion.version} is the champion again")


@_command(JOBS)
def drift(
    html: Annotated[str | None, typer.Option(
        help="Where to write the report page. Default: drift-report-ID.html in the home.",
        show_default=False)] = None,
) -> None:
    """Test the champion's latest predictions against its training data now; exit 1 on drift.

    The check is recorded as a `drift` run, listed by `lifeboat jobs` and the Jobs tab."""
    from lifeboat.orchestration import checked_drift

    context = Context().reading(database=True, registry=True)
    with _steps("drift check") as progress:
        progress(f"testing the last {context.settings.drift_window_size} predictions")
        report = checked_drift(context.jobs(), "cli")
    page = html or str(context.settings.resolved_home / f"drift-report-{report.id}.html")
    with open(page, "w", encoding="utf-8") as handle:
        handle.write(report.html)
    table = Table(title=f"{report.model_name} v{report.model_version}: {report.window_size} "
                        f"predictions, {report.correction} at p < {report.p_value}")
    for column in ("feature", "test", "p-value", "PSI", "drift"):
        table.add_column(column, justify="left" if column == "feature" else "right")
    for test in report.features:
        table.add_row(test["feature"], test["test"], _number(test["p_value"]),
                      _number(test["psi"]), "[red]yes[/red]" if test["drifted"] else "no")
    out.print(table)
    out.print(f"{'DRIFT' if report.drifted else 'no drift'}: {report.drift_share:.0%} of "
              f"features drifted; report {page}")
    if report.drifted:
        raise typer.Exit(1)


@_command(JOBS)
def outcomes() -> None:
    """Label logged predictions by the events loaded since (datasets with a future-event label)."""
    from lifeboat.orchestration import run

    report = run(Context().jobs(), "outcomes", "cli")
    out.print(f"{report.counts['derived']} outcomes derived")


@_command(JOBS)
def pipeline() -> None:
    """Ingest what waits in raw/, refresh features, train, register; promote only if better."""
    from lifeboat.orchestration import run

    context = Context()
    with _steps("pipeline") as progress:
        progress("ingest → features → train → register → promote if better")
        report = run(context.jobs(), "pipeline", "cli")
    counts = report.counts
    out.print(f"ingested {counts['files']} files ({counts['rows_loaded']} rows); registered "
              f"v{counts['version']}, {'promoted' if counts['promoted'] else 'not promoted'}")


@_command(JOBS)
def schedule() -> None:
    """Run the periodic jobs until stopped: ingest, scoring, the monitoring loop.

    Ingest raw/, score new good/ files, and the monitoring loop (outcomes, drift check,
    retrain policy) of every served dataset. Prometheus metrics (the scheduler's heartbeat)
    on LIFEBOAT_JOBS_METRICS_PORT."""
    from lifeboat.metrics import serve_process_metrics
    from lifeboat.orchestration import describe, run_schedule
    from lifeboat.orchestration import schedule as periodic_jobs
    from lifeboat.serving import served_specs

    context = Context()
    jobs = periodic_jobs(context.settings, served_specs(context.settings))
    host, port = context.settings.jobs_metrics_address
    metrics = (f"; metrics on http://{host}:{port}/metrics"
               if serve_process_metrics(host, port) else "")
    console.print(f"scheduler: {describe(jobs)}{metrics} (Ctrl-C stops)")
    _until_interrupted(lambda stop: run_schedule(context.jobs(), jobs, stop))


@_command(SERVE)
def cluster(
    replicas: Annotated[int, typer.Option(min=1, max=4, help="Replicas behind HAProxy.")] = 2,
    port: Annotated[int, typer.Option(help="HAProxy's port; replicas take the next ones.")] = 8000,
    mlflow_port: Annotated[int, typer.Option(help="The MLflow tracking server's port.")] = 5000,
    s3_port: Annotated[int, typer.Option(help="The S3 endpoint's port.")] = 9000,
    prometheus_port: Annotated[int, typer.Option(help="Prometheus's port.")] = 9090,
    jobs_metrics_port: Annotated[int, typer.Option(help="The jobs process's port.")] = 9100,
    redis_cluster: Annotated[bool, typer.Option(
        help="A Redis Cluster of six redis-server processes on :7000-7005 as the online "
             "store, instead of REDIS_URL's Redis.")] = False,
) -> None:
    """Run the scale-out topology on this machine, each role its own process.

    HAProxy in front of serving replicas, one jobs process, an MLflow tracking server
    (PostgreSQL and S3), an S3 endpoint and Prometheus, on this machine's PostgreSQL
    (DATABASE_URL) and Redis (REDIS_URL). Ctrl-C, SIGTERM and SIGHUP stop everything it
    started."""
    from lifeboat.cluster import ClusterPorts, LocalCluster
    from lifeboat.lifecycle import stop_on_hangup_and_terminate

    stop_on_hangup_and_terminate()
    settings = Context().settings
    local = LocalCluster(settings, ClusterPorts(
        port, replicas, mlflow_port, s3_port, prometheus_port, jobs_metrics_port,
        tuple(range(7000, 7006)) if redis_cluster else ()))
    try:
        with _steps("starting the cluster") as progress:
            local.start(progress)
        for name, url in local.urls().items():
            console.print(f"{name:<20} {url}")
        console.print(f"logs in {local.home / 'logs'} (Ctrl-C stops everything)")
        _report_exits(local)
    finally:
        local.stop()


def _report_exits(local: LocalCluster) -> None:
    """Until interrupted: says once when a role's process exits (a replica killed, say);
    the others go on."""
    exited: set[str] = set()
    while True:
        for name, role in local.roles.items():
            if name not in exited and not role.running():
                exited.add(name)
                console.print(f"[yellow]{name} exited[/yellow] (see {role.log})")
        time.sleep(1)


@_command(JOBS)
def watch() -> None:
    """Ingest and score files as they land in the landing zone, until stopped."""
    from lifeboat.orchestration import watch_landing_zone

    context = Context()
    console.print(f"watching {context.settings.landing_url} (Ctrl-C stops)")
    _until_interrupted(lambda stop: watch_landing_zone(context.jobs(), stop))


@_command(JOBS, "jobs")
def list_jobs(limit: Annotated[int, typer.Option(help="How many runs, newest first.")] = 20,
              as_json: JsonOption = False) -> None:
    """The latest job runs, whatever triggered them (CLI, scheduler, watcher, Airflow)."""
    from lifeboat.orchestration import listed_runs

    context = Context().reading(database=True)
    runs = listed_runs(context.settings, context.spec.name, limit)
    if as_json:
        _print_json([{**asdict(job_run), "started_at": job_run.started_at.isoformat(),
                      "finished_at": job_run.finished_at and job_run.finished_at.isoformat(),
                      "seconds": job_run.seconds} for job_run in runs])
        return
    table = Table("id", "job", "trigger", "started", "took", "status", "counts / error")
    for job_run in runs:
        table.add_row(str(job_run.id), job_run.job, job_run.trigger,
                      job_run.started_at.strftime("%Y-%m-%d %H:%M:%S"),
                      duration(job_run.seconds), job_run.status, job_run.error or ", ".join(
                          f"{name} {value}" for name, value in (job_run.counts or {}).items()))
    out.print(table)


def duration(seconds: float | None) -> str:
    """As a person says it: 10 ms, 2.3 s, 1 min 4 s, 2 h 5 min; "-" for a run not finished."""
    if seconds is None:
        return "-"
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 59.95:
        return f"{seconds:.1f} s"
    minutes, rest = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {rest} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min"


def _until_interrupted(work: Callable[[threading.Event], None]) -> None:
    stop = threading.Event()
    try:
        work(stop)
    except KeyboardInterrupt:
        stop.set()
        console.print("stopped")


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:.3g}"


def _metric(metrics: dict[str, float], name: str) -> str:
    return f"{metrics[name]:.3f}" if name in metrics else "-"


def _serve(settings: Settings) -> None:
    """One process by default; with `workers` > 1, uvicorn's worker processes, each
    building the app from the same settings, counting metrics into one shared folder."""
    import uvicorn

    from lifeboat.metrics import MULTIPROCESS_DIR, share_between_processes
    from lifeboat.serving import create_app

    base = f"http://{settings.host}:{settings.port}"
    console.print(f"Web UI   {base}/\nAPI      {base}/predict\nDocs     {base}/docs\n"
                  f"History  {base}/past-predictions\nHealth   {base}/ready")
    if settings.workers == 1:
        uvicorn.run(create_app(settings), host=settings.host, port=settings.port,
                    log_level=settings.log_level.lower())
        return
    metrics = os.environ.get(MULTIPROCESS_DIR) or settings.resolved_home / "metrics"
    share_between_processes(Path(metrics))
    # The workers build their settings from the environment: the options go there too.
    os.environ.update(LIFEBOAT_HOME=str(settings.resolved_home), LIFEBOAT_DATASET=settings.dataset,
                      LIFEBOAT_PORT=str(settings.port))
    uvicorn.run("lifeboat.serving:create_app", factory=True, workers=settings.workers,
                host=settings.host, port=settings.port, log_level=settings.log_level.lower())


def _fail(message: str) -> None:
    console.print(f"[red]error:[/red] {escape(message)}", highlight=False)
    sys.exit(1)


def main() -> None:
    """Console entry point: a failure is one clear line and a non-zero exit, never a traceback."""
    if folder := os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        # prometheus-client counts into this folder from its first import on, and fails then
        # if it does not exist.
        os.makedirs(folder, exist_ok=True)
    try:
        app(prog_name="lifeboat")
    except LifeboatError as exc:
        _fail(str(exc))
    except KeyboardInterrupt:
        sys.exit(130)
    except Exception as exc:
        message = _explained(exc)
        if message is None:
            raise
        _fail(message)


def _explained(exc: Exception) -> str | None:
    """One line for a bad setting or an unreachable database, else None. Their libraries
    are looked up only when loaded, as only then can they have raised."""
    pydantic = sys.modules.get("pydantic")
    if pydantic is not None and isinstance(exc, pydantic.ValidationError):
        return "invalid setting: " + "; ".join(
            f"{'.'.join(map(str, e['loc'])) or 'value'}: {e['msg']}" for e in exc.errors())
    database_errors = sys.modules.get("sqlalchemy.exc")
    if database_errors is not None and isinstance(exc, database_errors.OperationalError):
        return f"cannot reach the database: {str(exc.orig).strip().splitlines()[0]}"
    return None
