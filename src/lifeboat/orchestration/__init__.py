"""Running the stages together: the first-start bootstrap behind `lifeboat up`, the jobs every
trigger runs (CLI, embedded scheduler and watcher, Airflow), and self-healing retrains."""

from lifeboat.orchestration.bootstrap import BootstrapReport, bootstrap
from lifeboat.orchestration.healing import (
    RetrainRunning,
    heal,
    recorded_retrain,
    retrain,
    retrain_apart,
    retrain_reason,
)
from lifeboat.orchestration.jobs import JOBS, JobContext, run, run_job, waiting_files
from lifeboat.orchestration.runs import JobReport, recent_runs

__all__ = ["JOBS", "BootstrapReport", "JobContext", "JobReport", "RetrainRunning", "bootstrap",
           "heal", "recent_runs", "recorded_retrain", "retrain", "retrain_apart",
           "retrain_reason", "run", "run_job", "waiting_files"]
