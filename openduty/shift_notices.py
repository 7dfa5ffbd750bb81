"""Before and after a shift: reminders, handoff notices and the weekly summary.

Each person has one durable timer of kind REMINDER_KIND (ref_id = user id), due at the next moment
they are owed something: a reminder `reminder_hours` before a shift starts, or the handoff notice
at its start. When it fires, everything owed by then is sent and the timer is planned again. A
schedule change (any edit that bumps Schedule.revision: layers, participants, overrides) arms a
PLAN_KIND timer for that schedule, due at once, which re-plans the timers of its people; changing
one's own settings re-plans at once. The weekly summary (opt-in) is a SUMMARY_KIND timer per user,
due on Mondays at 08:00 in their time zone.

Nothing is sent twice for one shift: a ShiftNotice row (unique per user, kind, schedule, shift
start) is written with the Notification that carries it. Sending goes through delivery like a
page (retries, throttling, the outbound policy); docs/notifications.md has the details.
"""

from collections.abc import Mapping
from datetime import datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from flask import current_app
from sqlalchemy import event, inspect, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from openduty import clock, oncall, timers, validation
from openduty.extensions import db
from openduty.models import (
    ContactMethod,
    EscalationLevel,
    EscalationPolicy,
    EscalationTarget,
    Incident,
    LayerEvent,
    LayerParticipant,
    Notification,
    Schedule,
    ScheduleLayer,
    ScheduleOverride,
    Service,
    ShiftNotice,
    ShiftNoticeSettings,
    User,
)
from openduty.models.shift_notice import DEFAULT_REMINDER_HOURS, MAX_REMINDER_HOURS
from openduty.notifiers.base import Message

REMINDER_KIND = "shift_notice"
PLAN_KIND = "shift_plan"
SUMMARY_KIND = "weekly_summary"
# A handoff notice is still sent this long after the shift started (a worker that was down, a shift
# created a moment ago); later than that it is news to nobody.
HANDOFF_GRACE = timedelta(hours=1)
# With nothing owed in sight, a person's timer looks again after this long.
LOOKAHEAD = timedelta(days=7)
# The weekly summary goes out on this weekday (Monday = 0) at this local time.
SUMMARY_WEEKDAY = 0
SUMMARY_TIME = time(8, 0)


# --- Settings ------------------------------------------------------------------------------------


def settings_for(user: User) -> ShiftNoticeSettings:
    """The user's settings (defaults, not added to the session, when they never changed them)."""
    found = db.session.get(ShiftNoticeSettings, user.id)
    return found or ShiftNoticeSettings(
        user_id=user.id, reminder_hours=DEFAULT_REMINDER_HOURS, contact_method_id=None, weekly_summary=False
    )


def channel(user: User, settings: ShiftNoticeSettings) -> tuple[str, str, int | None]:
    """(kind, address, contact method id) the notices go to: the chosen method, else the first
    email method, else the login address."""
    method = db.session.get(ContactMethod, settings.contact_method_id) if settings.contact_method_id else None
    if method is None or method.user_id != user.id:
        method = next((m for m in user.contact_methods if m.kind == "email"), None)
    if method is None:
        return "email", user.email, None
    return method.kind, method.address, method.id


# The names of the settings in forms and the users API.
SETTINGS_FIELDS = ("reminder_hours", "reminder_contact_method_id", "weekly_summary")


def clean_settings(user: User, data: Mapping[str, Any]) -> dict[str, Any]:
    """Validate the settings present in `data` (ValidationError, naming each bad field)."""
    checks = {}
    if "reminder_hours" in data:
        checks["reminder_hours"] = lambda: validation.integer(
            data["reminder_hours"], minimum=0, maximum=MAX_REMINDER_HOURS, label="Hours before"
        )
    if "reminder_contact_method_id" in data:
        checks["reminder_contact_method_id"] = lambda: _own_method(user, data["reminder_contact_method_id"])
    if "weekly_summary" in data:
        checks["weekly_summary"] = lambda: validation.boolean(data["weekly_summary"], "Weekly summary")
    return validation.collect(checks)


def _own_method(user: User, value: Any) -> int | None:
    if value in (None, ""):
        return None
    method = db.session.get(ContactMethod, validation.object_id(value, label="Contact method"))
    if method is None or method.user_id != user.id:
        raise validation.FieldError("Choose one of your contact methods (or none: your first email).")
    return method.id


def all_settings() -> dict[int, ShiftNoticeSettings]:
    """Every stored row by user id (one query, for lists of users)."""
    return {row.user_id: row for row in db.session.scalars(select(ShiftNoticeSettings))}


def settings_json(user: User, rows: Mapping[int, ShiftNoticeSettings] | None = None) -> dict[str, Any]:
    """The settings as the users API shows them (`rows`: all_settings(), when listing many)."""
    row = (rows.get(user.id) if rows is not None else None) or settings_for(user)
    return {
        "reminder_hours": row.reminder_hours,
        "reminder_contact_method_id": row.contact_method_id,
        "weekly_summary": row.weekly_summary,
    }


def save_settings(user: User, data: Mapping[str, Any]) -> ShiftNoticeSettings:
    """Validate and store the settings present in `data`, and re-plan the user's timers."""
    clean = clean_settings(user, data)
    row = db.session.get(ShiftNoticeSettings, user.id)
    if row is None:
        row = settings_for(user)
        db.session.add(row)
    if "reminder_contact_method_id" in clean:
        row.contact_method_id = clean.pop("reminder_contact_method_id")
    for key, value in clean.items():
        setattr(row, key, value)
    db.session.flush()
    plan(user)
    return row


# --- Planning ------------------------------------------------------------------------------------


def _owed(user: User, settings: ShiftNoticeSettings, now: datetime) -> list[tuple[datetime, str, Schedule, object]]:
    """(moment, kind, schedule, shift) for every reminder and handoff not yet sent, soonest first."""
    hours = timedelta(hours=settings.reminder_hours or 0)
    found = oncall.user_shifts(user, now - HANDOFF_GRACE, now + hours + LOOKAHEAD)
    sent = {
        tuple(row)
        for row in db.session.execute(
            select(ShiftNotice.kind, ShiftNotice.schedule_id, ShiftNotice.shift_start).where(
                ShiftNotice.user_id == user.id, ShiftNotice.shift_start >= now - HANDOFF_GRACE
            )
        )
    }
    owed = []
    for schedule, shift in found:
        if shift.start >= now - HANDOFF_GRACE and ("handoff", schedule.id, shift.start) not in sent:
            owed.append((shift.start, "handoff", schedule, shift))
        if hours and shift.start > now and ("reminder", schedule.id, shift.start) not in sent:
            owed.append((shift.start - hours, "reminder", schedule, shift))
    owed.sort(key=lambda item: (item[0], item[1] != "reminder", item[2].name))
    return owed


def plan(user: User) -> None:
    """Arm the user's reminder/handoff timer at the next moment something is owed (or cancel it for
    a deactivated user or one in no schedule), and their weekly summary timer."""
    now = clock.now()
    if not user.active or not oncall.schedules_with_user(user):
        timers.set_timer(REMINDER_KIND, user.id, None)
    else:
        owed = _owed(user, settings_for(user), now)
        due = owed[0][0] if owed else now + LOOKAHEAD
        timers.set_timer(REMINDER_KIND, user.id, max(due, now))
    wanted = user.active and settings_for(user).weekly_summary
    if not wanted:
        timers.set_timer(SUMMARY_KIND, user.id, None)
    elif timers.timer_due(SUMMARY_KIND, user.id) is None:
        timers.set_timer(SUMMARY_KIND, user.id, next_summary_at(user, now))


def next_summary_at(user: User, now: datetime) -> datetime:
    """The next SUMMARY_WEEKDAY SUMMARY_TIME in the user's time zone after `now`."""
    tz = ZoneInfo(user.time_zone or "UTC")
    local = now.astimezone(tz)
    day = local.date() - timedelta(days=(local.weekday() - SUMMARY_WEEKDAY) % 7)
    at = datetime.combine(day, SUMMARY_TIME, tz)
    while at <= now:
        day += timedelta(days=7)
        at = datetime.combine(day, SUMMARY_TIME, tz)
    return at.astimezone(now.tzinfo)


def schedule_users(schedule_id: int) -> list[User]:
    """Active people who take part in the schedule (rotations, imported events, overrides)."""
    ids = set(db.session.scalars(select(ScheduleOverride.user_id).where(ScheduleOverride.schedule_id == schedule_id)))
    layers = select(ScheduleLayer.id).where(ScheduleLayer.schedule_id == schedule_id)
    ids |= set(db.session.scalars(select(LayerParticipant.user_id).where(LayerParticipant.layer_id.in_(layers))))
    ids |= set(db.session.scalars(select(LayerEvent.user_id).where(LayerEvent.layer_id.in_(layers))))
    ids.discard(None)
    if not ids:
        return []
    return list(db.session.scalars(select(User).where(User.id.in_(ids), User.active.is_(True)).order_by(User.id)))


# --- Timer handlers (openduty.jobs.TIMER_HANDLERS) -----------------------------------------------


def fire(user_id: int, due: datetime) -> None:
    """Send every reminder and handoff owed to the user by now, then plan their next timer."""
    user = db.session.get(User, user_id)
    if user is None:
        return
    if user.active:
        settings = settings_for(user)
        now = clock.now()
        for moment, kind, schedule, shift in _owed(user, settings, now):
            if moment <= now:
                subject, body, short = (reminder_text if kind == "reminder" else handoff_text)(user, schedule, shift)
                send_notice(user, settings, kind, schedule.id, shift.start, subject, body, short)
    plan(user)


def replan_schedule(schedule_id: int, due: datetime) -> None:
    """A schedule changed: plan again the timers of everyone in it."""
    for user in schedule_users(schedule_id):
        plan(user)


def send_summary(user_id: int, due: datetime) -> None:
    """Send the weekly summary (if still wanted) and arm next week's."""
    user = db.session.get(User, user_id)
    if user is None or not user.active:
        return
    settings = settings_for(user)
    if not settings.weekly_summary:
        return
    subject, body, short = summary_text(user, due)
    send_notice(user, settings, "summary", 0, due, subject, body, short)
    timers.set_timer(SUMMARY_KIND, user.id, next_summary_at(user, due + timedelta(minutes=1)))


def send_notice(user, settings, kind, schedule_id, shift_start, subject, body, short) -> None:
    """Record the notice (once: a second attempt for the same shift finds it taken) and queue its
    Notification for delivery after commit."""
    method_kind, address, method_id = channel(user, settings)
    dialect = postgresql if db.session.get_bind().dialect.name == "postgresql" else sqlite
    values = dict(user_id=user.id, kind=kind, schedule_id=schedule_id, shift_start=shift_start,
                  subject=subject[:255], body=body, short=short[:1000], created_at=clock.now())  # fmt: skip
    stmt = dialect.insert(ShiftNotice).values(**values).on_conflict_do_nothing().returning(ShiftNotice.id)
    notice_id = db.session.scalar(stmt)
    if notice_id is None:
        return
    notification = Notification(
        user_id=user.id, kind=method_kind, address=address, contact_method_id=method_id, purpose=kind,
        send_at=clock.now(),
    )  # fmt: skip
    db.session.add(notification)
    db.session.flush()
    db.session.get(ShiftNotice, notice_id).notification_id = notification.id
    timers.track_notification(notification)


# --- What is said --------------------------------------------------------------------------------


def when(at: datetime, tz: ZoneInfo) -> str:
    local = at.astimezone(tz)
    return f"{local:%a} {local.day} {local:%b %H:%M}"


def base_url() -> str:
    return current_app.config["BASE_URL"].rstrip("/")


def reminder_text(user: User, schedule: Schedule, shift) -> tuple[str, str, str]:
    """'You are on call for Payments from Mon 2 Mar 09:00 to Mon 9 Mar 09:00 (Europe/Budapest)'."""
    tz = ZoneInfo(user.time_zone or "UTC")
    line = (
        f"You are on call for {schedule.name} from {when(shift.start, tz)} to {when(shift.end, tz)} "
        f"({user.time_zone or 'UTC'})."
    )
    body = f"{line}\n\nSchedule: {base_url()}/schedules/{schedule.id}\n"
    return f"[Openduty] Reminder: on call for {schedule.name}", body, f"Openduty: {line}"


def open_incidents_for(schedule_id: int) -> list[Incident]:
    """Open incidents on the services whose escalation policies target this schedule."""
    policies = (
        select(EscalationLevel.policy_id)
        .join(EscalationTarget, EscalationTarget.level_id == EscalationLevel.id)
        .where(EscalationTarget.target_type == "schedule", EscalationTarget.schedule_id == schedule_id)
    )
    return list(
        db.session.scalars(
            select(Incident)
            .join(Service, Incident.service_id == Service.id)
            .join(EscalationPolicy, Service.escalation_policy_id == EscalationPolicy.id)
            .where(EscalationPolicy.id.in_(policies), Incident.status != "resolved")
            .order_by(Incident.created_at, Incident.id)
        )
    )


def handoff_text(user: User, schedule: Schedule, shift) -> tuple[str, str, str]:
    """The incoming person's handoff: their shift, and the open incidents they inherit, with links."""
    tz = ZoneInfo(user.time_zone or "UTC")
    incidents = open_incidents_for(schedule.id)
    lines = [
        f"Your shift on call for {schedule.name} starts now ({when(shift.start, tz)} to "
        f"{when(shift.end, tz)}, {user.time_zone or 'UTC'}).",
        "",
    ]
    if incidents:
        lines.append(f"Open incidents ({len(incidents)}):")
        lines += [
            f"- #{i.number} [{i.status}] {i.service.name}: {i.summary[:200]} {base_url()}/incidents/{i.id}"
            for i in incidents
        ]
    else:
        lines.append("No open incidents.")
    short = f"Openduty: on call for {schedule.name} now; {len(incidents)} open incident(s)."
    return f"[Openduty] Handoff: on call for {schedule.name}", "\n".join(lines) + "\n", short


def summary_text(user: User, at: datetime) -> tuple[str, str, str]:
    """Next week's shifts and the pages sent to the user in the week before `at`."""
    tz = ZoneInfo(user.time_zone or "UTC")
    coming = oncall.user_shifts(user, at, at + timedelta(days=7))
    pages = db.session.scalars(
        select(Notification)
        .where(
            Notification.user_id == user.id,
            Notification.purpose == "page",
            Notification.status == "sent",
            Notification.sent_at >= at - timedelta(days=7),
            Notification.sent_at < at,
        )
        .order_by(Notification.sent_at, Notification.id)
    ).all()
    lines = [f"Your week ahead ({user.time_zone or 'UTC'}):"]
    lines += [f"- {s.name}: {when(sh.start, tz)} to {when(sh.end, tz)}" for s, sh in coming] or ["- No shifts."]
    lines += ["", f"Pages sent to you last week: {len(pages)}"]
    for page in pages:
        incident = page.incident
        what = f"#{incident.number} {incident.summary[:200]}" if incident is not None else "(incident deleted)"
        lines.append(f"- {when(page.sent_at, tz)} by {page.kind}: {what}")
    short = f"Openduty weekly: {len(coming)} shift(s) ahead, {len(pages)} page(s) last week."
    return "[Openduty] Your week on call", "\n".join(lines) + "\n", short


def message(notification: Notification) -> Message:
    """The Message for a notice's Notification (messages.build_message hands these over)."""
    notice = db.session.scalar(select(ShiftNotice).where(ShiftNotice.notification_id == notification.id))
    subject, body, short = (notice.subject, notice.body, notice.short) if notice else ("[Openduty]", "", "")
    return Message(
        subject=subject, body=body, short=short, purpose=notification.purpose, action_url=base_url() + "/",
        recipient_is_admin=notification.user.is_admin,
    )  # fmt: skip


# --- Re-planning when a schedule changes ---------------------------------------------------------

_TOUCHED = "openduty.shift_notices.touched"


@event.listens_for(Session, "before_flush")
def _note_changed_schedules(session: Session, flush_context, instances) -> None:
    """Remember the schedules whose revision this flush bumps (models.schedule._bump_revisions runs
    first: it is registered when the models are imported, before this module)."""
    for obj in session.dirty:
        if isinstance(obj, Schedule) and inspect(obj).attrs.revision.history.has_changes():
            session.info.setdefault(_TOUCHED, set()).add(obj.id)


def _plan_changed_schedules(session: Session) -> None:
    """Before commit (and before timers arms what the transaction owes): a re-plan timer, due now,
    for every schedule changed in this transaction."""
    if session.get_nested_transaction() is not None:
        return
    session.flush()
    touched = session.info.pop(_TOUCHED, None)
    for schedule_id in sorted(touched or ()):
        if session.get(Schedule, schedule_id) is not None:
            timers.set_timer(PLAN_KIND, schedule_id, clock.now())


event.listen(Session, "before_commit", _plan_changed_schedules, insert=True)


@event.listens_for(Session, "after_rollback")
def _forget(session: Session) -> None:
    if session.get_nested_transaction() is None:
        session.info.pop(_TOUCHED, None)
