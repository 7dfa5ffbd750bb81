"""Incidents and their timelines, and the indexes the incident lists read (openduty.incident_lists)."""

from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy import DDL, JSON, ForeignKey, Index, String, Text, event, false, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from openduty import clock
from openduty.extensions import db
from openduty.models.types import UTCDateTime

STATUSES = ("triggered", "acknowledged", "resolved")
SEVERITIES = ("critical", "error", "warning", "info")
# An incident pages by its users' rules of this urgency (openduty.urgency).
URGENCIES = ("high", "low")
# Open means "not resolved", written as literal SQL so that partial indexes match it (a bound
# parameter does not prove the index's predicate, and psycopg 3's generic plans use parameters).
OPEN_SQL = "status <> 'resolved'"
# The columns a search looks in (beside the incident number).
SEARCHED = ("summary", "dedup_key", "source")
# SQLite's search index: an FTS5 table over SEARCHED (trigram tokens, so any substring of 3+
# characters is found, as ILIKE '%...%' would), kept in step with `incidents` by triggers.
FTS_TABLE = "incidents_fts"
# PostgreSQL's search indexes, one per SEARCHED column (pg_trgm's GIN trigram indexes).
TRIGRAM_INDEXES = {column: f"ix_incidents_{column}_trgm" for column in SEARCHED}


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
            sqlite_where=text(OPEN_SQL),
            postgresql_where=text(OPEN_SQL),
        ),
        # The lists' order (created_at DESC, id DESC) under each filter, so that a page reads one
        # index in order and stops (openduty.incident_lists): all, open, one status, a service, mine.
        Index("ix_incidents_created", "created_at", "id"),
        Index(
            "ix_incidents_open_created",
            "created_at",
            "id",
            sqlite_where=text(OPEN_SQL),
            postgresql_where=text(OPEN_SQL),
        ),
        Index("ix_incidents_status_created", "status", "created_at", "id"),
        Index("ix_incidents_service_created", "service_id", "created_at", "id"),
        Index("ix_incidents_assigned_created", "assigned_to_id", "created_at", "id"),
        # The auto-resolve sweep: a service's open incidents by their last alert (openduty.event_intake).
        Index(
            "ix_incidents_open_service_last_event",
            "service_id",
            "last_event_at",
            sqlite_where=text(OPEN_SQL),
            postgresql_where=text(OPEN_SQL),
        ),
        Index("ix_incidents_urgency_created", "urgency", "created_at", "id"),
        # The reports (openduty.reports) read only these columns of a range of openings: covered,
        # so that 50,000 incidents are read from the index without visiting the table.
        Index("ix_incidents_report", "created_at", "service_id", "acknowledged_at", "resolved_at", "id"),
        # Search on PostgreSQL: trigram indexes serve ILIKE '%text%' (pg_trgm). SQLite's is FTS_TABLE.
        *(
            Index(name, c, postgresql_using="gin", postgresql_ops={c: "gin_trgm_ops"}).ddl_if(dialect="postgresql")
            for c, name in TRIGRAM_INDEXES.items()
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    number: Mapped[int | None] = mapped_column(unique=True)
    service_id: Mapped[int] = mapped_column(ForeignKey("services.id", ondelete="CASCADE"))
    dedup_key: Mapped[str] = mapped_column(String(255))
    status: Mapped[str] = mapped_column(String(16), default="triggered")
    summary: Mapped[str] = mapped_column(String(1024))
    severity: Mapped[str] = mapped_column(String(16), default="critical")
    # high | low: whose rules page (set at trigger from the event or the service; people change it).
    urgency: Mapped[str] = mapped_column(String(8), default="high", server_default="high")
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
    # Held by a maintenance window of its service: nobody is paged; the window's end resumes it
    # (openduty.maintenance). A server default only, so that ingest's bulk insert need not name it.
    in_maintenance: Mapped[bool] = mapped_column(server_default=false())

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


_FTS_COLUMNS = ", ".join(SEARCHED)
_FTS_OLD = ", ".join(f"old.{c}" for c in SEARCHED)
_FTS_NEW = ", ".join(f"new.{c}" for c in SEARCHED)
# The FTS table and its triggers, as the migration (b1e6d0c4a7f2) makes them; create_all() runs
# these for tests and benchmarks. External content: the text lives only in `incidents`.
SQLITE_SEARCH_DDL = (
    f"CREATE VIRTUAL TABLE {FTS_TABLE} USING fts5({_FTS_COLUMNS},"
    " content='incidents', content_rowid='id', tokenize='trigram')",
    f"CREATE TRIGGER {FTS_TABLE}_insert AFTER INSERT ON incidents BEGIN"
    f" INSERT INTO {FTS_TABLE}(rowid, {_FTS_COLUMNS}) VALUES (new.id, {_FTS_NEW}); END",
    f"CREATE TRIGGER {FTS_TABLE}_delete AFTER DELETE ON incidents BEGIN"
    f" INSERT INTO {FTS_TABLE}({FTS_TABLE}, rowid, {_FTS_COLUMNS}) VALUES ('delete', old.id, {_FTS_OLD}); END",
    f"CREATE TRIGGER {FTS_TABLE}_update AFTER UPDATE OF {_FTS_COLUMNS} ON incidents BEGIN"
    f" INSERT INTO {FTS_TABLE}({FTS_TABLE}, rowid, {_FTS_COLUMNS}) VALUES ('delete', old.id, {_FTS_OLD});"
    f" INSERT INTO {FTS_TABLE}(rowid, {_FTS_COLUMNS}) VALUES (new.id, {_FTS_NEW}); END",
)

for _statement in SQLITE_SEARCH_DDL:
    event.listen(Incident.__table__, "after_create", DDL(_statement).execute_if(dialect="sqlite"))
event.listen(Incident.__table__, "before_drop", DDL(f"DROP TABLE IF EXISTS {FTS_TABLE}").execute_if(dialect="sqlite"))
event.listen(
    Incident.__table__, "before_create", DDL("CREATE EXTENSION IF NOT EXISTS pg_trgm").execute_if(dialect="postgresql")
)


def migration_filter(dialect: str) -> Callable[..., bool]:
    """alembic's `include_object` on `dialect`: leaves out what the models do not describe there
    (SQLite's FTS_TABLE and its shadow tables; the trigram indexes, made on PostgreSQL only), so
    that autogenerate and the migration check compare only the rest."""

    def include(obj, name: str | None, type_: str, reflected: bool, compare_to) -> bool:
        name = name or ""
        if type_ == "table" and (name == FTS_TABLE or name.startswith(FTS_TABLE + "_")):
            return False
        return not (type_ == "index" and name in TRIGRAM_INDEXES.values() and dialect != "postgresql")

    return include


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
