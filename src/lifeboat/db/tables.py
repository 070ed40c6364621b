"""Dataset tables, derived from a dataset spec rather than written as migrations.

A new dataset is a spec file, not new code, so its table cannot be a hand-written
Alembic revision. Lifeboat's own tables (models.py) are migrated by Alembic; the
migration environment leaves these alone.
"""

from __future__ import annotations

from sqlalchemy import (
    Column,
    DateTime,
    Engine,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
)

from lifeboat.datasets import EventsSpec, TableSpec

DATASET_METADATA = MetaData()
INGESTION_RUN_COLUMN = "ingestion_run_id"
LOADED_AT_COLUMN = "loaded_at"

# The largest magnitude an integer column holds: SQL INTEGER is 32 bits on PostgreSQL (SQLite
# would take more; one limit for both keeps a file's outcome the same on either).
STORED_INTEGER_MAX = 2**31 - 1
_SQL_TYPES = {"string": Text(), "integer": Integer(), "float": Float(),
              "datetime": DateTime(timezone=True)}
# Keys compare byte by byte on PostgreSQL: ids have no language, and a locale's collation
# makes every key comparison slower (building the key index of 1M ids: 2.2 s → 0.8 s).
_ENTITY_KEY = String(64).with_variant(String(64, collation="C"), "postgresql")


def dataset_table(spec: TableSpec) -> Table:
    """The table of one source: a dataset's entities, or its events."""
    if spec.table in DATASET_METADATA.tables:
        return DATASET_METADATA.tables[spec.table]
    columns = [
        Column(name, _ENTITY_KEY if name == spec.entity.key else _SQL_TYPES[column.type],
               primary_key=name == spec.entity.key)
        for name, column in spec.columns.items()
    ]
    return Table(
        spec.table,
        DATASET_METADATA,
        *columns,
        Column(INGESTION_RUN_COLUMN, Integer),
        Column(LOADED_AT_COLUMN, DateTime(timezone=True)),
        *_indexes(spec),
    )


def _indexes(spec: TableSpec) -> list[Index]:
    """Events are read per entity up to a cut-off: one range scan of (join key, time)."""
    if not isinstance(spec, EventsSpec):
        return []
    return [Index(f"ix_{spec.table}_{spec.join_key}_{spec.time}", spec.join_key, spec.time)]


def ensure_dataset_table(engine: Engine, spec: TableSpec) -> Table:
    table = dataset_table(spec)
    table.create(engine, checkfirst=True)
    return table
