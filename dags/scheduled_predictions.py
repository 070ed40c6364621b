"""Scores every good/ file that ingestion finished and nothing has scored yet, each exactly
once (a claim row per file), logged as source `scheduled`. Same as the scoring that
`lifeboat schedule` runs."""

from __future__ import annotations

import sys
from datetime import timedelta
from pathlib import Path

from airflow.sdk import dag, task

sys.path.append(str(Path(__file__).parent))  # for lifeboat_dags: a plain DagBag adds no folder
from lifeboat_dags import ENGINE, ENGINE_PARAMS, IN_LIFEBOAT, dag_settings


@dag(**dag_settings(
    "scheduled_predictions",
    schedule=timedelta(minutes=2),
    tag="predictions",
    params=ENGINE_PARAMS,
    doc_md="""
### Scheduled predictions
Every 2 minutes, scores the landing zone's `good/` files (written by ingestion) that were not
scored yet with the champion, logging each prediction with source `scheduled` and writing
`scored/<file>.predictions.parquet`. Each file is claimed in the DB before it is scored, so
overlapping runs, a retry or a killed worker never score a file twice; a file that keeps
failing is left failed with its error, not retried forever. With the `engine` parameter
`spark`, each file is scored on the Spark cluster (the output a folder of Parquet parts).
CLI equivalent: the scoring step of `lifeboat schedule`.
""",
))
def scheduled_predictions():
    @task.external_python(**IN_LIFEBOAT)
    def score(engine: str) -> dict:
        from lifeboat.orchestration import run_job
        return run_job("score", trigger="airflow", engine=engine)

    score(ENGINE)


scheduled_predictions()
