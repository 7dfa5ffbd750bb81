"""incidents and notifications: indexes for the reports (issue 16)

Incidents by opening time, covering what the reports read (so a range is read from the index
alone); pages sent, by time (pages per person and out of hours), and pages beyond level 1, by
incident (escalations). The predicates are written out here (not imported from the models) so that this
revision stays what it was when the models change.

Revision ID: f5a2c8e1d7b3
Revises: e8b3d6a1c4f7
Create Date: 2026-12-07 13:20:00

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'f5a2c8e1d7b3'
down_revision = 'e8b3d6a1c4f7'
branch_labels = None
depends_on = None

SENT_PAGE = "purpose = 'page' AND status = 'sent'"
ESCALATED_PAGE = "purpose = 'page' AND (level > 1 OR loop > 0)"


def upgrade():
    # Plain CREATE INDEX (no batch): SQLite adds an index without rebuilding the table.
    op.create_index(
        'ix_incidents_report',
        'incidents',
        ['created_at', 'service_id', 'acknowledged_at', 'resolved_at', 'id'],
        unique=False,
    )
    op.create_index(
        'ix_notifications_sent_pages',
        'notifications',
        ['sent_at', 'user_id', 'incident_id'],
        unique=False,
        sqlite_where=sa.text(SENT_PAGE),
        postgresql_where=sa.text(SENT_PAGE),
    )
    op.create_index(
        'ix_notifications_escalated_pages',
        'notifications',
        ['incident_id'],
        unique=False,
        sqlite_where=sa.text(ESCALATED_PAGE),
        postgresql_where=sa.text(ESCALATED_PAGE),
    )


def downgrade():
    op.drop_index('ix_notifications_escalated_pages', table_name='notifications')
    op.drop_index('ix_notifications_sent_pages', table_name='notifications')
    op.drop_index('ix_incidents_report', table_name='incidents')
