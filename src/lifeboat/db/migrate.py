"""Schema upgrades through Alembic, callable from the CLI, `lifeboat up` and tests."""

from __future__ import annotations

from importlib.resources import files

from alembic import command
from alembic.config import Config

from lifeboat.db.session import Database


def alembic_config(database: Database) -> Config:
    config = Config()
    config.set_main_option("script_location", str(files("lifeboat.db").joinpath("migrations")))
    config.attributes["engine"] = database.engine
    return config


def upgrade(database: Database, revision: str = "head") -> None:
    command.upgrade(alembic_config(database), revision)
