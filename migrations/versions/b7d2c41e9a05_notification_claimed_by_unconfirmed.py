"""notifications: claimed_by (which process is sending) and unconfirmed (attempts that may have arrived)

Revision ID: b7d2c41e9a05
Revises: f3c43eeac191
Create Date: 2026-12-01 15:20:00

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'b7d2c41e9a05'
down_revision = 'f3c43eeac191'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('notifications', schema=None) as batch_op:
        batch_op.add_column(sa.Column('claimed_by', sa.String(length=255), nullable=True))
        batch_op.add_column(sa.Column('unconfirmed', sa.Integer(), server_default='0', nullable=False))


def downgrade():
    with op.batch_alter_table('notifications', schema=None) as batch_op:
        batch_op.drop_column('unconfirmed')
        batch_op.drop_column('claimed_by')
