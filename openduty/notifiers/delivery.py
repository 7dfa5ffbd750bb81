"""Delivering one Notification row: claim it, throttle and fold, send, record the outcome.

The claim (pending -> sending, one conditional UPDATE) makes a duplicate job send nothing. Transient
failures go back to pending and the job raises, so RQ retries it with backoff (`rq.Retry`, armed in
escalation.enqueue_delivery); the row's `attempts` decides when to give up. Permanent failures fail
at once. Both are written to the incident's timeline.

SMS and voice are throttled per number: at most one message a minute. A throttled page waits for
the next free minute, and whichever page takes that slot carries every page due to that number.
"""

import logging
from datetime import datetime, timedelta

from rq import get_current_job
from sqlalchemy import or_, select, update
from sqlalchemy.orm import joinedload
from sqlalchemy.orm.attributes import set_committed_value

from openduty import clock
from openduty.extensions import db
from openduty.models import Incident, Notification
from openduty.models.notification import ContactThrottle
from openduty.models.user import CONTACT_KIND_LABELS
from openduty.notifiers import notifier_for
from openduty.notifiers.base import NotifierError
from openduty.notifiers.message import build_message

log = logging.getLogger(__name__)

# Attempts per notification, and the waits between them (seconds): about five minutes in all.
MAX_ATTEMPTS = 4
RETRY_INTERVALS = [15, 60, 240]
# At most one SMS or call per number in this many seconds; more pages fold into the next one.
THROTTLE_SECONDS = 60
THROTTLED_KINDS = ("sms", "voice")


def deliver(notification_id: int) -> str:
    """Send one notification if it is still owed; returns what happened (for logs and tests)."""
    now = clock.now()
    notification = db.session.get(
        Notification,
        notification_id,
        options=[joinedload(Notification.user), joinedload(Notification.incident).joinedload(Incident.service)],
    )
    if notification is None or notification.status != "pending":
        return "skipped"
    # Never early; a retry may start up to a second before its time (RQ schedules whole seconds).
    if notification.send_at > now or (notification.retry_at and notification.retry_at > now + timedelta(seconds=1)):
        from openduty import escalation

        db.session.rollback()
        escalation.enqueue_delivery(
            notification.id, notification.due_at, purpose=notification.purpose,
            job_id=f"{escalation.delivery_job_id(notification.id, notification.send_at)}-late",
        )  # fmt: skip
        return "early"
    reason = _no_longer_owed(notification)
    if reason:
        notification.status = "cancelled"
        notification.last_error = reason
        db.session.commit()
        return "cancelled"
    if not _claim(notification.id, now):
        db.session.rollback()
        return "skipped"
    _claimed(notification, now)
    batch = [notification]
    if notification.kind in THROTTLED_KINDS:
        free_at = _take_slot(notification.kind, notification.address, now)
        if free_at is not None:
            return _defer(notification, free_at)
        batch += _fold(notification, now)
    db.session.commit()  # the claim is visible before anything is sent

    message = build_message(batch)
    try:
        receipt = notifier_for(notification.kind).send(notification.address, message)
    except NotifierError as exc:
        return _failed(batch, exc)
    except Exception as exc:  # a bug in a notifier must not leave the rows claimed
        log.exception("Notifier %s crashed", notification.kind)
        return _failed(batch, NotifierError(f"Unexpected error: {type(exc).__name__}: {exc}", transient=True))
    _sent(batch, receipt)
    return "sent" if len(batch) == 1 else f"sent ({len(batch)} folded)"


def _no_longer_owed(notification: Notification) -> str | None:
    if not notification.user.active:
        return "The user is deactivated."
    if notification.purpose == "page":
        incident = notification.incident
        if incident is None or incident.status != "triggered":
            return "The incident was acknowledged or resolved before this page was sent."
    return None


def _claim(notification_id: int, now: datetime) -> bool:
    return bool(
        db.session.execute(
            update(Notification)
            .where(Notification.id == notification_id, Notification.status == "pending")
            .values(status="sending", claimed_at=now, attempts=Notification.attempts + 1)
            .execution_options(synchronize_session=False)
        ).rowcount
    )


def _claimed(notification: Notification, now: datetime) -> None:
    """Mirror the claim's UPDATE in the loaded row (cheaper than reloading it)."""
    for key, value in (("status", "sending"), ("claimed_at", now), ("attempts", notification.attempts + 1)):
        set_committed_value(notification, key, value)


def _insert_ignore(**values):
    dialect = db.session.get_bind().dialect.name
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    return insert(ContactThrottle).values(**values).on_conflict_do_nothing()


def _take_slot(kind: str, address: str, now: datetime) -> datetime | None:
    """Take this number's slot for the current minute; None if taken, else when it frees up.

    One conditional UPDATE: under PostgreSQL the row lock makes a concurrent taker wait and then
    see the new time; SQLite serialises writers.
    """
    db.session.execute(_insert_ignore(kind=kind, address=address, last_sent_at=None))
    window = now - timedelta(seconds=THROTTLE_SECONDS)
    taken = db.session.execute(
        update(ContactThrottle)
        .where(
            ContactThrottle.kind == kind,
            ContactThrottle.address == address,
            or_(ContactThrottle.last_sent_at.is_(None), ContactThrottle.last_sent_at <= window),
        )
        .values(last_sent_at=now)
        .execution_options(synchronize_session=False)
    ).rowcount
    if taken:
        return None
    last = db.session.scalar(
        select(ContactThrottle.last_sent_at).where(ContactThrottle.kind == kind, ContactThrottle.address == address)
    )
    return last + timedelta(seconds=THROTTLE_SECONDS)


def _defer(notification: Notification, free_at: datetime) -> str:
    from openduty import escalation

    notification.status = "pending"
    notification.attempts -= 1
    notification.claimed_at = None
    notification.send_at = max(free_at, notification.send_at)
    escalation.track_notification(notification)  # re-armed for the new time after commit
    db.session.commit()
    return "throttled"


def _fold(primary: Notification, now: datetime) -> list[Notification]:
    """Claim every other page due to the same number, to send them in one message."""
    others = db.session.scalars(
        select(Notification)
        .where(
            Notification.id != primary.id,
            Notification.kind == primary.kind,
            Notification.address == primary.address,
            Notification.status == "pending",
            Notification.send_at <= now + timedelta(seconds=THROTTLE_SECONDS),
        )
        .order_by(Notification.send_at, Notification.id)
    ).all()
    folded = []
    for other in others:
        if _no_longer_owed(other):
            continue
        if _claim(other.id, now):
            _claimed(other, now)
            folded.append(other)
    return folded


def _failed(batch: list[Notification], exc: NotifierError) -> str:
    now = clock.now()
    primary = batch[0]
    retry = exc.transient and primary.attempts < MAX_ATTEMPTS
    wait = RETRY_INTERVALS[min(primary.attempts - 1, len(RETRY_INTERVALS) - 1)]
    for row in batch:
        row.last_error = str(exc)[:2000]
        row.claimed_at = None
        if retry:
            row.status = "pending"
            row.retry_at = now + timedelta(seconds=wait)
        else:
            row.status = "failed"
        if row.incident_id is not None:
            what = _describe(row)
            if retry:
                text = f"Could not page {what} (attempt {row.attempts} of {MAX_ATTEMPTS}); retrying in {wait} s: {exc}"
            elif exc.transient:
                text = f"Gave up paging {what} after {row.attempts} attempts: {exc}"
            else:
                text = f"Could not page {what}: {exc}"
            row.incident.log("notify_failed", text, channel=row.kind, data={"notification_id": row.id})
    db.session.commit()
    if retry:
        job = get_current_job()
        if job is not None and job.retries_left:
            raise exc  # RQ re-runs this job after the backoff
        # No RQ retry left (e.g. a re-armed job): arm the retry ourselves.
        from openduty import escalation

        for row in batch:
            escalation.enqueue_delivery(
                row.id, row.due_at, purpose=row.purpose,
                job_id=f"{escalation.delivery_job_id(row.id, row.send_at)}-r{row.attempts}",
            )  # fmt: skip
        return "retrying"
    return "failed"


def _sent(batch: list[Notification], receipt: str) -> None:
    now = clock.now()
    primary = batch[0]
    for row in batch:
        row.status = "sent"
        row.sent_at = now
        row.claimed_at = None
        row.receipt = (receipt or "")[:255]
        if row is not primary:
            row.folded_into_id = primary.id
        if row.incident_id is not None:
            what = _describe(row)
            verb = {"page": "Paged", "resolve": "Sent the resolve notice to"}.get(row.purpose, "Notified")
            folded = f" (in one message with {len(batch) - 1} other page(s))" if len(batch) > 1 else ""
            row.incident.log("notify", f"{verb} {what}{folded}.", channel=row.kind, data={"notification_id": row.id})
    db.session.commit()


def _describe(row: Notification) -> str:
    label = CONTACT_KIND_LABELS.get(row.kind, row.kind)
    return f"{row.user.name} by {label} ({row.address})"
