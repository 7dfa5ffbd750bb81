"""Nothing lost: a real worker process killed mid-escalation, and a flushed Redis. After a restart
every due page goes out exactly once (counted by a local webhook server).

These run real `flask --app app openduty worker` processes against the suite's database and Redis,
so time is real: "time passing while the worker is dead" is done by moving the due times in the
database (the source of truth) into the past.
"""

import time

import pytest

from openduty.extensions import db, redis
from openduty.models import Incident, Notification
from tests.factories_escalation import make_overdue, make_pager, make_policy, make_service, open_incident
from tests.processes import hits, wait_for


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


def _statuses() -> list[str]:
    db.session.rollback()
    return list(db.session.scalars(db.select(Notification.status).order_by(Notification.id)))


def test_killed_worker_mid_escalation_loses_and_repeats_nothing(app, hooks, processes):
    service = _policy_with_two_levels(hooks)
    first = processes.worker("w1", redis.get())
    incident = open_incident(service)
    wait_for(lambda: hits(hooks).get("/hook/alice") == 1, "level 1's immediate page")
    wait_for(lambda: _statuses().count("sent") == 1, "the page recorded as sent")  # mid-send: test_faults
    processes.kill_group(first)  # level 2 and Alice Late's delayed page are still owed

    make_overdue(incident.id)
    processes.worker("w2", redis.get())
    wait_for(lambda: len(hooks.log) >= 3, "the overdue pages after restart")
    time.sleep(1.5)  # anything duplicated would arrive by now
    assert hits(hooks) == {"/hook/alice": 1, "/hook/alice-late": 1, "/hook/bob": 1}
    db.session.rollback()
    assert db.session.get(Incident, incident.id).escalation_level == 2


def test_flushed_redis_loses_nothing(app, hooks, processes):
    service = _policy_with_two_levels(hooks)
    incident = open_incident(service)  # its escalate job is queued, but no worker runs yet
    redis.get().flushdb()
    worker = processes.worker("w1", redis.get())  # start-up reconcile re-arms it
    wait_for(lambda: hits(hooks).get("/hook/alice") == 1, "level 1's page after the flush")
    wait_for(lambda: "sent" in _statuses(), "the page recorded as sent")

    make_overdue(incident.id)
    redis.get().flushdb()  # under a running worker: every timer and the periodic job are gone
    # The worker notices by itself (its scheduler's sentinel key is gone) and reconciles at once.
    took = wait_for(lambda: len(hooks.log) >= 3, "the overdue pages after the flush", timeout=10)
    print(f"pages {took:.1f} s after the flush")
    assert any(k.startswith(b"rq:job:periodic-reconcile-") for k in redis.get().keys("rq:job:periodic-*"))
    again = processes.cli("openduty", "reconcile")  # nothing is owed twice, nothing left unarmed
    time.sleep(1.5)
    assert hits(hooks) == {"/hook/alice": 1, "/hook/alice-late": 1, "/hook/bob": 1}
    assert "Re-armed 0 escalation(s) and 0 notification(s)" in again.stdout, again.stdout
    assert worker.poll() is None
