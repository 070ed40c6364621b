"""Running the stages together: the first-start bootstrap behind `lifeboat up`, the jobs every
trigger runs (CLI, embedded scheduler and watcher, Airflow), the monitoring loop (the `drift`
job, run on schedule here and nowhere in the service), and self-healing retrains."""

from lifeboat.orchestration.bootstrap import BootstrapReport, bootstrap
from lifeboat.orchestration.engines import ingest_source, materialize_features, score_source
from lifeboat.orchestration.healing import (
    RetrainRunning,
    heal,
    recorded_retrain,
    retrain,
    retrain_apart,
    retrain_reason,
)
from lifeboat.orchestration.jobs import (
    JOBS,
    JobContext,
    ingest_counts,
    ingest_files,
    run,
    run_job,
    waiting_files,
)
from lifeboat.orchestration.runs import JobReport, recent_runs, recorded_run
from lifeboat.orchestration.scheduler import (
    Every,
    describe,
    run_schedule,
    schedule,
    start_embedded_jobs,
    watch_landing_zone,
)

__all__ = [
    "JOBS",
    "BootstrapReport",
    "Every",
    "JobContext",
    "JobReport",
    "RetrainRunning",
    "bootstrap",
    "describe",
    "heal",
    "ingest_counts",
    "ingest_files",
    "ingest_source",
    "materialize_features",
    "recent_runs",
    "recorded_retrain",
    "recorded_run",
    "retrain",
    "retrain_apart",
    "retrain_reason",
    "run",
    "run_job",
    "run_schedule",
    "schedule",
    "score_source",
    "start_embedded_jobs",
    "waiting_files",
    "watch_landing_zone",
]
