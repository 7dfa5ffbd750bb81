"""heartbeats (state of heartbeat integrations) and change_events

Revision ID: a7d3e9c1b5f2
Revises: d4f1a8c2e6b9
Create Date: 2026-12-07 09:30:00

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'a7d3e9c1b5f2'
down_revision = 'd4f1a8c2e6b9'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'heartbeats',
        sa.Column('integration_id', sa.Integer(), nullable=False),
        sa.Column('interval_seconds', sa.Integer(), nullable=False),
        sa.Column('grace_seconds', sa.Integer(), nullable=False),
        sa.Column('paused', sa.Boolean(), nullable=False),
        sa.Column('state', sa.String(length=10), nullable=False),
        sa.Column('last_ping_at', sa.DateTime(), nullable=True),
        sa.Column('due_at', sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(['integration_id'], ['integrations.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('integration_id'),
    )
    op.create_table(
        'change_events',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('service_id', sa.Integer(), nullable=False),
        sa.Column('summary', sa.String(length=1024), nullable=False),
        sa.Column('source', sa.String(length=255), nullable=False),
        sa.Column('timestamp', sa.DateTime(), nullable=False),
        sa.Column('custom_details', sa.JSON(), nullable=True),
        sa.Column('links', sa.JSON(), nullable=False),
        sa.Column('received_at', sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(['service_id'], ['services.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id'),
    )
    with op.batch_alter_table('change_events', schema=None) as batch_op:
        batch_op.create_index('ix_change_events_service_timestamp', ['service_id', 'timestamp', 'id'], unique=False)
        batch_op.create_index('ix_change_events_received_at', ['received_at'], unique=False)


def downgrade():
    with op.batch_alter_table('change_events', schema=None) as batch_op:
        batch_op.drop_index('ix_change_events_received_at')
        batch_op.drop_index('ix_change_events_service_timestamp')
    op.drop_table('change_events')
    op.drop_table('heartbeats')
