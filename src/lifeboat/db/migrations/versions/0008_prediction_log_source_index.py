"""predictions: history by source from a (dataset, source, created_at) index, without batch rows on PostgreSQL

The source index was a third of the cost of logging a big batch: a million `batch` rows
scored into PostgreSQL took 10.7 s without it against 11.8 s with it (`lifeboat predict`,
three runs each). Batch rows are now left out of it there; a history filtered by `api`,
`webapp` or `scheduled` reads the index in order and counts from it alone, where the old
one-column index still needed the rows. History filtered by `batch` reads the (dataset,
created_at) index newest first and keeps the batch rows, which are most rows once a file
has been scored. SQLite cannot use a partial index for `source = ?`, so there the index
holds every row.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-24 06:30:00
"""

from alembic import op
import sqlalchemy as sa


revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(op.f('ix_predictions_dataset_source_created_at'), 'predictions',
                    ['dataset', 'source', 'created_at'],
                    postgresql_where=sa.text("source <> 'batch'"))
    op.drop_index(op.f('ix_predictions_source'), table_name='predictions')


def downgrade() -> None:
    op.create_index(op.f('ix_predictions_source'), 'predictions', ['source'])
    op.drop_index(op.f('ix_predictions_dataset_source_created_at'), table_name='predictions')
