"""Scores every good/ file that ingestion finished and nothing has scored yet, each exactly
once (a claim row per file), logged as source `scheduled`. Same as the scoring that
`lifeboat schedule` runs."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

from airflow.sdk import dag, task

# Lifeboat is not installed in Airflow's venv (Airflow caps FastAPI below the app's version):
# each task runs in Lifeboat's interpreter, $LIFEBOAT_PYTHON, else the checkout's .venv.
LIFEBOAT_PYTHON = os.path.abspath(os.environ.get("LIFEBOAT_PYTHON") or
                                  Path(__file__).resolve().parents[1] / ".venv" / "bin" / "python")
# LIFEBOAT_AIRFLOW_RETRIES: how often a failed task is retried (the tests set 0).
RETRIES = int(os.environ.get("LIFEBOAT_AIRFLOW_RETRIES", "2"))


@dag(
    dag_id="scheduled_predictions",
    schedule=timedelta(minutes=2),
    start_date=datetime(2025, 1, 1, tzinfo=UTC),
    catchup=False,
    max_active_runs=1,
    default_args={"owner": "lifeboat", "retries": RETRIES, "retry_delay": timedelta(minutes=1),
                  "retry_exponential_backoff": True, "execution_timeout": timedelta(minutes=30)},
    tags=["lifeboat", "predictions"],
    doc_md="""
### Scheduled predictions
Every 2 minutes, scores the landing zone's `good/` files (written by ingestion) that were not
scored yet with the champion, logging each prediction with source `scheduled` and writing
`scored/<file>.predictions.parquet`. Each file is claimed in the DB before it is scored, so
overlapping runs, a retry or a killed worker never score a file twice; a file that keeps
failing is left failed with its error, not retried forever. CLI equivalent: the scoring step
of `lifeboat schedule`.
""",
)
def scheduled_predictions():
    @task.external_python(python=LIFEBOAT_PYTHON, expect_airflow=False, multiple_outputs=False)
    def score() -> dict:
        from lifeboat.orchestration import run_job
        return run_job("score", trigger="airflow")

    score()


scheduled_predictions()
