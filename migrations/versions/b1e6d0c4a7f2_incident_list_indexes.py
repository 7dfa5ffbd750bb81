"""incidents: indexes for the lists' order under each filter, and search indexes (issue 11)

The lists read incidents newest first (created_at DESC, id DESC) under a filter; each filter gets
an index in that order, so a page reads one index and stops. Search gets the database's own text
index: trigram GIN indexes (pg_trgm) on PostgreSQL, which serve ILIKE '%text%'; on SQLite an FTS5
table with trigram tokens over the same columns, external content kept in step by triggers.

On SQLite the triggers live on `incidents`: a later migration that rebuilds that table (batch
"move and copy") must create them again.

The SQL is written out here (not imported from the models) so that this revision stays what it
was when the models change.

Revision ID: b1e6d0c4a7f2
Revises: e4b7c9d1a2f6
Create Date: 2026-12-01 22:30:00

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'b1e6d0c4a7f2'
down_revision = 'e4b7c9d1a2f6'
branch_labels = None
depends_on = None

OPEN = "status <> 'resolved'"
SEARCHED = ("summary", "dedup_key", "source")
COLUMNS = ", ".join(SEARCHED)
OLD = ", ".join(f"old.{c}" for c in SEARCHED)
NEW = ", ".join(f"new.{c}" for c in SEARCHED)
SQLITE_SEARCH = (
    f"CREATE VIRTUAL TABLE incidents_fts USING fts5({COLUMNS},"
    " content='incidents', content_rowid='id', tokenize='trigram')",
    "CREATE TRIGGER incidents_fts_insert AFTER INSERT ON incidents BEGIN"
    f" INSERT INTO incidents_fts(rowid, {COLUMNS}) VALUES (new.id, {NEW}); END",
    "CREATE TRIGGER incidents_fts_delete AFTER DELETE ON incidents BEGIN"
    f" INSERT INTO incidents_fts(incidents_fts, rowid, {COLUMNS}) VALUES ('delete', old.id, {OLD}); END",
    f"CREATE TRIGGER incidents_fts_update AFTER UPDATE OF {COLUMNS} ON incidents BEGIN"
    f" INSERT INTO incidents_fts(incidents_fts, rowid, {COLUMNS}) VALUES ('delete', old.id, {OLD});"
    f" INSERT INTO incidents_fts(rowid, {COLUMNS}) VALUES (new.id, {NEW}); END",
    # Index the incidents already there.
    "INSERT INTO incidents_fts(incidents_fts) VALUES ('rebuild')",
)


def upgrade():
    with op.batch_alter_table('incidents', schema=None) as batch_op:
        batch_op.drop_index('ix_incidents_status_created')
        batch_op.drop_index('ix_incidents_service_id')
        batch_op.create_index('ix_incidents_created', ['created_at', 'id'], unique=False)
        batch_op.create_index(
            'ix_incidents_open_created',
            ['created_at', 'id'],
            unique=False,
            sqlite_where=sa.text(OPEN),
            postgresql_where=sa.text(OPEN),
        )
        batch_op.create_index('ix_incidents_status_created', ['status', 'created_at', 'id'], unique=False)
        batch_op.create_index('ix_incidents_service_created', ['service_id', 'created_at', 'id'], unique=False)
        batch_op.create_index('ix_incidents_assigned_created', ['assigned_to_id', 'created_at', 'id'], unique=False)
    if op.get_bind().dialect.name == "postgresql":
        op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
        # The operator class is named with the extension's schema: it may sit outside search_path.
        schema = op.get_bind().execute(
            sa.text("SELECT extnamespace::regnamespace::text FROM pg_extension WHERE extname = 'pg_trgm'")
        ).scalar_one()
        for column in SEARCHED:
            op.execute(f"CREATE INDEX ix_incidents_{column}_trgm ON incidents USING gin ({column} {schema}.gin_trgm_ops)")
    elif op.get_bind().dialect.name == "sqlite":
        for statement in SQLITE_SEARCH:
            op.execute(statement)


def downgrade():
    if op.get_bind().dialect.name == "postgresql":
        for column in SEARCHED:
            op.drop_index(f"ix_incidents_{column}_trgm", table_name="incidents")
    elif op.get_bind().dialect.name == "sqlite":
        for trigger in ("insert", "delete", "update"):
            op.execute(f"DROP TRIGGER IF EXISTS incidents_fts_{trigger}")
        op.execute("DROP TABLE IF EXISTS incidents_fts")
    with op.batch_alter_table('incidents', schema=None) as batch_op:
        batch_op.drop_index('ix_incidents_assigned_created')
        batch_op.drop_index('ix_incidents_service_created')
        batch_op.drop_index('ix_incidents_status_created')
        batch_op.drop_index('ix_incidents_open_created')
        batch_op.drop_index('ix_incidents_created')
        batch_op.create_index('ix_incidents_service_id', ['service_id'], unique=False)
        batch_op.create_index('ix_incidents_status_created', ['status', 'created_at'], unique=False)
