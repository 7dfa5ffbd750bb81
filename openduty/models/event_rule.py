"""Event rules (per service, or global when `service_id` is None) and the alerts they suppressed."""

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from openduty import clock
from openduty.extensions import db
from openduty.models.types import UTCDateTime

# What a matching rule does (openduty.event_rules applies them).
RULE_ACTIONS = ("suppress", "set_severity", "set_urgency", "route", "drop")
URGENCIES = ("high", "low")


class EventRule(db.Model):
    """One ordered rule: conditions on an event's fields, combined with all/any, and one action."""

    __tablename__ = "event_rules"
    __table_args__ = (Index("ix_event_rules_service_position", "service_id", "position"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    # None: a global rule (admins), evaluated before every service's own rules.
    service_id: Mapped[int | None] = mapped_column(ForeignKey("services.id", ondelete="CASCADE"))
    # 1, 2, ... within its service (or among the global rules): the order of evaluation.
    position: Mapped[int] = mapped_column()
    name: Mapped[str] = mapped_column(String(200), default="")
    # all | any
    match: Mapped[str] = mapped_column(String(3), default="all")
    # [{"field": "custom_details.env", "operator": "equals", "value": "prod"}, ...]
    conditions: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    action: Mapped[str] = mapped_column(String(16))
    severity: Mapped[str | None] = mapped_column(String(16))  # set_severity
    urgency: Mapped[str | None] = mapped_column(String(8))  # set_urgency
    route_to_service_id: Mapped[int | None] = mapped_column(  # route
        ForeignKey("services.id", ondelete="CASCADE"), index=True
    )
    # Evaluation goes on to the next rules after this one matched (else the first match wins).
    continue_matching: Mapped[bool] = mapped_column(default=False)
    # Written by ingest (one UPDATE per matched rule and batch), not audited.
    match_count: Mapped[int] = mapped_column(default=0)
    last_matched_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=clock.now)


class SuppressedAlert(db.Model):
    """An event a suppress rule kept from opening an incident: stored to be seen, never paged."""

    __tablename__ = "suppressed_alerts"
    __table_args__ = (Index("ix_suppressed_alerts_service_at", "service_id", "at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    service_id: Mapped[int] = mapped_column(ForeignKey("services.id", ondelete="CASCADE"))
    rule_id: Mapped[int | None] = mapped_column(ForeignKey("event_rules.id", ondelete="SET NULL"), index=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=clock.now)
    summary: Mapped[str] = mapped_column(String(1024), default="")
    severity: Mapped[str] = mapped_column(String(16), default="critical")
    event: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
