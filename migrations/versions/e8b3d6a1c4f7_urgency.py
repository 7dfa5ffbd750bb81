"""urgency: services.urgency and support_hours, incidents.urgency, notification_rules.urgency,
notifications.urgency

Existing services get "high" (so nothing that paged before stops paging); new ones default to
"by_severity". Existing notification rules become high-urgency rules; users with no low-urgency
rules are emailed at their login address for low-urgency incidents (openduty.escalation.user_pages).
Existing incidents are high.

Revision ID: e8b3d6a1c4f7
Revises: c3f9a1e7d2b6
Create Date: 2026-12-07 09:20:00

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'e8b3d6a1c4f7'
down_revision = 'c3f9a1e7d2b6'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('services', schema=None) as batch_op:
        batch_op.add_column(sa.Column('urgency', sa.String(length=16), server_default='by_severity', nullable=False))
        batch_op.add_column(sa.Column('support_hours', sa.JSON(), nullable=True))
    op.execute("UPDATE services SET urgency = 'high'")
    with op.batch_alter_table('incidents', schema=None) as batch_op:
        batch_op.add_column(sa.Column('urgency', sa.String(length=8), server_default='high', nullable=False))
        batch_op.create_index('ix_incidents_urgency_created', ['urgency', 'created_at', 'id'], unique=False)
    with op.batch_alter_table('notification_rules', schema=None) as batch_op:
        batch_op.add_column(sa.Column('urgency', sa.String(length=8), server_default='high', nullable=False))
    with op.batch_alter_table('notifications', schema=None) as batch_op:
        batch_op.add_column(sa.Column('urgency', sa.String(length=8), nullable=True))


def downgrade():
    with op.batch_alter_table('notifications', schema=None) as batch_op:
        batch_op.drop_column('urgency')
    with op.batch_alter_table('notification_rules', schema=None) as batch_op:
        batch_op.drop_column('urgency')
    # Not a batch: rebuilding `incidents` on SQLite would drop its search triggers (b1e6d0c4a7f2);
    # SQLite 3.35+ drops a column in place.
    op.drop_index('ix_incidents_urgency_created', table_name='incidents')
    op.drop_column('incidents', 'urgency')
    with op.batch_alter_table('services', schema=None) as batch_op:
        batch_op.drop_column('support_hours')
        batch_op.drop_column('urgency')
