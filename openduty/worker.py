"""The RQ worker that runs Openduty's jobs, each inside an app context.

A SimpleWorker runs jobs in its own process instead of forking one per job: about 95 jobs/s
here against about 40 for the forking worker, and pages are latency-critical. Every job is
short and idempotent, and a stuck job is bounded by its RQ timeout (see bench/notify.py for the
numbers behind the choice, and docs/escalation.md for how many workers to run).

A long-running worker reconciles at start-up (re-arming anything a crash or a Redis flush lost)
and keeps the periodic jobs armed; burst workers (tests) do neither.
"""

import os
import socket
import time

from flask import Flask
from rq import SimpleWorker
from rq.registry import ScheduledJobRegistry
from rq.scheduler import SCHEDULER_KEY_TEMPLATE, RQScheduler
from rq.scripts import release_lock

from openduty.extensions import db, queues
from openduty.notifiers import delivery

# Seconds between the worker's maintenance runs (which also re-arm the periodic jobs, in case
# Redis was flushed under a running worker). The worker TTL bounds how long it blocks waiting
# for jobs, hence how soon maintenance runs on an idle worker.
MAINTENANCE_INTERVAL = 60
WORKER_TTL = 90
# Seconds between the scheduler's polls for due jobs. RQ's default (1 s) plus its whole-second
# due times would make a scheduled page up to a second early or up to 2 s late; with exact due
# times (escalation._enqueue_at) and a 0.1 s poll it is never early and at most ~0.1 s late
# before a worker picks it up. Each poll is a few cheap Redis round trips, and only one
# scheduler (the lock holder) polls.
SCHEDULER_INTERVAL = 0.1


class PreciseScheduledJobRegistry(ScheduledJobRegistry):
    """Releases jobs whose exact (fractional) due time has passed, not the truncated second."""

    def get_jobs_to_schedule(self, timestamp=None, chunk_size: int = 1000) -> list[str]:
        ids = self.connection.zrangebyscore(self.key, 0, time.time(), start=0, num=chunk_size)
        return [i.decode() if isinstance(i, bytes) else i for i in ids]


class FastScheduler(RQScheduler):
    """RQ's scheduler, polling every SCHEDULER_INTERVAL seconds by the exact clock.

    `interval` stays 1 because RQ derives its (integer) lock TTLs from it; only the sleep is shorter.
    """

    def prepare_registries(self, queue_names=None):
        super().prepare_registries(queue_names)
        self._scheduled_job_registries = [
            PreciseScheduledJobRegistry(r.name, connection=self.connection, serializer=self.serializer)
            for r in self._scheduled_job_registries
        ]

    def work(self):
        self._install_signal_handlers()
        self.register_birth()
        while True:
            if self._stop_requested:
                self.stop()
                break
            if self.should_reacquire_locks:
                self.acquire_locks()
            self.heartbeat()
            self.enqueue_scheduled_jobs()
            time.sleep(SCHEDULER_INTERVAL)


class AppWorker(SimpleWorker):
    """A SimpleWorker that runs each job in a fresh app context and cleans the session after."""

    app: Flask
    bursting = False

    def execute_job(self, job, queue):
        with self.app.app_context():
            # Jobs commit several times and never need rows reloaded after a commit.
            db.session().expire_on_commit = False
            try:
                return super().execute_job(job, queue)
            finally:
                db.session.remove()

    def work(self, burst: bool = False, **kwargs):
        self.bursting = burst
        if not burst:
            self.start_up()
        try:
            return super().work(burst=burst, **kwargs)
        finally:
            if burst:  # a burst is over when the sends it started are (their retries are queued)
                delivery.wait_for_sends()

    def start_up(self) -> None:
        """Reconcile (nothing lost while no worker ran) and arm the periodic jobs."""
        from openduty import escalation

        self.release_dead_scheduler_locks()
        with self.app.app_context():
            try:
                counts = escalation.reconcile()
                self.log.info("Start-up reconcile: %s", counts)
                escalation.ensure_periodic()
            finally:
                db.session.remove()

    def _start_scheduler(self, burst=False, logging_level="INFO", date_format=None, log_format=None):
        """RQ's own `_start_scheduler`, with a shorter polling interval (SCHEDULER_INTERVAL)."""
        kwargs = {k: v for k, v in (("date_format", date_format), ("log_format", log_format)) if v is not None}
        self.scheduler = FastScheduler(
            self.queues,
            connection=self.connection,
            logging_level=logging_level if logging_level is not None else self.log.level,
            serializer=self.serializer,
            **kwargs,
        )
        self.scheduler.acquire_locks()
        if self.scheduler.acquired_locks:
            if burst:
                try:
                    self.scheduler.register_birth()
                    self.scheduler.enqueue_scheduled_jobs()
                finally:
                    self.scheduler.release_locks()
                    self.scheduler.register_death()
            else:
                self.scheduler.start()

    def release_dead_scheduler_locks(self) -> None:
        """Free scheduler locks held by a scheduler process on this host that no longer exists.

        A killed worker leaves its scheduler lock for up to a minute (its TTL), and until then no
        scheduler moves due jobs onto the queues. On the same host we can tell it is dead.
        """
        conn = self.connection
        host = socket.gethostname()
        for name in self.queue_names():
            key = RQScheduler.get_locking_key(name)
            holder = conn.get(key)
            if holder is None:
                continue
            info = conn.hgetall(SCHEDULER_KEY_TEMPLATE % holder.decode())
            pid = int(info.get(b"pid", 0) or 0)
            if info.get(b"hostname", b"").decode() == host and pid and not _alive(pid):
                release_lock(conn, key, holder.decode())
                self.log.info("Released the scheduler lock of dead scheduler %s (pid %s)", holder.decode(), pid)

    def run_maintenance_tasks(self):
        super().run_maintenance_tasks()
        if self.bursting:
            return
        from openduty import escalation

        with self.app.app_context():
            try:
                escalation.ensure_periodic()
            except Exception:
                self.log.exception("Could not arm the periodic jobs")
            finally:
                db.session.remove()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def make_worker(app: Flask, name: str | None = None) -> AppWorker:
    """A worker for `app`, listening on every queue in priority order."""
    with app.app_context():
        qs = queues()
    worker = AppWorker(
        qs,
        connection=qs[0].connection,
        name=name,
        maintenance_interval=MAINTENANCE_INTERVAL,
        worker_ttl=WORKER_TTL,
    )
    worker.app = app
    return worker
