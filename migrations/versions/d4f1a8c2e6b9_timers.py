"""timers: durable timer rows (heartbeats, maintenance windows, ...), armed as RQ jobs

Revision ID: d4f1a8c2e6b9
Revises: c9e4a7b2d5f3
Create Date: 2026-12-07 09:40:00

"""
from alembic import op
import sqlalchemy as sa

from openduty.models.types import UTCDateTime


# revision identifiers, used by Alembic.
revision = 'd4f1a8c2e6b9'
down_revision = 'c9e4a7b2d5f3'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'timers',
        sa.Column('kind', sa.String(length=32), nullable=False),
        sa.Column('ref_id', sa.Integer(), autoincrement=False, nullable=False),
        sa.Column('due_at', UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint('kind', 'ref_id'),
    )
    op.create_index('ix_timers_due_at', 'timers', ['due_at'])


def downgrade():
    op.drop_index('ix_timers_due_at', table_name='timers')
    op.drop_table('timers')
