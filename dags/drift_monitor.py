"""Hourly drift check over the champion's recent predictions, without healing: when drift is
found it emits the `lifeboat_drift_detected` asset, which schedules training_pipeline. Same
check as `lifeboat drift`."""

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
RETRIES = int(os.environ.get("LIFEBOAT_AIRFLOW_RETRIES", "2"))

# Emitted by drift_monitor when a check finds drift; training_pipeline is scheduled on it.
DRIFT_DETECTED = Asset(name="lifeboat_drift_detected", uri="lifeboat://monitoring/drift")


@dag(
    dag_id="drift_monitor",
    schedule=timedelta(hours=1),
    start_date=datetime(2025, 1, 1, tzinfo=UTC),
    catchup=False,
    max_active_runs=1,
    default_args={"owner": "lifeboat", "retries": RETRIES, "retry_delay": timedelta(minutes=1),
                  "retry_exponential_backoff": True, "execution_timeout": timedelta(minutes=30)},
    tags=["lifeboat", "monitoring"],
    doc_md="""
### Drift monitor
Every hour, derives the outcomes the events loaded since allow (datasets whose target is a
future event), then tests the champion's latest `LIFEBOAT_DRIFT_WINDOW_SIZE` predictions
against the training reference (KS / chi-squared per feature with multiple-testing
correction, PSI beside), storing the report (served at `/drift`). It does not retrain itself: when drift is
found, `signal_drift` emits the `lifeboat_drift_detected` asset and Airflow runs
`training_pipeline`; without drift (or with too few predictions to test) `drift_found`
short-circuits and no event is emitted. CLI equivalent: `lifeboat drift`.
""",
)
def drift_monitor():
    @task.external_python(python=LIFEBOAT_PYTHON, expect_airflow=False, multiple_outputs=False)
    def check_drift() -> dict:
        from lifeboat.orchestration import run_job
        return run_job("drift", trigger="airflow", heal=False)

    @task.short_circuit
    def drift_found(report: dict) -> bool:
        return bool(report["counts"].get("drifted"))

    @task(outlets=[DRIFT_DETECTED])
    def signal_drift(report: dict, *, outlet_events=None) -> None:
        outlet_events[DRIFT_DETECTED].extra = {"drift_job_run_id": report["run_id"]}

    report = check_drift()
    drift_found(report) >> signal_drift(report)


drift_monitor()
