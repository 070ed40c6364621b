"""The training pipeline as one task: ingest → features → train → register → promote only if
better. Triggered by drift_monitor's asset when drift is found, or by hand. Same as
`lifeboat pipeline`."""

from __future__ import annotations

import sys
from datetime import timedelta
from pathlib import Path

from airflow.sdk import dag, task

sys.path.append(str(Path(__file__).parent))  # for lifeboat_dags: a plain DagBag adds no folder
from lifeboat_dags import DRIFT_DETECTED, ENGINE, ENGINE_PARAMS, IN_LIFEBOAT, dag_settings


@dag(**dag_settings(
    "training_pipeline",
    schedule=[DRIFT_DETECTED],
    tag="training",
    retries=1,
    retry_delay=timedelta(minutes=5),
    backoff=False,
    timeout=timedelta(hours=3),
    params=ENGINE_PARAMS,
    doc_md="""
### Training pipeline
Ingests what waits in the landing zone's `raw/`, materializes the feature view's missing
rows (offline table and online store), trains a challenger (search + CV, logged to MLflow),
registers it, and promotes it to champion only if it beats the current champion on the same
held-out rows. A running service picks a new champion up without a restart.

Runs when `drift_monitor` emits the `lifeboat_drift_detected` asset, or when triggered by
hand. The `engine` parameter runs ingestion and materialization on Spark. CLI equivalent:
`lifeboat pipeline`.
""",
))
def training_pipeline():
    @task.external_python(**IN_LIFEBOAT)
    def pipeline(engine: str) -> dict:
        from lifeboat.orchestration import run_job
        return run_job("pipeline", trigger="airflow", engine=engine)

    pipeline(ENGINE)


training_pipeline()
