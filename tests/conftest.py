"""Shared fixtures. DB tests run twice: on SQLite and on the real PostgreSQL server.

PostgreSQL being down fails the run (in CI and locally alike): a skipped backend would
hide exactly the bugs these tests exist to catch.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import make_url

from lifeboat.config import Settings
from lifeboat.datasets import DatasetSpec, load_spec
from lifeboat.db import Database, upgrade
from lifeboat.ingest import LandingZone
from tests.support.browser import browser, screenshots  # noqa: F401 (fixtures)
from tests.support.homes import trained_home
from tests.support.mlflow_server import MlflowServer, running_mlflow_server
from tests.support.object_storage import (  # noqa: F401 (fixtures)
    gcs_endpoint,
    http_endpoint,
    s3_endpoint,
    storage,
)
from tests.support.processes import processes  # noqa: F401 (a fixture)
from tests.support.redis_cluster import RedisCluster
from tests.support.services import REDIS_URL, scratch_postgres_database
from tests.support.spark_cluster import SparkCluster


@pytest.fixture(scope="session")
def titanic() -> DatasetSpec:
    return load_spec("titanic")


@pytest.fixture(scope="session")
def postgres_server_url() -> Iterator[str]:
    """A throwaway database on the PostgreSQL server, dropped at the end of the session."""
    with scratch_postgres_database("lifeboat_test") as url:
        yield url


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty database of each kind, for each test."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'lifeboat.db'}"
    url = request.getfixturevalue("postgres_server_url")
    with psycopg.connect(make_url(url).set(drivername="postgresql").render_as_string(
            hide_password=False), autocommit=True) as connection:
        connection.execute("DROP SCHEMA public CASCADE")
        connection.execute("CREATE SCHEMA public")
    return url


@pytest.fixture
def database(database_url: str) -> Iterator[Database]:
    db = Database(database_url)
    upgrade(db)
    yield db
    db.dispose()


@pytest.fixture
def zone(tmp_path: Path) -> LandingZone:
    return LandingZone(str(tmp_path / "landing"))


@pytest.fixture(scope="session")
def trained_settings(tmp_path_factory: pytest.TempPathFactory, titanic: DatasetSpec) -> Settings:
    """One trained home for the whole session; tests that change its registry make their own."""
    return trained_home(tmp_path_factory.mktemp("trained") / "home", titanic)


@pytest.fixture(scope="session")
def mlflow_server(s3_endpoint: str,  # noqa: F811 (the fixture imported above)
                  tmp_path_factory: pytest.TempPathFactory) -> Iterator[MlflowServer]:
    """One tracking server for the session (`.url`), on PostgreSQL and moto's S3, shared
    by every test that asks: one that needs an empty registry starts its own
    (`running_mlflow_server`)."""
    with running_mlflow_server(s3_endpoint, tmp_path_factory.mktemp("mlflow")) as server:
        yield server


@pytest.fixture(scope="session")
def redis_url() -> str:
    """The Redis server the online-store tests write to; down fails the run, as PostgreSQL does."""
    import redis

    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2)
    try:
        client.ping()
    except redis.RedisError as exc:
        pytest.fail(f"Redis at {REDIS_URL} is down ({exc}); start it or set "
                    "LIFEBOAT_TEST_REDIS_URL", pytrace=False)
    finally:
        client.close()
    return REDIS_URL


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisCluster]:
    """Three masters with a replica each, for the online store on a Redis Cluster; a test
    that fails a master over brings the killed node back as a replica before it ends."""
    cluster = RedisCluster(tmp_path_factory.mktemp("redis-cluster")).start()
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="session")
def spark_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SparkCluster]:
    """A standalone master and two workers for every Spark test, and the driver's session on
    it (one per process, as PySpark has it), both stopped at the end."""
    cluster = SparkCluster(tmp_path_factory.mktemp("spark")).start(workers=2)
    try:
        yield cluster
    finally:
        from lifeboat.spark import stop_spark

        stop_spark()
        cluster.stop()
