"""Incidents and their timelines."""

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from openduty import clock
from openduty.extensions import db
from openduty.models.types import UTCDateTime

STATUSES = ("triggered", "acknowledged", "resolved")
SEVERITIES = ("critical", "error", "warning", "info")


class Incident(db.Model):
    __tablename__ = "incidents"
    __table_args__ = (
        # At most one open incident per (service, dedup key). The predicate is literal SQL: a
        # bound parameter here breaks ON CONFLICT under PostgreSQL generic plans (psycopg 3).
        Index(
            "uq_incidents_open_dedup_key",
            "service_id",
            "dedup_key",
            unique=True,
            sqlite_where=text("status <> 'resolved'"),
            postgresql_where=text("status <> 'resolved'"),
        ),
        Index("ix_incidents_status_created", "status", "created_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    number: Mapped[int | None] = mapped_column(unique=True)
    service_id: Mapped[int] = mapped_column(ForeignKey("services.id", ondelete="CASCADE"), index=True)
    dedup_key: Mapped[str] = mapped_column(String(255))
    status: Mapped[str] = mapped_column(String(16), default="triggered")
    summary: Mapped[str] = mapped_column(String(1024))
    severity: Mapped[str] = mapped_column(String(16), default="critical")
    source: Mapped[str] = mapped_column(String(255), default="")
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    alert_count: Mapped[int] = mapped_column(default=1)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=clock.now)
    last_event_at: Mapped[datetime] = mapped_column(UTCDateTime, default=clock.now)
    acknowledged_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    acknowledged_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    resolved_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    assigned_to_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))

    # Escalation state. Every state change bumps `epoch`, so a stale timer job sees it moved on.
    epoch: Mapped[int] = mapped_column(default=0)
    escalation_level: Mapped[int] = mapped_column(default=0)
    escalation_loop: Mapped[int] = mapped_column(default=0)
    next_escalation_at: Mapped[datetime | None] = mapped_column(UTCDateTime, index=True)
    snoozed_until: Mapped[datetime | None] = mapped_column(UTCDateTime)

    service: Mapped["Service"] = relationship()  # noqa: F821
    acknowledged_by: Mapped["User | None"] = relationship(foreign_keys=[acknowledged_by_id])  # noqa: F821
    resolved_by: Mapped["User | None"] = relationship(foreign_keys=[resolved_by_id])  # noqa: F821
    assigned_to: Mapped["User | None"] = relationship(foreign_keys=[assigned_to_id])  # noqa: F821
    log_entries: Mapped[list["LogEntry"]] = relationship(
        back_populates="incident", cascade="all, delete-orphan", order_by="LogEntry.id"
    )

    @property
    def is_open(self) -> bool:
        return self.status != "resolved"

    @property
    def title(self) -> str:
        return f"#{self.number} {self.summary}" if self.number else self.summary

    def bump_epoch(self) -> None:
        """Mark a change of state: escalation jobs armed for the old epoch see it and do nothing.

        Every action on an incident (openduty.incidents) calls this exactly once."""
        self.epoch = (self.epoch or 0) + 1

    def log(
        self,
        kind: str,
        message: str,
        by: "User | None" = None,  # noqa: F821
        channel: str = "system",
        data: dict[str, Any] | None = None,
    ) -> "LogEntry":
        """Add an entry to the timeline (in the current transaction)."""
        entry = LogEntry(incident=self, kind=kind, message=message, actor=by, channel=channel, data=data or {})
        db.session.add(entry)
        return entry


class Counter(db.Model):
    """Named counters handed out inside a transaction (incident numbers).

    The row is locked from the increment until commit, so concurrent transactions get distinct,
    gap-free values; a rolled-back transaction gives its numbers back.
    """

    __tablename__ = "counters"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    value: Mapped[int] = mapped_column(default=0)


class LogEntry(db.Model):
    """One line of an incident's timeline."""

    __tablename__ = "log_entries"

    id: Mapped[int] = mapped_column(primary_key=True)
    incident_id: Mapped[int] = mapped_column(ForeignKey("incidents.id", ondelete="CASCADE"), index=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=clock.now)
    # trigger, duplicate, acknowledge, resolve, escalate, notify, notify_failed, reassign, snooze,
    # note, ...
    kind: Mapped[str] = mapped_column(String(32))
    message: Mapped[str] = mapped_column(Text, default="")
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    # web, api, email, sms, voice, slack, link, event, system, ...
    channel: Mapped[str] = mapped_column(String(32), default="system")
    data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)

    incident: Mapped[Incident] = relationship(back_populates="log_entries")
    actor: Mapped["User | None"] = relationship()  # noqa: F821
