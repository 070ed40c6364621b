"""predictions: on PostgreSQL the source index leaves out batch rows

A source index entry per row cost a big batch about a second: a million `batch` rows
scored into PostgreSQL took 10.7 s without the index against 11.8 s with it (`lifeboat
predict`, median of three runs each). The index is there for history filtered by a rare
source, and batch rows are the common one wherever a file has been scored: history
filtered by `batch` reads the (dataset, created_at) index newest first instead. A query
with `source = <parameter>` uses the partial index where PostgreSQL plans it with the
value, as it does while that plan beats a generic one (checked with EXPLAIN on 1M rows).

SQLite keeps the whole index: it uses a partial index only where the query repeats the
index's condition, and the index costs its serving writes no more than before.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-24 06:30:00
"""

import sqlalchemy as sa
from alembic import op

revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    _source_index(sa.text("source <> 'batch'"))


def downgrade() -> None:
    _source_index(None)


def _source_index(where: sa.TextClause | None) -> None:
    if op.get_bind().dialect.name != 'postgresql':
        return
    op.drop_index(op.f('ix_predictions_source'), table_name='predictions')
    op.create_index(op.f('ix_predictions_source'), 'predictions', ['source'],
                    postgresql_where=where)
