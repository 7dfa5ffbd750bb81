"""A year of data: incident lists at 1k / 10k / 100k incidents, schedule pages with many overrides, and
the incident page with a long timeline (issue 11's figures, side by side).

Data: incidents spread over a year, 20% open, summaries like "Disk almost full on db17"; a schedule
with 3 weekly layers x 10 people and 100 / 500 / 1,000 overrides in the shown month's neighbourhood;
one incident with 1,000 timeline entries. Data is loaded with bulk INSERTs (seconds, not minutes).

Each figure is the median of RUNS requests through the app (Flask test client, an admin's session or
API token), after one warm-up request. Run: `make bench BENCH_ARGS=scale` (SQLite in a temporary
folder; DATABASE_URL=postgresql://... for PostgreSQL; SIZES=1000,10000,100000 and RUNS=9 by default).
"""

import os
import random
import re
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta

from bench.oncall import _app

RUNS = int(os.environ.get("RUNS", "9"))
SIZES = [int(n) for n in os.environ.get("SIZES", "1000,10000,100000").split(",")]
OVERRIDES = (100, 500, 1000)
TIMELINE = 1000
NOW = datetime(2026, 11, 30, 12, tzinfo=UTC)
HTMX = {"HX-Request": "true"}
WORDS = ("Disk almost full", "CPU high", "Replication lag", "Certificate expires", "Queue backed up", "5xx rate")


def _median(fn, clock=time.perf_counter) -> tuple[float, int]:
    """Median milliseconds of RUNS calls after a warm-up, and the size of the last answer in bytes."""
    size = len(fn())
    times = []
    for _ in range(RUNS):
        t0 = clock()
        size = len(fn())
        times.append((clock() - t0) * 1000)
    return statistics.median(times), size


def _cpu_median(fn) -> tuple[float, int]:
    """As _median, in CPU time of this thread (the test client runs the app in it): on a machine
    shared with other work, the part of the wall time that is the request's own."""
    return _median(fn, time.thread_time)


def _get(client, path: str, headers: dict | None = None) -> bytes:
    answer = client.get(path, headers=headers or {})
    assert answer.status_code in (200, 204), (path, answer.status_code, answer.get_data(as_text=True)[:300])
    return answer.get_data()


def _add_incidents(service_id: int, first: int, count: int, rng: random.Random) -> None:
    """Insert incidents first+1 .. first+count, oldest first, spread over the year before NOW."""
    from sqlalchemy import insert

    from openduty.extensions import db
    from openduty.models import Incident

    rows = []
    for n in range(first + 1, first + count + 1):
        created = NOW - timedelta(seconds=rng.randrange(0, 365 * 86400))
        status = "triggered" if rng.random() < 0.2 else "resolved"
        rows.append(
            {
                "number": n,
                "service_id": service_id,
                "dedup_key": f"key-{n}",
                "status": status,
                "summary": f"{rng.choice(WORDS)} on db{n % 97}",
                "severity": "critical",
                "source": f"host{n % 13}.example.org",
                "details": {},
                "alert_count": 1,
                "created_at": created,
                "last_event_at": created,
                "resolved_at": created + timedelta(minutes=30) if status == "resolved" else None,
                "epoch": 0,
                "escalation_level": 0,
                "escalation_loop": 0,
            }
        )
    for i in range(0, len(rows), 5000):
        db.session.execute(insert(Incident), rows[i : i + 5000])
    db.session.commit()
    if db.engine.dialect.name == "postgresql":
        # What autovacuum does soon after a load like this (statistics, GIN pending lists merged);
        # the bench's server may run without it.
        with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("VACUUM ANALYZE incidents")


def _deep_cursor(depth: int) -> str:
    """The cursor after the depth-th incident of the whole list (or after the oldest, if fewer)."""
    from openduty import incident_lists
    from openduty.extensions import db
    from openduty.models import Incident

    query = db.select(Incident).order_by(Incident.created_at.desc(), Incident.id.desc())
    incident = db.session.scalar(query.offset(depth - 1).limit(1)) or db.session.scalar(
        query.order_by(None).order_by(Incident.created_at, Incident.id).limit(1)
    )
    return incident_lists.Cursor.after(incident).encode()


def _lists(client, token: str) -> dict[str, tuple[float, int]]:
    api = {"Authorization": f"Token {token}"}
    htmx = {"HX-Request": "true"}
    deep = _deep_cursor(200 * 25)  # where page 200 starts, as `next` links would get there
    return {
        "API open": _median(lambda: _get(client, "/api/v1/incidents", api)),
        "API status=all": _median(lambda: _get(client, "/api/v1/incidents?status=all", api)),
        "API page=200": _median(lambda: _get(client, "/api/v1/incidents?status=all&page=200", api)),
        "API cursor@200": _median(lambda: _get(client, f"/api/v1/incidents?status=all&cursor={deep}", api)),
        "API q=db17": _median(lambda: _get(client, "/api/v1/incidents?status=all&q=db17", api)),
        "API q=rare": _median(lambda: _get(client, "/api/v1/incidents?status=all&q=key-4242", api)),
        "API q=Disk": _median(lambda: _get(client, "/api/v1/incidents?status=all&q=Disk", api)),
        "console": _median(lambda: _get(client, "/incidents")),
        "console poll": _median(lambda: _get(client, "/incidents", htmx)),
        "console older": _median(lambda: _get(client, f"/incidents?status=all&cursor={deep}", htmx)),
        "console q=db17": _median(lambda: _get(client, "/incidents?status=all&q=db17", htmx)),
        "nav count": _median(lambda: _get(client, "/incidents/count", htmx)),
    }


def _schedule(users: list, rng: random.Random):
    from openduty.extensions import db
    from openduty.models import LayerParticipant, Schedule, ScheduleLayer

    schedule = Schedule(name="Scale", time_zone="Europe/Budapest")
    for position in range(3):
        people = rng.sample(users, 10)
        schedule.layers.append(
            ScheduleLayer(
                position=position,
                name=f"Layer {position + 1}",
                start=datetime(2025, 12, 29, 9),
                shift_length=1,
                shift_unit="weeks",
                participants=[LayerParticipant(position=i, user_id=u.id) for i, u in enumerate(people)],
            )
        )
    db.session.add(schedule)
    db.session.commit()
    return schedule


def _add_overrides(schedule_id: int, users: list, count: int, rng: random.Random) -> None:
    """Overrides inside the shown month (November 2026) and its neighbours, as a busy team would have."""
    from openduty.extensions import db
    from openduty.models import ScheduleOverride

    for _ in range(count):
        start = datetime(2026, 10, 25, tzinfo=UTC) + timedelta(minutes=rng.randrange(0, 45 * 24 * 60))
        db.session.add(
            ScheduleOverride(
                schedule_id=schedule_id,
                user_id=rng.choice(users).id,
                start=start,
                end=start + timedelta(hours=rng.randrange(1, 24)),
            )
        )
    db.session.commit()


def _show_more(page: bytes) -> str:
    """The URL of the schedule page's "Show more" link (the override list's next page)."""
    found = re.search(rb'<li class="more"><a href="([^"#]+)', page)
    assert found, "the schedule page has no Show more link"
    return found[1].decode().replace("&amp;", "&")


def _timeline(incident_id: int, user_id: int) -> None:
    from sqlalchemy import insert

    from openduty.extensions import db
    from openduty.models import LogEntry

    rows = [
        {
            "incident_id": incident_id,
            "at": NOW - timedelta(seconds=TIMELINE - i),
            "kind": "notify",
            "message": f"Paged by email (attempt {i}).",
            "actor_id": user_id,
            "channel": "email",
            "data": {},
        }
        for i in range(TIMELINE)
    ]
    db.session.execute(insert(LogEntry), rows)
    db.session.commit()


def _print(title: str, columns: list[str], rows: dict[str, list[tuple[float, int]]]) -> None:
    print(f"{title:<18}" + "".join(f"{c:>18}" for c in columns))
    for name, figures in rows.items():
        print(f"{name:<18}" + "".join(f"{ms:>9.1f} ms{size / 1024:>5.0f}KB" for ms, size in figures))


def main() -> None:
    import time_machine

    from openduty.extensions import db
    from openduty.models import ApiToken, Service, User

    rng = random.Random(11)
    with tempfile.TemporaryDirectory() as instance, time_machine.travel(NOW, tick=True):
        app = _app(instance)
        app.config.update(WTF_CSRF_ENABLED=False, RATELIMIT_ENABLED=False)
        with app.app_context():
            db.drop_all()
            db.create_all()
            admin = User(email="admin@example.com", name="Admin", is_admin=True)
            admin.set_password("bench-password")
            users = [User(email=f"u{i}@example.com", name=f"User {i:02}") for i in range(30)]
            service = Service(name="Databases")
            db.session.add_all([admin, service, *users])
            db.session.commit()
            _, token = ApiToken.issue(admin, "bench")
            db.session.commit()
            client = app.test_client()
            answer = client.post("/login", data={"email": admin.email, "password": "bench-password"})
            assert answer.status_code in (302, 303), answer.status_code

            print(f"database: {db.engine.dialect.name}; medians of {RUNS} requests (ms, answer size)")
            lists: dict[str, list[tuple[float, int]]] = {}
            loaded = 0
            for size in SIZES:
                t0 = time.perf_counter()
                _add_incidents(service.id, loaded, size - loaded, rng)
                print(f"  loaded {size - loaded} incidents in {time.perf_counter() - t0:.1f} s")
                loaded = size
                for name, figure in _lists(client, token).items():
                    lists.setdefault(name, []).append(figure)
            _print("incident lists", [f"{n:,} incidents" for n in SIZES], lists)

            schedule = _schedule(users, rng)
            pages: dict[str, list[tuple[float, int]]] = {}
            added = 0
            for count in OVERRIDES:
                _add_overrides(schedule.id, users, count - added, rng)
                added = count
                month = f"/schedules/{schedule.id}?view=month&date=2026-11-15"
                week = f"/schedules/{schedule.id}?view=week&date=2026-11-15"
                more = _show_more(_get(client, f"{month}&overrides=past"))  # upcoming: one page at 100
                pages.setdefault("month view", []).append(_median(lambda u=month: _get(client, u)))
                pages.setdefault("week view", []).append(_median(lambda u=week: _get(client, u)))
                pages.setdefault("month view, CPU", []).append(_cpu_median(lambda u=month: _get(client, u)))
                pages.setdefault("week view, CPU", []).append(_cpu_median(lambda u=week: _get(client, u)))
                pages.setdefault("month, htmx nav", []).append(_median(lambda u=month: _get(client, u, HTMX)))
                pages.setdefault("Show more, htmx", []).append(_median(lambda u=more: _get(client, u, HTMX)))
            _print("schedule pages", [f"{n:,} overrides" for n in OVERRIDES], pages)

            incident_id = db.session.scalar(db.select(db.func.max(db.text("id"))).select_from(db.text("incidents")))
            _timeline(incident_id, admin.id)
            page = f"/incidents/{incident_id}"
            newest = db.session.scalar(db.select(db.func.max(db.text("id"))).select_from(db.text("log_entries")))
            poll = f"{page}?after={newest}"  # what the page's poller asks when nothing happened
            _print(
                "incident page",
                [f"{TIMELINE:,} entries"],
                {
                    "full page": [_median(lambda: _get(client, page))],
                    "poll, no news": [_median(lambda: _get(client, poll, {"HX-Request": "true"}))],
                },
            )
