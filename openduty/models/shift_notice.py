"""What a person is told before and after a shift: their settings, and the notices already sent.

A ShiftNotice row is written with the Notification that carries it (same transaction); its unique
key (user, kind, schedule, shift start) is what makes a reminder or handoff go out once per shift,
however often the timers fire or re-plan. The weekly summary uses schedule 0 and the week's start;
a cover notice (openduty.cover_requests) its schedule and the cover request's created_at.
"""

from datetime import datetime

from sqlalchemy import ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from openduty import clock
from openduty.extensions import db
from openduty.models.types import UTCDateTime

# The kinds of notice, each also the purpose of the Notification that carries it.
NOTICE_KINDS = ("reminder", "handoff", "summary", "cover")
DEFAULT_REMINDER_HOURS = 12
MAX_REMINDER_HOURS = 168


class ShiftNoticeSettings(db.Model):
    """One user's choices; a user without a row has the defaults (reminder 12 h before, to their
    first email method or login address; no weekly summary)."""

    __tablename__ = "shift_notice_settings"

    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    # Hours before a shift starts; 0 = no reminders.
    reminder_hours: Mapped[int] = mapped_column(default=DEFAULT_REMINDER_HOURS)
    # Where reminders, handoffs and summaries go; None = the first email method (or login address).
    contact_method_id: Mapped[int | None] = mapped_column(ForeignKey("contact_methods.id", ondelete="SET NULL"))
    weekly_summary: Mapped[bool] = mapped_column(default=False)

    contact_method: Mapped["ContactMethod | None"] = relationship()  # noqa: F821


class ShiftNotice(db.Model):
    """One reminder, handoff notice or weekly summary sent (or being sent) to one person."""

    __tablename__ = "shift_notices"
    __table_args__ = (UniqueConstraint("user_id", "kind", "schedule_id", "shift_start", name="uq_shift_notices_once"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(16))  # NOTICE_KINDS
    # The schedule of the shift (0 for a weekly summary); no foreign key, so the record of what was
    # sent outlives a deleted schedule and the unique key stays simple.
    schedule_id: Mapped[int] = mapped_column(default=0)
    # The shift's start (for a summary: the start of the week it covers).
    shift_start: Mapped[datetime] = mapped_column(UTCDateTime)
    notification_id: Mapped[int | None] = mapped_column(ForeignKey("notifications.id", ondelete="SET NULL"), index=True)
    subject: Mapped[str] = mapped_column(String(255))
    body: Mapped[str] = mapped_column(Text)
    short: Mapped[str] = mapped_column(String(1000))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=clock.now)
