"""The job runs of every trigger (CLI, embedded scheduler and watcher, Airflow, API) in one
list: what the UI's Jobs tab shows, so a failed nightly ingest is seen, with its error."""

# No `from __future__ import annotations`: FastAPI reads the handlers' annotations at run
# time, and `Service` is local to the factory.
from typing import Annotated

from fastapi import APIRouter, Query

from lifeboat.db import JobRun, as_utc
from lifeboat.orchestration import recent_runs
from lifeboat.serving.deps import DatasetService
from lifeboat.serving.schemas import JobName, JobRunOut, JobRunsPage, RunStatus


def jobs_router(dataset: DatasetService) -> APIRouter:
    Service = dataset.annotated()
    router = APIRouter(tags=["jobs"])

    @router.get("/jobs", response_model=JobRunsPage, summary="Recent job runs, newest first")
    def jobs(
        service: Service,
        limit: Annotated[int, Query(ge=1, le=500)] = 50,
        job: Annotated[JobName | None, Query(description="Only runs of this job.")] = None,
        status: Annotated[RunStatus | None, Query(description="Only runs in this state.")] = None,
        include_idle: Annotated[bool, Query(description=(
            "false leaves out the runs that did nothing: succeeded with every count of work "
            "at 0 (an ingest that found no file); the UI's default."))] = True,
    ) -> JobRunsPage:
        runs = recent_runs(service.database, service.spec.name, limit, job=job, status=status,
                           include_idle=include_idle)
        return JobRunsPage(items=[_run_out(run) for run in runs])

    return router


def _run_out(run: JobRun) -> JobRunOut:
    """Times as UTC (SQLite hands them back naive), so browsers convert them right."""
    started = as_utc(run.started_at)
    finished = as_utc(run.finished_at) if run.finished_at else None
    return JobRunOut(
        id=run.id, job=run.job, trigger=run.trigger, status=run.status, started_at=started,
        finished_at=finished, seconds=(finished - started).total_seconds() if finished else None,
        counts=run.counts or {}, error=run.error)
