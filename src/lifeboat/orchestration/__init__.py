"""Running the stages together: the first-start bootstrap behind `lifeboat up`, the jobs every
trigger runs (CLI, embedded scheduler and watcher, Airflow), the monitoring loop (the `drift`
job, run on schedule here and nowhere in the service), and self-healing retrains."""

from lifeboat import lazy_exports

# Each module is imported when one of its names is first used: listing the runs (`lifeboat
# jobs`) then loads what reading a table needs, not training's and scoring's dependencies.
__getattr__ = lazy_exports(__name__, {
    "bootstrap": ("BootstrapReport", "bootstrap"),
    "engines": ("ingest_source", "materialize_features", "score_source"),
    "healing": ("RetrainRunning", "heal", "recorded_retrain", "retrain", "retrain_apart",
                "retrain_reason"),
    "jobs": ("JOBS", "JobContext", "checked_drift", "ingest_counts", "ingest_files", "run",
             "run_job", "waiting_files"),
    "listing": ("ListedRun", "listed_runs"),
    "runs": ("JobReport", "recent_runs", "recorded_run"),
    "scheduler": ("Every", "describe", "run_schedule", "schedule", "start_embedded_jobs",
                  "watch_landing_zone"),
})

__all__ = [
    "JOBS",
    "BootstrapReport",
    "Every",
    "JobContext",
    "JobReport",
    "ListedRun",
    "RetrainRunning",
    "bootstrap",
    "checked_drift",
    "describe",
    "heal",
    "ingest_counts",
    "ingest_files",
    "ingest_source",
    "listed_runs",
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
