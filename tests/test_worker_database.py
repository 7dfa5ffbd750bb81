"""Any job that fails because the database is unreachable runs again a couple of seconds later,
without using up one of its RQ retries (issue 9, finding 5): the worker's safety net for jobs that
do not handle it themselves (escalate and deliver do, see test_delivery.py). Real Redis and a real
RQ worker; the job below stands in for a job whose query met a dead server.
"""

import time

from rq import Retry
from rq.job import Job
from sqlalchemy.exc import OperationalError

from openduty.extensions import queue, redis
from openduty.timers import DATABASE_RETRY_SECONDS
from openduty.worker import make_worker


def fails_once_on_the_database(key: str) -> str:
    """An RQ job: the first run meets the database down, the next ones find it back."""
    if redis.get().incr(key) == 1:
        raise OperationalError("SELECT 1", {}, ConnectionRefusedError("connection refused"))
    return "sent"


def test_a_job_that_met_the_database_down_runs_again_soon_without_using_a_retry(app, run_jobs):
    job = queue("high").enqueue(f"{__name__}.fails_once_on_the_database", "calls", retry=Retry(max=1, interval=600))
    started = time.time()
    make_worker(app).work(burst=True)
    job = Job.fetch(job.id, connection=redis.get())
    assert job.get_status() == "scheduled"
    assert job.retries_left == 1
    due = redis.get().zscore("rq:scheduled:high", job.id)
    assert started < due <= time.time() + DATABASE_RETRY_SECONDS

    time.sleep(max(0, due - time.time()) + 0.05)
    run_jobs()
    assert job.get_status() == "finished" and job.return_value() == "sent"


def test_a_failure_of_the_job_itself_still_uses_its_retries(app):
    job = queue("high").enqueue("json.loads", "not json", retry=Retry(max=1, interval=600))
    make_worker(app).work(burst=True)
    job = Job.fetch(job.id, connection=redis.get())
    assert job.get_status() == "scheduled" and job.retries_left == 0
