"""Materialization and point-in-time aggregates on the spark engine, run on the standalone
test cluster: the same offline rows and online vectors as the local engine, value for
value, and the same aggregates as `point_in_time` at every cut-off."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import redis
from sqlalchemy import delete, func, inspect, select

from lifeboat.config import Settings
from lifeboat.datasets import DatasetSpec, load_spec
from lifeboat.db import Database, upgrade
from lifeboat.features import (
    CUTOFF,
    ENTITY_ID,
    VIEW_VERSION,
    FeatureView,
    feature_table,
    feature_view,
    materialize,
    offline_chunks,
    open_online_store,
)
from lifeboat.features.aggregates import cutoff_times, point_in_time
from lifeboat.features.snapshots import read_sources
from lifeboat.ingest import LandingZone, ingest_file
from lifeboat.spark import materialize_on_spark, point_in_time_on_spark, spark_session
from lifeboat.spark import read_sources as read_sources_on_spark
from lifeboat.spark.features import MaterializeJob, materialize_range
from lifeboat.spark.tables import KeyRange
from lifeboat.synthetic.customers import write_customers
from lifeboat.synthetic.passengers import synthetic_passengers, write_passengers
from tests.support.services import scratch_postgres_database
from tests.support.spark_cluster import SparkCluster

GENERATED = {"customers": 300, "transactions": 6_000, "seed": 3}
# Two completed purchases of one customer in the same second, the newest of all, loaded from
# two files in this order: the later loaded has the smaller key, so "last" is 80.25 only if
# ties go by the order rows sit in the table, as the local engine reads them.
TIES = [("TIE-9", 120.5), ("TIE-1", 80.25)]


def _settings(tmp_path: Path, cluster: SparkCluster) -> Settings:
    return Settings(home=tmp_path / "home", spark_master=cluster.master_url)


def _forget_view(url: str, spec: DatasetSpec) -> None:
    client = redis.Redis.from_url(url)
    for key in client.scan_iter(match=f"*{spec.name}:{spec.features.view}:*", count=10_000):
        client.unlink(key)
    client.close()


@pytest.fixture
def forgetful_redis(redis_url: str, titanic: DatasetSpec) -> Iterator[str]:
    """Redis without the test datasets' vectors when the test starts and after it."""
    specs = (titanic, load_spec("customers"))
    for spec in specs:
        _forget_view(redis_url, spec)
    yield redis_url
    for spec in specs:
        _forget_view(redis_url, spec)


def _offline(database: Database, view: FeatureView) -> pd.DataFrame:
    return pd.concat(offline_chunks(database, view)).set_index(ENTITY_ID)


def _vectors(url: str, view: FeatureView, ids: list[str]) -> list:
    store = open_online_store(url)
    try:
        return store.read(view.key, ids)
    finally:
        store.close()


def _forget_offline(database: Database, view: FeatureView, ids: list[str] | None = None) -> None:
    table = feature_table(view)
    rows = delete(table).where(table.c[VIEW_VERSION] == view.version)
    with database.session() as session:
        session.execute(rows if ids is None else rows.where(table.c[ENTITY_ID].in_(ids)))


def _materialize_locally(database: Database, spec: DatasetSpec, url: str) -> None:
    store = open_online_store(url)
    try:
        materialize(database, spec, store)
    finally:
        store.close()


def test_titanic_on_spark_has_the_local_engines_rows_and_vectors_and_adds_only_what_is_missing(
        spark_cluster: SparkCluster, database: Database, titanic: DatasetSpec,
        zone: LandingZone, forgetful_redis: str, tmp_path: Path) -> None:
    ingest_file(database, titanic, str(titanic.bundled_path()), zone)
    view, local_store = feature_view(titanic), f"sqlite:///{tmp_path / 'local.db'}"
    _materialize_locally(database, titanic, local_store)
    expected = _offline(database, view)
    ids = expected.index.tolist()
    expected_vectors = _vectors(local_store, view, ids)
    _forget_offline(database, view)

    settings = _settings(tmp_path, spark_cluster)
    report = materialize_on_spark(settings, database, titanic, forgetful_redis)
    assert (report.computed, report.pushed, report.full_push) == (1309, 1309, True)
    pd.testing.assert_frame_equal(_offline(database, view), expected, check_exact=True)
    assert _vectors(forgetful_redis, view, ids) == expected_vectors

    again = materialize_on_spark(settings, database, titanic, forgetful_redis)
    assert (again.computed, again.pushed, again.full_push) == (0, 0, False)

    _forget_offline(database, view, ids[::3])  # as a run that died part way leaves them
    _forget_view(forgetful_redis, titanic)
    refilled = materialize_on_spark(settings, database, titanic, forgetful_redis)
    assert (refilled.computed, refilled.pushed, refilled.full_push) == (len(ids[::3]), 1309, True)
    pd.testing.assert_frame_equal(_offline(database, view), expected, check_exact=True)
    assert _vectors(forgetful_redis, view, ids) == expected_vectors

    # Two copies of one task at once, as speculation runs them: one inserts, the other
    # loses the race on the key and finds nothing missing. Threads here, not executors:
    # Spark starts two tasks too far apart for them to overlap on a table this small.
    _forget_offline(database, view)
    job = MaterializeJob(database.url, titanic, forgetful_redis, None)
    with ThreadPoolExecutor(2) as pool:
        copies = [pool.submit(materialize_range, job, False, KeyRange(None, None))
                  for _ in range(2)]
        for copy in copies:
            copy.result()
    pd.testing.assert_frame_equal(_offline(database, view), expected, check_exact=True)
    assert _vectors(forgetful_redis, view, ids) == expected_vectors


@pytest.fixture(scope="module")
def customers_database(tmp_path_factory: pytest.TempPathFactory
                       ) -> Iterator[tuple[Database, str]]:
    """Generated customers and their transactions on PostgreSQL, with one customer's `TIES`
    added; and that customer."""
    spec, folder = load_spec("customers"), tmp_path_factory.mktemp("customers")
    files = write_customers(folder / "generated", GENERATED["seed"],
                            customers=GENERATED["customers"],
                            transactions=GENERATED["transactions"])
    customer = pd.read_csv(files[0])["customer_id"].iloc[0]
    newest = pd.read_json(files[1], lines=True)["timestamp"]
    moment = pd.to_datetime(newest, utc=True, errors="coerce", format="ISO8601").max()
    ties = [folder / f"transactions_tie_{number}.json" for number in range(len(TIES))]
    for path, (number, amount) in zip(ties, TIES, strict=True):
        path.write_text(json.dumps({
            "transaction_id": number, "customer_id": customer, "amount": amount,
            "currency": "USD", "timestamp": moment.isoformat(), "payment_method": "card",
            "status": "completed"}) + "\n")
    with scratch_postgres_database("lifeboat_spark_features") as url:
        database = Database(url)
        upgrade(database)
        zone = LandingZone(str(folder / "landing"))
        for path in [*files, *ties]:
            ingest_file(database, spec, str(path), zone)
        yield database, customer
        database.dispose()


def _every_function(customers: DatasetSpec) -> DatasetSpec:
    """The customers spec with the functions and filters it does not use itself."""
    extra = {
        "cheapest_completed": {"function": "min", "column": "amount",
                               "where": {"status": "completed"}},
        "cheapest_90d": {"function": "min", "column": "amount", "window_days": 90},
        "last_any_amount": {"function": "last", "column": "amount"},
        "not_completed_count": {"function": "count", "where": {"status": ["refunded", "failed"]}},
        "days_since_any": {"function": "days_since_last"},
        "refunded_mean_30d": {"function": "mean", "column": "amount",
                              "where": {"status": "refunded"}, "window_days": 30},
    }
    dumped = customers.model_dump(exclude_unset=True)
    return DatasetSpec.model_validate({**dumped,
                                       "aggregates": {**dumped["aggregates"], **extra}})


def test_spark_aggregates_equal_point_in_time_value_for_value_at_every_cutoff(
        spark_cluster: SparkCluster, customers_database: tuple[Database, str],
        tmp_path: Path) -> None:
    database, tied = customers_database
    spec = _every_function(load_spec("customers"))
    local = read_sources(database, spec)
    newest = local.events["timestamp"].max()
    cutoffs = [*cutoff_times(spec, newest), newest]
    expected = point_in_time(spec, local.entities, local.events, cutoffs)

    spark = spark_session(_settings(tmp_path, spark_cluster))
    sources = read_sources_on_spark(spark, database, spec)
    found = point_in_time_on_spark(spec, sources.entities, sources.events, cutoffs).toPandas()
    found[CUTOFF] = pd.to_datetime(found[CUTOFF]).dt.tz_localize("UTC")

    key, names = spec.entity.key, list(spec.aggregates)
    expected, found = (frame.sort_values([CUTOFF, key], ignore_index=True)
                       for frame in (expected, found))
    assert len(found) == len(expected) > GENERATED["customers"] * 3
    sizes = found.groupby(CUTOFF).size()
    assert len(sizes) == len(cutoffs) and sizes.iloc[0] < sizes.iloc[-1]  # later signups
    assert (found[key] == expected[key]).all() and (found[CUTOFF] == expected[CUTOFF]).all()
    for name in names:
        np.testing.assert_array_equal(found[name].to_numpy(float),
                                      expected[name].to_numpy(float), err_msg=name)
        assert expected[name].notna().any(), name
    # The ties sit exactly at the newest cut-off: they count, and the later loaded is last.
    latest = found[(found[key] == tied) & (found[CUTOFF] == newest)]
    assert latest[["last_amount", "last_any_amount"]].to_numpy().tolist() == [[80.25, 80.25]]


def test_customers_on_spark_replace_the_versions_rows_as_the_local_engine_does(
        spark_cluster: SparkCluster, customers_database: tuple[Database, str],
        forgetful_redis: str, tmp_path: Path) -> None:
    database, _ = customers_database
    spec = load_spec("customers")
    view, local_store = feature_view(spec), f"sqlite:///{tmp_path / 'local.db'}"
    _materialize_locally(database, spec, local_store)
    expected = _offline(database, view)
    ids = expected.index.tolist()
    expected_vectors = _vectors(local_store, view, ids)
    _forget_offline(database, view, ids[::2])  # replaced, not added to

    settings = _settings(tmp_path, spark_cluster)
    report = materialize_on_spark(settings, database, spec, forgetful_redis)
    assert (report.computed, report.pushed, report.full_push) == (len(ids), len(ids), True)
    pd.testing.assert_frame_equal(_offline(database, view), expected, check_exact=True)
    assert _vectors(forgetful_redis, view, ids) == expected_vectors
    table_names = inspect(database.engine).get_table_names()
    assert not [name for name in table_names if "_staging_" in name]


def test_a_worker_lost_mid_materialization_loses_and_duplicates_nothing(
        spark_cluster: SparkCluster, postgres: Database, titanic: DatasetSpec, zone: LandingZone,
        forgetful_redis: str, tmp_path: Path) -> None:
    passengers = write_passengers(synthetic_passengers(60_000, seed=5), tmp_path / "many.csv")
    loaded = ingest_file(postgres, titanic, str(passengers), zone).rows_loaded
    view = feature_view(titanic)
    settings = _settings(tmp_path, spark_cluster).model_copy(
        update={"database_url": postgres.url, "redis_url": forgetful_redis})
    spark = spark_session(settings)
    done: dict[str, object] = {}
    job = threading.Thread(target=lambda: done.update(
        report=materialize_on_spark(settings, postgres, titanic, forgetful_redis)))
    job.start()
    try:
        while job.is_alive() and not spark.sparkContext.statusTracker().getActiveStageIds():
            time.sleep(0.02)
        assert job.is_alive() and _offline_count(postgres, view) == 0  # its ranges are running
        spark_cluster.kill_worker(spark_cluster.live_workers()[0])
        job.join(timeout=600)
    finally:
        spark_cluster.add_worker()
    report = done["report"]
    assert (report.computed, report.pushed) == (loaded, loaded)
    offline = _offline(postgres, view)
    assert len(offline) == offline.index.nunique() == loaded
    assert all(vector is not None
               for vector in _vectors(forgetful_redis, view, offline.index.tolist()))


def _offline_count(database: Database, view: FeatureView) -> int:
    table = feature_table(view)
    with database.session() as session:
        return session.scalar(select(func.count()).select_from(table).where(
            table.c[VIEW_VERSION] == view.version)) or 0
