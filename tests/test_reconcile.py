"""Reconcile trusts only jobs that will really run, and one bad job never stops a run (issue 9,
findings 1 and 3). Real Redis and RQ: the dead worker's leftovers are made with RQ's own calls."""

import subprocess

import pytest
from rq import Queue
from rq.job import Job

from openduty import timers
from openduty.extensions import redis
from openduty.worker import make_worker
from tests.factories_escalation import make_pager, make_policy, make_service, open_incident
from tests.processes import hits


def _incident(hook):
    alice = make_pager("Alice", {"webhook": (hook.url_for("/hook/alice"), 0)})
    return open_incident(make_service(make_policy([(5, [alice])])))


def _job(incident) -> Job:
    return Job.fetch(timers.escalation_job_id(incident.id, incident.epoch), connection=redis.get())


def _dead_pid() -> int:
    process = subprocess.Popen(["true"])
    process.wait()
    return process.pid


def _started_by(worker_name: str, job: Job, app, pid: int):
    """Take `job` off its queue and start it as worker `worker_name` (process `pid`) would."""
    worker = make_worker(app, name=worker_name)
    worker.register_birth()
    redis.get().hset(worker.key, "pid", pid)
    redis.get().lrem(Queue(job.origin, connection=redis.get()).key, 0, job.id)
    execution = worker.prepare_execution(job)
    worker.prepare_job_execution(job)
    return worker, execution


def test_a_queued_job_in_no_queue_is_rearmed(app, hook, run_jobs):
    """What a dead worker's leftover BLPOP did: the job says "queued" but no queue holds it."""
    incident = _incident(hook)
    job = _job(incident)
    redis.get().lrem(Queue(job.origin, connection=redis.get()).key, 0, job.id)
    assert job.get_status() == "queued"
    assert timers.reconcile()["escalations"] == 1
    run_jobs()
    assert hits(hook) == {"/hook/alice": 1}


def test_a_job_really_queued_or_started_by_a_live_worker_is_trusted(app, hook, run_jobs):
    incident = _incident(hook)
    assert timers.reconcile()["escalations"] == 0  # in its queue
    _started_by("alive", _job(incident), app, pid=1)  # pid 1 exists
    assert timers.reconcile()["escalations"] == 0


def test_a_job_started_by_a_dead_worker_is_rearmed_even_without_its_execution(app, hook, run_jobs):
    """A worker killed mid-job leaves the job "started"; once RQ's execution record expired,
    cleaning the job up raised `ValueError: Execution ... not found in Redis` and stopped the run."""
    first, second = _incident(hook), _incident(hook)
    _, execution = _started_by("dead", _job(first), app, pid=_dead_pid())
    redis.get().delete(execution.key)  # its TTL ran out
    counts = timers.reconcile()
    assert counts["escalations"] == 1 and counts["errors"] == 0
    run_jobs()
    assert hits(hook) == {"/hook/alice": 2}
    assert second.id  # (its job was queued all along)


def test_an_unreadable_job_does_not_stop_the_run(app, hook, run_jobs):
    first, second = _incident(hook), _incident(hook)
    redis.get().hset(_job(first).key, "created_at", "garbage")  # RQ cannot read it back
    redis.get().lrem("rq:queue:high", 0, _job(second).id)
    counts = timers.reconcile()
    assert counts["escalations"] == 2 and counts["errors"] == 0
    run_jobs()
    assert hits(hook) == {"/hook/alice": 2}


def test_a_worker_taking_the_name_of_a_killed_one_starts_at_once_and_requeues_its_jobs(app, hook, run_jobs):
    """RQ refused the name until the dead registration expired (~150 s): "There exists an active
    worker named 'w1' already". The dead worker's started job goes back to the front of its queue."""
    incident = _incident(hook)
    job = _job(incident)
    _started_by("w1", job, app, pid=_dead_pid())
    make_worker(app, name="w1").register_birth()
    assert job.get_status() == "queued"
    assert redis.get().lpos(Queue(job.origin, connection=redis.get()).key, job.id) == 0
    run_jobs()
    assert hits(hook) == {"/hook/alice": 1}


def test_a_live_worker_keeps_its_name(app, hook):
    make_worker(app, name="w1").register_birth()
    with pytest.raises(ValueError, match="active worker named 'w1'"):
        make_worker(app, name="w1").register_birth()  # same host, live pid (ours, another worker)


def test_a_job_started_by_a_worker_silent_on_another_host_is_rearmed(app, hook, run_jobs):
    """A worker on another host cannot be checked by pid; an Openduty worker beats every second
    (even mid-job), so ten seconds of silence means it is dead or frozen."""
    incident = _incident(hook)
    worker, _ = _started_by("remote", _job(incident), app, pid=1)
    redis.get().hset(worker.key, mapping={"host_id": "elsewhere", "last_heartbeat": "2026-01-01T00:00:00.000000Z"})
    assert timers.reconcile()["escalations"] == 1
    run_jobs()
    assert hits(hook) == {"/hook/alice": 1}
