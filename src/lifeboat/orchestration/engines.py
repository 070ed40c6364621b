"""The heavy jobs on the engine the settings name (`LIFEBOAT_ENGINE`): in this process, or
on Spark for data that outgrows one machine. Both give the same results, so every trigger
(the CLI, the scheduler, Airflow's DAGs) calls these and the engine is a setting, not a
second code path for the caller."""

from __future__ import annotations

from collections.abc import Callable

from lifeboat.config import Settings
from lifeboat.datasets import DatasetSpec
from lifeboat.db import Database
from lifeboat.features import MaterializeReport, materialize, open_online_store
from lifeboat.ingest import IngestReport, LandingZone, ingest_file
from lifeboat.scoring import BatchProgress, BatchReport, score_file
from lifeboat.spark import ingest_file_on_spark, materialize_on_spark, score_on_spark


def score_source(settings: Settings, database: Database, spec: DatasetSpec, source: str,
                 output: str | None = None,
                 progress: Callable[[BatchProgress], None] = lambda _: None,
                 logged_as: str = "batch", version: str | None = None) -> BatchReport:
    """`source` scored, written out and logged; on Spark the output is a folder of Parquet
    parts and progress shows in Spark's own console bar."""
    if settings.engine == "spark":
        return score_on_spark(settings, database, spec, source, output, logged_as, version)
    return score_file(settings, database, spec, source, output, progress, logged_as, version)


def ingest_source(settings: Settings, database: Database, spec: DatasetSpec, source: str,
                  zone: LandingZone, progress: Callable[[int], None] = lambda _: None,
                  ) -> IngestReport:
    """One file ingested; on Spark its parts are validated by the executors and progress
    comes once, when its rows are in."""
    if settings.engine == "spark":
        return ingest_file_on_spark(settings, database, spec, source, zone, progress)
    return ingest_file(database, spec, source, zone, progress)


def materialize_features(settings: Settings, database: Database, spec: DatasetSpec,
                         progress: Callable[[int], None] = lambda _: None) -> MaterializeReport:
    """The feature view's missing rows computed into the offline table and pushed to the
    settings' online store; on Spark by the executors, progress shown by Spark's own bar."""
    if settings.engine == "spark":
        return materialize_on_spark(settings, database, spec, settings.online_store_url)
    store = open_online_store(settings.online_store_url, settings.online_ttl_seconds)
    try:
        return materialize(database, spec, store, progress)
    finally:
        store.close()
