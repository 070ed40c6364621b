"""What the Airflow tests share, whichever way they run the DAGs in dags/ (`airflow dags test`
or a scheduler with Celery workers): Airflow's own venv, an environment free of the
developer's settings, the run as Airflow's metadata DB recorded it, and the Lifeboat the
tasks work on (its landing zone, database and registry), read back as one snapshot.

Airflow runs from `.airflow/` (`make airflow`): it caps FastAPI below the app's version, so
Lifeboat is not installed there and each task runs Lifeboat in this test's interpreter.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from sqlalchemy import create_engine, func, inspect, select, text

from lifeboat.config import Settings
from lifeboat.datasets import DatasetSpec
from lifeboat.db import (
    Database,
    DriftReport,
    IngestionRun,
    JobRun,
    Prediction,
    Retrain,
    ScoredFile,
    dataset_table,
    upgrade,
)
from lifeboat.registry import ModelRegistry
from lifeboat.synthetic.passengers import Shift, write_passengers
from tests.support.homes import make_settings
from tests.support.paths import ROOT

DAGS = ROOT / "dags"
AIRFLOW_VENV = ROOT / ".airflow"
AIRFLOW = AIRFLOW_VENV / "bin" / "airflow"
DAG_IDS = ("drift_monitor", "ingest_from_storage", "scheduled_predictions", "training_pipeline")
DRIFT_ASSET = "lifeboat_drift_detected"
# Passengers unlike the training ones: older, mostly third class. A window of their
# predictions is found drifted.
DRIFT = Shift(age_offset=12.0, class_mix=(0.1, 0.1, 0.8))
# Settings that would point the DAGs' tasks somewhere else than this test's home and database.
FOREIGN_ENV = ("DATABASE_URL", "MLFLOW_TRACKING_URI", "REDIS_URL", "PYTHONPATH")


def require_airflow(*, celery: bool = False) -> None:
    """Fails the test, saying how to build it, when Airflow's venv (with the Celery provider,
    when `celery`) is missing: a skip would hide the DAGs."""
    missing = (f"{AIRFLOW} is missing" if not AIRFLOW.exists() else
               "the Celery provider is missing from it" if celery and not list(
                   AIRFLOW_VENV.glob("lib/python*/site-packages/airflow/providers/celery"))
               else None)
    if missing:
        pytest.fail(f"Airflow is not installed: {missing}. Run `make airflow` (`make test` "
                    "does it) to build Airflow's own venv in .airflow/.", pytrace=False)


def clean_env() -> dict[str, str]:
    """This process's environment without Airflow's, Lifeboat's or the database's settings."""
    return {name: value for name, value in os.environ.items()
            if not name.startswith(("AIRFLOW", "LIFEBOAT_")) and name not in FOREIGN_ENV}


def json_lines(stdout: str) -> Any:
    """The JSON an `airflow … --output json` printed, after any warnings on stdout."""
    return json.loads(next(line for line in reversed(stdout.splitlines())
                           if line.startswith(("[", "{"))))


def output_tail(result: subprocess.CompletedProcess[str], lines: int = 60) -> str:
    return "\n".join((result.stdout + result.stderr).splitlines()[-lines:])


@dataclass
class DagRun:
    dag_id: str
    run_id: str
    run_type: str
    state: str
    tasks: dict[tuple[str, int], str]
    results: dict[tuple[str, int], Any]
    seconds: float

    def result(self, task_id: str, map_index: int = -1) -> Any:
        return self.results[(task_id, map_index)]


class Metadata:
    """Airflow's metadata DB, read as SQL from this test's interpreter (SQLite or PostgreSQL:
    the same queries)."""

    def __init__(self, url: str) -> None:
        self.engine = create_engine(url)

    def __enter__(self) -> Metadata:
        return self

    def __exit__(self, *exc: object) -> None:
        self.engine.dispose()

    def query(self, sql: str, **params: Any) -> list[Any]:
        with self.engine.connect() as connection:
            return list(connection.execute(text(sql), params))

    def latest_run(self, dag_id: str) -> tuple[str, str] | None:
        """The newest run of `dag_id`: its run_id and state."""
        rows = self.query("SELECT run_id, state FROM dag_run WHERE dag_id = :dag_id "
                          "ORDER BY id DESC LIMIT 1", dag_id=dag_id)
        return (rows[0][0], rows[0][1]) if rows else None

    def dag_run(self, dag_id: str, run_id: str, seconds: float) -> DagRun:
        """The run as recorded: its state, each task instance's state and returned value."""
        run_type, state = self.query("SELECT run_type, state FROM dag_run WHERE dag_id = :dag_id "
                                     "AND run_id = :run_id", dag_id=dag_id, run_id=run_id)[0]
        where = {"dag_id": dag_id, "run_id": run_id}
        tasks = {(task, index): task_state for task, index, task_state in self.query(
            "SELECT task_id, map_index, state FROM task_instance "
            "WHERE dag_id = :dag_id AND run_id = :run_id", **where)}
        results = {(task, index): json.loads(value) for task, index, value in self.query(
            "SELECT task_id, map_index, CAST(value AS TEXT) FROM xcom WHERE dag_id = :dag_id "
            "AND run_id = :run_id AND key = 'return_value'", **where)}
        return DagRun(dag_id, run_id, run_type, state, tasks, results, seconds)

    def asset_events(self) -> list[dict[str, Any]]:
        return [{"extra": json.loads(extra or "{}"), "dag_id": dag_id, "run_id": run_id}
                for extra, dag_id, run_id in self.query(
                    "SELECT CAST(e.extra AS TEXT), e.source_dag_id, e.source_run_id "
                    "FROM asset_event e JOIN asset a ON a.id = e.asset_id "
                    "WHERE a.name = :name ORDER BY e.id", name=DRIFT_ASSET)]

    def queued_runs(self) -> list[str]:
        """DAGs the scheduler will start because of asset events (asset_dag_run_queue)."""
        return [dag_id for (dag_id,) in self.query(
            "SELECT target_dag_id FROM asset_dag_run_queue")]


@dataclass
class Lifeboat:
    """What the DAGs' tasks run against (`env`: the settings Airflow's processes pass on to
    them), and how a test reads it back."""

    settings: Settings
    spec: DatasetSpec
    env: dict[str, str]

    @property
    def landing(self) -> Path:
        return Path(self.settings.landing_url)

    def drop(self, name: str, frame: pd.DataFrame | None = None, copy: Path | None = None) -> Path:
        """Lands a file in raw/ the way an uploader should: written aside, then renamed."""
        raw = self.landing / "raw"
        raw.mkdir(parents=True, exist_ok=True)
        hidden = raw / f".{name}"
        if copy is not None:
            shutil.copyfile(copy, hidden)
        else:
            write_passengers(frame, hidden)
        return hidden.rename(raw / name)

    def snapshot(self) -> dict[str, Any]:
        """Everything a DAG run may change, in comparable form."""
        state = self._database_state()
        registry = ModelRegistry(self.settings, self.spec.model_name)
        champion = registry.champion()
        state["versions"] = sorted(int(version.version) for version in registry.versions())
        state["champion"] = champion.version if champion else None
        state["raw"] = sorted(p.name for p in (self.landing / "raw").glob("*"))
        state["good"] = sorted(p.name for p in (self.landing / "good").glob("*.parquet"))
        state["good_rows"] = sum(len(pd.read_parquet(p))
                                 for p in (self.landing / "good").glob("*.parquet"))
        return state

    def _database_state(self) -> dict[str, Any]:
        database = Database(self.settings.db_url)
        table = dataset_table(self.spec)
        try:
            with database.session() as session:
                predictions = session.execute(
                    select(func.count(), func.count(Prediction.id.distinct()))
                    .where(Prediction.source == "scheduled")).one()
                rows = (session.scalar(select(func.count()).select_from(table))
                        if inspect(session.connection()).has_table(table.name) else 0)
                return {
                    "rows": rows,
                    "ingestion_runs": session.scalar(select(func.count(IngestionRun.id))),
                    "predictions": predictions[0],
                    "distinct_prediction_ids": predictions[1],
                    "scored_files": sorted(
                        (row.file, row.status, row.predictions, row.attempts)
                        for row in session.scalars(select(ScoredFile))),
                    "drift_reports": session.scalar(select(func.count(DriftReport.id))),
                    "retrains": session.scalar(select(func.count(Retrain.id))),
                    "job_runs": [(run.job, run.trigger, run.status) for run in session.scalars(
                        select(JobRun).order_by(JobRun.id))],
                }
        finally:
            database.dispose()


def prepare_lifeboat(home: Path, database_url: str, spec: DatasetSpec,
                     tracking_uri: str | None = None) -> Lifeboat:
    """A Lifeboat home and migrated database for the DAGs' tasks, and the environment that
    points them there (in this test's interpreter, the project's venv); with
    `tracking_uri`, an MLflow tracking server instead of the home's embedded store."""
    database = Database(database_url)
    upgrade(database)  # what any first job does; the snapshots read the empty tables
    database.dispose()
    env = {"LIFEBOAT_HOME": str(home),
           "DATABASE_URL": database_url,
           "LIFEBOAT_PYTHON": sys.executable,
           "LIFEBOAT_SEARCH_ITERATIONS": "2",
           "LIFEBOAT_AIRFLOW_RETRIES": "0",  # a failing task fails the run at once
           **({"MLFLOW_TRACKING_URI": tracking_uri} if tracking_uri else {})}
    return Lifeboat(make_settings(home, database_url, mlflow_tracking_uri=tracking_uri),
                    spec, env)
