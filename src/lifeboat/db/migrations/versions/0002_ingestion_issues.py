"""ingestion issues

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23 07:33:44.615088
"""

import sqlalchemy as sa
from alembic import op

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('ingestion_issues',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('run_id', sa.Integer(), nullable=False),
    sa.Column('row', sa.Integer(), nullable=True),
    sa.Column('column', sa.String(length=100), nullable=True),
    sa.Column('issue', sa.String(length=40), nullable=False),
    sa.Column('value', sa.Text(), nullable=True),
    sa.ForeignKeyConstraint(['run_id'], ['ingestion_runs.id'], name=op.f('fk_ingestion_issues_run_id_ingestion_runs'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_ingestion_issues'))
    )
    with op.batch_alter_table('ingestion_issues', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_ingestion_issues_issue'), ['issue'], unique=False)
        batch_op.create_index(batch_op.f('ix_ingestion_issues_run_id'), ['run_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('ingestion_issues', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_ingestion_issues_run_id'))
        batch_op.drop_index(batch_op.f('ix_ingestion_issues_issue'))

    op.drop_table('ingestion_issues')
