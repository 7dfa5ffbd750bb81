"""Escalations due together run as one job (issue 11): a commit's escalations due now, and those
due at the same instant, share escalate_batch jobs of at most timers.ESCALATE_BATCH incidents,
planned in one transaction. Nothing is lost on the way: an incident that cannot be escalated holds
up nobody else and is re-armed by reconcile; reconcile trusts a live batch job and re-arms the
members of a dead one; a batch that meets the database down runs again whole.
"""

from rq import Queue
from rq.job import Job
from rq.registry import FailedJobRegistry, FinishedJobRegistry, ScheduledJobRegistry
from sqlalchemy.exc import OperationalError

from openduty import escalation, jobs, timers
from openduty.events import next_incident_numbers
from openduty.extensions import db, redis
from openduty.models import Incident, Notification
from tests.factories_escalation import make_pager, make_policy, make_service, open_incident


def _open_together(pager, count: int, delay_minutes: int = 5) -> list[Incident]:
    """`count` incidents opened in one transaction (as one ingest batch does), each paging its own user."""
    hook = pager.httpserver.url_for
    incidents = []
    for n in range(count):
        pager.httpserver.expect_request(f"/hook/{n}", method="POST").respond_with_data("", status=204)
        user = make_pager(f"User {n}", {"webhook": (hook(f"/hook/{n}"), 0)})
        service = make_service(make_policy([(delay_minutes, [user])]), name=f"Service {n}")
        incident = Incident(
            service=service, dedup_key=f"b{n}", summary=f"Down {n}", number=next_incident_numbers(1), status="triggered"
        )
        db.session.add(incident)
        incidents.append(incident)
    db.session.flush()
    for incident in incidents:
        escalation.incident_triggered(incident)
    db.session.commit()
    return incidents


def _jobs(queue_name: str = timers.ESCALATION_QUEUE) -> list[Job]:
    q = Queue(queue_name, connection=redis.get())
    return [Job.fetch(job_id, connection=redis.get()) for job_id in q.get_job_ids()]


def _pages_by_path(pager) -> dict[str, int]:
    counts: dict[str, int] = {}
    for page in pager.pages():
        counts[page.to] = counts.get(page.to, 0) + 1
    return counts


def test_a_commits_escalations_share_jobs_of_at_most_a_batch(app, pager):
    incidents = _open_together(pager, timers.ESCALATE_BATCH + 3)
    queued = _jobs()
    assert [job.func_name for job in queued] == ["openduty.jobs.escalate_batch", "openduty.jobs.escalate_batch"]
    assert [len(job.args[0]) for job in queued] == [timers.ESCALATE_BATCH, 3]
    assert sorted(i for job in queued for i, _ in job.args[0]) == sorted(i.id for i in incidents)
    pager.run()
    assert _pages_by_path(pager) == {f"/hook/{n}": 1 for n in range(len(incidents))}  # each once
    finished = FinishedJobRegistry(timers.ESCALATION_QUEUE, connection=redis.get()).get_job_ids()
    assert sorted(finished) == sorted(job.id for job in queued)
    # The level paged for the batch moves on at one instant: its next escalations share a job too.
    scheduled = ScheduledJobRegistry(timers.ESCALATION_QUEUE, connection=redis.get())
    next_jobs = [Job.fetch(job_id, connection=redis.get()) for job_id in scheduled.get_job_ids()]
    assert sorted(len(job.args[0]) for job in next_jobs) == [3, timers.ESCALATE_BATCH]
    db.session.rollback()
    rows = db.session.scalars(db.select(Notification)).all()
    assert [(row.status, row.attempts) for row in rows] == [("sent", 1)] * len(incidents)


def test_one_incident_that_cannot_be_escalated_holds_up_nobody_else(app, pager, monkeypatch):
    incidents = _open_together(pager, 4)
    broken = incidents[1].id
    escalate = escalation._escalate

    def failing(incident, *args):
        if incident.id == broken:
            raise RuntimeError("a bug in one incident's plan")
        return escalate(incident, *args)

    monkeypatch.setattr(escalation, "_escalate", failing)
    pager.run()
    assert _pages_by_path(pager) == {"/hook/0": 1, "/hook/2": 1, "/hook/3": 1}
    failed = FailedJobRegistry(timers.ESCALATION_QUEUE, connection=redis.get())
    [job_id] = failed.get_job_ids()
    assert str(broken) in Job.fetch(job_id, connection=redis.get()).latest_result().exc_string
    monkeypatch.undo()  # fixed: reconcile re-arms the one left behind (its batch job is dead)
    counts = timers.reconcile()
    assert (counts["escalations"], counts["errors"]) == (1, 0)
    pager.run()
    assert _pages_by_path(pager) == {f"/hook/{n}": 1 for n in range(4)}


def test_reconcile_trusts_a_live_batch_job_and_rearms_the_members_of_a_dead_one(app, pager):
    incidents = _open_together(pager, 3)
    assert timers.reconcile()["escalations"] == 0  # the batch job is in its queue
    [job] = _jobs()
    redis.get().lrem(Queue(job.origin, connection=redis.get()).key, 0, job.id)  # what a dead BLPOP leaves
    assert timers.reconcile()["escalations"] == 3
    assert sorted(job.func_name for job in _jobs()) == ["openduty.jobs.escalate"] * 3
    pager.run()
    assert _pages_by_path(pager) == {f"/hook/{n}": 1 for n in range(len(incidents))}


def test_a_batch_that_meets_the_database_down_runs_again_whole(app, pager, monkeypatch):
    incidents = _open_together(pager, 3)
    [job] = _jobs()
    run = escalation.run_escalations

    def down(*args, **kwargs):
        raise OperationalError("SELECT 1", {}, Exception("server closed the connection"))

    monkeypatch.setattr(escalation, "run_escalations", down)
    db.session.expire_on_commit = False
    outcomes = jobs.escalate_batch(job.args[0])
    assert set(outcomes.values()) == {"database unavailable"}
    monkeypatch.setattr(escalation, "run_escalations", run)
    scheduled = ScheduledJobRegistry(timers.ESCALATION_QUEUE, connection=redis.get())
    [retry] = [Job.fetch(job_id, connection=redis.get()) for job_id in scheduled.get_job_ids()]
    assert retry.id.startswith(f"{job.id}-db") and retry.args == job.args
    redis.get().lrem(Queue(job.origin, connection=redis.get()).key, 0, job.id)  # the retry alone pages
    pager.advance(seconds=timers.DATABASE_RETRY_SECONDS + 1)
    assert _pages_by_path(pager) == {f"/hook/{n}": 1 for n in range(len(incidents))}


def _open_one_by_one(pager, count: int) -> list[Incident]:
    """`count` incidents each opened in its own transaction: each gets its own escalate job."""
    incidents = []
    for n in range(count):
        pager.httpserver.expect_request(f"/hook/{n}", method="POST").respond_with_data("", status=204)
        user = make_pager(f"User {n}", {"webhook": (pager.httpserver.url_for(f"/hook/{n}"), 0)})
        incidents.append(open_incident(make_service(make_policy([(5, [user])]), name=f"Service {n}")))
    return incidents


def test_a_worker_behind_its_queue_takes_the_escalations_waiting_there_along(app, pager):
    incidents = _open_one_by_one(pager, timers.ESCALATE_BATCH + 2)
    assert [job.func_name for job in _jobs()] == ["openduty.jobs.escalate"] * len(incidents)
    pager.run()
    assert _pages_by_path(pager) == {f"/hook/{n}": 1 for n in range(len(incidents))}
    finished = FinishedJobRegistry(timers.ESCALATION_QUEUE, connection=redis.get()).get_job_ids()
    first, eleventh = incidents[0], incidents[timers.ESCALATE_BATCH]
    assert sorted(finished) == sorted(timers.escalation_job_id(i.id, 0) for i in (first, eleventh))
    taken = [i for i in incidents if i not in (first, eleventh)]  # their jobs are gone, nothing left behind
    assert not any(redis.get().exists(Job.key_for(timers.escalation_job_id(i.id, 0))) for i in taken)
    assert Queue(timers.ESCALATION_QUEUE, connection=redis.get()).count == 0
    assert timers.reconcile()["escalations"] == 0


def test_escalations_taken_by_a_job_whose_worker_died_are_rearmed(app, pager):
    incidents = _open_one_by_one(pager, 4)
    taken = timers.take_queued_escalations("escalate-999-0", timers.ESCALATE_BATCH - 1)  # a job that is gone
    assert taken == [(i.id, 0) for i in incidents]
    assert Queue(timers.ESCALATION_QUEUE, connection=redis.get()).count == 0
    assert timers.reconcile()["escalations"] == 4
    pager.run()
    assert _pages_by_path(pager) == {f"/hook/{n}": 1 for n in range(4)}


def test_only_plain_escalations_are_taken(app, pager):
    [incident] = _open_one_by_one(pager, 1)
    timers.enqueue_escalation(incident.id, 0, incident.next_escalation_at, job_id=f"escalate-{incident.id}-0-late")
    timers.enqueue_delivery(12345, incident.next_escalation_at)
    assert timers.take_queued_escalations("escalate-999-0", 5) == [(incident.id, 0)]
    assert sorted(job.id for job in _jobs()) == ["deliver-12345-" + str(int(incident.next_escalation_at.timestamp())),
                                                 f"escalate-{incident.id}-0-late"]  # fmt: skip
