"""Timers: the RQ jobs that drive escalations and deliveries, armed from what the database says.

The database is the source of truth: an open incident's `next_escalation_at` (with its `epoch`)
says when it must move on, and pending Notification rows say which pages are owed. RQ jobs are only
timers for those rows, armed after the transaction that wrote them commits (`track_incident`,
`track_notification`: see `_collect` and `_enqueue`), and re-armed by `reconcile()` when Redis lost
them. Every other timed thing (a heartbeat's deadline, a maintenance window's start, ...) is a row of
the `timers` table (`set_timer`), armed and re-armed the same way; openduty.jobs.fire_timer runs its
handler. Also here: the queue names, job ids and timeouts, the periodic jobs, and the retry policy
for jobs that meet the database down.

One module because arming a timer and re-arming it (reconcile) must agree on every job id, queue
and batch: a job reconcile cannot recognise is armed twice, one it wrongly trusts never runs.
"""

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

from flask import current_app
from redis.client import Pipeline
from rq import Queue
from rq.exceptions import DuplicateJobError
from sqlalchemy import delete, event, inspect, select, tuple_, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.orm import Session

from openduty import clock, logs, metrics
from openduty.extensions import db, queue, redis
from openduty.liveness import fetch_jobs, job_live, remove_job
from openduty.models import Incident, Notification, Timer
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
# At most this many incidents escalated by one job (and one transaction): a commit's escalations
# due together share jobs, which saves RQ's ~20 Redis round trips per job and one transaction per
# incident; a batch's first page waits for the batch's commit, so it stays small (issue 11).
ESCALATE_BATCH = 10
# A batch member's key (naming its batch job, for reconcile) outlives the batch's due time by this
# long: a job that waits longer in a queue is re-armed by reconcile (harmless: the epoch decides).
BATCH_KEY_TTL = 24 * 3600


# --- Arming timers after commit ------------------------------------------------------------------

_INCIDENTS = "openduty.timers.incidents"
_INCIDENT_IDS = "openduty.timers.incident_ids"
_NOTIFICATIONS = "openduty.timers.notifications"
_TIMERS = "openduty.timers.timers"
_READY = "openduty.timers.ready"


def track_incident(incident: Incident) -> None:
    """Arm this incident's escalation timer once the current transaction commits."""
    db.session.info.setdefault(_INCIDENTS, []).append(incident)


def track_incident_row(incident_id: int) -> None:
    """`track_incident` for an incident written as a row (ingest's bulk path), by its id."""
    db.session.info.setdefault(_INCIDENT_IDS, []).append(incident_id)


def track_notification(notification: Notification) -> None:
    """Arm this notification's delivery once the current transaction commits."""
    db.session.info.setdefault(_NOTIFICATIONS, []).append(notification)


def set_timer(kind: str, ref_id: int, due: datetime | None) -> None:
    """Arm the one timer (`kind`, `ref_id`) at `due`, replacing its earlier due time; None cancels it.

    Written in the current transaction (one upsert, so concurrent writers cannot clash); its job is
    armed after commit. The job of an earlier due time finds the row moved and does nothing.
    """
    table = Timer.__table__
    where = (table.c.kind == kind) & (table.c.ref_id == ref_id)
    if due is None:
        db.session.execute(delete(table).where(where))
        return
    dialect = db.session.get_bind().dialect.name
    stmt = (postgresql.insert if dialect == "postgresql" else sqlite.insert)(table)
    stmt = stmt.values(kind=kind, ref_id=ref_id, due_at=due)
    db.session.execute(stmt.on_conflict_do_update(index_elements=[table.c.kind, table.c.ref_id], set_={"due_at": due}))
    db.session.info.setdefault(_TIMERS, []).append((kind, ref_id))


def timer_due(kind: str, ref_id: int) -> datetime | None:
    """When the timer (`kind`, `ref_id`) is due, or None if it is not armed."""
    return db.session.scalar(select(Timer.due_at).where(Timer.kind == kind, Timer.ref_id == ref_id))


def take_timer(kind: str, ref_id: int, due: datetime) -> str:
    """For the job armed for `due`: "due" (the row is deleted in this transaction: the caller runs
    the handler and commits), "early" (re-armed at its time) or "moved" (cancelled or re-armed)."""
    row = db.session.execute(
        select(Timer.due_at).where(Timer.kind == kind, Timer.ref_id == ref_id).with_for_update()
    ).first()
    if row is None or row.due_at != due:
        return "moved"
    if due > clock.now():
        db.session.info.setdefault(_TIMERS, []).append((kind, ref_id))
        return "early"
    db.session.execute(delete(Timer).where(Timer.kind == kind, Timer.ref_id == ref_id))
    return "due"


def _identity(obj) -> int | None:
    state = inspect(obj)
    return state.identity[0] if state.identity else None


@event.listens_for(Session, "before_commit")
def _collect(session: Session) -> None:
    """Read the committed-to-be state of tracked rows, so `_enqueue` arms exactly what the DB says."""
    if session.get_nested_transaction() is not None:
        return
    incidents = session.info.pop(_INCIDENTS, None)
    incident_rows = session.info.pop(_INCIDENT_IDS, None)
    notifications = session.info.pop(_NOTIFICATIONS, None)
    timer_keys = session.info.pop(_TIMERS, None)
    if not incidents and not incident_rows and not notifications and not timer_keys:
        return
    session.flush()
    ready = session.info.setdefault(_READY, [])
    incident_ids = {i for i in map(_identity, incidents or []) if i is not None}.union(incident_rows or ())
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
    if timer_keys:
        rows = session.execute(select(Timer).where(tuple_(Timer.kind, Timer.ref_id).in_(set(timer_keys))))
        ready.extend(("timer", t.kind, t.ref_id, t.due_at) for (t,) in rows)


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
            for due, items in _escalation_batches([item[1:] for item in ready if item[0] == "escalate"]):
                enqueue_escalations(items, due, pipeline=pipe)
            for item in ready:
                if item[0] == "escalate":
                    continue
                if item[0] == "timer":
                    enqueue_timer(*item[1:], pipeline=pipe)
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
        for key in (_INCIDENTS, _INCIDENT_IDS, _NOTIFICATIONS, _TIMERS, _READY):
            session.info.pop(key, None)


def _escalation_batches(escalations: list[tuple[int, int, datetime]]) -> list[tuple[datetime, list[tuple[int, int]]]]:
    """A commit's escalations (id, epoch, due) as batches of at most ESCALATE_BATCH: those due now
    together, the others with those due at the same instant (a level paged for a batch moves on
    at one time); each batch is one job (`enqueue_escalations`)."""
    now = clock.now()
    groups: dict[datetime | None, list[tuple[int, int, datetime]]] = {}
    for incident_id, epoch, due in sorted(escalations, key=lambda e: (e[2], e[0])):
        groups.setdefault(None if due <= now else due, []).append((incident_id, epoch, due))
    batches = []
    for group in groups.values():
        for start in range(0, len(group), ESCALATE_BATCH):
            chunk = group[start : start + ESCALATE_BATCH]
            batches.append((max(due for _, _, due in chunk), [(i, e) for i, e, _ in chunk]))
    return batches


def escalation_job_id(incident_id: int, epoch: int) -> str:
    return f"escalate-{incident_id}-{epoch}"


_BATCH_KEY_PREFIX = "openduty:escalation-batch:"


def _batch_key(incident_id: int, epoch: int) -> str:
    """Names the batch job that escalates (incident_id, epoch), for reconcile (`_batched`)."""
    return f"{_BATCH_KEY_PREFIX}{incident_id}-{epoch}"


def delivery_job_id(notification_id: int, send_at: datetime) -> str:
    return f"deliver-{notification_id}-{int(send_at.timestamp())}"


def timer_job_id(kind: str, ref_id: int, due: datetime) -> str:
    return f"timer-{kind}-{ref_id}-{due:%Y%m%dT%H%M%S%f}"


def _arm(q: Queue, due: datetime, func: str, *args, pipeline: Pipeline | None = None, **options) -> None:
    """Queue a job now if `due` has come, else schedule it at exactly `due`; on `pipeline` if
    given (the caller executes it), else in a Redis transaction of its own.

    RQ stores due times in whole seconds (truncated), so its scheduler could start a job up to a
    second early, or, rounded up, up to a second late. We overwrite the score with the exact due
    time in the same MULTI, and openduty.worker.FastScheduler releases jobs by the exact clock.
    """
    with _transaction(q.connection, pipeline) as pipe:
        if due <= clock.now():
            q.enqueue(func, *args, pipeline=pipe, **options)
        else:
            job = q.enqueue_at(due, func, *args, pipeline=pipe, **options)
            pipe.zadd(q.scheduled_job_registry.key, {job.id: due.timestamp()})


@contextmanager
def _transaction(conn, pipeline: Pipeline | None) -> Iterator[Pipeline]:
    """`pipeline` in MULTI mode (its caller executes it), or a Redis transaction of our own,
    executed when the block ends."""
    pipe = pipeline if pipeline is not None else conn.pipeline()
    if not pipe.explicit_transaction:
        pipe.multi()  # before the first command: RQ's enqueue calls multi() on a pipeline it is given
    yield pipe
    if pipeline is None:
        with pipe:
            pipe.execute()


def _job_options(job_id: str, timeout: int, **extra) -> dict:
    """RQ's options for a job; its meta names the request it runs for (openduty.logs), if any."""
    options = {"job_id": job_id, "job_timeout": timeout, "result_ttl": RESULT_TTL, "failure_ttl": FAILURE_TTL}
    meta = logs.job_meta()
    return {**options, "meta": meta, **extra} if meta else {**options, **extra}


def enqueue_escalation(
    incident_id: int, epoch: int, due: datetime, job_id: str | None = None, pipeline: Pipeline | None = None
) -> None:
    """Run the escalate job at `due`: queued directly when due now, else via RQ's scheduler."""
    options = _job_options(job_id or escalation_job_id(incident_id, epoch), ESCALATE_TIMEOUT)
    _arm(queue(ESCALATION_QUEUE), due, "openduty.jobs.escalate", incident_id, epoch, pipeline=pipeline, **options)


def enqueue_escalations(
    items: list[tuple[int, int]], due: datetime, retry: int | None = None, pipeline: Pipeline | None = None
) -> None:
    """Escalate these incidents (id, epoch) at `due`: one openduty.jobs.escalate_batch job for
    several (each incident's key names it, for reconcile), the usual escalate job for one.
    `retry` (a number) marks the job that runs a failed job again (its id differs)."""
    suffix = f"-db{retry}" if retry is not None else ""
    if len(items) == 1:
        incident_id, epoch = items[0]
        job_id = escalation_job_id(incident_id, epoch) + suffix
        enqueue_escalation(incident_id, epoch, due, job_id=job_id, pipeline=pipeline)
        return
    first, epoch = items[0]
    job_id = f"escalate-batch-{first}-{epoch}-{len(items)}{suffix}"
    options = _job_options(job_id, ESCALATE_TIMEOUT)
    q = queue(ESCALATION_QUEUE)
    with _transaction(q.connection, pipeline) as pipe:
        keep = int(max(0.0, (due - clock.now()).total_seconds())) + BATCH_KEY_TTL
        for incident_id, epoch in items:
            pipe.set(_batch_key(incident_id, epoch), job_id, ex=keep)
        batch = [[incident_id, epoch] for incident_id, epoch in items]
        _arm(q, due, "openduty.jobs.escalate_batch", batch, pipeline=pipe, **options)


# Takes up to ARGV[2] plain escalate jobs (no retry or "late" suffix) among the first ARGV[3] of the
# queue KEYS[1], atomically: each is removed from the queue (skipped if another worker got it
# first), its job deleted, and its batch key names the job ARGV[1] that now runs it.
_TAKE_QUEUED = """
local taken = {}
for _, id in ipairs(redis.call('LRANGE', KEYS[1], 0, tonumber(ARGV[3]) - 1)) do
  if #taken >= tonumber(ARGV[2]) then break end
  local incident, epoch = string.match(id, '^escalate%-(%d+)%-(%d+)$')
  if incident and redis.call('LREM', KEYS[1], 1, id) == 1 then
    redis.call('DEL', ARGV[5] .. id)
    redis.call('SET', ARGV[4] .. incident .. '-' .. epoch, ARGV[1], 'EX', tonumber(ARGV[6]))
    table.insert(taken, id)
  end
end
return taken
"""


def take_queued_escalations(job_id: str, limit: int) -> list[tuple[int, int]]:
    """Take up to `limit` single escalations waiting in the escalation queue, for the running job
    `job_id` to escalate with its own (a worker behind its queue then escalates them in batches,
    as ingest's batches are): (incident id, epoch) each. While `job_id` runs, reconcile trusts it
    with them (their batch keys name it); if its worker dies, reconcile re-arms them."""
    q = queue(ESCALATION_QUEUE)
    jobs = q.job_class.redis_job_namespace_prefix
    args = [job_id, limit, 5 * ESCALATE_BATCH, _BATCH_KEY_PREFIX, jobs, BATCH_KEY_TTL]
    taken = q.connection.eval(_TAKE_QUEUED, 1, q.key, *args)
    return [(int(parts[1]), int(parts[2])) for parts in (raw.decode().split("-") for raw in taken)]


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


def enqueue_timer(
    kind: str,
    ref_id: int,
    due: datetime,
    job_id: str | None = None,
    pipeline: Pipeline | None = None,
    due_at: datetime | None = None,
) -> None:
    """Run openduty.jobs.fire_timer for the timer row (kind, ref_id) due at `due` (at `due_at`
    instead when given: a retry after the database was away)."""
    options = _job_options(job_id or timer_job_id(kind, ref_id, due), ESCALATE_TIMEOUT)
    args = (kind, ref_id, due.isoformat())
    _arm(queue(ESCALATION_QUEUE), due_at or due, "openduty.jobs.fire_timer", *args, pipeline=pipeline, **options)


# --- Reconcile: the database is the source of truth ---------------------------------------------


def reconcile() -> dict[str, int]:
    """Re-arm every escalation, pending notification and timer row that has no live job; recover
    deliveries claimed by a worker that died. Safe to run any time, on any number of workers at once.

    A job that cannot be checked or re-armed is logged and counted in `errors`; the run goes on.
    """
    now = clock.now()
    counts = {"escalations": 0, "notifications": 0, "timers": 0, "recovered": 0, "errors": 0}

    rows = db.session.execute(
        select(Incident.id, Incident.epoch, Incident.next_escalation_at).where(
            Incident.next_escalation_at.is_not(None), Incident.status != "resolved"
        )
    ).all()
    batched = _batched([(r.id, r.epoch, r.next_escalation_at) for r in rows], now, counts)
    _rearm_missing(
        counts, "escalations", now,
        [(escalation_job_id(r.id, r.epoch), r.next_escalation_at, r) for r in rows if (r.id, r.epoch) not in batched],
        lambda r: enqueue_escalation(r.id, r.epoch, r.next_escalation_at),
    )  # fmt: skip
    counts["recovered"] = _recover_abandoned_sends(now)
    db.session.commit()

    pending = db.session.execute(
        select(Notification.id, Notification.send_at, Notification.retry_at, Notification.purpose).where(
            Notification.status == "pending"
        )
    ).all()
    _rearm_missing(
        counts, "notifications", now,
        [(delivery_job_id(r.id, r.send_at), max(r.send_at, r.retry_at or r.send_at), r) for r in pending],
        lambda r: enqueue_delivery(r.id, max(r.send_at, r.retry_at or r.send_at), purpose=r.purpose, send_at=r.send_at),
    )  # fmt: skip
    due = db.session.execute(select(Timer.kind, Timer.ref_id, Timer.due_at)).all()
    _rearm_missing(
        counts, "timers", now,
        [(timer_job_id(r.kind, r.ref_id, r.due_at), r.due_at, r) for r in due],
        lambda r: enqueue_timer(r.kind, r.ref_id, r.due_at),
    )  # fmt: skip
    metrics.reconciled(counts)
    if any(counts.values()):
        log.info("reconcile: re-armed %(escalations)d escalations, %(notifications)d notifications, %(timers)d "
                 "timers, recovered %(recovered)d interrupted deliveries; %(errors)d errors", counts)  # fmt: skip
    return counts


def _batched(escalations: list[tuple[int, int, datetime]], now: datetime, counts: dict[str, int]) -> set[tuple]:
    """The escalations (id, epoch) that a live batch job, or a job that took them along, will run
    (their batch keys name it). One that cannot be checked counts as not live: it is re-armed."""
    if not escalations:
        return set()
    conn = redis.get()
    names = conn.mget([_batch_key(incident_id, epoch) for incident_id, epoch, _ in escalations])
    by_job: dict[str, list[tuple[int, int, datetime]]] = {}
    for escalation, name in zip(escalations, names, strict=True):
        if name is not None:
            by_job.setdefault(name.decode(), []).append(escalation)
    live = set()
    for job, (job_id, members) in zip(fetch_jobs(list(by_job), conn), by_job.items(), strict=True):
        try:
            if job is not None and job_live(job, max(due for _, _, due in members), now):
                live.update((incident_id, epoch) for incident_id, epoch, _ in members)
        except Exception:
            log.exception("reconcile: could not check job %s; re-arming its escalations", job_id)
            counts["errors"] += 1
    return live


def _rearm_missing(counts: dict[str, int], what: str, now: datetime, items: list[tuple], arm) -> None:
    """For each (job id, due, row) whose job is not live: remove the dead job, `arm(row)`, count it."""
    jobs = fetch_jobs([job_id for job_id, _, _ in items], redis.get())
    for (job_id, due, row), job in zip(items, jobs, strict=True):
        try:
            if not job_live(job, due, now):
                remove_job(job)
                arm(row)
                counts[what] += 1
        except Exception:
            log.exception("reconcile: could not re-arm job %s", job_id)
            counts["errors"] += 1


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

# The auto-resolve sweep runs every minute: an incident resolves at most a minute after its time.
AUTO_RESOLVE_INTERVAL = 60

# (job function path, interval in seconds). Other areas may append their periodic jobs here.
PERIODIC_JOBS: list[tuple[str, int | str]] = [
    ("openduty.jobs.reconcile", RECONCILE_INTERVAL),
    ("openduty.jobs.refresh_ical_sources", "ICAL_REFRESH_MINUTES"),
    ("openduty.jobs.sync_directory", "LDAP_SYNC_MINUTES"),
    ("openduty.jobs.purge_audit_log", AUDIT_PURGE_INTERVAL),
    ("openduty.jobs.purge_change_events", AUDIT_PURGE_INTERVAL),
    ("openduty.jobs.purge_suppressed_alerts", AUDIT_PURGE_INTERVAL),
    ("openduty.jobs.auto_resolve_incidents", AUTO_RESOLVE_INTERVAL),
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
