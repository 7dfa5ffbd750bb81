"""Overrides: validating them, who may add or delete one, how overlapping ones are reported, and the
schedule page's override list (a page at a time).

One rule for the pages and the API (openduty.views.schedules and openduty.views.api.schedules).
"""

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import joinedload

from openduty import clock, oncall
from openduty import validation as v
from openduty.errors import ValidationError
from openduty.extensions import db
from openduty.models import Schedule, ScheduleOverride, User
from openduty.shifts import compile_schedule

MAX_OVERRIDE = timedelta(days=366)
OVERRIDE_FIELDS = ("user_id", "start", "end", "note")  # anything else in a body is refused
# The schedule page lists this many overrides at a time ("Show more" asks for the next ones): a busy
# schedule has hundreds, and listing them all made its page 460 KB and most of its time (issue 11).
OVERRIDES_PER_PAGE = 20
# An overlap note names this many overrides each way ("and 23 more"): a note naming 40 helps nobody.
OVERLAPS_NAMED = 5
_CURSOR = re.compile(r"(\d{8}T\d{6}\.\d{6})Z\.(\d{1,18})")


def clean_override(body: dict[str, Any], schedule: Schedule, *, local_input: bool = False) -> dict[str, Any]:
    """user_id, start, end (ISO 8601 with offset; from forms, wall-clock in the schedule's zone), note."""
    zone = schedule.time_zone if local_input else None
    clean = v.collect(
        {
            "user_id": lambda: _existing_user(body.get("user_id")),
            "start": lambda: v.aware_datetime(body.get("start"), label="Start", local_zone=zone),
            "end": lambda: v.aware_datetime(body.get("end"), label="End", local_zone=zone),
            "note": lambda: v.text(body.get("note"), max_length=500, required=False, label="Note"),
        }
    )
    if clean["end"] <= clean["start"]:
        raise ValidationError({"end": "End must be after start."})
    if clean["end"] - clean["start"] > MAX_OVERRIDE:
        raise ValidationError({"end": "An override can last at most 366 days."})
    if local_input and clean["end"] <= clock.now():
        # A person typing a range wholly in the past has picked the wrong day or year: it would
        # change nothing and only show up under "Past overrides". (The API may record history.)
        when = clean["end"].astimezone(ZoneInfo(schedule.time_zone))
        past = f"End ({when:%a %d %b %Y %H:%M %Z}) is in the past: an override changes who is on call from now"
        raise ValidationError({"end": past + " on."})
    return clean


def _existing_user(value: Any) -> int:
    user_id = v.object_id(value, label="User")
    user = db.session.get(User, user_id)
    if user is None or not user.active:
        raise v.FieldError(f"No active user with id {user_id}.")
    return user_id


OVERRIDE_FORBIDDEN = (
    "You can take time for yourself, or hand over time in which you are on call (all of it, in this"
    " schedule's final shifts); anything else needs an admin."
)


def can_add_override(caller: User, schedule: Schedule, user_id: int, start: datetime, end: datetime) -> bool:
    """Who may put `user_id` on call for [start, end): the one rule for the pages and the API.

    Admins and the schedule team's managers may add any override. Others may take time for themselves,
    or hand over time in which they are on call: the whole range must be their own on-call time in the
    final schedule (an hour on call does not let anyone give away a year).
    """
    if caller.manages(schedule.team_id) or user_id == caller.id:
        return True
    return oncall.on_call_throughout(schedule, caller.id, start, end)


def can_delete_override(caller: User, override: ScheduleOverride) -> bool:
    return caller.manages(override.schedule.team_id) or caller.id in (override.user_id, override.created_by_id)


def overlap_note(override: ScheduleOverride) -> str | None:
    """What adding `override` says about the other overrides of its schedule it overlaps (pages and API)."""
    others = db.session.execute(
        select(ScheduleOverride.id, User.name)
        .join(User, User.id == ScheduleOverride.user_id)
        .where(
            ScheduleOverride.schedule_id == override.schedule_id,
            ScheduleOverride.id != override.id,
            ScheduleOverride.start < override.end,
            ScheduleOverride.end > override.start,
        )
        .order_by(ScheduleOverride.id)
    ).all()
    return overlap_message(override.id, [(other_id, name) for other_id, name in others])


def overlaps_among(items: list[ScheduleOverride]) -> dict[int, list[ScheduleOverride]]:
    """For each override in `items`, the others in `items` it overlaps, oldest first.

    A sweep by start time: the cost grows with the overrides and their overlaps, not with every pair
    (1,000 overrides on a schedule page used to mean a million comparisons)."""
    found: dict[int, list[ScheduleOverride]] = {o.id: [] for o in items}
    active: list[ScheduleOverride] = []
    for override in sorted(items, key=lambda o: o.start):
        active = [o for o in active if o.end > override.start]  # what still runs when this one starts
        for other in active:
            found[other.id].append(override)
            found[override.id].append(other)
        active.append(override)
    return {key: sorted(others, key=lambda o: o.id) for key, others in found.items()}


def overlapping(items) -> set[int]:
    """The ids of the overrides in `items` (each longer than zero) that overlap another one in `items`.

    One pass by start time, remembering the override that runs longest so far: an override starting
    before that one ends overlaps it (both are marked). That marks every overlapping pair's later one,
    and the earlier one too: the first override after it starts before it ends, while it is the
    longest-running (tests check this against every pair)."""
    found: set[int] = set()
    longest_end, longest_id = None, None
    for override in sorted(items, key=lambda o: o.start):
        if longest_end is not None and override.start < longest_end:
            found.add(override.id)
            found.add(longest_id)
        if longest_end is None or override.end > longest_end:
            longest_end, longest_id = override.end, override.id
    return found


def overlapping_in_range(schedule: Schedule, start: datetime, end: datetime) -> set[int]:
    """The overrides touching [start, end) that overlap another override of the schedule, wherever that
    one lies (the calendar marks them). Reads the compiled schedule (cached per revision), not rows."""
    spans = compile_schedule(schedule).overrides
    shown = [s for s in spans if s.start < end and s.end > start]
    if not shown:
        return set()
    lo, hi = min(s.start for s in shown), max(s.end for s in shown)
    found = overlapping([s for s in spans if s.start < hi and s.end > lo])
    return {s.id for s in shown if s.id in found}


def overlap_notes(
    schedule: Schedule, items: list[ScheduleOverride], known: Mapping[int, User] | None = None
) -> dict[int, str | None]:
    """What the override list says about each of `items`: the overrides of the whole schedule it
    overlaps (not only those on the same page), found among the compiled spans (no rows loaded);
    `known` users need no query."""
    if not items:
        return {}
    lo, hi = min(o.start for o in items), max(o.end for o in items)
    among = overlaps_among([s for s in compile_schedule(schedule).overrides if s.start < hi and s.end > lo])
    users = oncall.users_by_id((x.user_id for o in items for x in among.get(o.id, ())), known)
    return {
        o.id: overlap_message(o.id, [(x.id, users[x.user_id].name) for x in among.get(o.id, ()) if x.user_id in users])
        for o in items
    }


def overlap_message(override_id: int, others: list[tuple[int, str]]) -> str | None:
    """What the UI and API say about overlaps with `others` (id and person, by id): the later-created
    override wins where they overlap. Names at most OVERLAPS_NAMED each way (then "and N more")."""
    if not others:
        return None
    earlier = _named([(i, name) for i, name in others if i < override_id])
    later = _named([(i, name) for i, name in others if i > override_id])
    parts = []
    if earlier:
        parts.append(f"overlaps earlier override {earlier}: this one wins where they overlap (created later)")
    if later:
        parts.append(f"is beaten by later override {later} where they overlap")
    return f"Override #{override_id} " + "; ".join(parts) + "."


def _named(others: list[tuple[int, str]]) -> str:
    named = ", ".join(f"#{other_id} ({name})" for other_id, name in others[:OVERLAPS_NAMED])
    return named + (f" and {len(others) - OVERLAPS_NAMED} more" if len(others) > OVERLAPS_NAMED else "")


def add_override(schedule: Schedule, clean: dict, created_by: User) -> ScheduleOverride:
    override = ScheduleOverride(
        schedule=schedule,
        user_id=clean["user_id"],
        start=clean["start"],
        end=clean["end"],
        note=clean.get("note", ""),
        created_by_id=created_by.id,
    )
    db.session.add(override)
    db.session.flush()
    return override


# --- The schedule page's override list ------------------------------------------------------------


@dataclass(frozen=True)
class OverridePage:
    """One page of a schedule's override list: current and upcoming overrides (not yet ended) by start,
    or past ones newest first. Every override is on exactly one page of one of the two lists."""

    items: list[ScheduleOverride]
    past: bool
    after: str | None  # the cursor this page continues from (None: the first page)
    next: str | None  # the cursor of the page after this one (None: this is the last)


def page_cursor(override: ScheduleOverride) -> str:
    """Where a list continues after `override`: its start and id, a unique and stable order."""
    return f"{override.start.astimezone(UTC):%Y%m%dT%H%M%S.%f}Z.{override.id}"


def parse_cursor(value: str) -> tuple[datetime, int]:
    """A cursor made by page_cursor back into (start, id); ValidationError if it is not one."""
    match = _CURSOR.fullmatch(value)
    try:
        if match is None:
            raise ValueError(value)
        return datetime.strptime(match[1], "%Y%m%dT%H%M%S.%f").replace(tzinfo=UTC), v.object_id(match[2])
    except ValueError as exc:  # also FieldError: an id out of range
        raise ValidationError(
            {"after": "after must be a position given by a Show more link, like 20261130T090000.000000Z.42."}
        ) from exc


def override_page(
    schedule: Schedule, now: datetime, *, past: bool = False, after: str | None = None, limit: int = OVERRIDES_PER_PAGE
) -> OverridePage:
    """A page of the schedule's overrides (with their users): those ending after `now` by start, or
    with `past` those ended by `now`, newest first; `after` is the cursor the previous page gave."""
    o = ScheduleOverride
    query = select(o).where(o.schedule_id == schedule.id).options(joinedload(o.user))
    if past:
        query = query.where(o.end <= now).order_by(o.start.desc(), o.id.desc())
    else:
        query = query.where(o.end > now).order_by(o.start, o.id)
    if after:
        start, override_id = parse_cursor(after)
        if past:
            query = query.where(or_(o.start < start, and_(o.start == start, o.id < override_id)))
        else:
            query = query.where(or_(o.start > start, and_(o.start == start, o.id > override_id)))
    rows = db.session.scalars(query.limit(limit + 1)).all()
    items = list(rows[:limit])
    return OverridePage(items, past, after, page_cursor(items[-1]) if len(rows) > limit else None)
