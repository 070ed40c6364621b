"""Shared fixtures. DB tests run twice: on SQLite and on the real PostgreSQL server.

PostgreSQL being down fails the run (in CI and locally alike): a skipped backend would
hide exactly the bugs these tests exist to catch.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import make_url

from lifeboat.config import Settings
from lifeboat.datasets import DatasetSpec, load_spec
from lifeboat.db import Database, upgrade
from lifeboat.features import materialize, open_online_store
from lifeboat.ingest import LandingZone, ingest_file
from lifeboat.training import train
from object_storage import gcs_endpoint, http_endpoint, s3_endpoint, storage  # noqa: F401 (fixtures)

POSTGRES_URL = os.environ.get(
    "LIFEBOAT_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


def make_settings(home: Path, database_url: str | None = None, **overrides: object) -> Settings:
    """Settings isolated from the developer's environment and .env file."""
    return Settings(_env_file=None, home=home, database_url=database_url,
                    mlflow_tracking_uri=None, **{"search_iterations": 2, **overrides})


@pytest.fixture(scope="session")
def titanic() -> DatasetSpec:
    return load_spec("titanic")


@pytest.fixture(scope="session")
def postgres_server_url() -> Iterator[str]:
    """A throwaway database on the PostgreSQL server, dropped at the end of the session."""
    with scratch_postgres_database("lifeboat_test") as url:
        yield url


@contextmanager
def scratch_postgres_database(prefix: str) -> Iterator[str]:
    """A new database on the PostgreSQL server, dropped afterwards; the server down fails."""
    url = make_url(POSTGRES_URL)
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    admin = url.set(drivername="postgresql").render_as_string(hide_password=False)
    try:
        connection = psycopg.connect(admin, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        pytest.fail(f"PostgreSQL at {url.host}:{url.port} is down ({exc}); start it or set "
                    "LIFEBOAT_TEST_POSTGRES_URL", pytrace=False)
    with connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    yield url.set(database=name).render_as_string(hide_password=False)
    with psycopg.connect(admin, autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


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


def trained_home(home: Path, spec: DatasetSpec, database_url: str | None = None,
                 **overrides: object) -> Settings:
    """A home with the bundled data loaded, features materialized and a champion trained
    (in `database_url`, and the online store and other settings `overrides` name)."""
    settings = make_settings(home, database_url, **overrides)
    settings.ensure_home()
    db = Database(settings.db_url)
    upgrade(db)
    ingest_file(db, spec, str(spec.bundled_path()), LandingZone(settings.landing_url))
    store = open_online_store(settings.online_store_url)
    materialize(db, spec, store)
    store.close()
    train(settings, db, spec, promote=True)
    db.dispose()
    return settings


@pytest.fixture(scope="session")
def trained_settings(tmp_path_factory: pytest.TempPathFactory, titanic: DatasetSpec) -> Settings:
    """One trained home for the whole session; tests that change its registry make their own."""
    return trained_home(tmp_path_factory.mktemp("trained") / "home", titanic)


REDIS_URL = os.environ.get("LIFEBOAT_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


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
