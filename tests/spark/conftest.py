"""What the Spark tests share: a fresh database on the PostgreSQL server, which executors on
other hosts could reach, as the spark engine needs."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from lifeboat.db import Database, upgrade


@pytest.fixture
def postgres(postgres_server_url: str) -> Iterator[Database]:
    database = Database(postgres_server_url)
    with database.engine.begin() as connection:
        connection.exec_driver_sql("DROP SCHEMA public CASCADE; CREATE SCHEMA public")
    upgrade(database)
    yield database
    database.dispose()
