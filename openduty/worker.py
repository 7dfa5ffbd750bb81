"""The RQ worker that runs Openduty's jobs, each inside an app context, and the scheduler thread.

A SimpleWorker runs jobs in its own process instead of forking one per job: about 95 jobs/s
here against about 40 for the forking worker, and pages are latency-critical. Every job is
short and idempotent, and a stuck job is bounded by its RQ timeout (see bench/notify.py for the
numbers behind the choice, and docs/escalation.md for how many workers to run).

The worker forks nothing: RQ's scheduler runs as a thread of the worker (openduty.scheduler's
`SchedulerThread`; in run-all too, whose worker is its child). run-all itself forks its worker
once (`ForkedWorker`), so that the two processes share the memory of the loaded app.

Faults a long-running worker rides out by itself, each within seconds of the fault ending
(docs/reliability.md has the measured times):
- Redis down, restarted or flushed: reconnects every second at most; the scheduler thread then
  re-arms the periodic jobs and reconciles (the database says what is owed).
- The database down: a job that fails on it is retried a second or two later without using up
  one of its own retries (a page's delivery attempts count failures of the receiver, not ours).
- Its own predecessor killed with the same `--name`: the dead registration is retired at once.
- An error that ends RQ's work loop: the loop starts again.
Burst workers (tests) do none of this.
"""

import contextlib
import ctypes
import gc
import logging
import os
import signal
import subprocess
import sys
import time
import traceback
from datetime import UTC, datetime, timedelta

from flask import Flask
from redis.exceptions import RedisError
from rq import Queue, SimpleWorker, Worker, worker_registration
from rq.exceptions import StopRequested
from rq.job import Job, JobStatus
from rq.utils import now, utcformat

from openduty import delivery, logs, metrics, timers
from openduty.extensions import db, queues, redis
from openduty.liveness import dead_here, decoded, host_id
from openduty.scheduler import RECONNECT_MAX_WAIT, SCHEDULER_INTERVAL, SchedulerThread, release_due_jobs

log = logging.getLogger(__name__)

# Seconds between the worker's maintenance runs (RQ's registry cleaning; it also re-arms the
# periodic jobs). The worker TTL bounds how long it blocks waiting for jobs.
MAINTENANCE_INTERVAL = 60
WORKER_TTL = 90
# A job that fails because the database is unreachable (timers.DATABASE_ERRORS) runs again
# every timers.DATABASE_RETRY_SECONDS for up to this long; then it fails as usual (and
# reconcile re-arms what is still owed).
DATABASE_RETRY_FOR = 3600
# How long a stopping worker waits for its pub/sub thread (RQ's own wait: 1 s); if Redis is gone
# the thread may never answer, and the worker stops anyway.
UNSUBSCRIBE_WAIT_SECONDS = 10


def die_with_parent(parent: int, sig: int = signal.SIGTERM) -> None:
    """Get `sig` when process `parent` (our parent) dies, so that a kill -9 of it leaves no orphan
    (Linux PR_SET_PDEATHSIG; elsewhere nothing happens). Called by the child itself after exec,
    not as a `preexec_fn` (unsafe in a process with threads), or after a fork. If the parent is
    already gone, exit at once."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, sig, 0, 0, 0)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return
    if os.getppid() != parent:
        os._exit(1)


class AppWorker(SimpleWorker):
    """A SimpleWorker that runs each job in a fresh app context and cleans the session after."""

    app: Flask
    bursting = False
    max_connection_wait_time = RECONNECT_MAX_WAIT
    _stop_wanted = False
    _database_down = False
    _registered = False  # registered in Redis now (keep_alive beats only then)
    _registered_before = False  # registered earlier in this process (the loop may start again)

    def execute_job(self, job, queue):
        request_id = (job.meta or {}).get(logs.META_KEY)
        with self.app.app_context(), logs.running_as(request_id, job.id):
            if request_id:  # RQ named the job before this context: one line ties it to its request
                self.log.info("Job %s (%s) runs for request %s", job.id, job.func_name, request_id)
            # Jobs commit several times and never need rows reloaded after a commit.
            db.session().expire_on_commit = False
            try:
                return super().execute_job(job, queue)
            finally:
                db.session.remove()

    def work(self, burst: bool = False, with_scheduler: bool = False, **kwargs) -> bool:
        """Burst: run what is queued (moving due scheduled jobs first if `with_scheduler`).
        Otherwise run until stopped, with the scheduler as a thread of this process."""
        self.bursting = burst
        if burst:
            if with_scheduler:
                release_due_jobs(self.connection, self.queue_names())
            try:
                return super().work(burst=True, **kwargs)
            finally:  # a burst is over when the sends it started are (their retries are queued)
                delivery.wait_for_sends()
        self.retire_dead_workers()
        scheduler = SchedulerThread(self.app, worker=self)
        scheduler.start()
        try:
            return self._work_until_stopped(**kwargs)
        finally:
            delivery.wait_for_sends(timeout=timers.DELIVER_TIMEOUT)  # let pages in flight finish
            scheduler.stop()

    def _work_until_stopped(self, **kwargs) -> bool:
        """RQ's work loop, started again whenever it ends on an error instead of a stop request."""
        worked = False
        wait = SCHEDULER_INTERVAL
        while True:
            try:
                worked = super().work(burst=False, **kwargs) or worked
            except (RedisError, OSError, ValueError) as exc:  # e.g. registering while Redis is down
                self.log.warning("Worker %s: could not run (%s)", self.name, exc)
            if self._stop_wanted or self._stop_requested:
                return worked
            self.log.warning("Worker %s: work loop ended without a stop request; starting again", self.name)
            try:
                time.sleep(wait)
            except StopRequested:
                return worked
            wait = min(wait * 2, RECONNECT_MAX_WAIT)

    def request_stop(self, signum, frame):
        self._stop_wanted = True
        super().request_stop(signum, frame)

    def serialize(self) -> dict:
        return {**super().serialize(), "host_id": host_id()}

    def unsubscribe(self):
        """RQ's, with its pub/sub thread given time to see the UNSUBSCRIBE answer and stop. RQ waits
        1 s, then closes the connection under a thread still reading it: on a busy machine the
        thread died with an OSError (seen as an unhandled thread exception in the test suite)."""
        if self.pubsub_thread:
            self.pubsub.unsubscribe()  # its answer wakes the thread from its read
            self.pubsub_thread.stop()
            self.pubsub_thread.join(timeout=UNSUBSCRIBE_WAIT_SECONDS)
        super().unsubscribe()

    def register_birth(self):
        """Register, first retiring a registration of this name left by a process that is gone."""
        self.retire_dead_workers(only=self.name)
        super().register_birth()
        self._registered = self._registered_before = True

    def register_death(self):
        self._registered = False
        super().register_death()

    def keep_alive(self) -> None:
        """Refresh this worker's heartbeat (called every WORKER_HEARTBEAT_SECONDS by its scheduler
        thread, also while a job runs), so that any process can tell it is alive; if Redis lost the
        registration (a flush), register again."""
        if not self._registered:
            return
        self.last_heartbeat = now()
        with self.connection.pipeline() as pipe:
            pipe.hset(self.key, "last_heartbeat", utcformat(self.last_heartbeat))
            pipe.hexists(self.key, "birth")
            registered = pipe.execute()[1]
        if not registered:  # the hash was gone (RQ's own heartbeat may have left a stub): write it whole
            with self.connection.pipeline() as pipe:
                pipe.hset(self.key, mapping=self.serialize())
                pipe.expire(self.key, self.worker_ttl + 60)
                worker_registration.register(self, pipe)
                pipe.execute()

    def retire_dead_workers(self, only: str | None = None) -> int:
        """Retire the registrations of workers on this host whose process is gone (kill -9, OOM):
        their started jobs go back to the front of their queues, and their names are free.

        RQ would refuse a new worker of the same name until the dead one's TTL ran out (~150 s)
        and leave its jobs "started" for as long.
        """
        retired = 0
        for worker in Worker.all(connection=self.connection):
            if only is not None and worker.name != only:
                continue
            info = decoded(self.connection.hgetall(worker.key))
            pid = int(info.get("pid") or 0)
            # Our own registration, when the work loop starts again after an error.
            ours = self._registered_before and info.get("host_id") == host_id() and pid == os.getpid()
            if "death" in info or not (ours or dead_here(info)):
                continue
            requeued = _requeue_started_jobs(worker)
            worker.register_death()
            retired += 1
            self.log.info("Retired dead worker %s (pid %s); requeued %d started job(s)", worker.name, pid, requeued)
        return retired

    def handle_exception(self, job, *exc_info):
        self._database_down = isinstance(exc_info[1], timers.DATABASE_ERRORS)
        return super().handle_exception(job, *exc_info)

    def handle_job_failure(self, job, queue, started_job_registry=None, exc_string="", execution=None):
        """A job that failed because the database is down runs again shortly, without using up
        one of its retries (RQ's retries, with their long backoff, are for the job's own failures)."""
        database_down, self._database_down = self._database_down, False
        if database_down and self._retry_after_database_error(job, queue, execution):
            return
        super().handle_job_failure(job, queue, started_job_registry, exc_string, execution)

    def _retry_after_database_error(self, job, queue, execution) -> bool:
        first = job.meta.setdefault("database_down_since", time.time())
        if time.time() - first > DATABASE_RETRY_FOR:
            return False
        due = datetime.now(UTC) + timedelta(seconds=timers.DATABASE_RETRY_SECONDS)
        try:
            with self.connection.pipeline() as pipe:
                self.cleanup_execution(job, pipeline=pipe, execution=execution)
                queue.schedule_job(job, due, pipeline=pipe)
                pipe.zadd(queue.scheduled_job_registry.key, {job.id: due.timestamp()})
                pipe.execute()
        except RedisError:
            self.log.exception("Worker %s: could not re-schedule job %s", self.name, job.id)
            return False
        self.log.warning("Worker %s: job %s: the database is unreachable; trying again in %.0f s",
                         self.name, job.id, timers.DATABASE_RETRY_SECONDS)  # fmt: skip
        return True

    def run_maintenance_tasks(self):
        super().run_maintenance_tasks()
        if self.bursting:
            return
        with self.app.app_context():
            try:
                timers.ensure_periodic()
            except StopRequested:  # a SIGTERM that landed here ends the loop, as anywhere else
                raise
            except Exception:
                self.log.exception("Could not arm the periodic jobs")
            finally:
                db.session.remove()


def _requeue_started_jobs(worker: Worker) -> int:
    """Put the jobs a dead worker had started back at the front of their queues."""
    requeued = 0
    for execution in worker.get_current_executions(refresh=True):
        try:
            job = Job.fetch(execution.job_id, connection=worker.connection)
            if job.get_status() != JobStatus.STARTED:
                continue
            queue = Queue(job.origin, connection=worker.connection)
            with worker.connection.pipeline() as pipe:
                execution.delete(job=job, pipeline=pipe)
                pipe.execute()
            queue.enqueue_job(job, at_front=True)
            requeued += 1
        except Exception:  # one broken job must not keep the others (or the worker) down
            log.exception("Could not requeue job %s of dead worker %s", execution.job_id, worker.name)
    return requeued


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


def run(app: Flask, name: str | None = None, burst: bool = False, parent: int | None = None) -> None:
    """Work (with the scheduler thread) until stopped: the `worker` command, and run-all's worker,
    which dies with run-all (`parent`)."""
    if parent:
        die_with_parent(parent)
    try:
        make_worker(app, name=name).work(burst=burst, with_scheduler=True, logging_level="INFO")
    finally:
        metrics.process_exited(os.getpid())


class ForkedWorker:
    """run-all's worker, forked from run-all once the app is loaded: the two processes share the
    pages of everything imported (~80 MB at idle) until one writes to them, where a worker started
    afresh imports its own copy. Only fork before any other thread runs: a thread could hold a lock
    at that moment (logging's, a connection pool's) that the child would then wait on forever.

    It shows what run-all's supervision uses of subprocess.Popen: pid, returncode, poll(), wait(),
    terminate(), kill(). `inherited`: run-all's files the worker must not keep open (its lock).
    """

    def __init__(self, app: Flask, inherited: list) -> None:
        parent = os.getpid()
        gc.freeze()  # the collector leaves what exists now alone, so its pages stay shared
        pid = os.fork()
        if pid == 0:
            os._exit(_work_forked(app, parent, inherited))
        self.pid = pid
        self.returncode: int | None = None

    def poll(self) -> int | None:
        if self.returncode is None:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.poll() is None:
            if deadline is not None and time.monotonic() >= deadline:
                raise subprocess.TimeoutExpired(f"worker {self.pid}", timeout)
            time.sleep(0.05)
        return self.returncode

    def terminate(self) -> None:
        if self.poll() is None:
            os.kill(self.pid, signal.SIGTERM)

    def kill(self) -> None:
        if self.poll() is None:
            os.kill(self.pid, signal.SIGKILL)


# How the forked worker shows in ps and top (at most 15 characters), run-all being its command line.
FORKED_NAME = b"openduty worker"


def _work_forked(app: Flask, parent: int, inherited: list) -> int:
    """The forked worker's life: let go of what is run-all's, work as `openduty worker` does; its
    exit status."""
    status = 1
    try:
        for handle in inherited:
            handle.close()
        signal.signal(signal.SIGTERM, signal.SIG_DFL)  # run-all's handlers; RQ installs its own
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        with contextlib.suppress(OSError), open("/proc/self/comm", "wb") as comm:  # Linux only
            comm.write(FORKED_NAME)
        if redis.embedded(app):
            app.config["REDIS_URL"] = redis.url(app)  # as run-all hands it to a worker it starts
        redis.init_app(app)  # connections of its own, not run-all's
        with app.app_context():
            db.engine.dispose(close=False)  # run-all's database connections stay run-all's
        run(app, parent=parent)
        status = 0
    except SystemExit as exc:
        status = exc.code if isinstance(exc.code, int) else 1
    except BaseException:  # noqa: BLE001 (the child must reach os._exit, never run-all's code)
        traceback.print_exc()
    finally:
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
    return status
