"""Materialization on Spark: `lifeboat.features.materialize`'s outcome, computed and written
by the cluster's executors.

A dataset without events is cut into key ranges; each task computes the rows of its range
that have no offline row for the view version yet, inserts them in its own transaction and
pushes their vectors online before it commits. A task run twice (a retry after a lost
worker, a speculative copy) therefore leaves no duplicate: it computes only what is still
missing, and a copy that loses the race to insert the same keys finds them present and is
done. Nor a gap: vectors go online before their offline rows commit, so rows that committed
were pushed, and rows that did not are computed again. When the online store lacks the
version, each range's offline rows are pushed after its insert (a full push).

A dataset with events is recomputed whole as of the newest event (`aggregates`), as the
local engine does. Executors write the rows into a staging table, batch by batch and each
batch once; then one driver transaction replaces the version's rows with the staged ones,
so a crash leaves the old rows or the new, never a mix. Vectors go online after that commit.

The report's counts come from the offline table, before and after: the tasks' own counts
would double up or go missing as tasks are retried.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, TypeVar
from uuid import uuid4

import pandas as pd
import psycopg
from sqlalchemy import MetaData, Table, delete, func, insert, select
from sqlalchemy.exc import IntegrityError

from lifeboat.config import Settings
from lifeboat.datasets import DatasetSpec
from lifeboat.db import (
    Database,
    dataset_table,
    ensure_dataset_table,
    insert_rows,
    loaded_keys,
    utcnow,
)
from lifeboat.errors import LifeboatError
from lifeboat.features import (
    ENTITY_ID,
    EVENT_TIME,
    MATERIALIZED_AT,
    VIEW_VERSION,
    FeatureView,
    MaterializeReport,
    OnlineStore,
    ensure_feature_table,
    feature_table,
    feature_view,
    newest_event_loaded,
    offline_rows,
    open_online_store,
    push_vectors,
    snapshot_rows,
)
from lifeboat.spark.aggregates import point_in_time_on_spark, read_sources
from lifeboat.spark.session import spark_session
from lifeboat.spark.tables import KeyRange, key_ranges

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

log = logging.getLogger(__name__)
# A task that loses an insert race looks again for what is missing; a third loss in a row
# is no race but a fault, and fails the task.
_RACES = 3
T = TypeVar("T")
_UNIQUE_RACE = (IntegrityError, psycopg.errors.UniqueViolation, sqlite3.IntegrityError)


@dataclass(frozen=True)
class MaterializeJob:
    """What every task needs, in plain picklable values."""

    database_url: str
    spec: DatasetSpec
    store_url: str | None
    ttl_seconds: int | None

    def online_store(self) -> OnlineStore | None:
        return None if self.store_url is None else open_online_store(self.store_url,
                                                                      self.ttl_seconds)


def materialize_on_spark(settings: Settings, database: Database, spec: DatasetSpec,
                         store: str | None = None) -> MaterializeReport:
    """`materialize` on the cluster of `settings.spark_master`; `store` is the online
    store's URL (none: offline rows only)."""
    view = feature_view(spec)
    table = ensure_feature_table(database.engine, view)
    spark = spark_session(settings)
    job = MaterializeJob(database.url, spec, store, settings.online_ttl_seconds)
    if spec.events is not None:
        return _materialize_snapshot(spark, database, job, view, table)
    data = ensure_dataset_table(database.engine, spec)
    full_push = _lacks_version(job, view)
    before = _version_rows(database, table, view)
    earlier = full_push and before > 0  # rows computed earlier must go online too
    ranges = key_ranges(database, data.c[spec.entity.key], spark.sparkContext.defaultParallelism)
    _run(spark, partial(materialize_range, job, earlier), ranges)
    after = _version_rows(database, table, view)
    computed = after - before
    pushed = 0 if store is None else (after if earlier else computed)
    log.info("feature view %s on Spark: %d entities computed, %d vectors pushed online%s",
             view.label, computed, pushed, " (full push)" if full_push else "")
    return MaterializeReport(view.name, view.version, computed, pushed, full_push)


def _run(spark: SparkSession, task, ranges: list[KeyRange]) -> None:  # noqa: ANN001
    """One task per range, no shuffle."""
    spark.sparkContext.parallelize(ranges, len(ranges)).foreach(task)


def _lacks_version(job: MaterializeJob, view: FeatureView) -> bool:
    online = job.online_store()
    if online is None:
        return False
    try:
        return online.columns(view.key) is None
    finally:
        online.close()


def _version_rows(database: Database, table: Table, view: FeatureView) -> int:
    with database.engine.connect() as connection:
        return connection.scalar(select(func.count()).select_from(table)
                                 .where(table.c[VIEW_VERSION] == view.version))


def materialize_range(job: MaterializeJob, earlier: bool, key_range: KeyRange) -> None:
    """One task: the range's missing rows computed, pushed and inserted; with `earlier`,
    every offline row of the range pushed once they are in. Safe to run any number of
    times, at once or one after another."""
    database, view, online = Database(job.database_url), feature_view(job.spec), job.online_store()
    try:
        _insert_missing(database, view, None if earlier else online, key_range)
        if earlier:
            push_vectors(online, view, _range_offline_rows(database, view, key_range))
    finally:
        if online is not None:
            online.close()
        database.dispose()


def _insert_missing(database: Database, view: FeatureView, online: OnlineStore | None,
                    key_range: KeyRange) -> None:
    table, data = feature_table(view), dataset_table(view.spec)
    key = data.c[view.spec.entity.key]
    done = select(table.c[ENTITY_ID]).where(table.c[VIEW_VERSION] == view.version)
    missing = select(data).where(key_range.holds(key), key.not_in(done)).order_by(key)

    def insert() -> None:
        with database.session() as session:
            rows = offline_rows(view, pd.read_sql(missing, session.connection()))
            insert_rows(session, table, rows, {MATERIALIZED_AT: utcnow()}, sort_by=ENTITY_ID)
            if online is not None and not rows.empty:
                push_vectors(online, view, rows)

    _until_no_race(insert)


def _until_no_race(work: Callable[[], T]) -> T:
    """`work` again after a unique-key violation: another copy of the task inserted the same
    keys first, and the next try finds them present."""
    for _ in range(_RACES - 1):
        try:
            return work()
        except _UNIQUE_RACE:
            continue
    return work()


def _range_offline_rows(database: Database, view: FeatureView, key_range: KeyRange) -> pd.DataFrame:
    """The version's offline rows of the range's entities, read back as `offline_chunks`
    reads them."""
    table, data = feature_table(view), dataset_table(view.spec)
    key = data.c[view.spec.entity.key]
    entities = select(key).where(key_range.holds(key))
    query = (select(*(table.c[name] for name in (ENTITY_ID, EVENT_TIME, *view.columns)))
             .where(table.c[VIEW_VERSION] == view.version, table.c[ENTITY_ID].in_(entities))
             .order_by(table.c[ENTITY_ID]))
    with database.engine.connect() as connection:
        return pd.read_sql(query, connection)


def _materialize_snapshot(spark: SparkSession, database: Database, job: MaterializeJob,
                          view: FeatureView, table: Table) -> MaterializeReport:
    spec = view.spec
    newest = _newest_event(database, spec)
    run = uuid4().hex[:8]  # each run stages into a table of its own: two never share one
    staging = _staging_table(table, run)
    staging.create(database.engine)
    try:
        sources = read_sources(spark, database, spec)
        snapshot = point_in_time_on_spark(spec, sources.entities, sources.events, [newest])
        stage = partial(_stage_batches, job, run)
        snapshot.mapInPandas(stage, "staged long").collect()
        _swap_in(database, table, staging, view)
    finally:
        staging.drop(database.engine, checkfirst=True)
    computed = _version_rows(database, table, view)
    if job.store_url is not None:
        ranges = key_ranges(database, dataset_table(spec).c[spec.entity.key],
                            spark.sparkContext.defaultParallelism)
        _run(spark, partial(_push_range, job), ranges)
    pushed = 0 if job.store_url is None else computed
    log.info("feature view %s on Spark: %d entities recomputed as of %s, %d vectors pushed "
             "online", view.label, computed, newest, pushed)
    return MaterializeReport(view.name, view.version, computed, pushed,
                             full_push=job.store_url is not None)


def _newest_event(database: Database, spec: DatasetSpec) -> pd.Timestamp:
    """The moment the snapshot is taken at; a dataset missing either source has none."""
    newest = newest_event_loaded(database, spec)
    entities = ensure_dataset_table(database.engine, spec)
    with database.engine.connect() as connection:
        has_entities = connection.scalar(select(func.count()).select_from(entities)) > 0
    if newest is None or not has_entities:
        raise LifeboatError(f"{spec.name} needs both {spec.table} and {spec.events.table} rows: "
                            "run `lifeboat ingest` on both files")
    return pd.Timestamp(newest)


def _swap_in(database: Database, table: Table, staging: Table, view: FeatureView) -> None:
    """The version's rows replaced by the staged ones, in one transaction."""
    with database.session() as session:
        session.execute(delete(table).where(table.c[VIEW_VERSION] == view.version))
        columns = [column.name for column in table.columns]
        session.execute(insert(table).from_select(columns, select(*staging.c)))


def _staging_table(table: Table, run: str) -> Table:
    """Where executors put a recomputed version's rows before the driver swaps them in:
    the offline table's columns and key, under the run's own name."""
    return table.to_metadata(MetaData(), name=f"{table.name}_staging_{run}")


def _stage_batches(job: MaterializeJob, run: str,
                   batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
    """Each batch of snapshot rows as offline rows into the staging table, once."""
    database, view = Database(job.database_url), feature_view(job.spec)
    staging = _staging_table(feature_table(view), run)
    try:
        for batch in batches:
            rows = snapshot_rows(view, _times_in_utc(batch))
            yield pd.DataFrame({"staged": [_stage(database, staging, rows)]})
    finally:
        database.dispose()


def _stage(database: Database, staging: Table, rows: pd.DataFrame) -> int:
    """Inserts the rows not staged yet (a task run again meets its own earlier rows)."""

    def insert() -> int:
        with database.session() as session:
            staged = loaded_keys(session, staging, rows[ENTITY_ID])
            fresh = rows[~rows[ENTITY_ID].isin(staged)]
            return insert_rows(session, staging, fresh, {MATERIALIZED_AT: utcnow()},
                               sort_by=ENTITY_ID)

    return _until_no_race(insert)


def _times_in_utc(batch: pd.DataFrame) -> pd.DataFrame:
    """Spark hands pandas UTC times without their zone (the session's time zone is UTC)."""
    naive = [name for name in batch.columns
             if pd.api.types.is_datetime64_dtype(batch[name])
             and not isinstance(batch[name].dtype, pd.DatetimeTZDtype)]
    return batch.assign(**{name: batch[name].dt.tz_localize("UTC") for name in naive})


def _push_range(job: MaterializeJob, key_range: KeyRange) -> None:
    database, view, online = Database(job.database_url), feature_view(job.spec), job.online_store()
    try:
        push_vectors(online, view, _range_offline_rows(database, view, key_range))
    finally:
        online.close()
        database.dispose()
