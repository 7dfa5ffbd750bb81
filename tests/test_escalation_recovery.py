"""Nothing lost: a real worker process killed mid-escalation, and a flushed Redis. After a restart
every due page goes out exactly once (counted by a local webhook server).

These run real `flask --app app openduty worker` processes against the suite's database and Redis,
so time is real: "time passing while the worker is dead" is done by moving the due times in the
database (the source of truth) into the past.
"""

import os
import signal
import subprocess
import sys
import time
from datetime import timedelta

import pytest
from rq import Worker

from openduty import clock
from openduty.extensions import db, redis
from openduty.models import Incident, Notification
from tests.factories_escalation import make_pager, make_policy, make_service, open_incident

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture
def worker_process(app, _database_uri, _redis_url, tmp_path):
    """Start real worker processes (`start()`); `kill(p)` SIGKILLs one with its scheduler."""
    processes = []
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLASK_")}
    env.update(
        OPENDUTY_CONFIG="default",
        OPENDUTY_INSTANCE=str(tmp_path / "instance"),
        DATABASE_URL=_database_uri,
        REDIS_URL=_redis_url,
        SECRET_KEY=app.config["SECRET_KEY"],
        BASE_URL="http://localhost",
    )

    class Workers:
        @staticmethod
        def start(name: str):
            log = open(tmp_path / f"{name}.log", "wb")  # noqa: SIM115
            process = subprocess.Popen(
                [sys.executable, "-m", "flask", "--app", "app", "openduty", "worker", "--name", name],
                cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip
            processes.append((process, log))
            _wait(lambda: any(w.name == name for w in Worker.all(connection=redis.get())), f"worker {name} to start")
            return process

        @staticmethod
        def kill(process):
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)

        @staticmethod
        def cli(*args):
            return subprocess.run(
                [sys.executable, "-m", "flask", "--app", "app", "openduty", *args],
                cwd=ROOT, env=env, capture_output=True, text=True, timeout=60,
            )  # fmt: skip

    yield Workers
    for process, log in processes:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        log.close()


def _wait(condition, what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def _hits(httpserver) -> dict[str, int]:
    counts: dict[str, int] = {}
    for request, _ in httpserver.log:
        counts[request.path] = counts.get(request.path, 0) + 1
    return counts


@pytest.fixture
def hooks(httpserver):
    for name in ("alice", "alice-late", "bob"):
        httpserver.expect_request(f"/hook/{name}", method="POST").respond_with_data("", status=204)
    return httpserver


def _policy_with_two_levels(hooks):
    alice = make_pager("Alice", {"webhook": (hooks.url_for("/hook/alice"), 0)})
    late = make_pager("Alice Late", {"webhook": (hooks.url_for("/hook/alice-late"), 1)})
    bob = make_pager("Bob", {"webhook": (hooks.url_for("/hook/bob"), 0)})
    return make_service(make_policy([(1, [alice, late]), (1, [bob])]))


def _overdue(incident_id: int) -> None:
    """Pretend a minute passed: the next escalation and the delayed page are now overdue."""
    past = clock.now() - timedelta(seconds=1)
    db.session.rollback()
    incident = db.session.get(Incident, incident_id)
    incident.next_escalation_at = past
    for notification in db.session.scalars(db.select(Notification).where(Notification.status == "pending")):
        notification.send_at = past
    db.session.commit()


def test_killed_worker_mid_escalation_loses_and_repeats_nothing(app, hooks, worker_process):
    service = _policy_with_two_levels(hooks)
    first = worker_process.start("w1")
    incident = open_incident(service)
    _wait(lambda: _hits(hooks).get("/hook/alice") == 1, "level 1's immediate page")
    worker_process.kill(first)  # level 2 and Alice Late's delayed page are still owed

    _overdue(incident.id)
    worker_process.start("w2")
    _wait(lambda: len(hooks.log) >= 3, "the overdue pages after restart")
    time.sleep(1.5)  # anything duplicated would arrive by now
    assert _hits(hooks) == {"/hook/alice": 1, "/hook/alice-late": 1, "/hook/bob": 1}
    db.session.rollback()
    assert db.session.get(Incident, incident.id).escalation_level == 2


def test_flushed_redis_loses_nothing(app, hooks, worker_process):
    service = _policy_with_two_levels(hooks)
    incident = open_incident(service)  # its escalate job is queued, but no worker runs yet
    redis.get().flushdb()
    worker = worker_process.start("w1")  # start-up reconcile re-arms it
    _wait(lambda: _hits(hooks).get("/hook/alice") == 1, "level 1's page after the flush")

    redis.get().flushdb()  # under a running worker: every timer and the periodic job are gone
    _overdue(incident.id)
    result = worker_process.cli("reconcile")
    assert result.returncode == 0, result.stderr
    assert "Re-armed 1 escalation(s) and 1 notification(s)" in result.stdout
    _wait(lambda: len(hooks.log) >= 3, "the overdue pages after reconcile")
    again = worker_process.cli("reconcile")  # nothing is owed twice
    time.sleep(1.5)
    assert _hits(hooks) == {"/hook/alice": 1, "/hook/alice-late": 1, "/hook/bob": 1}
    assert "Re-armed 0 escalation(s) and 0 notification(s)" in again.stdout, again.stdout
    assert worker.poll() is None
