"""Factories for schedules, layers and overrides. Call inside an app context."""

import itertools
from datetime import datetime

from openduty import schedules
from openduty.extensions import db
from openduty.models import LayerParticipant, Schedule, ScheduleLayer, ScheduleOverride, User

_seq = itertools.count(1)


def make_schedule(name: str | None = None, time_zone: str = "UTC", **fields) -> Schedule:
    schedule = Schedule(name=name or f"Schedule {next(_seq)}", time_zone=time_zone, **fields)
    db.session.add(schedule)
    db.session.commit()
    return schedule


def make_layer(
    schedule: Schedule,
    users: list[User],
    start: datetime,
    shift_length: int = 1,
    shift_unit: str = "days",
    restrictions: list[dict] | None = None,
    name: str | None = None,
) -> ScheduleLayer:
    """A rotation layer on top of the schedule's existing ones; `start` is local wall-clock time."""
    layer = ScheduleLayer(
        schedule=schedule,
        position=len(schedule.layers),
        name=name or f"Layer {len(schedule.layers) + 1}",
        kind="rotation",
        start=start,
        shift_length=shift_length,
        shift_unit=shift_unit,
        restrictions=schedules.parse_restrictions(restrictions or []),
        participants=[LayerParticipant(position=i, user_id=u.id) for i, u in enumerate(users)],
    )
    db.session.add(layer)
    db.session.commit()
    return layer


def make_override(schedule: Schedule, user: User, start: datetime, end: datetime, **fields) -> ScheduleOverride:
    override = ScheduleOverride(schedule=schedule, user_id=user.id, start=start, end=end, **fields)
    db.session.add(override)
    db.session.commit()
    return override
