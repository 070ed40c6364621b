"""Schema upgrades through Alembic, callable from the CLI, `lifeboat up` and tests."""

from __future__ import annotations

from importlib.resources import files

from alembic import command
from alembic.config import Config
from sqlalchemy import text

from lifeboat.db.session import Database


def alembic_config(database: Database) -> Config:
    config = Config()
    config.set_main_option("script_location", str(files("lifeboat.db").joinpath("migrations")))
    config.attributes["engine"] = database.engine
    return config


# Any fixed number: the key of PostgreSQL's advisory lock that upgrades take one at a time.
_UPGRADE_LOCK = 0x11FEB0A7


def upgrade(database: Database, revision: str = "head") -> None:
    """Brings the schema to `revision`. On PostgreSQL, processes starting together (the
    replicas of a deployment, each upgrading at its start) take turns on an advisory lock:
    the first upgrades, the others then find nothing left to do."""
    if database.engine.dialect.name != "postgresql":
        command.upgrade(alembic_config(database), revision)
        return
    with database.engine.connect() as connection:
        connection.execute(text("SELECT pg_advisory_lock(:key)"), {"key": _UPGRADE_LOCK})
        try:
            command.upgrade(alembic_config(database), revision)
        finally:
            connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": _UPGRADE_LOCK})
