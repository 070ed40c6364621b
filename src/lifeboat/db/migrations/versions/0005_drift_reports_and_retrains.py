"""drift_reports and retrains: the self-healing loop's record

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-23 17:10:00
"""

import sqlalchemy as sa
from alembic import op

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'drift_reports',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('dataset', sa.String(length=100), nullable=False),
        sa.Column('model_name', sa.String(length=200), nullable=False),
        sa.Column('model_version', sa.String(length=20), nullable=False),
        sa.Column('window_start', sa.DateTime(timezone=True), nullable=False),
        sa.Column('window_end', sa.DateTime(timezone=True), nullable=False),
        sa.Column('window_size', sa.Integer(), nullable=False),
        sa.Column('drifted', sa.Boolean(), nullable=False),
        sa.Column('drift_share', sa.Float(), nullable=False),
        sa.Column('p_value', sa.Float(), nullable=False),
        sa.Column('correction', sa.String(length=20), nullable=False),
        sa.Column('features', sa.JSON(), nullable=False),
        sa.Column('prediction_drift', sa.JSON(), nullable=False),
        sa.Column('html', sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_drift_reports')),
    )
    op.create_index(op.f('ix_drift_reports_created_at'), 'drift_reports', ['created_at'])
    op.create_index(op.f('ix_drift_reports_dataset'), 'drift_reports', ['dataset'])
    op.create_table(
        'retrains',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('dataset', sa.String(length=100), nullable=False),
        sa.Column('reason', sa.String(length=20), nullable=False),
        sa.Column('status', sa.String(length=20), nullable=False),
        sa.Column('started_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('champion_version', sa.String(length=20), nullable=True),
        sa.Column('challenger_version', sa.String(length=20), nullable=True),
        sa.Column('drift_report_id', sa.Integer(), nullable=True),
        sa.Column('detail', sa.JSON(), nullable=True),
        sa.Column('error', sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(['drift_report_id'], ['drift_reports.id'],
                                name=op.f('fk_retrains_drift_report_id_drift_reports'),
                                ondelete='SET NULL'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_retrains')),
    )
    op.create_index(op.f('ix_retrains_dataset'), 'retrains', ['dataset'])
    op.create_index(op.f('ix_retrains_started_at'), 'retrains', ['started_at'])
    op.create_index('uq_retrains_running', 'retrains', ['dataset'], unique=True,
                    postgresql_where=sa.text("status = 'running'"),
                    sqlite_where=sa.text("status = 'running'"))


def downgrade() -> None:
    op.drop_index('uq_retrains_running', table_name='retrains')
    op.drop_index(op.f('ix_retrains_started_at'), table_name='retrains')
    op.drop_index(op.f('ix_retrains_dataset'), table_name='retrains')
    op.drop_table('retrains')
    op.drop_index(op.f('ix_drift_reports_dataset'), table_name='drift_reports')
    op.drop_index(op.f('ix_drift_reports_created_at'), table_name='drift_reports')
    op.drop_table('drift_reports')
