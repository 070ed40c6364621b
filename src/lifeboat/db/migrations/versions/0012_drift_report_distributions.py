"""drift_reports.distributions

A drift report's page draws, per feature, the training and window distributions the
check compared. Until now they lived only inside the stored HTML page, as plotly figures;
kept as data (shares per bin or category), the app's own report page draws them and lists
the checks side by side. Null for reports stored before: their pages show no plots.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-06 04:10:00
"""

import sqlalchemy as sa
from alembic import op

revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('drift_reports', sa.Column('distributions', sa.JSON(), nullable=True))


def downgrade() -> None:
    op.drop_column('drift_reports', 'distributions')
