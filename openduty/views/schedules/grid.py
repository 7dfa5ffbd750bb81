"""The month and week calendar of a schedule: its final shifts cut into days of the viewer's time zone
(the zone their profile names; the schedule's own zone only decides its handoffs)."""

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from flask import url_for

from openduty import clock, oncall, overrides
from openduty import validation as v
from openduty.models import Schedule, User
from openduty.shifts import Shift, localize, wall_clock

# One colour per person, picked by user id; each keeps white text at 4.5:1 or more (WCAG AA).
PALETTE = (
    "#2f5bd3",
    "#2e7d32",
    "#8e24aa",
    "#b93a00",
    "#006f7a",
    "#6d4c41",
    "#ad1457",
    "#3949ab",
    "#33691e",
    "#5d4037",
    "#00695c",
    "#7b1fa2",
)


def colour(user_id: int) -> str:
    """The person's colour on the calendar (the same on every page)."""
    return PALETTE[user_id % len(PALETTE)]


@dataclass(slots=True)
class Segment:
    """A final shift (or gap) as drawn in one day's cell. What the template writes is worked out here,
    once per segment (a busy month has hundreds; each lookup in a template loop costs)."""

    start: datetime  # local, clipped to the day
    end: datetime
    shift: Shift
    classes: str  # "seg" and: gap, now, override, overlap (an override that overlaps another override)
    colour: str
    title: str  # who, and the whole shift's start and end
    label: str  # who, in full ("Nobody on call" for a gap)
    text: str  # the cell's line: its time(s) and who
    href: str  # the shift's panel ("take this shift")
    overlap: bool

    @property
    def span(self) -> str:
        """Its times within the day, for the agenda: "09:00–17:00", "22:00–24:00"."""
        end = "24:00" if self.end.date() != self.start.date() else f"{self.end:%H:%M}"
        return f"{self.start:%H:%M}–{end}"

    @property
    def top(self) -> float:
        return round((self.start.hour * 60 + self.start.minute) / 14.4, 2)

    @property
    def height(self) -> float:
        minutes = (self.end - self.start).total_seconds() / 60
        return max(round(minutes / 14.4, 2), 1.5)


@dataclass(frozen=True, slots=True)
class _Drawing:
    """What every segment of one calendar shares."""

    tz: ZoneInfo
    now: datetime
    users: dict[int, User]
    overlapping: set[int]  # overrides that overlap another
    week: bool
    shift_url: str  # the shift panel's URL, to which a shift's start is added


def _name(user: User) -> str:
    return user.name if user.active else f"{user.name} (deactivated)"


def _segment(shift: Shift, day_start: datetime, day_end: datetime, ctx: _Drawing) -> Segment:
    """`shift` as drawn in the day [day_start, day_end)."""
    tz = ctx.tz
    start, end = max(shift.start, day_start).astimezone(tz), min(shift.end, day_end).astimezone(tz)
    people = [ctx.users[u] for u in shift.user_ids if u in ctx.users]
    # Deactivated people are never paged: their stretch is drawn (and warned about) as a gap.
    unpaged = not any(u.active for u in people)
    label = "Nobody on call" if shift.is_gap else ", ".join(_name(u) for u in people)
    title = f"{label}: {shift.start.astimezone(tz):%d %b %H:%M} – {shift.end.astimezone(tz):%d %b %H:%M}"
    if unpaged and not shift.is_gap:
        title += " (nobody here is paged)"
    classes = "seg"
    if unpaged:
        classes += " gap"
    if shift.start <= ctx.now < shift.end:
        classes += " now"
    if shift.source == "override":
        classes += " override"
    overlap = shift.override_id in ctx.overlapping
    if overlap:
        classes += " overlap"
        title += f" (override #{shift.override_id} overlaps another)"
    if ctx.week:
        text = f"{start:%H:%M}–{end:%H:%M} {label}" if end.date() == start.date() else f"{start:%H:%M}–24:00 {label}"
    else:
        text = f"… {label}" if shift.start < day_start else f"{start:%H:%M} {label}"
    return Segment(
        start=start,
        end=end,
        shift=shift,
        classes=classes,
        colour="#c62828" if unpaged else colour(people[0].id),
        title=title,
        label=label,
        text=text,
        # An ISO time in UTC has no character to escape in a query but "+".
        href=ctx.shift_url + shift.start.isoformat().replace("+", "%2B"),
        overlap=overlap,
    )


@dataclass
class Day:
    """One day of the grid with its segments."""

    day: date
    in_range: bool
    today: bool
    segments: list[Segment]
    add_href: str  # the override form for this day


def _form_time(moment: datetime, schedule_tz: ZoneInfo) -> str:
    """`moment` as the override form takes it: wall-clock minutes in the schedule's zone."""
    return f"{moment.astimezone(schedule_tz):%Y-%m-%dT%H:%M}"


def parse_day(value: str | None, tz: ZoneInfo) -> date:
    """The `date` query parameter, or today in `tz` when it is missing or not a usable date."""
    try:
        day = date.fromisoformat(value) if value else wall_clock(clock.now(), tz).date()
        v.in_year_range(day)
        return day
    except ValueError:  # also FieldError: a day far away shows today, as a day that is not a date does
        return wall_clock(clock.now(), tz).date()


def calendar_view(
    schedule: Schedule, view: str, anchor: date, tz: ZoneInfo, known: Mapping[int, User] | None = None
) -> dict:
    """Days of zone `tz` (the viewer's), with their final-schedule segments, for a month or week
    around `anchor`; `known` users (already loaded) need no query."""
    schedule_tz = ZoneInfo(schedule.time_zone)
    if view == "week":
        first = anchor - timedelta(days=anchor.weekday())
        last = first + timedelta(days=6)
        prev, nxt = first - timedelta(days=7), first + timedelta(days=7)
        in_range = (first, last)
        title = f"Week of {first:%d %b %Y}"
    else:
        month_first = anchor.replace(day=1)
        month_last = (month_first + timedelta(days=32)).replace(day=1) - timedelta(days=1)
        first = month_first - timedelta(days=month_first.weekday())
        last = month_last + timedelta(days=6 - month_last.weekday())
        prev = (month_first - timedelta(days=1)).replace(day=1)
        nxt = month_last + timedelta(days=1)
        in_range = (month_first, month_last)
        title = f"{month_first:%B %Y}"
    start = localize(datetime.combine(first, time()), tz)
    end = localize(datetime.combine(last + timedelta(days=1), time()), tz)
    now = clock.now()
    timeline = oncall.timeline(schedule, start, end)
    users = oncall.users_by_id((u for s in timeline for u in s.user_ids), known)
    # Links from two url_for calls, not two per segment and day (hundreds in a busy month).
    shift_url = url_for("schedules.shift", schedule_id=schedule.id) + "?at="
    overlapping = overrides.overlapping_in_range(schedule, start, end)
    drawing = _Drawing(tz, now, users, overlapping, view == "week", shift_url)
    new_url = url_for("schedules.new_override", schedule_id=schedule.id)
    today = wall_clock(now, tz).date()
    days = []
    day = first
    j = 0  # the timeline is in time order: each day starts from the first shift not over yet
    while day <= last:
        day_start = localize(datetime.combine(day, time()), tz)
        day_end = localize(datetime.combine(day + timedelta(days=1), time()), tz)
        while j < len(timeline) and timeline[j].end <= day_start:
            j += 1
        segments = []
        for k in range(j, len(timeline)):
            if timeline[k].start >= day_end:
                break
            segments.append(_segment(timeline[k], day_start, day_end, drawing))
        add_href = f"{new_url}?start={_form_time(day_start, schedule_tz)}&end={_form_time(day_end, schedule_tz)}"
        days.append(Day(day, in_range[0] <= day <= in_range[1], day == today, segments, add_href))
        day += timedelta(days=1)
    people = sorted({u.id: u for u in users.values()}.values(), key=lambda u: u.name)
    return {
        "view": view,
        "anchor": anchor,
        "title": title,
        "weeks": [days[i : i + 7] for i in range(0, len(days), 7)],
        "days": days,
        "prev": prev,
        "next": nxt,
        "today": today,
        "people": people,
        "tz": tz,
        "overlapping": len(overlapping),
    }
