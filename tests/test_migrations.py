"""The migrations build the same schema as the models, on SQLite and on PostgreSQL."""

import os

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from flask_migrate import upgrade
from sqlalchemy import create_engine, text

from config import TestConfig, database_url
from openduty import create_app, incident_lists
from openduty.extensions import db
from openduty.models import Incident
from openduty.models.incident import TRIGRAM_INDEXES, migration_filter


def _fresh_database_uri(tmp_path) -> str:
    url = database_url(os.environ.get("DATABASE_URL"))
    if not url:
        return f"sqlite:///{tmp_path / 'migrations.db'}"
    # A separate PostgreSQL schema so the suite's tables are untouched.
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text("DROP SCHEMA IF EXISTS migrations_check CASCADE"))
        conn.execute(text("CREATE SCHEMA migrations_check"))
    engine.dispose()
    sep = "&" if "?" in url else "?"
    return f"{url}{sep}options=-csearch_path%3Dmigrations_check"


def test_upgrade_builds_the_models_schema(tmp_path):
    uri = _fresh_database_uri(tmp_path)
    config = type("MigrationConfig", (TestConfig,), {"SQLALCHEMY_DATABASE_URI": uri})
    app = create_app(config)
    with app.app_context():
        upgrade()
        with db.engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"include_object": migration_filter(conn.dialect.name)})
            diff = compare_metadata(context, db.metadata)
        db.engine.dispose()
    assert diff == [], f"models and migrations differ; run `flask db migrate`: {diff}"


def test_upgrade_gives_every_user_a_calendar_token(tmp_path):
    """Tokens used to be made while a page rendered; older users get theirs from the migration."""
    uri = _fresh_database_uri(tmp_path)
    config = type("MigrationConfig", (TestConfig,), {"SQLALCHEMY_DATABASE_URI": uri})
    app = create_app(config)
    with app.app_context():
        upgrade(revision="d9a4f6b2c1e7")
        with db.engine.begin() as conn:
            for n, token in enumerate((None, None, "kept")):
                conn.execute(
                    text(
                        "INSERT INTO users (email, name, time_zone, is_admin, active, auth_source, calendar_token,"
                        " session_generation, created_at) VALUES (:email, 'U', 'UTC', false, true, 'local', :token,"
                        " 0, CURRENT_TIMESTAMP)"
                    ),
                    {"email": f"u{n}@example.com", "token": token},
                )
        upgrade()
        with db.engine.connect() as conn:
            tokens = conn.execute(text("SELECT calendar_token FROM users ORDER BY email")).scalars().all()
        db.engine.dispose()
    assert tokens[2] == "kept" and all(len(t) >= 32 for t in tokens[:2]) and tokens[0] != tokens[1]


def test_no_row_is_lost_by_an_upgrade(tmp_path):
    """Rows written at the first revision are all there at the head. On SQLite a batch migration
    rebuilds a table (copy, DROP, rename); with foreign keys on, dropping `users` once deleted every
    contact method, rule and token that referenced it (ON DELETE CASCADE)."""
    uri = _fresh_database_uri(tmp_path)
    config = type("MigrationConfig", (TestConfig,), {"SQLALCHEMY_DATABASE_URI": uri})
    app = create_app(config)
    now = {"now": "2026-03-01 09:00:00"}
    with app.app_context():
        upgrade(revision="f3c43eeac191")
        with db.engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO users (id, email, name, time_zone, is_admin, active, auth_source, created_at)"
                    " VALUES (1, 'o@example.com', 'O', 'UTC', false, true, 'local', :now)"
                ),
                now,
            )
            conn.execute(
                text(
                    "INSERT INTO contact_methods (id, user_id, kind, address, label, created_at)"
                    " VALUES (1, 1, 'email', 'o@example.com', '', :now)"
                ),
                now,
            )
            conn.execute(
                text("INSERT INTO notification_rules (user_id, contact_method_id, delay_minutes) VALUES (1, 1, 0)")
            )
            conn.execute(
                text(
                    "INSERT INTO api_tokens (user_id, name, token_hash, prefix, created_at)"
                    " VALUES (1, 't', :hash, 'od_x', :now)"
                ),
                {"hash": "a" * 64, **now},
            )
            conn.execute(
                text(
                    "INSERT INTO services (id, name, description, disabled, created_at)"
                    " VALUES (1, 'S', '', false, :now)"
                ),
                now,
            )
        upgrade()
        with db.engine.connect() as conn:
            counts = {
                table: conn.execute(text(f"SELECT count(*) FROM {table}")).scalar()
                for table in ("users", "contact_methods", "notification_rules", "api_tokens", "services")
            }
            foreign_keys = conn.execute(text("PRAGMA foreign_keys")).scalar() if conn.dialect.name == "sqlite" else 1
        db.engine.dispose()
    assert counts == {"users": 1, "contact_methods": 1, "notification_rules": 1, "api_tokens": 1, "services": 1}
    assert foreign_keys == 1, "the migration's connection went back to the pool with foreign keys off"


def test_upgrade_indexes_earlier_incidents_for_search(tmp_path):
    """Incidents from before the search indexes are found after the upgrade, and keep being found
    as they change (SQLite's FTS table is filled, then kept in step by its triggers)."""
    uri = _fresh_database_uri(tmp_path)
    config = type("MigrationConfig", (TestConfig,), {"SQLALCHEMY_DATABASE_URI": uri})
    app = create_app(config)
    with app.app_context():
        upgrade(revision="e4b7c9d1a2f6")
        # The services table as it was then (the model has grown columns since).
        service_id = db.session.execute(
            text(
                "INSERT INTO services (name, description, disabled, created_at)"
                " VALUES ('Databases', '', false, CURRENT_TIMESTAMP) RETURNING id"
            )
        ).scalar_one()
        # And the incidents table as it was then.
        db.session.execute(
            text(
                "INSERT INTO incidents (number, service_id, dedup_key, status, summary, severity, source, details,"
                " alert_count, created_at, last_event_at, epoch, escalation_level, escalation_loop) VALUES"
                " (1, :service, 'lag-1', 'triggered', 'Replication lag', 'critical', '', '{}', 1,"
                " CURRENT_TIMESTAMP, CURRENT_TIMESTAMP, 0, 0, 0)"
            ),
            {"service": service_id},
        )
        db.session.commit()
        upgrade()

        def found(q: str) -> list[int | None]:
            return [i.number for i in incident_lists.page_of(incident_lists.Filters(status="all", q=q)).incidents]

        assert found("replication") == [1]
        db.session.add(Incident(service_id=service_id, number=2, dedup_key="disk-2", summary="Disk full"))
        db.session.execute(text("UPDATE incidents SET summary = 'Replica down' WHERE number = 1"))
        db.session.commit()
        assert (found("disk full"), found("replica down"), found("replication")) == ([2], [1], [])
        if db.engine.dialect.name == "postgresql":
            names = db.session.scalars(text("SELECT indexname FROM pg_indexes WHERE tablename = 'incidents'")).all()
            assert set(TRIGRAM_INDEXES.values()) <= set(names)
        db.session.remove()
        db.engine.dispose()


def test_upgrade_keeps_existing_services_and_rules_paging_at_high_urgency(tmp_path):
    """Services from before urgency keep paging as they did (high), their rules become high-urgency
    rules and their incidents high; services made afterwards start at by_severity."""
    uri = _fresh_database_uri(tmp_path)
    config = type("MigrationConfig", (TestConfig,), {"SQLALCHEMY_DATABASE_URI": uri})
    app = create_app(config)
    now = {"now": "2026-03-01 09:00:00"}
    with app.app_context():
        upgrade(revision="d4f1a8c2e6b9")
        with db.engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO users (id, email, name, time_zone, is_admin, active, auth_source,"
                    " session_generation, observer, created_at)"
                    " VALUES (1, 'o@example.com', 'O', 'UTC', false, true, 'local', 0, false, :now)"
                ),
                now,
            )
            conn.execute(
                text(
                    "INSERT INTO contact_methods (id, user_id, kind, address, label, created_at)"
                    " VALUES (1, 1, 'sms', '+14155550100', '', :now)"
                ),
                now,
            )
            conn.execute(
                text("INSERT INTO notification_rules (user_id, contact_method_id, delay_minutes) VALUES (1, 1, 0)")
            )
            conn.execute(
                text(
                    "INSERT INTO services (id, name, description, disabled, created_at)"
                    " VALUES (1, 'S', '', false, :now)"
                ),
                now,
            )
            conn.execute(
                text(
                    "INSERT INTO incidents (number, service_id, dedup_key, status, summary, severity, source, details,"
                    " alert_count, created_at, last_event_at, epoch, escalation_level, escalation_loop)"
                    " VALUES (1, 1, 'k', 'triggered', 'Disk', 'info', '', '{}', 1, :now, :now, 0, 0, 0)"
                ),
                now,
            )
        upgrade()
        with db.engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO services (id, name, description, disabled, created_at)"
                    " VALUES (2, 'T', '', false, :now)"
                ),
                now,
            )
            found = [
                conn.execute(text(sql)).scalars().all()
                for sql in (
                    "SELECT urgency FROM services ORDER BY id",
                    "SELECT urgency FROM notification_rules",
                    "SELECT urgency FROM incidents",
                )
            ]
        db.engine.dispose()
    assert found == [["high", "by_severity"], ["high"], ["high"]]
