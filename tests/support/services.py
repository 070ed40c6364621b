"""The real PostgreSQL and Redis servers the tests use, and scratch databases on PostgreSQL.

A server that is down fails the tests that need it: a skipped backend would hide exactly
the bugs these tests exist to catch.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
import pytest
from sqlalchemy import make_url

POSTGRES_URL = os.environ.get(
    "LIFEBOAT_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
REDIS_URL = os.environ.get("LIFEBOAT_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


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
    scratch = url.set(database=name).render_as_string(hide_password=False)
    yield scratch
    drop_postgres_database(scratch)


def drop_postgres_database(url: str) -> None:
    """Drops the database `url` names, if it exists, closing its connections."""
    parsed = make_url(url)
    admin = parsed.set(drivername="postgresql", database="postgres").render_as_string(
        hide_password=False)
    with psycopg.connect(admin, autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{parsed.database}" WITH (FORCE)')
