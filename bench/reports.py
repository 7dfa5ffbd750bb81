"""Reports at 100k incidents (issue 16: each report page under 200 ms).

Data: 100,000 incidents spread over the year before NOW on 8 services in 2 teams, 90% acknowledged
(seconds to an hour), 80% resolved (minutes to a day), 1-3 pages sent each (about 200,000 pages),
one in ten beyond level 1; 30 people in 4 time zones; 4 schedules (weekly and daily rotations with
overrides) that the policies page. Loaded with bulk INSERTs.

Each figure is the median of RUNS requests through the app (Flask test client, an admin's session
or API token) after one warm-up. Run: `make bench BENCH_ARGS=reports` (SQLite in a temporary
folder; DATABASE_URL=postgresql://... for PostgreSQL; INCIDENTS=100000 and RUNS=9 by default).
"""

import os
import random
import tempfile
import time
from datetime import UTC, datetime, timedelta

from bench.oncall import _app
from bench.scale import RUNS, _cpu_median, _get, _median

INCIDENTS = int(os.environ.get("INCIDENTS", "100000"))
NOW = datetime(2026, 11, 30, 12, tzinfo=UTC)
ZONES = ("Europe/Budapest", "America/Los_Angeles", "Asia/Kolkata", "UTC")
LIMIT_MS = 200


def _people_and_services(rng: random.Random):
    from openduty.extensions import db
    from openduty.models import (
        EscalationLevel,
        EscalationPolicy,
        EscalationTarget,
        LayerParticipant,
        Schedule,
        ScheduleLayer,
        ScheduleOverride,
        Service,
        Team,
        User,
    )

    admin = User(email="admin@example.com", name="Admin", is_admin=True)
    admin.set_password("bench-password")
    users = [User(email=f"u{i}@example.com", name=f"User {i:02}", time_zone=ZONES[i % 4]) for i in range(30)]
    teams = [Team(name="Platform", description=""), Team(name="Payments", description="")]
    db.session.add_all([admin, *users, *teams])
    db.session.flush()
    services = []
    for n in range(4):
        team = teams[n % 2]
        schedule = Schedule(name=f"Rota {n}", time_zone=ZONES[n], team_id=team.id)
        people = rng.sample(users, 8)
        schedule.layers.append(
            ScheduleLayer(position=0, name="Weekly", start=datetime(2025, 6, 2, 9), shift_length=1, shift_unit="weeks",
                          participants=[LayerParticipant(position=i, user_id=u.id) for i, u in enumerate(people)])
        )  # fmt: skip
        schedule.layers.append(
            ScheduleLayer(position=1, name="Daily", start=datetime(2025, 6, 2, 9), shift_length=1, shift_unit="days",
                          restrictions=[{"days": ["sat", "sun"], "start": "00:00", "end": "24:00"}],
                          participants=[LayerParticipant(position=i, user_id=u.id) for i, u in enumerate(people[:4])])
        )  # fmt: skip
        for _ in range(100):
            start = NOW - timedelta(minutes=rng.randrange(0, 365 * 24 * 60))
            schedule.overrides.append(
                ScheduleOverride(user_id=rng.choice(users).id, start=start, end=start + timedelta(hours=8))
            )
        policy = EscalationPolicy(name=f"Policy {n}", description="", team_id=team.id)
        first = EscalationLevel(position=0, delay_minutes=10)
        first.targets.append(EscalationTarget(target_type="schedule", schedule=schedule))
        second = EscalationLevel(position=1, delay_minutes=10)
        second.targets.append(EscalationTarget(target_type="user", user_id=users[n].id))
        policy.levels.extend([first, second])
        db.session.add_all([schedule, policy])
        for k in range(2):
            services.append(Service(name=f"Service {n}{k}", escalation_policy=policy, team_id=team.id))
    db.session.add_all(services)
    db.session.commit()
    return admin, users, teams, services


def _load(services, users, rng: random.Random) -> None:
    from sqlalchemy import insert, select

    from openduty.extensions import db
    from openduty.models import Incident, Notification

    incidents, pages = [], []
    for n in range(1, INCIDENTS + 1):
        created = NOW - timedelta(seconds=rng.randrange(0, 365 * 86400))
        acked = created + timedelta(seconds=rng.randrange(5, 3600)) if rng.random() < 0.9 else None
        resolved = created + timedelta(seconds=rng.randrange(120, 86400)) if rng.random() < 0.8 else None
        if acked and resolved and resolved < acked:
            resolved = acked + timedelta(seconds=60)
        status = "resolved" if resolved else "acknowledged" if acked else "triggered"
        incidents.append(
            {"number": n, "service_id": rng.choice(services).id, "dedup_key": f"key-{n}", "status": status,
             "summary": "Disk almost full", "severity": "critical", "source": "host", "details": {},
             "alert_count": 1, "created_at": created, "last_event_at": created, "acknowledged_at": acked,
             "resolved_at": resolved, "epoch": 0, "escalation_level": 1, "escalation_loop": 0}
        )  # fmt: skip
    for i in range(0, len(incidents), 5000):
        db.session.execute(insert(Incident), incidents[i : i + 5000])
    ids = db.session.execute(select(Incident.id, Incident.created_at)).all()
    for incident_id, created in ids:
        for k in range(rng.randrange(1, 4)):
            sent = created + timedelta(minutes=10 * k, seconds=rng.randrange(0, 30))
            user = rng.choice(users)
            pages.append(
                {"incident_id": incident_id, "user_id": user.id, "kind": "email", "address": user.email,
                 "purpose": "page", "level": 2 if k and rng.random() < 0.15 else 1, "loop": 0, "status": "sent",
                 "send_at": sent, "sent_at": sent, "attempts": 1, "unconfirmed": 0, "created_at": sent}
            )  # fmt: skip
    for i in range(0, len(pages), 5000):
        db.session.execute(insert(Notification), pages[i : i + 5000])
    db.session.commit()
    if db.engine.dialect.name == "postgresql":
        with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("VACUUM ANALYZE incidents")
            conn.exec_driver_sql("VACUUM ANALYZE notifications")
    else:
        db.session.execute(db.text("ANALYZE"))
        db.session.commit()
    print(f"  {len(incidents):,} incidents, {len(pages):,} pages")


def main() -> None:
    import time_machine

    from openduty.extensions import db
    from openduty.models import ApiToken

    rng = random.Random(16)
    with tempfile.TemporaryDirectory() as instance, time_machine.travel(NOW, tick=True):
        app = _app(instance)
        app.config.update(WTF_CSRF_ENABLED=False, RATELIMIT_ENABLED=False)
        with app.app_context():
            db.drop_all()
            db.create_all()
            t0 = time.perf_counter()
            admin, users, teams, services = _people_and_services(rng)
            _load(services, users, rng)
            print(f"database: {db.engine.dialect.name}; loaded in {time.perf_counter() - t0:.1f} s")
            _, token = ApiToken.issue(admin, "bench")
            db.session.commit()
            team, service = teams[0].id, services[0].id
        client = app.test_client()
        answer = client.post("/login", data={"email": "admin@example.com", "password": "bench-password"})
        assert answer.status_code in (302, 303), answer.status_code
        api = {"Authorization": f"Token {token}"}
        pages = {
            "page incidents, 8 wk": "/reports",
            "page incidents, 6 mo": "/reports?period=month",
            "page incidents, team": f"/reports?period=month&team_id={team}",
            "page incidents, svc": f"/reports?service_id={service}",
            "page pages, 8 wk": "/reports/pages",
            "page pages, 6 mo": "/reports/pages?period=month",
            "page on-call, 8 wk": "/reports/oncall",
            "page on-call, 6 mo": "/reports/oncall?period=month",
            "incidents, 12 mo": "/reports?period=month&since=2025-12-01&until=2026-11-30",
            "CSV incidents, 6 mo": "/reports/incidents.csv?period=month",
            "CSV pages, 6 mo": "/reports/pages.csv?period=month",
        }
        calls = {
            "API incidents, 6 mo": "/api/v1/reports/incidents?period=month",
            "API pages, 6 mo": "/api/v1/reports/pages?period=month",
            "API on-call, 6 mo": "/api/v1/reports/oncall?period=month",
        }
        print(f"medians of {RUNS} requests after a warm-up (wall ms, CPU ms of the request's thread, size)")
        slow = []
        for name, path in [*pages.items(), *calls.items()]:
            headers = api if path.startswith("/api/") else {}
            wall, size = _median(lambda p=path, h=headers: _get(client, p, h))
            cpu, _ = _cpu_median(lambda p=path, h=headers: _get(client, p, h))
            print(f"  {name:<22}{wall:>9.1f} ms{cpu:>9.1f} ms{size / 1024:>7.0f} KB")
            if name.startswith("page") and cpu >= LIMIT_MS:
                slow.append(name)
        print(f"report pages under {LIMIT_MS} ms of CPU: {'yes' if not slow else 'NO: ' + ', '.join(slow)}")
