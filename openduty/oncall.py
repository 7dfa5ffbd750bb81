"""Rotations -> recurrence rules -> shifts; who is on call at a moment; iCal export and import."""

from datetime import datetime

from openduty.models import Schedule, User


def who_is_on_call(schedule: Schedule, at: datetime) -> list[User]:
    """The users on call in `schedule` at `at` (aware datetime), after layers and overrides."""
    return []
