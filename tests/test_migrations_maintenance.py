"""The maintenance-windows migration moves each service's `maintenance_until` into a window (with the
timer that ends it), marks the incidents that maintenance held, and drops the column; on SQLite and
PostgreSQL."""

from datetime import UTC, datetime, timedelta

from flask_migrate import downgrade, upgrade
from sqlalchemy import inspect, text

from config import TestConfig
from openduty import create_app
from openduty.extensions import db
from tests.test_migrations import _fresh_database_uri

BEFORE = "a7e3c1d9b4f2"


def _insert_service(name: str, until: datetime | None) -> int:
    return db.session.execute(
        text(
            "INSERT INTO services (name, description, disabled, created_at, maintenance_until)"
            " VALUES (:name, '', false, CURRENT_TIMESTAMP, :until) RETURNING id"
        ),
        {"name": name, "until": until},
    ).scalar_one()


def _insert_incident(service_id: int, number: int, logged: str) -> int:
    incident_id = db.session.execute(
        text(
            "INSERT INTO incidents (number, service_id, dedup_key, status, summary, severity, source, details,"
            " alert_count, created_at, last_event_at, epoch, escalation_level, escalation_loop) VALUES"
            " (:number, :service, :key, 'triggered', 'Down', 'critical', '', '{}', 1,"
            " CURRENT_TIMESTAMP, CURRENT_TIMESTAMP, 0, 0, 0) RETURNING id"
        ),
        {"number": number, "service": service_id, "key": f"k{number}"},
    ).scalar_one()
    db.session.execute(
        text(
            "INSERT INTO log_entries (incident_id, at, kind, message, channel, data)"
            " VALUES (:incident, CURRENT_TIMESTAMP, :kind, '', 'system', '{}')"
        ),
        {"incident": incident_id, "kind": logged},
    )
    return incident_id


def _naive(value) -> datetime | None:
    """A timestamp read by raw SQL (SQLite gives text), as naive UTC."""
    if value is None:
        return None
    return (datetime.fromisoformat(value) if isinstance(value, str) else value).replace(tzinfo=None)


def test_maintenance_until_moves_into_a_window(tmp_path):
    uri = _fresh_database_uri(tmp_path)
    config = type("MigrationConfig", (TestConfig,), {"SQLALCHEMY_DATABASE_URI": uri})
    app = create_app(config)
    until = (datetime.now(UTC) + timedelta(days=1)).replace(microsecond=0, tzinfo=None)
    with app.app_context():
        upgrade(revision=BEFORE)
        resting = _insert_service("Resting", until)
        _insert_service("Was resting", datetime(2020, 1, 1))
        _insert_service("Working", None)
        held = _insert_incident(resting, 1, "maintenance")
        paged = _insert_incident(resting, 2, "escalation_exhausted")
        db.session.commit()
        upgrade()
        windows = db.session.execute(
            text(
                'SELECT w.id, w."end", l.service_id FROM maintenance_windows w JOIN maintenance_window_services l'
                " ON l.window_id = w.id"
            )  # fmt: skip
        ).all()
        timers = db.session.execute(text("SELECT kind, ref_id, due_at FROM timers")).all()
        marked = dict(db.session.execute(text("SELECT id, in_maintenance FROM incidents")).all())
        columns = {c["name"] for c in inspect(db.engine).get_columns("services")}
        db.session.commit()
        downgrade(revision=BEFORE)
        restored = db.session.execute(text("SELECT name, maintenance_until FROM services ORDER BY name")).all()
        db.session.remove()
        db.engine.dispose()
    [(window_id, end, service_id)] = windows
    assert (_naive(end), service_id) == (until, resting)
    assert [(kind, ref, _naive(due)) for kind, ref, due in timers] == [("maintenance_end", window_id, until)]
    assert bool(marked[held]) and not bool(marked[paged])
    assert "maintenance_until" not in columns
    assert [(name, _naive(value)) for name, value in restored] == [
        ("Resting", until),
        ("Was resting", None),
        ("Working", None),
    ]
