"""On-call engine: who is on call, a year of final shifts, a year-long iCal feed, GET /api/v1/oncalls.

The schedule: Europe/Budapest, 3 layers x 10 participants (weekly 24/7; daily, weekdays 09:00-17:00
only; 12-hour, weekends only) and 200 overrides spread over the year. /oncalls: 100 policies x 3
levels, each level targeting one of 10 such schedules plus one user.

Targets (medians): who_is_on_call < 2 ms, a year of shifts < 50 ms, the year-long feed < 100 ms,
GET /api/v1/oncalls < 100 ms. Compiled schedules are cached per revision; the first (cold) call
after a change is reported separately.

Run: `.venv/bin/python -m bench oncall` (SQLite in a temporary folder; DATABASE_URL to use
PostgreSQL; RUNS=15 by default).
"""

import os
import random
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RUNS = int(os.environ.get("RUNS", "15"))
START = datetime(2026, 1, 1, tzinfo=UTC)


def _app(instance: str):
    sys.path.insert(0, ROOT)
    os.environ["OPENDUTY_INSTANCE"] = instance
    from config import Config, database_url
    from openduty import create_app

    uri = database_url(os.environ.get("DATABASE_URL")) or f"sqlite:///{instance}/bench.db"
    config = type("BenchConfig", (Config,), {"SQLALCHEMY_DATABASE_URI": uri, "SECRET_KEY": "bench", "REDIS_URL": None})
    return create_app(config)


def _schedule(name: str, users: list, rng: random.Random):
    from openduty import schedules
    from openduty.extensions import db
    from openduty.models import LayerParticipant, Schedule, ScheduleLayer, ScheduleOverride

    schedule = Schedule(name=name, time_zone="Europe/Budapest")
    office = [{"days": ["mon", "tue", "wed", "thu", "fri"], "start": "09:00", "end": "17:00"}]
    weekend = [{"days": ["sat", "sun"], "start": "00:00", "end": "24:00"}]
    layers = [
        (datetime(2025, 12, 29, 9), 1, "weeks", []),
        (datetime(2025, 12, 29, 9), 1, "days", office),
        (datetime(2025, 12, 27, 8), 12, "hours", weekend),
    ]
    for position, (start, length, unit, restrictions) in enumerate(layers):
        people = rng.sample(users, 10)
        schedule.layers.append(
            ScheduleLayer(
                position=position,
                name=f"Layer {position + 1}",
                start=start,
                shift_length=length,
                shift_unit=unit,
                restrictions=schedules.parse_restrictions(restrictions),
                participants=[LayerParticipant(position=i, user_id=u.id) for i, u in enumerate(people)],
            )
        )
    for _ in range(200):
        start = START + timedelta(minutes=rng.randrange(0, 365 * 24 * 60))
        schedule.overrides.append(
            ScheduleOverride(
                user_id=rng.choice(users).id, start=start, end=start + timedelta(hours=rng.randrange(1, 48))
            )
        )
    db.session.add(schedule)
    return schedule


def _median_ms(fn, runs: int = RUNS) -> float:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


def _report(label: str, value: float, target: float) -> None:
    verdict = "ok" if value < target else "OVER TARGET"
    print(f"{label:<44} {value:9.3f} ms  (target < {target:g} ms) {verdict}", flush=True)


def main() -> None:
    with tempfile.TemporaryDirectory() as instance:
        app = _app(instance)
        with app.app_context():
            _run(app)


def _run(app) -> None:
    from sqlalchemy import text

    from openduty import ical, oncall
    from openduty.extensions import db
    from openduty.models import ApiToken, EscalationLevel, EscalationPolicy, EscalationTarget, User

    db.drop_all()
    db.session.execute(text("DROP TABLE IF EXISTS alembic_version"))
    db.session.commit()
    db.create_all()
    rng = random.Random(42)
    users = [User(email=f"user{i}@example.com", name=f"User {i}") for i in range(40)]
    db.session.add_all(users)
    db.session.flush()
    schedules = [_schedule(f"Schedule {i}", users, rng) for i in range(10)]
    db.session.flush()
    for p in range(100):
        levels = []
        for n in range(3):
            targets = [
                EscalationTarget(target_type="schedule", schedule_id=schedules[(p + n) % 10].id),
                EscalationTarget(target_type="user", user_id=users[(p + n) % 40].id),
            ]
            levels.append(EscalationLevel(position=n, targets=targets))
        db.session.add(EscalationPolicy(name=f"Policy {p}", levels=levels))
    admin = User(email="admin@example.com", name="Admin", is_admin=True)
    db.session.add(admin)
    _, secret = ApiToken.issue(admin, "bench")
    db.session.commit()

    schedule = schedules[0]
    year_end = START + timedelta(days=365)
    print(f"schedule: 3 layers x 10 participants, restrictions, 200 overrides; runs={RUNS}; {db.engine.dialect.name}")

    t0 = time.perf_counter()
    oncall.who_is_on_call(schedule, START)
    print(f"{'compile (cold, first call after a change)':<44} {(time.perf_counter() - t0) * 1000:9.3f} ms")

    moments = [START + timedelta(seconds=rng.randrange(0, 365 * 86400)) for _ in range(2000)]
    per_call = []
    for at in moments:
        t0 = time.perf_counter()
        oncall.who_is_on_call(schedule, at)
        per_call.append((time.perf_counter() - t0) * 1000)
    _report("who_is_on_call (median of 2000 moments)", statistics.median(per_call), 2)
    print(f"{'who_is_on_call p99':<44} {sorted(per_call)[int(len(per_call) * 0.99)]:9.3f} ms")

    found = oncall.shifts(schedule, START, year_end)
    _report(
        f"a year of final shifts ({len(found)} shifts)",
        _median_ms(lambda: oncall.shifts(schedule, START, year_end)),
        50,
    )

    feed = ical.schedule_feed(schedule, START, year_end)
    events = feed.count("BEGIN:VEVENT")
    _report(
        f"year-long iCal feed ({events} events)",
        _median_ms(lambda: ical.schedule_feed(schedule, START, year_end)),
        100,
    )

    client = app.test_client()
    headers = {"Authorization": f"Token {secret}"}
    response = client.get("/api/v1/oncalls", headers=headers)
    assert response.status_code == 200, response.get_data(as_text=True)
    entries = len(response.json["oncalls"])
    _report(
        f"GET /api/v1/oncalls (100 x 3 levels, {entries} rows)",
        _median_ms(lambda: client.get("/api/v1/oncalls", headers=headers)),
        100,
    )
    db.session.remove()


if __name__ == "__main__":
    main()
