"""Timers: the RQ jobs that drive escalations and deliveries, armed from what the database says.

The database is the source of truth: an open incident's `next_escalation_at` (with its `epoch`)
says when it must move on, and pending Notification rows say which pages are owed. RQ jobs are only
timers for those rows, armed after the transaction that wrote them commits (`track_incident`,
`track_notification`: see `_collect` and `_enqueue`), and re-armed by `reconcile()` when Redis lost
them. Also here: the queue names, job ids and timeouts, the periodic jobs, and the retry policy
for jobs that meet the database down.
"""

import logging
from datetime import UTC, datetime, timedelta

from flask import current_app
from redis.client import Pipeline
from rq import Queue
from rq.exceptions import DuplicateJobError
from rq.job import Job, JobStatus
from rq.registry import ScheduledJobRegistry, StartedJobRegistry
from sqlalchemy import event, inspect, select, update
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.orm import Session

from openduty import clock
from openduty.extensions import db, queue, redis
from openduty.liveness import worker_alive
from openduty.models import Incident, Notification
from openduty.models.notification import MAX_UNCONFIRMED

log = logging.getLogger(__name__)

# Queues: pages and escalations jump ahead of resolve notices, tests and housekeeping.
ESCALATION_QUEUE = "high"
PAGE_QUEUE = "high"
NOTICE_QUEUE = "default"
HOUSEKEEPING_QUEUE = "low"

# Job timeouts (seconds). A deliver job waits on an SMTP server or an HTTP API at most this long.
ESCALATE_TIMEOUT = 60
DELIVER_TIMEOUT = 60
# A `sending` claim older than this belongs to a worker that died mid-delivery (a claim by a
# process on this host that is gone is recovered at once). A send takes at most the connect and
# read timeouts (35 s by default) plus recording its outcome.
SENDING_LEASE = timedelta(seconds=DELIVER_TIMEOUT + 60)
# Errors that say the database is unreachable or busy, not that the data is wrong: jobs run again
# shortly instead of failing (and a delivery attempt is not used up), see openduty.delivery.
DATABASE_ERRORS = (OperationalError, InterfaceError)
DATABASE_RETRY_SECONDS = 2
# Finished jobs are kept briefly (for `rq info`), failed ones for a week (for debugging).
RESULT_TTL = 600
FAILURE_TTL = 7 * 24 * 3600
# How often the reconcile job runs (seconds).
RECONCILE_INTERVAL = 60


# --- Arming timers after commit ------------------------------------------------------------------

_INCIDENTS = "openduty.timers.incidents"
_NOTIFICATIONS = "openduty.timers.notifications"
_READY = "openduty.timers.ready"


def track_incident(incident: Incident) -> None:
    """Arm this incident's escalation timer once the current transaction commits."""
    db.session.info.setdefault(_INCIDENTS, []).append(incident)


def track_notification(notification: Notification) -> None:
    """Arm this notification's delivery once the current transaction commits."""
    db.session.info.setdefault(_NOTIFICATIONS, []).append(notification)


def _identity(obj) -> int | None:
    state = inspect(obj)
    return state.identity[0] if state.identity else None


@event.listens_for(Session, "before_commit")
def _collect(session: Session) -> None:
    """Read the committed-to-be state of tracked rows, so `_enqueue` arms exactly what the DB says."""
    if session.get_nested_transaction() is not None:
        return
    incidents = session.info.pop(_INCIDENTS, None)
    notifications = session.info.pop(_NOTIFICATIONS, None)
    if not incidents and not notifications:
        return
    session.flush()
    ready = session.info.setdefault(_READY, [])
    incident_ids = {i for i in map(_identity, incidents or []) if i is not None}
    if incident_ids:
        rows = session.execute(
            select(Incident.id, Incident.epoch, Incident.next_escalation_at).where(
                Incident.id.in_(incident_ids), Incident.status != "resolved", Incident.next_escalation_at.is_not(None)
            )
        )
        ready.extend(("escalate", r.id, r.epoch, r.next_escalation_at) for r in rows)
    notification_ids = {i for i in map(_identity, notifications or []) if i is not None}
    if notification_ids:
        rows = session.execute(
            select(Notification.id, Notification.send_at, Notification.retry_at, Notification.purpose).where(
                Notification.id.in_(notification_ids), Notification.status == "pending"
            )
        )
        ready.extend(("deliver", r.id, r.purpose, max(r.send_at, r.retry_at or r.send_at), r.send_at) for r in rows)


@event.listens_for(Session, "after_commit")
def _enqueue(session: Session) -> None:
    """Arm every timer the transaction owes in one Redis transaction (one round trip, however many
    incidents and pages it wrote): all of them or, if Redis fails, none; reconcile arms them then."""
    if session.get_nested_transaction() is not None:
        return
    ready = session.info.pop(_READY, None)
    if not ready:
        return
    try:
        with redis.get().pipeline() as pipe:
            for item in ready:
                if item[0] == "escalate":
                    _, incident_id, epoch, due = item
                    enqueue_escalation(incident_id, epoch, due, pipeline=pipe)
                else:
                    _, notification_id, purpose, due, send_at = item
                    enqueue_delivery(notification_id, due, purpose=purpose, send_at=send_at, pipeline=pipe)
            pipe.execute()
    except Exception:
        # The rows are committed: the next reconcile arms what could not be armed now.
        log.exception("Could not arm escalation/delivery jobs; reconcile will re-arm them")


@event.listens_for(Session, "after_rollback")
def _forget(session: Session) -> None:
    if session.get_nested_transaction() is None:
        for key in (_INCIDENTS, _NOTIFICATIONS, _READY):
            session.info.pop(key, None)


def escalation_job_id(incident_id: int, epoch: int) -> str:
    return f"escalate-{incident_id}-{epoch}"


def delivery_job_id(notification_id: int, send_at: datetime) -> str:
    return f"deliver-{notification_id}-{int(send_at.timestamp())}"


def _arm(q: Queue, due: datetime, func: str, *args, pipeline: Pipeline | None = None, **options) -> None:
    """Queue a job now if `due` has come, else schedule it at exactly `due`; on `pipeline` if
    given (the caller executes it), else in a Redis transaction of its own.

    RQ stores due times in whole seconds (truncated), so its scheduler could start a job up to a
    second early, or, rounded up, up to a second late. We overwrite the score with the exact due
    time in the same MULTI, and openduty.worker.FastScheduler releases jobs by the exact clock.
    """
    pipe = pipeline if pipeline is not None else q.connection.pipeline()
    if not pipe.explicit_transaction:
        pipe.multi()  # before the first command: RQ's enqueue calls multi() on a pipeline it is given
    if due <= clock.now():
        q.enqueue(func, *args, pipeline=pipe, **options)
    else:
        job = q.enqueue_at(due, func, *args, pipeline=pipe, **options)
        pipe.zadd(q.scheduled_job_registry.key, {job.id: due.timestamp()})
    if pipeline is None:
        with pipe:
            pipe.execute()


def _job_options(job_id: str, timeout: int, **extra) -> dict:
    return {"job_id": job_id, "job_timeout": timeout, "result_ttl": RESULT_TTL, "failure_ttl": FAILURE_TTL, **extra}


def enqueue_escalation(
    incident_id: int, epoch: int, due: datetime, job_id: str | None = None, pipeline: Pipeline | None = None
) -> None:
    """Run the escalate job at `due`: queued directly when due now, else via RQ's scheduler."""
    options = _job_options(job_id or escalation_job_id(incident_id, epoch), ESCALATE_TIMEOUT)
    _arm(queue(ESCALATION_QUEUE), due, "openduty.jobs.escalate", incident_id, epoch, pipeline=pipeline, **options)


def enqueue_delivery(
    notification_id: int,
    due: datetime,
    purpose: str = "page",
    send_at: datetime | None = None,
    job_id: str | None = None,
    pipeline: Pipeline | None = None,
) -> None:
    """Run the deliver job at `due`.

    No RQ retries: the row says what is owed, and delivery arms each retry itself at the row's
    `retry_at` (so a database error, which is nobody's attempt, is not counted as one).
    """
    q = queue(PAGE_QUEUE if purpose == "page" else NOTICE_QUEUE)
    options = _job_options(job_id or delivery_job_id(notification_id, send_at or due), DELIVER_TIMEOUT)
    _arm(q, due, "openduty.jobs.deliver", notification_id, pipeline=pipeline, **options)


# --- Reconcile: the database is the source of truth ---------------------------------------------


def _live(job: Job | None, due: datetime, now: datetime) -> bool:
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


def _rearm(job: Job | None) -> None:
    """Remove a dead job before arming a new one under its id, even if RQ cannot clean it up."""
    if job is None:
        return
    try:
        job.delete()
    except Exception:  # e.g. "Execution ... not found in Redis" for a dead worker's job
        log.warning("reconcile: RQ could not clean up job %s; removing it by hand", job.id, exc_info=True)
        conn = job.connection
        started = StartedJobRegistry(job.origin, connection=conn).key
        executions = [m for m in conn.zrange(started, 0, -1) if m.decode().startswith(f"{job.id}:")]
        with conn.pipeline() as pipe:
            if executions:
                pipe.zrem(started, *executions)
            pipe.delete(job.key)
            pipe.execute()


def _fetch_jobs(ids: list[str], conn) -> list[Job | None]:
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


def reconcile() -> dict[str, int]:
    """Re-arm every escalation and pending notification that has no live job; recover deliveries
    claimed by a worker that died. Safe to run any time, on any number of workers at once.

    A job that cannot be checked or re-armed is logged and counted in `errors`; the run goes on.
    """
    now = clock.now()
    conn = redis.get()
    counts = {"escalations": 0, "notifications": 0, "recovered": 0, "errors": 0}

    rows = db.session.execute(
        select(Incident.id, Incident.epoch, Incident.next_escalation_at).where(
            Incident.next_escalation_at.is_not(None), Incident.status != "resolved"
        )
    ).all()
    jobs = _fetch_jobs([escalation_job_id(r.id, r.epoch) for r in rows], conn)
    for row, job in zip(rows, jobs, strict=True):
        try:
            if not _live(job, row.next_escalation_at, now):
                _rearm(job)
                enqueue_escalation(row.id, row.epoch, row.next_escalation_at)
                counts["escalations"] += 1
        except Exception:
            log.exception("reconcile: could not re-arm the escalation of incident %s", row.id)
            counts["errors"] += 1

    counts["recovered"] = _recover_abandoned_sends(now)
    db.session.commit()

    pending = db.session.execute(
        select(Notification.id, Notification.send_at, Notification.retry_at, Notification.purpose).where(
            Notification.status == "pending"
        )
    ).all()
    jobs = _fetch_jobs([delivery_job_id(r.id, r.send_at) for r in pending], conn)
    for row, job in zip(pending, jobs, strict=True):
        due = max(row.send_at, row.retry_at or row.send_at)
        try:
            if not _live(job, due, now):
                _rearm(job)
                enqueue_delivery(row.id, due, purpose=row.purpose, send_at=row.send_at)
                counts["notifications"] += 1
        except Exception:
            log.exception("reconcile: could not re-arm the delivery of notification %s", row.id)
            counts["errors"] += 1
    if any(counts.values()):
        log.info("reconcile: re-armed %(escalations)d escalations, %(notifications)d notifications, "
                 "recovered %(recovered)d interrupted deliveries; %(errors)d errors", counts)  # fmt: skip
    return counts


def _recover_abandoned_sends(now: datetime) -> int:
    """Rows left `sending` by a worker that died (same host: its process is gone; any host: the
    claim is older than SENDING_LEASE) go back to pending, to be sent again: the worker may have
    died mid-send, so this is one of the documented "at most twice" cases. A row that may have
    reached its receiver twice already is not sent a third time."""
    recovered = 0
    rows = db.session.scalars(select(Notification).where(Notification.status == "sending")).all()
    for notification in rows:
        if not notification.claim_abandoned(now, SENDING_LEASE):
            continue
        give_up = notification.unconfirmed + 1 >= MAX_UNCONFIRMED
        values = {"unconfirmed": Notification.unconfirmed + 1, "claimed_at": None, "claimed_by": None}
        if give_up:
            values.update(status="sent", sent_at=now, receipt="unconfirmed: the worker stopped mid-send")
        else:
            values.update(status="pending", retry_at=None)
        done = db.session.execute(
            update(Notification)
            .where(
                Notification.id == notification.id,
                Notification.status == "sending",
                Notification.claimed_at == notification.claimed_at,
            )
            .values(**values)
            .execution_options(synchronize_session=False)
        ).rowcount
        if done and notification.incident_id is not None:
            what = f"{notification.user.name} by {notification.kind}"
            notification.incident.log(
                "notify_retry",
                f"Delivery to {what} was interrupted (worker stopped) after it may have arrived twice; "
                "not sending it again."
                if give_up
                else f"Delivery to {what} was interrupted (worker stopped); sending again (it may arrive twice).",
            )
        recovered += done
    return recovered


# --- Periodic jobs -------------------------------------------------------------------------------

# The audit log's retention is in days; a daily purge keeps it within a day of AUDIT_RETENTION_DAYS.
AUDIT_PURGE_INTERVAL = 24 * 3600

# (job function path, interval in seconds). Other areas may append their periodic jobs here.
PERIODIC_JOBS: list[tuple[str, int | str]] = [
    ("openduty.jobs.reconcile", RECONCILE_INTERVAL),
    ("openduty.jobs.refresh_ical_sources", "ICAL_REFRESH_MINUTES"),
    ("openduty.jobs.sync_directory", "LDAP_SYNC_MINUTES"),
    ("openduty.jobs.purge_audit_log", AUDIT_PURGE_INTERVAL),
]


def _interval(value: int | str) -> int:
    """An interval in seconds, or the name of a config setting in minutes (e.g. ICAL_REFRESH_MINUTES)."""
    if isinstance(value, str):
        return max(60, int(current_app.config.get(value) or 60) * 60)
    return value


def schedule_periodic(func: str, interval: int | str) -> None:
    """Arm the next run of a periodic job, at the next multiple of its interval.

    The job id names that moment, so any number of workers arming it arm it once.
    """
    seconds = _interval(interval)
    at = (int(clock.now().timestamp()) // seconds + 1) * seconds
    name = func.rsplit(".", 1)[-1]
    try:
        queue(HOUSEKEEPING_QUEUE).enqueue_at(
            datetime.fromtimestamp(at, UTC),
            func,
            unique=True,
            **_job_options(f"periodic-{name}-{at}", 600, result_ttl=RESULT_TTL),
        )
    except DuplicateJobError:
        pass


def ensure_periodic() -> None:
    """Arm every periodic job (worker start-up, and the worker's maintenance after a Redis flush)."""
    for func, interval in PERIODIC_JOBS:
        schedule_periodic(func, interval)
