"""Change events (PagerDuty's change events API): deploys and config changes, kept per service."""

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from openduty import clock
from openduty.extensions import db
from openduty.models.types import UTCDateTime


class ChangeEvent(db.Model):
    __tablename__ = "change_events"
    __table_args__ = (
        # A service's changes by time, in the lists' order (timestamp DESC, id DESC), so a page reads
        # the index backwards and stops: its page, the API and an incident's "recent changes".
        Index("ix_change_events_service_timestamp", "service_id", "timestamp", "id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    service_id: Mapped[int] = mapped_column(ForeignKey("services.id", ondelete="CASCADE"))
    summary: Mapped[str] = mapped_column(String(1024))
    source: Mapped[str] = mapped_column(String(255), default="")
    # When the change happened (payload.timestamp, else when it arrived).
    timestamp: Mapped[datetime] = mapped_column(UTCDateTime)
    custom_details: Mapped[Any] = mapped_column(JSON, nullable=True)
    links: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    # Retention is by arrival (indexed for the purge): a sender's clock cannot keep a row forever.
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=clock.now, index=True)
