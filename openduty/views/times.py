"""How every page shows a time: in the viewer's own time zone, with the zone named. The one home
of time formatting for templates (registered as Jinja filters by `register`); templates never call
`strftime` themselves.

- `dt | when`: an exact time, "Thu 03 Dec 2026 03:00 EST", in a `<time>` whose `datetime` is the
  UTC instant and whose title names the zone ("America/New_York").
- `dt | when_seconds`: the same to the second (timelines, the audit log).
- `dt | ago`: "3 min ago" / "in 5 min", the exact time on hover (title) and in `datetime`. Rendered
  by the server, so it is right without JavaScript; lists that poll refresh it with the rest.
- `start | span(end)`: a range, "Thu 03 Dec 2026 08:00 – 17:00 EST"; each end names its zone's
  abbreviation when they differ (a DST change inside the range).
- `dt | local`: the moment as a datetime in the viewer's zone (for links that need a local date).
- `d | day` a calendar day's heading; `naive | wall(zone)` a wall-clock time of another zone (a
  rotation's first handoff, in its schedule's zone), zone named; `dt | datetime_input` the value
  of a `datetime-local` input.
- `zone_name()`: the viewer's zone ("America/New_York"), for "times are in ..." notes.

The viewer's zone is `User.time_zone` (UTC for anonymous pages such as the acknowledge link).
"""

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from flask import Flask, g
from flask_login import current_user
from markupsafe import Markup, escape

from openduty import clock

DAY_FORMAT = "%a %d %b %Y"
MINUTES = "%H:%M"
SECONDS = "%H:%M:%S"


def _zone(name: str | None) -> ZoneInfo:
    try:
        return ZoneInfo(name or "UTC")
    except (ZoneInfoNotFoundError, ValueError):  # a zone removed from tzdata since it was saved
        return ZoneInfo("UTC")


def viewer_zone() -> ZoneInfo:
    """The time zone of whoever is looking (their setting), UTC when nobody is logged in."""
    zone = g.get("viewer_zone")
    if zone is None:
        zone = g.viewer_zone = _zone(getattr(current_user, "time_zone", None))
    return zone


def show_times_for(user) -> None:
    """A page reached by a signed link (nobody logged in) shows times in the zone of the `user`
    the link was made for."""
    if not current_user.is_authenticated:
        g.viewer_zone = _zone(user.time_zone)


def local(moment: datetime | None) -> datetime | None:
    """`moment` in the viewer's zone."""
    return moment.astimezone(viewer_zone()) if moment is not None else None


def _abbreviation(moment: datetime) -> str:
    """The zone's short name at that moment ("EST", "CEST"; "+03" where the zone has none)."""
    return moment.tzname() or moment.strftime("%z")


def exact(moment: datetime, *, seconds: bool = False) -> str:
    """The exact local time as text, zone named: "Thu 03 Dec 2026 03:00 EST"."""
    shown = local(moment)
    return f"{shown.strftime(DAY_FORMAT)} {shown.strftime(SECONDS if seconds else MINUTES)} {_abbreviation(shown)}"


def _time_tag(moment: datetime, text: str) -> Markup:
    utc = moment.astimezone(UTC).isoformat()
    title = f"{exact(moment, seconds=True)} ({viewer_zone().key})"
    return Markup('<time datetime="{}" title="{}">{}</time>').format(utc, title, text)


def when(moment: datetime | None) -> Markup:
    """An exact time (minutes) in a `<time>` element; empty for None."""
    if moment is None:
        return Markup("")
    return _time_tag(moment, exact(moment))


def when_seconds(moment: datetime | None) -> Markup:
    """An exact time to the second in a `<time>` element; empty for None."""
    if moment is None:
        return Markup("")
    return _time_tag(moment, exact(moment, seconds=True))


def relative(moment: datetime, now: datetime) -> str:
    """ "just now", "3 min ago", "2 h ago", "5 days ago", or "in 4 min" for the future."""
    delta = now - moment
    future = delta < timedelta(0)
    seconds = abs(delta.total_seconds())
    if seconds < 45:
        return "just now" if not future else "in a few seconds"
    if seconds < 3600:
        amount = f"{max(1, round(seconds / 60))} min"
    elif seconds < 48 * 3600:
        amount = f"{round(seconds / 3600)} h"
    else:
        amount = f"{round(seconds / 86400)} days"
    return f"in {amount}" if future else f"{amount} ago"


def ago(moment: datetime | None) -> Markup:
    """A relative time ("3 min ago") carrying the exact time in the viewer's zone on hover."""
    if moment is None:
        return Markup("")
    return _time_tag(moment, relative(moment, clock.now()))


def span(start: datetime, end: datetime) -> Markup:
    """A range in the viewer's zone: the end's day is left out when it is the start's day, the zone
    is named once when both ends share it (twice across a DST change)."""
    a, b = local(start), local(end)
    first = f"{a.strftime(DAY_FORMAT)} {a.strftime(MINUTES)}"
    second = b.strftime(MINUTES) if a.date() == b.date() else f"{b.strftime(DAY_FORMAT)} {b.strftime(MINUTES)}"
    if _abbreviation(a) != _abbreviation(b):
        first += f" {_abbreviation(a)}"
    text = f"{first} – {second} {_abbreviation(b)}"
    title = f"{exact(start)} – {exact(end)} ({viewer_zone().key})"
    return Markup('<time datetime="{}" title="{}">{}</time>').format(
        start.astimezone(UTC).isoformat(), title, escape(text)
    )


def day(value: date) -> str:
    """A calendar day's heading: "Thu 03 Dec"."""
    return value.strftime("%a %d %b")


def wall(moment: datetime, zone: str) -> str:
    """A wall-clock time that belongs to a zone other than the viewer's (a rotation's first handoff,
    defined in its schedule's zone), with that zone named: "Thu 03 Dec 2026 09:00 (Europe/Berlin)"."""
    return f"{moment.strftime(DAY_FORMAT)} {moment.strftime(MINUTES)} ({zone})"


def datetime_input(moment: datetime | None) -> str:
    """The value of a `datetime-local` input (minutes, no zone: the form names it)."""
    return moment.strftime("%Y-%m-%dT%H:%M") if moment is not None else ""


def zone_name() -> str:
    """The viewer's zone as people set it ("America/New_York")."""
    return viewer_zone().key


def register(app: Flask) -> None:
    """Make the filters and `zone_name()` available to every template."""
    for name, function in (
        ("when", when),
        ("when_seconds", when_seconds),
        ("ago", ago),
        ("span", span),
        ("local", local),
        ("day", day),
        ("wall", wall),
        ("datetime_input", datetime_input),
    ):
        app.add_template_filter(function, name)
    app.add_template_global(zone_name, "zone_name")
