"""feedback: the true outcome of a logged prediction

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23 13:05:00
"""

import sqlalchemy as sa
from alembic import op

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'feedback',
        sa.Column('prediction_id', sa.String(length=36), nullable=False),
        sa.Column('actual', sa.Integer(), nullable=False),
        sa.Column('received_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['prediction_id'], ['predictions.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('prediction_id'),
    )
    op.create_index(op.f('ix_feedback_received_at'), 'feedback', ['received_at'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_feedback_received_at'), table_name='feedback')
    op.drop_table('feedback')
