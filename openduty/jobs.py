"""RQ job functions: thin, take ids, run in an app context (see openduty.worker), idempotent.

Each job re-reads the database and does nothing when the state moved on, so a duplicate, stale or
re-armed job is harmless. Periodic jobs re-arm their next run before doing their work.
"""

import logging
import time
from collections.abc import Callable
from datetime import datetime, timedelta

from flask import current_app
from rq import get_current_job

from openduty import (
    audit_log,
    change_events,
    clock,
    cover_requests,
    delivery,
    directory,
    escalation,
    event_intake,
    heartbeats,
    ical,
    maintenance,
    password_reset,
    shift_notices,
    timers,
    urgency,
)
from openduty.extensions import db
from openduty.models import Notification

log = logging.getLogger(__name__)


def escalate(incident_id: int, epoch: int) -> str:
    """Page the incident's next level if `epoch` is still current and its time has come; the pages
    due now are sent from here (claimed in the same transaction), the others get deliver jobs.

    Run by a worker that is behind (more single escalations wait in its queue), it takes up to
    ESCALATE_BATCH - 1 of them along and escalates them all as `escalate_batch` does.
    With the database away it runs again in DATABASE_RETRY_SECONDS (not at the next reconcile).
    """
    items = [(incident_id, epoch)]
    job = get_current_job()
    if job is not None:
        items += timers.take_queued_escalations(job.id, timers.ESCALATE_BATCH - 1)
    if len(items) == 1:
        return _escalate(items)[incident_id]
    log.info("Job %s also escalates %s, taken from its queue", job.id, items[1:])
    return _escalate_each_if_need_be(items)[incident_id]


def escalate_batch(items: list[list[int]]) -> dict[int, str]:
    """`escalate` for several incidents ([id, epoch] each) due together, in one transaction (one
    job, one lock query, one commit, one Redis round trip to arm what follows: issue 11)."""
    return _escalate_each_if_need_be([(int(incident_id), int(epoch)) for incident_id, epoch in items])


def _escalate_each_if_need_be(pairs: list[tuple[int, int]]) -> dict[int, str]:
    """Escalate `pairs` together; if that fails for another reason than the database, each on its
    own, so one that cannot be escalated holds up nobody else: the job then fails naming it, and
    reconcile re-arms it (the job that had it is no longer live)."""
    try:
        return _escalate(pairs)
    except Exception:
        log.exception("Escalating %s together failed; escalating each incident on its own", pairs)
    outcomes: dict[int, str] = {}
    failed = []
    for incident_id, epoch in pairs:
        try:
            outcomes.update(_escalate([(incident_id, epoch)]))
        except Exception:
            log.exception("Could not escalate incident %s (epoch %s)", incident_id, epoch)
            failed.append(incident_id)
    if failed:
        raise RuntimeError(f"Could not escalate incidents {failed} of {pairs}; reconcile re-arms them")
    return outcomes


def _escalate(items: list[tuple[int, int]]) -> dict[int, str]:
    send_now: list[Notification] = []  # the pages due now, claimed for this process to send
    try:
        outcomes = escalation.run_escalations(items, send_now)
        db.session.commit()
    except timers.DATABASE_ERRORS:
        db.session.rollback()
        timers.enqueue_escalations(
            items, clock.now() + timedelta(seconds=timers.DATABASE_RETRY_SECONDS), retry=time.time_ns() // 1_000_000
        )
        return dict.fromkeys((incident_id for incident_id, _ in items), "database unavailable")
    except Exception:
        db.session.rollback()
        raise
    delivery.send_claimed(send_now)
    return outcomes


# What each kind of timer row (timers.set_timer) does when it is due: handler(ref_id, due), run in
# the transaction that takes the row; it may arm the timer again.
TIMER_HANDLERS: dict[str, Callable[[int, datetime], object]] = {
    heartbeats.TIMER_KIND: heartbeats.missed,
    maintenance.START_TIMER: maintenance.window_started,
    maintenance.END_TIMER: maintenance.window_ended,
    shift_notices.REMINDER_KIND: shift_notices.fire,
    shift_notices.PLAN_KIND: shift_notices.replan_schedule,
    shift_notices.SUMMARY_KIND: shift_notices.send_summary,
    cover_requests.EXPIRE_KIND: cover_requests.expire,
    urgency.TIMER_KIND: urgency.support_hours_began,  # raise low-urgency incidents when support hours begin
}


def fire_timer(kind: str, ref_id: int, due: str) -> str:
    """Run the handler of the timer (kind, ref_id) armed for `due` if it is still armed for then and
    that time has come (a moved or cancelled timer does nothing; an early job re-arms).

    A handler that raises leaves the row in place (rolled back): reconcile arms it again, so a
    failing timer is retried every RECONCILE_INTERVAL and logged each time, never dropped.
    """
    at = datetime.fromisoformat(due)
    try:
        outcome = timers.take_timer(kind, ref_id, at)
        if outcome == "due":
            TIMER_HANDLERS[kind](ref_id, at)
        db.session.commit()
    except timers.DATABASE_ERRORS:
        db.session.rollback()
        retry = clock.now() + timedelta(seconds=timers.DATABASE_RETRY_SECONDS)
        job_id = f"{timers.timer_job_id(kind, ref_id, at)}-db{time.time_ns() // 1_000_000}"
        timers.enqueue_timer(kind, ref_id, at, job_id=job_id, due_at=retry)
        return "database unavailable"
    return outcome


def deliver(notification_id: int) -> str:
    """Claim and send one notification (folding throttled pages to the same number)."""
    return delivery.deliver(notification_id)


def reconcile() -> dict[str, int]:
    """Periodic: re-arm due work that has no live job (the database is the source of truth)."""
    timers.schedule_periodic("openduty.jobs.reconcile", timers.RECONCILE_INTERVAL)
    return timers.reconcile()


def refresh_ical_sources() -> int:
    """Periodic: refetch every iCal-sourced schedule layer (one job per layer, on the low queue)."""
    timers.schedule_periodic("openduty.jobs.refresh_ical_sources", "ICAL_REFRESH_MINUTES")
    return ical.refresh_ical_sources()


def sync_directory() -> dict[str, int] | str:
    """Periodic: refresh directory users and deactivate those who left (LDAP_SYNC_MINUTES; off without
    LDAP_URL or with 0, and then it stops re-arming itself)."""
    if not directory.enabled() or not current_app.config.get("LDAP_SYNC_MINUTES"):
        return "directory sync off"
    timers.schedule_periodic("openduty.jobs.sync_directory", "LDAP_SYNC_MINUTES")
    try:
        counts = directory.sync()
    except directory.DirectoryDown as exc:
        db.session.rollback()
        log.warning("directory sync skipped: %s", exc)
        return "directory down"
    db.session.commit()
    return counts


def purge_audit_log() -> int:
    """Periodic (daily): delete audit entries older than AUDIT_RETENTION_DAYS (0 keeps them forever)."""
    timers.schedule_periodic("openduty.jobs.purge_audit_log", timers.AUDIT_PURGE_INTERVAL)
    removed = audit_log.purge()
    db.session.commit()
    return removed


def purge_change_events() -> int:
    """Periodic (daily): delete change events received more than CHANGE_EVENT_RETENTION_DAYS ago."""
    timers.schedule_periodic("openduty.jobs.purge_change_events", timers.AUDIT_PURGE_INTERVAL)
    removed = change_events.purge()
    db.session.commit()
    return removed


def purge_suppressed_alerts() -> int:
    """Periodic (daily): delete suppressed alerts older than SUPPRESSED_ALERT_RETENTION_DAYS."""
    timers.schedule_periodic("openduty.jobs.purge_suppressed_alerts", timers.AUDIT_PURGE_INTERVAL)
    removed = event_intake.purge_suppressed()
    db.session.commit()
    return removed


def auto_resolve_incidents() -> int:
    """Periodic (every minute): resolve incidents whose service auto-resolves after N hours without
    a new alert (openduty.event_intake.auto_resolve)."""
    timers.schedule_periodic("openduty.jobs.auto_resolve_incidents", timers.AUTO_RESOLVE_INTERVAL)
    resolved = event_intake.auto_resolve()
    db.session.commit()
    return resolved


def send_password_reset(user_id: int) -> str:
    """Email a password reset link (asked for on the login page's "Forgot your password?")."""
    return password_reset.send_link(user_id)
