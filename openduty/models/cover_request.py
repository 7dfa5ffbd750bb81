"""Cover requests: a person asks the others of a schedule's rotations to take part of their shift.

The first to accept gets an override for the range (openduty.cover_requests); the row keeps who
accepted and which override it became. An open request whose start passes expires.
"""

from datetime import datetime

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from openduty import clock
from openduty.extensions import db
from openduty.models.types import UTCDateTime

COVER_STATUSES = ("open", "accepted", "cancelled", "expired")
NOTE_MAX_LENGTH = 500


class CoverRequest(db.Model):
    __tablename__ = "cover_requests"

    id: Mapped[int] = mapped_column(primary_key=True)
    schedule_id: Mapped[int] = mapped_column(ForeignKey("schedules.id", ondelete="CASCADE"), index=True)
    # Ask only this layer's people (None: every rotation layer of the schedule).
    layer_id: Mapped[int | None] = mapped_column(ForeignKey("schedule_layers.id", ondelete="SET NULL"))
    requester_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    start: Mapped[datetime] = mapped_column(UTCDateTime)
    end: Mapped[datetime] = mapped_column(UTCDateTime)
    note: Mapped[str] = mapped_column(String(NOTE_MAX_LENGTH), default="")
    status: Mapped[str] = mapped_column(String(16), default="open")  # COVER_STATUSES
    accepted_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    override_id: Mapped[int | None] = mapped_column(ForeignKey("schedule_overrides.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=clock.now)

    schedule: Mapped["Schedule"] = relationship()  # noqa: F821
    layer: Mapped["ScheduleLayer | None"] = relationship()  # noqa: F821
    requester: Mapped["User"] = relationship(foreign_keys=[requester_id])  # noqa: F821
    accepted_by: Mapped["User | None"] = relationship(foreign_keys=[accepted_by_id])  # noqa: F821
