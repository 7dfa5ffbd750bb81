"""Configuration as code at a mid-sized install: import into an empty database, re-import, export.

The document: USERS people (an email and an SMS method, three rules each), a team per ten people,
SERVICES // 2 schedules of five and as many policies (two levels), SERVICES services (an Events v2
and a heartbeat integration, one event rule each). Measured on a temporary SQLite database, or on
BENCH_DATABASE_URL (its tables are dropped and made again: point it at a scratch database).
Run: `.venv/bin/python -m bench config_io` (USERS=300 SERVICES=100 by default).
"""

import json
import os
import tempfile
import time

from config import TestConfig
from openduty import config_export, config_import, create_app
from openduty.extensions import db

USERS = int(os.environ.get("USERS", "300"))
SERVICES = int(os.environ.get("SERVICES", "100"))


def _rotation(people: list[str]) -> dict:
    start = "2026-01-05T09:00:00"
    return {"kind": "rotation", "start": start, "shift_length": 1, "shift_unit": "weeks", "participants": people}


def document() -> dict:
    emails = [f"person{i}@example.com" for i in range(USERS)]
    schedules = max(1, SERVICES // 2)
    rules = {"high": [{"contact_method": 0}, {"contact_method": 1, "delay_minutes": 5}], "low": [{"contact_method": 0}]}
    beat = {"interval_seconds": 60, "grace_seconds": 0, "paused": False}
    test_alerts = {"field": "summary", "operator": "contains", "value": "test"}
    return {
        "format": config_export.FORMAT,
        "version": config_export.VERSION,
        "users": [
            {
                "email": email,
                "name": f"Person {i}",
                "contact_methods": [{"kind": "email", "address": email}, {"kind": "sms", "address": f"+3620{i:07d}"}],
                "notification_rules": rules,
            }
            for i, email in enumerate(emails)
        ],
        "teams": [
            {"name": f"Team {t}", "members": [{"user": email} for email in emails[t * 10 : t * 10 + 10]]}
            for t in range(USERS // 10)
        ],
        "schedules": [
            {"name": f"Schedule {s}", "layers": [_rotation([emails[(s * 5 + k) % USERS] for k in range(5)])]}
            for s in range(schedules)
        ],
        "escalation_policies": [
            {
                "name": f"Policy {p}",
                "levels": [
                    {"delay_minutes": 5, "targets": [{"schedule": f"Schedule {p}"}]},
                    {"delay_minutes": 10, "targets": [{"user": emails[p % USERS]}]},
                ],
            }
            for p in range(schedules)
        ],
        "services": [
            {
                "name": f"Service {s}",
                "escalation_policy": f"Policy {s % schedules}",
                "integrations": [{"kind": "events_v2", "name": "events"}, {"kind": "heartbeat", "heartbeat": beat}],
                "event_rules": [{"action": "suppress", "conditions": [test_alerts]}],
            }
            for s in range(SERVICES)
        ],
    }


def main() -> None:
    with tempfile.TemporaryDirectory() as folder:
        url = os.environ.get("BENCH_DATABASE_URL") or f"sqlite:///{folder}/bench.db"
        app = create_app(type("BenchConfig", (TestConfig,), {"SQLALCHEMY_DATABASE_URI": url}))
        given = document()
        with app.app_context():
            db.drop_all()
            db.create_all()
            for what in ("import into an empty database", "import again (no changes)"):
                started = time.perf_counter()
                changes = config_import.import_config(given)
                db.session.commit()
                print(f"{what}: {time.perf_counter() - started:.2f} s, {len(changes)} changes")
            started = time.perf_counter()
            text = json.dumps(config_export.export_config())
            db.session.rollback()
            print(f"export: {time.perf_counter() - started:.2f} s, {len(text)} bytes")
            db.drop_all()
            db.engine.dispose()


if __name__ == "__main__":
    main()
