"""Escalation in batches (issue 11): a level is planned, and its pages due now claimed, in one
transaction; the escalate job sends those pages itself; everything else is armed in one Redis
transaction, all or nothing, and what Redis refused is re-armed by reconcile. Nothing is lost.

- A level's pages due now go out from the escalate job, with no deliver job and exactly once.
- Its delayed pages and its next escalation are armed in one pipeline, at their exact times.
- Redis failing while arming them leaves the committed rows for reconcile, which re-arms them all.
- An escalate job that dies after its commit, before sending, leaves claims reconcile recovers.
- Sender threads record their outcomes together, none left behind.
"""

import subprocess
import sys
import threading
import time

from redis.client import Pipeline
from redis.exceptions import ConnectionError as RedisConnectionError
from rq.registry import FinishedJobRegistry, ScheduledJobRegistry

from openduty import delivery, jobs, timers
from openduty.extensions import db, redis
from openduty.models import Incident, Notification
from openduty.models.notification import this_process
from openduty.senders import Combiner
from tests.factories_escalation import make_pager, make_policy, make_service, open_incident


def _rows() -> list[Notification]:
    db.session.rollback()
    return list(db.session.scalars(db.select(Notification).order_by(Notification.id)))


def _level_of_three(pager, delay: int) -> Incident:
    hook = pager.httpserver.url_for("/hook/ok")
    users = [make_pager(name, {"webhook": (hook, delay)}) for name in ("Alice", "Bob", "Carol")]
    return open_incident(make_service(make_policy([(5, users)])))


def _escalate_now(incident: Incident) -> str:
    """Run the escalate job's function here (not on a worker), as a worker would."""
    db.session.commit()
    db.session.expire_on_commit = False
    return jobs.escalate(incident.id, incident.epoch)


def test_pages_due_now_are_sent_by_the_escalate_job_without_deliver_jobs(app, pager):
    incident = _level_of_three(pager, delay=0)
    pager.run()
    assert [page.to for page in pager.pages()] == ["/hook/ok"] * 3
    rows = _rows()
    assert [(row.status, row.attempts, row.unconfirmed) for row in rows] == [("sent", 1, 0)] * 3
    assert all(row.send_at <= row.sent_at for row in rows)
    finished = FinishedJobRegistry(timers.PAGE_QUEUE, connection=redis.get()).get_job_ids()
    assert finished == [timers.escalation_job_id(incident.id, 0)]  # no deliver job ran
    pager.advance(minutes=1)
    assert len(pager.pages()) == 3  # and nothing twice


def test_a_levels_delayed_pages_are_armed_in_one_redis_transaction(app, pager, monkeypatch):
    incident = _level_of_three(pager, delay=2)
    executed = []
    execute = Pipeline.execute

    def counted(pipe, *args, **kwargs):
        executed.append(len(pipe))
        return execute(pipe, *args, **kwargs)

    monkeypatch.setattr(Pipeline, "execute", counted)
    assert _escalate_now(incident) == "escalated"
    monkeypatch.undo()
    assert len(executed) == 1  # one round trip: three deliveries and the next escalation
    rows = _rows()
    assert [row.status for row in rows] == ["pending"] * 3
    scheduled = ScheduledJobRegistry(timers.PAGE_QUEUE, connection=redis.get())
    due = {job_id: score for job_id, score in scheduled.connection.zrange(scheduled.key, 0, -1, withscores=True)}
    next_at = db.session.get(Incident, incident.id).next_escalation_at
    assert due == {
        **{timers.delivery_job_id(row.id, row.send_at).encode(): row.send_at.timestamp() for row in rows},
        timers.escalation_job_id(incident.id, 1).encode(): next_at.timestamp(),
    }
    pager.advance(minutes=2)
    assert [page.to for page in pager.pages()] == ["/hook/ok"] * 3


def test_redis_failing_while_arming_a_level_loses_nothing(app, pager, monkeypatch):
    incident = _level_of_three(pager, delay=2)

    def refuse(pipe, *args, **kwargs):
        raise RedisConnectionError("Redis went away")

    monkeypatch.setattr(Pipeline, "execute", refuse)
    assert _escalate_now(incident) == "escalated"  # the commit stands; arming failed after it
    monkeypatch.undo()
    assert [row.status for row in _rows()] == ["pending"] * 3
    conn = redis.get()
    assert conn.zcard(ScheduledJobRegistry(timers.PAGE_QUEUE, connection=conn).key) == 0  # none half-armed
    counts = timers.reconcile()
    assert (counts["escalations"], counts["notifications"], counts["errors"]) == (1, 3, 0)
    pager.advance(minutes=2)
    assert [page.to for page in pager.pages()] == ["/hook/ok"] * 3
    assert [row.status for row in _rows()] == ["sent"] * 3


def test_pages_claimed_by_an_escalate_job_that_died_before_sending_are_recovered(app, pager, monkeypatch):
    incident = _level_of_three(pager, delay=0)
    monkeypatch.setattr(delivery, "send_claimed", lambda rows: None)  # the worker dies after its COMMIT
    assert _escalate_now(incident) == "escalated"
    monkeypatch.undo()
    assert pager.pages() == []
    rows = _rows()
    assert {(row.status, row.claimed_by) for row in rows} == {("sending", this_process())}
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    host = this_process().rpartition(":")[0]
    for row in rows:
        row.claimed_by = f"{host}:{gone.pid}"
    db.session.commit()
    assert timers.reconcile()["recovered"] == 3
    pager.run()
    assert [page.to for page in pager.pages()] == ["/hook/ok"] * 3
    rows = _rows()
    # Sent once; counted as possibly twice (the worker may have died mid-send: docs/reliability.md).
    assert [(row.status, row.unconfirmed) for row in rows] == [("sent", 1)] * 3


def test_outcomes_added_by_many_threads_are_each_handled_once_and_together():
    handled: list[int] = []
    batches: list[int] = []

    def handle(items: list[int]) -> None:
        time.sleep(0.002)  # a commit
        batches.append(len(items))
        handled.extend(items)

    combiner = Combiner(handle)

    def add(first: int) -> None:
        for item in range(first, first + 50):
            combiner.add(item)

    threads = [threading.Thread(target=add, args=(n * 50,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(handled) == list(range(400))
    assert len(batches) < 400 and max(batches) > 1
