"""RQ's scheduler as a thread of the worker process (`SchedulerThread`), releasing scheduled jobs
by the exact clock, and its heartbeats.

The worker (openduty.worker) starts one per process; in run-all too, whose worker is its child. A
thread, never a fork: nothing outlives a kill -9 of the worker (a forked scheduler held the dead
worker's Redis socket, whose pending BLPOP then swallowed the next job: issue 9). While idle it
sleeps until the first scheduled job is due, waking early when Redis says a scheduled job changed
(openduty.key_watch), and at least once a heartbeat.
"""

import logging
import threading
import time
from typing import Protocol

from flask import Flask
from redis.exceptions import RedisError
from rq.registry import ScheduledJobRegistry
from rq.scheduler import SCHEDULER_KEY_TEMPLATE, RQScheduler
from rq.scripts import release_lock

from openduty import timers
from openduty.extensions import db, queues
from openduty.key_watch import KeyWatch
from openduty.liveness import WORKER_HEARTBEAT_SECONDS, dead_here, decoded, heartbeat_age, host_id

log = logging.getLogger(__name__)

# RQ's scheduler polls each second by whole-second due times (a page up to 1 s early or 2 s late).
# Ours sleeps until the exact due time (timers._arm) of the first job, until a scheduled
# job changes (openduty.key_watch) or until its heartbeat: never early, not late, ~3 Redis round
# trips a second while idle. Where Redis cannot watch keys (< 6.0) it polls every SCHEDULER_INTERVAL.
SCHEDULER_INTERVAL = 0.1
# While Redis or the database is unreachable, retry at most this many seconds apart (RQ backs
# off up to 60 s, which would hold pages up to a minute after the fault ends).
RECONNECT_MAX_WAIT = 1.0
# A scheduler whose heartbeat (every WORKER_HEARTBEAT_SECONDS) is this many seconds old is dead or
# frozen: another scheduler takes its locks, instead of waiting out RQ's 61 s lock TTL.
SCHEDULER_STALE_SECONDS = 5
# A scheduler without the locks tries to take them this often (RQ: every 10 minutes).
LOCK_RETRY_SECONDS = 1.0
# A key every scheduler keeps in Redis. When it is missing, Redis lost its data (a flush, or a
# restart without persistence): the timers are gone and the database must re-arm them at once.
SENTINEL_KEY = "openduty:redis-sentinel"


class PreciseScheduledJobRegistry(ScheduledJobRegistry):
    """Releases jobs whose exact (fractional) due time has passed, not the truncated second."""

    def get_jobs_to_schedule(self, timestamp=None, chunk_size: int = 1000) -> list[str]:
        ids = self.connection.zrangebyscore(self.key, 0, time.time(), start=0, num=chunk_size)
        return [i.decode() if isinstance(i, bytes) else i for i in ids]


class FastScheduler(RQScheduler):
    """RQ's scheduler, releasing jobs by the exact clock; run by `SchedulerThread`.

    `interval` stays 1 because RQ derives its (integer) lock TTLs from it; the polling interval
    is SCHEDULER_INTERVAL.
    """

    def __init__(self, queues, connection, **kwargs) -> None:
        super().__init__(queues, connection=connection, **kwargs)
        # A thread of this process: the app's own connection (which follows a Sentinel failover),
        # not the copy RQ rebuilds from the connection's settings for a forked scheduler.
        self._connection = connection

    def prepare_registries(self, queue_names=None):
        super().prepare_registries(queue_names)
        self._scheduled_job_registries = [
            PreciseScheduledJobRegistry(r.name, connection=self.connection, serializer=self.serializer)
            for r in self._scheduled_job_registries
        ]

    def to_dict(self) -> dict:
        return {**super().to_dict(), "host_id": host_id()}

    def take_over_dead_locks(self) -> None:
        """Free the locks of schedulers that are gone: no heartbeat for SCHEDULER_STALE_SECONDS,
        or a dead PID on this host. Until then RQ would leave their queues unscheduled for up to
        a minute (the lock TTL)."""
        conn = self.connection
        for name in self._queue_names - self.acquired_locks:
            key = self.get_locking_key(name)
            holder = conn.get(key)
            if holder is None or holder.decode() == self.name:
                continue
            info = decoded(conn.hgetall(SCHEDULER_KEY_TEMPLATE % holder.decode()))
            if _scheduler_alive(info):
                continue
            release_lock(conn, key, holder.decode())
            self.log.info("Released the scheduler lock for %s of dead scheduler %s", name, holder.decode())


def release_due_jobs(connection, queue_names: list[str]) -> None:
    """Move every scheduled job that is due onto its queue, once (a burst worker, the tests)."""
    scheduler = FastScheduler(queue_names, connection=connection)
    scheduler.prepare_registries(queue_names)
    scheduler.enqueue_scheduled_jobs()


def _scheduler_alive(info: dict[str, str]) -> bool:
    age = heartbeat_age(info)
    return age is not None and age <= SCHEDULER_STALE_SECONDS and not dead_here(info)


class KeepsAlive(Protocol):
    """The worker whose heartbeat the scheduler thread keeps (openduty.worker.AppWorker)."""

    def keep_alive(self) -> None: ...


class SchedulerThread(threading.Thread):
    """RQ's scheduler as a thread of the worker process, never a fork.

    It moves due jobs onto their queues when they are due (if it holds the scheduler locks; one
    process does) and checks that Redis still has its data; every WORKER_HEARTBEAT_SECONDS it
    heartbeats (for itself, its locks and its worker) and tries for the locks it lacks. It survives
    Redis outages (retrying at most RECONNECT_MAX_WAIT apart). After an outage, after Redis lost
    its data, and once at start, it re-arms the periodic jobs and reconciles in a helper thread
    (so a long reconcile never stalls the polls), retrying until that succeeds.
    """

    def __init__(self, app: Flask, worker: KeepsAlive | None = None) -> None:
        super().__init__(name="rq-scheduler", daemon=True)
        self.app = app
        self.worker = worker  # whose heartbeat this thread keeps
        self._last_beat = 0.0
        with app.app_context():
            names = [q.name for q in queues()]
            connection = queues()[0].connection
        self.scheduler = FastScheduler(names, connection=connection)
        self.watch = KeyWatch(connection, [ScheduledJobRegistry.key_template.format("")])
        self.stopped = threading.Event()
        self.recovery_owed = True  # a process starting up reconciles: nothing lost while none ran
        self.recoveries = 0
        self._recovering: threading.Thread | None = None
        self._last_lock_attempt = 0.0
        self._down_since: float | None = None
        self._last_look = 0.0

    def stop(self, timeout: float = 5) -> None:
        self.stopped.set()
        if self.is_alive():
            self.join(timeout)

    def run(self) -> None:
        wait = 0.0  # until the next poll: the first due job or heartbeat, or a retry after a failure
        while not self.stopped.is_set():
            try:
                if self._down_since is None and self.watch.supported:
                    deadline = time.monotonic() + wait
                    if self.watch.wait(wait):  # a scheduled job changed (another app's on this Redis too)
                        # Then look at most every SCHEDULER_INTERVAL: no busier than polling.
                        pause = min(deadline, self._last_look + SCHEDULER_INTERVAL) - time.monotonic()
                        self.stopped.wait(max(0.0, pause))
                elif self.stopped.wait(wait):
                    break
                wait = self.poll()
            except (RedisError, OSError) as exc:
                if self._down_since is None:
                    self._down_since = time.monotonic()
                    log.warning("Scheduler: Redis unreachable (%s); retrying every %.1f s at most", exc,
                                RECONNECT_MAX_WAIT)  # fmt: skip
                self.recovery_owed = True
                wait = min(max(wait * 2, SCHEDULER_INTERVAL), RECONNECT_MAX_WAIT)
                continue
            except Exception:  # a bug must not end the scheduler; the next poll tries again
                log.exception("Scheduler poll failed")
                self.stopped.wait(RECONNECT_MAX_WAIT)
                wait = 0.0
                continue
            if self._down_since is not None:
                log.info("Scheduler: Redis is back after %.1f s", time.monotonic() - self._down_since)
                self._down_since = None
        self.watch.close()
        try:
            self.scheduler.stop()
        except RedisError:
            pass  # Redis is away: there is no lock to give back, and other schedulers take over

    def poll(self) -> float:
        """Heartbeat if it is time, release the jobs that are due; the seconds until the next poll."""
        if time.monotonic() - self._last_beat >= WORKER_HEARTBEAT_SECONDS:
            self._last_beat = time.monotonic()
            self.beat()
        data_lost, first_due = self.look()
        if data_lost:  # Redis lost its data (or this is its first use): re-register, re-arm everything
            self.scheduler.register_birth()
            self.recovery_owed = True
        if first_due is not None and first_due <= time.time():
            self.scheduler.enqueue_scheduled_jobs()
            first_due = 0.0  # look again at once: more may be due, and the next one is unknown
        if self.recovery_owed and not (self._recovering and self._recovering.is_alive()):
            self.recovery_owed = False
            self._recovering = threading.Thread(target=self.recover, name="rq-scheduler-recover", daemon=True)
            self._recovering.start()
        wait = self._last_beat + WORKER_HEARTBEAT_SECONDS - time.monotonic()
        wait = min(wait, first_due - time.time()) if first_due is not None else wait
        return max(0.0, wait if self.watch.supported else min(wait, SCHEDULER_INTERVAL))

    def beat(self) -> None:
        """Try for the scheduler locks this process lacks, and heartbeat (scheduler and worker)."""
        scheduler = self.scheduler
        if scheduler.acquired_locks != scheduler._queue_names:
            if time.monotonic() - self._last_lock_attempt >= LOCK_RETRY_SECONDS:
                self._last_lock_attempt = time.monotonic()
                scheduler.take_over_dead_locks()
                if scheduler.acquire_locks():
                    scheduler.register_birth()
        scheduler.heartbeat()
        if self.worker is not None:
            self.worker.keep_alive()

    def look(self) -> tuple[bool, float | None]:
        """In one round trip: whether Redis lost its data (the sentinel was missing: set again), and
        when the first job of the queues whose lock this scheduler holds is due."""
        scheduler = self.scheduler
        if scheduler.acquired_locks and not scheduler._scheduled_job_registries:
            scheduler.prepare_registries()
        registries = scheduler._scheduled_job_registries if scheduler.acquired_locks else []
        self._last_look = time.monotonic()
        with scheduler.connection.pipeline(transaction=False) as pipe:
            pipe.set(SENTINEL_KEY, host_id(), nx=True)
            for registry in registries:
                pipe.zrange(registry.key, 0, 0, withscores=True)
            missing, *firsts = pipe.execute()
        return bool(missing), min((float(first[0][1]) for first in firsts if first), default=None)

    def recover(self) -> None:
        """Re-arm the periodic jobs and every owed escalation and page that has no live job."""
        with self.app.app_context():
            try:
                timers.ensure_periodic()
                counts = timers.reconcile()
                self.recoveries += 1
                log.info("Reconciled: %s", counts)
            except Exception:
                log.exception("Reconcile failed; trying again in %.0f s", RECONNECT_MAX_WAIT)
                time.sleep(RECONNECT_MAX_WAIT)
                self.recovery_owed = True
            finally:
                db.session.remove()
