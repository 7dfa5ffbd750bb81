"""cover requests: a person asks the others of a schedule's rotations to cover part of a shift

Revision ID: c3f9a1e7d2b6
Revises: a7e3c5d9b1f4
Create Date: 2026-12-07 11:05:00

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'c3f9a1e7d2b6'
down_revision = 'a7e3c5d9b1f4'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'cover_requests',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('schedule_id', sa.Integer(), nullable=False),
        sa.Column('layer_id', sa.Integer(), nullable=True),
        sa.Column('requester_id', sa.Integer(), nullable=False),
        sa.Column('start', sa.DateTime(), nullable=False),
        sa.Column('end', sa.DateTime(), nullable=False),
        sa.Column('note', sa.String(length=500), nullable=False),
        sa.Column('status', sa.String(length=16), nullable=False),
        sa.Column('accepted_by_id', sa.Integer(), nullable=True),
        sa.Column('override_id', sa.Integer(), nullable=True),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(['schedule_id'], ['schedules.id'], ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['layer_id'], ['schedule_layers.id'], ondelete='SET NULL'),
        sa.ForeignKeyConstraint(['requester_id'], ['users.id'], ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['accepted_by_id'], ['users.id'], ondelete='SET NULL'),
        sa.ForeignKeyConstraint(['override_id'], ['schedule_overrides.id'], ondelete='SET NULL'),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index('ix_cover_requests_schedule_id', 'cover_requests', ['schedule_id'])
    op.create_index('ix_cover_requests_requester_id', 'cover_requests', ['requester_id'])


def downgrade():
    op.drop_index('ix_cover_requests_requester_id', table_name='cover_requests')
    op.drop_index('ix_cover_requests_schedule_id', table_name='cover_requests')
    op.drop_table('cover_requests')
