"""ingestion run process: host and pid, to close runs whose process died

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23 09:30:00
"""

import sqlalchemy as sa
from alembic import op

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('ingestion_runs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('host', sa.String(length=255), nullable=True))
        batch_op.add_column(sa.Column('pid', sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('ingestion_runs', schema=None) as batch_op:
        batch_op.drop_column('pid')
        batch_op.drop_column('host')
