"""Hourly turn of the monitoring loop over the champion's recent predictions, without
healing: when drift is found, or the champion's live accuracy has fallen, it emits the
`lifeboat_drift_detected` asset, which schedules training_pipeline. Same turn as
`lifeboat drift`."""

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
correction, PSI beside), storing the report (served at `/drift`). It does not retrain
itself: when the check found drift, or the champion's live accuracy on its labelled
predictions fell beyond `LIFEBOAT_ACCURACY_DROP_THRESHOLD` (the job's `retrain_due`),
`signal_drift` emits the `lifeboat_drift_detected` asset, its reason in the event, and
Airflow runs `training_pipeline`; otherwise `retrain_due` short-circuits and no event is
emitted. CLI equivalent: `lifeboat drift`.
""",
))
def drift_monitor():
    @task.external_python(**IN_LIFEBOAT)
    def check_drift() -> dict:
        from lifeboat.orchestration import run_job
        return run_job("drift", trigger="airflow", heal=False)

    @task.short_circuit
    def retrain_due(report: dict) -> bool:
        return bool(report["counts"].get("retrain_due"))

    @task(outlets=[DRIFT_DETECTED])
    def signal_drift(report: dict, *, outlet_events=None) -> None:
        reason = "drift" if report["counts"].get("drifted") else "accuracy"
        outlet_events[DRIFT_DETECTED].extra = {"drift_job_run_id": report["run_id"],
                                               "reason": reason}

    report = check_drift()
    retrain_due(report) >> signal_drift(report)


drift_monitor()
