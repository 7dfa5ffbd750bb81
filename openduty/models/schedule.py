"""On-call schedules: layers (rotations or iCal sources) and overrides.

A schedule's `revision` changes on every change to it, its layers, their participants, imported
events or its overrides (see `_bump_revisions`), so compiled rotations can be cached per revision.
"""

import uuid
from datetime import datetime

from sqlalchemy import JSON, DateTime, ForeignKey, String, Text, event
from sqlalchemy.orm import Mapped, Session, mapped_column, relationship

from openduty import clock, masking
from openduty.extensions import db
from openduty.models.types import UTCDateTime

SHIFT_UNITS = ("hours", "days", "weeks")
LAYER_KINDS = ("rotation", "ical")


def new_revision() -> str:
    return uuid.uuid4().hex


class Schedule(db.Model):
    __tablename__ = "schedules"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    time_zone: Mapped[str] = mapped_column(String(64), default="UTC")
    description: Mapped[str] = mapped_column(String(2000), default="")
    # The team that owns it: its managers may change it (admins may change everything).
    team_id: Mapped[int | None] = mapped_column(ForeignKey("teams.id", ondelete="SET NULL"), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=clock.now)
    # Changes whenever anything that decides who is on call changes (cache key).
    revision: Mapped[str] = mapped_column(String(32), default=new_revision)

    layers: Mapped[list["ScheduleLayer"]] = relationship(
        back_populates="schedule", cascade="all, delete-orphan", order_by="ScheduleLayer.position"
    )
    overrides: Mapped[list["ScheduleOverride"]] = relationship(
        back_populates="schedule", cascade="all, delete-orphan", order_by="ScheduleOverride.id"
    )

    def __repr__(self) -> str:
        return f"<Schedule {self.name}>"


class ScheduleLayer(db.Model):
    """A rotation (participants taking turns) or an iCal source. Later positions win."""

    __tablename__ = "schedule_layers"

    id: Mapped[int] = mapped_column(primary_key=True)
    schedule_id: Mapped[int] = mapped_column(ForeignKey("schedules.id", ondelete="CASCADE"), index=True)
    position: Mapped[int] = mapped_column(default=0)
    name: Mapped[str] = mapped_column(String(200), default="")
    kind: Mapped[str] = mapped_column(String(16), default="rotation")  # rotation | ical
    # Rotation: the first handoff, a wall-clock time in the schedule's zone (hence naive).
    start: Mapped[datetime | None] = mapped_column(DateTime)
    shift_length: Mapped[int] = mapped_column(default=1)
    shift_unit: Mapped[str] = mapped_column(String(8), default="weeks")
    # [{"days": ["mon", ...], "start": "09:00", "end": "17:00"}, ...]; empty: no restriction.
    restrictions: Mapped[list] = mapped_column(JSON, default=list)
    # iCal source: a URL refreshed periodically, or an uploaded file (ical_url is None).
    ical_url: Mapped[str | None] = mapped_column(String(2000))
    ical_data: Mapped[str | None] = mapped_column(Text)
    ical_refreshed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    ical_error: Mapped[str | None] = mapped_column(String(2000))
    # Event summaries / attendees that matched nobody at the last import.
    ical_unmatched: Mapped[list] = mapped_column(JSON, default=list)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=clock.now)

    schedule: Mapped[Schedule] = relationship(back_populates="layers")
    participants: Mapped[list["LayerParticipant"]] = relationship(
        back_populates="layer", cascade="all, delete-orphan", order_by="LayerParticipant.position"
    )
    events: Mapped[list["LayerEvent"]] = relationship(
        back_populates="layer", cascade="all, delete-orphan", order_by="LayerEvent.start"
    )

    @property
    def users(self) -> list:
        return [p.user for p in self.participants]

    def shown_ical_url(self, viewer) -> str | None:
        """The iCal source URL as `viewer` may see it: in full for admins (it often holds a
        private token), scheme and host only for members."""
        if self.ical_url is None or (viewer is not None and viewer.is_admin):
            return self.ical_url
        return masking.url(self.ical_url)

    def shown_ical_error(self, viewer) -> str | None:
        """The last refresh error, with the source URL in it (older errors named it) masked."""
        if not self.ical_error or not self.ical_url:
            return self.ical_error
        return self.ical_error.replace(self.ical_url, self.shown_ical_url(viewer))


class LayerParticipant(db.Model):
    """A position in a rotation; a user may hold several positions."""

    __tablename__ = "schedule_layer_participants"

    id: Mapped[int] = mapped_column(primary_key=True)
    layer_id: Mapped[int] = mapped_column(ForeignKey("schedule_layers.id", ondelete="CASCADE"), index=True)
    position: Mapped[int] = mapped_column(default=0)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)

    layer: Mapped[ScheduleLayer] = relationship(back_populates="participants")
    user: Mapped["User"] = relationship()  # noqa: F821


class LayerEvent(db.Model):
    """One expanded, matched event of an iCal source layer (re-imported on every refresh)."""

    __tablename__ = "schedule_layer_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    layer_id: Mapped[int] = mapped_column(ForeignKey("schedule_layers.id", ondelete="CASCADE"), index=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    start: Mapped[datetime] = mapped_column(UTCDateTime)
    end: Mapped[datetime] = mapped_column(UTCDateTime)
    summary: Mapped[str] = mapped_column(String(500), default="")

    layer: Mapped[ScheduleLayer] = relationship(back_populates="events")


class ScheduleOverride(db.Model):
    """A user on call for a range, beating every layer. Among overlapping overrides the later-created wins."""

    __tablename__ = "schedule_overrides"

    id: Mapped[int] = mapped_column(primary_key=True)
    schedule_id: Mapped[int] = mapped_column(ForeignKey("schedules.id", ondelete="CASCADE"), index=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    start: Mapped[datetime] = mapped_column(UTCDateTime)
    end: Mapped[datetime] = mapped_column(UTCDateTime)
    note: Mapped[str] = mapped_column(String(500), default="")
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=clock.now)

    schedule: Mapped[Schedule] = relationship(back_populates="overrides")
    user: Mapped["User"] = relationship(foreign_keys=[user_id])  # noqa: F821
    created_by: Mapped["User | None"] = relationship(foreign_keys=[created_by_id])  # noqa: F821


def _schedule_id_of(obj) -> int | None:
    if isinstance(obj, Schedule):
        return obj.id
    if isinstance(obj, ScheduleOverride | ScheduleLayer):
        return obj.schedule_id if obj.schedule_id is not None else (obj.schedule.id if obj.schedule else None)
    if isinstance(obj, LayerParticipant | LayerEvent):
        layer = obj.layer if obj.layer is not None else db.session.get(ScheduleLayer, obj.layer_id)
        return _schedule_id_of(layer) if layer is not None else None
    return None


@event.listens_for(Session, "before_flush")
def _bump_revisions(session: Session, flush_context, instances) -> None:
    """Any change that can move who is on call gives its schedule a new revision."""
    watched = (Schedule, ScheduleLayer, LayerParticipant, LayerEvent, ScheduleOverride)
    objects = [o for o in (*session.new, *session.dirty, *session.deleted) if isinstance(o, watched)]
    if not objects:
        return
    with session.no_autoflush:
        touched = {schedule_id for o in objects if (schedule_id := _schedule_id_of(o)) is not None}
        for schedule_id in touched:
            schedule = session.get(Schedule, schedule_id)
            if schedule is not None and schedule not in session.deleted:
                schedule.revision = new_revision()
