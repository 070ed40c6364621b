"""Hourly drift check over the champion's recent predictions, without healing: when drift is
found it emits the `lifeboat_drift_detected` asset, which schedules training_pipeline. Same
check as `lifeboat drift`."""

from __future__ import annotations

import sys
from datetime import timedelta
from pathlib import Path

from airflow.sdk import dag, task

sys.path.append(str(Path(__file__).parent))  # for lifeboat_dags: a plain DagBag adds no folder
from lifeboat_dags import DRIFT_DETECTED, IN_LIFEBOAT, dag_settings


@dag(**dag_settings(
    "drift_monitor",
    schedule=timedelta(hours=1),
    tag="monitoring",
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
))
def drift_monitor():
    @task.external_python(**IN_LIFEBOAT)
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
