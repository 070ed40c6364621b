"""predictions: the entity scored and the feature-view vector it was scored on

A prediction by entity id logged only the id as its input, so everything that reads the
log back (drift checks, shadow scoring, the retrain gate's recent labelled rows) saw
nothing of what the model was given. Each prediction now keeps `entity_id` (the id, or the
key a record or file row carried) and `features` (the view row the model scored, as a JSON
object, missing values as null). Rows logged before stay null in both: readers fall back
on their raw input.

No index on `entity_id`: nothing looks predictions up by it yet.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-25 09:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('predictions', sa.Column('entity_id', sa.String(length=64), nullable=True))
    op.add_column('predictions', sa.Column('features', sa.JSON(none_as_null=True), nullable=True))


def downgrade() -> None:
    """Plain ALTER TABLE ... DROP COLUMN, on SQLite too (3.35 and later): a batch operation
    would copy the table and drop the old one, and the feedback rows with it (ON DELETE
    CASCADE, with foreign keys enforced)."""
    op.drop_column('predictions', 'features')
    op.drop_column('predictions', 'entity_id')
