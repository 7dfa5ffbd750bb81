"""maintenance windows (and their services); incidents.in_maintenance; services.maintenance_until moves
into a window

Revision ID: e7c2a9d4b1f8
Revises: a7e3c1d9b4f2
Create Date: 2026-12-07 10:00:00

"""
from datetime import UTC, datetime

from alembic import op
import sqlalchemy as sa

from openduty.models.types import UTCDateTime


# revision identifiers, used by Alembic.
revision = 'e7c2a9d4b1f8'
down_revision = 'a7e3c1d9b4f2'
branch_labels = None
depends_on = None

DESCRIPTION = 'Moved from the service\'s "maintenance until" setting.'


def upgrade():
    op.create_table(
        'maintenance_windows',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('start', UTCDateTime(), nullable=False),
        sa.Column('end', UTCDateTime(), nullable=False),
        sa.Column('description', sa.String(length=1000), nullable=False),
        sa.Column('created_by_id', sa.Integer(), nullable=True),
        sa.Column('created_at', UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(['created_by_id'], ['users.id'], ondelete='SET NULL'),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index('ix_maintenance_windows_end_start', 'maintenance_windows', ['end', 'start'])
    op.create_table(
        'maintenance_window_services',
        sa.Column('service_id', sa.Integer(), nullable=False),
        sa.Column('window_id', sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(['service_id'], ['services.id'], ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['window_id'], ['maintenance_windows.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('service_id', 'window_id'),
    )
    op.create_index(
        'ix_maintenance_window_services_window_id', 'maintenance_window_services', ['window_id']
    )
    # A plain ADD COLUMN (no table rebuild on SQLite, so the search triggers stay).
    op.add_column('incidents', sa.Column('in_maintenance', sa.Boolean(), server_default=sa.false(), nullable=False))

    # Each service still in maintenance gets a window from now to its maintenance_until, with the
    # timer that ends it; its incidents held by that maintenance (opened during it, never paged) are
    # marked, so that the window's end escalates them.
    conn = op.get_bind()
    now = datetime.now(UTC).replace(tzinfo=None)
    services = sa.table('services', sa.column('id', sa.Integer), sa.column('maintenance_until', sa.DateTime))
    rows = conn.execute(
        sa.select(services.c.id, services.c.maintenance_until)
        .where(services.c.maintenance_until > now)
        .order_by(services.c.id)
    ).all()
    windows = sa.table(
        'maintenance_windows',
        sa.column('id', sa.Integer),
        sa.column('start', sa.DateTime),
        sa.column('end', sa.DateTime),
        sa.column('description', sa.String),
        sa.column('created_at', sa.DateTime),
    )
    timers = sa.table(
        'timers', sa.column('kind', sa.String), sa.column('ref_id', sa.Integer), sa.column('due_at', sa.DateTime)
    )
    for service_id, until in rows:
        window_id = conn.execute(
            windows.insert()
            .values(start=now, end=until, description=DESCRIPTION, created_at=now)
            .returning(windows.c.id)
        ).scalar_one()
        conn.execute(
            sa.text('INSERT INTO maintenance_window_services (service_id, window_id) VALUES (:s, :w)'),
            {'s': service_id, 'w': window_id},
        )
        conn.execute(timers.insert().values(kind='maintenance_end', ref_id=window_id, due_at=until))
        conn.execute(
            sa.text(
                "UPDATE incidents SET in_maintenance = true WHERE service_id = :s AND status = 'triggered'"
                " AND next_escalation_at IS NULL AND EXISTS (SELECT 1 FROM log_entries"
                " WHERE log_entries.incident_id = incidents.id AND log_entries.kind = 'maintenance')"
            ),
            {'s': service_id},
        )
    with op.batch_alter_table('services', schema=None) as batch_op:
        batch_op.drop_column('maintenance_until')


def downgrade():
    with op.batch_alter_table('services', schema=None) as batch_op:
        batch_op.add_column(sa.Column('maintenance_until', sa.DateTime(), nullable=True))
    now = datetime.now(UTC).replace(tzinfo=None)
    op.get_bind().execute(
        sa.text(
            'UPDATE services SET maintenance_until = (SELECT max(w."end") FROM maintenance_windows w'
            ' JOIN maintenance_window_services l ON l.window_id = w.id'
            ' WHERE l.service_id = services.id AND w.start <= :now AND w."end" > :now)'
        ),
        {'now': now},
    )
    op.execute("DELETE FROM timers WHERE kind IN ('maintenance_start', 'maintenance_end')")
    # SQLite drops a column in place (3.35+): rebuilding `incidents` would lose its search triggers.
    op.execute('ALTER TABLE incidents DROP COLUMN in_maintenance')
    op.drop_index('ix_maintenance_window_services_window_id', table_name='maintenance_window_services')
    op.drop_table('maintenance_window_services')
    op.drop_index('ix_maintenance_windows_end_start', table_name='maintenance_windows')
    op.drop_table('maintenance_windows')
