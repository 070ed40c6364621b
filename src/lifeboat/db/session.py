"""The one database handle: an engine and its session factory, built from settings."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Engine, create_engine, event, make_url, text
from sqlalchemy.orm import Session, sessionmaker

from lifeboat.errors import LifeboatError


def _tune_sqlite(engine: Engine) -> None:
    """WAL lets the server read while a job writes; the timeout waits out short write locks."""

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record) -> None:  # noqa: ANN001
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()


def _connect_args(url: str) -> dict:
    """A server that drops packets is given up on in seconds, not after the OS's TCP timeout."""
    return {"connect_timeout": 5} if url.startswith("postgresql") else {}


class Database:
    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = create_engine(url, pool_pre_ping=True, connect_args=_connect_args(url))
        if self.engine.dialect.name == "sqlite":
            _tune_sqlite(self.engine)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A unit of work: commits on success, rolls back on any error."""
        with self._sessions.begin() as session:
            yield session

    def ping(self) -> bool:
        try:
            with self.engine.connect() as connection:
                connection.execute(text("SELECT 1"))
        except Exception:  # noqa: BLE001 - any failure means "not reachable"
            return False
        return True

    def dispose(self) -> None:
        self.engine.dispose()


def ensure_database(url: str) -> None:
    """Creates the PostgreSQL database that `url` names if the server lacks it, so that a
    fresh server needs nothing done by hand (`lifeboat cluster` gives each store its own).
    psycopg is imported here: a SQLite home never needs it."""
    import psycopg
    from psycopg import sql

    parsed = make_url(url)
    server = parsed.set(drivername="postgresql", database="postgres")
    try:
        with psycopg.connect(server.render_as_string(hide_password=False), autocommit=True,
                             connect_timeout=5) as connection:
            if connection.execute("SELECT 1 FROM pg_database WHERE datname = %s",
                                  (parsed.database,)).fetchone() is None:
                connection.execute(sql.SQL("CREATE DATABASE {}").format(
                    sql.Identifier(parsed.database)))
    except psycopg.Error as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise LifeboatError(f"cannot create or find the database {parsed.database!r} on "
                            f"PostgreSQL at {parsed.host}:{parsed.port or 5432}: {reason}") from exc
