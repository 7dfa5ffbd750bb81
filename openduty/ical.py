"""iCal in and out: the feeds of schedules and of each person's shifts (with their calendar-token
links), and iCal source layers (parse, expand, match to users, fetch and refresh).

The feed writer is hand-made on purpose: for 1,000 events it takes 7.5 ms against 172.7 ms with
the icalendar package (issue 10's measurement), and feeds are fetched often by every subscriber.
Its output is checked by two independent parsers (icalendar and vobject) in
tests/test_calendar_feeds.py, so it stays valid RFC 5545.
"""

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from flask import current_app
from sqlalchemy import select

from openduty import clock, oncall, outbound, validation
from openduty.extensions import db, queue
from openduty.models import LayerEvent, Schedule, ScheduleLayer, User
from openduty.shifts import localize

# --- iCal feeds --------------------------------------------------------------------------------


def feed_window(now: datetime | None = None) -> tuple[datetime, datetime]:
    """The span a feed covers: CALENDAR_FEED_DAYS_BACK before now to CALENDAR_FEED_DAYS_AHEAD after."""
    now = now or clock.now()
    config = current_app.config
    return (
        now - timedelta(days=config["CALENDAR_FEED_DAYS_BACK"]),
        now + timedelta(days=config["CALENDAR_FEED_DAYS_AHEAD"]),
    )


# RFC 5545 3.3.11: TEXT holds no control characters except HTAB (line breaks are escaped as \n).
_TEXT_CONTROLS = dict.fromkeys([*range(0x20), 0x7F])
del _TEXT_CONTROLS[0x09]


def _escape(text: str) -> str:
    """A TEXT value: backslash, semicolon and comma escaped; CRLF, lone CR and LF as \\n; other controls dropped."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = text.replace("\\", "\\\\").replace(";", "\\;").replace(",", "\\,").replace("\n", "\\n")
    return text.translate(_TEXT_CONTROLS)


def _fold(line: str) -> str:
    """RFC 5545 3.1: lines longer than 75 octets continue on lines starting with a space."""
    raw = line.encode()
    if len(raw) <= 75:
        return line
    parts, current, size, limit = [], [], 0, 75
    for char in line:
        n = len(char.encode())
        if size + n > limit:
            parts.append("".join(current))
            current, size, limit = [], 0, 74
        current.append(char)
        size += n
    parts.append("".join(current))
    return "\r\n ".join(parts)


def _utc(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


def render_feed(name: str, events: Iterable[tuple[str, datetime, datetime, str, str]]) -> str:
    """An RFC 5545 VCALENDAR of (uid, start, end, summary, description) events in UTC."""
    stamp = _utc(clock.now())
    lines = [
        "BEGIN:VCALENDAR",
        "VERSION:2.0",
        "PRODID:-//Openduty//On-call schedules//EN",
        "CALSCALE:GREGORIAN",
        "METHOD:PUBLISH",
        _fold("X-WR-CALNAME:" + _escape(name)),
        "X-PUBLISHED-TTL:PT1H",
    ]
    for uid, start, end, summary, description in events:
        lines += [
            "BEGIN:VEVENT",
            _fold("UID:" + uid),
            "DTSTAMP:" + stamp,
            "DTSTART:" + _utc(start),
            "DTEND:" + _utc(end),
            _fold("SUMMARY:" + _escape(summary)),
            _fold("DESCRIPTION:" + _escape(description)),
            "TRANSP:TRANSPARENT",
            "END:VEVENT",
        ]
    lines.append("END:VCALENDAR")
    return "\r\n".join(lines) + "\r\n"


def _summary(schedule_name: str, user: User) -> str:
    return f"On call: {user.name} ({schedule_name})"


def schedule_feed(schedule: Schedule, start: datetime | None = None, end: datetime | None = None) -> str:
    """Everyone's final shifts in the schedule as an iCal feed (one event per person per shift)."""
    if start is None or end is None:
        start, end = feed_window()
    found = oncall.shifts(schedule, start, end)
    users = oncall.users_by_id(u for s in found for u in s.user_ids)
    events = []
    for s in found:
        for user_id in s.user_ids:
            user = users.get(user_id)
            if user is not None:
                how = "override" if s.source == "override" else "rotation"
                events.append(
                    (
                        s.uid(schedule.id, user_id),
                        s.start,
                        s.end,
                        _summary(schedule.name, user),
                        f"{user.email} ({how})",
                    )
                )
    return render_feed(f"On call: {schedule.name}", events)


def user_feed(user: User, start: datetime | None = None, end: datetime | None = None) -> str:
    """One person's final shifts across every schedule as an iCal feed."""
    if start is None or end is None:
        start, end = feed_window()
    events = [
        (s.uid(schedule.id, user.id), s.start, s.end, _summary(schedule.name, user), f"{user.email}")
        for schedule, s in oncall.user_shifts(user, start, end)
    ]
    return render_feed(f"{user.name}: on-call shifts", events)


def _base_url() -> str:
    return current_app.config["BASE_URL"].rstrip("/")


def schedule_ical_url(schedule: Schedule, for_user: User) -> str | None:
    """The https feed URL of a schedule, carrying `for_user`'s calendar token (works outside requests).

    None if the user has no token (tokens are made with the user; only a POST makes a new one).
    """
    if not for_user.calendar_token:
        return None
    return f"{_base_url()}/calendar/schedules/{schedule.id}.ics?token={for_user.calendar_token}"


def user_ical_url(user: User) -> str | None:
    """The https feed URL of `user`'s own shifts, with their token (a token opens only its owner's feed)."""
    if not user.calendar_token:
        return None
    return f"{_base_url()}/calendar/users/{user.id}.ics?token={user.calendar_token}"


def webcal(url: str) -> str:
    """The same feed as a webcal:// link, which calendar apps open as a subscription."""
    return "webcal://" + url.split("://", 1)[1]


def calendar_links(user: User) -> dict[str, str] | None:
    """The user's own shifts feed as https:// and webcal:// links (None without a token); reads only."""
    url = user_ical_url(user)
    return {"https": url, "webcal": webcal(url)} if url else None


def user_for_token(token: str | None) -> User | None:
    """The active user owning a calendar token, or None."""
    if not token or len(token) > 64:
        return None
    user = db.session.scalar(select(User).where(User.calendar_token == token))
    return user if user is not None and user.active else None


# --- iCal import (source layers) ---------------------------------------------------------------


class ICalImportError(ValueError):
    """An iCal source that cannot be used; the message says what (and which event) to fix."""


@dataclass
class ImportedEvent:
    user_id: int
    start: datetime
    end: datetime
    summary: str


@dataclass
class ImportResult:
    events: list[ImportedEvent]
    unmatched: list[str]
    total: int


MAX_ICAL_BYTES = 5 * 1024 * 1024  # an on-call calendar is small; refuse anything absurd
ICAL_FETCH_SECONDS = 30  # the whole download of an iCal source


def _event_label(event) -> str:
    summary = str(event.get("SUMMARY", "")).strip()
    uid = str(event.get("UID", "")).strip()
    if summary and uid:
        return f"'{summary}' (UID {uid})"
    return f"'{summary}'" if summary else (f"UID {uid}" if uid else "without summary or UID")


# RFC 5545 3.3.10: the frequencies a recurrence rule may name.
FREQUENCIES = ("SECONDLY", "MINUTELY", "HOURLY", "DAILY", "WEEKLY", "MONTHLY", "YEARLY")
# How a time in an imported calendar should look, said when one cannot be read.
_TIME_EXAMPLE = "e.g. DTSTART:20260301T090000Z, or DTSTART;TZID=Europe/Berlin:20260301T090000"


def _unexpandable(event, exc: Exception) -> "ICalImportError":
    """What to fix when an event cannot be expanded, in the calendar's own words (RRULE, DTSTART);
    the library's exception goes to the log, not to the person reading the layer's error."""
    label = _event_label(event)
    current_app.logger.info("iCal event %s not expanded: %r", label, exc)
    for name in ("DTSTART", "DTEND"):
        prop = event.get(name)
        try:
            if prop is not None:
                prop.dt  # noqa: B018 (reading it is the check: a broken time raises here)
        except Exception:
            return ICalImportError(f"Event {label} has an unreadable {name} ({_TIME_EXAMPLE}).")
    rule = event.get("RRULE")
    rules = rule if isinstance(rule, list) else [rule] if rule is not None else []
    for each in rules:
        try:
            text = each.to_ical().decode(errors="replace")
        except Exception:  # noqa: BLE001 (an unwritable rule is said as unexpandable below)
            break
        frequency = re.search(r"(?:^|;)FREQ=([^;]*)", text, re.IGNORECASE)
        if frequency is None:
            return ICalImportError(f"Event {label} has a recurrence rule (RRULE) without FREQ; add e.g. FREQ=WEEKLY.")
        if frequency.group(1).upper() not in FREQUENCIES:
            return ICalImportError(
                f"Event {label} has a recurrence rule with FREQ={frequency.group(1)[:40]}; "
                f"FREQ must be one of {', '.join(FREQUENCIES)}."
            )
    return ICalImportError(
        f"Event {label} has a recurrence rule (RRULE, RDATE or EXDATE) that cannot be expanded; "
        "check it against RFC 5545 (e.g. RRULE:FREQ=WEEKLY;BYDAY=MO;COUNT=10)."
    )


def _as_utc(value, tz: ZoneInfo) -> datetime:
    """An iCal date, floating or zoned time as aware UTC (dates and floating times in the schedule's zone)."""
    if isinstance(value, datetime):
        return localize(value, tz) if value.tzinfo is None else value.astimezone(UTC)
    if isinstance(value, date):
        return localize(datetime.combine(value, time()), tz)
    raise ValueError(f"not a date or time: {value!r}")


def expand_ical(data: str | bytes, tz: ZoneInfo, start: datetime, end: datetime) -> list[tuple]:
    """Parse an iCalendar file and expand its events over [start, end).

    Returns [(summary, attendee emails, start, end)]. Raises ICalImportError naming the event
    that cannot be read or whose recurrence rule cannot be expanded.
    """
    # Imported here, not at the top: the two parsers take ~150 ms to import, which every web, CLI and
    # worker start would pay although only importing a calendar needs them.
    import icalendar  # heavy, and only needed here (see above)
    import recurring_ical_events  # heavy, and only needed here (see above)

    if isinstance(data, str):
        if validation.unstorable(data):
            raise ICalImportError(f"The calendar {validation.unstorable(data)}; it is not a valid text calendar.")
        data = data.encode()
    if b"\x00" in data:
        raise ICalImportError("The calendar contains a NUL character; it is not a valid text calendar.")
    if len(data) > MAX_ICAL_BYTES:
        raise ICalImportError(f"The calendar is too large ({len(data)} bytes; at most {MAX_ICAL_BYTES}).")
    try:
        calendar = icalendar.Calendar.from_ical(data)
    except Exception as exc:
        current_app.logger.info("iCal calendar not parsed: %r", exc)
        raise ICalImportError(
            "This is not a valid iCalendar (.ics) file: some line is not NAME:VALUE, or BEGIN and END do not "
            "match. Export the calendar again, or check it with an iCalendar validator."
        ) from exc
    if getattr(calendar, "name", None) != "VCALENDAR":
        raise ICalImportError("This is not a valid iCalendar (.ics) file: it has no VCALENDAR.")
    timezones = calendar.walk("VTIMEZONE")
    groups: dict[str, list] = {}
    for n, event in enumerate(calendar.walk("VEVENT")):
        if event.get("DTSTART") is None:
            raise ICalImportError(f"Event {_event_label(event)} has no start (DTSTART).")
        groups.setdefault(str(event.get("UID") or f"#{n}"), []).append(event)
    out = []
    for events in groups.values():
        # Expand each event (with its RECURRENCE-ID exceptions) alone, so an error names it.
        single = icalendar.Calendar()
        for component in (*timezones, *events):
            single.add_component(component)
        try:
            occurrences = recurring_ical_events.of(single).between(start, end)
        except Exception as exc:
            raise _unexpandable(events[0], exc) from exc
        for occurrence in occurrences:
            try:
                s = _as_utc(occurrence["DTSTART"].dt, tz)
                e = _as_utc(occurrence["DTEND"].dt, tz) if occurrence.get("DTEND") else s
            except Exception as exc:
                current_app.logger.info("iCal event %s: unreadable time: %r", _event_label(occurrence), exc)
                raise ICalImportError(
                    f"Event {_event_label(occurrence)} has an unreadable start or end ({_TIME_EXAMPLE})."
                ) from exc
            if e <= s:
                continue
            attendees = occurrence.get("ATTENDEE", [])
            if not isinstance(attendees, list):
                attendees = [attendees]
            emails = [str(a).split(":", 1)[-1].strip().lower() for a in attendees if str(a).strip()]
            out.append((str(occurrence.get("SUMMARY", "")).strip(), emails, s, e))
    return out


def match_users(raw: list[tuple], users: Iterable[User]) -> ImportResult:
    """Match expanded events to users: attendee emails first, then the summary (a name or email)."""
    by_email, by_name = {}, {}
    for user in users:
        by_email[user.email.lower()] = user
        by_name.setdefault(user.name.strip().lower(), user)
    name_patterns = [
        (re.compile(r"(?<!\w)" + re.escape(name) + r"(?!\w)"), user) for name, user in by_name.items() if len(name) >= 3
    ]
    events, unmatched = [], set()
    for summary, emails, s, e in raw:
        matched = [by_email[m] for m in emails if m in by_email]
        if not matched:
            key = summary.lower()
            user = by_email.get(key) or by_name.get(key)
            if user is None:
                hits = {u.id: u for pattern, u in name_patterns if pattern.search(key)}
                user = next(iter(hits.values())) if len(hits) == 1 else None
            matched = [user] if user else []
        if not matched:
            unmatched.add(summary or ", ".join(emails) or "(no summary)")
        for user in dict.fromkeys(matched):
            events.append(ImportedEvent(user.id, s, e, summary[:500]))
    return ImportResult(events, sorted(unmatched), len(raw))


def import_ical(layer: ScheduleLayer, data: str | bytes, tz: ZoneInfo | None = None) -> ImportResult:
    """Replace an iCal layer's events with those of `data`; on any error raise and change nothing."""
    now = clock.now()
    config = current_app.config
    tz = tz or ZoneInfo(layer.schedule.time_zone)
    raw = expand_ical(
        data,
        tz,
        now - timedelta(days=config["ICAL_IMPORT_DAYS_BACK"]),
        now + timedelta(days=config["ICAL_IMPORT_DAYS_AHEAD"]),
    )
    result = match_users(raw, db.session.scalars(select(User).where(User.active.is_(True))))
    layer.events = [LayerEvent(user_id=e.user_id, start=e.start, end=e.end, summary=e.summary) for e in result.events]
    layer.ical_data = data.decode() if isinstance(data, bytes) else data
    layer.ical_unmatched = result.unmatched
    layer.ical_refreshed_at = now
    layer.ical_error = None
    return result


def fetch_ical(url: str) -> bytes:
    """Download an iCal source under the outbound policy (webcal:// is fetched over https).

    Redirects are followed (each hop is checked like the first). Errors name the HTTP status or a
    short reason, never the URL (it may hold a token) nor what the server answered.
    """
    if url.startswith("webcal://"):
        url = "https://" + url[len("webcal://") :]
    try:
        reply = outbound.request(
            "GET", url, outbound.policy_for(current_app.config), follow_redirects=True, max_bytes=MAX_ICAL_BYTES,
            deadline=ICAL_FETCH_SECONDS, headers={"Accept": "text/calendar"},
        )  # fmt: skip
    except outbound.OutboundError as exc:
        raise ICalImportError(f"Could not fetch the calendar: {exc}.") from exc
    if reply.status != 200:
        raise ICalImportError(f"Could not fetch the calendar: HTTP {reply.status}.")
    if reply.truncated:
        raise ICalImportError(f"The calendar is too large (more than {MAX_ICAL_BYTES} bytes).")
    if not reply.body.lstrip(b"\xef\xbb\xbf \t\r\n").upper().startswith(b"BEGIN:VCALENDAR"):
        raise ICalImportError("The URL did not return an iCalendar (.ics) file (it must start with BEGIN:VCALENDAR).")
    return reply.body


# --- Refreshing source layers (RQ jobs: thin, take ids, idempotent) -----------------------------


def refresh_ical_sources() -> int:
    """Enqueue one refresh per iCal layer; returns how many were enqueued.

    The periodic job `openduty.jobs.refresh_ical_sources` calls this every ICAL_REFRESH_MINUTES.
    """
    ids = db.session.scalars(select(ScheduleLayer.id).where(ScheduleLayer.kind == "ical")).all()
    q = queue("low")
    for layer_id in ids:
        # One job id per layer: re-enqueueing replaces it, and a refresh running twice is harmless.
        q.enqueue(refresh_ical_layer, layer_id, job_id=f"refresh-ical-layer-{layer_id}")
    return len(ids)


def refresh_ical_layer(layer_id: int) -> str:
    """Refetch (URL) or re-expand (uploaded file) one iCal layer over the moving import window.

    On an error the previous events stay in force and the error is recorded on the layer.
    """
    layer = db.session.get(ScheduleLayer, layer_id)
    if layer is None or layer.kind != "ical":
        return "gone"
    try:
        data = fetch_ical(layer.ical_url) if layer.ical_url else (layer.ical_data or "")
        import_ical(layer, data)
    except ICalImportError as exc:
        db.session.rollback()
        layer = db.session.get(ScheduleLayer, layer_id)
        layer.ical_error = str(exc)[:2000]
        layer.ical_refreshed_at = clock.now()
        db.session.commit()
        current_app.logger.warning("iCal layer %s: %s", layer_id, exc)
        return "error"
    db.session.commit()
    return "ok"
