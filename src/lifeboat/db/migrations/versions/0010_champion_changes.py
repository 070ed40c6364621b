"""champion_changes: every change of a dataset's champion, for history and rollback

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-05 12:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'champion_changes',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('dataset', sa.String(length=100), nullable=False),
        sa.Column('changed_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('from_version', sa.String(length=20), nullable=True),
        sa.Column('to_version', sa.String(length=20), nullable=False),
        sa.Column('changed_by', sa.String(length=20), nullable=False),
        sa.Column('reason', sa.Text(), nullable=False),
        sa.Column('evidence', sa.JSON(), nullable=True),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_champion_changes')),
    )
    op.create_index(op.f('ix_champion_changes_dataset'), 'champion_changes', ['dataset'])


def downgrade() -> None:
    op.drop_index(op.f('ix_champion_changes_dataset'), table_name='champion_changes')
    op.drop_table('champion_changes')
