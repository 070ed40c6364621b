"""Object storage → DB: each file waiting in the landing zone's raw/ is ingested by a task of
its own (dynamic task mapping). Same as `lifeboat ingest`."""

from __future__ import annotations

import sys
from datetime import timedelta
from pathlib import Path

from airflow.sdk import dag, task

sys.path.append(str(Path(__file__).parent))  # for lifeboat_dags: a plain DagBag adds no folder
from lifeboat_dags import ENGINE, ENGINE_PARAMS, IN_LIFEBOAT, dag_settings


@dag(**dag_settings(
    "ingest_from_storage",
    schedule=timedelta(minutes=5),
    tag="ingest",
    params=ENGINE_PARAMS,
    doc_md="""
### Ingest from object storage
Lists the files waiting in the landing zone's `raw/` (`LIFEBOAT_STORAGE_URL`: a folder,
`s3://`, `gs://`), then ingests each one in a mapped task of its own: validated row by row,
good rows loaded into the DB (`DATABASE_URL`), bad rows quarantined in `bad/`, the file
removed from `raw/` once processed. The same content twice loads nothing, so a retried or
repeated run is harmless. With the `engine` parameter `spark`, each file is validated and
loaded on the Spark cluster. CLI equivalent: `lifeboat ingest` (one file: `lifeboat ingest URL`).
""",
))
def ingest_from_storage():
    @task.external_python(**IN_LIFEBOAT)
    def waiting_files() -> list[str]:
        from lifeboat.orchestration import waiting_files
        return waiting_files()

    @task.external_python(**IN_LIFEBOAT, map_index_template="{{ task.op_kwargs['source'] }}")
    def ingest_file(source: str, engine: str) -> dict:
        from lifeboat.orchestration import run_job
        return run_job("ingest_file", trigger="airflow", source=source, engine=engine)

    ingest_file.partial(engine=ENGINE).expand(source=waiting_files())


ingest_from_storage()
