"""Delivering one Notification row: claim it, throttle and fold, send, record the outcome.

The deliver job claims the row (pending -> sending, one conditional UPDATE, so a duplicate job sends nothing), builds
the message and hands the send to one of the worker's sender threads (DELIVERY_THREADS): the job is done in
milliseconds, and a slow receiver holds up only its own page, never anyone else's page or an escalation. The thread
sends and records the outcome; the pages sent while another thread records are recorded together, in one transaction
(a burst costs one commit per batch, not per page). Pages due at once are claimed by the escalate job itself, in the
transaction that plans the level (escalation.page_user), and handed to `send_claimed`.

Transient failures go back to pending with a `retry_at`, and the thread arms the retry; the row's `send_at` and
RETRY_WINDOW_SECONDS decide when to give up. Permanent failures fail at once. A request that went out but got no
answer in time (UnconfirmedError) may have arrived: it is sent at most once more. Both are written to the incident's
timeline. A database error is nobody's attempt: before the claim the job tries again shortly; after the send, the
thread keeps trying to record the outcome. A worker that dies mid-send leaves the row `sending`; reconcile sends it
again (docs/reliability.md).

SMS and voice are throttled per number (one message a minute); whichever page takes a number's next free minute
carries every page due to it by then. A page of a service in maintenance is cancelled at send time, never folded in.
"""

import logging
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

from flask import Flask, current_app
from rq import get_current_job
from sqlalchemy import or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import joinedload
from sqlalchemy.orm.attributes import set_committed_value

from openduty import clock, metrics
from openduty.escalation import queue_resolve_notices
from openduty.extensions import db
from openduty.maintenance import cancel_pages_in_maintenance
from openduty.messages import build_message, failure_note, given_up_unconfirmed, paged_for, sent_note
from openduty.models import Incident, Notification
from openduty.models.notification import MAX_UNCONFIRMED, THROTTLED_KINDS, ContactThrottle, this_process
from openduty.notifiers import notifier_for
from openduty.notifiers.base import Message, NotifierError, UnconfirmedError
from openduty.senders import Combiner, SenderPool
from openduty.timers import (
    DATABASE_ERRORS,
    DATABASE_RETRY_SECONDS,
    PAGE_QUEUE,
    delivery_job_id,
    enqueue_delivery,
    track_notification,
)

log = logging.getLogger(__name__)

# Waits between attempts after a transient failure (seconds; the last one repeats), for up to
# RETRY_WINDOW_SECONDS after the page was due. A failure that reached nobody (refused, 5xx) costs
# the receiver nothing, and short waits keep a page within seconds of its receiver coming back.
RETRY_INTERVALS = [2, 5]
RETRY_WINDOW_SECONDS = 600
# The timeline gets the first failures, then one a minute or so, and the last.
LOG_FAILURES_EVERY = 12
# At most one SMS or call per number in this many seconds; more pages fold into the next one.
THROTTLE_SECONDS = 60
# Only pages and resolve notices fold into one message; shift notices are sent on their own.
FOLDED_PURPOSES = ("page", "resolve")
# A database error after the send: retry recording the outcome this long, RECORD_RETRY_PAUSE apart at most.
RECORD_RETRY_SECONDS = 300
RECORD_RETRY_PAUSE = 1.0


def deliver(notification_id: int) -> str:
    """Claim one notification if it is still owed and start sending it; returns what happened."""
    try:
        return _claim_and_send(notification_id)
    except DATABASE_ERRORS as exc:
        db.session.rollback()
        log.warning("Database error before delivering notification %s; again in %s s: %s",
                    notification_id, DATABASE_RETRY_SECONDS, exc)  # fmt: skip
        job = get_current_job()
        enqueue_delivery(
            notification_id,
            clock.now() + timedelta(seconds=DATABASE_RETRY_SECONDS),
            purpose="page" if job is None or job.origin == PAGE_QUEUE else "notice",
            job_id=f"deliver-{notification_id}-db{time.time_ns() // 1_000_000}",
        )
        return "database unavailable"


def _claim_and_send(notification_id: int) -> str:
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
        db.session.rollback()
        enqueue_delivery(
            notification.id, notification.due_at, purpose=notification.purpose,
            job_id=f"{delivery_job_id(notification.id, notification.send_at)}-late",
        )  # fmt: skip
        return "early"
    reason = _no_longer_owed(notification)
    if reason:
        notification.status, notification.last_error = "cancelled", reason
        if "urgency changed" in reason:  # a page planned for the old urgency: the timeline says so
            notification.incident.log("notify_cancelled", f"Not sent: {reason}", channel=notification.kind)
    if reason or cancel_pages_in_maintenance([notification], now):
        db.session.commit()
        return "cancelled"
    if not _claim(notification.id, now):
        db.session.rollback()
        return "skipped"
    _claimed(notification, now)
    batch = [notification]
    if notification.kind in THROTTLED_KINDS:  # notices (reminders, ...) wait their turn but fold nothing
        free_at = _take_slot(notification.kind, notification.address, now)
        if free_at is not None:
            return _defer(notification, free_at)
        batch += _fold(notification, now) if notification.purpose in FOLDED_PURPOSES else []
    message = build_message(batch)
    db.session.commit()  # the claim is visible before anything is sent
    _start(_Send([row.id for row in batch], notification.kind, notification.address, message))
    return "sending" if len(batch) == 1 else f"sending ({len(batch)} folded)"


def send_claimed(rows: list[Notification]) -> None:
    """Send pages claimed by this process and committed (the escalate job claims those due now:
    escalation.page_user). A page whose message cannot be built goes back to a deliver job."""
    paged = paged_for(rows)  # who else was paged, for every row's message: one query
    for row in rows:
        try:
            message = build_message([row], paged)
        except Exception:
            log.exception("Could not build the message of notification %s; handing it to a deliver job", row.id)
            _unclaim(row)
            continue
        _start(_Send([row.id], row.kind, row.address, message))


def _unclaim(row: Notification) -> None:
    db.session.rollback()
    db.session.execute(
        update(Notification)
        .where(Notification.id == row.id, Notification.status == "sending", Notification.claimed_by == row.claimed_by)
        .values(status="pending", claimed_at=None, claimed_by=None, attempts=Notification.attempts - 1)
        .execution_options(synchronize_session=False)
    )
    db.session.commit()
    enqueue_delivery(row.id, row.send_at, purpose=row.purpose, send_at=row.send_at)


def _start(send: "_Send") -> None:
    """Hand a claimed send to a sender thread (or send it here with DELIVERY_THREADS = 0)."""
    app = current_app._get_current_object()
    pool = _senders(app)
    if pool is None:
        send.run(app)
    else:
        pool.submit(lambda: send.run(app), f"notifications {send.ids}")


@dataclass
class _Send:
    """One send claimed by this process: the rows (primary first), where, and what to say."""

    ids: list[int]
    kind: str
    address: str
    message: Message

    def run(self, app: Flask) -> None:
        """Send, then record the outcome (in a fresh app context: this runs on a sender thread)."""
        with app.app_context():
            db.session().expire_on_commit = False
            try:
                try:
                    receipt, error = notifier_for(self.kind).send(self.address, self.message), None
                except NotifierError as exc:
                    receipt, error = None, exc
                except Exception as exc:  # a bug in a notifier must not leave the rows claimed
                    log.exception("Notifier %s crashed", self.kind)
                    receipt, error = None, NotifierError(f"Unexpected error: {type(exc).__name__}: {exc}", True)
                if error is None:
                    _sent_outcomes.add((self, receipt or ""))  # recorded with the others sent meanwhile
                else:
                    _record(self.ids, lambda rows: _failed(rows, error))
            finally:
                db.session.remove()


def _record_sent(sends: list[tuple[_Send, str]]) -> None:
    """Record sends that succeeded, in one transaction however many they are."""

    def write(rows: list[Notification]) -> None:
        by_id = {row.id: row for row in rows}
        written = []
        for send, receipt in sends:
            batch = [by_id[i] for i in send.ids if i in by_id]
            if len(batch) < len(send.ids):
                log.warning("Notifications %s were taken from this worker while sending", send.ids)
            if batch:
                _mark_sent(batch, receipt)
                written += batch
        _notify_resolved(written)
        db.session.commit()

    _record([i for send, _ in sends for i in send.ids], write)


def _record(ids: list[int], write) -> None:
    """Reload the rows this process claimed and `write` their outcome, trying again while the
    database is away (the send is not repeated)."""
    deadline = time.monotonic() + RECORD_RETRY_SECONDS
    pause = 0.1
    while True:
        try:
            rows = db.session.scalars(
                select(Notification)
                .where(
                    Notification.id.in_(ids),
                    Notification.status == "sending",
                    Notification.claimed_by == this_process(),
                )
                .options(joinedload(Notification.user), joinedload(Notification.incident))
            ).all()
            if rows:
                position = {notification_id: n for n, notification_id in enumerate(ids)}
                write(sorted(rows, key=lambda row: position[row.id]))
                metrics.notifications_recorded(rows)  # committed: sent, failed, or pending for a retry
            else:
                log.warning("Notifications %s were taken from this worker while sending", ids)
            return
        except DATABASE_ERRORS as exc:
            db.session.rollback()
            if time.monotonic() >= deadline:
                log.error("Could not record the outcome of notifications %s: %s; reconcile will send "
                          "them again", ids, exc)  # fmt: skip
                return
            time.sleep(pause)
            pause = min(pause * 2, RECORD_RETRY_PAUSE)


_sent_outcomes = Combiner(_record_sent)
_pool: SenderPool | None = None
_pool_lock = threading.Lock()


def _senders(app: Flask) -> SenderPool | None:
    """This process's sender threads (None with DELIVERY_THREADS = 0: send inside the job)."""
    global _pool
    size = int(app.config.get("DELIVERY_THREADS") or 0)
    if size <= 0:
        return None
    with _pool_lock:
        if _pool is None:
            _pool = SenderPool(size)
        return _pool


def wait_for_sends(timeout: float | None = None) -> bool:
    """Wait until this process's sender threads are idle (a burst worker's end); False on timeout."""
    return _pool.wait(timeout) if _pool is not None else True


def _no_longer_owed(notification: Notification) -> str | None:
    if not notification.user.active:
        return "The user is deactivated."
    if notification.purpose == "page":
        incident = notification.incident
        if incident is None or incident.status != "triggered":
            return "The incident was acknowledged or resolved before this page was sent."
        if notification.urgency not in (None, incident.urgency):  # re-planned by openduty.urgency
            return f"The incident's urgency changed to {incident.urgency} before this page was due."
    return None


def _claim(notification_id: int, now: datetime) -> bool:
    return bool(
        db.session.execute(
            update(Notification)
            .where(Notification.id == notification_id, Notification.status == "pending")
            .values(status="sending", claimed_at=now, claimed_by=this_process(), attempts=Notification.attempts + 1)
            .execution_options(synchronize_session=False)
        ).rowcount
    )


def _claimed(notification: Notification, now: datetime) -> None:
    """Mirror the claim's UPDATE in the loaded row (cheaper than reloading it)."""
    claim = {
        "status": "sending",
        "claimed_at": now,
        "claimed_by": this_process(),
        "attempts": notification.attempts + 1,
    }
    for key, value in claim.items():
        set_committed_value(notification, key, value)


def _insert_ignore(**values):
    dialect = postgresql if db.session.get_bind().dialect.name == "postgresql" else sqlite
    return dialect.insert(ContactThrottle).values(**values).on_conflict_do_nothing()


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
    notification.status = "pending"
    notification.attempts -= 1
    notification.claimed_at = None
    notification.claimed_by = None
    notification.send_at = max(free_at, notification.send_at)
    track_notification(notification)  # re-armed for the new time after commit
    db.session.commit()
    return "throttled"


def _fold(primary: Notification, now: datetime) -> list[Notification]:
    """Claim every other page due now (never early) to the same number, to send them in one
    message; a page whose service is in maintenance is cancelled, never folded in."""
    others = db.session.scalars(
        select(Notification)
        .where(
            Notification.id != primary.id,
            Notification.kind == primary.kind,
            Notification.address == primary.address,
            Notification.status == "pending",
            Notification.purpose.in_(FOLDED_PURPOSES),
            Notification.send_at <= now,
            or_(Notification.retry_at.is_(None), Notification.retry_at <= now),
        )
        .order_by(Notification.send_at, Notification.id)
    ).all()
    maintenance = cancel_pages_in_maintenance(list(others), now)
    folded = []
    for other in others:
        if other.id in maintenance or _no_longer_owed(other):
            continue
        if _claim(other.id, now):
            _claimed(other, now)
            folded.append(other)
    return folded


def _failed(batch: list[Notification], exc: NotifierError) -> None:
    now = clock.now()
    primary = batch[0]
    unconfirmed = isinstance(exc, UnconfirmedError)
    if unconfirmed and primary.unconfirmed + 1 >= MAX_UNCONFIRMED:
        # It may have arrived twice already: record it as sent (unconfirmed), never send a third.
        for row in batch:
            row.unconfirmed += 1
            row.last_error = str(exc)[:2000]
        _sent(batch, f"unconfirmed: {exc}"[:255], note=given_up_unconfirmed(primary, exc), kind="notify_failed")
        return
    wait = RETRY_INTERVALS[min(primary.attempts - 1, len(RETRY_INTERVALS) - 1)]
    retry = exc.transient and now + timedelta(seconds=wait) <= primary.send_at + timedelta(seconds=RETRY_WINDOW_SECONDS)
    logged = not retry or unconfirmed or primary.attempts <= 2 or primary.attempts % LOG_FAILURES_EVERY == 0
    for row in batch:
        row.last_error = str(exc)[:2000]
        row.claimed_at = None
        row.claimed_by = None
        row.unconfirmed += 1 if unconfirmed else 0
        if retry:
            row.status = "pending"
            row.retry_at = now + timedelta(seconds=wait)
        else:
            row.status = "failed"
        if row.incident_id is not None and logged:
            text = failure_note(row, exc, wait if retry else None, unconfirmed)
            row.incident.log("notify_failed", text, channel=row.kind, data={"notification_id": row.id})
    db.session.commit()
    if retry:
        try:
            for row in batch:
                enqueue_delivery(
                    row.id, row.due_at, purpose=row.purpose,
                    job_id=f"{delivery_job_id(row.id, row.send_at)}-r{row.attempts}",
                )  # fmt: skip
        except Exception:
            log.exception("Could not arm the retry of notifications %s; reconcile will", [r.id for r in batch])


def _sent(batch: list[Notification], receipt: str, note: str | None = None, kind: str = "notify") -> None:
    """Record the batch as sent (see `_mark_sent` and `_notify_resolved`) and commit."""
    _mark_sent(batch, receipt, note, kind)
    _notify_resolved(batch)
    db.session.commit()


def _mark_sent(batch: list[Notification], receipt: str, note: str | None = None, kind: str = "notify") -> None:
    """Mark one message's rows sent (the primary first), each with its timeline entry."""
    now = clock.now()
    primary = batch[0]
    for row in batch:
        row.status = "sent"
        row.sent_at = now
        row.claimed_at = None
        row.claimed_by = None
        row.receipt = (receipt or "")[:255]
        if row is not primary:
            row.folded_into_id = primary.id
        if row.incident_id is not None:
            text = note or sent_note(row, len(batch) - 1)
            row.incident.log(kind, text, channel=row.kind, data={"notification_id": row.id})


def _notify_resolved(rows: list[Notification]) -> None:
    """A page whose incident was resolved while it was in flight earns its recipient the resolve
    notice. The incidents are locked first (in id order), see queue_resolve_notices."""
    incident_ids = sorted({row.incident_id for row in rows if row.purpose == "page" and row.incident_id})
    if not incident_ids:
        return
    locked = db.session.execute(
        select(Incident.id, Incident.status)
        .where(Incident.id.in_(incident_ids))
        .order_by(Incident.id)
        .with_for_update()
    ).all()
    for incident_id, status in locked:
        if status == "resolved":
            queue_resolve_notices(db.session.get(Incident, incident_id, populate_existing=True))
