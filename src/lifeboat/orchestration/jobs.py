"""The jobs every trigger runs: the CLI, the embedded scheduler and watcher, the API's
/retrain and Airflow's DAGs. Each is the stage functions in order, nothing more, and each run
is recorded (runs.py), so all triggers show up in one list."""

from __future__ import annotations

import logging
import posixpath
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from lifeboat.config import Settings
from lifeboat.datasets import DatasetSpec, load_spec
from lifeboat.db import Database, DriftReport, upgrade
from lifeboat.ingest import GOOD, IngestReport, LandingZone
from lifeboat.monitoring import (
    DriftCheckUnavailable,
    check_drift,
    checked_recently,
    derive_outcomes,
    version_live_accuracy,
)
from lifeboat.orchestration import healing
from lifeboat.orchestration.engines import ingest_source
from lifeboat.orchestration.file_scoring import mark_done, score_ready_files
from lifeboat.orchestration.healing import nothing_new, retrain
from lifeboat.orchestration.runs import Counts, JobReport, recorded_run
from lifeboat.registry import ModelRegistry

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class JobContext:
    settings: Settings
    database: Database
    spec: DatasetSpec

    @classmethod
    def from_settings(cls, settings: Settings | None = None) -> JobContext:
        settings = settings or Settings()
        settings.ensure_home()
        database = Database(settings.db_url)
        upgrade(database)
        return cls(settings, database, load_spec(settings.dataset))

    @property
    def zone(self) -> LandingZone:
        return LandingZone(self.settings.landing_url)


def waiting_files(settings: Settings | None = None) -> list[str]:
    """Files waiting in the landing zone's raw/: what `ingest` would take now."""
    return LandingZone((settings or Settings()).landing_url).waiting()


def ingest_files(context: JobContext, files: list[str], remove: bool,
                 progress: Callable[[str], Callable[[int], None]] | None = None,
                 ) -> list[IngestReport]:
    """Ingests each file; its good rows' file is marked done for scoring, unless it holds
    events (transactions are not predicted on). `remove` deletes each processed file (the
    landing zone's raw/ is a queue; a user's own source is not)."""
    reports = []
    for file in files:
        advance = progress(posixpath.basename(file)) if progress else (lambda _rows: None)
        report = ingest_source(context.settings, context.database, context.spec, file,
                               context.zone, advance)
        if report.good_file and context.spec.source_for(file) is context.spec:
            mark_done(context.zone, GOOD, posixpath.basename(report.good_file))
        if remove:
            context.zone.remove(file)
        reports.append(report)
    return reports


def ingest_counts(reports: list[IngestReport]) -> Counts:
    return {"files": len(reports),
            "rows_loaded": sum(r.rows_loaded for r in reports),
            "rows_rejected": sum(r.rows_rejected for r in reports),
            "files_rejected": sum(r.status == "rejected" for r in reports),
            "files_duplicate": sum(r.status == "skipped" for r in reports)}  # loaded before


def _ingest(context: JobContext) -> Counts:
    return ingest_counts(ingest_files(context, context.zone.waiting(), remove=True))


def _ingest_file(context: JobContext, source: str) -> Counts:
    remove = source in context.zone.waiting()
    return ingest_counts(ingest_files(context, [source], remove=remove))


def _score(context: JobContext) -> Counts:
    return score_ready_files(context.settings, context.database, context.spec)


def _outcomes(context: JobContext) -> Counts:
    """Outcomes of logged predictions, derived from the events loaded since they were made."""
    return {"derived": derive_outcomes(context.database, context.spec)}


def _drift(context: JobContext, heal: bool = True,
           unless_checked_within: float | None = None) -> Counts:
    """One turn of the monitoring loop, whoever triggers it (the scheduler of `lifeboat up`
    or `lifeboat schedule`, Airflow's drift DAG): outcomes derived first, so that live
    accuracy counts them; a drift check over the latest window; then whether the check or
    the champion's live accuracy calls for a retrain (`retrain_due`: accuracy may call for
    one even when too few predictions were served for a check), and with `heal` the retrain
    policy acts on it. Airflow's drift DAG runs it without `heal` and hands a due retrain to
    its training DAG instead. `unless_checked_within`
    (seconds) skips the turn when any process stored a check that recently: schedulers
    of several replicas on one database then share one cadence instead of each checking."""
    settings, database, spec = context.settings, context.database, context.spec
    if unless_checked_within and checked_recently(database, spec.name, unless_checked_within):
        log.info("%s: a drift check ran within the last %.0f s: this turn is skipped",
                 spec.name, unless_checked_within)
        return {"derived": 0, "checked": 0, "drifted": 0, "retrain_due": 0, "retrained": 0,
                "skipped": 1}
    derived = _outcomes(context)
    try:
        report = check_drift(settings, database, spec)
    except DriftCheckUnavailable as exc:
        log.info("no drift check: %s", exc)
        report = None
    champion = ModelRegistry(settings, spec.model_name).champion()
    accuracy = None if champion is None else version_live_accuracy(
        database, spec.name, champion, settings.live_accuracy_window)
    reason = healing.retrain_reason(settings, report, accuracy)
    retrained = healing.heal(settings, database, spec, reason, report) if heal else None
    return {**derived, "checked": int(report is not None),
            "drifted": int(report is not None and report.drifted),
            "retrain_due": int(reason is not None),
            "retrained": int(retrained is not None)}


def checked_drift(context: JobContext, trigger: str) -> DriftReport:
    """A drift check alone (`lifeboat drift`), recorded as a `drift` run like the
    monitoring loop's turns, so that the Jobs tab lists it with theirs; its report is
    returned for the caller to show."""
    checked: list[DriftReport] = []

    def check() -> Counts:
        checked.append(check_drift(context.settings, context.database, context.spec))
        return {"checked": 1, "drifted": int(checked[0].drifted)}

    recorded_run(context.database, context.spec.name, "drift", trigger, check)
    return checked[0]


def _pipeline(context: JobContext) -> Counts:
    """ingest → features → train → register → promote if better. With no row loaded and no
    outcome received since the champion's data, there is nothing new to learn from: a rerun
    registers nothing."""
    ingested = _ingest(context)
    champion = ModelRegistry(context.settings, context.spec.model_name).champion()
    if champion is not None and nothing_new(context.database, context.spec, champion):
        return {**ingested, "trained": 0, "version": int(champion.version), "promoted": 0}
    result = retrain(context.settings, context.database, context.spec, changed_by="pipeline")
    promoted = bool(result.promotion and result.promotion.promoted)
    return {**ingested, "trained": 1, "version": int(result.version), "promoted": int(promoted)}


JOBS: dict[str, Callable[..., Counts]] = {
    "ingest": _ingest,
    "ingest_file": _ingest_file,
    "score": _score,
    "outcomes": _outcomes,
    "drift": _drift,
    "pipeline": _pipeline,
}


def run(context: JobContext, job: str, trigger: str, **arguments: Any) -> JobReport:
    """One recorded run of a job; JobFailed when it fails (recorded first)."""
    if job not in JOBS:
        raise ValueError(f"unknown job {job!r}: one of {', '.join(JOBS)}")
    work = JOBS[job]
    return recorded_run(context.database, context.spec.name, job, trigger,
                        lambda: work(context, **arguments))


def run_job(job: str, trigger: str = "cli", settings: Settings | None = None,
            engine: str | None = None, **arguments: Any) -> dict[str, Any]:
    """A job with everything built from the environment, its report JSON-safe: the one
    call an Airflow task makes. `engine` (local, spark) overrides the setting: a DAG's
    parameter."""
    settings = settings or Settings()
    if engine:
        settings = settings.model_copy(update={"engine": Settings(engine=engine).engine})
    context = JobContext.from_settings(settings)
    try:
        return run(context, job, trigger, **arguments).as_dict()
    finally:
        context.database.dispose()
