"""Scheduled escalations and pages keep their exact due time: never early, not a second late."""

from datetime import timedelta

from openduty import timers
from openduty.extensions import queue
from openduty.scheduler import FastScheduler, PreciseScheduledJobRegistry


def test_scheduled_job_is_released_at_its_exact_due_time(app, clock):
    due = clock.now() + timedelta(seconds=2, milliseconds=500)
    timers.enqueue_escalation(42, 7, due)
    q = queue(timers.ESCALATION_QUEUE)
    job_id = timers.escalation_job_id(42, 7)
    assert q.connection.zscore(q.scheduled_job_registry.key, job_id) == due.timestamp()

    registry = PreciseScheduledJobRegistry(q.name, connection=q.connection)
    clock.set(due - timedelta(milliseconds=100))
    assert registry.get_jobs_to_schedule() == []  # RQ's whole seconds would have released it
    clock.set(due + timedelta(milliseconds=1))
    assert registry.get_jobs_to_schedule() == [job_id]

    scheduler = FastScheduler([q.name], connection=q.connection)
    scheduler.prepare_registries([q.name])
    scheduler.enqueue_scheduled_jobs()
    assert q.job_ids == [job_id]
