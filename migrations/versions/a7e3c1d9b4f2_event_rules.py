"""event rules, suppressed alerts; services.auto_resolve_hours and group_window_minutes

Revision ID: a7e3c1d9b4f2
Revises: a7d3e9c1b5f2
Create Date: 2026-12-07 09:40:00

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'a7e3c1d9b4f2'
down_revision = 'a7d3e9c1b5f2'
branch_labels = None
depends_on = None

OPEN = sa.text("status <> 'resolved'")


def upgrade():
    op.create_table(
        'event_rules',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('service_id', sa.Integer(), nullable=True),
        sa.Column('position', sa.Integer(), nullable=False),
        sa.Column('name', sa.String(length=200), nullable=False),
        sa.Column('match', sa.String(length=3), nullable=False),
        sa.Column('conditions', sa.JSON(), nullable=False),
        sa.Column('action', sa.String(length=16), nullable=False),
        sa.Column('severity', sa.String(length=16), nullable=True),
        sa.Column('urgency', sa.String(length=8), nullable=True),
        sa.Column('route_to_service_id', sa.Integer(), nullable=True),
        sa.Column('continue_matching', sa.Boolean(), nullable=False),
        sa.Column('match_count', sa.Integer(), nullable=False),
        sa.Column('last_matched_at', sa.DateTime(), nullable=True),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(['service_id'], ['services.id'], ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['route_to_service_id'], ['services.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id'),
    )
    with op.batch_alter_table('event_rules', schema=None) as batch_op:
        batch_op.create_index('ix_event_rules_service_position', ['service_id', 'position'], unique=False)
        batch_op.create_index('ix_event_rules_route_to_service_id', ['route_to_service_id'], unique=False)
    op.create_table(
        'suppressed_alerts',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('service_id', sa.Integer(), nullable=False),
        sa.Column('rule_id', sa.Integer(), nullable=True),
        sa.Column('at', sa.DateTime(), nullable=False),
        sa.Column('summary', sa.String(length=1024), nullable=False),
        sa.Column('severity', sa.String(length=16), nullable=False),
        sa.Column('event', sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(['rule_id'], ['event_rules.id'], ondelete='SET NULL'),
        sa.ForeignKeyConstraint(['service_id'], ['services.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id'),
    )
    with op.batch_alter_table('suppressed_alerts', schema=None) as batch_op:
        batch_op.create_index('ix_suppressed_alerts_service_at', ['service_id', 'at'], unique=False)
        batch_op.create_index('ix_suppressed_alerts_rule_id', ['rule_id'], unique=False)
    with op.batch_alter_table('services', schema=None) as batch_op:
        batch_op.add_column(sa.Column('auto_resolve_hours', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('group_window_minutes', sa.Integer(), nullable=True))
    # Not batch: on SQLite a batch would rebuild `incidents` (and lose its search triggers).
    op.create_index(
        'ix_incidents_open_service_last_event',
        'incidents',
        ['service_id', 'last_event_at'],
        unique=False,
        sqlite_where=OPEN,
        postgresql_where=OPEN,
    )


def downgrade():
    op.drop_index('ix_incidents_open_service_last_event', table_name='incidents')
    with op.batch_alter_table('services', schema=None) as batch_op:
        batch_op.drop_column('group_window_minutes')
        batch_op.drop_column('auto_resolve_hours')
    op.drop_table('suppressed_alerts')
    op.drop_table('event_rules')
