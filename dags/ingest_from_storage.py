"""Object storage → DB: each file waiting in the landing zone's raw/ is ingested by a task of
its own (dynamic task mapping). Same as `lifeboat ingest`."""

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
    dag_id="ingest_from_storage",
    schedule=timedelta(minutes=5),
    start_date=datetime(2025, 1, 1, tzinfo=UTC),
    catchup=False,
    max_active_runs=1,
    default_args={"owner": "lifeboat", "retries": RETRIES, "retry_delay": timedelta(minutes=1),
                  "retry_exponential_backoff": True, "execution_timeout": timedelta(minutes=30)},
    tags=["lifeboat", "ingest"],
    doc_md="""
### Ingest from object storage
Lists the files waiting in the landing zone's `raw/` (`LIFEBOAT_STORAGE_URL`: a folder,
`s3://`, `gs://`), then ingests each one in a mapped task of its own: validated row by row,
good rows loaded into the DB (`DATABASE_URL`), bad rows quarantined in `bad/`, the file
removed from `raw/` once processed. The same content twice loads nothing, so a retried or
repeated run is harmless. CLI equivalent: `lifeboat ingest` (one file: `lifeboat ingest URL`).
""",
)
def ingest_from_storage():
    @task.external_python(python=LIFEBOAT_PYTHON, expect_airflow=False)
    def waiting_files() -> list[str]:
        from lifeboat.orchestration import waiting_files
        return waiting_files()

    @task.external_python(python=LIFEBOAT_PYTHON, expect_airflow=False, multiple_outputs=False,
                          map_index_template="{{ task.op_kwargs['source'] }}")
    def ingest_file(source: str) -> dict:
        from lifeboat.orchestration import run_job
        return run_job("ingest_file", trigger="airflow", source=source)

    ingest_file.expand(source=waiting_files())


ingest_from_storage()
