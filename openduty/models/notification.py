"""Notifications: one page (or resolve notice) to one user on one contact method."""

from datetime import datetime

from sqlalchemy import ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from openduty import clock
from openduty.extensions import db
from openduty.models.types import UTCDateTime

NOTIFICATION_STATUSES = ("pending", "sending", "sent", "failed", "cancelled")


class Notification(db.Model):
    __tablename__ = "notifications"

    id: Mapped[int] = mapped_column(primary_key=True)
    incident_id: Mapped[int | None] = mapped_column(ForeignKey("incidents.id", ondelete="CASCADE"), index=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    contact_method_id: Mapped[int | None] = mapped_column(ForeignKey("contact_methods.id", ondelete="SET NULL"))
    purpose: Mapped[str] = mapped_column(String(16), default="page")  # page | resolve | test
    send_at: Mapped[datetime] = mapped_column(UTCDateTime, default=clock.now, index=True)
    status: Mapped[str] = mapped_column(String(16), default="pending", index=True)
    attempts: Mapped[int] = mapped_column(default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=clock.now)

    incident: Mapped["Incident | None"] = relationship()  # noqa: F821
    user: Mapped["User"] = relationship()  # noqa: F821
    contact_method: Mapped["ContactMethod | None"] = relationship()  # noqa: F821
