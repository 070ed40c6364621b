"""The training pipeline as one task: ingest → features → train → register → promote only if
better. Triggered by drift_monitor's asset when drift is found, or by hand. Same as
`lifeboat pipeline`."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

from airflow.sdk import Asset, dag, task

# Lifeboat is not installed in Airflow's venv (Airflow caps FastAPI below the app's version):
# each task runs in Lifeboat's interpreter, $LIFEBOAT_PYTHON, else the checkout's .venv.
LIFEBOAT_PYTHON = os.path.abspath(os.environ.get("LIFEBOAT_PYTHON") or
                                  Path(__file__).resolve().parents[1] / ".venv" / "bin" / "python")
# LIFEBOAT_AIRFLOW_RETRIES: how often a failed task is retried (the tests set 0).
RETRIES = int(os.environ.get("LIFEBOAT_AIRFLOW_RETRIES", "1"))

# Emitted by drift_monitor when a check finds drift; training_pipeline is scheduled on it.
DRIFT_DETECTED = Asset(name="lifeboat_drift_detected", uri="lifeboat://monitoring/drift")


@dag(
    dag_id="training_pipeline",
    schedule=[DRIFT_DETECTED],
    start_date=datetime(2025, 1, 1, tzinfo=UTC),
    catchup=False,
    max_active_runs=1,
    default_args={"owner": "lifeboat", "retries": RETRIES, "retry_delay": timedelta(minutes=5),
                  "execution_timeout": timedelta(hours=3)},
    tags=["lifeboat", "training"],
    doc_md="""
### Training pipeline
Ingests what waits in the landing zone's `raw/`, materializes the feature view's missing
rows (offline table and online store), trains a challenger (search + CV, logged to MLflow),
registers it, and promotes it to champion only if it beats the current champion on the same
held-out rows. A running service picks a new champion up without a restart.

Runs when `drift_monitor` emits the `lifeboat_drift_detected` asset, or when triggered by
hand. CLI equivalent: `lifeboat pipeline`.
""",
)
def training_pipeline():
    @task.external_python(python=LIFEBOAT_PYTHON, expect_airflow=False, multiple_outputs=False)
    def pipeline() -> dict:
        from lifeboat.orchestration import run_job
        return run_job("pipeline", trigger="airflow")

    pipeline()


training_pipeline()
