"""The escalation state machine, its planning, and the timers that drive it.

The database is the source of truth: an open incident's `next_escalation_at` (with its `epoch`)
says when it must move on, and pending Notification rows say which pages are owed. RQ jobs are only
timers for those rows, armed after the transaction that wrote them commits (see `_collect` and
`_enqueue` below), and re-armed by `reconcile()` when Redis lost them.

Escalation position: `incident.escalation_level` is the 1-based number of the level most recently
paged (0: none yet), `escalation_loop` the pass through the policy (0 is the first). When
`next_escalation_at` comes, the engine pages the next level, wrapping around `repeat_count` times.
A re-trigger (ack timeout, end of a snooze) restarts at level 1.

Hooks (`incident_triggered`, `incident_acknowledged`, `incident_resolved`) are called by the
incident's domain actions inside their transaction; domain actions owned here (`escalate_now`,
`snooze`, `reassign`) likewise leave the commit to the caller.
"""

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from flask import current_app
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
from openduty.models import EscalationLevel, EscalationPolicy, Incident, LogEntry, Notification, User
from openduty.models.notification import MAX_UNCONFIRMED
from openduty.models.user import CONTACT_KIND_LABELS

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
# shortly instead of failing (and a delivery attempt is not used up), see notifiers.delivery.
DATABASE_ERRORS = (OperationalError, InterfaceError)
DATABASE_RETRY_SECONDS = 2
# Finished jobs are kept briefly (for `rq info`), failed ones for a week (for debugging).
RESULT_TTL = 600
FAILURE_TTL = 7 * 24 * 3600
# How often the reconcile job runs (seconds).
RECONCILE_INTERVAL = 60

SNOOZE_MAX_MINUTES = 7 * 24 * 60


# --- Planning (pure: time passed in) ------------------------------------------------------------


@dataclass(frozen=True)
class PlannedPage:
    """One page owed to a user: which channel, where, and how long after the user is paged."""

    user: User
    kind: str
    address: str
    contact_method_id: int | None
    delay_minutes: int


def user_pages(user: User) -> list[PlannedPage]:
    """The pages a user gets when paged: one per notification rule, or email now if they have none."""
    rules = list(user.notification_rules)
    if not rules:
        return [PlannedPage(user, "email", user.email, None, 0)]
    return [
        PlannedPage(
            user, rule.contact_method.kind, rule.contact_method.address, rule.contact_method_id, rule.delay_minutes
        )
        for rule in rules
    ]


def level_users(level: EscalationLevel, at: datetime) -> list[User]:
    """Who a level pages at `at`: its users and whoever its schedules have on call, active only, once each."""
    from openduty import oncall

    users: list[User] = []
    seen: set[int] = set()
    for target in level.targets:
        if target.target_type == "user":
            candidates = [target.user] if target.user is not None else []
        elif target.target_type == "schedule" and target.schedule is not None:
            candidates = list(oncall.who_is_on_call(target.schedule, at))
        else:
            candidates = []
        for user in candidates:
            if user.active and user.id not in seen:
                seen.add(user.id)
                users.append(user)
    return users


@dataclass
class PreviewStep:
    """One moment of the preview: `minute` after the incident opens, these users on these channels."""

    minute: int
    level: int  # 1-based
    pages: list[tuple[User, list[str]]] = field(default_factory=list)


@dataclass
class Preview:
    steps: list[PreviewStep]
    skipped_levels: list[int]  # 1-based numbers of levels with nobody to page
    repeat_count: int
    cycle_minutes: int
    has_levels: bool

    @property
    def pages_anyone(self) -> bool:
        return bool(self.steps)


def preview(policy: EscalationPolicy, at: datetime) -> Preview:
    """What would happen if an incident opened at `at`, using the planner the engine uses.

    Covers the first pass through the policy; later passes repeat it every `cycle_minutes`.
    """
    by_minute: dict[tuple[int, int], dict[int, tuple[User, list[str]]]] = {}
    skipped: list[int] = []
    offset = 0
    for index, level in enumerate(policy.levels):
        users = level_users(level, at + timedelta(minutes=offset))
        if not users:
            skipped.append(index + 1)
            continue  # the engine skips an empty level at once, without waiting its delay
        for user in users:
            for page in user_pages(user):
                slot = by_minute.setdefault((offset + page.delay_minutes, index + 1), {})
                entry = slot.setdefault(user.id, (user, []))
                label = CONTACT_KIND_LABELS.get(page.kind, page.kind)
                label = label if page.kind in ("sms", "xmpp") else label.lower()
                if label not in entry[1]:
                    entry[1].append(label)
        offset += level.delay_minutes
    steps = [
        PreviewStep(minute=minute, level=level, pages=list(users.values()))
        for (minute, level), users in sorted(by_minute.items())
    ]
    return Preview(steps, skipped, policy.repeat_count, offset, bool(policy.levels))


def _log(incident: Incident, kind: str, message: str, channel: str = "system", by: User | None = None, **data) -> None:
    db.session.add(LogEntry(incident=incident, kind=kind, message=message, channel=channel, actor=by, data=data))


def _bump(incident: Incident) -> None:
    incident.epoch = (incident.epoch or 0) + 1


def _names(users: list[User]) -> str:
    names = [u.name for u in users]
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


# --- Hooks called by the incident's domain actions (inside their transaction) -------------------


def incident_triggered(incident: Incident) -> None:
    """A new incident opened (not a duplicate): start its escalation at level 1, right away.

    Called before commit by every path that opens an incident (events, API, web).
    """
    service = incident.service
    now = clock.now()
    if service.in_maintenance(now):
        until = service.maintenance_until.strftime("%Y-%m-%d %H:%M UTC")
        _log(incident, "maintenance", f"Service {service.name} is in maintenance until {until}: nobody is paged.")
        incident.next_escalation_at = None
        return
    if service.escalation_policy_id is None:
        _log(incident, "nobody_to_page", f"Service {service.name} has no escalation policy: nobody to page.")
        incident.next_escalation_at = None
        return
    incident.escalation_level = 0
    incident.escalation_loop = 0
    incident.next_escalation_at = now
    track_incident(incident)


def incident_acknowledged(incident: Incident) -> None:
    """The incident was acknowledged (its status and log already updated): stop paging.

    Pending pages are cancelled. With an ack timeout on the service, the incident re-triggers
    (and escalates from level 1) unless it is resolved first.
    """
    _cancel_pending_pages(incident)
    _bump(incident)
    incident.snoozed_until = None
    timeout = incident.service.ack_timeout_minutes
    incident.next_escalation_at = clock.now() + timedelta(minutes=timeout) if timeout else None
    track_incident(incident)


def incident_resolved(incident: Incident) -> None:
    """The incident was resolved (its status and log already updated): stop paging, send notices.

    Everyone a page reached gets a resolve notice on the channels that paged them (except the
    person who resolved it).
    """
    _cancel_pending_pages(incident)
    _bump(incident)
    incident.next_escalation_at = None
    incident.snoozed_until = None
    if incident.id is not None:
        queue_resolve_notices(incident)


def queue_resolve_notices(incident: Incident) -> None:
    """Owe a resolve notice to each user a page of this resolved incident reached, on each channel
    that reached them, once each (except whoever resolved it).

    Called when the incident is resolved, and again by delivery when a page that was in flight at
    that moment turns out sent. Delivery locks the incident row before it looks, and resolving
    updates that row first, so one of the two always sees the other's work; the notices already
    owed are skipped, so nobody gets two.
    """
    db.session.flush()
    sent = db.session.execute(
        select(Notification.user_id, Notification.contact_method_id, Notification.kind, Notification.address)
        .where(Notification.incident_id == incident.id, Notification.purpose == "page", Notification.status == "sent")
        .distinct()
    ).all()
    owed = set(
        db.session.execute(
            select(Notification.user_id, Notification.kind, Notification.address).where(
                Notification.incident_id == incident.id, Notification.purpose == "resolve"
            )
        ).all()
    )
    now = clock.now()
    for user_id, method_id, kind, address in sorted(set(sent), key=lambda r: (r[0], r[2], r[3])):
        if user_id == incident.resolved_by_id or (user_id, kind, address) in owed:
            continue
        owed.add((user_id, kind, address))
        notice = Notification(
            incident=incident,
            user_id=user_id,
            contact_method_id=method_id,
            kind=kind,
            address=address,
            purpose="resolve",
            send_at=now,
        )
        db.session.add(notice)
        track_notification(notice)


def _cancel_pending_pages(incident: Incident) -> None:
    if incident.id is None:
        return
    db.session.execute(
        update(Notification)
        .where(
            Notification.incident_id == incident.id,
            Notification.purpose == "page",
            Notification.status == "pending",
        )
        .values(status="cancelled")
        .execution_options(synchronize_session=False)
    )


# --- Domain actions owned here (the caller commits) ----------------------------------------------


class EscalationActionError(ValueError):
    """The action does not apply to the incident in its current state; the message says why."""


def escalate_now(incident: Incident, by: User | None = None, channel: str = "web") -> None:
    """Escalate to the next level now (re-triggering an acknowledged incident)."""
    if not incident.is_open:
        raise EscalationActionError("This incident is resolved; there is nobody left to escalate to.")
    policy = incident.service.escalation_policy
    if policy is None or not policy.levels:
        raise EscalationActionError("This incident's service has no escalation policy with levels.")
    if incident.status == "acknowledged":
        _retrigger_fields(incident)
    _bump(incident)
    incident.next_escalation_at = clock.now()
    if incident.escalation_level >= len(policy.levels) and incident.escalation_loop >= policy.repeat_count:
        incident.escalation_level = len(policy.levels) - 1  # past the end: page the last level again
    _log(incident, "escalate", f"Escalated to the next level{_by(by)} via {channel}.", channel=channel, by=by)
    track_incident(incident)


def snooze(incident: Incident, minutes: int, by: User | None = None, channel: str = "web") -> None:
    """Acknowledge for `minutes`, then re-trigger and escalate from level 1."""
    if not incident.is_open:
        raise EscalationActionError("A resolved incident cannot be snoozed.")
    if incident.status == "triggered":
        incident.acknowledge(by=by, channel=channel)
    _cancel_pending_pages(incident)
    _bump(incident)
    until = clock.now() + timedelta(minutes=minutes)
    incident.snoozed_until = until
    incident.next_escalation_at = until
    _log(
        incident,
        "snooze",
        f"Snoozed for {minutes} min{_by(by)} via {channel}; re-triggers at {until:%H:%M} UTC.",
        channel=channel,
        by=by,
    )
    track_incident(incident)


def reassign(incident: Incident, user: User, by: User | None = None, channel: str = "web") -> None:
    """Hand the incident to `user`: page them now on their rules; the policy's timer restarts.

    An acknowledged incident goes back to triggered, so the new assignee has to acknowledge it.
    """
    if not incident.is_open:
        raise EscalationActionError("A resolved incident cannot be reassigned.")
    if not user.active:
        raise EscalationActionError(f"{user.name} is deactivated and cannot be paged.")
    if incident.status == "acknowledged":
        _retrigger_fields(incident)
    _cancel_pending_pages(incident)
    _bump(incident)
    now = clock.now()
    incident.assigned_to_id = user.id
    policy = incident.service.escalation_policy
    if policy is not None and policy.levels and incident.service.escalation_policy_id is not None:
        current = policy.levels[max(incident.escalation_level - 1, 0) % len(policy.levels)]
        incident.next_escalation_at = now + timedelta(minutes=current.delay_minutes)
    else:
        incident.next_escalation_at = None
    _log(incident, "reassign", f"Reassigned to {user.name}{_by(by)} via {channel}.", channel=channel, by=by)
    _page_user(incident, user, now, level=None, loop=None)
    track_incident(incident)


def _by(user: User | None) -> str:
    return f" by {user.name}" if user is not None else ""


def _retrigger_fields(incident: Incident) -> None:
    incident.status = "triggered"
    incident.acknowledged_at = None
    incident.acknowledged_by_id = None
    incident.snoozed_until = None


# --- The engine (run by the escalate job) --------------------------------------------------------


def run_escalation(incident_id: int, epoch: int) -> str:
    """Move an incident on from `epoch` if its time has come; returns what happened (for logs/tests).

    Idempotent: a job for an old epoch, or a duplicate job, does nothing. The epoch is claimed with
    a conditional UPDATE, so of two concurrent jobs only one pages.
    """
    now = clock.now()
    incident = db.session.get(Incident, incident_id)
    if incident is None or incident.epoch != epoch or not incident.is_open or incident.next_escalation_at is None:
        return "stale"
    due = incident.next_escalation_at
    if now < due:
        # Never page early (e.g. a job armed by plain RQ, which works in whole seconds): re-arm.
        db.session.rollback()
        enqueue_escalation(incident_id, epoch, due, job_id=f"{escalation_job_id(incident_id, epoch)}-late")
        return "early"
    claimed = db.session.execute(
        update(Incident)
        .where(Incident.id == incident_id, Incident.epoch == epoch)
        .values(epoch=epoch + 1)
        .execution_options(synchronize_session=False)
    ).rowcount
    if not claimed:
        db.session.rollback()
        return "stale"
    db.session.refresh(incident)
    service = incident.service
    outcome = "escalated"
    if incident.status == "acknowledged":
        reason = "the snooze ended" if incident.snoozed_until is not None else "the acknowledgement timed out"
        _retrigger_fields(incident)
        incident.escalation_level = 0
        incident.escalation_loop = 0
        _log(incident, "retrigger", f"Re-triggered: {reason}. Escalating from level 1.")
        outcome = "retriggered"
    if service.in_maintenance(now):
        until = service.maintenance_until
        _log(incident, "maintenance", f"Service {service.name} is in maintenance until {until:%Y-%m-%d %H:%M} UTC: "
             "nobody is paged; the escalation continues when it ends.")  # fmt: skip
        incident.next_escalation_at = until
        track_incident(incident)
        return "maintenance"
    policy = service.escalation_policy
    if policy is None or not policy.levels:
        _log(incident, "nobody_to_page", f"Service {service.name} has no escalation policy levels: nobody to page.")
        incident.next_escalation_at = None
        return "nobody"
    result = _page_next_level(incident, policy, now)
    track_incident(incident)
    return outcome if result == "paged" else result


def _page_next_level(incident: Incident, policy: EscalationPolicy, now: datetime) -> str:
    levels = policy.levels
    index, loop = incident.escalation_level, incident.escalation_loop
    for _ in range((len(levels) + 1) * (policy.repeat_count + 1) + 1):
        if index >= len(levels):
            if loop < policy.repeat_count:
                index, loop = 0, loop + 1
                _log(incident, "repeat", f"Repeating the policy (pass {loop + 1} of {policy.repeat_count + 1}).")
            else:
                break
        level = levels[index]
        users = level_users(level, now)
        if not users:
            _log(incident, "escalate", f"Level {index + 1}: nobody to page (no active users on call); skipped.")
            index += 1
            continue
        for user in users:
            _page_user(incident, user, now, level=index + 1, loop=loop)
        _log(
            incident,
            "escalate",
            f"Level {index + 1}{_pass(loop)}: paging {_names(users)}.",
            level=index + 1,
            loop=loop,
            user_ids=[u.id for u in users],
        )
        incident.escalation_level = index + 1
        incident.escalation_loop = loop
        incident.assigned_to_id = users[0].id
        incident.next_escalation_at = now + timedelta(minutes=level.delay_minutes)
        return "paged"
    incident.escalation_level = len(levels)
    incident.escalation_loop = loop
    incident.next_escalation_at = None
    times = policy.repeat_count + 1
    _log(
        incident,
        "escalation_exhausted",
        f"Escalation exhausted: the policy ran {times} time{'s' if times != 1 else ''}; nobody more to page.",
    )
    return "exhausted"


def _pass(loop: int) -> str:
    return f" (pass {loop + 1})" if loop else ""


def _page_user(incident: Incident, user: User, now: datetime, level: int | None, loop: int | None) -> None:
    for page in user_pages(user):
        notification = Notification(
            incident=incident,
            user=user,
            contact_method_id=page.contact_method_id,
            kind=page.kind,
            address=page.address,
            purpose="page",
            level=level,
            loop=loop,
            send_at=now + timedelta(minutes=page.delay_minutes),
        )
        db.session.add(notification)
        track_notification(notification)


class TestLimitReached(Exception):
    """The caller sent TEST_NOTIFICATION_LIMIT test notifications in the current window."""

    def __init__(self, retry_after: int):
        self.retry_after = retry_after
        super().__init__(
            f"You sent {current_app.config['TEST_NOTIFICATION_LIMIT']} test notifications recently."
            f" Try again in {max(1, (retry_after + 59) // 60)} min."
        )


def _count_test(user_id: int) -> None:
    """Count one test notification for `user_id`; raise TestLimitReached over the limit.

    A fixed window per user in Redis (the key holds only the user id): test notifications go to
    addresses a member chooses, so without a cap a button could be used to flood someone.
    """
    limit = current_app.config["TEST_NOTIFICATION_LIMIT"]
    if not limit:
        return
    key = f"openduty:test-notifications:{int(user_id)}"
    with redis.get().pipeline() as pipe:
        pipe.set(key, 0, ex=current_app.config["TEST_NOTIFICATION_WINDOW_SECONDS"], nx=True)
        pipe.incr(key)
        pipe.ttl(key)
        _, count, ttl = pipe.execute()
    if count > limit:
        raise TestLimitReached(max(int(ttl), 1))


def send_test(method, by: User | None = None) -> Notification:
    """Queue a test notification to one contact method (delivered after the caller commits).

    At most TEST_NOTIFICATION_LIMIT per caller per window (TestLimitReached beyond it).
    """
    if by is not None:
        _count_test(by.id)
    notification = Notification(
        user_id=method.user_id,
        contact_method_id=method.id,
        kind=method.kind,
        address=method.address,
        purpose="test",
        send_at=clock.now(),
    )
    db.session.add(notification)
    track_notification(notification)
    return notification


# --- Arming timers after commit ------------------------------------------------------------------

_INCIDENTS = "openduty.escalation.incidents"
_NOTIFICATIONS = "openduty.escalation.notifications"
_READY = "openduty.escalation.ready"


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
    if session.get_nested_transaction() is not None:
        return
    ready = session.info.pop(_READY, None)
    if not ready:
        return
    try:
        for item in ready:
            if item[0] == "escalate":
                _, incident_id, epoch, due = item
                enqueue_escalation(incident_id, epoch, due)
            else:
                _, notification_id, purpose, due, send_at = item
                enqueue_delivery(notification_id, due, purpose=purpose, send_at=send_at)
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


def _enqueue_at(q, due: datetime, func: str, *args, **options) -> None:
    """Schedule a job at exactly `due`.

    RQ stores due times in whole seconds (truncated), so its scheduler could start a job up to a
    second early, or, rounded up, up to a second late. We overwrite the score with the exact due
    time in the same MULTI, and openduty.worker.FastScheduler releases jobs by the exact clock.
    """
    with q.connection.pipeline() as pipe:
        job = q.enqueue_at(due, func, *args, pipeline=pipe, **options)
        pipe.zadd(q.scheduled_job_registry.key, {job.id: due.timestamp()})
        pipe.execute()


def _job_options(job_id: str, timeout: int, **extra) -> dict:
    return {"job_id": job_id, "job_timeout": timeout, "result_ttl": RESULT_TTL, "failure_ttl": FAILURE_TTL, **extra}


def enqueue_escalation(incident_id: int, epoch: int, due: datetime, job_id: str | None = None) -> None:
    """Run the escalate job at `due`: queued directly when due now, else via RQ's scheduler."""
    q = queue(ESCALATION_QUEUE)
    options = _job_options(job_id or escalation_job_id(incident_id, epoch), ESCALATE_TIMEOUT)
    if due <= clock.now():
        q.enqueue("openduty.jobs.escalate", incident_id, epoch, **options)
    else:
        _enqueue_at(q, due, "openduty.jobs.escalate", incident_id, epoch, **options)


def enqueue_delivery(
    notification_id: int,
    due: datetime,
    purpose: str = "page",
    send_at: datetime | None = None,
    job_id: str | None = None,
) -> None:
    """Run the deliver job at `due`.

    No RQ retries: the row says what is owed, and delivery arms each retry itself at the row's
    `retry_at` (so a database error, which is nobody's attempt, is not counted as one).
    """
    q = queue(PAGE_QUEUE if purpose == "page" else NOTICE_QUEUE)
    options = _job_options(job_id or delivery_job_id(notification_id, send_at or due), DELIVER_TIMEOUT)
    if due <= clock.now():
        q.enqueue("openduty.jobs.deliver", notification_id, **options)
    else:
        _enqueue_at(q, due, "openduty.jobs.deliver", notification_id, **options)


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
            _log(
                notification.incident,
                "notify_retry",
                f"Delivery to {what} was interrupted (worker stopped) after it may have arrived twice; "
                "not sending it again."
                if give_up
                else f"Delivery to {what} was interrupted (worker stopped); sending again (it may arrive twice).",
            )
        recovered += done
    return recovered


# --- Periodic jobs -------------------------------------------------------------------------------

# (job function path, interval in seconds). Other areas may append their periodic jobs here.
PERIODIC_JOBS: list[tuple[str, int | str]] = [
    ("openduty.jobs.reconcile", RECONCILE_INTERVAL),
    ("openduty.jobs.refresh_ical_sources", "ICAL_REFRESH_MINUTES"),
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
