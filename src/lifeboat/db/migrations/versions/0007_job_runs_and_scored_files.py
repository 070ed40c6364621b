"""job_runs and scored_files: every job run, and each good/ file's scoring claim

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-23 21:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'job_runs',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('dataset', sa.String(length=100), nullable=False),
        sa.Column('job', sa.String(length=40), nullable=False),
        sa.Column('trigger', sa.String(length=20), nullable=False),
        sa.Column('status', sa.String(length=20), nullable=False),
        sa.Column('started_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('counts', sa.JSON(), nullable=True),
        sa.Column('error', sa.Text(), nullable=True),
        sa.Column('host', sa.String(length=255), nullable=True),
        sa.Column('pid', sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_job_runs')),
    )
    op.create_index(op.f('ix_job_runs_started_at'), 'job_runs', ['started_at'])
    op.create_table(
        'scored_files',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('dataset', sa.String(length=100), nullable=False),
        sa.Column('file', sa.Text(), nullable=False),
        sa.Column('status', sa.String(length=20), nullable=False),
        sa.Column('attempts', sa.Integer(), nullable=False),
        sa.Column('claimed_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('host', sa.String(length=255), nullable=True),
        sa.Column('pid', sa.Integer(), nullable=True),
        sa.Column('model_version', sa.String(length=20), nullable=True),
        sa.Column('predictions', sa.Integer(), nullable=False),
        sa.Column('output', sa.Text(), nullable=True),
        sa.Column('error', sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_scored_files')),
    )
    op.create_index('uq_scored_files_file', 'scored_files', ['dataset', 'file'], unique=True)


def downgrade() -> None:
    op.drop_index('uq_scored_files_file', table_name='scored_files')
    op.drop_table('scored_files')
    op.drop_index(op.f('ix_job_runs_started_at'), table_name='job_runs')
    op.drop_table('job_runs')
