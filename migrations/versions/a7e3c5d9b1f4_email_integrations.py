"""email_integrations: an inbound-email integration's own settings (dedup source, resolve pattern)

Revision ID: a7e3c5d9b1f4
Revises: b8e2f4a6c1d9
Create Date: 2026-12-07 09:30:00

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'a7e3c5d9b1f4'
down_revision = 'b8e2f4a6c1d9'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'email_integrations',
        sa.Column('integration_id', sa.Integer(), nullable=False),
        sa.Column('dedup_source', sa.String(length=20), nullable=False),
        sa.Column('dedup_regex', sa.String(length=500), nullable=True),
        sa.Column('resolve_regex', sa.String(length=500), nullable=True),
        sa.ForeignKeyConstraint(['integration_id'], ['integrations.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('integration_id'),
    )


def downgrade():
    op.drop_table('email_integrations')
