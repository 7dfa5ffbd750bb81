"""Urgency: whether an incident pages by its users' high-urgency or low-urgency notification rules.

A service's urgency setting (SERVICE_URGENCIES) gives each new incident its urgency: high, low, by
severity (critical and error high, warning and info low), or by support hours (high within weekly
hours in a time zone, low outside). An event may name the urgency itself (Event.urgency, set by an
event rule), which wins. Each user keeps two rule lists (escalation.user_pages); every page records
the urgency it was planned for, and delivery does not send it if the incident's urgency has changed.

People change an incident's urgency (`change_urgency`): pending pages of the old urgency are
cancelled and the users of the current level are paged again by the rules of the new one from now
(raising it pages by the high-urgency rules at once). When a service's support hours begin, its
open, unacknowledged low-urgency incidents are raised to high (`support_hours_began`, run by one
durable timer per service, re-armed for the next start each time and whenever the setting changes).
"""

from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select

from openduty import clock, escalation, incidents, timers, validation
from openduty.extensions import db
from openduty.models import Incident, Service, User
from openduty.models.incident import URGENCIES
from openduty.models.service import SERVICE_URGENCIES, SERVICE_URGENCY_LABELS
from openduty.shifts import WEEKDAYS, localize, minutes_of_day, wall_clock
from openduty.validation import FieldError

# By severity: these are low urgency, every other severity high.
LOW_SEVERITIES = ("warning", "info")
# The durable timer (openduty.timers.set_timer) of a service's next start of support hours.
TIMER_KIND = "support_hours"
SUPPORT_HOURS_FIELDS = ("time_zone", "days", "start", "end")
_EXAMPLE = '{"time_zone": "Europe/Budapest", "days": ["mon", "fri"], "start": "09:00", "end": "17:00"}'


# --- Settings ------------------------------------------------------------------------------------


def clean_setting(value: Any) -> str:
    """A service's urgency setting, one of SERVICE_URGENCIES."""
    if value not in SERVICE_URGENCIES:
        raise FieldError(f"Use one of {', '.join(SERVICE_URGENCIES)}.")
    return value


def clean_urgency(value: Any) -> str:
    """An incident's urgency: high or low."""
    if value not in URGENCIES:
        raise FieldError("Use high or low.")
    return value


def clean_support_hours(value: Any) -> dict[str, Any] | None:
    """Weekly support hours: days (mon..sun, at least one), start and end (HH:MM) in an IANA time
    zone. An end at or before the start runs past midnight: the window starts on the days named
    and ends the next day. None clears them. Raises FieldError naming every problem."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise FieldError(f"Send an object like {_EXAMPLE}.")
    problems = []
    unknown = sorted(str(name) for name in set(value) - set(SUPPORT_HOURS_FIELDS))
    if unknown:
        problems.append(f"Unknown field {', '.join(unknown)}; use {', '.join(SUPPORT_HOURS_FIELDS)}.")
    try:
        zone = validation.time_zone(value.get("time_zone"))
    except FieldError as exc:
        problems.append(f"time_zone: {exc}")
    days = value.get("days")
    if not isinstance(days, list) or not days:
        problems.append("days: choose at least one day (mon, tue, wed, thu, fri, sat, sun).")
    elif bad := [str(day)[:20] for day in days if not isinstance(day, str) or day.strip().lower() not in WEEKDAYS]:
        problems.append(f"days: unknown day {', '.join(bad)}; use mon, tue, wed, thu, fri, sat, sun.")
    minutes = {}
    for name in ("start", "end"):
        try:
            minutes[name] = minutes_of_day(value.get(name), name)
        except ValueError as exc:
            problems.append(str(exc))
    if minutes.get("start") == 24 * 60:
        problems.append("start must be before 24:00.")
    elif len(minutes) == 2 and minutes["start"] == minutes["end"]:
        problems.append("start and end are the same time: give the hours a length (00:00 to 24:00 is all day).")
    if problems:
        raise FieldError(" ".join(problems))
    return {
        "time_zone": zone,
        "days": sorted({day.strip().lower() for day in days}, key=WEEKDAYS.index),
        "start": _hhmm(minutes["start"]),
        "end": _hhmm(minutes["end"]),
    }


def _hhmm(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def describe_support_hours(hours: dict[str, Any] | None) -> str:
    """Support hours as people read them: "Mon–Fri 09:00–17:00 (Europe/Budapest)"."""
    if not hours:
        return "none set"
    indexes = [WEEKDAYS.index(day) for day in hours["days"]]
    runs: list[list[int]] = []
    for index in indexes:
        if runs and index == runs[-1][-1] + 1:
            runs[-1].append(index)
        else:
            runs.append([index])
    names = []
    for run in runs:
        first, last = WEEKDAYS[run[0]].title(), WEEKDAYS[run[-1]].title()
        names.append(first if len(run) == 1 else f"{first}, {last}" if len(run) == 2 else f"{first}–{last}")
    overnight = " (ending the next day)" if hours["end"] <= hours["start"] and hours["end"] != "24:00" else ""
    return f"{', '.join(names)} {hours['start']}–{hours['end']}{overnight} ({hours['time_zone']})"


def describe_setting(service: Service) -> str:
    """A service's urgency setting as people read it (the service page)."""
    if service.urgency == "support_hours":
        return f"By support hours: high {describe_support_hours(service.support_hours)}, low outside."
    return SERVICE_URGENCY_LABELS.get(service.urgency, service.urgency) + "."


# --- What urgency a new incident gets ------------------------------------------------------------


def _window(hours: dict[str, Any], day: date) -> tuple[datetime, datetime]:
    """The support hours that start on `day` (a local date), as aware UTC times."""
    tz = ZoneInfo(hours["time_zone"])
    midnight = datetime.combine(day, time())
    start, end = minutes_of_day(hours["start"], "start"), minutes_of_day(hours["end"], "end")
    if end <= start:
        end += 24 * 60  # overnight: ends the next day
    return localize(midnight + timedelta(minutes=start), tz), localize(midnight + timedelta(minutes=end), tz)


def in_support_hours(hours: dict[str, Any], at: datetime) -> bool:
    """Whether `at` falls within the support hours (a window may have started the day before)."""
    today = wall_clock(at, ZoneInfo(hours["time_zone"])).date()
    for day in (today - timedelta(days=1), today):
        if WEEKDAYS[day.weekday()] in hours["days"]:
            start, end = _window(hours, day)
            if start <= at < end:
                return True
    return False


def next_support_start(hours: dict[str, Any], after: datetime) -> datetime:
    """When the support hours next begin, strictly after `after`."""
    today = wall_clock(after, ZoneInfo(hours["time_zone"])).date()
    for offset in range(9):
        day = today + timedelta(days=offset)
        if WEEKDAYS[day.weekday()] in hours["days"]:
            start, _ = _window(hours, day)
            if start > after:
                return start
    raise ValueError("support hours without a day")


def setting_at(setting: str, support_hours: dict[str, Any] | None, at: datetime) -> str:
    """A service's setting with support hours looked up at `at`: high, low or by_severity."""
    if setting == "support_hours":
        return "high" if not support_hours or in_support_hours(support_hours, at) else "low"
    return setting


def incident_urgency(setting: str, severity: str, requested: str | None = None) -> str:
    """A new incident's urgency: the event's own (`requested`) if it names one, else what the
    service's setting (as `setting_at` gives it) makes of the severity."""
    if requested in URGENCIES:
        return requested
    if setting == "by_severity":
        return "low" if severity in LOW_SEVERITIES else "high"
    return setting if setting in URGENCIES else "high"


# --- Changing an incident's urgency --------------------------------------------------------------


def change_urgency(
    incident: Incident, urgency: str, by: User | None = None, channel: str = "web", reason: str | None = None
) -> bool:
    """Set an open incident's urgency (on its locked row); False (nothing changes) if it has it.

    For a triggered incident, the pages not sent yet are cancelled and the users of the current
    level are paged from now by the rules of the new urgency: raising to high pages them by their
    high-urgency rules at once. The escalation timer keeps its time (and the epoch). Raises
    incidents.ActionError for a resolved incident. The caller commits.
    """
    incidents.lock([incident.id])
    if not incident.is_open:
        raise incidents.ActionError("A resolved incident's urgency cannot change.")
    if incident.urgency == urgency:
        return False
    before, incident.urgency = incident.urgency, urgency
    paged: list[User] = []
    if incident.status == "triggered":
        escalation.cancel_pending_pages(incident)
        paged = _page_current_level(incident, clock.now())
    verb = "Raised" if urgency == "high" else "Lowered"
    why = f" ({reason})" if reason else ""
    text = f"{verb} the urgency to {urgency}{why}{f' by {by.name}' if by else ''} via {channel}."
    if paged:
        text += f" Paging {', '.join(user.name for user in paged)} by their {urgency}-urgency rules."
    incident.log("urgency", text, by=by, channel=channel, data={"from": before, "to": urgency})
    return True


def _page_current_level(incident: Incident, now: datetime) -> list[User]:
    """Page the users of the incident's current level (on call now) by its urgency's rules."""
    policy = incident.service.escalation_policy
    if policy is None or not policy.levels or incident.escalation_level < 1:
        return []  # not paged yet: the escalation pages at the new urgency when it starts
    number = min(incident.escalation_level, len(policy.levels))
    users = escalation.level_users(policy.levels[number - 1], now)
    for user in users:
        escalation.page_user(incident, user, now, level=number, loop=incident.escalation_loop)
    return users


# --- Support hours: raise low-urgency incidents when they begin -----------------------------------


def arm_support_hours(service: Service, after: datetime | None = None) -> None:
    """Arm the service's timer at the next start of its support hours; cancel it when the service
    does not page by support hours. Called whenever the setting changes (and by the timer)."""
    due = None
    if service.urgency == "support_hours" and service.support_hours:
        due = next_support_start(service.support_hours, after or clock.now())
    timers.set_timer(TIMER_KIND, service.id, due)


def support_hours_began(service_id: int, due: datetime) -> str:
    """The timer handler: raise the service's open, unacknowledged low-urgency incidents to high,
    then arm the timer for the next start. Runs in the timer job's transaction."""
    service = db.session.get(Service, service_id)
    if service is None or service.urgency != "support_hours":
        return "support hours not used"
    query = select(Incident.id).where(
        Incident.service_id == service_id, Incident.status == "triggered", Incident.urgency == "low"
    )
    raised = 0
    for incident in incidents.lock(list(db.session.scalars(query))):
        if incident.status == "triggered" and incident.urgency == "low":
            raised += change_urgency(incident, "high", channel="system", reason="support hours began")
    arm_support_hours(service, after=max(due, clock.now()))
    return f"raised {raised}"
