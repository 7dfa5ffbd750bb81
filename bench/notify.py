"""Notify latency and throughput with real workers and Redis.

    DATABASE_URL=postgresql://postgres@127.0.0.1:5432/openduty_h4 REDIS_URL=redis://127.0.0.1:6379/4 \
        .venv/bin/python -m bench notify

Without DATABASE_URL / REDIS_URL it uses a temporary SQLite file and an embedded Redis. The
database and the Redis db are EMPTIED first. NOTIFY_WORKERS (default 4) workers run for the
lateness part; throughput is measured with one worker.

1. Trigger accepted (the ingest transaction committed) -> the webhook receives the page, for a
   delay-0 rule: p50/p99 over 200 incidents, triggered one after another.
2. 1,000 open incidents whose next escalation is due over the next 60 s, and 1,000 delayed pages
   due over the same 60 s: how late the escalations fire and the pages arrive (never early).
3. Pages per second one worker delivers to a local webhook (2,000 pages due at once).
"""

import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class Receiver:
    """A local webhook that records when each page arrived."""

    def __init__(self):
        self.arrivals: list[tuple[float, str, dict]] = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                now = time.time()
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with receiver.lock:
                    receiver.arrivals.append((now, self.path, body))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def count(self) -> int:
        with self.lock:
            return len(self.arrivals)


def _pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


def _summary(label: str, values_ms: list[float]) -> None:
    print(
        f"{label}: n={len(values_ms)} p50={_pct(values_ms, 50):.1f} ms p99={_pct(values_ms, 99):.1f} ms "
        f"max={max(values_ms):.1f} ms min={min(values_ms):.1f} ms",
        flush=True,
    )


def main() -> None:
    app, env = bench_app("bench-notify-")
    workers = int(os.environ.get("NOTIFY_WORKERS", "4"))
    from openduty.extensions import stop_embedded_redis  # once bench_app has set the environment

    with app.app_context():
        receiver = Receiver()
        processes: list[subprocess.Popen] = []
        try:
            processes.append(_start_worker(env, "bench-1"))
            _latency(app, receiver)
            processes += [_start_worker(env, f"bench-{i + 2}") for i in range(workers - 1)]
            _lateness(app, receiver, workers)
            for process in processes[1:]:
                _stop(process)
            processes = processes[:1]
            _throughput(app, receiver)
        finally:
            for process in processes:
                _stop(process)
            stop_embedded_redis()  # a no-op with REDIS_URL


def bench_app(prefix: str):
    """The app and the workers' environment: DATABASE_URL / REDIS_URL, or a temporary SQLite file
    and an embedded Redis; the database and the Redis db are emptied."""
    tmp = tempfile.mkdtemp(prefix=prefix)
    env = dict(os.environ, OPENDUTY_CONFIG="default", OPENDUTY_INSTANCE=tmp, SECRET_KEY="bench")
    # The receiving webhook is local; user-chosen destinations are public-only by default.
    env.setdefault("OUTBOUND_ALLOWED_NETWORKS", "127.0.0.1/32,::1/128")
    env.setdefault("DATABASE_URL", f"sqlite:///{tmp}/bench.db")
    os.environ.update(env)
    from config import Config, database_url
    from openduty import create_app
    from openduty.extensions import db, redis

    if not os.environ.get("REDIS_URL"):
        from openduty.extensions import embedded_redis

        env["REDIS_URL"] = os.environ["REDIS_URL"] = f"unix://{embedded_redis(tmp + '/redis.db').socket_file}"

    config = type(
        "BenchConfig",
        (Config,),
        {"SQLALCHEMY_DATABASE_URI": database_url(env["DATABASE_URL"]), "REDIS_URL": env["REDIS_URL"]},
    )
    app = create_app(config)
    print(f"database={app.config['SQLALCHEMY_DATABASE_URI'].split('@')[-1]} redis={env['REDIS_URL']}", flush=True)
    with app.app_context():
        db.drop_all()
        db.create_all()
        redis.get().flushdb()
    return app, env


def _start_worker(env: dict, name: str) -> subprocess.Popen:
    from rq import Worker

    from openduty.extensions import redis

    process = subprocess.Popen(
        [sys.executable, "-m", "flask", "--app", "app", "openduty", "worker", "--name", name],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    deadline = time.monotonic() + 30
    while not any(w.name == name for w in Worker.all(connection=redis.get())):
        if time.monotonic() > deadline:
            raise SystemExit(f"worker {name} did not start")
        time.sleep(0.05)
    return process


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)


def _setup(receiver: Receiver, name: str, delay: int = 0):
    from openduty.extensions import db
    from openduty.models import (
        ContactMethod,
        EscalationLevel,
        EscalationPolicy,
        EscalationTarget,
        Integration,
        NotificationRule,
        Service,
        User,
    )

    user = User(email=f"{name}@example.com", name=name)
    method = ContactMethod(user=user, kind="webhook", address=f"{receiver.url}/{name}")
    db.session.add_all([user, method, NotificationRule(user=user, contact_method=method, delay_minutes=delay)])
    policy = EscalationPolicy(name=f"Policy {name}", repeat_count=0)
    level = EscalationLevel(position=0, delay_minutes=30, targets=[EscalationTarget(target_type="user", user=user)])
    policy.levels.append(level)
    service = Service(name=f"Service {name}", escalation_policy=policy)
    integration = Integration(service=service, kind="events_v2", name="bench")
    db.session.add_all([policy, service, integration])
    db.session.commit()
    return user, service, integration


def _latency(app, receiver: Receiver, name: str = "latency") -> list[float]:
    from openduty.event_commit import apply_and_commit
    from openduty.events import Event

    _, _, integration = _setup(receiver, name)
    latencies = []
    for i in range(200):
        before = receiver.count()
        event = Event(
            integration.key, "trigger", f"{name}-{i}", f"Latency probe {i}", "critical", source="bench", details={}
        )
        apply_and_commit([event])
        accepted = time.time()
        deadline = time.monotonic() + 10
        while receiver.count() == before:
            if time.monotonic() > deadline:
                raise SystemExit("a page did not arrive within 10 s")
            time.sleep(0.0005)
        latencies.append((receiver.arrivals[-1][0] - accepted) * 1000)
        time.sleep(0.02)
    _summary("1. trigger accepted -> webhook received (delay-0 rule, 200 incidents, 1 worker)", latencies)
    return latencies


def _lateness(app, receiver: Receiver, workers: int) -> None:
    from sqlalchemy import select

    from openduty import clock, timers
    from openduty.extensions import db
    from openduty.models import EscalationLevel, EscalationTarget, Incident, LogEntry, Notification

    user, service, _ = _setup(receiver, "lateness")
    bob, _, _ = _setup(receiver, "lateness-next")
    service.escalation_policy.levels.append(
        EscalationLevel(position=1, delay_minutes=30, targets=[EscalationTarget(target_type="user", user=bob)])
    )
    db.session.commit()
    start = clock.now() + timedelta(seconds=5)
    incidents = []
    for i in range(1000):
        due = start + timedelta(milliseconds=60 * i)
        incident = Incident(
            service=service, number=100000 + i, dedup_key=f"late-{i}", summary=f"Lateness {i}", status="triggered",
            escalation_level=1, escalation_loop=0, epoch=1, next_escalation_at=due,
        )  # fmt: skip
        incidents.append(incident)
        db.session.add(incident)
    db.session.flush()
    for i, incident in enumerate(incidents):
        send_at = start + timedelta(milliseconds=60 * i + 10)
        db.session.add(
            Notification(
                incident=incident, user=user, kind="webhook", address=f"{receiver.url}/lateness-delayed",
                purpose="page", send_at=send_at,
            )
        )  # fmt: skip
    db.session.commit()
    begin = receiver.count()
    for incident in incidents:
        timers.enqueue_escalation(incident.id, incident.epoch, incident.next_escalation_at)
    pending = db.session.execute(select(Notification.id, Notification.send_at).where(Notification.status == "pending"))
    for notification_id, send_at in pending:
        timers.enqueue_delivery(notification_id, send_at, send_at=send_at)
    deadline = time.monotonic() + 120
    while receiver.count() - begin < 2000:
        if time.monotonic() > deadline:
            print(f"   only {receiver.count() - begin} of 2000 pages arrived within 120 s", flush=True)
            break
        time.sleep(0.1)
    db.session.expire_all()
    due = {incidents[i].id: start + timedelta(milliseconds=60 * i) for i in range(len(incidents))}
    fired = db.session.execute(
        select(LogEntry.incident_id, LogEntry.at).where(LogEntry.kind == "escalate", LogEntry.incident_id.in_(due))
    ).all()
    escalation_late = [(at - due[incident_id]).total_seconds() * 1000 for incident_id, at in fired]
    page_late = []
    for arrived, path, body in receiver.arrivals[begin:]:
        incident_id = body["incidents"][0]["id"]
        page_due = due[incident_id] + timedelta(milliseconds=10 if path.endswith("-delayed") else 0)
        page_late.append((datetime.fromtimestamp(arrived, UTC) - page_due).total_seconds() * 1000)
    early = sum(1 for value in escalation_late if value < 0)
    _summary(f"2a. escalation fired vs due (1,000 incidents over 60 s, {workers} workers)", escalation_late)
    print(f"    escalations fired early: {early}", flush=True)
    _summary(f"2b. page received vs its due time (2,000 pages over 60 s, {workers} workers)", page_late)
    print(f"    pages received before their due time: {sum(1 for v in page_late if v < 0)}", flush=True)


def _throughput(app, receiver: Receiver) -> None:
    from openduty import clock, timers
    from openduty.extensions import db
    from openduty.models import Notification

    user, _, _ = _setup(receiver, "throughput")
    now = clock.now()
    rows = [
        Notification(user=user, kind="webhook", address=f"{receiver.url}/throughput", purpose="test", send_at=now)
        for _ in range(2000)
    ]
    db.session.add_all(rows)
    db.session.commit()
    begin = receiver.count()
    started = time.time()
    for row in rows:
        timers.enqueue_delivery(row.id, now, purpose="page", send_at=now)
    while receiver.count() - begin < len(rows):
        time.sleep(0.05)
    elapsed = time.time() - started
    print(
        f"3. pages/s one SimpleWorker delivers to a local webhook: {len(rows) / elapsed:.0f} "
        f"({len(rows)} in {elapsed:.1f} s)"
    )
