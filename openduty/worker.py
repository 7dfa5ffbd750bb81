"""The RQ worker that runs Openduty's jobs, each inside an app context.

A SimpleWorker runs jobs in its own process instead of forking one per job: about 95 jobs/s
here against about 40 for the forking worker, and pages are latency-critical. Every job is
short and idempotent, and a stuck job is bounded by its RQ timeout.
"""

from flask import Flask
from rq import SimpleWorker

from openduty.extensions import db, queues


class AppWorker(SimpleWorker):
    """A SimpleWorker that runs each job in a fresh app context and cleans the session after."""

    app: Flask

    def execute_job(self, job, queue):
        with self.app.app_context():
            try:
                return super().execute_job(job, queue)
            finally:
                db.session.remove()


def make_worker(app: Flask, name: str | None = None) -> AppWorker:
    """A worker for `app`, listening on every queue in priority order."""
    with app.app_context():
        qs = queues()
    worker = AppWorker(qs, connection=qs[0].connection, name=name)
    worker.app = app
    return worker
