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

    # Domain actions. Each changes the status, bumps the epoch (so stale escalation jobs stop),
    # writes the timeline entry, then tells the escalation engine; the caller owns the commit.

    def acknowledge(
        self,
        by: "User | None" = None,  # noqa: F821
        channel: str = "web",
        message: str | None = None,
        notify: bool = True,
    ) -> bool:
        """Acknowledge a triggered incident; False (and nothing changes) if it is not triggered.

        `notify=False` leaves calling escalation.incident_acknowledged to the caller (the event
        batch calls its hooks at its end, in order).
        """
        from openduty import escalation

        if self.status != "triggered":
            return False
        self.status = "acknowledged"
        self.acknowledged_at = clock.now()
        self.acknowledged_by = by
        self._moved_on("acknowledge", message or f"Acknowledged{_by(by)} via {channel}.", by, channel)
        if notify:
            escalation.incident_acknowledged(self)
        return True

    def resolve(
        self,
        by: "User | None" = None,  # noqa: F821
        channel: str = "web",
        message: str | None = None,
        notify: bool = True,
    ) -> bool:
        """Resolve an open incident; False (and nothing changes) if it is already resolved."""
        from openduty import escalation

        if self.status == "resolved":
            return False
        self.status = "resolved"
        self.resolved_at = clock.now()
        self.resolved_by = by
        self.next_escalation_at = None
        self._moved_on("resolve", message or f"Resolved{_by(by)} via {channel}.", by, channel)
        if notify:
            escalation.incident_resolved(self)
        return True

    def _moved_on(self, kind: str, message: str, by, channel: str) -> None:
        """Bump the epoch (stale escalation jobs see it and stop) and write the timeline entry."""
        self.epoch = (self.epoch or 0) + 1
        self.log(kind, message, by=by, channel=channel)

    def add_note(self, text: str, by: "User | None" = None, channel: str = "web") -> "LogEntry":  # noqa: F821
        """Add a note to the timeline (does not change the status or the escalation)."""
        return self.log("note", text, by=by, channel=channel)

    def log(
        self,
        kind: str,
        message: str,
        by: "User | None" = None,  # noqa: F821
        channel: str = "system",
        data: dict[str, Any] | None = None,
    ) -> "LogEntry":
        entry = LogEntry(incident=self, kind=kind, message=message, actor=by, channel=channel, data=data or {})
        db.session.add(entry)
        return entry


def _by(user) -> str:
    return f" by {user.name}" if user is not None else ""


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
