"""shift notices: reminder/handoff/summary settings per user, and the notices sent

Revision ID: b8e2f4a6c1d9
Revises: e7c2a9d4b1f8
Create Date: 2026-12-07 10:30:00

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'b8e2f4a6c1d9'
down_revision = 'e7c2a9d4b1f8'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'shift_notice_settings',
        sa.Column('user_id', sa.Integer(), nullable=False),
        sa.Column('reminder_hours', sa.Integer(), nullable=False),
        sa.Column('contact_method_id', sa.Integer(), nullable=True),
        sa.Column('weekly_summary', sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(['user_id'], ['users.id'], ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['contact_method_id'], ['contact_methods.id'], ondelete='SET NULL'),
        sa.PrimaryKeyConstraint('user_id'),
    )
    op.create_table(
        'shift_notices',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('user_id', sa.Integer(), nullable=False),
        sa.Column('kind', sa.String(length=16), nullable=False),
        sa.Column('schedule_id', sa.Integer(), nullable=False),
        sa.Column('shift_start', sa.DateTime(), nullable=False),
        sa.Column('notification_id', sa.Integer(), nullable=True),
        sa.Column('subject', sa.String(length=255), nullable=False),
        sa.Column('body', sa.Text(), nullable=False),
        sa.Column('short', sa.String(length=1000), nullable=False),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(['user_id'], ['users.id'], ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['notification_id'], ['notifications.id'], ondelete='SET NULL'),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('user_id', 'kind', 'schedule_id', 'shift_start', name='uq_shift_notices_once'),
    )
    op.create_index('ix_shift_notices_user_id', 'shift_notices', ['user_id'])
    op.create_index('ix_shift_notices_notification_id', 'shift_notices', ['notification_id'])


def downgrade():
    op.drop_index('ix_shift_notices_notification_id', table_name='shift_notices')
    op.drop_index('ix_shift_notices_user_id', table_name='shift_notices')
    op.drop_table('shift_notices')
    op.drop_table('shift_notice_settings')
