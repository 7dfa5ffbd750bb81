"""The audit log: who changed which piece of configuration, when, and from what to what."""

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from openduty import clock
from openduty.extensions import db
from openduty.models.types import UTCDateTime


class AuditEntry(db.Model):
    """One change to one object (or one login), written in the transaction that made the change.

    `actor` is how the change was made, for reading: a user's email, "<email> (API token od_x…)",
    "cli", "ldap-sync", "directory login" or "system". `actor_id` is the user, if there was one, and
    survives only as long as the user does; `actor` is kept as it was. `changes` maps each changed
    field to `[before, after]`, with secrets masked (openduty.audit says which fields are secret).
    """

    __tablename__ = "audit_log"
    __table_args__ = (
        Index("ix_audit_log_object", "object_type", "object_id"),
        Index("ix_audit_log_actor_id", "actor_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=clock.now, index=True)
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    actor: Mapped[str] = mapped_column(String(300))
    action: Mapped[str] = mapped_column(String(32))  # created | changed | deleted | login | login failed
    object_type: Mapped[str] = mapped_column(String(32))
    object_id: Mapped[int | None] = mapped_column()
    object_label: Mapped[str] = mapped_column(String(300), default="")
    # The team that owned the object when it changed: that team's managers read the entry too. Not a
    # foreign key: the log keeps its history when the team is gone (and is written as it goes).
    team_id: Mapped[int | None] = mapped_column(index=True)
    changes: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
