"""Is the process behind an RQ registration still alive? Reconcile asks it of the worker that
started a job, the scheduler asks it of the holder of a scheduler lock, and a starting worker asks
it of a registration under its own name. And will an RQ job still run (`job_live`), for reconcile.

A registration carries the pid, the hostname and (for Openduty's processes) `host_id`: the host
and PID namespace in which that pid means something. Only there can a dead pid be seen at once;
elsewhere the registration's heartbeat (or its expiry) has to tell.
"""

import logging
import os
import socket
from datetime import UTC, datetime
from functools import cache

from redis import Redis
from rq import Queue
from rq.job import Job, JobStatus
from rq.registry import ScheduledJobRegistry, StartedJobRegistry
from rq.utils import utcparse

log = logging.getLogger(__name__)

WORKER_KEY_PREFIX = "rq:worker:"
# An Openduty worker refreshes its heartbeat every WORKER_HEARTBEAT_SECONDS, also while a job runs
# (its scheduler thread does it); one silent for WORKER_STALE_SECONDS is dead or frozen, wherever
# it runs. (A plain RQ SimpleWorker beats only between jobs, up to 75 s apart.)
WORKER_HEARTBEAT_SECONDS = 1
WORKER_STALE_SECONDS = 10


@cache
def host_id() -> str:
    """This host (boot) and PID namespace: containers sharing a hostname still differ here."""
    parts = [socket.gethostname()]
    try:
        with open("/proc/sys/kernel/random/boot_id") as f:
            parts.append(f.read().strip())
        parts.append(os.readlink("/proc/self/ns/pid"))
    except OSError:
        pass
    return "/".join(parts)


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, someone else's
        return True
    return True


def dead_here(info: dict[str, str]) -> bool:
    """Whether a registration was made on this host and its process no longer exists."""
    pid = int(info.get("pid") or 0)
    return info.get("host_id") == host_id() and pid > 0 and not pid_alive(pid)


def decoded(raw: dict) -> dict[str, str]:
    """A Redis hash as text."""
    return {_text(k): _text(v) for k, v in raw.items()}


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else value


def worker_alive(conn: Redis, name: str | None) -> bool:
    """Whether the RQ worker `name` is registered, not dead, running (if on this host), and (if an
    Openduty worker) heard from within WORKER_STALE_SECONDS."""
    if not name:
        return False
    info = decoded(conn.hgetall(WORKER_KEY_PREFIX + name))
    if not info or "death" in info or dead_here(info):
        return False
    if "host_id" in info:
        age = heartbeat_age(info)
        return age is not None and age <= WORKER_STALE_SECONDS
    return True


def heartbeat_age(info: dict[str, str]) -> float | None:
    """Seconds since the registration's last heartbeat (None if it has none)."""
    if not info.get("last_heartbeat"):
        return None
    return (datetime.now(UTC) - utcparse(info["last_heartbeat"]).replace(tzinfo=UTC)).total_seconds()


# --- RQ jobs: will this job still run? -------------------------------------------------------------


def job_live(job: Job | None, due: datetime, now: datetime) -> bool:
    """Whether `job` will really still run for work due at `due` (and not too late).

    Its status alone is not enough (issue 9): a "queued" job can be in no queue (popped by a
    connection whose process died), and a "started" one can belong to a worker that was killed.
    """
    if job is None:
        return False
    conn = job.connection
    status = job.get_status(refresh=False)
    if status == JobStatus.QUEUED:
        queue = Queue(job.origin, connection=conn)
        return any(conn.lpos(key, job.id) is not None for key in (queue.key, queue.intermediate_queue_key))
    if status == JobStatus.SCHEDULED:
        score = conn.zscore(ScheduledJobRegistry(job.origin, connection=conn).key, job.id)
        # Not scheduled after all, or later than due (e.g. the DB was moved on by hand): re-arm.
        return score is not None and score <= max(due, now).timestamp() + 1
    if status == JobStatus.STARTED:
        started = job.started_at or job.enqueued_at
        in_time = started is not None and (now - started).total_seconds() < (job.timeout or 180) + 60
        return in_time and worker_alive(conn, job.worker_name)
    return False  # finished, failed, stopped, canceled; Openduty never defers jobs


def remove_job(job: Job | None) -> None:
    """Remove a dead job before arming a new one under its id, even if RQ cannot clean it up."""
    if job is None:
        return
    try:
        job.delete()
    except Exception:  # e.g. "Execution ... not found in Redis" for a dead worker's job
        log.warning("RQ could not clean up job %s; removing it by hand", job.id, exc_info=True)
        conn = job.connection
        started = StartedJobRegistry(job.origin, connection=conn).key
        executions = [m for m in conn.zrange(started, 0, -1) if m.decode().startswith(f"{job.id}:")]
        with conn.pipeline() as pipe:
            if executions:
                pipe.zrem(started, *executions)
            pipe.delete(job.key)
            pipe.execute()


def fetch_jobs(ids: list[str], conn) -> list[Job | None]:
    """The jobs with these ids (None where missing), each on its own if one of them is unreadable."""
    if not ids:
        return []
    try:
        return Job.fetch_many(ids, connection=conn)
    except Exception:
        jobs: list[Job | None] = []
        for job_id in ids:
            try:
                jobs.append(Job.fetch(job_id, connection=conn))
            except Exception:  # missing or unreadable: re-armed under the same id
                conn.delete(Job.key_for(job_id))
                jobs.append(None)
        return jobs
