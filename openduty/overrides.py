"""Overrides: validating them, who may add or delete one, and how overlapping ones are reported.

One rule for the pages and the API (openduty.views.schedules and openduty.views.api.schedules).
"""

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select

from openduty import oncall
from openduty import validation as v
from openduty.errors import ValidationError
from openduty.extensions import db
from openduty.models import Schedule, ScheduleOverride, User

MAX_OVERRIDE = timedelta(days=366)
OVERRIDE_FIELDS = ("user_id", "start", "end", "note")  # anything else in a body is refused


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

    Admins may add any override. Others may take time for themselves, or hand over time in which
    they are on call: the whole range must be their own on-call time in the final schedule (an hour
    on call does not let anyone give away a year).
    """
    if caller.is_admin or user_id == caller.id:
        return True
    return oncall.on_call_throughout(schedule, caller.id, start, end)


def can_delete_override(caller: User, override: ScheduleOverride) -> bool:
    return caller.is_admin or caller.id in (override.user_id, override.created_by_id)


def overlapping_overrides(override: ScheduleOverride) -> list[ScheduleOverride]:
    """Other overrides of the same schedule overlapping this one, oldest first."""
    return list(
        db.session.scalars(
            select(ScheduleOverride)
            .where(
                ScheduleOverride.schedule_id == override.schedule_id,
                ScheduleOverride.id != override.id,
                ScheduleOverride.start < override.end,
                ScheduleOverride.end > override.start,
            )
            .order_by(ScheduleOverride.id)
        )
    )


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


def overlap_message(override: ScheduleOverride, others: list[ScheduleOverride]) -> str | None:
    """What the UI and API say about overlaps: the later-created override wins where they overlap."""
    if not others:
        return None
    earlier = [o for o in others if o.id < override.id]
    later = [o for o in others if o.id > override.id]
    parts = []
    if earlier:
        names = ", ".join(f"#{o.id} ({o.user.name})" for o in earlier)
        parts.append(f"overlaps earlier override {names}: this one wins where they overlap (created later)")
    if later:
        names = ", ".join(f"#{o.id} ({o.user.name})" for o in later)
        parts.append(f"is beaten by later override {names} where they overlap")
    return f"Override #{override.id} " + "; ".join(parts) + "."


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
