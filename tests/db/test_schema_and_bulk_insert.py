from datetime import UTC, datetime

import pyarrow as pa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Float,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    inspect,
    select,
    text,
)

from lifeboat.db import Base, Database, upgrade
from lifeboat.db.bulk import insert_table
from lifeboat.db.migrate import alembic_config


def test_upgrade_creates_the_schema_and_is_repeatable(database: Database) -> None:
    upgrade(database)  # a second upgrade (the fixture ran the first) changes nothing
    tables = set(inspect(database.engine).get_table_names())
    assert {"ingestion_runs", "predictions", "alembic_version"} <= tables


def test_migrations_match_the_models(database: Database) -> None:
    with database.engine.connect() as connection:
        diff = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    assert diff == []


def test_prediction_log_schema_migrates_both_ways_keeping_rows(database: Database) -> None:
    """0006 (byte-wise ids on PostgreSQL, one (dataset, created_at) index), 0008 (no batch
    rows in PostgreSQL's source index) and 0009 (entity id and features) down and up again,
    with a prediction and its feedback in place."""
    with database.engine.begin() as connection:
        connection.execute(text(
            "INSERT INTO predictions (id, created_at, dataset, source, input, prediction, label, "
            "probability, model_name, model_version, latency_ms) VALUES ('p1', "
            "CURRENT_TIMESTAMP, 'titanic', 'api', '{}', 1, 'survived', 0.9, 'm', '1', 1.0)"))
        connection.execute(text("INSERT INTO feedback (prediction_id, actual, received_at) "
                                "VALUES ('p1', 1, CURRENT_TIMESTAMP)"))
    command.downgrade(alembic_config(database), "0005")
    assert {"entity_id", "features"}.isdisjoint(
        column["name"] for column in inspect(database.engine).get_columns("predictions"))
    assert _index_columns(database) == [["created_at"], ["dataset"], ["source"]]
    assert _source_index_predicate(database) is None
    upgrade(database)
    assert _index_columns(database) == [["dataset", "created_at"], ["source"]]
    postgres = database.engine.dialect.name == "postgresql"
    assert _source_index_predicate(database) == (
        "((source)::text <> 'batch'::text)" if postgres else None)
    with database.engine.connect() as connection:
        assert connection.scalar(text(
            "SELECT count(*) FROM feedback JOIN predictions ON id = prediction_id")) == 1
        assert connection.execute(text(
            "SELECT entity_id, features FROM predictions")).one() == (None, None)
        if database.engine.dialect.name == "postgresql":
            collations = connection.scalars(text(
                "SELECT collation_name FROM information_schema.columns WHERE "
                "(table_name, column_name) IN (('predictions', 'id'), "
                "('feedback', 'prediction_id'))")).all()
            assert collations == ["C", "C"]


def _source_index_predicate(database: Database) -> str | None:
    """The WHERE of the source index as the database states it; None for a full index."""
    if database.engine.dialect.name != "postgresql":
        index, = (index for index in inspect(database.engine).get_indexes("predictions")
                  if "source" in index["column_names"])
        return index.get("dialect_options", {}).get("sqlite_where")
    with database.engine.connect() as connection:
        return connection.scalar(text(
            "SELECT pg_get_expr(indpred, indrelid) FROM pg_index WHERE indexrelid = "
            "'ix_predictions_source'::regclass"))


def _index_columns(database: Database) -> list[list[str]]:
    indexes = inspect(database.engine).get_indexes("predictions")
    return sorted(index["column_names"] for index in indexes)


def test_arrow_rows_insert_as_typed_values_with_nulls(database: Database) -> None:
    """`insert_table`: PostgreSQL's binary COPY (each type's own encoding), or the frame path."""
    metadata = MetaData()
    table = Table("arrow_rows", metadata, Column("id", String(8), primary_key=True),
                  Column("doc", JSON), Column("count", Integer), Column("big", BigInteger),
                  Column("share", Float), Column("flag", Boolean), Column("note", Text),
                  Column("at", DateTime(timezone=True)), Column("kind", String(10)))
    metadata.create_all(database.engine)
    at = datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)
    rows = pa.table({"id": ["a", "b"], "doc": ['{"name": "Zoë \\"Q\\"", "n": [1, 2.5]}', None],
                     "count": pa.array([7, None], pa.int64()), "big": [2**40, -1],
                     "share": [0.1, None], "flag": [True, None], "note": ["", "tab\there"]})
    with database.session() as session:
        assert insert_table(session, table, rows, {"at": at, "kind": "batch"}) == 2
    with database.engine.connect() as connection:
        found = connection.execute(select(table).order_by(table.c.id)).all()
    assert [tuple(row)[:-2] for row in found] == [
        ("a", {"name": 'Zoë "Q"', "n": [1, 2.5]}, 7, 2**40, 0.1, True, ""),
        ("b", None, None, -1, None, None, "tab\there")]
    assert [(row.at.replace(tzinfo=UTC), row.kind) for row in found] == [(at, "batch")] * 2


def test_feedback_sent_before_0011_is_a_callers_and_survives_both_ways(
        database: Database) -> None:
    """0011 (feedback.source, outcome_progress, drift_reports.estimated_accuracy) down and up
    with an outcome in place: it stays, and counts as sent through /feedback."""
    command.downgrade(alembic_config(database), "0010")
    with database.engine.begin() as connection:
        connection.execute(text(
            "INSERT INTO predictions (id, created_at, dataset, source, input, prediction, label, "
            "probability, model_name, model_version, latency_ms) VALUES ('p1', "
            "CURRENT_TIMESTAMP, 'customers', 'api', '{}', 1, 'yes', 0.9, 'm', '1', 1.0)"))
        connection.execute(text("INSERT INTO feedback VALUES ('p1', 1, CURRENT_TIMESTAMP)"))
    upgrade(database)
    with database.engine.connect() as connection:
        assert connection.execute(text("SELECT actual, source FROM feedback")).one() == (1, "api")
    assert "estimated_accuracy" in _columns(database, "drift_reports")
    command.downgrade(alembic_config(database), "0010")
    assert "source" not in _columns(database, "feedback")
    assert "outcome_progress" not in inspect(database.engine).get_table_names()
    with database.engine.connect() as connection:
        assert connection.scalar(text("SELECT count(*) FROM feedback")) == 1
    upgrade(database)


def _columns(database: Database, table: str) -> set[str]:
    return {column["name"] for column in inspect(database.engine).get_columns(table)}
