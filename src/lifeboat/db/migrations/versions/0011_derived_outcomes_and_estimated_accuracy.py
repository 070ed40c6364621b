"""feedback.source, outcome_progress, drift_reports.estimated_accuracy

Outcomes no longer come only through /feedback: for a dataset whose target is a future
event, monitoring derives them from the entity's later events. `feedback.source` tells the
two apart (`api` or `derived`; every row before was `api`), so a derived outcome never
replaces one a caller sent. `outcome_progress` keeps, per dataset, the moment up to which
every prediction has been labelled, so each turn reads only the predictions after it: with
1M predictions labelled, a turn with nothing new took 0.44 s (SQLite) and 0.68 s
(PostgreSQL) without it, an anti-join over the whole log, against 52 and 59 ms with it,
most of that the newest transaction's time out of 1M (`python -m benchmarks.outcomes`).
`drift_reports.estimated_accuracy` is the window's accuracy expected from its calibrated
probabilities (CBPE): performance without labels, beside each check.

No index on predictions: the turn's query is a range of the (dataset, created_at) index.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-06 10:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('feedback', sa.Column('source', sa.String(length=20), nullable=False,
                                        server_default='api'))
    op.create_table(
        'outcome_progress',
        sa.Column('dataset', sa.String(length=100), nullable=False),
        sa.Column('labelled_until', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('dataset', name=op.f('pk_outcome_progress')),
    )
    op.add_column('drift_reports', sa.Column('estimated_accuracy', sa.Float(), nullable=True))


def downgrade() -> None:
    """Plain DROP COLUMN, on SQLite too: a batch operation would copy the feedback table."""
    op.drop_column('drift_reports', 'estimated_accuracy')
    op.drop_table('outcome_progress')
    op.drop_column('feedback', 'source')
