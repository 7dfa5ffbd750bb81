"""The month and week calendar of a schedule: its final shifts cut into days, in local time."""

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from openduty import clock, oncall
from openduty import validation as v
from openduty.models import Schedule, User
from openduty.shifts import Shift, localize, wall_clock

# One colour per person, picked by user id; dark enough for white text.
PALETTE = (
    "#2f5bd3",
    "#2e7d32",
    "#8e24aa",
    "#ef6c00",
    "#00838f",
    "#6d4c41",
    "#ad1457",
    "#3949ab",
    "#558b2f",
    "#5d4037",
    "#00695c",
    "#7b1fa2",
)


def colour(user_id: int) -> str:
    """The person's colour on the calendar (the same on every page)."""
    return PALETTE[user_id % len(PALETTE)]


@dataclass
class Segment:
    """A final shift (or gap) as drawn in one day's cell."""

    start: datetime  # local, clipped to the day
    end: datetime
    shift: Shift
    users: list[User]
    now: bool
    continues_before: bool
    continues_after: bool

    @property
    def is_gap(self) -> bool:
        return self.shift.is_gap

    @property
    def top(self) -> float:
        return round((self.start.hour * 60 + self.start.minute) / 14.4, 2)

    @property
    def height(self) -> float:
        minutes = (self.end - self.start).total_seconds() / 60
        return max(round(minutes / 14.4, 2), 1.5)

    @property
    def colour(self) -> str:
        return "#c62828" if self.is_gap else colour(self.users[0].id) if self.users else "#667085"

    @property
    def label(self) -> str:
        return "Nobody on call" if self.is_gap else ", ".join(u.name for u in self.users)


@dataclass
class Day:
    """One day of the grid with its segments."""

    day: date
    in_range: bool
    today: bool
    segments: list[Segment]


def parse_day(value: str | None, tz: ZoneInfo) -> date:
    """The `date` query parameter, or today in `tz` when it is missing or not a usable date."""
    try:
        day = date.fromisoformat(value) if value else wall_clock(clock.now(), tz).date()
        v.in_year_range(day)
        return day
    except ValueError:  # also FieldError: a day far away shows today, as a day that is not a date does
        return wall_clock(clock.now(), tz).date()


def calendar_view(schedule: Schedule, view: str, anchor: date) -> dict:
    """Days (with their final-schedule segments, in local time) for a month or week around `anchor`."""
    tz = ZoneInfo(schedule.time_zone)
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
    users = oncall.users_by_id(u for s in timeline for u in s.user_ids)
    today = wall_clock(now, tz).date()
    days = []
    day = first
    while day <= last:
        day_start = localize(datetime.combine(day, time()), tz)
        day_end = localize(datetime.combine(day + timedelta(days=1), time()), tz)
        segments = [
            Segment(
                start=max(s.start, day_start).astimezone(tz),
                end=min(s.end, day_end).astimezone(tz),
                shift=s,
                users=[users[u] for u in s.user_ids if u in users],
                now=s.start <= now < s.end,
                continues_before=s.start < day_start,
                continues_after=s.end > day_end,
            )
            for s in timeline
            if s.start < day_end and s.end > day_start
        ]
        days.append(Day(day, in_range[0] <= day <= in_range[1], day == today, segments))
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
    }
