"""Maintenance windows: the rules shared by the maintenance pages and the JSON API, and what a
window does to paging when it starts and ends (docs/escalation.md, "Maintenance windows").

During a window nobody is paged for its services: events still open and deduplicate incidents,
which are held ("in maintenance": no escalation) by escalation.incident_triggered. When a window
starts, the open, unacknowledged incidents of its services are held too: their pending pages are
cancelled. When it ends, every held incident of a service that no other window still covers starts
escalating from level 1. The start and end run on the durable timers (openduty.timers.set_timer,
kinds "maintenance_start" and "maintenance_end", handled by `window_started` / `window_ended`);
a change that takes effect at once (start now, end now, delete, a service taken out) applies it in
the caller's transaction. Each change validates first and changes nothing when refused; the
caller commits.
"""

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import joinedload, selectinload

from openduty import clock, timers, validation
from openduty.errors import ValidationError
from openduty.escalation import cancel_pending_pages
from openduty.extensions import db
from openduty.models import Incident, MaintenanceWindow, MaintenanceWindowService, Notification, Service, User
from openduty.models.maintenance import maintenance_ends

WINDOW_FIELDS = ("start", "end", "description", "service_ids")
# A window lasts at most this long (a longer pause is better said by disabling the service).
MAX_LENGTH = timedelta(days=31)
# A new window's length on the form.
DEFAULT_LENGTH = timedelta(hours=1)
# A window may start this far in the past (a form filled in a minute ago, a client's clock skew).
START_GRACE = timedelta(minutes=5)
# At most this many services in one window.
MAX_SERVICES = 500
# "Start now for N minutes": N between 1 and MAX_LENGTH.
MAX_MINUTES = int(MAX_LENGTH.total_seconds() // 60)
# How many past windows the lists show.
PAST_SHOWN = 50
START_TIMER = "maintenance_start"
END_TIMER = "maintenance_end"


# --- Validation and changes -----------------------------------------------------------------------


def _service_ids(value: Any, actor: User | None) -> list[int]:
    if isinstance(value, int | str):
        value = [value]
    if not isinstance(value, list | tuple) or not value:
        raise validation.FieldError("Choose at least one service.")
    if len(value) > MAX_SERVICES:
        raise validation.FieldError(f"At most {MAX_SERVICES} services in one window.")
    ids = sorted({validation.object_id(v, label="A service id") for v in value})
    teams = dict(db.session.execute(select(Service.id, Service.team_id).where(Service.id.in_(ids))).all())
    missing = [i for i in ids if i not in teams]
    if missing:
        raise validation.FieldError(f"No service with id {', '.join(map(str, missing))}.")
    if actor is not None and not actor.is_admin:
        refused = [i for i in ids if not actor.manages(teams[i])]
        if refused:
            raise validation.FieldError(
                "You can only put services your teams own in maintenance (not service id "
                f"{', '.join(map(str, refused))}); ask an admin or that team's manager."
            )
    return ids


def clean_window(
    data: dict[str, Any], window: MaintenanceWindow | None = None, actor: User | None = None, local_zone=None
) -> dict[str, Any]:
    """Validate a window's fields (all of them when creating, those named when changing).

    End after start, at most MAX_LENGTH long, at least one service the actor manages; a new
    window (or a new start) may not lie in the past; an ended window cannot change.
    """
    validation.refuse_unknown(data, WINDOW_FIELDS)
    now = clock.now()
    if window is not None and window.end <= now:
        raise ValidationError({"end": "This window has ended and can no longer be changed."})
    checks = {
        "start": lambda: validation.aware_datetime(data.get("start"), label="Start", local_zone=local_zone),
        "end": lambda: validation.aware_datetime(data.get("end"), label="End", local_zone=local_zone),
        "description": lambda: validation.text(
            data.get("description"), max_length=1000, required=False, label="Description"
        ),
        "service_ids": lambda: _service_ids(data.get("service_ids"), actor),
    }
    if window is not None:
        checks = {name: check for name, check in checks.items() if name in data}
    clean = validation.collect(checks)
    start = clean.get("start", window.start if window else None)
    end = clean.get("end", window.end if window else None)
    errors = {}
    if "start" in clean and start < now - START_GRACE and (window is None or start != window.start):
        errors["start"] = "Start is in the past; start now or later."
    if window is not None and "start" in clean and start != window.start and window.start <= now:
        errors["start"] = "This window has started; its start can no longer change (end it instead)."
    if end <= start:
        errors["end"] = "End must be after start."
    elif end <= now:
        errors["end"] = "End is in the past; a window must end in the future (or use End now)."
    elif end - start > MAX_LENGTH:
        errors["end"] = f"A window lasts at most {MAX_LENGTH.days} days."
    if errors:
        raise ValidationError(errors)
    return clean


def save_window(
    window: MaintenanceWindow | None, data: dict[str, Any], actor: User | None = None, local_zone=None
) -> MaintenanceWindow:
    """Create a window (`window` None) or change the fields `data` names; ValidationError if any is bad."""
    clean = clean_window(data, window, actor, local_zone)
    service_ids = clean.pop("service_ids", None)
    before = set(window.service_ids) if window is not None else set()
    if window is None:
        window = MaintenanceWindow(created_by=actor, **clean)
        db.session.add(window)
    else:
        for name, value in clean.items():
            setattr(window, name, value)
    if service_ids is not None:
        keep = [link for link in window.links if link.service_id in service_ids]
        have = {link.service_id for link in keep}
        window.links = keep + [MaintenanceWindowService(service_id=i) for i in service_ids if i not in have]
    db.session.flush()
    _settle(window, before)
    return window


def restore_window(
    start: datetime, end: datetime, description: str, service_ids: list[int], created_by: User | None
) -> MaintenanceWindow:
    """A window restored from a configuration document (openduty.config_import): it may have
    started already (a backup taken during it), so unlike save_window a past start is kept; its
    timers are armed and what is due now is applied, as for any new window."""
    window = MaintenanceWindow(start=start, end=end, description=description, created_by=created_by)
    window.links = [MaintenanceWindowService(service_id=i) for i in service_ids]
    db.session.add(window)
    db.session.flush()
    _settle(window, set())
    return window


def start_now(service: Service, minutes: Any, actor: User | None = None) -> MaintenanceWindow:
    """ "Start now for N minutes" on one service (the service page)."""
    try:
        length = validation.integer(minutes, minimum=1, maximum=MAX_MINUTES, label="The length in minutes")
    except validation.FieldError as exc:
        raise ValidationError({"minutes": str(exc)}) from exc
    now = clock.now()
    data = {
        "start": now.isoformat(),
        "end": (now + timedelta(minutes=length)).isoformat(),
        "description": f"Started from the page of {service.name}.",
        "service_ids": [service.id],
    }
    return save_window(None, data, actor)


def end_now(window: MaintenanceWindow) -> None:
    """End a current window now (its services resume unless another window covers them)."""
    now = clock.now()
    if window.state(now) != "current":
        raise ValidationError({"end": "Only a current window can be ended now; delete an upcoming one."})
    window.end = now
    db.session.flush()
    _settle(window, set())


def delete_window(window: MaintenanceWindow) -> None:
    """Delete a window; if it was current, its services resume (unless another window covers them)."""
    service_ids = set(window.service_ids)
    timers.set_timer(START_TIMER, window.id, None)
    timers.set_timer(END_TIMER, window.id, None)
    db.session.delete(window)
    db.session.flush()
    resume(service_ids, clock.now())


def _settle(window: MaintenanceWindow, before: set[int]) -> None:
    """After a change: arm the window's start and end timers, and apply at once what is due now."""
    now = clock.now()
    timers.set_timer(START_TIMER, window.id, window.start if window.start > now else None)
    timers.set_timer(END_TIMER, window.id, window.end if window.end > now else None)
    current = set(window.service_ids)
    if window.start <= now < window.end:
        hold(current, now, window)
    resume(before | current, now)


# --- What windows do to incidents -----------------------------------------------------------------


def hold(service_ids: set[int], now: datetime, window: MaintenanceWindow | None = None) -> int:
    """Hold the open, unacknowledged incidents of those services that are in maintenance at `now`:
    cancel their pending pages and stop their escalation. Returns how many were held."""
    ends = maintenance_ends(service_ids, now)
    if not ends:
        return 0
    incidents = db.session.scalars(
        select(Incident)
        .where(Incident.service_id.in_(sorted(ends)), Incident.status == "triggered")
        .options(joinedload(Incident.service))
        .order_by(Incident.id)
        .with_for_update(of=Incident)
    ).all()
    held = 0
    for incident in incidents:
        if incident.in_maintenance and incident.next_escalation_at is None:
            continue
        cancel_pending_pages(incident)
        incident.bump_epoch()
        incident.next_escalation_at = None
        incident.in_maintenance = True
        what = f" ({window.description})" if window is not None and window.description else ""
        incident.log(
            "maintenance",
            f"Maintenance started on {incident.service.name}{what}: pending pages cancelled, escalation held "
            f"until the maintenance ends ({ends[incident.service_id]:%Y-%m-%d %H:%M} UTC).",
        )
        held += 1
    return held


def resume(service_ids: set[int], now: datetime) -> int:
    """Resume the held incidents of those services that no window covers at `now`: the unacknowledged
    ones escalate from level 1 now. Returns how many escalate."""
    covered = maintenance_ends(service_ids, now)
    free = sorted(set(service_ids) - set(covered))
    if not free:
        return 0
    incidents = db.session.scalars(
        select(Incident)
        .where(Incident.service_id.in_(free), Incident.in_maintenance.is_(True), Incident.status != "resolved")
        .order_by(Incident.id)
        .with_for_update()
    ).all()
    escalating = 0
    for incident in incidents:
        incident.in_maintenance = False
        if incident.status != "triggered":
            incident.log("maintenance_end", "Maintenance ended.")
            continue
        incident.bump_epoch()
        incident.escalation_level = 0
        incident.escalation_loop = 0
        incident.next_escalation_at = now
        timers.track_incident(incident)
        incident.log("maintenance_end", "Maintenance ended: escalating from level 1.")
        escalating += 1
    return escalating


def window_started(window_id: int, due: datetime) -> int:
    """Timer "maintenance_start": hold the window's services' incidents (idempotent)."""
    window = db.session.get(MaintenanceWindow, window_id)
    now = clock.now()
    if window is None or window.end <= now:
        return 0
    return hold(set(window.service_ids), now, window)


def window_ended(window_id: int, due: datetime) -> int:
    """Timer "maintenance_end": resume the window's services not covered by another window."""
    window = db.session.get(MaintenanceWindow, window_id)
    if window is None:
        return 0
    return resume(set(window.service_ids), clock.now())


# --- Reading ---------------------------------------------------------------------------------------


def _windows():
    return select(MaintenanceWindow).options(
        selectinload(MaintenanceWindow.links),
        selectinload(MaintenanceWindow.services),
        selectinload(MaintenanceWindow.created_by),
    )


def windows_by_state(now: datetime, service_id: int | None = None) -> dict[str, list[MaintenanceWindow]]:
    """Current and upcoming windows (soonest first) and the latest PAST_SHOWN past ones (newest first)."""
    query = _windows()
    if service_id is not None:
        query = query.where(
            MaintenanceWindow.id.in_(
                select(MaintenanceWindowService.window_id).where(MaintenanceWindowService.service_id == service_id)
            )
        )
    ahead = db.session.scalars(
        query.where(MaintenanceWindow.end > now).order_by(MaintenanceWindow.start, MaintenanceWindow.id)
    ).all()
    past = db.session.scalars(
        query.where(MaintenanceWindow.end <= now)
        .order_by(MaintenanceWindow.end.desc(), MaintenanceWindow.id.desc())
        .limit(PAST_SHOWN)
    ).all()
    return {
        "current": [w for w in ahead if w.start <= now],
        "upcoming": [w for w in ahead if w.start > now],
        "past": list(past),
    }


def may_manage(actor: User, window: MaintenanceWindow) -> bool:
    """Whether `actor` may change the window: admins, or managers of every service's team in it."""
    return actor.is_admin or all(actor.manages(service.team_id) for service in window.services)


def cancel_pages_in_maintenance(pages: list[Notification], now: datetime) -> set[int]:
    """At send time: cancel the pending pages among `pages` whose service is in maintenance at `now`
    (one query), each with a timeline entry, and mark their incidents held (the window's end resumes
    them). Returns the ids cancelled."""
    pages = [p for p in pages if p.purpose == "page" and p.incident is not None]
    ends = maintenance_ends({p.incident.service_id for p in pages}, now) if pages else {}
    cancelled = set()
    for page in (p for p in pages if p.incident.service_id in ends):
        reason = f"Service {page.incident.service.name} is in maintenance."
        done = db.session.execute(
            update(Notification)
            .where(Notification.id == page.id, Notification.status == "pending")
            .values(status="cancelled", last_error=reason)
            .execution_options(synchronize_session=False)
        ).rowcount
        if done:
            page.incident.in_maintenance = True
            page.incident.log("maintenance", f"Page to {page.user.name} by {page.kind} not sent: {reason}",
                              channel=page.kind, data={"notification_id": page.id})  # fmt: skip
            cancelled.add(page.id)
    return cancelled
