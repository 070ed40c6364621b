"""What every Lifeboat DAG shares: the settings it is declared with, how its tasks run
Lifeboat (in Lifeboat's own interpreter), and the drift asset that links drift_monitor to
training_pipeline.

It defines no DAG itself (.airflowignore keeps Airflow from parsing it as one). A bundle's
DagBag puts this folder on sys.path, a plain `DagBag(dag_folder=...)` does not, so each DAG
file adds its own folder before importing from here.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from airflow.sdk import Asset, Param

# Lifeboat is not installed in Airflow's venv (Airflow caps FastAPI below the app's version):
# each task runs in Lifeboat's interpreter, $LIFEBOAT_PYTHON, else the checkout's .venv.
LIFEBOAT_PYTHON = os.path.abspath(os.environ.get("LIFEBOAT_PYTHON") or
                                  Path(__file__).resolve().parents[1] / ".venv" / "bin" / "python")
# What `@task.external_python(**IN_LIFEBOAT)` runs a task's body with: Lifeboat's
# interpreter, no Airflow expected there (the body imports Lifeboat inside), and a returned
# report kept as one XCom rather than one per key. The decorator itself is spelled out in
# each DAG: Airflow strips it, by that name, from the source it sends to the interpreter.
IN_LIFEBOAT = {"python": LIFEBOAT_PYTHON, "expect_airflow": False, "multiple_outputs": False}

# Where a heavy job (ingestion, materialization, batch scoring) runs, chosen per run in the
# trigger form or `--conf '{"engine": "spark"}'`: in the task's own process, or on the Spark
# cluster LIFEBOAT_SPARK_MASTER names. The default is LIFEBOAT_ENGINE where the DAGs load.
ENGINE_PARAMS = {"engine": Param(os.environ.get("LIFEBOAT_ENGINE") or "local", type="string",
                                 enum=["local", "spark"],
                                 description="local: the task's process; spark: the cluster at "
                                             "LIFEBOAT_SPARK_MASTER")}
ENGINE = "{{ params.engine }}"  # a task argument, rendered when the task runs

# Emitted by drift_monitor when a check finds drift; training_pipeline is scheduled on it.
DRIFT_DETECTED = Asset(name="lifeboat_drift_detected", uri="lifeboat://monitoring/drift")


def dag_settings(dag_id: str, schedule: Any, tag: str, doc_md: str, *, retries: int = 2,
                 retry_delay: timedelta = timedelta(minutes=1), backoff: bool = True,
                 timeout: timedelta = timedelta(minutes=30),
                 params: dict[str, Param] | None = None) -> dict[str, Any]:
    """`@dag`'s arguments, with what the Lifeboat DAGs have in common: no catching up on
    missed intervals, one run at a time, tagged `lifeboat` and `tag`. A failed task is retried
    `retries` times, unless LIFEBOAT_AIRFLOW_RETRIES says otherwise (the tests set 0)."""
    return {
        "dag_id": dag_id,
        "schedule": schedule,
        "start_date": datetime(2025, 1, 1, tzinfo=UTC),
        "catchup": False,
        "max_active_runs": 1,
        "default_args": {"owner": "lifeboat",
                         "retries": int(os.environ.get("LIFEBOAT_AIRFLOW_RETRIES") or retries),
                         "retry_delay": retry_delay, "retry_exponential_backoff": backoff,
                         "execution_timeout": timeout},
        "tags": ["lifeboat", tag],
        "doc_md": doc_md,
        "params": params or {},
    }
