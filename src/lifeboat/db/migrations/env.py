"""Alembic environment. Lifeboat passes its engine in; the `alembic` CLI falls back to settings."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine

from lifeboat.db.models import Base

config = context.config
target_metadata = Base.metadata


def _include_object(obj, name, type_, reflected, compare_to) -> bool:  # noqa: ANN001
    """Dataset tables come from specs, not migrations: autogenerate must not drop them."""
    return not (type_ == "table" and reflected and name not in target_metadata.tables)


def _engine():  # noqa: ANN202
    engine = config.attributes.get("engine")
    if engine is not None:
        return engine
    from lifeboat.config import Settings

    return create_engine(Settings().db_url)


def run_migrations_online() -> None:
    with _engine().connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            include_object=_include_object,
            render_as_batch=connection.dialect.name == "sqlite",
        )
        with context.begin_transaction():
            context.run_migrations()
        connection.commit()


run_migrations_online()
