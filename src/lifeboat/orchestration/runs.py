"""Every job run is a `job_runs` row, from start to outcome, whatever triggered it: the UI
lists them, /metrics counts them, and a failure keeps its error where people look."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from sqlalchemy import ColumnElement, Integer, cast, exists, func, or_, select

from lifeboat.db import Database, JobRun, holder_is_gone, this_process, utcnow
from lifeboat.errors import JobFailed

log = logging.getLogger(__name__)
TRIGGERS = ("cli", "schedule", "watch", "airflow", "api")
Counts = dict[str, int]
# Counts that say what a run found, not work it did: a pipeline's champion `version`, a
# drift turn `skipped` because another process had just checked.
NOT_WORK = ("version", "skipped")


@dataclass(frozen=True)
class JobReport:
    job: str
    trigger: str
    status: str  # succeeded | failed
    counts: Counts
    error: str | None
    run_id: int

    def as_dict(self) -> dict[str, Any]:
        """JSON-safe: what Airflow keeps as the task's result."""
        return asdict(self)


def recorded_run(database: Database, dataset: str, job: str, trigger: str,
                 work: Callable[[], Counts]) -> JobReport:
    """Runs `work` as one recorded run; a failure is recorded, then raised as JobFailed."""
    if trigger not in TRIGGERS:
        raise ValueError(f"unknown trigger {trigger!r}: one of {', '.join(TRIGGERS)}")
    run_id = _start(database, dataset, job, trigger)
    try:
        counts = work()
    except Exception as exc:
        error = f"{type(exc).__name__}: {exc}"
        _finish(database, run_id, "failed", None, error)
        raise JobFailed(f"{job} failed: {error}") from exc
    _finish(database, run_id, "succeeded", counts, None)
    log.info("%s (%s) succeeded: %s", job, trigger, counts)
    return JobReport(job, trigger, "succeeded", counts, None, run_id)


def recent_runs(database: Database, dataset: str, limit: int = 50, *, job: str | None = None,
                status: str | None = None, include_idle: bool = True) -> list[JobRun]:
    """Newest first; `job` and `status` narrow them down (the UI's and /jobs' filters), and
    `include_idle=False` leaves out the runs that did nothing (see `_did_something`)."""
    query = select(JobRun).where(JobRun.dataset == dataset)
    if job is not None:
        query = query.where(JobRun.job == job)
    if status is not None:
        query = query.where(JobRun.status == status)
    if not include_idle:
        query = query.where(_did_something(database))
    with database.session() as session:
        return list(session.scalars(query.order_by(JobRun.started_at.desc(), JobRun.id.desc())
                                    .limit(limit)))


def _did_something(database: Database) -> ColumnElement[bool]:
    """A run did something unless it succeeded with every count of work at 0: an ingest that
    found no file, a score with nothing ready, a pipeline with nothing new to train on. The
    scheduler still records those (a run is seen to have happened, as in Airflow), about
    2,000 a day per dataset, so lists hide them on request. Running and failed runs always
    count. Read in SQL from the counts' JSON, so a limit applies after the filter."""
    each = (func.json_each_text if database.engine.dialect.name == "postgresql"
            else func.json_each)(JobRun.counts).table_valued("key", "value")
    worked = exists(select(each.c.key).where(each.c.key.not_in(NOT_WORK),
                                             cast(each.c.value, Integer) != 0))
    return or_(JobRun.status != "succeeded", worked)


def _start(database: Database, dataset: str, job: str, trigger: str) -> int:
    host, pid = this_process()
    with database.session() as session:
        _close_abandoned(session, dataset, job)
        run = JobRun(dataset=dataset, job=job, trigger=trigger, status="running",
                     host=host, pid=pid)
        session.add(run)
        session.flush()
        return run.id


def _close_abandoned(session: Any, dataset: str, job: str) -> None:
    """A run left `running` by a process that died (kill -9) is failed, not running forever."""
    running = session.scalars(select(JobRun).where(
        JobRun.dataset == dataset, JobRun.job == job, JobRun.status == "running"))
    for run in running:
        if holder_is_gone(run.host, run.pid):
            run.status, run.finished_at = "failed", utcnow()
            run.error = f"abandoned: process {run.pid} on {run.host} stopped before it finished"


def _finish(database: Database, run_id: int, status: str, counts: Counts | None,
            error: str | None) -> None:
    with database.session() as session:
        run = session.get(JobRun, run_id)
        run.status, run.counts, run.error, run.finished_at = status, counts, error, utcnow()
