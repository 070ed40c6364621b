from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from lifeboat.db import Base, Database, upgrade


def test_upgrade_creates_the_schema_and_is_repeatable(database: Database) -> None:
    upgrade(database)  # a second upgrade (the fixture ran the first) changes nothing
    tables = set(inspect(database.engine).get_table_names())
    assert {"ingestion_runs", "predictions", "alembic_version"} <= tables


def test_migrations_match_the_models(database: Database) -> None:
    with database.engine.connect() as connection:
        diff = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    assert diff == []
